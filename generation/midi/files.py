"""MIDI files on disk: written whole or not at all, and an uploaded recording transcribed into one.

``transcribe_upload`` is ``/transcribe``: the upload decoded as a melody is (mono, trimmed, at most the server's
longest track); a clean hum becomes one "melody" track, anything else is split into Demucs stems when the
separator's weights are there (else by band, with a note) and transcribed part by part; the .mid has named tracks
and the measured tempo. It answers with the file, a piano roll and the notes in words.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.tempo import TempoReport, measure_tempo
from ..errors import InvalidInputError, ModelLoadError
from .midi_file import TempoMap, midi_bytes
from .notes import Note, NoteTrack
from .transcribe import HUM, Transcription, transcribe_audio, transcribe_hum, transcribe_line

TRANSCRIBE_RATE = 32_000  # Hz uploads are decoded at for transcription, MusicGen's own
MIN_TRANSCRIBE_SECONDS = 0.5  # shorter than this holds no note worth writing
MIN_DRUM_HITS = 4  # with no pitch heard, fewer hits than this are bumps in noise, not a beat
HUM_PROGRAM = 52  # General MIDI "choir aahs": a hummed melody's track


MIDI_FROM_BANDS = (
    "The MIDI file's bass and lead come from band-limited parts of the mix, not from Demucs stems (ask for stems, "
    "with the Demucs weights installed, to have them from the stems), so they may pick up other instruments' notes."
)


@dataclass(frozen=True, eq=False)
class Transcribed:
    """What ``/transcribe`` answers with."""

    midi_path: Path
    picture: np.ndarray  # the piano roll, RGB
    words: str  # the notes in words
    transcription: Transcription

    @property
    def files(self) -> list[Path]:
        return [self.midi_path]


def write_midi(path: str | Path, data: bytes) -> Path:
    """Write MIDI bytes to ``path`` through a temporary file beside it: the file is whole or not there."""
    from ..audio.loop_marker import _replace  # the one atomic write of bytes

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace(path, data)
    return path


def transcription_midi(found: Transcription, melody: NoteTrack | None = None, title: str = "Moodtape") -> bytes:
    """A transcription as MIDI bytes: ``melody`` first when given, then lead, bass, chords and drums, at its tempo."""
    bpm = found.tempo.bpm
    tempo = TempoMap(bpm, found.tempo.downbeats[0] if found.tempo.downbeats else 0.0) if bpm else TempoMap()
    order = {"lead": 0, "bass": 1, "drums": 2}
    tracks = sorted(found.tracks, key=lambda t: order.get(t.name, 3))
    return midi_bytes([*([melody] if melody else []), *tracks], tempo, chords=found.chords, title=title)


def track_midi(
    audio: np.ndarray,
    rate: int,
    tempo: TempoReport,
    stems: Mapping[str, np.ndarray] | None,
    melody: Sequence[Note] = (),
    title: str = "Moodtape",
) -> bytes:
    """A finished track's MIDI file: the melody it followed (when there was one), then its lead, bass, chords and
    drums, from its Demucs ``stems`` when there are any, else from bands of the mix; at its measured ``tempo``."""
    found = transcribe_audio(audio, rate, stems=stems or None, tempo=tempo)
    followed = NoteTrack("melody", tuple(melody), program=HUM_PROGRAM) if melody else None
    return transcription_midi(found, followed, title)


def followed_notes(notes_melody, heard) -> tuple[Note, ...]:
    """The notes of the melody a track followed: a MIDI file's or a tidied hum's, else those heard in the
    recording it was given (``heard``: a ``PreparedMelody``), else none."""
    if notes_melody is not None:
        return notes_melody.notes
    if heard is not None:
        return transcribe_line(np.asarray(heard.samples), heard.sample_rate, HUM)
    return ()


def notes_on_take(notes: Sequence[Note], tempo_record: Mapping, seconds: float) -> tuple[Note, ...]:
    """``notes`` timed as the finished take plays them: a take sped up to a BPM by ``tempo_record["speed"]``
    has every time divided by that speed. A loop cut from it (``tempo_record["loop"]["start_seconds"]``, lasting
    ``seconds``) keeps the notes that start inside it, each cut at its end."""
    speed = float(tempo_record.get("speed") or 1.0)  # 1 when the take was left at its own tempo
    loop = tempo_record.get("loop")
    start = float(loop["start_seconds"]) if loop else 0.0
    last = seconds if loop else float("inf")  # a whole take keeps every note of the melody it was given
    timed = []
    for note in notes:
        begin, end = note.start / speed - start, min(note.end / speed - start, last)
        if 0.0 <= begin < end:
            timed.append(Note(note.pitch, begin, end, note.velocity))
    return tuple(timed)


def transcribe_upload(path: str | Path, folder: Path, separator, max_seconds: float) -> Transcribed:
    """Transcribe an uploaded recording into ``folder``: see the module docstring."""
    from ..audio.piano_roll import piano_roll_picture
    from ..audio.uploads import load_audio
    from ..melody_stems import is_clean_hum

    if not path:
        raise InvalidInputError("recording is required: an audio file sent with gradio_client.handle_file('hum.wav').")
    loaded = load_audio(path, TRANSCRIBE_RATE, max_seconds=max_seconds, min_seconds=MIN_TRANSCRIBE_SECONDS)
    if is_clean_hum(loaded.samples, TRANSCRIBE_RATE):  # one voice: its notes are the melody, nothing else is there
        found = Transcription(
            (NoteTrack("melody", transcribe_hum(loaded.samples, TRANSCRIBE_RATE), program=HUM_PROGRAM),),
            (),
            measure_tempo(loaded.samples[None, :], TRANSCRIBE_RATE),
            loaded.used_seconds,
        )
    else:
        found = transcribe_audio(loaded.samples, TRANSCRIBE_RATE, stems=_stems(loaded.samples, separator))
    pitched = any(not t.drums for t in found.tracks) or any(chord.name != "N" for chord in found.chords)
    if not pitched and sum(len(t.notes) for t in found.tracks) < MIN_DRUM_HITS:
        raise InvalidInputError(
            f"No notes heard in {loaded.source_name!r}: it has no clear pitch or beat. Upload a hum, a melody "
            "or a song."
        )
    found = Transcription(found.tracks, found.chords, found.tempo, found.seconds, (*loaded.notes, *found.notes))
    stem = Path(loaded.source_name).stem or "transcription"
    midi_path = write_midi(folder / f"{stem}.mid", transcription_midi(found, title=stem))
    picture = piano_roll_picture(found.tracks, found.chords, title=f"Notes heard in {loaded.source_name}")
    return Transcribed(midi_path, picture, found.describe(), found)


def _stems(samples: np.ndarray, separator) -> dict[str, np.ndarray] | None:
    """Demucs stems of a mono recording, or None when the separator cannot be loaded."""
    if separator is None:
        return None
    try:
        return separator.separate(np.asarray(samples)[None, :], TRANSCRIBE_RATE)
    except ModelLoadError:
        return None
