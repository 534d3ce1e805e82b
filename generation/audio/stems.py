"""Split a finished mix into drums, bass, other and vocals with Demucs; arrays in, arrays out, no files.

The model is ``htdemucs`` (Hybrid Transformer Demucs, 44.1 kHz stereo) unless
``MOODTAPE_STEMS_MODEL`` names another: a Demucs model name (``htdemucs_ft``,
``someone/htdemucs_ft``, ``hf://...``), or a local ``.safetensors``/``.th`` file, or a
folder holding a bag ``.yaml`` with its model files (e.g. made with
``hf download adefossez/HTDemucs --local-dir FOLDER``).

Named models come from the Hugging Face hub, as demucs 4.1 loads them
(``adefossez/HTDemucs``: ``htdemucs.yaml`` plus one ``.safetensors`` per model). The
cache is looked at first, and nothing goes to the network when ``HF_HUB_OFFLINE`` is
set or the hub cannot be reached, so a machine without the weights fails in well under
a second with a ``ModelLoadError`` saying how to get them, instead of retrying for
minutes (demucs' own ``get_model`` retries the hub, then falls back to another server).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ServerConfig
from ..errors import GenerationCancelled, InvalidInputError, ModelLoadError
from ..hub import WeightsUnavailable, hub_host, hub_reachable, is_local, load_failure_message
from ..model.model_thread import ephemeral_thread
from .arrays import check_audio

DEFAULT_STEMS_MODEL = "htdemucs"
STEMS_MODEL_ENV = "MOODTAPE_STEMS_MODEL"
HUB_NAMESPACE = "adefossez"  # where demucs publishes its models on the Hugging Face hub
OVERLAP = 0.25  # fraction of each segment cross-faded with the next (demucs' default)
LOCAL_FORM = "a Demucs .safetensors or .th file, or a folder holding a bag (.yaml) and its model files"

log = logging.getLogger(__name__)

SeparationProgress = Callable[[float], None]  # fraction of the separation done, 0..1


class StemSeparator:
    """Demucs behind a lock: loads lazily on first use, then separates every request.

    ``separate`` takes the track as ``[channels, samples]`` float32 at any rate and
    returns ``{stem: [channels, samples] float32}`` with the same rate, channel
    count and length.
    """

    def __init__(self, model_id: str | None = None, *, device: str | None = None, config: ServerConfig | None = None):
        self.config = config or ServerConfig.from_env()
        self.model_id = model_id or self.config.stems_model
        self._device = device
        self._model: Any = None
        self._load_lock = threading.Lock()
        self._separate_lock = threading.Lock()

    @classmethod
    def from_model(cls, model: Any, *, name: str = "custom", device: str = "cpu") -> StemSeparator:
        """A separator around an already built Demucs model or bag of models (tests, notebooks)."""
        separator = cls(name, device=device)
        separator._model = model.to(device).eval()
        return separator

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def device(self) -> str:
        if self._device is None:
            from ..model.loading import pick_device

            # Demucs' complex STFT is not supported on Apple's MPS backend in every torch release
            self._device = "cuda" if pick_device(self.config.device) == "cuda" else "cpu"
        return self._device

    @property
    def sources(self) -> tuple[str, ...]:
        self.load()
        return tuple(self._model.sources)

    @property
    def samplerate(self) -> int:
        self.load()
        return int(self._model.samplerate)

    @ephemeral_thread  # torch work on a request thread: see model_thread.py
    def load(self) -> None:
        """Load the model once; safe to call from many threads. Raises ``ModelLoadError``."""
        if self._model is not None:
            return
        with self._load_lock:
            if self._model is not None:
                return
            started = time.perf_counter()
            model = _load_demucs(self.model_id, self.config)
            self._model = model.to(self.device).eval()
            log.info("Loaded Demucs %s on %s in %.1f s", self.model_id, self.device, time.perf_counter() - started)

    def unload(self) -> None:
        """Free the weights; the next request loads them again."""
        with self._load_lock, self._separate_lock:
            self._model = None

    @ephemeral_thread
    def separate(
        self,
        audio: np.ndarray,
        sample_rate: int,
        *,
        on_progress: SeparationProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> dict[str, np.ndarray]:
        """Split ``[channels, samples]`` float audio into stems of the same shape and rate.

        Raises ``GenerationCancelled`` when ``cancel`` is set while it runs.
        """
        # 1. Check inputs
        audio = check_audio(audio)
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate < 8_000:
            raise InvalidInputError(f"sample rate must be a whole number of Hz, at least 8000, got {sample_rate!r}.")
        self.load()
        model = self._model

        import torch
        from demucs.apply import apply_model

        from .arrays import resample

        # 2. Match the model: its rate and channel count (a mono track is played to both ears)
        channels, samples = audio.shape
        sample_rate = int(sample_rate)
        mix = resample(audio.astype(np.float32), sample_rate, int(model.samplerate))
        if mix.shape[0] < model.audio_channels:
            mix = np.repeat(mix, model.audio_channels, axis=0)
        elif mix.shape[0] > model.audio_channels:
            mix = mix.mean(axis=0, keepdims=True)

        # 3. Separate in overlapping segments, on the level demucs was trained on
        mean, std = float(mix.mean()), float(mix.mean(axis=0).std()) + 1e-8
        watcher = _SegmentWatcher(_segments_total(model, mix.shape[-1]), on_progress, cancel)
        with self._separate_lock, torch.inference_mode():
            estimates = apply_model(
                model,
                torch.from_numpy((mix - mean) / std)[None],
                shifts=0,  # the random-shift trick doubles the time for about 0.2 dB SDR
                split=True,
                overlap=OVERLAP,
                device=self.device,
                callback=watcher,
            )[0]
        estimates = (estimates.float().cpu().numpy() * std + mean / len(model.sources)).astype(np.float32)

        # 4. Back to the track's rate, channels and exact length
        stems = {}
        for name, stem in zip(model.sources, estimates, strict=True):
            stem = resample(stem, int(model.samplerate), sample_rate)[:, :samples]
            if stem.shape[0] != channels:
                stem = stem.mean(axis=0, keepdims=True) if channels == 1 else np.repeat(stem, channels, axis=0)
            if stem.shape[-1] < samples:
                stem = np.pad(stem, ((0, 0), (0, samples - stem.shape[-1])))
            stems[name] = np.ascontiguousarray(stem, dtype=np.float32)
        if on_progress is not None:
            on_progress(1.0)
        return stems


class _SegmentWatcher:
    """demucs' apply_model callback: reports the fraction of segments done and raises on cancel."""

    def __init__(self, total: int, on_progress: SeparationProgress | None, cancel: threading.Event | None):
        self.total, self.on_progress, self.cancel = max(total, 1), on_progress, cancel
        self.done = 0

    def __call__(self, info: dict) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise GenerationCancelled("Stem separation was cancelled.")
        if info.get("state") == "end":
            self.done += 1
            if self.on_progress is not None:
                self.on_progress(min(self.done / self.total, 1.0))


