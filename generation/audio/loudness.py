"""Loudness normalisation for a finished mix: EBU R128 integrated loudness with a true-peak ceiling.

The mix is measured with ITU-R BS.1770 (pyloudnorm's K-weighted, gated meter) and
gained to the target. When that gain would push the true peak (measured on the
signal oversampled 4x by ideal band-limited interpolation) over the ceiling, a lookahead true-peak limiter takes the
peaks down smoothly, and the gain is nudged up to make up for the loudness the
limiter removed. The limiter is allowed at most ``MAX_LIMITING_DB`` of gain
reduction: a mix that would need more is left quieter than the target rather than
squashed, and the report says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError
from ..formats import DEFAULT_TARGET_LUFS, TARGET_RANGE_LUFS
from .arrays import check_audio

DEFAULT_CEILING_DBTP = -1.0  # true-peak ceiling that survives lossy encoding (EBU R128 / AES TD1008)
CEILING_RANGE_DBTP = (-12.0, 0.0)  # ceilings we accept
OVERSAMPLING = 4  # true peak is measured on the signal upsampled 4x (BS.1770 annex 2)
UPSAMPLE_BLOCK = 1 << 16  # samples upsampled per FFT
UPSAMPLE_MARGIN = 4096  # samples of context either side of a block, so block edges do not ring
BLOCK_SECONDS = 0.4  # BS.1770 gating block: shorter audio has no integrated loudness
MAX_LIMITING_DB = 6.0  # deepest gain reduction the limiter may apply before we give up on the target
LOOKAHEAD_SECONDS = 0.005  # limiter attack: gain ramps down over this time before a peak
RELEASE_SECONDS = 0.08  # limiter release: time constant of the gain's recovery after a peak
RELEASE_BLOCK = 32  # samples per step of the release recursion (a Python loop, so not per sample)
SAFETY_DB = 0.1  # the limiter aims this far under the ceiling (4x oversampling can miss ~0.1 dB)
TOLERANCE_LU = 0.1  # stop nudging the gain once this close to the target
MAX_PASSES = 4  # gain/limit/measure passes at most


@dataclass(frozen=True)
class LoudnessReport:
    """What normalisation measured and did. Loudness is None where it could not be measured."""

    target_lufs: float | None  # None: normalisation off
    input_lufs: float | None  # integrated loudness before; -inf for silence, None if shorter than 0.4 s
    output_lufs: float | None  # integrated loudness after
    true_peak_dbtp: float  # true peak after (4x oversampled); -inf for silence
    gain_db: float  # static gain applied (the limiter comes on top); give stems the same gain
    limited: bool  # True when the true-peak limiter reduced some peaks
    limiter_db: float = 0.0  # deepest gain reduction of the limiter, in dB (positive)
    note: str = ""  # one sentence for the recipe notes when something unusual happened

    def to_dict(self) -> dict[str, float | bool | str | None]:
        def clean(value: float | None) -> float | None:
            return None if value is None or not math.isfinite(value) else round(value, 2)

        return {
            "target_lufs": self.target_lufs,
            "input_lufs": clean(self.input_lufs),
            "output_lufs": clean(self.output_lufs),
            "true_peak_dbtp": clean(self.true_peak_dbtp),
            "gain_db": round(self.gain_db, 2),
            "limited": self.limited,
            "limiter_db": round(self.limiter_db, 2),
            "note": self.note,
        }


def normalise_loudness(
    audio: np.ndarray,
    sample_rate: int,
    target_lufs: float | None = DEFAULT_TARGET_LUFS,
    ceiling_dbtp: float = DEFAULT_CEILING_DBTP,
) -> tuple[np.ndarray, LoudnessReport]:
    """Bring ``[channels, samples]`` float audio to ``target_lufs`` with its true peak under ``ceiling_dbtp``.

    ``target_lufs=None`` turns normalisation off and returns the audio untouched.
    Silence gets no gain; audio shorter than 0.4 s (too short to measure) is only
    kept under the ceiling. Returns float32 audio and a ``LoudnessReport``.
    """
    # 1. Check inputs
    audio = check_audio(audio)
    if target_lufs is not None and not TARGET_RANGE_LUFS[0] <= target_lufs <= TARGET_RANGE_LUFS[1]:
        low, high = TARGET_RANGE_LUFS
        raise InvalidInputError(f"target loudness must be between {low:g} and {high:g} LUFS, got {target_lufs}.")
    if not CEILING_RANGE_DBTP[0] <= ceiling_dbtp <= CEILING_RANGE_DBTP[1]:
        low, high = CEILING_RANGE_DBTP
        raise InvalidInputError(f"true-peak ceiling must be between {low:g} and {high:g} dBTP, got {ceiling_dbtp}.")
    if target_lufs is None:
        peak = true_peak_dbtp(audio)
        return audio, LoudnessReport(None, None, None, peak, 0.0, False, note="")

    # 2. Measure
    input_lufs = integrated_loudness(audio, sample_rate)
    if input_lufs is not None and not math.isfinite(input_lufs):
        note = "The audio is silent, so its loudness was left as it is."
        return audio, LoudnessReport(target_lufs, input_lufs, input_lufs, true_peak_dbtp(audio), 0.0, False, 0.0, note)
    if input_lufs is None:
        out, gain_db = _fit_under(audio, ceiling_dbtp)
        note = (
            f"The audio is shorter than {BLOCK_SECONDS} s, too short to measure its loudness; "
            "only its peak was kept under the ceiling."
        )
        return out, LoudnessReport(target_lufs, None, None, true_peak_dbtp(out), gain_db, False, 0.0, note)

    # 3. Gain to the target, limiting peaks over the ceiling, then make up for what the limiter took
    gain_db = target_lufs - input_lufs
    capped = False  # True once the limiter's depth limit held the gain back
    for _ in range(MAX_PASSES):
        out = _gain(audio, gain_db)
        over_db = true_peak_dbtp(out) - (ceiling_dbtp - SAFETY_DB)
        if over_db > MAX_LIMITING_DB:
            gain_db -= over_db - MAX_LIMITING_DB
            out = _gain(audio, gain_db)
            capped = True
        out, limiter_db = _limit_true_peak(out, sample_rate, ceiling_dbtp - SAFETY_DB)
        output_lufs = integrated_loudness(out, sample_rate)
        shortfall = target_lufs - output_lufs
        if limiter_db == 0.0 or capped or abs(shortfall) <= TOLERANCE_LU:
            break
        gain_db += shortfall

    # 4. A last guard: a static trim if the limiter's smoothing let an inter-sample peak through
    out, trim_db = _fit_under(out, ceiling_dbtp)
    if trim_db:
        gain_db += trim_db
        output_lufs = integrated_loudness(out, sample_rate)
    note = ""
    if capped and target_lufs - output_lufs > TOLERANCE_LU:
        note = (
            f"Reaching {target_lufs:g} LUFS would need more than {MAX_LIMITING_DB:g} dB of peak limiting; "
            f"the track was left at {output_lufs:.1f} LUFS instead of being squashed."
        )
    report = LoudnessReport(
        target_lufs=target_lufs,
        input_lufs=input_lufs,
        output_lufs=output_lufs,
        true_peak_dbtp=true_peak_dbtp(out),
        gain_db=gain_db,
        limited=limiter_db > 0.0,
        limiter_db=limiter_db,
        note=note,
    )
    return out, report


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float | None:
    """BS.1770 integrated loudness of ``[channels, samples]`` audio in LUFS.

    -inf for silence; None when the audio is shorter than one 0.4 s gating block.
    """
    import pyloudnorm

    audio = np.asarray(audio)
    if audio.shape[-1] < math.ceil(BLOCK_SECONDS * sample_rate) + 1:
        return None
    if not np.any(audio):
        return -math.inf
    meter = pyloudnorm.Meter(sample_rate, block_size=BLOCK_SECONDS)
    return float(meter.integrated_loudness(np.asarray(audio, dtype=np.float64).T))


def true_peak_dbtp(audio: np.ndarray) -> float:
    """True peak in dBTP: the highest absolute value of the signal upsampled 4x; -inf for silence."""
    peak = float(np.max(_sample_true_peaks(np.asarray(audio, dtype=np.float32)), initial=0.0))
    return 20 * math.log10(peak) if peak > 0 else -math.inf


def apply_gain_db(audio: np.ndarray, gain_db: float) -> np.ndarray:
    """Scale audio by ``gain_db`` decibels (float32), e.g. to give stems the mix's gain."""
    return _gain(np.asarray(audio, dtype=np.float32), gain_db)


