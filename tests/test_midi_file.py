"""MIDI files out and in: named tracks and a tempo map that lines up with the audio, a melody read from any file,
its chroma frame by frame, a hum tidied onto a key and a grid, and damaged or absurd files refused by name."""

from __future__ import annotations

import struct

import mido
import numpy as np
import pretty_midi
import pytest

from generation.audio.piano_roll import TRACK_COLOURS, piano_roll_picture
from generation.errors import InvalidInputError
from generation.midi import midi_file
from generation.midi.chroma import notes_chroma
from generation.midi.midi_file import TempoMap, midi_bytes, read_midi, read_midi_melody
from generation.midi.notes import HIHAT, KICK, Note, NoteTrack, parse_note, top_voice
from generation.midi.tidy import notes_key, tidy_notes
from generation.model.chroma import ChromaExtractor
from tests.midi_factory import hum_part, score, write_score


def test_a_written_file_has_named_tracks_drums_on_channel_10_chord_markers_and_the_tempo(tmp_path):
    piece = score(bars=2)
    tracks = [t for t in piece.tracks if t.name != "chords"]
    path = tmp_path / "song.mid"
    path.write_bytes(midi_bytes(tracks, TempoMap(100.0), chords=piece.chords))

    song = mido.MidiFile(path)
    names = [next(m.name for m in track if m.type == "track_name") for track in song.tracks]
    assert names == ["Moodtape", "melody", "bass", "drums", "chords"]
    drums = song.tracks[names.index("drums")]
    assert {m.channel for m in drums if m.type == "note_on"} == {9}
    markers = [m.text for m in song.tracks[names.index("chords")] if m.type == "marker"]
    assert markers == ["C", "Am"]

    midi = pretty_midi.PrettyMIDI(str(path))
    _, tempi = midi.get_tempo_changes()
    assert tempi == pytest.approx([100.0])
    melody = next(i for i in midi.instruments if i.name == "melody")
    assert [(n.pitch, round(n.start, 3)) for n in melody.notes[:3]] == [(64, 0.0), (64, 0.6), (67, 1.2)]


def test_the_bar_lines_fall_on_the_audio_downbeats_when_the_music_starts_late(tmp_path):
    tempo = TempoMap(bpm=120.0, first_downbeat=0.37)  # a pickup: the first bar line is 0.37 s in
    path = tmp_path / "late.mid"
    path.write_bytes(midi_bytes([NoteTrack("bass", (Note(40, 0.37, 0.8), Note(40, 4.37, 5.0)))], tempo))
    midi = pretty_midi.PrettyMIDI(str(path))
    downbeats = midi.get_downbeats()
    assert downbeats[1] == pytest.approx(0.37, abs=1e-3)
    assert downbeats[2] == pytest.approx(0.37 + 2.0, abs=1e-3)  # then every bar of 4 beats at 120 BPM
    assert midi.instruments[0].notes[0].start == pytest.approx(0.37, abs=1e-3)
    assert midi.get_tempo_changes()[1][-1] == pytest.approx(120.0, abs=0.01)


def test_a_melody_is_the_track_named_melody_else_the_top_voice_of_the_busiest_track(tmp_path):
    piece = score(bars=2)
    named = read_midi_melody(write_score(tmp_path / "all.mid", piece))
    assert named.track == "melody" and not named.top_voice
    assert [n.pitch for n in named.notes] == [n.pitch for n in piece.track("melody").notes]

    chords = read_midi_melody(write_score(tmp_path / "chords.mid", piece, ("chords", "drums")))
    assert chords.track == "chords" and chords.top_voice
    assert [n.pitch for n in chords.notes] == [parse_note("G3"), parse_note("E3")]  # C chord's top, Am's top
    contents = read_midi(tmp_path / "all.mid")
    assert contents.bpm == pytest.approx(100.0)
    assert [t.name for t in contents.tracks] == ["melody", "bass", "chords", "drums"]


def test_the_top_voice_keeps_the_highest_line():
    notes = [Note(60, 0, 1), Note(64, 0, 1), Note(67, 0.5, 1.5), Note(62, 0.7, 0.9), Note(65, 1.5, 2)]
    assert [(n.pitch, n.start, n.end) for n in top_voice(notes)] == [(64, 0, 0.5), (67, 0.5, 1.5), (65, 1.5, 2)]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"RIFF....WAVEfmt ", "not a standard MIDI file"),
        (b"MThd" + struct.pack(">IHHH", 6, 1, 10_000, 480), "declares 10,000 tracks"),
        (b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", 50) + b"\x00\x90\x3c", "not a"),
    ],
    ids=["empty", "not-midi", "10000-tracks", "cut-short"],
)
def test_damaged_and_absurd_files_are_refused_by_name(tmp_path, content, message):
    path = tmp_path / "bad.mid"
    path.write_bytes(content)
    with pytest.raises(InvalidInputError, match=message) as error:
        read_midi_melody(path)
    assert "bad.mid" in str(error.value)


