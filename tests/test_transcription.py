"""Audio becomes the notes that made it: accuracy floors on music rendered from MIDI (``tests/midi_factory.py``).

Scored as the benchmark scores (``benchmarks/transcription.py``, mir_eval): notes F1 with onsets within 50 ms and
pitch within 50 cents, chords right on the share of beats, drums F1 per class. Four bars at 100 BPM (10 s).
"""

from __future__ import annotations

import numpy as np
import pretty_midi
import pytest

from benchmarks.transcription import chords_per_beat, drums_f1, notes_f1
from generation.audio.loops import stretch_to_bpm
from generation.errors import InvalidInputError
from generation.midi.files import notes_on_take, track_midi
from generation.midi.notes import KICK
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
# drums from the whole mix (no stems): snare and hi-hat stand clear above 4 kHz; the kick shares its band with the
# bass, so its floor is lower (the benchmark's six 8-bar mixes, three patterns at 84-128 BPM, score 0.69-0.95)
MIX_KICK_FLOOR, MIX_SNARE_HAT_FLOOR = 0.7, 0.85


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


@pytest.mark.parametrize(("pattern", "bpm"), [("rock", 100.0), ("dance", 128.0)])
def test_drums_are_heard_in_the_whole_mix(pattern, bpm, tmp_path):
    piece = score(bars=4, bpm=bpm, pattern=pattern)
    scores = drums_f1(piece.track("drums").notes, transcribe_drums(mix(render_parts(piece, tmp_path)), RATE))
    assert scores["kick"] >= MIX_KICK_FLOOR, scores
    assert min(scores["snare"], scores["hi-hat"]) >= MIX_SNARE_HAT_FLOOR, scores


@pytest.mark.parametrize("bpm", [84.0, 128.0])
def test_a_kick_only_loop_is_heard_as_kicks_and_nothing_else(bpm, tmp_path):
    # no snare or hat shows a kit: the kicks stand alone, each dying away across the whole band below 150 Hz
    piece = score(bars=4, bpm=bpm, pattern="kicks")
    found = transcribe_drums(render_parts(piece, tmp_path)["drums"], RATE)
    assert drums_f1(piece.track("drums").notes, found)["kick"] >= DRUMS_FLOOR
    assert {n.pitch for n in found} == {KICK}


def test_a_hum_piano_chords_and_a_bass_line_have_no_drums(parts):
    # their onsets die away slowly or only below 400 Hz: with no snare or hat above 4 kHz there is no kit to hear
    for name in ("melody", "chords", "bass"):
        assert transcribe_drums(parts[name], RATE) == (), name
    assert transcribe_drums(parts["melody"] + parts["chords"] + parts["bass"], RATE) == ()


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


def test_the_followed_melody_is_retimed_with_a_take_stretched_to_a_bpm(piece, parts, mixed):
    truth = piece.track("melody").notes
    stretched = stretch_to_bpm(parts["melody"][None, :], RATE, mixed.tempo, 106.0)  # 6% faster
    assert stretched.stretched and stretched.speed == pytest.approx(1.06, abs=0.01)
    seconds = stretched.audio.shape[-1] / RATE
    heard = transcribe_hum(stretched.audio[0], RATE)
    retimed = notes_on_take(truth, {"speed": stretched.speed}, seconds)
    assert notes_f1(retimed, heard) >= NOTES_FLOOR
    assert notes_f1(truth, heard) < 0.6  # as written, the notes drift off the stretched audio
    # a loop cut from the stretched take: its notes start at the loop's start and end with it
    looped = notes_on_take(truth, {"speed": 1.06, "loop": {"start_seconds": 2.0}}, 4.0)
    first = next(n for n in truth if n.start / 1.06 >= 2.0)
    assert looped[0].start == pytest.approx(first.start / 1.06 - 2.0) and looped[0].pitch == first.pitch
    assert max(n.end for n in looped) <= 4.0 and len(looped) < len(truth)