def stems_gain_db(stems: Mapping[str, np.ndarray], gain_db: float, ceiling_dbtp: float = DEFAULT_CEILING_DBTP) -> float:
    """The mix's gain for a set of stems, lowered just enough that no stem's true peak passes the ceiling.

    One value for all stems, so they keep their balance and still add up to the mix's level.
    """
    loudest = max((true_peak_dbtp(stem) for stem in stems.values()), default=-math.inf)
    return min(gain_db, ceiling_dbtp - loudest) if math.isfinite(loudest) else gain_db


def _gain(audio: np.ndarray, gain_db: float) -> np.ndarray:
    return (audio * np.float32(10 ** (gain_db / 20))).astype(np.float32)


def _fit_under(audio: np.ndarray, ceiling_dbtp: float) -> tuple[np.ndarray, float]:
    """Lower the whole signal if its true peak passes the ceiling; return it and the gain in dB."""
    over = true_peak_dbtp(audio) - ceiling_dbtp
    if over <= 0:
        return audio, 0.0
    return _gain(audio, -over - 0.01), -over - 0.01


def _sample_true_peaks(audio: np.ndarray) -> np.ndarray:
    """For each sample, the highest absolute value over channels and the 4 oversampled points that start there."""
    channels, samples = audio.shape
    upsampled = _upsample(audio, OVERSAMPLING)
    peaks = np.abs(upsampled).reshape(channels, samples, OVERSAMPLING).max(axis=(0, 2))
    return np.maximum(peaks, np.abs(audio).max(axis=0)) if samples else peaks


