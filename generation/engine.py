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
DEFAULT_MELODY_MODEL = "facebook/musicgen-melody"
TEXT_MODEL_ENV = "MUSICGEN_MODEL"
MELODY_MODEL_ENV = "MUSICGEN_MELODY_MODEL"
DEVICE_ENV = "MOODTAPE_DEVICE"  # force "cpu", "cuda" or "mps"
TEXT, MELODY = "text", "melody"  # model families: text-conditioned, or text plus a melody's chroma

log = logging.getLogger(__name__)
# transformers' from_pretrained patches global state (meta-device init): two loads at once corrupt each other.
_FROM_PRETRAINED_LOCK = threading.Lock()

ProgressCallback = Callable[[int, int], None]  # (steps done, steps in total)


@dataclass(frozen=True)
class Melody:
    """A melody to follow: clean mono float32 samples and their rate (see ``audio_input.load_audio``)."""

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


def melody_model_id() -> str:
    """The melody model to use: ``MUSICGEN_MELODY_MODEL`` (hub id or folder) or musicgen-melody."""
    return os.environ.get(MELODY_MODEL_ENV, "").strip() or DEFAULT_MELODY_MODEL


class _StepWatcher:
    """A stopping criterion that never stops: it reports progress and raises on cancel.

    transformers' composite MusicGen ``generate`` drops its ``streamer`` argument,
    so the per-step hook is a stopping criterion, which every step calls.
    """

    def __init__(self, total: int, on_progress: ProgressCallback | None, cancel: threading.Event | None):
        self.total, self.on_progress, self.cancel = total, on_progress, cancel
        self.done = 0
        self.last_ids = None  # the token ids so far: [codebooks * channels, 1 + steps]

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        self.done += 1
        self.last_ids = input_ids
        if self.cancel is not None and self.cancel.is_set():
            raise GenerationCancelled("Generation was cancelled.")
        if self.on_progress is not None:
            self.on_progress(min(self.done, self.total), self.total)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class MusicGenEngine:
    """MusicGen behind a lock: loads lazily on first use, then serves every request.

    ``model_id`` is a Hugging Face hub id or a local folder holding a checkpoint
    saved with ``save_pretrained`` (config, weights, tokenizer, processor).
    ``family`` is ``"text"`` (MusicGen) or ``"melody"`` (MusicGen-Melody, which
    also follows a hummed or played melody).
    """

    def __init__(
        self,
        model_id: str | None = None,
        *,
        family: str = TEXT,
        revision: str | None = None,
        device: str | None = None,
    ):
        if family not in (TEXT, MELODY):
            raise ValueError(f"family must be {TEXT!r} or {MELODY!r}, got {family!r}")
        self.family = family
        self.model_id = model_id or (text_model_id() if family == TEXT else melody_model_id())
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
            with _FROM_PRETRAINED_LOCK:
                self._model, self._processor = self._load()

    def unload(self) -> None:
        """Free the weights; the next request loads them again."""
        with self._load_lock, self._generate_lock:
            self._model = self._processor = None

    def _load(self) -> tuple[Any, Any]:
        import torch

        device = self.device
        dtype = torch.float16 if device == "cuda" else torch.float32
        started = time.perf_counter()
        try:
            if self.family == TEXT:
                from transformers import AutoProcessor, MusicgenForConditionalGeneration

                processor = AutoProcessor.from_pretrained(self.model_id, revision=self.revision)
                model_class = MusicgenForConditionalGeneration
            else:
                from transformers import MusicgenMelodyForConditionalGeneration

                processor = _MelodyProcessor.from_pretrained(self.model_id, revision=self.revision)
                model_class = MusicgenMelodyForConditionalGeneration
            model = model_class.from_pretrained(self.model_id, revision=self.revision, dtype=dtype)
        except Exception as e:  # transformers raises OSError, ValueError, HF hub errors...
            env = TEXT_MODEL_ENV if self.family == TEXT else MELODY_MODEL_ENV
            raise ModelLoadError(_load_failure_message(self.model_id, e, env)) from e
        model = model.to(device).eval()
        log.info("Loaded %s on %s (%s) in %.1f s", self.model_id, device, dtype, time.perf_counter() - started)
        return model, processor

    def generate(
        self,
        settings: GenerationSettings,
        *,
        melody: Melody | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> GeneratedAudio:
        """Generate ``settings.duration`` seconds of audio for ``settings.prompt`` (and ``melody``).

        The same settings (seed included) and melody on the same machine give the same audio.
        Raises ``GenerationCancelled`` when ``cancel`` is set while it runs.
        """
        # 1. Check inputs
        if melody is not None and self.family != MELODY:
            raise InvalidInputError(
                f"The model '{self.model_id}' follows text only; a melody needs a MusicGen-Melody model."
            )
        if not settings.prompt and melody is None:
            raise InvalidInputError("The prompt is empty: describe the music, e.g. 'rainy night, mellow piano, slow'.")
        settings = settings.with_seed()
        self.load()
        model, processor = self._model, self._processor

        import torch

        # A submodule import: transformers' lazy top-level names are not safe to resolve from several threads.
        from transformers.generation.stopping_criteria import StoppingCriteriaList

        # 2. Encode the prompt (and the melody's chroma)
        if self.family == TEXT:
            inputs = processor(text=[settings.prompt], padding=True, return_tensors="pt")
        else:
            inputs = processor(settings.prompt, melody)
        inputs = inputs.to(self.device)
        if "input_features" in inputs:
            inputs["input_features"] = inputs["input_features"].to(model.dtype)

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
            codes=_undelay(watcher.last_ids, frames, model.decoder.config.audio_channels),
        )


