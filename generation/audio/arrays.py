"""The ``[channels, samples]`` float32 arrays every audio module takes: checking them and resampling them."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError

MAX_CHANNELS = 2  # MusicGen makes mono; the stereo checkpoints make two channels


def check_audio(audio: np.ndarray) -> np.ndarray:
    """``audio`` as contiguous float32 ``[channels, samples]``; refuses other shapes, integers, NaN and infinity."""
    audio = np.asarray(audio)
    if audio.ndim != 2 or not 1 <= audio.shape[0] <= MAX_CHANNELS or audio.shape[1] == 0:
        raise InvalidInputError(
            f"audio must be [channels, samples] with 1 or {MAX_CHANNELS} channels and some samples, "
            f"got shape {audio.shape}."
        )
    if not np.issubdtype(audio.dtype, np.floating):
        raise InvalidInputError(f"audio must be floating point in [-1, 1], got {audio.dtype}.")
    if not np.all(np.isfinite(audio)):
        raise InvalidInputError("audio holds NaN or infinite samples.")
    return np.ascontiguousarray(audio, dtype=np.float32)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited resampling along the last axis with soxr's very-high-quality filter (nothing aliases).

    ``audio`` is one waveform ``[samples]`` or ``[channels, samples]``; the result is float32 with exactly
    ``round(samples * to_rate / from_rate)`` samples, so lengths stay predictable across rates.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if from_rate == to_rate:
        return audio
    import soxr

    frames = np.atleast_2d(audio)
    length = round(frames.shape[-1] * to_rate / from_rate)
    out = soxr.resample(np.ascontiguousarray(frames.T), from_rate, to_rate, quality="VHQ").T
    if out.shape[-1] < length:
        out = np.pad(out, ((0, 0), (0, length - out.shape[-1])))
    out = np.ascontiguousarray(out[:, :length], dtype=np.float32)
    return out[0] if audio.ndim == 1 else out
