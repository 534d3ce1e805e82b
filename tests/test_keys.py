"""Land in a key: key names read or refused, the smallest move, and a C major track that ends up in D major."""

from __future__ import annotations

import numpy as np
import pytest

from generation.editing.keys import COMMON_KEYS, Key, land_in_key, measure_key, parse_key, semitones_between, transpose
from generation.errors import InvalidInputError
from tests.rhythm_factory import pattern

RATE = 32_000
C_MAJOR = (("C4", "E4", "G4"), ("F4", "A4", "C5"), ("G3", "B3", "D4"), ("C4", "E4", "G4"))  # I IV V I


@pytest.mark.parametrize(
    ("text", "tonic", "mode", "name"),
    [
        ("A minor", 9, "minor", "A minor"),
        ("F# major", 6, "major", "F# major"),
        ("Bb minor", 10, "minor", "Bb minor"),
        ("a min", 9, "minor", "A minor"),
        ("Am", 9, "minor", "A minor"),
        ("Eb", 3, "major", "Eb major"),
        ("  c   MAJOR ", 0, "major", "C major"),
        ("D♭ maj", 1, "major", "Db major"),
        ("Cb major", 11, "major", "Cb major"),
    ],
)
def test_key_names_are_read(text, tonic, mode, name):
    assert parse_key(text) == Key(tonic, mode, name)


@pytest.mark.parametrize("text", ["H major", "A dorian", "X", "C##", "AM", "12"])
def test_unreadable_key_names_are_refused_with_the_accepted_forms(text):
    with pytest.raises(InvalidInputError) as caught:
        parse_key(text)
    assert repr(text) in str(caught.value) and '"A minor", "F# major", "Bb minor"' in str(caught.value)


def test_the_common_keys_are_every_key_once():
    keys = [parse_key(name) for name in COMMON_KEYS]
    assert [key.name for key in keys] == list(COMMON_KEYS)
    assert len({(key.tonic, key.mode) for key in keys}) == 24


def test_an_empty_key_is_no_key():
    assert parse_key("") is None and parse_key("  ") is None and parse_key(None) is None
    with pytest.raises(InvalidInputError, match="must be text"):
        parse_key(3)


def test_relative_keys_count_as_the_same_and_moves_are_at_most_a_tritone():
    assert semitones_between(parse_key("C major"), parse_key("A minor")) == 0
    assert semitones_between(parse_key("F# major"), parse_key("D# minor")) == 0
    assert semitones_between(parse_key("C major"), parse_key("D major")) == 2
    assert semitones_between(parse_key("C major"), parse_key("Bb major")) == -2
    assert semitones_between(parse_key("C major"), parse_key("B minor")) == 2  # B minor is D major's relative
    assert semitones_between(parse_key("C major"), parse_key("F# major")) == -6
    moves = {semitones_between(parse_key(f"{a} major"), parse_key(f"{b} minor")) for a in "CDEFGAB" for b in "CDEFGAB"}
    assert moves <= set(range(-6, 6))


def test_the_prompt_says_the_key_once():
    key = parse_key("D major")
    assert key.prompt_for("mellow piano") == "mellow piano, in D major"
    assert key.prompt_for("mellow piano, in D major, 120 bpm") == "mellow piano, in D major, 120 bpm"
    assert key.prompt_for("") == "in D major"


def test_a_c_major_track_asked_for_d_major_measures_d_major():
    track = pattern(100, 10.0, RATE, chords=C_MAJOR)
    measured = measure_key(track, RATE)
    assert measured == "C major"
    landing = land_in_key(track, RATE, parse_key("D major"), measured)
    assert landing.semitones == 2 and landing.audio.shape == track.shape
    assert measure_key(landing.audio, RATE) == "D major" == landing.result
    said = "Key: asked for D major; measured C major, moved up 2 semitones"
    assert landing.describe() == said
    assert landing.record() == {
        "asked": "D major",
        "measured": "C major",
        "semitones": 2,
        "result": "D major",
        "described": said,
    }


def test_the_relative_minor_moves_nothing():
    track = pattern(100, 6.0, RATE, chords=C_MAJOR)
    landing = land_in_key(track, RATE, parse_key("A minor"), "C major")
    assert landing.semitones == 0 and landing.audio is track and landing.result == "C major"
    assert landing.describe() == "Key: asked for A minor; measured C major, so nothing was moved"


def test_an_unclear_key_moves_nothing_and_says_so():
    noise = np.random.default_rng(0).normal(0, 0.1, (1, RATE * 2)).astype(np.float32)
    landing = land_in_key(noise, RATE, parse_key("E minor"), None)
    assert landing.audio is noise and landing.semitones == 0 and landing.result is None
    assert landing.describe() == "Key: asked for E minor; no clear key could be measured, so nothing was moved"


def test_transposing_keeps_length_timing_and_moves_the_pitch():
    t = np.arange(RATE * 2) / RATE
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)[None].repeat(2, axis=0)
    moved = transpose(tone, RATE, 2)
    assert moved.shape == tone.shape and moved.dtype == np.float32
    peak = np.fft.rfftfreq(moved.shape[1], 1 / RATE)[np.argmax(np.abs(np.fft.rfft(moved[0])))]
    assert abs(peak - 440.0 * 2 ** (2 / 12)) < 2.0
    assert np.array_equal(transpose(tone, RATE, 2), moved)  # seeded: the same every time
    with pytest.raises(InvalidInputError, match="semitones"):
        transpose(tone, RATE, 30)
