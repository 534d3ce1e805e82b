"""A tiny, randomly initialised MusicGen-Melody checkpoint on disk (facebook/musicgen-melody's published configs).

See ``tests.tiny_models``: the same builder, with the chroma projection scaled up as well so the melody visibly
changes the output. ``PREPROCESSOR_CONFIG`` is the published feature-extractor settings ``ChromaExtractor`` reads.
"""

from __future__ import annotations

from pathlib import Path

from tests.tiny_models import build_checkpoint, published

PREPROCESSOR_CONFIG = published("musicgen-melody", "preprocessor_config.json")


def build_melody_model(folder: str | Path, seed: int = 0) -> Path:
    """Save a tiny random MusicGen-Melody checkpoint (model, tokenizer, feature-extractor JSON) into ``folder``."""
    return build_checkpoint("musicgen-melody", folder, seed)
