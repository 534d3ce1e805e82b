"""Voice-like hums synthesised from note names: the shipped examples', the tests' and the benchmark's melodies.

A hum is a sequence of notes sung on "mm": a few harmonics, a gentle vibrato, soft attack and release, and a
little breath noise. It is deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np

A4_HZ = 440.0  # concert pitch
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
HARMONICS = (1.0, 0.5, 0.3, 0.15, 0.08)  # relative amplitudes of partials 1..5, a soft "mm" sound
VIBRATO_HZ = 5.5  # vibrato rate
VIBRATO_SEMITONES = 0.15  # vibrato depth either side of the note
ATTACK_SECONDS = 0.04  # raised-cosine fade in of each note
RELEASE_SECONDS = 0.06  # raised-cosine fade out of each note
BREATH_LEVEL = 0.01  # breath noise amplitude relative to the hum's peak
PEAK = 0.5  # default peak level (about -6 dBFS)


def note_hz(name: str) -> float:
    """Frequency of a note name such as "A4", "C#5" or "Bb3" in equal temperament."""
    pitch, octave = name[:-1], int(name[-1])
    pitch = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#"}.get(pitch, pitch)
    semitones_from_a4 = NOTE_NAMES.index(pitch) - NOTE_NAMES.index("A") + 12 * (octave - 4)
    return A4_HZ * 2 ** (semitones_from_a4 / 12)


def hum(
    notes: tuple[str | float, ...] = ("A3", "C#4", "E4"),
    note_seconds: float = 0.8,
    rate: int = 44_100,
    amplitude: float = PEAK,
    seed: int = 0,
    lead: float = 0.0,
    tail: float = 0.0,
) -> np.ndarray:
    """A hummed melody, float32 mono peaking at ``amplitude``, with ``lead`` and ``tail`` seconds of quiet.

    Notes are names ("A3", "C#4"), frequencies in Hz, or "-" for a rest.
    """
    rng = np.random.default_rng(seed)
    n = round(note_seconds * rate)
    t = np.arange(n) / rate
    pieces = []
    for note in notes:
        if note == "-":
            pieces.append(np.zeros(n))
            continue
        hz = note_hz(note) if isinstance(note, str) else float(note)
        vibrato = 2 ** (VIBRATO_SEMITONES / 12 * np.sin(2 * np.pi * VIBRATO_HZ * t + rng.uniform(0, 2 * np.pi)))
        phase = 2 * np.pi * np.cumsum(hz * vibrato) / rate
        voice = sum(a * np.sin(k * phase) for k, a in enumerate(HARMONICS, start=1) if k * hz < rate / 2)
        pieces.append(voice * _fade(n, rate))
    melody = np.concatenate([np.zeros(round(lead * rate)), *pieces, np.zeros(round(tail * rate))])
    melody += BREATH_LEVEL * np.max(np.abs(melody)) * rng.standard_normal(len(melody))
    return (amplitude * melody / np.max(np.abs(melody))).astype(np.float32)


def _fade(n: int, rate: int) -> np.ndarray:
    """Raised-cosine attack and release over ``n`` samples."""
    envelope = np.ones(n)
    attack, release = min(round(ATTACK_SECONDS * rate), n // 2), min(round(RELEASE_SECONDS * rate), n // 2)
    envelope[:attack] = 0.5 - 0.5 * np.cos(np.pi * np.arange(attack) / attack)
    envelope[n - release :] = 0.5 + 0.5 * np.cos(np.pi * np.arange(release) / release)
    return envelope
