"""Loudness normalisation: the mix lands on its target, under the true-peak ceiling, without clipping."""

from __future__ import annotations

import numpy as np
import pyloudnorm
import pytest
from scipy.signal import resample

from generation.audio.loudness import apply_gain_db, normalise_loudness, stems_gain_db
from generation.errors import InvalidInputError

RATE = 32_000
CHORDS = ((220.0, 277.18, 329.63), (196.0, 246.94, 293.66), (174.61, 220.0, 261.63), (196.0, 246.94, 329.63))


def music_like(seconds: float = 8.0, rate: int = RATE, level: float = 0.3, seed: int = 0) -> np.ndarray:
    """A stereo loop with the shape of an unmastered mix: held chords and bass, kick, snare and hi-hat.

    Its peak-to-loudness ratio is about 14.5 dB, so -14 LUFS under -1 dBTP needs about 2 dB of limiting.
    """
    rng = np.random.default_rng(seed)
    n = round(seconds * rate)
    out = np.zeros((2, n))
    bar = 2 * rate
    for i, start in enumerate(range(0, n, bar)):
        t = np.arange(min(bar, n - start)) / rate
        envelope = np.minimum(1, t / 0.05) * (0.6 + 0.4 * np.exp(-t * 1.5))
        for k, hz in enumerate(CHORDS[i % 4]):
            voice = sum(
                a * np.sin(2 * np.pi * h * hz * t + rng.uniform(0, 6.3)) for h, a in ((1, 1), (2, 0.4), (3, 0.2))
            )
            pan = 0.3 + 0.2 * k
            out[0, start : start + t.size] += 0.25 * envelope * voice * (1 - pan)
            out[1, start : start + t.size] += 0.25 * envelope * voice * pan
        out[:, start : start + t.size] += 0.3 * np.sin(np.pi * CHORDS[i % 4][0] * t) * envelope
    beat = rate // 2
    for j, start in enumerate(range(0, n, beat)):
        t = np.arange(min(n - start, rate // 4)) / rate
        out[:, start : start + t.size] += 0.5 * np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 12)
        if j % 2:
            out[:, start : start + t.size] += 0.25 * rng.standard_normal(t.size) * np.exp(-t * 25)
    for start in range(beat // 2, n, beat // 2):
        t = np.arange(min(n - start, rate // 20)) / rate
        hat = rng.standard_normal((2, t.size)) * np.exp(-t * 80)
        out[:, start : start + t.size] += 0.1 * hat
    return (level * out / np.abs(out).max()).astype(np.float32)


def measured_lufs(audio: np.ndarray, rate: int = RATE) -> float:
    return pyloudnorm.Meter(rate).integrated_loudness(audio.T.astype(np.float64))


def measured_true_peak_dbtp(audio: np.ndarray) -> float:
    """True peak measured apart from the module: the whole signal upsampled 4x in one FFT (ideal interpolation)."""
    upsampled = resample(audio, audio.shape[-1] * 4, axis=-1)
    return 20 * np.log10(max(np.abs(upsampled).max(), np.abs(audio).max()))


@pytest.mark.parametrize("target", [-14.0, -20.0])
def test_mix_lands_within_half_an_lu_of_the_target_under_the_true_peak_ceiling(target):
    out, report = normalise_loudness(music_like(), RATE, target_lufs=target)

    assert abs(measured_lufs(out) - target) <= 0.5
    assert measured_true_peak_dbtp(out) <= -1.0
    assert np.abs(out).max() <= 1.0
    assert out.dtype == np.float32 and out.shape == (2, round(8.0 * RATE))
    assert abs(report.output_lufs - measured_lufs(out)) < 0.05
    assert report.true_peak_dbtp <= -1.0


def test_reaching_minus_14_limits_the_peaks_and_says_so():
    _, report = normalise_loudness(music_like(), RATE, target_lufs=-14.0)

    assert report.limited and 0 < report.limiter_db <= 6.0
    assert report.note == ""


def test_quiet_input_is_raised_and_loud_input_lowered():
    quiet, quiet_report = normalise_loudness(music_like(level=0.02), RATE, target_lufs=-20.0)
    loud, loud_report = normalise_loudness(music_like(level=1.0), RATE, target_lufs=-20.0)

    assert quiet_report.gain_db > 10 and quiet_report.input_lufs < -30
    assert loud_report.gain_db < 0 and loud_report.input_lufs > -20
    for out in (quiet, loud):
        assert abs(measured_lufs(out) + 20.0) <= 0.5


def test_off_leaves_the_audio_untouched():
    audio = music_like(level=0.9)

    out, report = normalise_loudness(audio, RATE, target_lufs=None)

    assert np.array_equal(out, audio)
    assert report.gain_db == 0.0 and not report.limited and report.target_lufs is None


def test_silence_gets_no_gain_and_the_report_says_it_is_silent():
    silence = np.zeros((2, RATE * 2), dtype=np.float32)

    out, report = normalise_loudness(silence, RATE)

    assert np.array_equal(out, silence)
    assert report.gain_db == 0.0 and report.input_lufs == -np.inf
    assert "silent" in report.note
    assert report.to_dict()["input_lufs"] is None  # JSON-safe


def test_a_clip_too_short_to_measure_is_only_kept_under_the_ceiling():
    clip = music_like(seconds=0.2, level=1.0)

    out, report = normalise_loudness(clip, RATE)

    assert out.shape == clip.shape
    assert report.input_lufs is None and "too short" in report.note
    assert measured_true_peak_dbtp(out) <= -1.0


def test_a_mix_that_would_need_heavy_limiting_is_left_quieter_rather_than_squashed():
    clicks = np.zeros((2, RATE * 4), dtype=np.float32)
    clicks[:, :: RATE // 4] = 1.0  # four clicks a second: all peak, no body
    clicks += 0.001 * np.random.default_rng(0).standard_normal(clicks.shape).astype(np.float32)

    out, report = normalise_loudness(clicks, RATE, target_lufs=-14.0)

    assert "instead of being squashed" in report.note
    assert report.limiter_db <= 6.0 + 0.1
    assert measured_lufs(out) < -14.5
    assert measured_true_peak_dbtp(out) <= -1.0


def test_stems_get_the_mix_gain_and_keep_their_balance():
    mix = music_like(level=0.1)
    stems = {"drums": 0.6 * mix, "other": 0.4 * mix}
    _, report = normalise_loudness(mix, RATE, target_lufs=-20.0)

    gain = stems_gain_db(stems, report.gain_db)
    gained = {name: apply_gain_db(stem, gain) for name, stem in stems.items()}

    assert gain == pytest.approx(report.gain_db)
    assert np.allclose(gained["drums"] / 0.6, gained["other"] / 0.4, atol=1e-6)
    assert np.allclose(sum(gained.values()), apply_gain_db(mix, report.gain_db), atol=1e-6)


def test_stems_gain_is_lowered_for_all_stems_when_one_would_pass_the_ceiling():
    stems = {"drums": music_like(level=0.9), "bass": music_like(level=0.1, seed=1)}

    gain = stems_gain_db(stems, 6.0)

    assert gain < 6.0
    assert max(measured_true_peak_dbtp(apply_gain_db(stem, gain)) for stem in stems.values()) <= -0.95


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"target_lufs": 3.0}, "target loudness must be between -40 and -5 LUFS, got 3.0"),
        ({"ceiling_dbtp": 1.0}, "true-peak ceiling must be between -12 and 0 dBTP, got 1.0"),
    ],
)
def test_out_of_range_settings_are_refused_with_the_allowed_range(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        normalise_loudness(music_like(seconds=1.0), RATE, **kwargs)
