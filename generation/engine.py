"""Load MusicGen once and turn settings into audio arrays; no UI, no files.

Requests that arrive together for the same model are generated as one batch
(each keeps its own seed and settings, see ``sampling.py``); tracks longer than
one 30 s window are continued window by window, each conditioned on the end of
the last; new audio can be streamed to a callback while the rest is made.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import GenerationCancelled, InvalidInputError, ModelLoadError, OutOfMemory
from .settings import GenerationSettings

DEFAULT_TEXT_MODEL = "facebook/musicgen-small"
DEFAULT_MELODY_MODEL = "facebook/musicgen-melody"
TEXT_MODEL_ENV = "MUSICGEN_MODEL"
MELODY_MODEL_ENV = "MUSICGEN_MELODY_MODEL"
DEVICE_ENV = "MOODTAPE_DEVICE"  # force "cpu", "cuda" or "mps"
FAST_ENV = "MOODTAPE_FAST_CPU"  # "1": int8 weights for the decoder's linear layers on CPU (faster, slightly different)
MAX_BATCH_ENV = "MOODTAPE_MAX_BATCH"  # most requests generated together in one batch
TEXT, MELODY = "text", "melody"  # model families: text-conditioned, or text plus a melody's chroma
WINDOW_SECONDS = 30.0  # MusicGen's training window; longer tracks are continued window by window
EXTEND_STRIDE_SECONDS = 18.0  # new audio per continuation window; the other 12 s are the prompt (as audiocraft)
BATCH_GATHER_SECONDS = 0.05  # a batch leader waits this long for requests arriving at the same moment
DEFAULT_MAX_BATCH = 4  # 2 CPU cores: 4 at once gave 1.8x the throughput of one at a time
MAX_PROMPT_TOKENS = 256  # MusicGen was trained on short descriptions; longer prompts are cut to this many tokens

log = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int], None]  # (steps done, steps in total)
AudioCallback = Callable[[np.ndarray], None]  # new audio [channels, samples] while streaming


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
    mode: str = "exact"  # "exact", or "fast" (int8 decoder weights)
    batch_size: int = 1  # requests generated together with this one
    windows: int = 1  # 30 s windows it took
    notes: tuple[str, ...] = ()  # what the person should know: a prompt cut to what the encoder reads, ...

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


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(eq=False)
class _Job:
    """One request waiting for, or inside, a batch."""

    settings: GenerationSettings
    melody: Melody | None
    on_progress: ProgressCallback | None
    cancel: threading.Event | None
    on_audio: AudioCallback | None
    frames: int
    notes: tuple[str, ...] = ()
    done: threading.Event = field(default_factory=threading.Event)
    result: GeneratedAudio | None = None
    error: BaseException | None = None

    @property
    def batch_key(self) -> tuple:
        """Requests batch together only when they take the same steps with the same kind of input."""
        melody_length = None if self.melody is None else len(self.melody.samples)  # padding would change the chroma
        return (self.frames, melody_length)

    def finish(self, result: GeneratedAudio | None = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()


class MusicGenEngine:
    """MusicGen behind a scheduler: loads lazily on first use, then serves every request.

    ``model_id`` is a Hugging Face hub id or a local folder holding a checkpoint
    saved with ``save_pretrained`` (config, weights, tokenizer, processor).
    ``family`` is ``"text"`` (MusicGen) or ``"melody"`` (MusicGen-Melody, which
    also follows a hummed or played melody). ``fast`` (default: ``MOODTAPE_FAST_CPU``)
    stores the decoder's linear layers as int8 on CPU: about twice as fast, and the
    audio differs slightly from the exact path. ``max_batch`` (default:
    ``MOODTAPE_MAX_BATCH`` or 4) caps how many concurrent requests run as one batch.
    """

    def __init__(
        self,
        model_id: str | None = None,
        *,
        family: str = TEXT,
        revision: str | None = None,
        device: str | None = None,
        fast: bool | None = None,
        max_batch: int | None = None,
        window_seconds: float = WINDOW_SECONDS,
        extend_stride: float = EXTEND_STRIDE_SECONDS,
    ):
        if family not in (TEXT, MELODY):
            raise ValueError(f"family must be {TEXT!r} or {MELODY!r}, got {family!r}")
        if not 0 < extend_stride < window_seconds:
            raise ValueError(f"extend_stride must be between 0 and window_seconds, got {extend_stride}")
        self.family = family
        self.model_id = model_id or (text_model_id() if family == TEXT else melody_model_id())
        self.revision = revision
        self.fast = _env_flag(FAST_ENV) if fast is None else fast
        self.max_batch = max(1, max_batch or int(os.environ.get(MAX_BATCH_ENV, "") or DEFAULT_MAX_BATCH))
        self.window_seconds, self.extend_stride = window_seconds, extend_stride
        self._device = device
        self._model: Any = None
        self._processor: Any = None
        self._generate_lock = threading.Lock()  # held while this engine's batches run
        self._queue_lock = threading.Lock()
        self._waiting: list[_Job] = []

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = pick_device()
        return self._device

    @property
    def mode(self) -> str:
        """``"fast"`` when int8 decoder weights are in use, else ``"exact"``."""
        return "fast" if self.fast and self.device == "cpu" else "exact"

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

    @classmethod
    def from_model(cls, model: Any, processor: Any, model_id: str, **options: Any) -> MusicGenEngine:
        """An engine around a model already in memory (benchmarks build random full-size models this way).

        The engine works on its own copy of the module tree, sharing the weight tensors: the
        caller's model stays exactly as it was (the benchmark's plain baseline runs it).
        """
        from .lean_layers import lean_layers

        engine = cls(model_id, **options)
        model = _shared_weights_copy(model).to(engine.device).eval()
        if engine.mode == "fast":  # on the model thread: see _ModelThread
            model.decoder = on_model_thread(quantize_decoder, model.decoder)
        else:
            lean_layers(model.decoder)
        engine._model, engine._processor = model, processor
        return engine

    def load(self) -> None:
        """Load weights and processor once; safe to call from many threads (loads run one at a time)."""
        if self._model is None:
            on_model_thread(self._load_once)

    def _load_once(self) -> None:
        if self._model is None:  # another caller's load may have run first
            self._model, self._processor = self._load()

    def unload(self) -> None:
        """Free the weights; the next request loads them again."""
        with self._generate_lock:
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

                processor = MelodyProcessor.from_pretrained(self.model_id, revision=self.revision)
                model_class = MusicgenMelodyForConditionalGeneration
            model = model_class.from_pretrained(self.model_id, revision=self.revision, dtype=dtype)
        except Exception as e:  # transformers raises OSError, ValueError, HF hub errors...
            env = TEXT_MODEL_ENV if self.family == TEXT else MELODY_MODEL_ENV
            raise ModelLoadError(_load_failure_message(self.model_id, e, env)) from e
        from .lean_layers import lean_layers

        model = model.to(device).eval()
        model.decoder = quantize_decoder(model.decoder) if self.mode == "fast" else lean_layers(model.decoder)
        log.info(
            "Loaded %s on %s (%s, %s) in %.1f s", self.model_id, device, dtype, self.mode, time.perf_counter() - started
        )
        return model, processor

    def generate(
        self,
        settings: GenerationSettings,
        *,
        melody: Melody | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        on_audio: AudioCallback | None = None,
    ) -> GeneratedAudio:
        """Generate ``settings.duration`` seconds of audio for ``settings.prompt`` (and ``melody``).

        The same settings (seed included) and melody on the same machine give the same
        audio, whether the request ran alone or batched with others. ``on_audio`` receives
        new audio while it is made. Raises ``GenerationCancelled`` when ``cancel`` is set.
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
        notes = self._prompt_notes(settings.prompt)

        # 2. Queue the request; the model thread runs the oldest waiting requests as one batch
        frames = round(settings.duration * self.frame_rate)
        job = _Job(settings, melody, on_progress, cancel, on_audio, frames=frames, notes=notes)
        with self._queue_lock:
            self._waiting.append(job)
        on_model_thread(self._drain)
        job.done.wait()
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _drain(self) -> None:
        """On the model thread: run batches until no request of this engine is waiting."""
        with self._generate_lock:
            time.sleep(BATCH_GATHER_SECONDS)  # let requests sent at the same moment join the first batch
            while True:
                with self._queue_lock:
                    if not self._waiting:
                        return
                self._run(self._take_batch())

    def _prompt_notes(self, prompt: str) -> tuple[str, ...]:
        tokens = len(self._processor.tokenizer(prompt)["input_ids"])
        if tokens <= MAX_PROMPT_TOKENS:
            return ()
        return (
            f"The prompt was cut to its first {MAX_PROMPT_TOKENS} tokens (of {tokens}): the text encoder reads no "
            "more. Put what matters most first.",
        )

    def _take_batch(self) -> list[_Job]:
        with self._queue_lock:
            first = self._waiting[0]
            long_form = first.settings.duration > self.window_seconds
            limit = 1 if long_form else self.max_batch
            batch = [j for j in self._waiting if j.batch_key == first.batch_key][:limit]
            batch = batch if first in batch else [first]
            for job in batch:
                self._waiting.remove(job)
        return batch

    def _run(self, jobs: list[_Job]) -> None:
        try:
            if self._model is None:  # unloaded while these waited
                self.load()
            if jobs[0].settings.duration > self.window_seconds:
                results = [self._run_long(jobs[0])]
            else:
                results = self._run_window_batch(jobs)
        except BaseException as e:  # every waiting caller gets the error, then the engine serves the next batch
            if _is_out_of_memory(e) and len(jobs) > 1:
                log.warning("Out of memory with a batch of %d: running them one at a time", len(jobs))
                for job in jobs:
                    self._run([job])
                return
            if _is_out_of_memory(e):
                e = OutOfMemory(
                    f"The server ran out of memory making {jobs[0].settings.duration:g} s of audio. "
                    "Try a shorter duration, or try again when it is less busy."
                )
            for job in jobs:
                job.finish(error=e)
            return
        for job, result in zip(jobs, results, strict=True):
            if job.cancel is not None and job.cancel.is_set():
                job.finish(error=GenerationCancelled("Generation was cancelled."))
            else:
                job.finish(result=result)

    def _run_window_batch(self, jobs: list[_Job]) -> list[GeneratedAudio]:
        """One window (up to 30 s) for a batch of requests with the same length."""
        started = time.perf_counter()
        streamers = [_stream_for(job, self._model) for job in jobs]
        codes, audio = self._sample_window(jobs, jobs[0].frames, streamers=streamers)
        for streamer, job_codes in zip(streamers, codes, strict=True):
            if streamer is not None:
                streamer.finish(job_codes)
        taken = time.perf_counter() - started
        samples = round(jobs[0].settings.duration * self.sample_rate)
        return [
            self._result(job, audio[i][:, :samples], codes[i], taken, batch_size=len(jobs), windows=1)
            for i, job in enumerate(jobs)
        ]

    def _run_long(self, job: _Job) -> GeneratedAudio:
        """A track longer than one window: each new window continues the last ``window - stride`` seconds."""
        from .decoding import decode_all

        started = time.perf_counter()
        fps = self.frame_rate
        window, stride = round(self.window_seconds * fps), round(self.extend_stride * fps)
        plan = [window] + [stride] * -(-(job.frames - window) // stride)
        plan[-1] -= sum(plan) - job.frames  # the last window makes only what is left
        total_steps = sum(n + self._num_codebooks - 1 for n in plan)
        streamer = _stream_for(job, self._model)
        codes = None
        done_steps = 0
        for index, new_frames in enumerate(plan):
            prompt = None if codes is None else codes[:, -(window - stride) :]
            offset_s = 0.0 if codes is None else (codes.shape[-1] - prompt.shape[-1]) / fps
            progress = _offset_progress(job.on_progress, done_steps, total_steps)
            melody = _melody_from(job.melody, offset_s)
            window_job = replace(job, on_progress=progress, frames=new_frames, melody=melody)
            window_codes, _ = self._sample_window(
                [window_job], new_frames, prompt=prompt, streamers=[streamer], earlier=codes, decode=False
            )
            new = window_codes[0] if prompt is None else window_codes[0][:, prompt.shape[-1] :]
            codes = new if codes is None else _cat(codes, new)
            done_steps += new_frames + self._num_codebooks - 1
            log.info("Long-form window %d/%d done: %.1f s of audio so far", index + 1, len(plan), codes.shape[-1] / fps)
        if streamer is not None:
            streamer.finish(codes)
        audio = decode_all(self._model.audio_encoder, codes, self._audio_channels)
        samples = round(job.settings.duration * self.sample_rate)
        return self._result(job, audio[:, :samples], codes, time.perf_counter() - started, 1, len(plan))

    @property
    def _num_codebooks(self) -> int:
        return int(self._model.decoder.num_codebooks)

    @property
    def _audio_channels(self) -> int:
        return int(self._model.decoder.config.audio_channels)

    def _sample_window(
        self, jobs: list[_Job], new_frames: int, *, prompt=None, streamers=(), earlier=None, decode: bool = True
    ):
        """Sample ``new_frames`` of codes (after an optional code ``prompt``) for each job; return codes and audio.

        Codes come back per job as ``[rows, prompt frames + new frames]``; audio is generate's own decode,
        or empty with ``decode=False`` (a long track decodes all its windows' codes once, at the end).
        ``earlier`` holds all codes of a long track so far (ending with ``prompt``), for streaming.
        """
        import torch

        # A submodule import: transformers' lazy top-level names are not safe to resolve from several threads.
        from transformers.generation.logits_process import LogitsProcessorList
        from transformers.generation.stopping_criteria import StoppingCriteriaList

        from .kvcache import in_place_appends
        from .sampling import RowControl, SeededSampler, StepWatcher

        model, processor = self._model, self._processor
        # 1. Encode the prompts (and melodies' chroma)
        prompts = [job.settings.prompt for job in jobs]
        if self.family == TEXT:
            inputs = processor(
                text=prompts, padding=True, truncation=True, max_length=MAX_PROMPT_TOKENS, return_tensors="pt"
            )
        else:
            inputs = processor(prompts, [job.melody for job in jobs])
        inputs = inputs.to(self.device)
        if "input_features" in inputs:
            inputs["input_features"] = inputs["input_features"].to(model.dtype)
        rows = self._num_codebooks * self._audio_channels
        if prompt is not None:
            inputs["decoder_input_ids"] = prompt.to(self.device).reshape(len(jobs) * rows, -1)

        # 2. Sample: greedy over logits our sampler has already drawn from, one seeded stream per request
        steps = new_frames + self._num_codebooks - 1  # the codebook delay pattern costs a few steps
        prompt_frames = 0 if prompt is None else prompt.shape[-1]
        controls = [RowControl(steps, job.on_progress, job.cancel) for job in jobs]
        for i, streamer in enumerate(streamers):
            if streamer is not None:
                controls[i].on_tokens = _stream_hook(
                    streamer,
                    slice(i * rows, (i + 1) * rows),
                    self._num_codebooks,
                    self._audio_channels,
                    prompt_frames,
                    earlier,
                )
        watcher = StepWatcher(controls)
        settings = [replace(job.settings, seed=_window_seed(job.settings.seed, prompt_frames)) for job in jobs]
        sampler = SeededSampler(settings, rows, self.device)
        skip = _without_decoding(model.audio_encoder) if not decode else contextlib.nullcontext()
        with torch.inference_mode(), in_place_appends(), skip:
            audio = model.generate(
                **inputs,
                max_new_tokens=steps,
                do_sample=False,
                guidance_scale=3.0 if sampler.guided else None,  # any value > 1: doubles the batch for guidance
                logits_processor=LogitsProcessorList([sampler]),
                stopping_criteria=StoppingCriteriaList([watcher]),
            )
        total = prompt_frames + new_frames
        codes = _undelay(watcher.last_ids, total, self._audio_channels, rows).reshape(len(jobs), rows, total)
        if prompt is not None:  # the raw ids hold sampled tokens where the delay mask later restores the prompt
            codes[:, :, :prompt_frames] = prompt.to(codes.device).reshape(len(jobs), rows, prompt_frames)
        arrays = [audio[i].float().cpu().numpy() for i in range(len(jobs))]
        return codes, arrays

    def _result(self, job: _Job, audio, codes, taken: float, batch_size: int, windows: int) -> GeneratedAudio:
        return GeneratedAudio(
            audio=np.ascontiguousarray(audio, dtype=np.float32),
            sample_rate=self.sample_rate,
            settings=job.settings,
            model_id=self.model_id,
            model_revision=self.model_revision,
            device=self.device,
            dtype=str(self._model.dtype).removeprefix("torch."),
            seconds_taken=taken,
            codes=codes.cpu().numpy(),
            mode=self.mode,
            batch_size=batch_size,
            windows=windows,
            notes=job.notes,
        )


@contextlib.contextmanager
def _without_decoding(codec: Any) -> Iterator[None]:
    """Within the block, ``codec.decode`` returns no audio.

    ``generate`` always decodes what it made; a long track's windows would each decode up to 30 s
    that is thrown away (measured: 1.7 s for a 14 s window on 2 cores), as the track is decoded whole.
    """
    from types import SimpleNamespace

    def no_audio(audio_codes, *args, **kwargs):
        batch = audio_codes.shape[1]  # codes are [chunks, batch, codebooks, frames]
        return SimpleNamespace(audio_values=audio_codes.new_zeros((batch, 1, 0), dtype=codec.dtype))

    codec.decode = no_audio
    try:
        yield
    finally:
        del codec.decode  # the class's own method again


def _is_out_of_memory(error: BaseException) -> bool:
    import torch

    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


class _ModelThread:
    """One long-lived thread for all model work.

    torch's OpenMP threads run fastest for the first thread that uses them: on 2 cores a
    2 s musicgen-small clip took 7.8 s there and 10.7 s from any other thread (whose work
    competes with the first team's spinning workers). So loading and generation always
    run here; request threads queue work and wait. It also keeps two loads from running
    at once, which corrupts transformers' global meta-device state.
    """

    def __init__(self) -> None:
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is self._thread:
            return fn(*args, **kwargs)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="moodtape-model", daemon=True)
                self._thread.start()
        future: Future = Future()
        self._tasks.put((future, fn, args, kwargs))
        return future.result()

    def _serve(self) -> None:
        while True:
            future, fn, args, kwargs = self._tasks.get()
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as e:  # handed to the waiting caller
                future.set_exception(e)


