"""Tidy a hum: its notes moved onto the measured key's scale and its timing onto a 1/8-note grid."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from .notes import Note

MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)  # semitones above the tonic of the major scale
MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10, 11)  # natural minor, plus the raised seventh that minor tunes lead with
GRID_PER_BEAT = 2  # 1/8 notes in 4/4
GRID_NAME = "1/8"


@dataclass(frozen=True)
class Tidied:
    """Tidied notes and what moved."""

    notes: tuple[Note, ...]
    key: str | None  # the key the notes were snapped to ("A minor"); None when none was clear
    bpm: float | None  # the tempo the grid is at; None when the timing was left as it was
    moved_to_scale: int  # notes whose pitch changed
    quantised: bool

    def describe(self) -> str:
        """What moved, for the summary: "3 notes moved to the scale of A minor, timing quantised to 1/8 at 92 BPM"."""
        if self.key is None:
            pitch = "pitches left as sung (no clear key)"
        else:
            count = f"{self.moved_to_scale} note{'s' if self.moved_to_scale != 1 else ''}"
            pitch = f"{count} moved to the scale of {self.key}"
        if self.quantised:
            timing = f"timing quantised to {GRID_NAME} at {self.bpm:.0f} BPM"
        else:
            timing = "timing left as sung (no tempo given or heard)"
        return f"{pitch}, {timing}"


def tidy_notes(
    notes: Sequence[Note], key: str | None, bpm: float | None, first_beat: float = 0.0
) -> Tidied:
    """``notes`` with each pitch off the scale of ``key`` moved to the nearest scale note, and starts and ends
    moved to the nearest 1/8 of a beat at ``bpm`` counted from ``first_beat`` seconds.

    A note that would vanish on the grid keeps one grid step; a note that would overlap the next is cut there.
    """
    if not notes:
        raise InvalidInputError("No notes heard in the melody, so there is nothing to tidy; hum the tune clearly.")
    scale = _scale(key) if key else None
    moved, pitched = 0, []
    for note in sorted(notes, key=lambda n: n.start):
        pitch = note.pitch
        if scale is not None and pitch % 12 not in scale:
            pitch = _nearest_in_scale(pitch, scale, pitched[-1].pitch if pitched else None)
            moved += 1
        pitched.append(Note(pitch, note.start, note.end, note.velocity))
    if bpm is None:
        return Tidied(tuple(pitched), key if scale is not None else None, None, moved, False)
    step = 60.0 / bpm / GRID_PER_BEAT
    snapped: list[Note] = []
    for note in pitched:
        start = max(0.0, first_beat + round((note.start - first_beat) / step) * step)
        end = first_beat + round((note.end - first_beat) / step) * step
        if snapped and start < snapped[-1].end:
            last = snapped[-1]
            if start <= last.start:  # two notes on one grid point: keep the longer one
                if note.end - note.start <= last.end - last.start:
                    continue
                snapped.pop()
            else:
                snapped[-1] = Note(last.pitch, last.start, start, last.velocity)
        snapped.append(Note(note.pitch, start, max(end, start + step), note.velocity))
    return Tidied(tuple(snapped), key if scale is not None else None, bpm, moved, True)


def notes_key(notes: Sequence[Note]) -> str | None:
    """The Krumhansl-Schmuckler key of the notes, each pitch class weighted by how long it sounds; None when no
    key is clear (as for a hum's audio: ``generation.melody``)."""
    from ..melody import MIN_KEY_CORRELATION, estimate_key

    profile = np.zeros(12)
    for note in notes:
        profile[note.pitch % 12] += note.end - note.start
    if not profile.any():
        return None
    key, correlation = estimate_key(profile / profile.sum())
    return key if correlation >= MIN_KEY_CORRELATION else None


def _scale(key: str) -> frozenset[int]:
    """Pitch classes of a key named like "A minor", "C# major" or "Bb" (see ``generation.editing.keys``)."""
    from ..editing.keys import parse_key

    parsed = parse_key(key)
    if parsed is None:
        raise InvalidInputError(f"No key to tidy the melody into was given, got {key!r}.")
    steps = MAJOR_STEPS if parsed.mode == "major" else MINOR_STEPS
    return frozenset((parsed.tonic + step) % 12 for step in steps)


def _nearest_in_scale(pitch: int, scale: frozenset[int], previous: int | None) -> int:
    """The scale note a semitone away (every off-scale note has one each side or one side); when both sides are
    in the scale, the side nearer the previous note, so a passing note keeps its line."""
    down, up = pitch - 1, pitch + 1
    down_ok, up_ok = down % 12 in scale, up % 12 in scale
    if down_ok and up_ok:
        if previous is not None and previous > pitch:
            return up
        return down
    return up if up_ok else down if down_ok else int(np.clip(pitch, 0, 127))
