"""What a finished track is called: its title and a descriptive, safe file name."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from .recipe import Recipe


def track_file_name(recipe: Recipe) -> str:
    """A file name without extension: moodtape_<preset>_<prompt slug>_seed<seed>[_<bpm>bpm][_<key>].

    Tempo and key join the name when the track was made at an exact tempo (stretched to it, or cut as a loop of
    whole bars at it), as a DAW or sampler user wants to see them (``..._120bpm_A-minor``).
    """
    parts = ["moodtape"]
    if recipe.preset:
        parts.append(recipe.preset)
    parts.append(slugify(track_title(recipe), max_chars=32))
    parts.append(f"seed{recipe.settings.seed}")
    tempo = recipe.tempo or {}
    if tempo.get("bpm") is not None and (tempo.get("stretched", True) or tempo.get("loop")):
        parts.append(f"{tempo['bpm']:g}bpm")
        if tempo.get("key"):
            parts.append(tempo["key"].replace(" ", "-"))
    return "_".join(parts)


def track_title(recipe: Recipe) -> str:
    """The words that name a track: the mood typed, else the prompt, else the melody's file name."""
    if recipe.mood or recipe.settings.prompt:
        return recipe.mood or recipe.settings.prompt
    return f"hum {Path(recipe.melody['file']).stem}" if recipe.melody else "untitled"


def slugify(text: str, max_chars: int = 40) -> str:
    """A short, safe file-name fragment from free text ("Rainy night, piano!" -> "rainy-night-piano")."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_chars].rstrip("-") or "untitled"
