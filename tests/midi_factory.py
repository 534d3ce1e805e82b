"""Music whose notes are known: scores written as MIDI files, then rendered to audio from those files.

A score is a hummed tune (vibrato, breath noise, glides into legato notes, repeated notes re-sung), a bass line,
piano block chords and a drum pattern (kick, snare, closed hi-hat) at one tempo, 4/4. ``write_score`` writes it
with ``generation.midi.midi_file.midi_bytes``; ``render`` reads a MIDI file back with pretty_midi (not with the
code under test) and synthesises each named track, so the truth a test scores against is what the file holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generation.midi.midi_file import TempoMap, midi_bytes
from generation.midi.notes import HIHAT, KICK, SNARE, Chord, Note, NoteTrack, parse_note

RATE = 32_000  # Hz, MusicGen's rate
BPM = 100.0
BEAT = 60.0 / BPM
# A tune over C Am F G, with repeated notes, rests and steps and leaps; (name or "-", beats)
TUNE = (
    ("E4", 1), ("E4", 1), ("G4", 1), ("E4", 1),
    ("C5", 1.5), ("B4", 0.5), ("A4", 1), ("A4", 1),
    ("F4", 1), ("A4", 1), ("C5", 1), ("-", 1),
    ("B4", 1), ("G4", 0.5), ("G4", 0.5), ("D4", 1), ("G4", 1),
    ("E4", 0.5), ("F4", 0.5), ("G4", 1), ("G4", 1), ("C5", 1),
    ("A4", 2), ("E4", 1), ("C4", 1),
)  # fmt: skip
PROGRESSION = ("C", "Am", "F", "G", "C", "Am", "F", "G")  # one chord per bar
CHORD_NOTES = {"C": ("C3", "E3", "G3"), "Am": ("A2", "C3", "E3"), "F": ("F2", "A2", "C3"), "G": ("G2", "B2", "D3")}
CHORD_ROOTS = {"C": "C2", "Am": "A1", "F": "F1", "G": "G1"}
GLIDE_SECONDS = 0.06  # a legato note slides in from the one before over this long
STEM_PARTS = ("melody", "bass", "chords", "drums")


@dataclass(frozen=True)
class Score:
    """The parts of one piece, their tempo and the chord per bar."""

    tracks: tuple[NoteTrack, ...]
    chords: tuple[Chord, ...]
    bpm: float
    seconds: float

    def track(self, name: str) -> NoteTrack:
        return next(t for t in self.tracks if t.name == name)


def score(bars: int = 4, bpm: float = BPM, lead: float = 0.0, pattern: str = "rock") -> Score:
    """A piece of ``bars`` bars: tune, bass, chords and drums (one of ``DRUM_PATTERNS``), starting ``lead`` s in."""
    beat = 60.0 / bpm
    melody, time = [], lead
    for name, beats in TUNE:
        if time >= lead + bars * 4 * beat - 1e-6:
            break
        if name != "-":
            melody.append(Note(parse_note(name), time, time + beats * beat * 0.97, 96))
        time += beats * beat
    chords, bass, drums = [], [], []
    for bar in range(bars):
        start = lead + bar * 4 * beat
        name = PROGRESSION[bar % len(PROGRESSION)]
        pitches = tuple(parse_note(n) for n in CHORD_NOTES[name])
        chords.append(Chord(name, start, start + 4 * beat, pitches))
        root = parse_note(CHORD_ROOTS[name])
        for step, interval, beats in ((0, 0, 2), (2, 0, 0.5), (2.5, 12, 0.5), (3, 7, 1)):
            at = start + step * beat
            bass.append(Note(root + interval, at, at + beats * beat * 0.9, 100))
        drums += _drum_bar(pattern, bar, start, beat)
    drums = sorted(set(drums), key=lambda n: (n.start, n.pitch))
    tracks = (
        NoteTrack("melody", tuple(melody), program=52),
        NoteTrack("bass", tuple(bass), program=33),
        NoteTrack("chords", tuple(n for c in chords for n in (Note(p, c.start, c.end, 70) for p in c.pitches))),
        NoteTrack("drums", tuple(drums), drums=True),
    )
    return Score(tracks, tuple(chords), bpm, lead + bars * 4 * beat + 0.5)


# Per pattern: steps per bar, then (drum, steps struck, velocity, on odd bars only)
DRUM_PATTERNS = {
    "rock": (8, ((HIHAT, (0, 1, 2, 3, 4, 7), 70, False), (KICK, (0, 4), 110, False), (KICK, (7,), 110, True),
                 (SNARE, (2, 6), 100, False))),  # eighth hats with gaps: a snare alone, and nothing at all
    "dance": (8, ((HIHAT, (1, 3, 5, 7), 80, False), (KICK, (0, 2, 4, 6), 115, False), (SNARE, (2, 6), 95, False))),
    "funk": (16, ((HIHAT, (1, 3, 5, 9, 11, 13), 75, False), (HIHAT, (0, 2, 4, 6, 8, 10, 12, 14), 60, False),
                  (KICK, (0, 3, 10), 110, False), (KICK, (13,), 110, True), (SNARE, (4, 12), 100, False),
                  (SNARE, (9,), 60, False))),  # sixteenth hats, syncopated kicks, a soft ghost snare
    "kicks": (8, ((KICK, (0, 2, 4, 6), 115, False), (KICK, (7,), 100, True))),  # a kick-only loop: no snare or hat
}  # fmt: skip


def _drum_bar(pattern: str, bar: int, start: float, beat: float) -> list[Note]:
    """One bar of a pattern of ``DRUM_PATTERNS``: "rock" (kick on 1 and 3, snare on 2 and 4), "dance" (kick on
    every beat, hats between), "funk" or "kicks" (a kick on every beat, no snare or hat)."""
    if pattern not in DRUM_PATTERNS:
        raise ValueError(f"pattern must be one of {sorted(DRUM_PATTERNS)}, got {pattern!r}")
    steps, parts = DRUM_PATTERNS[pattern]
    step = 4 * beat / steps
    return [
        Note(key, start + at * step, start + at * step + (0.05 if key == HIHAT else 0.1), velocity)
        for key, struck, velocity, odd_only in parts
        if bar % 2 or not odd_only
        for at in struck
    ]


def write_score(path: str | Path, piece: Score, parts: tuple[str, ...] = STEM_PARTS) -> Path:
    """Write the named parts of ``piece`` as a MIDI file at its tempo."""
    path = Path(path)
    tracks = [t for t in piece.tracks if t.name in parts]
    path.write_bytes(midi_bytes(tracks, TempoMap(piece.bpm)))
    return path


def render(
    path: str | Path, rate: int = RATE, levels: dict[str, float] | None = None, seed: int = 0, seconds: float = 0.0
) -> np.ndarray:
    """Mono float32 audio of a MIDI file's named tracks, read with pretty_midi; ``levels`` scales each part.

    The audio lasts ``seconds``, or half a second past the last note when that is longer."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(str(path))
    levels = levels or {}
    rng = np.random.default_rng(seed)
    length = round(max(seconds, midi.get_end_time() + 0.5) * rate)
    out = np.zeros(length)
    for instrument in midi.instruments:
        notes = [Note(n.pitch, n.start, n.end, n.velocity) for n in instrument.notes]
        name = instrument.name
        synth = {"melody": hum_part, "lead": hum_part, "bass": bass_part, "chords": piano_part}.get(name, piano_part)
        part = drum_part(notes, length, rate, rng) if instrument.is_drum else synth(notes, length, rate, rng)
        out += levels.get(name, 1.0) * part
    return (0.8 * out / max(1e-9, float(np.abs(out).max()))).astype(np.float32)