def _upsample(audio: np.ndarray, factor: int) -> np.ndarray:
    """Ideal band-limited interpolation (zero-padded spectrum), block by block with overlapping margins.

    Stricter than the short filter of BS.1770's reference meter, which under-reads peaks
    made by content near the top of the band (hi-hats, noise): the ceiling then also holds
    on meters that interpolate better, such as ffmpeg's ebur128.
    """
    from scipy import fft

    channels, samples = audio.shape
    out = np.empty((channels, samples * factor), dtype=np.float32)
    for start in range(0, samples, UPSAMPLE_BLOCK):
        stop = min(samples, start + UPSAMPLE_BLOCK)
        low, high = max(0, start - UPSAMPLE_MARGIN), min(samples, stop + UPSAMPLE_MARGIN)
        size = fft.next_fast_len(high - low + UPSAMPLE_MARGIN, real=True)  # zeros after the block soften the wrap
        spectrum = fft.rfft(audio[:, low:high], size, axis=-1)
        if size % 2 == 0:
            spectrum[:, -1] *= 0.5  # the Nyquist bin is shared by both halves of the longer spectrum
        block = fft.irfft(spectrum, size * factor, axis=-1) * factor
        out[:, factor * start : factor * stop] = block[:, factor * (start - low) : factor * (stop - low)]
    return out


def _limit_true_peak(audio: np.ndarray, sample_rate: int, ceiling_dbtp: float) -> tuple[np.ndarray, float]:
    """A lookahead true-peak limiter; returns the limited audio and its deepest gain reduction in dB.

    For each sample the gain it may have at most is ``ceiling / true peak``. A forward
    minimum over the lookahead window, a smooth exponential release (run on blocks of
    samples) and a moving average as long as the lookahead give a gain curve that ramps
    down before each peak, never exceeds what any sample allows, and recovers gently.
    """
    from scipy.ndimage import minimum_filter1d

    ceiling = 10 ** (ceiling_dbtp / 20)
    peaks = _sample_true_peaks(audio)
    if peaks.size == 0 or float(peaks.max()) <= ceiling:
        return audio, 0.0
    samples = audio.shape[-1]
    allowed = np.minimum(1.0, ceiling / np.maximum(peaks, 1e-12))  # gain each sample may have at most

    # Forward minimum: each sample's gain also respects every peak in the next `ahead` samples
    ahead = max(1, round(LOOKAHEAD_SECONDS * sample_rate))
    window = ahead + 1
    forward_min = minimum_filter1d(allowed, size=window, origin=-(window // 2), mode="nearest")

    # Release: the gain recovers exponentially, never faster than the forward minimum allows
    blocks = -(-samples // RELEASE_BLOCK)
    padded = np.pad(forward_min, (0, blocks * RELEASE_BLOCK - samples), constant_values=1.0)
    block_min = padded.reshape(blocks, RELEASE_BLOCK).min(axis=1)
    coefficient = math.exp(-RELEASE_BLOCK / (RELEASE_SECONDS * sample_rate))
    held = np.empty(blocks)
    level = 1.0
    for index, target in enumerate(block_min.tolist()):
        level = target if target < level else target + (level - target) * coefficient
        held[index] = level
    held = np.repeat(held, RELEASE_BLOCK)[:samples]

    # Attack: a moving average over the lookahead turns steps into ramps that still respect every peak
    lead = np.full(ahead, float(allowed[: ahead + 1].min()))
    sums = np.cumsum(np.concatenate([[0.0], lead, held]))
    gain = (sums[window:] - sums[:-window]) / window
    limited = (audio * gain.astype(np.float32)).astype(np.float32)
    return limited, float(-20 * math.log10(max(float(gain.min()), 1e-12)))
