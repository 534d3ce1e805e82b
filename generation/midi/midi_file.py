"""Standard MIDI files: named tracks with a tempo map written as bytes, and a melody read back from an upload.

Written files are format 1 at ``TICKS_PER_BEAT``: a conductor track (tempo, 4/4, title), then one track per part,
each named ("melody", "bass", "lead", "chords", "drums"); drums play on channel 10 and the chords track carries
each chord's name as a marker. The tempo map is the measured tempo. When the audio's first downbeat is not at
0 s, the file starts with a pickup whose beats fill exactly the time before it, so every later bar line of the
MIDI file falls on a downbeat of the WAV.

Reading refuses, before parsing events, a file over ``MAX_MIDI_BYTES`` or with more than ``MAX_TRACKS`` track
chunks, and after parsing one with more than ``MAX_EVENTS`` events; a file that is not MIDI, is cut short, or
holds no notes (or only drums) is refused with a message that says so.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError, brief
from .notes import DRUM_CHANNEL, Chord, Note, NoteTrack, top_voice

TICKS_PER_BEAT = 480  # pulses per quarter note: 1 ms resolution at 125 BPM
BEATS_PER_BAR = 4  # files are written in 4/4, as tracks are measured
DEFAULT_BPM = 120.0  # the tempo written when none was measured (MIDI's own default)
MAX_MIDI_BYTES = 1_000_000  # a dense 30-minute piano piece is about 300 KB; millions of events are far more
MAX_TRACKS = 256  # track chunks; a full orchestral score has fewer than 64
MAX_EVENTS = 200_000  # events over all tracks
MIDI_SUFFIXES = (".mid", ".midi")
MELODY_TRACK = "melody"  # the track a melody is read from when a file has one by this name


@dataclass(frozen=True)
class TempoMap:
    """How seconds map to ticks: a steady ``bpm`` whose bars start at ``first_downbeat`` seconds.

    When ``first_downbeat`` is later than 0 s, a pickup of ``pickup_beats`` beats (the whole number of beats
    nearest the time before it, at least one) fills the time before it at a slightly different tempo, in a short
    first bar when it is not whole bars.
    """

    bpm: float = DEFAULT_BPM
    first_downbeat: float = 0.0

    def __post_init__(self) -> None:
        if not 1.0 <= self.bpm <= 1_000.0:
            raise InvalidInputError(f"A MIDI tempo must be from 1 to 1000 BPM, got {self.bpm!r}.")
        if not 0.0 <= self.first_downbeat < 3_600.0:
            raise InvalidInputError(f"The first downbeat must be from 0 s to an hour in, got {self.first_downbeat!r}.")

    @property
    def beat_seconds(self) -> float:
        return 60.0 / self.bpm

    @property
    def pickup_beats(self) -> int:
        """Beats before the first downbeat; 0 when the audio starts on a downbeat (within 5 ms)."""
        if self.first_downbeat < 0.005:
            return 0
        return max(1, round(self.first_downbeat / self.beat_seconds))

    def ticks(self, seconds: float) -> int:
        """The tick at ``seconds`` from the start."""
        pickup = self.pickup_beats
        if pickup and seconds < self.first_downbeat:
            return round(seconds / self.first_downbeat * pickup * TICKS_PER_BEAT)
        return round((pickup + (seconds - self.first_downbeat) / self.beat_seconds) * TICKS_PER_BEAT)

    def meter_events(self) -> list[tuple[int, int]]:
        """(tick, beats per bar) of each time signature: a short first bar when the pickup is not whole bars."""
        partial = self.pickup_beats % BEATS_PER_BAR
        return [(0, partial), (partial * TICKS_PER_BEAT, BEATS_PER_BAR)] if partial else [(0, BEATS_PER_BAR)]

    def tempo_events(self) -> list[tuple[int, int]]:
        """(tick, microseconds per beat) of each tempo change."""
        steady = round(self.beat_seconds * 1e6)
        pickup = self.pickup_beats
        if not pickup:
            return [(0, steady)]
        return [(0, round(self.first_downbeat / pickup * 1e6)), (pickup * TICKS_PER_BEAT, steady)]


def midi_bytes(
    tracks: Sequence[NoteTrack],
    tempo: TempoMap | None = None,
    *,
    chords: Sequence[Chord] = (),
    title: str = "Moodtape",
) -> bytes:
    """A format-1 standard MIDI file of ``tracks`` (and a "chords" track from ``chords``) as bytes."""
    import mido

    tempo = tempo or TempoMap()
    song = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    conductor = [(0, mido.MetaMessage("track_name", name=title[:120]))]
    for tick, beats in tempo.meter_events():
        conductor.append((tick, mido.MetaMessage("time_signature", numerator=beats, denominator=4)))
    conductor += [(tick, mido.MetaMessage("set_tempo", tempo=us)) for tick, us in tempo.tempo_events()]
    song.tracks.append(_track(conductor))
    parts = list(tracks)
    if chords:
        parts.append(chord_track(chords))
    pitched_channels = iter(c for c in range(16) if c != DRUM_CHANNEL)
    for part in parts:
        channel = DRUM_CHANNEL if part.drums else next(pitched_channels, 0)
        events = [(0, mido.MetaMessage("track_name", name=part.name))]
        if not part.drums:
            events.append((0, mido.Message("program_change", channel=channel, program=part.program)))
        for note in part.notes:
            start, end = tempo.ticks(note.start), max(tempo.ticks(note.end), tempo.ticks(note.start) + 1)
            events.append((start, mido.Message("note_on", channel=channel, note=note.pitch, velocity=note.velocity)))
            events.append((end, mido.Message("note_off", channel=channel, note=note.pitch, velocity=0)))
        if part.name == "chords":
            for chord in chords:
                if chord.name != "N":
                    events.append((tempo.ticks(chord.start), mido.MetaMessage("marker", text=chord.name)))
        song.tracks.append(_track(events))
    out = io.BytesIO()
    song.save(file=out)
    return out.getvalue()


def chord_track(chords: Iterable[Chord]) -> NoteTrack:
    """Block chords: one chord's notes held for as long as the same chord lasts."""
    notes: list[Note] = []
    held: Chord | None = None
    for chord in [*chords, Chord("N", float("inf"), float("inf"), ())]:
        if held is not None and (chord.name != held.name or chord.start > held.end + 1e-6):
            notes += [Note(p, held.start, held.end, 70) for p in held.pitches]
            held = None
        if chord.name == "N":
            continue
        held = Chord(chord.name, held.start, chord.end, chord.pitches) if held else chord
    return NoteTrack("chords", tuple(notes), program=0)


