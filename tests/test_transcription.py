"""Audio becomes the notes that made it: accuracy floors on music rendered from MIDI (``tests/midi_factory.py``).

Scored as the benchmark scores (``benchmarks/transcription.py``, mir_eval): notes F1 with onsets within 50 ms and
pitch within 50 cents, chords right on the share of beats, drums F1 per class. Four bars at 100 BPM (10 s).
"""

from __future__ import annotations

import numpy as np
import pretty_midi
import pytest

from benchmarks.transcription import chords_per_beat, drums_f1, notes_f1
from generation.errors import InvalidInputError
from generation.midi.files import track_midi
from generation.midi.transcribe import (
    BASS,
    HUM,
    NOTE_NO_STEMS,
    transcribe_audio,
    transcribe_chords,
    transcribe_drums,
    transcribe_hum,
    transcribe_line,
)
from tests.midi_factory import RATE, mix, render_parts, score

NOTES_FLOOR, BASS_FLOOR, CHORDS_FLOOR, DRUMS_FLOOR = 0.9, 0.8, 0.85, 0.8


@pytest.fixture(scope="module")
def piece():
    return score(bars=4)


@pytest.fixture(scope="module")
def parts(piece, tmp_path_factory):
    return render_parts(piece, tmp_path_factory.mktemp("parts"))


@pytest.fixture(scope="module")
def mixed(parts):
    return transcribe_audio(mix(parts), RATE)


def test_a_hum_becomes_its_notes_repeated_notes_apart(piece, parts):
    truth = piece.track("melody").notes
    heard = transcribe_hum(parts["melody"], RATE)
    assert notes_f1(truth, heard) >= NOTES_FLOOR
    # the tune opens on E4 sung twice, then glides between notes: the repeat is two notes, not one long one
    assert [n.name for n in truth[:3]] == ["E4", "E4", "G4"]
    assert [n.name for n in heard[:3]] == ["E4", "E4", "G4"]
    assert abs(heard[1].start - truth[1].start) < 0.05


def test_a_bass_line_becomes_its_notes(piece, parts):
    assert notes_f1(piece.track("bass").notes, transcribe_line(parts["bass"], RATE, BASS)) >= BASS_FLOOR


def test_chords_are_named_per_beat(piece, parts):
    beats = np.arange(0.0, piece.seconds, 60.0 / piece.bpm)
    chords = transcribe_chords(parts["chords"], RATE, beats)
    assert chords_per_beat(piece.chords, chords, piece.bpm, piece.seconds) >= CHORDS_FLOOR


def test_drums_are_told_apart_by_band(piece, parts):
    scores = drums_f1(piece.track("drums").notes, transcribe_drums(parts["drums"], RATE))
    assert set(scores) == {"kick", "snare", "hi-hat"}
    assert min(scores.values()) >= DRUMS_FLOOR, scores


def test_a_mix_split_by_band_keeps_its_lead_bass_and_chords(piece, mixed):
    assert mixed.tempo.bpm == pytest.approx(piece.bpm, abs=0.5)
    assert notes_f1(piece.track("melody").notes, mixed.track("lead").notes) >= NOTES_FLOOR
    assert notes_f1(piece.track("bass").notes, mixed.track("bass").notes) >= BASS_FLOOR
    assert chords_per_beat(piece.chords, mixed.chords, piece.bpm, piece.seconds) >= CHORDS_FLOOR
    assert mixed.notes == (NOTE_NO_STEMS,)  # the person is told the parts come from bands, not stems


def test_the_notes_in_words_name_each_part(mixed):
    words = mixed.describe()
    assert "100 BPM" in words
    assert "lead (" in words and "E4 0.00-" in words
    assert "chords: C | Am | F | G." in words
    assert "drums:" in words and "kick" in words


def test_a_hum_with_no_pitch_is_refused_by_name():
    noise = np.random.default_rng(0).normal(0, 0.1, RATE * 2).astype(np.float32)
    with pytest.raises(InvalidInputError, match="No notes heard"):
        transcribe_hum(noise, RATE)
    assert transcribe_line(np.zeros(RATE, np.float32), RATE, HUM) == ()


def test_a_track_as_midi_has_named_parts_and_its_measured_tempo(piece, parts, mixed, tmp_path):
    path = tmp_path / "song.mid"
    path.write_bytes(track_midi(mix(parts)[None, :], RATE, mixed.tempo, None, piece.track("melody").notes, "song"))
    midi = pretty_midi.PrettyMIDI(str(path))
    assert [i.name for i in midi.instruments] == ["melody", "lead", "bass", "drums", "chords"]
    assert next(i for i in midi.instruments if i.name == "drums").is_drum
    assert midi.get_tempo_changes()[1][-1] == pytest.approx(piece.bpm, abs=0.5)
    downbeats = midi.get_downbeats()  # the MIDI file's bar lines fall on the audio's bars (every 2.4 s from 0 s)
    assert len(downbeats) >= 4 and np.abs(downbeats - 2.4 * np.round(downbeats / 2.4)).max() < 0.03
