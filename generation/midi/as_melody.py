"""Notes as the melody a model follows: a MIDI file's tune, or a hum transcribed and tidied.

Either way the model is given the notes' chroma (``chroma.notes_chroma``), not audio; the recipe records the file,
its hash and every note used, so a replay of the same file gives the same chroma and the same audio.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInputError
from ..model.chroma import ChromaExtractor
from ..model.types import Melody
from .chroma import notes_chroma, sounding
from .midi_file import MIDI_SUFFIXES, read_midi_melody
from .notes import Note, describe_notes
from .tidy import notes_key, tidy_notes

MAX_NOTES_NAMED = 12  # notes spelt out in the description; the recipe keeps them all


@dataclass(frozen=True, eq=False)
class NotesMelody:
    """A melody given as notes: the chroma the model reads, what the recipe keeps, and how to show it."""

    notes: tuple[Note, ...]
    chroma: np.ndarray  # [frames, num_chroma] one-hot at the extractor's frame rate
    sample_rate: int  # the extractor's rate and hop, which place the frames in time
    hop_length: int
    record: dict[str, Any]  # the recipe's melody fields
    description: str  # for the summary: where the notes came from, the notes, the key
    messages: tuple[str, ...] = field(default=())  # notes for the person (what was tidied)

    def melody(self) -> Melody:
        """The engine's input: the chroma, with no samples."""
        return Melody(np.zeros(0, np.float32), self.sample_rate, chroma=self.chroma, hop_length=self.hop_length)

    def picture(self) -> np.ndarray:
        """The chroma picture of the notes, as a recording's is drawn (``generation.melody``)."""
        from ..audio.pictures import chroma_picture
        from ..melody import PITCH_CLASSES

        frame_seconds = self.hop_length / self.sample_rate
        heard = sounding(self.notes, len(self.chroma), _extractor(self.sample_rate, self.hop_length))
        return chroma_picture(self.chroma, heard, frame_seconds, PITCH_CLASSES, title=self.description)


def is_midi(path: str | Path | None) -> bool:
    """Whether a melody path names a MIDI file (by its suffix, as an upload keeps it)."""
    return path is not None and Path(str(path)).suffix.lower() in MIDI_SUFFIXES


def melody_from_midi(path: str | Path, extractor: ChromaExtractor | None = None) -> NotesMelody:
    """A MIDI file's melody (its "melody" track, else the busiest track's top voice) as the model's chroma."""
    extractor = extractor or ChromaExtractor()
    found = read_midi_melody(path)
    notes = _within(found.notes, extractor)
    voice = " (its top voice)" if found.top_voice else ""
    description = f"{len(notes)} notes from the track '{found.track}'{voice}: {_spelt(notes)}"
    record = {
        "file": found.source_name,
        "sha256": found.digest,
        "kind": "midi",
        "track": found.track,
        "top_voice": found.top_voice,
        "seconds_used": round(max(n.end for n in notes), 3),
        "notes": _note_list(notes),
    }
    return _as_melody(notes, extractor, record, description)


def tidied_hum(
    samples: np.ndarray,
    rate: int,
    record: dict[str, Any],
    bpm: float | None = None,
    extractor: ChromaExtractor | None = None,
) -> NotesMelody:
    """A hum transcribed, its notes moved onto its key's scale and onto a 1/8 grid at ``bpm`` (or the hum's own
    measured tempo), as the model's chroma; ``record`` is the recording's recipe fields, extended here."""
    from ..audio.tempo import measure_tempo
    from .transcribe import transcribe_hum

    extractor = extractor or ChromaExtractor()
    sung = transcribe_hum(samples, rate)
    first_beat = 0.0
    if bpm is None:
        tempo = measure_tempo(np.asarray(samples, np.float32)[None, :], rate)
        bpm, first_beat = tempo.bpm, (tempo.beats[0] if tempo.beats else 0.0)
    tidied = tidy_notes(sung, notes_key(sung), bpm, first_beat % (60.0 / bpm) if bpm else 0.0)
    notes = _within(tidied.notes, extractor)
    said = f"Tidied the hum: {tidied.describe()}."
    description = f"{len(notes)} notes, tidied: {_spelt(notes)}"
    record = {**record, "cleanup": True, "tidied": tidied.describe(), "notes": _note_list(notes)}
    return _as_melody(notes, extractor, record, description, (said,))


def _as_melody(
    notes: tuple[Note, ...],
    extractor: ChromaExtractor,
    record: dict[str, Any],
    description: str,
    messages: tuple[str, ...] = (),
) -> NotesMelody:
    chroma = notes_chroma(notes, extractor)[0].numpy()
    chroma.setflags(write=False)
    return NotesMelody(notes, chroma, extractor.sampling_rate, extractor.hop_length, record, description, messages)


def _within(notes: tuple[Note, ...], extractor: ChromaExtractor) -> tuple[Note, ...]:
    """The notes that start within the chroma's window (the first ``chunk_length`` seconds)."""
    kept = tuple(n for n in notes if n.start < extractor.chunk_length)
    if not kept:
        raise InvalidInputError(
            f"The melody's first note starts after {extractor.chunk_length} s; the model follows the first "
            f"{extractor.chunk_length} s only. Move the tune to the start."
        )
    return kept


def _spelt(notes: tuple[Note, ...]) -> str:
    key = notes_key(notes)
    return f"{describe_notes(notes, MAX_NOTES_NAMED)}; " + (f"likely {key}." if key else "no clear key.")


def _note_list(notes: tuple[Note, ...]) -> list[list[float]]:
    """[pitch, start, end] of each note, as the recipe keeps them."""
    return [[n.pitch, round(n.start, 4), round(n.end, 4)] for n in notes]


def _extractor(sample_rate: int, hop_length: int) -> ChromaExtractor:
    return ChromaExtractor(sampling_rate=sample_rate, hop_length=hop_length)