def render_parts(piece: Score, folder: Path, rate: int = RATE) -> dict[str, np.ndarray]:
    """Each part alone, rendered from its own MIDI file, at its mix level (not normalised)."""
    parts = {}
    for name in STEM_PARTS:
        path = write_score(folder / f"{name}.mid", piece, (name,))
        parts[name] = render(path, rate, seconds=piece.seconds) * MIX_LEVELS[name]
    return parts


MIX_LEVELS = {"melody": 1.0, "bass": 0.8, "chords": 0.35, "drums": 0.8}  # a song's balance: the tune on top


def mix(parts: dict[str, np.ndarray]) -> np.ndarray:
    total = sum(parts.values())
    return (0.8 * total / max(1e-9, float(np.abs(total).max()))).astype(np.float32)


def hum_part(notes: list[Note], length: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A voice on "mm": harmonics, 5.5 Hz vibrato, a glide into each legato note, breath noise."""
    out = np.zeros(length)
    previous: Note | None = None
    for note in notes:
        a, b = round(note.start * rate), min(length, round(note.end * rate))
        t = np.arange(b - a) / rate
        semitones = np.full(len(t), float(note.pitch))
        legato = previous is not None and note.start - previous.end < 0.1 and previous.pitch != note.pitch
        if legato:
            slide = t < GLIDE_SECONDS
            semitones[slide] = previous.pitch + (note.pitch - previous.pitch) * t[slide] / GLIDE_SECONDS
        semitones += 0.15 * np.sin(2 * np.pi * 5.5 * t + rng.uniform(0, 2 * np.pi))
        hz = 440.0 * 2 ** ((semitones - 69) / 12)
        phase = 2 * np.pi * np.cumsum(hz) / rate
        voice = sum(g * np.sin(k * phase) for k, g in enumerate((1.0, 0.5, 0.3, 0.15, 0.08), 1))
        attack = 0.015 if legato else 0.04
        out[a:b] += note.velocity / 127 * voice * _envelope(len(t), rate, attack, 0.05)
        previous = note
    return out + 0.01 * np.abs(out).max() * rng.standard_normal(length)


def bass_part(notes: list[Note], length: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A plucked electric bass: a few harmonics decaying, the upper ones faster."""
    out = np.zeros(length)
    for note in notes:
        a, b = round(note.start * rate), min(length, round(note.end * rate))
        t = np.arange(b - a) / rate
        partials = ((1, 1.0), (2, 0.5), (3, 0.25))
        tone = sum(g * np.sin(2 * np.pi * k * note.hz * t) * np.exp(-t * k / 0.8) for k, g in partials)
        out[a:b] += note.velocity / 127 * tone * _envelope(len(t), rate, 0.005, 0.03)
    return out


def piano_part(notes: list[Note], length: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A soft electric piano: harmonics with a slow decay."""
    out = np.zeros(length)
    for note in notes:
        a, b = round(note.start * rate), min(length, round(note.end * rate))
        t = np.arange(b - a) / rate
        tone = sum(g * np.sin(2 * np.pi * k * note.hz * t) for k, g in ((1, 1.0), (2, 0.4), (3, 0.2), (4, 0.1)))
        out[a:b] += note.velocity / 127 * tone * np.exp(-t / 2.5) * _envelope(len(t), rate, 0.01, 0.05)
    return out


def drum_part(notes: list[Note], length: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Kick (a falling sine), snare (a 190 Hz body and noise) and closed hi-hat (bright noise) per General MIDI."""
    out = np.zeros(length)
    for note in notes:
        a = round(note.start * rate)
        if note.pitch == KICK:
            t = np.arange(round(0.15 * rate)) / rate
            sound = np.sin(2 * np.pi * np.cumsum(50.0 + 90.0 * np.exp(-t / 0.03)) / rate) * np.exp(-t / 0.05)
        elif note.pitch == SNARE:
            t = np.arange(round(0.12 * rate)) / rate
            sound = (0.6 * rng.standard_normal(len(t)) + 0.4 * np.sin(2 * np.pi * 190.0 * t)) * np.exp(-t / 0.03)
        else:
            t = np.arange(round(0.04 * rate)) / rate
            sound = 0.3 * np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t / 0.01)
        b = min(length, a + len(sound))
        out[a:b] += note.velocity / 127 * sound[: b - a]
    return out


def _envelope(n: int, rate: int, attack: float, release: float) -> np.ndarray:
    """Raised-cosine attack and release over ``n`` samples."""
    envelope = np.ones(n)
    up, down = min(round(attack * rate), n // 2), min(round(release * rate), n // 2)
    envelope[:up] = 0.5 - 0.5 * np.cos(np.pi * np.arange(up) / max(1, up))
    envelope[n - down :] = 0.5 + 0.5 * np.cos(np.pi * np.arange(down) / max(1, down))
    return envelope
