"""Synthesise voice-like hums and write them in the formats people upload and browsers record.

A hum here is a sequence of notes, each with a few harmonics, a gentle vibrato, a soft attack and release,
and a little breath noise. ``write_audio`` writes one in any of ``FORMATS``: WAV in five sample formats,
FLAC, OGG/Vorbis and MP3 through soundfile, WebM/Opus and M4A/AAC through ffmpeg.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile

A4_HZ = 440.0  # concert pitch
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
HARMONICS = (1.0, 0.5, 0.3, 0.15, 0.08)  # relative amplitudes of partials 1..5, a soft "mm" sound
VIBRATO_HZ = 5.5  # vibrato rate
VIBRATO_SEMITONES = 0.15  # vibrato depth either side of the note
ATTACK_SECONDS = 0.04  # raised-cosine fade in
RELEASE_SECONDS = 0.06  # raised-cosine fade out
BREATH_LEVEL = 0.01  # breath noise amplitude relative to the full hum's
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


def note_hz(name: str) -> float:
    """Frequency of a note name such as "A4", "C#5" or "Bb3" in equal temperament."""
    pitch, octave = name[:-1], int(name[-1])
    pitch = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#"}.get(pitch, pitch)
    semitones_from_a4 = NOTE_NAMES.index(pitch) - NOTE_NAMES.index("A") + 12 * (octave - 4)
    return A4_HZ * 2 ** (semitones_from_a4 / 12)


def tone(hz: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    """A plain sine, float32."""
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def hum(
    notes: tuple[str | float, ...] = ("A3", "C#4", "E4"),
    note_seconds: float = 0.8,
    rate: int = 44_100,
    amplitude: float = 0.5,
    seed: int = 0,
) -> np.ndarray:
    """A hummed melody, one note after another, float32 mono peaking near ``amplitude``."""
    rng = np.random.default_rng(seed)
    n = round(note_seconds * rate)
    t = np.arange(n) / rate
    pieces = []
    for note in notes:
        hz = note_hz(note) if isinstance(note, str) else float(note)
        vibrato = 2 ** (VIBRATO_SEMITONES / 12 * np.sin(2 * np.pi * VIBRATO_HZ * t + rng.uniform(0, 2 * np.pi)))
        phase = 2 * np.pi * np.cumsum(hz * vibrato) / rate
        voice = sum(a * np.sin(k * phase) for k, a in enumerate(HARMONICS, start=1) if k * hz < rate / 2)
        pieces.append(voice * _fade(n, rate))
    melody = np.concatenate(pieces)
    melody += BREATH_LEVEL * np.max(np.abs(melody)) * rng.standard_normal(len(melody))
    return (amplitude * melody / np.max(np.abs(melody))).astype(np.float32)


def _fade(n: int, rate: int) -> np.ndarray:
    """Raised-cosine attack and release over ``n`` samples."""
    envelope = np.ones(n)
    attack, release = min(round(ATTACK_SECONDS * rate), n // 2), min(round(RELEASE_SECONDS * rate), n // 2)
    envelope[:attack] = 0.5 - 0.5 * np.cos(np.pi * np.arange(attack) / attack)
    envelope[n - release :] = 0.5 + 0.5 * np.cos(np.pi * np.arange(release) / release)
    return envelope


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
