"""Notes, chords and drum hits as values: what a transcription finds, a MIDI file holds and the piano roll draws."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import InvalidInputError
from ..melody import PITCH_CLASSES  # MIDI pitch % 12, C first

KICK, SNARE, HIHAT = 36, 38, 42  # General MIDI drum keys: bass drum 1, acoustic snare, closed hi-hat
DRUM_NAMES = {KICK: "kick", SNARE: "snare", HIHAT: "hi-hat"}
DRUM_CHANNEL = 9  # MIDI channel 10, counted from 0: General MIDI's percussion channel


@dataclass(frozen=True)
class Note:
    """One note: a MIDI pitch (60 is middle C, C4) sounding from ``start`` to ``end`` seconds."""

    pitch: int  # 0..127
    start: float  # seconds
    end: float  # seconds, after start
    velocity: int = 90  # 1..127

    def __post_init__(self) -> None:
        if not 0 <= self.pitch <= 127:
            raise InvalidInputError(f"A MIDI pitch must be from 0 to 127, got {self.pitch}.")
        if not (math.isfinite(self.start) and math.isfinite(self.end) and 0 <= self.start < self.end):
            raise InvalidInputError(f"A note must end after it starts, at 0 s or later; got {self.start}-{self.end}.")
        if not 1 <= self.velocity <= 127:
            raise InvalidInputError(f"A note's velocity must be from 1 to 127, got {self.velocity}.")

    @property
    def name(self) -> str:
        """Scientific pitch name: "C4" for 60, "A#3" for 58."""
        return note_name(self.pitch)

    @property
    def hz(self) -> float:
        return 440.0 * 2 ** ((self.pitch - 69) / 12)


@dataclass(frozen=True)
class NoteTrack:
    """A named part of a MIDI file: its notes in time order, the General MIDI program and whether it is drums."""

    name: str  # "melody", "bass", "lead", "chords", "drums"
    notes: tuple[Note, ...]
    program: int = 0  # General MIDI instrument, 0..127 (0 piano, 33 finger bass, 52 choir aahs)
    drums: bool = False  # True: played on DRUM_CHANNEL, pitches are drum keys

    def __post_init__(self) -> None:
        object.__setattr__(self, "notes", tuple(sorted(self.notes, key=lambda n: (n.start, n.pitch))))


@dataclass(frozen=True)
class Chord:
    """A chord held from ``start`` to ``end`` seconds: its name and the pitches a block chord plays."""

    name: str  # "C", "Am", "F#"; "N" for no chord
    start: float
    end: float
    pitches: tuple[int, ...]  # MIDI pitches of the block chord, empty for "N"

    @property
    def label(self) -> str:
        """The chord in mir_eval's syntax ("C:maj", "A:min", "N"), for scoring."""
        if self.name == "N":
            return "N"
        return f"{self.name[:-1]}:min" if self.name.endswith("m") else f"{self.name}:maj"


def note_name(pitch: int) -> str:
    """Scientific pitch name of a MIDI pitch: "C4" for 60."""
    return f"{PITCH_CLASSES[pitch % 12]}{pitch // 12 - 1}"


def parse_note(name: str) -> int:
    """MIDI pitch of a scientific pitch name such as "C4", "F#3", "Bb2"."""
    flats = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#"}
    head, octave = name[:-1], name[-1]
    if name[-2:-1] == "-":  # "C-1"
        head, octave = name[:-2], name[-2:]
    head = flats.get(head, head)
    if head not in PITCH_CLASSES or not octave.lstrip("-").isdigit():
        raise InvalidInputError(f"{name!r} is not a note name; write it like 'C4', 'F#3' or 'Bb2'.")
    return PITCH_CLASSES.index(head) + 12 * (int(octave) + 1)


def top_voice(notes: Iterable[Note]) -> tuple[Note, ...]:
    """The highest line of possibly overlapping notes ("skyline"): a note is kept if nothing higher sounds as it
    starts, and each kept note is cut where the next kept note starts."""
    ordered = sorted(notes, key=lambda n: (n.start, -n.pitch))
    kept: list[Note] = []
    for note in ordered:
        if kept and note.start == kept[-1].start:
            continue  # a lower note of the same chord
        if any(other.pitch > note.pitch and other.start < note.start < other.end for other in kept[-8:]):
            continue
        if kept and kept[-1].end > note.start:
            last = kept[-1]
            kept[-1] = Note(last.pitch, last.start, note.start, last.velocity)
        kept.append(note)
    return tuple(kept)


def describe_notes(notes: Iterable[Note], limit: int = 24) -> str:
    """Notes in words: "C4 0.00-0.50, D4 0.50-1.00, ..." (at most ``limit``, then how many more)."""
    notes = list(notes)
    words = [f"{n.name} {n.start:.2f}-{n.end:.2f}" for n in notes[:limit]]
    more = f" and {len(notes) - limit} more" if len(notes) > limit else ""
    return ", ".join(words) + more
