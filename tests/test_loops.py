"""Takes stretched to an exact tempo, loops cut to the sample that wrap without a click, and the WAV loop marker."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import soundfile

from generation.audio.loop_marker import UNITY_NOTE, mark_loop, read_loop_marker, smpl_chunk
from generation.audio.loops import (
    LOOP_BARS,
    cut_loop,
    loop_samples,
    loop_start,
    material_seconds,
    most_bars,
    stretch_to_bpm,
)
from generation.audio.tempo import TempoReport, measure_tempo
from generation.errors import InvalidInputError
from tests.audio_factory import tone
from tests.rhythm_factory import A_MINOR, D_MAJOR, beat_times, pattern

RATE = 32_000


def test_stretched_take_beats_fall_on_the_exact_grid():
    offset, seconds = 0.3, 19.0  # 116 BPM played at 120: 8 bars need 16 s, and the take shrinks by 3.3%
    take = pattern(116, seconds, RATE, kind="clicks", offset=offset)
    result = stretch_to_bpm(take, RATE, measure_tempo(take, RATE, hint_bpm=120), 120)

    assert result.stretched and result.note is None
    assert result.speed == pytest.approx(120 / 116, rel=1e-3)
    assert result.tempo.bpm == 120
    assert result.audio.shape[1] == round(take.shape[1] / result.speed)
    onsets = _onsets(result.audio[0], beat_times(116, seconds, offset)[:32] * 116 / 120)
    grid = np.arange(32) * 0.5  # 8 bars of 120 BPM
    drift = onsets - grid - np.median(onsets - grid)
    assert np.abs(drift).max() < 0.010


def test_stretch_keeps_the_pitch():
    sustained = tone(440.0, 4.0, RATE)[None, :]
    measured = TempoReport(115.0, (0.5, 1.0), (0.5,), None, 1.0, 0.0)
    result = stretch_to_bpm(sustained, RATE, measured, 120)

    assert result.stretched
    assert _peak_hz(result.audio[0, RATE : 3 * RATE]) == pytest.approx(440.0, abs=0.5)


def test_take_too_far_off_is_reported_and_left_unstretched():
    take = pattern(100, 10.0, RATE, chords=A_MINOR)
    result = stretch_to_bpm(take, RATE, measure_tempo(take, RATE, hint_bpm=120), 120)

    assert not result.stretched
    assert np.array_equal(result.audio, take)
    assert result.speed == 1.0
    assert result.tempo.bpm == pytest.approx(100, abs=1.0)
    assert "measured 100.0 BPM" in result.note and "20% from 120 BPM" in result.note
    assert "left at its own tempo" in result.note


def test_half_time_take_counts_as_the_asked_tempo():
    take = pattern(87, 10.0, RATE, chords=A_MINOR)
    result = stretch_to_bpm(take, RATE, measure_tempo(take, RATE), 174)

    assert result.stretched
    assert result.speed == pytest.approx(1.0, abs=0.01)
    assert result.tempo.bpm == 174
    assert len(result.tempo.beats) > 1.8 * len(measure_tempo(take, RATE).beats)


def test_take_without_a_tempo_is_left_with_a_note():
    noise = 0.1 * np.random.default_rng(1).standard_normal((1, 5 * RATE)).astype(np.float32)
    result = stretch_to_bpm(noise, RATE, measure_tempo(noise, RATE), 120)

    assert not result.stretched
    assert np.array_equal(result.audio, noise)
    assert "too short or too arrhythmic to tell" in result.note


@pytest.mark.parametrize("rate", [32_000, 44_100, 48_000])
@pytest.mark.parametrize(("take_bpm", "bpm", "bars"), [(118, 120, 2), (171, 174, 1), (97, 97.3, 2)])
def test_loop_length_is_exact_to_the_sample_at_every_output_rate(rate, take_bpm, bpm, bars):
    take = pattern(take_bpm, material_seconds(bpm, bars), rate, offset=0.21, chords=D_MAJOR, channels=2)
    result = stretch_to_bpm(take, rate, measure_tempo(take, rate, hint_bpm=bpm), bpm)
    start = loop_start(result.tempo, result.audio.shape[1] / rate, bpm, bars)
    loop = cut_loop(result.audio, rate, bpm, bars, start)

    assert result.stretched
    assert loop.shape == (2, round(bars * 4 * 60 / bpm * rate)) == (2, loop_samples(bpm, bars, rate))
    assert loop.dtype == np.float32
    true_downbeats = beat_times(take_bpm, 60.0, 0.21)[::4] / result.speed
    assert np.abs(true_downbeats - start).min() < 0.025


def test_two_bars_at_120_bpm_are_exactly_four_seconds():
    assert loop_samples(120, 2, 32_000) == 128_000
    assert loop_samples(120, 2, 44_100) == 176_400
    assert loop_samples(120, 2, 48_000) == 192_000


def test_loop_wraps_without_a_click():
    take = pattern(120, 6.0, RATE, offset=0.21, chords=A_MINOR)
    report = measure_tempo(take, RATE)
    start = loop_start(report, 6.0, 120, 2)
    loop = cut_loop(take, RATE, 120, 2, start)[0]

    ordinary = np.abs(np.diff(loop))
    wrap = abs(float(loop[0]) - float(loop[-1]))
    assert wrap <= np.percentile(ordinary, 99)
    played_twice = np.concatenate([loop, loop])
    seam = np.abs(np.diff(played_twice[len(loop) - 100 : len(loop) + 100]))
    assert seam.max() <= ordinary.max()
    naive = take[0, round(start * RATE) : round(start * RATE) + len(loop)]
    assert abs(float(naive[0]) - float(naive[-1])) > wrap  # a plain cut would have stepped


def test_loop_head_is_the_take_after_the_crossfade():
    take = pattern(120, 6.0, RATE, chords=A_MINOR)
    loop = cut_loop(take, RATE, 120, 2, 0.5)
    fade = round(0.05 * RATE)

    assert np.array_equal(loop[:, fade:], take[:, round(0.5 * RATE) + fade : round(0.5 * RATE) + loop.shape[1]])


def test_loop_start_carries_the_bar_grid_back_to_the_start():
    report = TempoReport(120.0, tuple(2.1 + 0.5 * np.arange(12)), (2.1, 4.1), None, 0.9, 0.0)

    assert loop_start(report, 6.0, 120, 2) == pytest.approx(0.1)
    assert loop_start(report, 9.0, 120, 4) == pytest.approx(0.1)
    with pytest.raises(InvalidInputError, match=r"A 4-bar loop at 120 BPM needs 8.05 s from a downbeat"):
        loop_start(report, 8.0, 120, 4)


def test_take_without_a_tempo_loops_from_its_start_at_the_exact_length():
    noise = 0.1 * np.random.default_rng(2).standard_normal((1, round(material_seconds(120, 2) * RATE)))
    noise = noise.astype(np.float32)
    tempo = measure_tempo(noise, RATE)
    start = loop_start(tempo, noise.shape[1] / RATE, 120, 2)

    assert tempo.bpm is None and start == 0.0
    assert cut_loop(noise, RATE, 120, 2, start).shape == (1, 4 * RATE)


@pytest.mark.parametrize(
    ("duration", "bpm", "bars"), [(10, 120, 4), (4.0, 120, 2), (30, 60, 4), (60, 240, 16), (2, 120, 1)]
)
def test_most_bars_is_the_longest_loop_that_fits(duration, bpm, bars):
    assert most_bars(duration, bpm) == bars
    assert bars in LOOP_BARS


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: cut_loop(_take(), RATE, 0, 2, 0.0), "bpm must be from 40 to 240 beats per minute, got 0."),
        (lambda: cut_loop(_take(), RATE, 1000, 2, 0.0), "bpm must be from 40 to 240 beats per minute, got 1000."),
        (lambda: cut_loop(_take(), RATE, "fast", 2, 0.0), "bpm must be a number of beats per minute from 40 to 240"),
        (lambda: cut_loop(_take(), RATE, 120, 3, 0.0), "bars must be one of 1, 2, 4, 8, 16, got 3."),
        (lambda: cut_loop(_take(), RATE, 120, 2.0, 0.0), "bars must be one of 1, 2, 4, 8, 16, got 2.0."),
        (lambda: cut_loop(_take(), RATE, 120, "2", 0.0), "bars must be one of 1, 2, 4, 8, 16, got '2'."),
        (
            lambda: cut_loop(_take(), RATE, 120, 2, 3.0),
            "needs 4.050 s of audio after it, and the track ends at 6.000 s",
        ),
        (lambda: cut_loop(_take(), RATE, 120, 2, -1.0), "from -1.000 s needs"),
        (
            lambda: stretch_to_bpm(_take(), RATE, _report(), 250),
            "bpm must be from 40 to 240 beats per minute, got 250.",
        ),
        (lambda: most_bars(10, 39), "bpm must be from 40 to 240 beats per minute, got 39."),
        (lambda: most_bars(1.0, 40), "A loop needs at least one bar: 6.00 s at 40 BPM"),
        (lambda: loop_samples(120, 16, 0), "rate must be a positive whole number of samples per second, got 0."),
    ],
)
def test_bad_values_are_refused_with_clear_messages(call, message):
    with pytest.raises(InvalidInputError) as caught:
        call()
    assert message in str(caught.value)


def test_wav_loop_marker_round_trips_and_leaves_the_audio_alone(tmp_path):
    loop = pattern(120, 2.0, 44_100, chords=A_MINOR, channels=2)
    path = tmp_path / "beat_120bpm_A-minor.wav"
    soundfile.write(path, loop.T, 44_100, subtype="PCM_24")
    before = soundfile.read(path, dtype="float32")[0]

    mark_loop(path)
    mark_loop(path)  # marking again replaces the chunk rather than adding a second

    marker = read_loop_marker(path)
    assert (marker.start, marker.end) == (0, loop.shape[1] - 1)
    assert (marker.unity_note, marker.sample_period_ns) == (UNITY_NOTE, 22_676)  # 1e9 / 44100 ns
    assert (marker.loop_type, marker.play_count) == (0, 0)  # forward, for ever
    data = path.read_bytes()
    assert data.count(b"smpl") == 1
    assert struct.unpack_from("<I", data, 4)[0] == len(data) - 8
    after, rate = soundfile.read(path, dtype="float32")
    assert rate == 44_100 and np.array_equal(after, before)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".partial-")]


def test_smpl_chunk_has_the_spec_layout():
    chunk = smpl_chunk(32_000, 0, 127_999)

    assert chunk[:4] == b"smpl" and struct.unpack_from("<I", chunk, 4)[0] == 60 == len(chunk) - 8
    assert struct.unpack_from("<9I", chunk, 8) == (0, 0, 31_250, 60, 0, 0, 0, 1, 0)
    assert struct.unpack_from("<6I", chunk, 44) == (0, 0, 0, 127_999, 0, 0)


def test_loop_marker_refuses_a_loop_outside_the_file_or_a_file_that_is_not_wav(tmp_path):
    path = tmp_path / "short.wav"
    soundfile.write(path, np.zeros(100, np.float32), RATE)
    with pytest.raises(InvalidInputError, match=r"must lie within its 100 frames \(0 to 99\), got start 0 and end 100"):
        mark_loop(path, 0, 100)
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    with pytest.raises(InvalidInputError, match="notes.wav is not a RIFF/WAVE file"):
        read_loop_marker(text)
    assert read_loop_marker(path) is None


def _take() -> np.ndarray:
    return np.zeros((1, 6 * RATE), np.float32)


def _report() -> TempoReport:
    return TempoReport(120.0, (0.0, 0.5), (0.0,), None, 1.0, 0.0)


def _onsets(samples: np.ndarray, approximate: np.ndarray) -> np.ndarray:
    """Where each click starts: the first sample within 40 ms of its expected time above 30% of the local peak."""
    found = []
    for time in approximate:
        start = round((time - 0.04) * RATE)
        window = np.abs(samples[start : start + round(0.08 * RATE)])
        found.append((start + int(np.argmax(window > 0.3 * window.max()))) / RATE)
    return np.array(found)


def _peak_hz(samples: np.ndarray) -> float:
    """The strongest frequency, to a fraction of a bin (parabolic fit of the log spectrum)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)), 8 * len(samples)))
    k = int(np.argmax(spectrum))
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * RATE / (8 * len(samples))
