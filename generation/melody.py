"""What a melody holds, for people: its main notes, its likely key, and a picture of what the model hears."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .audio.pictures import chroma_picture
from .errors import InvalidInputError
from .model.chroma import NUM_CHROMA, ChromaExtractor

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")  # chroma order, C first
SOUND_FRAME_DB = -30.0  # frames this far below the loudest frame are left out of the pitch profile
MIN_KEY_CORRELATION = 0.5  # below this, no key is named
MAIN_NOTE_SHARE = 0.5  # pitch classes with at least this fraction of the top class's share are "main" notes
MAX_MAIN_NOTES = 3  # at most this many notes are named
# Krumhansl-Kessler key profiles (probe-tone ratings), tonic first.
MAJOR_PROFILE = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
MINOR_PROFILE = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)


def pitch_profile(audio: Any, sampling_rate: int | None = None, extractor: ChromaExtractor | None = None) -> np.ndarray:
    """Share of each pitch class (12 values summing to 1, or all 0 for silence), C first.

    With ``sampling_rate``, ``audio`` is a waveform: each sounding frame's chroma (scaled so its largest value
    is 1) is averaged, so every note counts by how long it lasts. Without it, ``audio`` is chroma shaped
    ``[..., frames, 12]`` (for example the extractor's one-hot output) and its frames are summed.
    """
    if sampling_rate is not None:
        return _profile_of(*(extractor or ChromaExtractor()).chroma_energy(audio, sampling_rate))
    chroma = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio, dtype=float)
    if chroma.ndim < 1 or chroma.shape[-1] != NUM_CHROMA:
        raise InvalidInputError(
            f"Chroma must end with {NUM_CHROMA} pitch classes, got shape {chroma.shape}; "
            "pass sampling_rate to describe a waveform."
        )
    return _shares(np.abs(chroma.reshape(-1, NUM_CHROMA)).sum(axis=0))


def _profile_of(normalised: np.ndarray, loudness: np.ndarray) -> np.ndarray:
    """``pitch_profile`` of a waveform's chroma energy (see ``ChromaExtractor.chroma_energy``)."""
    if normalised.shape[1] != NUM_CHROMA:
        raise InvalidInputError(f"Pitch profiles need {NUM_CHROMA} pitch classes, got {normalised.shape[1]}.")
    return _shares(normalised[sounding_frames(loudness)].sum(axis=0).astype(float))


def _shares(totals: np.ndarray) -> np.ndarray:
    """Per-pitch-class totals as shares summing to 1 (all 0 when there is nothing)."""
    total = totals.sum()
    return totals / total if total > 0 else np.zeros(NUM_CHROMA)


def estimate_key(profile: Sequence[float]) -> tuple[str, float]:
    """Most likely key of a 12-value pitch-class profile (Krumhansl-Schmuckler) and its correlation."""
    profile = np.asarray(profile, dtype=float)
    if profile.shape != (NUM_CHROMA,):
        raise InvalidInputError(f"A pitch profile has {NUM_CHROMA} values, got shape {profile.shape}.")
    if np.ptp(profile) == 0:
        return "no clear key", 0.0
    best, best_r = "", -math.inf
    for mode, template in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(NUM_CHROMA):
            r = float(np.corrcoef(profile, np.roll(template, tonic))[0, 1])
            if r > best_r:
                best, best_r = f"{PITCH_CLASSES[tonic]} {mode}", r
    return best, best_r


def describe_pitch(audio: Any, sampling_rate: int | None = None, extractor: ChromaExtractor | None = None) -> str:
    """The main notes and likely key in words, for example "Mostly A, E and C#; likely A major."

    ``audio`` is a waveform when ``sampling_rate`` is given, otherwise chroma (see ``pitch_profile``).
    """
    return _describe(pitch_profile(audio, sampling_rate, extractor))


def _describe(profile: np.ndarray) -> str:
    if not profile.any():
        return "No pitch found: the melody is silent."
    order = np.argsort(-profile, kind="stable")
    main = [PITCH_CLASSES[i] for i in order[:MAX_MAIN_NOTES] if profile[i] >= MAIN_NOTE_SHARE * profile[order[0]]]
    notes = main[0] if len(main) == 1 else ", ".join(main[:-1]) + " and " + main[-1]
    key, r = estimate_key(profile)
    return f"Mostly {notes}; likely {key}." if r >= MIN_KEY_CORRELATION else f"Mostly {notes}; no clear key."


def picture_and_description(
    samples: np.ndarray, sampling_rate: int, extractor: ChromaExtractor | None = None
) -> tuple[np.ndarray, str]:
    """The chroma picture (RGB ``[height, width, 3]`` uint8) and ``describe_pitch`` of a waveform, from one chroma.

    The colour is each frame's chroma energy; white dots mark the pitch class the model is given.
    """
    extractor = extractor or ChromaExtractor()
    normalised, loudness = extractor.chroma_energy(samples, sampling_rate)
    description = _describe(_profile_of(normalised, loudness))
    labels = PITCH_CLASSES if extractor.num_chroma == NUM_CHROMA else tuple(map(str, range(extractor.num_chroma)))
    frame_seconds = extractor.hop_length / extractor.sampling_rate
    picture = chroma_picture(normalised, sounding_frames(loudness), frame_seconds, labels, title=description)
    return picture, description


def sounding_frames(loudness: np.ndarray) -> np.ndarray:
    """Frames within SOUND_FRAME_DB of the loudest; none when all are silent."""
    if loudness.max() <= 0:
        return np.zeros(len(loudness), dtype=bool)
    return loudness >= loudness.max() * 10 ** (SOUND_FRAME_DB / 10)  # chroma is power: 10 log10
