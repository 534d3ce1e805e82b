"""Randomly initialised MusicGen and MusicGen-Melody models built from an architecture description.

``TINY`` is what the tests' checkpoints are made of. ``SMALL`` and ``MELODY`` are the exact sizes of
facebook/musicgen-small and facebook/musicgen-melody, for the benchmark: speed does not depend on the weights'
values. t5-base's tokenizer would be a download, so ``tokenizer()`` builds a small T5 one in code for all of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch

from generation.model.chroma import CHROMA_LENGTH, NUM_CHROMA, SAMPLING_RATE

if TYPE_CHECKING:
    from transformers import (
        MusicgenForConditionalGeneration,
        MusicgenMelodyForConditionalGeneration,
        MusicgenProcessor,
        T5Tokenizer,
    )

NUM_CODEBOOKS = 4  # EnCodec 32 kHz at 2.2 kbps
WORDS = (
    "rainy night mellow piano slow lofi hip hop beat drums bass guitar synth "
    "jazz trio upbeat happy sad dark ambient cinematic orchestral strings epic "
    "rock metal folk acoustic chill dance house techno funk groove calm warm "
    "bright energetic dreamy retro 80s 90s vocal choir violin cello flute brass"
).split()
CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789"
# Unigram pieces and scores: specials first, then whole words (with SentencePiece's word-boundary mark) and single
# characters, so any text tokenizes.
VOCAB = (
    ("<pad>", 0.0),
    ("</s>", 0.0),
    ("<unk>", 0.0),
    *(("\u2581" + word, -2.0) for word in WORDS),
    *((c, -8.0) for c in CHARACTERS),
    *(("\u2581" + c, -7.0) for c in CHARACTERS),
    ("\u2581", -5.0),
)


@dataclass(frozen=True)
class TextEncoder:
    """Sizes of the T5 encoder that reads the prompt (``T5Config`` arguments)."""

    d_model: int
    num_layers: int
    num_heads: int
    d_ff: int
    d_kv: int
    vocab_size: int


@dataclass(frozen=True)
class Codec:
    """Sizes of the 32 kHz EnCodec (``EncodecConfig`` arguments); its hop and codebook count are fixed."""

    codebook_size: int  # also the decoder's vocabulary, whose pad and BOS id is this number
    num_filters: int
    hidden_size: int
    codebook_dim: int
    num_lstm_layers: int


@dataclass(frozen=True)
class Decoder:
    """Sizes of the decoder that predicts the codes (``MusicgenDecoderConfig`` arguments)."""

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    ffn_dim: int


@dataclass(frozen=True)
class Architecture:
    """Everything that sizes a MusicGen: its text encoder, its codec and its decoder."""

    text: TextEncoder
    codec: Codec
    decoder: Decoder


TINY = Architecture(
    TextEncoder(d_model=32, num_layers=2, num_heads=4, d_ff=64, d_kv=8, vocab_size=len(VOCAB)),
    Codec(codebook_size=64, num_filters=4, hidden_size=16, codebook_dim=16, num_lstm_layers=1),
    Decoder(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=64),
)
# The real sizes: t5-base and facebook/encodec_32khz as their config.json on the Hugging Face Hub give them; the
# decoders as transformers' conversion scripts build them (decoder_config_from_checkpoint in
# src/transformers/models/musicgen/convert_musicgen_transformers.py and
# src/transformers/models/musicgen_melody/convert_musicgen_melody_transformers.py).
T5_BASE = TextEncoder(d_model=768, num_layers=12, num_heads=12, d_ff=3072, d_kv=64, vocab_size=32128)
ENCODEC_32KHZ = Codec(codebook_size=2048, num_filters=64, hidden_size=128, codebook_dim=128, num_lstm_layers=2)
SMALL = Architecture(
    T5_BASE, ENCODEC_32KHZ, Decoder(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, ffn_dim=4096)
)
MELODY = Architecture(
    T5_BASE, ENCODEC_32KHZ, Decoder(hidden_size=1536, num_hidden_layers=48, num_attention_heads=24, ffn_dim=6144)
)


def random_musicgen(
    arch: Architecture, family: str = "text", seed: int = 0, channels: int = 1
) -> MusicgenForConditionalGeneration | MusicgenMelodyForConditionalGeneration:
    """A MusicGen ("text") or MusicGen-Melody ("melody") of ``arch``, random from ``seed``, in eval mode.

    ``channels=2`` makes the stereo form (facebook/musicgen-stereo-*): the same decoder with 8 codebooks, left and
    right interleaved, each channel decoded by the same mono EnCodec.
    """
    from transformers import (
        EncodecConfig,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        MusicgenMelodyConfig,
        MusicgenMelodyDecoderConfig,
        MusicgenMelodyForConditionalGeneration,
        T5Config,
    )

    if family not in ("text", "melody"):
        raise ValueError(f"family must be 'text' or 'melody', not {family!r}")
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, not {channels!r}")
    text = T5Config(**asdict(arch.text), decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    codec = EncodecConfig(
        **asdict(arch.codec),
        sampling_rate=SAMPLING_RATE,
        audio_channels=1,
        upsampling_ratios=[8, 5, 4, 4],  # a hop of 640 samples: 50 frames a second
        target_bandwidths=[2.2],  # the bandwidth that uses NUM_CODEBOOKS codebooks
        use_causal_conv=False,
        normalize=False,
        use_conv_shortcut=False,
        norm_type="weight_norm",
    )
    special = arch.codec.codebook_size  # pad, BOS and decoder start: one past the last codebook entry
    decoder = dict(
        **asdict(arch.decoder),
        vocab_size=arch.codec.codebook_size,
        num_codebooks=NUM_CODEBOOKS * channels,
        max_position_embeddings=2048,
        audio_channels=channels,
        pad_token_id=special,
        bos_token_id=special,
        decoder_start_token_id=special,
    )
    encoders = {"text_encoder": text.to_dict(), "audio_encoder": codec.to_dict()}
    torch.manual_seed(seed)
    if family == "text":
        config = MusicgenConfig(**encoders, decoder=MusicgenDecoderConfig(**decoder).to_dict())
        model = MusicgenForConditionalGeneration(config)
    else:
        decoder_config = MusicgenMelodyDecoderConfig(**decoder).to_dict()
        config = MusicgenMelodyConfig(
            **encoders, decoder=decoder_config, num_chroma=NUM_CHROMA, chroma_length=CHROMA_LENGTH
        )
        model = MusicgenMelodyForConditionalGeneration(config)
    generation = model.generation_config
    generation.decoder_start_token_id = generation.pad_token_id = generation.bos_token_id = special
    return model.eval()


def tokenizer() -> T5Tokenizer:
    """A T5 tokenizer of ``VOCAB``: music words whole, anything else letter by letter."""
    from transformers import T5Tokenizer

    return T5Tokenizer(vocab=list(VOCAB), extra_ids=0)


def text_processor() -> MusicgenProcessor:
    """The text model's processor: ``tokenizer()`` and EnCodec's feature extractor."""
    from transformers import EncodecFeatureExtractor, MusicgenProcessor

    extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLING_RATE, padding_value=0.0)
    return MusicgenProcessor(feature_extractor=extractor, tokenizer=tokenizer())
