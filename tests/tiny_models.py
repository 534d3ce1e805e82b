"""Build tiny, randomly initialised MusicGen checkpoints on disk, so tests never download.

The checkpoints are real transformers checkpoints (config, weights, tokenizer,
processor, generation config) and load through the same ``from_pretrained`` path
as ``facebook/musicgen-small``. Two things are changed from a plain random init
so that tests can see their inputs matter:

* EnCodec's codebooks are randomised: a fresh codec has all-zero codebooks and
  decodes every token sequence to the same audio.
* The conditioning projection and the LM heads are scaled up: random text
  conditioning is otherwise far weaker than the sampling noise.

Run ``python -m tests.tiny_models FOLDER`` to build one for a manual demo.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

SAMPLING_RATE = 32_000
WORDS = (
    "rainy night mellow piano slow lofi hip hop beat drums bass guitar synth "
    "jazz trio upbeat happy sad dark ambient cinematic orchestral strings epic "
    "rock metal folk acoustic chill dance house techno funk groove calm warm "
    "bright energetic dreamy retro 80s 90s vocal choir violin cello flute brass"
).split()


def _tokenizer():
    from transformers import T5Tokenizer

    # Unigram vocab: specials first, then whole words (with the SentencePiece
    # word-boundary marker) and single letters so any text tokenizes.
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [("\u2581" + w, -2.0) for w in WORDS]
    vocab += [(c, -8.0) for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    vocab += [("\u2581" + c, -7.0) for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    vocab += [("\u2581", -5.0)]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def _configs(vocab_size: int):
    from transformers import EncodecConfig, MusicgenDecoderConfig, T5Config

    text = T5Config(
        vocab_size=vocab_size,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    codec = EncodecConfig(
        sampling_rate=SAMPLING_RATE,
        audio_channels=1,
        upsampling_ratios=[8, 5, 4, 4],
        target_bandwidths=[2.2],
        codebook_size=64,
        num_filters=4,
        hidden_size=16,
        codebook_dim=16,
        num_lstm_layers=1,
        use_causal_conv=False,
        normalize=False,
        use_conv_shortcut=False,
        norm_type="weight_norm",
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        ffn_dim=64,
        num_codebooks=4,
        max_position_embeddings=2048,
        audio_channels=1,
        pad_token_id=64,
        bos_token_id=64,
        decoder_start_token_id=64,
    )
    return text, codec, decoder


def _strengthen(model, seed: int) -> None:
    """Randomise codebooks and amplify conditioning so inputs visibly change the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.audio_encoder.quantizer.layers:
            codebook = layer.codebook
            codebook.embed.copy_(5.0 * torch.randn(codebook.embed.shape, generator=gen))
            codebook.embed_avg.copy_(codebook.embed)
            codebook.cluster_size.fill_(1.0)
            codebook.inited.fill_(True)
        # Random conv biases add a large DC offset that drowns the signal.
        for name, param in model.audio_encoder.decoder.named_parameters():
            if name.endswith("bias"):
                param.zero_()
        proj = getattr(model, "enc_to_dec_proj", None)
        if proj is not None:
            proj.weight.mul_(40.0)
        for layer in model.decoder.model.decoder.layers:
            cross = getattr(layer, "encoder_attn", None)
            if cross is not None:
                cross.v_proj.weight.mul_(10.0)
                cross.out_proj.weight.mul_(10.0)
        for head in model.decoder.lm_heads:
            head.weight.mul_(6.0)


def build_text_model(folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny random MusicGen (text-conditioned) checkpoint into ``folder``."""
    from transformers import (
        EncodecFeatureExtractor,
        MusicgenConfig,
        MusicgenForConditionalGeneration,
        MusicgenProcessor,
    )

    folder = Path(folder)
    torch.manual_seed(seed)
    tokenizer = _tokenizer()
    text, codec, decoder = _configs(len(tokenizer))
    config = MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=codec.to_dict(), decoder=decoder.to_dict())
    model = MusicgenForConditionalGeneration(config).eval()
    _strengthen(model, seed)
    gc = model.generation_config
    gc.do_sample, gc.guidance_scale, gc.top_k, gc.max_length = True, 3.0, 250, 1500
    gc.decoder_start_token_id = gc.pad_token_id = gc.bos_token_id = 64
    model.save_pretrained(folder)
    extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLING_RATE, padding_value=0.0)
    MusicgenProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


if __name__ == "__main__":
    print(build_text_model(sys.argv[1] if len(sys.argv) > 1 else "tiny-musicgen"))
