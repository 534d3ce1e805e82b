"""The values that cross the engine's boundary: a melody or audio to continue in, generated audio out, callbacks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ..settings import GenerationSettings

TEXT, MELODY = "text", "melody"  # model families: text-conditioned, or text plus a melody's chroma
MAX_PROMPT_TOKENS = 256  # MusicGen was trained on short descriptions; longer prompts are cut to this many tokens

ProgressCallback = Callable[[int, int], None]  # (decoding steps done, steps in total)
AudioCallback = Callable[[np.ndarray], None]  # new audio [channels, samples] while streaming


@dataclass(frozen=True)
class Melody:
    """A melody to follow: clean mono float32 samples and their rate (see ``audio.uploads.load_audio``), or notes
    given directly as chroma (a MIDI file: ``generation.midi.as_melody``), which the model reads as it is."""

    samples: np.ndarray
    sample_rate: int
    chroma: np.ndarray | None = None  # [frames, num_chroma] one-hot, frame i at i * hop_length; samples then empty
    hop_length: int = 0  # samples at sample_rate between chroma frames, with chroma

    @property
    def shape_key(self) -> tuple:
        """What must match for melodies to share a batch (padding would change them)."""
        if self.chroma is not None:
            return ("chroma", len(self.chroma))
        return (len(self.samples), self.sample_rate)

    def from_offset(self, offset_s: float) -> Melody:
        """The melody as heard from ``offset_s`` on, looping when it is shorter than the track."""
        if self.chroma is not None:
            start = round(offset_s * self.sample_rate / self.hop_length) % len(self.chroma)
            return replace(self, chroma=np.roll(self.chroma, -start, axis=0))
        start = round(offset_s * self.sample_rate) % len(self.samples)
        return Melody(np.roll(self.samples, -start), self.sample_rate)


@dataclass(frozen=True)
class AudioPrompt:
    """Audio to continue (extend): ``[channels, samples]`` float32 at any rate; the engine continues its end.

    The engine resamples it to the model's rate, keeps its last ``MusicGenEngine.prompt_seconds`` (20 s with
    the default 30 s window) in whole codec frames, and downmixes it to the model's channels.
    """

    samples: np.ndarray
    sample_rate: int


@dataclass(frozen=True)
class GeneratedAudio:
    """What one generation returns: audio as ``[channels, samples]`` float32 and how it was made.

    For an extend, ``audio`` and ``codes`` hold only the new audio, which starts where the given audio ends;
    ``lead_in`` covers the given audio's last moments as the codec hears them, for a seamless join.
    """

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
    prompt_seconds: float = 0.0  # an extend: the seconds at the end of the given audio the model continued
    lead_in: np.ndarray | None = None  # an extend: the codec's decoding of the given audio's last 0.1 s, which
    # ``audio`` continues without a seam; crossfade the given audio's end into it, then append ``audio``
    worker: str | None = None  # the cluster worker that made it ("replica on host"); None for in-process

    @property
    def duration(self) -> float:
        return self.audio.shape[-1] / self.sample_rate