_MODEL_THREAD = _ModelThread()


def on_model_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` on the model thread (at once if already there) and return its result."""
    return _MODEL_THREAD.run(fn, *args, **kwargs)


def quantize_decoder(decoder: Any) -> Any:
    """Fast mode's decoder, changed in place: joined QKV projections, int8 linear layers, lean layers.

    The float weight tensors are only read, so a decoder sharing them with another model may be passed.
    Weights are int8 with a scale per output channel; activations are quantised per call.
    """
    import warnings

    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    from .lean_layers import join_qkv, lean_layers

    join_qkv(decoder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch.ao's deprecation notice; still the fastest CPU int8 path
        warnings.simplefilter("ignore", DeprecationWarning)
        quantized = quantize_dynamic(
            decoder, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True
        )
    return lean_layers(quantized)


def _shared_weights_copy(module: Any) -> Any:
    """A copy of a module tree whose parameters and buffers are the original tensors (no weights are copied)."""
    shared = {id(t): t for t in itertools.chain(module.parameters(), module.buffers())}
    return copy.deepcopy(module, shared)


def _window_seed(seed: int, prompt_frames: int) -> int:
    """Each continuation window draws from its own stream, derived from the request's seed."""
    return seed if prompt_frames == 0 else (seed * 1_000_003 + prompt_frames) % (2**31 - 1)


def _offset_progress(callback: ProgressCallback | None, before: int, total: int) -> ProgressCallback | None:
    if callback is None:
        return None
    return lambda done, _window_total: callback(before + done, total)


def _melody_from(melody: Melody | None, offset_s: float) -> Melody | None:
    """The melody as heard from ``offset_s`` on, looping a short hum to cover a long track."""
    if melody is None or offset_s <= 0:
        return melody
    start = round(offset_s * melody.sample_rate) % len(melody.samples)
    return Melody(np.roll(melody.samples, -start), melody.sample_rate)


def _stream_for(job: _Job, model: Any):
    if job.on_audio is None:
        return None
    from .decoding import StreamingDecoder

    return StreamingDecoder(model.audio_encoder, job.on_audio, channels=int(model.decoder.config.audio_channels))


def _stream_hook(streamer, rows: slice, codebooks: int, channels: int, prompt_frames: int, earlier):
    """A per-step callback that hands one request's complete frames so far to its streaming decoder."""

    def on_tokens(ids, step: int) -> None:
        streamer.update(_frames_so_far(ids[rows], step - codebooks + 1, channels, prompt_frames, earlier))

    return on_tokens


def _cat(a, b):
    import torch

    return torch.cat([a, b], dim=-1)


def _frames_so_far(ids, new_complete: int, channels: int, prompt_frames: int, earlier=None):
    """All codes so far: ``earlier`` windows' codes, then this window's new frames complete in every codebook."""
    new = _undelay(ids, max(0, new_complete), channels, start=prompt_frames)
    return new if earlier is None else _cat(earlier, new)


def _undelay(ids: Any, frames: int, channels: int, rows_per_request: int | None = None, start: int = 0):
    """Frames ``start:start + frames`` per codebook, without MusicGen's delay pattern (codebook k starts k late).

    ``ids`` is ``[batch * rows, 1 + steps]`` (BOS first); returns ``[batch * rows, frames]``.
    """
    import torch

    per_request = rows_per_request or ids.shape[0]
    delays = [(r % per_request) // channels for r in range(ids.shape[0])]
    return torch.stack([ids[r, 1 + d + start : 1 + d + start + frames] for r, d in enumerate(delays)])


class MelodyProcessor:
    """MusicGen-Melody's inputs without torchaudio: T5 tokens plus our own chroma (see ``melody.py``)."""

    def __init__(self, tokenizer: Any, extractor: Any):
        self.tokenizer, self.extractor = tokenizer, extractor

    @classmethod
    def from_pretrained(cls, model_id: str, revision: str | None = None) -> MelodyProcessor:
        from transformers import AutoTokenizer

        from .melody import ChromaExtractor

        folder = Path(model_id).expanduser()
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(model_id, revision=revision, allow_patterns=["*.json"]))
        return cls(AutoTokenizer.from_pretrained(model_id, revision=revision), ChromaExtractor.from_pretrained(folder))

    def __call__(self, prompts: list[str], melodies: list[Melody | None]) -> Any:
        inputs = self.tokenizer(
            prompts, padding=True, truncation=True, max_length=MAX_PROMPT_TOKENS, return_tensors="pt"
        )
        given = [m for m in melodies if m is not None]
        if given:
            if len(given) != len(melodies):
                raise ValueError("a batch must give a melody for every request or for none")
            rate = given[0].sample_rate
            inputs["input_features"] = self.extractor([m.samples for m in given], rate)
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
