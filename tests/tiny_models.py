"""Build tiny, randomly initialised MusicGen checkpoints on disk, so tests never download.

Each checkpoint is made from the published ``config.json``, ``generation_config.json`` and
``preprocessor_config.json`` of the model it stands for (``tests/checkpoints/<model>/``, sources in its
SOURCES.md), with only the sizes changed to ``tests.random_musicgen``'s ``TINY``: so every field a real checkpoint
carries goes through the same ``from_pretrained`` path as ``facebook/musicgen-small`` before anyone downloads one.
Two things differ from a plain random init so that tests can see their inputs matter:

* EnCodec's codebooks are randomised: a fresh codec has all-zero codebooks and
  decodes every token sequence to the same audio.
* The conditioning projections and the LM heads are scaled up: random text (and chroma)
  conditioning is otherwise far weaker than the sampling noise.

Run ``python -m tests.tiny_models MODEL FOLDER`` (MODEL: musicgen-small, musicgen-stereo-small, musicgen-melody,
musicgen-stereo-melody) to build one for a manual demo.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from tests.random_musicgen import TINY, tokenizer

PUBLISHED = Path(__file__).resolve().with_name("checkpoints")
MODELS = ("musicgen-small", "musicgen-stereo-small", "musicgen-melody", "musicgen-stereo-melody")
MELODY_GAIN = 200.0  # scales the chroma projection: at 40 the melody changed no sampled token
MELODY_HEAD_GAIN = 4.0  # sharpens a melody model's LM heads further: the melody then moves 2-4% of tokens, not 0.5%


def published(model: str, file: str) -> dict[str, Any]:
    """One of the published JSON files of ``model``, as the hub holds it."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    return json.loads((PUBLISHED / model / file).read_text())


def tiny_config(model: str) -> dict[str, Any]:
    """``model``'s published config.json with ``TINY``'s sizes; every other field as published."""
    config = published(model, "config.json")
    config["text_encoder"] |= asdict(TINY.text) | {"num_decoder_layers": TINY.text.num_layers}
    config["audio_encoder"] |= asdict(TINY.codec)
    special = TINY.codec.codebook_size  # pad and BOS: one past the last codebook entry
    config["decoder"] |= asdict(TINY.decoder) | {
        "vocab_size": TINY.codec.codebook_size,
        "bos_token_id": special,
        "pad_token_id": special,
    }
    return config


def tiny_generation_config(model: str) -> dict[str, Any]:
    """``model``'s published generation_config.json with its special token ids moved to ``TINY``'s vocabulary."""
    generation = published(model, "generation_config.json")
    for key in ("bos_token_id", "decoder_start_token_id", "pad_token_id"):
        generation[key] = TINY.codec.codebook_size
    return generation


def tiny_model(model: str = "musicgen-small", seed: int = 0):
    """A tiny random ``model`` (strengthened, see the module docstring) in eval mode."""
    from transformers import (
        GenerationConfig,
        MusicgenConfig,
        MusicgenForConditionalGeneration,
        MusicgenMelodyConfig,
        MusicgenMelodyForConditionalGeneration,
    )

    config = tiny_config(model)
    melody = config["model_type"] == "musicgen_melody"
    config_class, model_class = (
        (MusicgenMelodyConfig, MusicgenMelodyForConditionalGeneration)
        if melody
        else (MusicgenConfig, MusicgenForConditionalGeneration)
    )
    torch.manual_seed(seed)
    built = model_class(config_class.from_dict(config))
    built.generation_config = GenerationConfig.from_dict(tiny_generation_config(model))
    strengthen(built, seed)
    if melody:
        with torch.no_grad():
            built.audio_enc_to_dec_proj.weight.mul_(MELODY_GAIN)
            for head in built.decoder.lm_heads:
                head.weight.mul_(MELODY_HEAD_GAIN)
    return built.eval()


def strengthen(model, seed: int) -> None:
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


def build_checkpoint(model: str, folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny random ``model`` into ``folder``: weights, configs, tokenizer and the published preprocessor."""
    from transformers import EncodecFeatureExtractor, MusicgenProcessor

    folder = Path(folder)
    tiny_model(model, seed).save_pretrained(folder)
    preprocessor = published(model, "preprocessor_config.json")
    if preprocessor["feature_extractor_type"] == "EncodecFeatureExtractor":
        known = ("feature_size", "sampling_rate", "padding_value", "chunk_length_s", "overlap")
        extractor = EncodecFeatureExtractor(**{key: preprocessor[key] for key in known})
        MusicgenProcessor(feature_extractor=extractor, tokenizer=tokenizer()).save_pretrained(folder)
    else:  # transformers' melody extractor needs torchaudio: its settings go as published, for ChromaExtractor
        tokenizer().save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")
    return folder


def build_text_model(folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny random MusicGen (facebook/musicgen-small's configs) into ``folder``."""
    return build_checkpoint("musicgen-small", folder, seed)


if __name__ == "__main__":
    print(build_checkpoint(sys.argv[1], sys.argv[2]))
