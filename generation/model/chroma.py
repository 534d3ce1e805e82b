"""The chroma MusicGen-Melody is conditioned on, and the melody model's inputs (tokens plus chroma).

``ChromaExtractor`` reproduces transformers' ``MusicgenMelodyFeatureExtractor`` (plain waveform input, not
Demucs stems) with ``torch.stft`` instead of torchaudio, which does not load with our torch:

1. keep the first ``chunk_length`` seconds of each waveform, pad a batch to its longest with ``padding_value``;
2. pad a waveform shorter than ``n_fft`` with zeros on both sides up to ``n_fft``;
3. power spectrogram as ``torchaudio.transforms.Spectrogram(n_fft, win_length=n_fft, hop_length, power=2,
   center=True, pad_mode="reflect", normalized=True)``: periodic Hann window, and ``normalized=True`` divides
   the complex STFT by ``sqrt(sum(window ** 2))`` (torchaudio's "window" normalisation);
4. project onto pitch classes with ``transformers.audio_utils.chroma_filter_bank(tuning=0)`` (C first);
5. divide each frame by its largest value (infinity norm, eps 1e-6);
6. one-hot: 1 for the loudest pitch class of each frame, 0 elsewhere (silent frames become C).

The result is ``[batch, frames, num_chroma]`` with ``frames = 1 + samples // hop_length``: 235 for 30 s at
32 kHz. The extractor does not pad to the model's ``chroma_length``; the model itself repeats shorter chroma
until it fills ``chroma_length`` frames and cuts longer chroma.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..audio.arrays import resample
from ..errors import InvalidInputError, ModelLoadError
from .model_thread import ephemeral_thread
from .types import MAX_PROMPT_TOKENS, Melody

SAMPLING_RATE = 32_000  # Hz, MusicGen-Melody's audio rate
N_FFT = 16_384  # STFT size and window length: about 0.5 s, fine enough to separate semitones in the bass
HOP_LENGTH = 4_096  # samples between chroma frames: 128 ms at 32 kHz
CHUNK_LENGTH = 30  # seconds of audio the extractor keeps
NUM_CHROMA = 12  # pitch classes per octave
CHROMA_LENGTH = 235  # frames the model reads: 1 + 30 s * 32 kHz // 4096
NORM_EPS = 1e-6  # floor of the per-frame infinity norm, as in the extractor
EXTRACTOR_TYPE = "MusicgenMelodyFeatureExtractor"  # feature_extractor_type in a checkpoint's JSON


@dataclass(frozen=True)
class ChromaExtractor:
    """MusicGen-Melody's chroma features, computed with ``torch.stft``; settings match the checkpoint's JSON.

    Called from a request thread (a hum's checks and picture), its torch work runs on a thread that ends with the
    call, so no OpenMP team outlives it to slow the model thread down (``model_thread.py``).
    """

    sampling_rate: int = SAMPLING_RATE  # Hz the waveforms must be at (others are resampled)
    n_fft: int = N_FFT  # FFT size, also the Hann window length
    hop_length: int = HOP_LENGTH  # samples between frames
    chunk_length: int = CHUNK_LENGTH  # seconds kept from each waveform
    num_chroma: int = NUM_CHROMA  # pitch classes
    padding_value: float = 0.0  # value used to pad shorter waveforms in a batch
    padding_side: str = "right"  # where a batch's shorter waveforms are padded
    chroma_length: int = CHROMA_LENGTH  # frames the model reads (from the model's config.json); informative

    def __post_init__(self) -> None:
        for name in ("sampling_rate", "n_fft", "hop_length", "chunk_length", "num_chroma", "chroma_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ModelLoadError(f"Melody setting {name} must be a positive whole number, got {value!r}.")
        if self.padding_side not in ("left", "right"):
            raise ModelLoadError(f"Melody setting padding_side must be 'left' or 'right', got {self.padding_side!r}.")

    @classmethod
    def from_pretrained(cls, source: str | Path | Mapping[str, Any]) -> ChromaExtractor:
        """Settings from a checkpoint folder, a JSON file, or the JSON's dict.

        A folder is read from ``preprocessor_config.json`` (older checkpoints such as facebook/musicgen-melody)
        or the ``feature_extractor`` part of ``processor_config.json`` (transformers 5), plus ``chroma_length``
        from ``config.json`` when present. Missing settings take facebook/musicgen-melody's values.
        """
        if isinstance(source, Mapping):
            values, origin = dict(source), "the given settings"
        else:
            values, origin = _read_settings(Path(source))
        values = dict(values.get("feature_extractor", values))
        kind = values.get("feature_extractor_type", EXTRACTOR_TYPE)
        if kind != EXTRACTOR_TYPE:
            raise ModelLoadError(
                f"{origin} describe a {kind}, not a {EXTRACTOR_TYPE}; melody input needs a MusicGen-Melody checkpoint."
            )
        if "num_chroma" not in values and "feature_size" in values:
            values["num_chroma"] = values["feature_size"]
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})

    @property
    def n_samples(self) -> int:
        """Samples kept from each waveform."""
        return self.chunk_length * self.sampling_rate

    def num_frames(self, num_samples: int) -> int:
        """Chroma frames the extractor gives for a waveform of ``num_samples``."""
        return 1 + max(min(num_samples, self.n_samples), self.n_fft) // self.hop_length

    @ephemeral_thread
    def __call__(self, audio: Any, sampling_rate: int) -> torch.Tensor:
        """One-hot chroma ``[batch, frames, num_chroma]`` (float32), ready for ``generate(input_features=...)``.

        ``audio`` is one waveform (1-D array or tensor), a batch as a 2-D array, or a list of waveforms.
        """
        batch = self._batch(audio, sampling_rate)
        chroma = self._normalised_chroma(batch)
        one_hot = torch.zeros_like(chroma)
        one_hot.scatter_(-1, chroma.argmax(-1, keepdim=True), 1.0)
        return one_hot

    @ephemeral_thread
    def chroma_energy(self, samples: np.ndarray, sampling_rate: int) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame pitch-class energy of one waveform before the one-hot step.

        Returns ``(normalised, loudness)``: ``[frames, num_chroma]`` with each frame's largest value 1, and each
        frame's largest raw chroma value, which tells sound from silence.
        """
        batch = self._batch(samples, sampling_rate)
        if batch.shape[0] != 1:
            raise InvalidInputError(f"Expected one waveform, got a batch of {batch.shape[0]}.")
        raw = self._raw_chroma(batch)[0]  # [num_chroma, frames]
        normalised = torch.nn.functional.normalize(raw, p=float("inf"), dim=0, eps=NORM_EPS)
        return normalised.T.numpy(), raw.max(dim=0).values.numpy()

    @ephemeral_thread
    def spectrogram(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Power spectrogram ``[batch, n_fft // 2 + 1, frames]`` with torchaudio's ``normalized=True`` scaling."""
        window = _hann_window(self.n_fft)
        spec = torch.stft(
            waveforms,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.n_fft,
            window=window,
            center=True,
            pad_mode="reflect",
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        spec = spec / window.pow(2.0).sum().sqrt()
        return spec.abs().pow(2.0)

    def _batch(self, audio: Any, sampling_rate: int) -> torch.Tensor:
        """Waveforms as a float32 tensor ``[batch, samples]``: resampled, truncated and padded like the extractor."""
        waves = [self._waveform(wave, sampling_rate) for wave in _as_list(audio)]
        waves = [wave[: self.n_samples] for wave in waves]
        longest = max(len(wave) for wave in waves)
        batch = np.full((len(waves), longest), self.padding_value, dtype=np.float32)
        for row, wave in zip(batch, waves, strict=True):
            if self.padding_side == "right":
                row[: len(wave)] = wave
            else:
                row[longest - len(wave) :] = wave
        return torch.from_numpy(batch)

    def _waveform(self, wave: Any, sampling_rate: int) -> np.ndarray:
        if isinstance(wave, torch.Tensor):
            wave = wave.detach().cpu().numpy()
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1:
            raise InvalidInputError(f"A melody waveform must be mono (1-D), got shape {wave.shape}.")
        if wave.size == 0:
            raise InvalidInputError("The melody is empty; record or upload a hum of a few seconds.")
        if not np.isfinite(wave).all():
            raise InvalidInputError("The melody contains NaN or infinite samples; load it again with load_audio.")
        return resample(wave, int(sampling_rate), self.sampling_rate)

    def _raw_chroma(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Chroma energy ``[batch, num_chroma, frames]`` before normalisation."""
        length = waveforms.shape[-1]
        if length < self.n_fft:
            pad = self.n_fft - length
            waveforms = torch.nn.functional.pad(waveforms, (pad // 2, pad // 2 + pad % 2), "constant", 0.0)
        spec = self.spectrogram(waveforms)
        filters = _chroma_filters(self.sampling_rate, self.n_fft, self.num_chroma)
        return torch.einsum("cf,...ft->...ct", filters, spec)

    def _normalised_chroma(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Chroma ``[batch, frames, num_chroma]`` with each frame divided by its largest value."""
        raw = self._raw_chroma(waveforms)
        return torch.nn.functional.normalize(raw, p=float("inf"), dim=-2, eps=NORM_EPS).transpose(1, 2)


class MelodyProcessor:
    """MusicGen-Melody's inputs without torchaudio: T5 tokens plus ``ChromaExtractor``'s chroma."""

    def __init__(self, tokenizer: Any, extractor: Any):
        self.tokenizer, self.extractor = tokenizer, extractor

    @classmethod
    def from_pretrained(cls, model_id: str, revision: str | None = None) -> MelodyProcessor:
        from transformers import AutoTokenizer

        folder = Path(model_id).expanduser()
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(model_id, revision=revision, allow_patterns=["*.json"]))
        return cls(AutoTokenizer.from_pretrained(model_id, revision=revision), ChromaExtractor.from_pretrained(folder))

    def __call__(self, prompts: list[str], melodies: list[Melody | None]) -> Any:
        inputs = self.tokenizer(
            prompts, padding=True, truncation=True, max_length=MAX_PROMPT_TOKENS, return_tensors="pt"
        )
        features = self.features(melodies)
        if features is not None:
            inputs["input_features"] = features
        return inputs

    def features(self, melodies: list[Melody | None]) -> torch.Tensor | None:
        """The melodies' chroma ``[batch, frames, num_chroma]``, or None when no request gives a melody."""
        given = [m for m in melodies if m is not None]
        if not given:
            return None
        if len(given) != len(melodies):
            raise ValueError("a batch must give a melody for every request or for none")
        if any(m.chroma is not None for m in given):  # notes given as chroma (a MIDI file): read as they are
            if not all(m.chroma is not None for m in given):
                raise ValueError("a batch must give every melody as chroma or none")
            return torch.from_numpy(np.stack([m.chroma for m in given]).astype(np.float32))
        return self.extractor([m.samples for m in given], given[0].sample_rate)


def _as_list(audio: Any) -> list[Any]:
    """One waveform or a batch as a list of waveforms."""
    if isinstance(audio, (np.ndarray, torch.Tensor)):
        if audio.ndim == 1:
            return [audio]
        if audio.ndim == 2:
            return list(audio)
        raise InvalidInputError(f"Melody audio must be 1-D (one waveform) or 2-D (a batch), got shape {audio.shape}.")
    if isinstance(audio, (list, tuple)) and audio and not np.isscalar(audio[0]):
        return list(audio)
    return [audio]


@functools.lru_cache(maxsize=4)
def _chroma_filters(sampling_rate: int, n_fft: int, num_chroma: int) -> torch.Tensor:
    from transformers.audio_utils import chroma_filter_bank

    bank = chroma_filter_bank(num_frequency_bins=n_fft, num_chroma=num_chroma, sampling_rate=sampling_rate, tuning=0)
    return torch.from_numpy(bank).float()


@functools.lru_cache(maxsize=4)
def _hann_window(n_fft: int) -> torch.Tensor:
    return torch.hann_window(n_fft)  # periodic, as torchaudio's Spectrogram builds it


def _read_settings(path: Path) -> tuple[dict[str, Any], str]:
    """The feature extractor's JSON from a folder or file, with the model's chroma_length when it is there."""
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = [path / "preprocessor_config.json", path / "processor_config.json"]
    else:
        raise ModelLoadError(f"Melody settings not found: {str(path)!r} is neither a checkpoint folder nor a file.")
    for file in files:
        if file.is_file():
            try:
                values = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
                raise ModelLoadError(f"{file.name} in {str(file.parent)!r} is not readable JSON: {e}.") from e
            if not isinstance(values, dict):
                raise ModelLoadError(f"{file.name} in {str(file.parent)!r} does not hold a JSON object.")
            values = dict(values.get("feature_extractor", values))
            config = file.parent / "config.json"
            if "chroma_length" not in values and config.is_file():
                try:
                    chroma_length = json.loads(config.read_text(encoding="utf-8")).get("chroma_length")
                except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as e:
                    raise ModelLoadError(f"config.json in {str(file.parent)!r} is not readable JSON: {e}.") from e
                if chroma_length is not None:
                    values["chroma_length"] = chroma_length
            return values, file.name
    raise ModelLoadError(
        f"{str(path)!r} has no preprocessor_config.json or processor_config.json; "
        "it is not a MusicGen-Melody checkpoint folder."
    )
