"""Load MusicGen once and turn settings into audio arrays; no UI, no files."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GenerationCancelled, InvalidInputError, ModelLoadError
from .settings import GenerationSettings

DEFAULT_TEXT_MODEL = "facebook/musicgen-small"
TEXT_MODEL_ENV = "MUSICGEN_MODEL"
DEVICE_ENV = "MOODTAPE_DEVICE"  # force "cpu", "cuda" or "mps"

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]  # (steps done, steps in total)


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

    @property
    def duration(self) -> float:
        return self.audio.shape[-1] / self.sample_rate


def pick_device() -> str:
    """Choose CUDA, then Apple MPS, then CPU, unless MOODTAPE_DEVICE says otherwise."""
    import torch

    forced = os.environ.get(DEVICE_ENV, "").strip().lower()
    if forced:
        return forced
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def text_model_id() -> str:
    """The text model to use: ``MUSICGEN_MODEL`` (hub id or folder) or musicgen-small."""
    return os.environ.get(TEXT_MODEL_ENV, "").strip() or DEFAULT_TEXT_MODEL


class _StepWatcher:
    """A stopping criterion that never stops: it reports progress and raises on cancel.

    transformers' composite MusicGen ``generate`` drops its ``streamer`` argument,
    so the per-step hook is a stopping criterion, which every step calls.
    """

    def __init__(self, total: int, on_progress: ProgressCallback | None, cancel: threading.Event | None):
        self.total, self.on_progress, self.cancel = total, on_progress, cancel
        self.done = 0

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        self.done += 1
        if self.cancel is not None and self.cancel.is_set():
            raise GenerationCancelled("Generation was cancelled.")
        if self.on_progress is not None:
            self.on_progress(min(self.done, self.total), self.total)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class MusicGenEngine:
    """MusicGen behind a lock: loads lazily on first use, then serves every request.

    ``model_id`` is a Hugging Face hub id or a local folder holding a checkpoint
    saved with ``save_pretrained`` (config, weights, tokenizer, processor).
    """

    def __init__(self, model_id: str | None = None, *, revision: str | None = None, device: str | None = None):
        self.model_id = model_id or text_model_id()
        self.revision = revision
        self._device = device
        self._model: Any = None
        self._processor: Any = None
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = pick_device()
        return self._device

    @property
    def sample_rate(self) -> int:
        self.load()
        return int(self._model.config.audio_encoder.sampling_rate)

    @property
    def frame_rate(self) -> int:
        self.load()
        return int(self._model.config.audio_encoder.frame_rate)

    @property
    def model_revision(self) -> str | None:
        """The hub commit the weights came from, or None for a local folder."""
        self.load()
        return getattr(self._model.config, "_commit_hash", None)

    def load(self) -> None:
        """Load weights and processor once; safe to call from many threads."""
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is not None:
                return
            self._model, self._processor = self._load()

    def _load(self) -> tuple[Any, Any]:
        import torch
        from transformers import AutoProcessor, MusicgenForConditionalGeneration

        device = self.device
        dtype = torch.float16 if device == "cuda" else torch.float32
        started = time.perf_counter()
        try:
            processor = AutoProcessor.from_pretrained(self.model_id, revision=self.revision)
            model = MusicgenForConditionalGeneration.from_pretrained(self.model_id, revision=self.revision, dtype=dtype)
        except Exception as e:  # transformers raises OSError, ValueError, HF hub errors...
            raise ModelLoadError(_load_failure_message(self.model_id, e)) from e
        model = model.to(device).eval()
        log.info("Loaded %s on %s (%s) in %.1f s", self.model_id, device, dtype, time.perf_counter() - started)
        return model, processor

    def generate(
        self,
        settings: GenerationSettings,
        *,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> GeneratedAudio:
        """Generate ``settings.duration`` seconds of audio for ``settings.prompt``.

        The same settings (seed included) on the same machine give the same audio.
        Raises ``GenerationCancelled`` when ``cancel`` is set while it runs.
        """
        # 1. Check inputs
        if not settings.prompt:
            raise InvalidInputError("The prompt is empty: describe the music, e.g. 'rainy night, mellow piano, slow'.")
        settings = settings.with_seed()
        self.load()
        model, processor = self._model, self._processor

        import torch

        # A submodule import: transformers' lazy top-level names are not safe to resolve from several threads.
        from transformers.generation.stopping_criteria import StoppingCriteriaList

        # 2. Encode the prompt
        inputs = processor(text=[settings.prompt], padding=True, return_tensors="pt").to(self.device)

        # 3. Sample audio tokens, then decode them with EnCodec
        frames = round(settings.duration * self.frame_rate)
        steps = frames + model.decoder.num_codebooks - 1  # the codebook delay pattern costs a few steps
        watcher = _StepWatcher(steps, on_progress, cancel)
        with self._generate_lock, torch.inference_mode():
            started = time.perf_counter()
            torch.manual_seed(settings.seed)
            audio = model.generate(
                **inputs,
                max_new_tokens=steps,
                do_sample=True,
                temperature=settings.temperature,
                top_k=settings.top_k,
                top_p=settings.top_p if settings.top_p > 0 else 1.0,
                guidance_scale=settings.guidance_scale if settings.guidance_scale > 1 else None,
                stopping_criteria=StoppingCriteriaList([watcher]),
            )
            taken = time.perf_counter() - started

        # 4. Return float32 [channels, samples], trimmed to the exact length asked for
        samples = round(settings.duration * self.sample_rate)
        array = audio[0].float().cpu().numpy()[:, :samples]
        return GeneratedAudio(
            audio=np.ascontiguousarray(array, dtype=np.float32),
            sample_rate=self.sample_rate,
            settings=settings,
            model_id=self.model_id,
            model_revision=self.model_revision,
            device=self.device,
            dtype=str(model.dtype).removeprefix("torch."),
            seconds_taken=taken,
        )


def _load_failure_message(model_id: str, error: Exception) -> str:
    text = str(error).strip()
    reason = text.splitlines()[0].rstrip(".") if text else type(error).__name__
    if Path(model_id).expanduser().exists():
        return (
            f"Could not load the MusicGen model from the folder '{model_id}': {reason}. "
            "The folder must hold a checkpoint saved with save_pretrained (config.json, weights, "
            "tokenizer and processor files); point MUSICGEN_MODEL at such a folder."
        )
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    where = "offline mode is on (HF_HUB_OFFLINE)" if offline else "it is not cached here and could not be downloaded"
    return (
        f"Could not load the MusicGen model '{model_id}': {where} ({reason}). "
        f"Download it once on a machine with network (`hf download {model_id}`, or run the app there once), "
        "or set MUSICGEN_MODEL to a local folder that holds the model."
    )
