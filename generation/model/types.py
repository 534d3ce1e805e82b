"""The values that cross the engine's boundary: a melody in, generated audio out, and the callbacks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..settings import GenerationSettings

TEXT, MELODY = "text", "melody"  # model families: text-conditioned, or text plus a melody's chroma
MAX_PROMPT_TOKENS = 256  # MusicGen was trained on short descriptions; longer prompts are cut to this many tokens

ProgressCallback = Callable[[int, int], None]  # (decoding steps done, steps in total)
AudioCallback = Callable[[np.ndarray], None]  # new audio [channels, samples] while streaming


@dataclass(frozen=True)
class Melody:
    """A melody to follow: clean mono float32 samples and their rate (see ``audio.uploads.load_audio``)."""

    samples: np.ndarray
    sample_rate: int


@dataclass(frozen=True)
class GeneratedAudio:
    """What one generation returns: audio as ``[channels, samples]`` float32 and how it was made."""

    audio: np.ndarray
    sample_rate: int
    settings: GenerationSettings  # with the seed actually used
    model_id: str
    model_revision: str | None
    device: str
    dtype: str
    seconds_taken: float
    codes: np.ndarray | None = None  # EnCodec token ids [codebooks, frames], delay pattern removed
    mode: str = "exact"  # "exact", or "fast" (int8 decoder weights)
    batch_size: int = 1  # requests generated together with this one
    windows: int = 1  # 30 s windows it took
    notes: tuple[str, ...] = ()  # what the person should know: a prompt cut to what the encoder reads, ...

    @property
    def duration(self) -> float:
        return self.audio.shape[-1] / self.sample_rate
