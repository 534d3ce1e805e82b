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
import warnings
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class SeparationSettings:
    """How Demucs is run over a track; ``EXPORT_SEPARATION`` is the stems download's, ``MELODY_SEPARATION`` the
    melody path's (measured in ``benchmarks/melody_separation.py``, figures in docs/performance.md)."""

    overlap: float = OVERLAP  # fraction of each segment cross-faded with the next, 0 to 0.9
    shifts: int = 0  # random time shifts averaged; each one is a whole extra pass (about 0.2 dB SDR for double time)
    skip_tail: bool = False  # True: no segment starts once the one before reaches the end (see _offsets)
    int8: bool = False  # True: the linear layers (the transformer's) run with int8 weights, on a second model copy
    bf16: bool | None = False  # True: bfloat16 autocast; None: only where the CPU has AMX (slow without it)

    def __post_init__(self) -> None:
        if isinstance(self.overlap, bool) or not isinstance(self.overlap, (int, float)) or not 0 <= self.overlap <= 0.9:
            raise InvalidInputError(f"Separation overlap must be between 0 and 0.9, got {self.overlap!r}.")
        if isinstance(self.shifts, bool) or not isinstance(self.shifts, int) or not 0 <= self.shifts <= 10:
            raise InvalidInputError(f"Separation shifts must be a whole number from 0 to 10, got {self.shifts!r}.")

    def describe(self) -> str:
        """One line for logs and benchmarks."""
        bf16 = {True: "bf16 autocast", False: "fp32", None: "bf16 if AMX"}[self.bf16]
        parts = [f"overlap {self.overlap:g}" + (", no tail segment" if self.skip_tail else ""), f"shifts {self.shifts}"]
        parts += ["int8 linear" if self.int8 else "fp32 linear", bf16]
        return ", ".join(parts)