def _segments_total(model: Any, length: int) -> int:
    """How many times apply_model will run a network on ``length`` samples (for progress)."""
    total = 0
    for sub in getattr(model, "models", [model]):
        segment_length = int(model.samplerate * Fraction(sub.segment))
        stride = max(1, int((1 - OVERLAP) * segment_length))
        total += len(range(0, length, stride))
    return total


# --- Loading --------------------------------------------------------------------------------------------


def _load_demucs(model_id: str, config: ServerConfig) -> Any:
    """Load a Demucs model or bag from a local file or folder, or by name from the hub (cache first)."""
    try:
        if is_local(model_id):
            return _load_local(Path(model_id).expanduser())
        return _load_from_hub(model_id, config)
    except (Exception, SystemExit) as e:  # demucs calls sys.exit() for a quantised model without diffq
        raise ModelLoadError(_load_failure_message(model_id, e, config)) from e


def _load_local(path: Path) -> Any:
    from demucs.apply import BagOfModels

    if path.is_file():
        return _load_model_file(path)
    bags = sorted(path.glob("*.yaml"))
    if len(bags) > 1:
        preferred = [bag for bag in bags if bag.stem == DEFAULT_STEMS_MODEL]
        if not preferred:
            names = ", ".join(bag.name for bag in bags)
            raise WeightsUnavailable(f"the folder holds several bags ({names}); point at one model file instead")
        bags = preferred
    if bags:
        import yaml

        bag = yaml.safe_load(bags[0].read_text())
        models = [_load_model_file(_model_file(path, signature)) for signature in bag["models"]]
        return BagOfModels(models, bag.get("weights"), bag.get("segment"))
    files = sorted([*path.glob("*.safetensors"), *path.glob("*.th")])
    if len(files) != 1:
        raise WeightsUnavailable(f"the folder holds {len(files)} model files and no bag .yaml")
    return _load_model_file(files[0])


