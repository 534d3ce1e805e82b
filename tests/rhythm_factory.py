"""Rhythms whose truth is known: click tracks and drum patterns at an exact tempo, over chords in a known key.

A bar is four beats and starts at ``offset`` seconds, then every ``4 * 60 / bpm`` seconds. Clicks are short
sine bursts, higher and louder on the downbeat. Drums put a kick on beats 1 and 3, a snare on 2 and 4 and a
closed hi-hat on every eighth. Chords change on each downbeat and hold for the bar, with a bass note an octave
below the root, so the harmony marks the bar lines as it does in most songs.
"""

from __future__ import annotations

import numpy as np

from generation.melody import PITCH_CLASSES

A_MINOR = (("A3", "C4", "E4"), ("D4", "F4", "A4"), ("E3", "G#3", "B3"), ("A3", "C4", "E4"))  # i iv V i
D_MAJOR = (("D4", "F#4", "A4"), ("G3", "B3", "D4"), ("A3", "C#4", "E4"), ("D4", "F#4", "A4"))  # I IV V I


def note_hz(name: str) -> float:
    """Equal-tempered frequency of a note name such as "A4" (440 Hz) or "G#3"."""
    semitones_from_a4 = PITCH_CLASSES.index(name[:-1]) - PITCH_CLASSES.index("A") + 12 * (int(name[-1]) - 4)
    return 440.0 * 2 ** (semitones_from_a4 / 12)


def beat_times(bpm: float, seconds: float, offset: float = 0.0) -> np.ndarray:
    """The true beat times in seconds: every ``60 / bpm`` from ``offset`` until ``seconds``."""
    return offset + 60.0 / bpm * np.arange(int((seconds - offset) * bpm / 60.0) + 1)


def pattern(
    bpm: float,
    seconds: float,
    rate: int,
    *,
    kind: str = "drums",
    offset: float = 0.0,
    chords: tuple[tuple[str, ...], ...] | None = None,
    channels: int = 1,
    seed: int = 0,
) -> np.ndarray:
    """``[channels, samples]`` float32 peaking at 0.8: ``kind`` "clicks" or "drums" at ``bpm``, chords optional."""
    rng = np.random.default_rng(seed)
    out = np.zeros(round(seconds * rate))
    beats = beat_times(bpm, seconds, offset)
    for index, time in enumerate(beats):
        start, downbeat = round(time * rate), index % 4 == 0
        if kind == "clicks":
            _add(out, _click(rate, 1500.0 if downbeat else 1000.0, 0.9 if downbeat else 0.5), start)
            continue
        _add(out, 0.9 * _kick(rate) if index % 2 == 0 else 0.7 * _snare(rate, rng), start)
        for eighth in (start, round((time + 30.0 / bpm) * rate)):
            _add(out, _hat(rate, rng), eighth)
    if chords:
        for bar, start in enumerate(beats[::4]):
            _add(out, _chord(chords[bar % len(chords)], 240.0 / bpm, rate), round(start * rate))
    out = 0.8 * out / max(1e-9, float(np.abs(out).max()))
    return np.repeat(out[None, :].astype(np.float32), channels, axis=0)


def _add(out: np.ndarray, sound: np.ndarray, start: int) -> None:
    end = min(len(out), start + len(sound))
    if 0 <= start < end:
        out[start:end] += sound[: end - start]


def _click(rate: int, hz: float, amplitude: float) -> np.ndarray:
    t = np.arange(round(0.02 * rate)) / rate
    return amplitude * np.sin(2 * np.pi * hz * t) * np.exp(-t / 0.004)


def _kick(rate: int) -> np.ndarray:
    t = np.arange(round(0.15 * rate)) / rate
    sweep = 50.0 + 90.0 * np.exp(-t / 0.03)  # the pitch drop that makes a kick
    return np.sin(2 * np.pi * np.cumsum(sweep) / rate) * np.exp(-t / 0.05)


def _snare(rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(round(0.12 * rate)) / rate
    return (0.6 * rng.standard_normal(len(t)) + 0.4 * np.sin(2 * np.pi * 190.0 * t)) * np.exp(-t / 0.03)


def _hat(rate: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(round(0.03 * rate)) / rate
    return 0.25 * np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t / 0.008)  # differenced noise: bright


def _chord(notes: tuple[str, ...], seconds: float, rate: int) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    envelope = np.minimum(1.0, t / 0.02) * np.exp(-t / 3.0)
    tone = sum(
        0.06 * gain * np.sin(2 * np.pi * note_hz(note) * harmonic * t)
        for note in notes
        for harmonic, gain in ((1, 1.0), (2, 0.5), (3, 0.25))
    )
    bass = 0.12 * np.sin(2 * np.pi * note_hz(notes[0]) / 2 * t)
    return envelope * (tone + bass)