EXPORT_SEPARATION = SeparationSettings()  # the stems download: demucs' defaults, no random shifts
# The melody path keeps only the chroma of vocals plus other, an argmax per 128 ms frame: today's segments but
# not a last one that is mostly padding (30 s is 5 of 7.8 s, not 6), int8 linear layers, bfloat16 where the CPU
# has AMX. Fewer, less overlapped segments were faster still but moved the chroma (docs/performance.md).
MELODY_SEPARATION = SeparationSettings(skip_tail=True, int8=True, bf16=None)


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
        self._int8: tuple[Any, Any] = (None, None)  # (the model it was made from, its int8 copy)
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

    @ephemeral_thread
    def separate(
        self,
        audio: np.ndarray,
        sample_rate: int,
        *,
        on_progress: SeparationProgress | None = None,
        cancel: threading.Event | None = None,
        settings: SeparationSettings = EXPORT_SEPARATION,
    ) -> dict[str, np.ndarray]:
        """Split ``[channels, samples]`` float audio into stems of the same shape and rate.

        ``settings`` says how Demucs runs (the export's by default). Raises ``GenerationCancelled`` when ``cancel``
        is set while it runs.
        """
        # 1. Check inputs
        audio = check_audio(audio)
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate < 8_000:
            raise InvalidInputError(f"sample rate must be a whole number of Hz, at least 8000, got {sample_rate!r}.")
        if not isinstance(settings, SeparationSettings):
            raise InvalidInputError(f"settings must be a SeparationSettings, got {type(settings).__name__}.")
        self.load()

        import torch
        from demucs.apply import apply_model

        from .arrays import resample

        # 2. Match the model: its rate and channel count (a mono track is played to both ears)
        model = self._model_for(settings)
        channels, samples = audio.shape
        sample_rate = int(sample_rate)
        mix = resample(audio.astype(np.float32), sample_rate, int(model.samplerate))
        if mix.shape[0] < model.audio_channels:
            mix = np.repeat(mix, model.audio_channels, axis=0)
        elif mix.shape[0] > model.audio_channels:
            mix = mix.mean(axis=0, keepdims=True)

        # 3. Separate in overlapping segments, on the level demucs was trained on
        mean, std = float(mix.mean()), float(mix.mean(axis=0).std()) + 1e-8
        watcher = _SegmentWatcher(_segments_total(model, mix.shape[-1], settings), on_progress, cancel)
        bf16 = self.device == "cpu" and (_has_amx() if settings.bf16 is None else settings.bf16)
        with self._separate_lock, torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            normalised = torch.from_numpy((mix - mean) / std)[None]
            if settings.skip_tail and not settings.shifts:
                estimates = _without_tail(model, normalised, settings.overlap, self.device, watcher)[0]
            else:
                estimates = apply_model(
                    model,
                    normalised,
                    shifts=settings.shifts,
                    split=True,
                    overlap=settings.overlap,
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

    def _model_for(self, settings: SeparationSettings) -> Any:
        """The loaded model, or its int8 copy (made on first use, sharing every weight but the linear layers')."""
        if not settings.int8 or self.device != "cpu":
            return self._model
        with self._load_lock:
            model = self._model
            if self._int8[0] is not model:
                self._int8 = (model, _int8_copy(model))
            return self._int8[1]

    def unload(self) -> None:
        """Free the weights; the next request loads them again."""
        with self._load_lock, self._separate_lock:
            self._model = None
            self._int8 = (None, None)


def _int8_copy(model: Any) -> Any:
    """``model`` with int8 linear layers (a scale per output channel); its other weights are the same tensors."""
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    from ..model.loading import shared_weights_copy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch.ao's deprecation notice
        warnings.simplefilter("ignore", DeprecationWarning)
        return quantize_dynamic(
            shared_weights_copy(model), {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True
        )


def _without_tail(model: Any, mix: Any, overlap: float, device: str, callback: Callable[[dict], None]) -> Any:
    """apply_model's split and cross-fade for ``[batch, channels, samples]``, minus the segments ``_offsets`` skips.

    The stems are apply_model's up to the start of the first skipped segment, and its single covering segment's
    from there on.
    """
    import torch
    from demucs.apply import BagOfModels, TensorChunk, apply_model

    bag = isinstance(model, BagOfModels)
    subs, bag_weights = (model.models, model.weights) if bag else ([model], [[1.0] * len(model.sources)])
    estimates, totals = 0.0, [0.0] * len(model.sources)
    for sub, source_weights in zip(subs, bag_weights, strict=True):
        segment = int(model.samplerate * Fraction(sub.segment))
        weight = torch.cat([torch.arange(1, segment // 2 + 1), torch.arange(segment - segment // 2, 0, -1)]).float()
        weight = weight / weight.max()  # apply_model's triangle (transition power 1)
        out = torch.zeros(mix.shape[0], len(model.sources), *mix.shape[1:])
        total = torch.zeros(mix.shape[-1])
        for offset in _offsets(mix.shape[-1], segment, overlap, skip_tail=True):
            part = apply_model(
                sub, TensorChunk(mix, offset, segment), shifts=0, split=False, device=device, callback=callback
            ).to(out.device)
            out[..., offset : offset + part.shape[-1]] += weight[: part.shape[-1]] * part
            total[offset : offset + part.shape[-1]] += weight[: part.shape[-1]]
        out /= total
        for k, source_weight in enumerate(source_weights):
            out[:, k] *= source_weight
            totals[k] += source_weight
        estimates = estimates + out
    for k in range(len(model.sources)):
        estimates[:, k] /= totals[k]
    return estimates


def _offsets(length: int, segment: int, overlap: float, skip_tail: bool) -> list[int]:
    """Where segments start in a track of ``length`` samples: every ``(1 - overlap) * segment``, as apply_model.

    apply_model starts one until the track's end and pads each to the full segment, so 30 s at htdemucs' 7.8 s
    and 0.25 is 6 segments, the last holding 0.75 s of audio that the 5th already covers. ``skip_tail`` drops
    such segments.
    """
    stride = max(1, int((1 - overlap) * segment))
    return [o for o in range(0, length, stride) if not skip_tail or o == 0 or o - stride + segment < length]


def _has_amx() -> bool:
    """True where the CPU has AMX tiles, on which bfloat16 convolutions and matrix products are fast."""
    import torch

    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except AttributeError:
        return False


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


def _segments_total(model: Any, length: int, settings: SeparationSettings) -> int:
    """How many times apply_model will run a network on ``length`` samples (for progress)."""
    total = 0
    skip_tail = settings.skip_tail and not settings.shifts
    for sub in getattr(model, "models", [model]):
        segment = int(model.samplerate * Fraction(sub.segment))
        total += len(_offsets(length, segment, settings.overlap, skip_tail)) * max(1, settings.shifts)
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