def _model_file(folder: Path, signature: str) -> Path:
    for candidate in (
        folder / f"{signature}.safetensors",
        folder / f"{signature}.th",
        *folder.glob(f"{signature}-*.th"),
    ):
        if candidate.is_file():
            return candidate
    raise WeightsUnavailable(f"the bag names the model {signature}, but {folder} has no {signature}.safetensors or .th")


def _load_model_file(path: Path) -> Any:
    if path.suffix == ".safetensors":
        from demucs.hf import load_safetensors_model

        return load_safetensors_model(path)
    if path.suffix == ".th":
        from demucs.states import load_model

        return load_model(path)  # a pickle: only load files you trust
    raise WeightsUnavailable(f"'{path.name}' is neither a .safetensors nor a .th Demucs model file")


def _load_from_hub(model_id: str, config: ServerConfig) -> Any:
    from demucs.apply import BagOfModels
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo_id, name = _hub_repo(model_id)
    offline = config.hub_offline

    def fetch(filename: str) -> str:
        try:
            return hf_hub_download(repo_id, filename, local_files_only=True)
        except LocalEntryNotFoundError:
            if offline:
                raise WeightsUnavailable("it is not cached here and offline mode is on (HF_HUB_OFFLINE)") from None
            if not hub_reachable(config):
                raise WeightsUnavailable(f"it is not cached here and {hub_host(config)} cannot be reached") from None
            return hf_hub_download(repo_id, filename)

    import yaml

    with open(fetch(f"{name}.yaml")) as f:
        bag = yaml.safe_load(f)
    models = [_load_model_file(Path(fetch(f"{signature}.safetensors"))) for signature in bag["models"]]
    return BagOfModels(models, bag.get("weights"), bag.get("segment"))


def _load_failure_message(model_id: str, error: BaseException, config: ServerConfig) -> str:
    if isinstance(error, ImportError):
        reason = str(error).strip().splitlines()[0].rstrip(".") if str(error).strip() else type(error).__name__
        return f"Stems are unavailable: {reason}. Install Demucs with `pip install demucs==4.1.0`."
    message = load_failure_message(
        model_id,
        error,
        what="Demucs model",
        env=STEMS_MODEL_ENV,
        local_form=LOCAL_FORM,
        offline=config.hub_offline,
        repo=_hub_repo(model_id)[0],
    )
    return f"Stems are unavailable: {message}"


def _hub_repo(model_id: str) -> tuple[str, str]:
    """The hub repository and bag name of a demucs model name: htdemucs -> (adefossez/HTDemucs, htdemucs)."""
    name = model_id.removeprefix("hf://")
    namespace, name = name.split("/", 1) if "/" in name else (HUB_NAMESPACE, name)
    if name == "htdemucs":  # demucs.hf.hf_repo_name's mapping, kept here so messages need no demucs import
        repo = "HTDemucs"
    elif name.startswith("htdemucs_"):
        repo = "HTDemucs-" + name[len("htdemucs_") :]
    else:
        repo = "Demucs-" + name
    return f"{namespace}/{repo}", name
