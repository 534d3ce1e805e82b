"""Notes as MusicGen-Melody's chroma: a one-hot pitch class per model frame, with no audio rendered in between.

The extractor (``generation.model.chroma.ChromaExtractor``) centres frame ``i`` at ``i * hop_length`` samples and
gives ``1 + samples // hop_length`` frames, keeping at most ``chunk_length`` seconds; a silent frame's one-hot
is C (the argmax of all zeros). Here frame ``i`` is the pitch class of the highest note sounding at its centre,
and C where none sounds, so the model reads notes exactly as it reads a clean recording of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..errors import InvalidInputError
from ..model.chroma import ChromaExtractor
from .notes import Note


def notes_chroma(
    notes: Sequence[Note], extractor: ChromaExtractor | None = None, seconds: float | None = None
) -> torch.Tensor:
    """One-hot chroma ``[1, frames, num_chroma]`` (float32) of ``notes``, for ``generate(input_features=...)``.

    ``seconds`` is the length the frames cover (default: until the last note ends), cut at the extractor's
    ``chunk_length`` as a recording would be.
    """
    extractor = extractor or ChromaExtractor()
    if not notes:
        raise InvalidInputError("The melody has no notes to follow; give a MIDI file or hum with some notes in it.")
    seconds = max(n.end for n in notes) if seconds is None else seconds
    samples = round(seconds * extractor.sampling_rate)
    frames = extractor.num_frames(samples)
    times = np.arange(frames) * extractor.hop_length / extractor.sampling_rate
    top = np.full(frames, -1)
    for note in notes:
        sounding = (times >= note.start) & (times < note.end)
        top[sounding] = np.maximum(top[sounding], note.pitch)
    classes = np.where(top >= 0, top % extractor.num_chroma, 0)
    chroma = torch.zeros(1, frames, extractor.num_chroma)
    chroma[0, torch.arange(frames), torch.from_numpy(classes)] = 1.0
    return chroma


def sounding(notes: Sequence[Note], frames: int, extractor: ChromaExtractor | None = None) -> np.ndarray:
    """Which of ``frames`` chroma frames have a note sounding at their centre (for the chroma picture)."""
    extractor = extractor or ChromaExtractor()
    times = np.arange(frames) * extractor.hop_length / extractor.sampling_rate
    out = np.zeros(frames, dtype=bool)
    for note in notes:
        out |= (times >= note.start) & (times < note.end)
    return out
