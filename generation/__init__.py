"""Moodtape's generation library: MusicGen text-to-music without any UI."""

__version__ = "0.1.0"

from .errors import GenerationCancelled, InvalidInputError, ModelLoadError, MoodtapeError
from .settings import GenerationSettings

__all__ = [
    "GenerationCancelled",
    "GenerationSettings",
    "InvalidInputError",
    "ModelLoadError",
    "MoodtapeError",
]
