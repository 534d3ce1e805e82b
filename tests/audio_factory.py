"""Voice-like hums (synthesised as the shipped examples are) written in the formats people upload and record.

A hum is a sequence of notes, each with a few harmonics, a gentle vibrato, a soft attack and release, and a
little breath noise (``scripts/hums.py``). ``write_audio`` writes one in any of ``FORMATS``:
WAV in five sample formats, FLAC, OGG/Vorbis and MP3 through soundfile, WebM/Opus and M4A/AAC through ffmpeg.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from scripts.hums import hum  # noqa: F401 - the one hum synthesis, re-exported

C_MAJOR_SCALE = ("C4", "D4", "E4", "F4", "G4", "A4", "B4", "C5")

# name -> (file suffix, soundfile format, soundfile subtype); a None format means ffmpeg with those arguments
FORMATS: dict[str, tuple[str, str | None, str | tuple[str, ...]]] = {
    "wav_u8": (".wav", "WAV", "PCM_U8"),
    "wav_16": (".wav", "WAV", "PCM_16"),
    "wav_24": (".wav", "WAV", "PCM_24"),
    "wav_32": (".wav", "WAV", "PCM_32"),
    "wav_float": (".wav", "WAV", "FLOAT"),
    "flac": (".flac", "FLAC", "PCM_16"),
    "ogg": (".ogg", "OGG", "VORBIS"),
    "mp3": (".mp3", "MP3", "MPEG_LAYER_III"),
    "webm": (".webm", None, ("-c:a", "libopus", "-b:a", "64k", "-f", "webm")),
    "m4a": (".m4a", None, ("-c:a", "aac", "-b:a", "128k", "-f", "ipod")),
}
LOSSY = frozenset({"ogg", "mp3", "webm", "m4a"})


def tone(hz: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    """A plain sine, float32."""
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def with_silence(samples: np.ndarray, rate: int, lead: float, tail: float) -> np.ndarray:
    """``samples`` with ``lead`` seconds of digital silence before and ``tail`` seconds after."""
    return np.concatenate([np.zeros(round(lead * rate), np.float32), samples, np.zeros(round(tail * rate), np.float32)])


def to_channels(samples: np.ndarray, channels: int) -> np.ndarray:
    """Frames x channels: the hum in every channel at slightly different levels (so the mean is the hum)."""
    if channels == 1:
        return samples
    gains = np.linspace(1.0, 0.6, channels, dtype=np.float32)
    return samples[:, None] * gains[None, :]


def write_audio(path: str | Path, samples: np.ndarray, rate: int, fmt: str, channels: int = 1) -> Path:
    """Write ``samples`` (mono float32) as ``fmt`` (a key of ``FORMATS``) with ``channels`` channels."""
    suffix, sf_format, subtype = FORMATS[fmt]
    path = Path(path).with_suffix(suffix)
    frames = to_channels(samples, channels)
    if sf_format is not None:
        soundfile.write(path, frames, rate, format=sf_format, subtype=subtype)
        return path
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError(f"writing {fmt} needs ffmpeg")
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "source.wav"
        soundfile.write(source, frames, rate, subtype="FLOAT")
        command = [ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-i", str(source), *subtype, str(path)]
        subprocess.run(command, check=True, capture_output=True)
    return path