def _track(events: list[tuple[int, object]]):
    """A mido track from (absolute tick, message) pairs: note-offs before note-ons at one tick, delta times."""
    import mido

    def order(item: tuple[int, object]) -> tuple[int, int]:
        tick, message = item
        kind = getattr(message, "type", "")
        return tick, (0 if getattr(message, "is_meta", False) else 1 if kind == "note_off" else 2)

    track, now = mido.MidiTrack(), 0
    for tick, message in sorted(events, key=order):
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


# -- Reading -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MidiContents:
    """What a MIDI file holds: its pitched and drum tracks with times in seconds, tempo and markers."""

    tracks: tuple[NoteTrack, ...]  # tracks with notes; a track playing on channel 10 is drums
    bpm: float  # the first tempo in the file
    markers: tuple[tuple[float, str], ...]  # (seconds, text) of marker events
    name: str  # the file's name
    digest: str  # sha256 of the file's bytes


@dataclass(frozen=True)
class MidiMelody:
    """A melody read from a MIDI file: the notes to follow and where they came from."""

    notes: tuple[Note, ...]
    track: str  # the name of the track the notes came from (or "track N")
    source_name: str  # the file name
    digest: str  # sha256 of the file's bytes
    top_voice: bool  # True: the track held chords and its top voice was taken

    @property
    def seconds(self) -> float:
        return max(n.end for n in self.notes)


def read_midi(path: str | Path) -> MidiContents:
    """Parse a standard MIDI file into note tracks in seconds; refuses damaged, oversized and empty files."""
    path = Path(path)
    data = _read_bytes(path)
    _check_chunks(data, path.name)
    import mido

    try:
        song = mido.MidiFile(file=io.BytesIO(data), clip=True)
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError, struct.error) as e:
        raise InvalidInputError(
            f"{path.name!r} is not a readable MIDI file ({brief(e)}); export it again from your DAW as a standard "
            "MIDI file (.mid)."
        ) from e
    events = sum(len(track) for track in song.tracks)
    if events > MAX_EVENTS:
        raise InvalidInputError(
            f"{path.name!r} holds {events:,} MIDI events; this server reads at most {MAX_EVENTS:,}. "
            "Export just the melody's track."
        )
    tempos = sorted(
        (tick, msg.tempo) for track in song.tracks for tick, msg in _absolute(track) if msg.type == "set_tempo"
    )
    seconds = _clock(tempos, song.ticks_per_beat)
    tracks, markers = [], []
    for index, track in enumerate(song.tracks):
        name, notes, drum_notes = f"track {index + 1}", [], []
        sounding: dict[tuple[int, int], tuple[int, int]] = {}
        for tick, msg in _absolute(track):
            if msg.type == "track_name" and msg.name.strip():
                name = msg.name.strip()
            elif msg.type == "marker":
                markers.append((seconds(tick), msg.text))
            elif msg.type == "note_on" and msg.velocity > 0:
                sounding[(msg.channel, msg.note)] = (tick, msg.velocity)
            elif msg.type in ("note_off", "note_on") and (msg.channel, msg.note) in sounding:
                start, velocity = sounding.pop((msg.channel, msg.note))
                if tick > start:
                    note = Note(msg.note, seconds(start), seconds(tick), max(1, velocity))
                    (drum_notes if msg.channel == DRUM_CHANNEL else notes).append(note)
        if notes:
            tracks.append(NoteTrack(name, tuple(notes)))
        if drum_notes:
            tracks.append(NoteTrack(name, tuple(drum_notes), drums=True))
    bpm = 60e6 / tempos[0][1] if tempos and tempos[0][0] == 0 else DEFAULT_BPM
    digest = hashlib.sha256(data).hexdigest()
    return MidiContents(tuple(tracks), bpm, tuple(sorted(markers)), path.name, digest)


