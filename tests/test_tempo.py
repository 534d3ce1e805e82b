"""Every track's tempo, beats, bars and key, measured on synthetic audio whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from generation.audio.tempo import UNCLEAR_TEMPO, measure_tempo
from generation.errors import InvalidInputError
from tests.audio_factory import tone
from tests.rhythm_factory import A_MINOR, D_MAJOR, beat_times, pattern

RATE = 32_000
SECONDS = 10.0


@pytest.mark.parametrize("kind", ["clicks", "drums"])
@pytest.mark.parametrize(
    ("bpm", "chords", "key"), [(90, A_MINOR, "A minor"), (120, D_MAJOR, "D major"), (174, A_MINOR, "A minor")]
)
def test_tempo_is_within_one_bpm_and_key_is_right(kind, bpm, chords, key):
    report = measure_tempo(pattern(bpm, SECONDS, RATE, kind=kind, offset=0.37, chords=chords), RATE)

    assert report.bpm == pytest.approx(bpm, abs=1.0)
    assert report.key == key
    assert report.describe() == f"{bpm} BPM, {key}"
    assert report.note is None


@pytest.mark.parametrize("bpm", [90, 120, 174])
def test_beats_and_downbeats_fall_on_the_true_ones(bpm):
    offset = 0.37
    report = measure_tempo(pattern(bpm, SECONDS, RATE, offset=offset, chords=A_MINOR), RATE)
    truth = beat_times(bpm, SECONDS, offset)

    assert len(report.beats) >= 0.8 * len(truth)
    assert _distance(report.beats, truth) < 0.025  # beats land just before the attack (see the tempo module)
    assert _distance(report.downbeats, truth[::4]) < 0.025
    assert set(report.downbeats) <= set(report.beats)


def test_loud_off_beat_hats_do_not_double_the_tempo():
    drums = pattern(90, SECONDS, RATE, offset=0.37, chords=D_MAJOR)
    hats = pattern(180, SECONDS, RATE, kind="clicks", offset=0.37)  # a click on every eighth note
    report = measure_tempo(drums + 0.5 * hats, RATE)

    assert report.bpm == pytest.approx(90, abs=1.0)
    assert _distance(report.downbeats, beat_times(90, SECONDS, 0.37)[::4]) < 0.025


def test_a_half_time_take_is_reported_at_the_asked_tempo():
    take = pattern(87, SECONDS, RATE, chords=A_MINOR)

    assert measure_tempo(take, RATE).bpm == pytest.approx(87, abs=1.0)
    assert measure_tempo(take, RATE, hint_bpm=174).bpm == pytest.approx(174, abs=1.0)
    assert measure_tempo(take, RATE, hint_bpm=90).bpm == pytest.approx(87, abs=1.0)


def test_stereo_at_another_rate_measures_the_same():
    report = measure_tempo(pattern(120, SECONDS, 48_000, chords=A_MINOR, channels=2), 48_000)

    assert report.bpm == pytest.approx(120, abs=1.0)
    assert report.key == "A minor"


def _sustained_chord() -> np.ndarray:
    swell = 0.5 - 0.4 * np.cos(2 * np.pi * np.arange(round(SECONDS * RATE)) / RATE / SECONDS)  # no attacks at all
    chord = sum(tone(hz, SECONDS, RATE, 0.2) for hz in (220.0, 261.63, 329.63))
    return (swell * chord)[None, :].astype(np.float32)


def _random_clicks() -> np.ndarray:
    rng = np.random.default_rng(3)
    clicks = np.zeros(round(SECONDS * RATE), np.float32)
    burst = tone(1000.0, 0.02, RATE) * np.exp(-np.arange(round(0.02 * RATE)) / (0.004 * RATE))
    for start in rng.integers(0, len(clicks) - len(burst), 25):
        clicks[start : start + len(burst)] += burst
    return clicks[None, :]


@pytest.mark.parametrize(
    "audio",
    [
        pytest.param(0.1 * np.random.default_rng(1).standard_normal((1, 10 * RATE)).astype(np.float32), id="noise"),
        pytest.param(_sustained_chord(), id="sustained-chord"),
        pytest.param(_random_clicks(), id="randomly-timed-clicks"),
        pytest.param(pattern(120, 2.0, RATE, chords=A_MINOR), id="one-bar"),
        pytest.param(np.zeros((1, 5 * RATE), np.float32), id="silence"),
    ],
)
def test_short_or_arrhythmic_audio_says_so_instead_of_guessing(audio):
    report = measure_tempo(audio, RATE)

    assert report.bpm is None
    assert report.beats == () and report.downbeats == ()
    assert UNCLEAR_TEMPO in report.note
    assert report.describe().startswith(f"tempo {UNCLEAR_TEMPO}, ")


def test_silence_has_no_key():
    report = measure_tempo(np.zeros((1, RATE), np.float32), RATE)

    assert report.key is None
    assert report.describe() == f"tempo {UNCLEAR_TEMPO}, no clear key"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hint_bpm": 0}, "hint_bpm must be from 40 to 240 beats per minute, got 0."),
        ({"hint_bpm": 1000}, "hint_bpm must be from 40 to 240 beats per minute, got 1000."),
        ({"hint_bpm": float("nan")}, "hint_bpm must be from 40 to 240 beats per minute, got nan."),
        ({"hint_bpm": "fast"}, "hint_bpm must be a number of beats per minute from 40 to 240, got 'fast'."),
        ({"hint_bpm": True}, "hint_bpm must be a number of beats per minute from 40 to 240, got True."),
        ({"rate": 0}, "rate must be a positive whole number of samples per second, got 0."),
        ({"audio": np.zeros((3, 100), np.float32)}, "audio must be [channels, samples]"),
        ({"audio": np.full((1, 100), np.nan, np.float32)}, "audio holds NaN"),
    ],
)
def test_bad_values_are_refused_with_clear_messages(kwargs, message):
    arguments = {"audio": np.zeros((1, RATE), np.float32), "rate": RATE, **kwargs}
    with pytest.raises(InvalidInputError) as caught:
        measure_tempo(arguments.pop("audio"), arguments.pop("rate"), **arguments)
    assert message in str(caught.value)


def _distance(found, truth) -> float:
    """The largest distance in seconds from a found time to the nearest true one."""
    found, truth = np.asarray(found), np.asarray(truth)
    return float(np.abs(found[:, None] - truth[None, :]).min(axis=1).max())
