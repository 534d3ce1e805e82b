"""A MIDI file as the melody, and a hum tidied before it is followed: the model reads the notes' own chroma.

Compared on audio codes: the tiny random codec decodes every code sequence to the same audio.
"""

from __future__ import annotations

import json

import mido
import numpy as np
import pytest

from generation.errors import InvalidInputError
from generation.midi.chroma import notes_chroma
from generation.midi.files import MIDI_FROM_BANDS
from generation.midi.midi_file import midi_bytes
from generation.midi.notes import KICK, Note, NoteTrack, parse_note
from generation.model.chroma import ChromaExtractor, MelodyProcessor
from generation.model.types import Melody
from generation.settings import GenerationSettings
from generation.studio import TrackRequest
from tests.audio_factory import hum, write_audio

TUNE = ("C4", "E4", "G4", "C5", "B4", "G4")


def tune_file(folder, notes=TUNE, name="tune.mid"):
    played = tuple(Note(parse_note(n), 0.4 * i, 0.4 * i + 0.38) for i, n in enumerate(notes))
    path = folder / name
    path.write_bytes(midi_bytes([NoteTrack("melody", played)]))
    return path, played


def test_the_model_reads_chroma_given_as_notes_as_it_is():
    chroma = notes_chroma([Note(60, 0, 1), Note(67, 1, 2)])[0].numpy()
    processor = MelodyProcessor(tokenizer=None, extractor=ChromaExtractor())
    features = processor.features([Melody(np.zeros(0, np.float32), 32_000, chroma=chroma, hop_length=4096)])
    assert features.shape == (1, len(chroma), 12)
    assert np.array_equal(features[0].numpy(), chroma)


def test_a_midi_melody_is_followed_through_exactly_its_notes_chroma(studio, melody_engine, tmp_path):
    path, played = tune_file(tmp_path)
    track = studio.make_track(TrackRequest(prompt="calm piano", melody=str(path), duration=1, seed=5))

    # the same codes as the engine makes from the notes' chroma: the model was given exactly that, frame by frame
    chroma = notes_chroma(played)[0].numpy()
    direct = melody_engine.generate(
        GenerationSettings(prompt="calm piano", duration=1, seed=5),
        melody=Melody(np.zeros(0, np.float32), 32_000, chroma=chroma, hop_length=4096),
    )
    assert np.array_equal(track.generated.codes, direct.codes)
    other = notes_chroma([Note(parse_note("F#4"), 0, 2.4)])[0].numpy()
    elsewhere = melody_engine.generate(
        GenerationSettings(prompt="calm piano", duration=1, seed=5),
        melody=Melody(np.zeros(0, np.float32), 32_000, chroma=other, hop_length=4096),
    )
    assert not np.array_equal(track.generated.codes, elsewhere.codes)

    # the recipe names the file and every note used; the picture and summary show them
    record = json.loads(track.recipe_path.read_text())["melody"]
    assert record["file"] == "tune.mid" and record["kind"] == "midi" and record["track"] == "melody"
    assert [note[0] for note in record["notes"]] == [n.pitch for n in played]
    assert len(record["sha256"]) == 64
    assert track.melody_picture.ndim == 3
    assert "6 notes from the track 'melody'" in track.summary() and "C4 0.00-0.38" in track.summary()


def test_a_midi_melody_replays_to_the_same_codes(studio, tmp_path):
    path, _ = tune_file(tmp_path)
    first = studio.make_track(TrackRequest(prompt="", melody=str(path), duration=1, seed=8))
    again = studio.make_track(TrackRequest.from_recipe(first.recipe, melody=str(path)))
    assert again.recipe.melody == first.recipe.melody
    assert np.array_equal(again.generated.codes, first.generated.codes)


def test_midi_files_with_no_tune_are_refused_before_generation(studio, tmp_path):
    drums = tmp_path / "beat.mid"
    drums.write_bytes(midi_bytes([NoteTrack("beat", (Note(KICK, 0, 0.1),), drums=True)]))
    with pytest.raises(InvalidInputError, match="'beat.mid' holds only drums"):
        studio.make_track(TrackRequest(prompt="x", melody=str(drums), duration=1))
    broken = tmp_path / "broken.midi"
    broken.write_bytes(b"MThd\x00\x00\x00\x06\x00")
    with pytest.raises(InvalidInputError, match="'broken.midi' is not a standard MIDI file"):
        studio.make_track(TrackRequest(prompt="x", melody=str(broken), duration=1))


def test_a_tidied_hum_is_followed_as_its_tidied_notes_and_says_what_moved(studio, tmp_path):
    sung = hum(("C4", "E4", "G4", "F#4", "E4", "C4", "D4", "C4"), note_seconds=0.5, rate=32_000)
    path = write_audio(tmp_path / "hum", sung, 32_000, "wav_16")
    track = studio.make_track(
        TrackRequest(prompt="", melody=str(path), duration=1, seed=2, bpm=120, melody_cleanup=True)
    )
    record = track.recipe.melody
    assert record["cleanup"] is True and record["file"] == "hum.wav"
    assert record["tidied"] == "1 note moved to the scale of C major, timing quantised to 1/8 at 120 BPM"
    assert [note[0] for note in record["notes"]][3] == parse_note("G4")  # F#4, sung after G4, moves back up to it
    assert all(round(start / 0.25, 6).is_integer() for _, start, _ in record["notes"])
    assert "Tidied the hum: 1 note moved" in track.summary()
    replayed = studio.make_track(TrackRequest.from_recipe(track.recipe, melody=str(path)))
    assert replayed.recipe.melody["notes"] == record["notes"]
    assert np.array_equal(replayed.generated.codes, track.generated.codes)


def test_a_result_as_midi_has_the_melody_it_followed_and_says_where_bass_and_lead_came_from(studio, tmp_path):
    path, played = tune_file(tmp_path)
    track = studio.make_track(TrackRequest(prompt="", melody=str(path), duration=1, seed=3, formats="wav,midi"))
    assert track.paths["midi"].name.endswith(".mid") and track.paths["midi"] in track.files
    song = mido.MidiFile(track.paths["midi"])
    names = [next((m.name for m in t if m.type == "track_name"), "") for t in song.tracks]
    assert names[1] == "melody" and set(names[2:]) <= {"lead", "bass", "chords", "drums"}
    assert [m.note for m in song.tracks[1] if m.type == "note_on"] == [n.pitch for n in played]
    assert any(m.type == "set_tempo" for m in song.tracks[0])
    assert MIDI_FROM_BANDS in track.recipe.notes
    assert "midi" in track.recipe.export["formats"]