def test_a_file_of_millions_of_events_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    events = b"\x00\x90\x3c\x40\x00\x3c\x00" * 400_000  # 800,000 events with running status, 2.8 MB
    path = tmp_path / "huge.mid"
    path.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(events)) + events)
    monkeypatch.setattr(mido, "MidiFile", lambda *a, **k: pytest.fail("parsed a file it should have refused"))
    with pytest.raises(InvalidInputError, match="at most 1 MB"):
        read_midi(path)


def test_too_many_events_and_too_many_track_chunks_are_refused(tmp_path, monkeypatch):
    piece = score(bars=2)
    path = write_score(tmp_path / "song.mid", piece)
    monkeypatch.setattr(midi_file, "MAX_EVENTS", 50)
    with pytest.raises(InvalidInputError, match="reads at most 50"):
        read_midi(path)
    chunk = b"MTrk" + struct.pack(">I", 4) + b"\x00\xff\x2f\x00"
    many = tmp_path / "many.mid"
    many.write_bytes(b"MThd" + struct.pack(">IHHH", 6, 1, 1, 480) + chunk * 300)  # the header says one track
    with pytest.raises(InvalidInputError, match="more than 256 tracks"):
        read_midi(many)


def test_files_with_no_notes_or_only_drums_have_no_melody(tmp_path):
    silent = tmp_path / "silent.mid"
    silent.write_bytes(midi_bytes([NoteTrack("melody", ())]))
    with pytest.raises(InvalidInputError, match="holds no notes"):
        read_midi_melody(silent)
    drums = tmp_path / "drums.mid"
    drums.write_bytes(midi_bytes([NoteTrack("beat", (Note(KICK, 0, 0.1), Note(HIHAT, 0.5, 0.6)), drums=True)]))
    with pytest.raises(InvalidInputError, match="only drums"):
        read_midi_melody(drums)
    with pytest.raises(InvalidInputError, match="not a MIDI file"):
        read_midi_melody(tmp_path / "tune.wav")


def test_notes_become_the_models_chroma_frame_by_frame():
    extractor = ChromaExtractor()
    notes = [Note(57, 0.0, 1.0), Note(61, 1.0, 2.0), Note(64, 2.5, 4.0), Note(40, 2.5, 3.0)]
    chroma = notes_chroma(notes, extractor)
    frames = extractor.num_frames(round(4.0 * extractor.sampling_rate))
    assert chroma.shape == (1, frames, 12)
    assert (chroma.sum(-1) == 1).all()
    times = np.arange(frames) * extractor.hop_length / extractor.sampling_rate
    expected = [9 if t < 1 else 1 if t < 2 else 0 if t < 2.5 else 4 if t < 4 else 0 for t in times]  # silence: C
    assert chroma[0].argmax(-1).tolist() == expected

    # the chroma a clean recording of the same notes gives, away from the changes, is the same
    rate = extractor.sampling_rate
    audio = hum_part([n for n in notes if n.pitch != 40], 4 * rate, rate, np.random.default_rng(0))
    heard = extractor(audio.astype(np.float32), rate)[0].argmax(-1).numpy()
    steady = [i for i, t in enumerate(times) if min(abs(t - c) for c in (0, 1, 2, 2.5, 4)) > 0.3]
    assert (heard[steady] == np.array(expected)[steady]).mean() >= 0.9


def test_a_hum_is_tidied_onto_its_key_and_a_grid_and_says_what_moved():
    beat = 0.6  # 100 BPM
    sung = [("C4", 0.02), ("D4", 0.61), ("E4", 1.17), ("F#4", 1.83), ("G4", 2.4), ("E4", 3.05), ("C#4", 3.6)]
    notes = [Note(parse_note(name), start, start + 0.5) for name, start in sung]
    notes += [Note(parse_note(n), 4.2 + i * beat, 4.7 + i * beat) for i, n in enumerate(("C4", "E4", "G4", "C5"))]
    key = notes_key(notes)
    assert key == "C major"
    tidied = tidy_notes(notes, key, 100.0)
    assert tidied.moved_to_scale == 2  # F#4 and C#4
    # an off-scale note moves a semitone towards the note before it: F#4 after E4 to F4, C#4 after E4 to D4
    assert [n.name for n in tidied.notes][:7] == ["C4", "D4", "E4", "F4", "G4", "E4", "D4"]
    step = beat / 2
    assert all(abs(n.start / step - round(n.start / step)) < 1e-9 for n in tidied.notes)
    assert tidied.describe() == "2 notes moved to the scale of C major, timing quantised to 1/8 at 100 BPM"
    untimed = tidy_notes(notes, None, None)
    assert untimed.notes[0].start == 0.02
    assert untimed.describe() == "pitches left as sung (no clear key), timing left as sung (no tempo given or heard)"


def test_the_piano_roll_draws_each_part_in_its_colour():
    piece = score(bars=2)
    picture = piano_roll_picture(piece.tracks, piece.chords, title="four parts")
    assert picture.dtype == np.uint8 and picture.shape[2] == 3 and picture.shape[1] == 1000
    for name in ("melody", "bass", "chords", "drums"):
        colour = np.array([int(TRACK_COLOURS[name][i : i + 2], 16) for i in (1, 3, 5)])
        assert (np.abs(picture.astype(int) - colour).sum(-1) < 30).sum() > 50, name
    empty = piano_roll_picture([])
    assert empty.shape[0] < picture.shape[0]
