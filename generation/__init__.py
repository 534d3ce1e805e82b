"""Moodtape's generation library: MusicGen text-to-music without any UI.

The layout: ``model/`` holds MusicGen in memory (loading, the model thread and batcher, sampling,
cache, layers, decoding, chroma); ``audio/`` holds audio in and out (uploads, loudness, export,
stems, pictures); the modules here are the product's domain (config, settings, presets, recipe,
studio, storage). ``Studio``, ``TrackRequest`` and ``MusicGenEngine`` import torch, so they load
on first use: ``import generation`` alone stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import ConfigError, ServerConfig
from .errors import GenerationCancelled, InvalidInputError, ModelLoadError, MoodtapeError, OutOfMemory
from .settings import ExportSettings, GenerationSettings

if TYPE_CHECKING:
    from .model.engine import MusicGenEngine
    from .model.spec import EngineSpec
    from .studio import Studio, Track, TrackRequest

__version__ = "0.1.0"

_LAZY = {
    "EngineSpec": "model.spec",
    "MusicGenEngine": "model.engine",
    "Studio": "studio",
    "Track": "studio",
    "TrackRequest": "studio",
}

__all__ = [
    "ConfigError",
    "EngineSpec",
    "ExportSettings",
    "GenerationCancelled",
    "GenerationSettings",
    "InvalidInputError",
    "ModelLoadError",
    "MoodtapeError",
    "MusicGenEngine",
    "OutOfMemory",
    "ServerConfig",
    "Studio",
    "Track",
    "TrackRequest",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
