"""Build a tiny, randomly initialised MusicGen-Melody checkpoint on disk, so melody tests never download.

It is ``tests.tiny_models``' tiny model in its melody form, strengthened the same way, with the chroma
projection scaled up as well so the melody visibly changes the output. transformers' melody feature extractor
needs torchaudio, so its settings are written by hand as ``preprocessor_config.json`` (the extractor's
defaults, which are facebook/musicgen-melody's), for ``ChromaExtractor.from_pretrained`` to read.

Run ``python -m tests.tiny_melody_model FOLDER`` to build one for a manual demo.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from tests.random_musicgen import tokenizer
from tests.tiny_models import tiny_model

MELODY_GAIN = 200.0  # scales the chroma projection: at 40 the melody changed no sampled token
HEAD_GAIN = 4.0  # sharpens the LM heads beyond the text model's: the melody then moves 2-4% of tokens, not 0.5%
PREPROCESSOR_CONFIG = {  # MusicgenMelodyFeatureExtractor's defaults, as saved by save_pretrained
    "chunk_length": 30,
    "feature_extractor_type": "MusicgenMelodyFeatureExtractor",
    "feature_size": 12,
    "hop_length": 4096,
    "n_fft": 16384,
    "num_chroma": 12,
    "padding_side": "right",
    "padding_value": 0.0,
    "return_attention_mask": False,
    "sampling_rate": 32000,
    "stem_indices": [3, 2],
}


def build_melody_model(folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny random MusicGen-Melody checkpoint (model, tokenizer, feature-extractor JSON) into ``folder``."""
    folder = Path(folder)
    model = tiny_model("melody", seed)
    with torch.no_grad():
        model.audio_enc_to_dec_proj.weight.mul_(MELODY_GAIN)
        for head in model.decoder.lm_heads:
            head.weight.mul_(HEAD_GAIN)
    model.save_pretrained(folder)
    tokenizer().save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2) + "\n")
    return folder


if __name__ == "__main__":
    print(build_melody_model(sys.argv[1] if len(sys.argv) > 1 else "tiny-musicgen-melody"))