def read_midi_melody(path: str | Path) -> MidiMelody:
    """The melody of a MIDI file: the track named "melody", else the top voice of the busiest pitched track."""
    contents = read_midi(path)
    pitched = [t for t in contents.tracks if not t.drums]
    if not pitched:
        if contents.tracks:
            raise InvalidInputError(
                f"{contents.name!r} holds only drums (channel 10), which have no melody to follow; "
                "give a MIDI file with the tune on a pitched track."
            )
        raise InvalidInputError(f"{contents.name!r} holds no notes; give a MIDI file with the tune in it.")
    named = [t for t in pitched if t.name.lower() == MELODY_TRACK]
    chosen = named[0] if named else max(pitched, key=lambda t: len(t.notes))
    voice = top_voice(chosen.notes)
    return MidiMelody(voice, chosen.name, contents.name, contents.digest, len(voice) < len(chosen.notes))


def _read_bytes(path: Path) -> bytes:
    if path.suffix.lower() not in MIDI_SUFFIXES:
        raise InvalidInputError(f"{path.name!r} is not a MIDI file; give a .mid or .midi file.")
    if not path.is_file():
        raise InvalidInputError(f"The MIDI file {path.name!r} was not found; upload it again.")
    size = path.stat().st_size
    if size == 0:
        raise InvalidInputError(f"The MIDI file {path.name!r} is empty (0 bytes); export it again.")
    if size > MAX_MIDI_BYTES:
        raise InvalidInputError(
            f"{path.name!r} is {size / 1e6:.1f} MB; this server reads MIDI files of at most "
            f"{MAX_MIDI_BYTES / 1e6:g} MB. Export just the melody's track."
        )
    return path.read_bytes()


def _check_chunks(data: bytes, name: str) -> None:
    """The header and the chunk layout, read without parsing any event: refuses non-MIDI data and too many tracks."""
    if len(data) < 14 or data[:4] != b"MThd":
        raise InvalidInputError(
            f"{name!r} is not a standard MIDI file (it does not start with 'MThd'); export it again as .mid."
        )
    header_length, _, declared, division = struct.unpack(">IHHH", data[4:14])
    if declared > MAX_TRACKS:
        raise InvalidInputError(
            f"{name!r} declares {declared:,} tracks; this server reads at most {MAX_TRACKS}. "
            "Export just the melody's track."
        )
    if division == 0:
        raise InvalidInputError(f"{name!r} has a zero time division, so its notes have no timing; export it again.")
    position, chunks = 8 + header_length, 0
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position + 4 : position + 8])
        chunks += data[position : position + 4] == b"MTrk"
        if chunks > MAX_TRACKS:
            raise InvalidInputError(
                f"{name!r} holds more than {MAX_TRACKS} tracks; this server reads at most {MAX_TRACKS}. "
                "Export just the melody's track."
            )
        position += 8 + length
    if chunks == 0:
        raise InvalidInputError(f"{name!r} has no tracks; export it again with the melody in it.")


def _absolute(track) -> Iterable[tuple[int, object]]:
    tick = 0
    for msg in track:
        tick += msg.time
        yield tick, msg


def _clock(tempos: list[tuple[int, int]], ticks_per_beat: int):
    """A function from ticks to seconds under the file's tempo changes (MIDI's 120 BPM before the first)."""
    marks = [(0, 0.0, 500_000)]
    for tick, us in tempos:
        last_tick, last_seconds, last_us = marks[-1]
        marks.append((tick, last_seconds + (tick - last_tick) * last_us / 1e6 / ticks_per_beat, us))

    def seconds(tick: int) -> float:
        for mark_tick, mark_seconds, us in reversed(marks):
            if tick >= mark_tick:
                return mark_seconds + (tick - mark_tick) * us / 1e6 / ticks_per_beat
        return 0.0

    return seconds
