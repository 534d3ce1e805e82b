"""Write generated audio to disk: lossless WAV with metadata, never a half-written file."""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from pathlib import Path

import numpy as np

WAV_SUBTYPE = "PCM_24"  # what DAWs expect from a lossless stem
PEAK_CEILING = 10 ** (-0.1 / 20)  # -0.1 dBFS: keeps 24-bit PCM from clipping
MAX_SLUG_CHARS = 40


def fit_to_ceiling(audio: np.ndarray) -> tuple[np.ndarray, float]:
    """Scale audio down if its peak exceeds the ceiling; return it and the gain in dB applied."""
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= PEAK_CEILING:
        return audio, 0.0
    gain = PEAK_CEILING / peak
    return (audio * gain).astype(np.float32), float(20 * np.log10(gain))


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int, tags: dict[str, str] | None = None) -> Path:
    """Write ``[channels, samples]`` float audio as 24-bit WAV with RIFF INFO tags.

    The file appears complete or not at all: it is written beside its target
    and renamed into place, and removed if writing fails.
    """
    import soundfile as sf

    path = Path(path)
    if audio.ndim != 2:
        raise ValueError(f"audio must be [channels, samples], got shape {audio.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".partial-", suffix=".wav", dir=path.parent)
    os.close(fd)
    try:
        with sf.SoundFile(
            tmp_name, "w", samplerate=sample_rate, channels=audio.shape[0], subtype=WAV_SUBTYPE, format="WAV"
        ) as f:
            for key, value in (tags or {}).items():
                setattr(f, key, value)  # soundfile writes title/artist/comment/software/date as INFO chunks
            f.write(np.clip(audio.T, -1.0, 1.0))
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically (used for recipe sidecars)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".partial-", suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def slugify(text: str, max_chars: int = MAX_SLUG_CHARS) -> str:
    """A short, safe file-name fragment from free text ("Rainy night, piano!" -> "rainy-night-piano")."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_chars].rstrip("-") or "untitled"