def _undelay(ids: Any, frames: int, channels: int) -> np.ndarray | None:
    """Token ids per codebook without MusicGen's delay pattern (codebook k starts k steps late)."""
    if ids is None:
        return None
    rows = ids.shape[0]
    codes = [ids[row, 1 + row // channels : 1 + row // channels + frames] for row in range(rows)]
    return np.stack([c.cpu().numpy() for c in codes])


class _MelodyProcessor:
    """MusicGen-Melody's inputs without torchaudio: T5 tokens plus our own chroma (see ``melody.py``)."""

    def __init__(self, tokenizer: Any, extractor: Any):
        self.tokenizer, self.extractor = tokenizer, extractor

    @classmethod
    def from_pretrained(cls, model_id: str, revision: str | None = None) -> _MelodyProcessor:
        from transformers import AutoTokenizer

        from .melody import ChromaExtractor

        folder = Path(model_id).expanduser()
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(model_id, revision=revision, allow_patterns=["*.json"]))
        return cls(AutoTokenizer.from_pretrained(model_id, revision=revision), ChromaExtractor.from_pretrained(folder))

    def __call__(self, prompt: str, melody: Melody | None) -> Any:
        inputs = self.tokenizer([prompt], padding=True, return_tensors="pt")
        if melody is not None:
            inputs["input_features"] = self.extractor(melody.samples, melody.sample_rate)
        return inputs


def _load_failure_message(model_id: str, error: Exception, env: str = TEXT_MODEL_ENV) -> str:
    text = str(error).strip()
    reason = text.splitlines()[0].rstrip(".") if text else type(error).__name__
    if Path(model_id).expanduser().exists():
        return (
            f"Could not load the MusicGen model from the folder '{model_id}': {reason}. "
            "The folder must hold a checkpoint saved with save_pretrained (config.json, weights, "
            f"tokenizer and processor files); point {env} at such a folder."
        )
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    where = "offline mode is on (HF_HUB_OFFLINE)" if offline else "it is not cached here and could not be downloaded"
    return (
        f"Could not load the MusicGen model '{model_id}': {where} ({reason}). "
        f"Download it once on a machine with network (`hf download {model_id}`, or run the app there once), "
        f"or set {env} to a local folder that holds the model."
    )
