"""Cue points in a WAV: written with their labels, read back, replaced, and the audio and tags left alone."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import soundfile

from generation.audio.cues import Cue, cue_chunks, mark_cues, read_cues
from generation.audio.export import export_track, read_metadata
from generation.audio.loop_marker import mark_loop, read_loop_marker
from generation.errors import InvalidInputError

RATE = 32_000


def _track(tmp_path, seconds=2.0):
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, (2, round(seconds * RATE))).astype(np.float32)
    recipe = '{"ai_generated": "AI-generated music.", "settings": {"prompt": "x"}}'
    paths = export_track(audio, RATE, folder=tmp_path, file_name="song", metadata={"title": "Song"}, recipe_json=recipe)
    return paths["wav"]


def test_cues_are_written_and_read_back_with_their_labels(tmp_path):
    wav = _track(tmp_path)
    before, _ = soundfile.read(wav, dtype="int32")
    cues = (Cue(0, "1: soft piano intro"), Cue(24_000, "2: the band comes in — chorus"), Cue(40_000, "3: outro"))
    mark_cues(wav, cues)
    assert read_cues(wav) == cues
    after, rate = soundfile.read(wav, dtype="int32")  # still a WAV any reader opens, with the same audio
    assert rate == RATE and np.array_equal(before, after)
    assert read_metadata(wav)["title"] == "Song" and "recipe_json" in read_metadata(wav)
    data = wav.read_bytes()
    assert struct.unpack_from("<I", data, 4)[0] == len(data) - 8  # the RIFF size covers the new chunks


def test_marking_again_replaces_the_cues_and_keeps_a_loop(tmp_path):
    wav = _track(tmp_path)
    mark_loop(wav)
    mark_cues(wav, [Cue(0, "a"), Cue(100, "b")])
    mark_cues(wav, [Cue(500, "only")])
    assert read_cues(wav) == (Cue(500, "only"),)
    assert read_loop_marker(wav).end == 2 * RATE - 1
    assert wav.read_bytes().count(b"cue ") == 1


def test_a_file_without_cues_has_none(tmp_path):
    assert read_cues(_track(tmp_path)) == ()


def test_cues_outside_the_audio_are_refused(tmp_path):
    wav = _track(tmp_path, seconds=1.0)
    with pytest.raises(InvalidInputError, match="within its 32000 frames"):
        mark_cues(wav, [Cue(32_000, "past the end")])
    with pytest.raises(InvalidInputError, match="whole sample frame"):
        cue_chunks([Cue(-1, "before")])


def test_long_labels_are_cut_to_whole_characters():
    chunk = cue_chunks([Cue(0, "é" * 300)])
    label = chunk[chunk.index(b"labl") + 12 :].split(b"\0", 1)[0]
    assert len(label) <= 255 and label.decode("utf-8") == "é" * (len(label) // 2)
