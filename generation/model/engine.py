"""Load MusicGen once and turn settings into audio arrays; no UI, no files.

Requests that arrive together for the same model are generated as one batch
(each keeps its own seed and settings, see ``sampling.py``); tracks longer than
one 30 s window are continued window by window, each conditioned on the end of
the last; new audio can be streamed to a callback while the rest is made.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..config import ServerConfig
from ..errors import GenerationCancelled, InvalidInputError, OutOfMemory
from ..settings import GenerationSettings
from .codes import join, undelay, window_seed
from .loading import load_checkpoint, pick_device, prepare_for_generation, shared_weights_copy
from .model_thread import on_model_thread
from .types import (
    MAX_PROMPT_TOKENS,
    MELODY,
    TEXT,
    AudioCallback,
    GeneratedAudio,
    Melody,
    ProgressCallback,
)

TEXT_MODEL_ENV = "MUSICGEN_MODEL"  # named in load-failure messages
MELODY_MODEL_ENV = "MUSICGEN_MELODY_MODEL"
WINDOW_SECONDS = 30.0  # MusicGen's training window; longer tracks are continued window by window
EXTEND_STRIDE_SECONDS = 18.0  # new audio per continuation window; the other 12 s are the prompt (as audiocraft)
BATCH_GATHER_SECONDS = 0.05  # a batch leader waits this long for requests arriving at the same moment

log = logging.getLogger(__name__)


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
    also follows a hummed or played melody). ``fast`` stores the decoder's linear
    layers as int8 on CPU: about twice as fast, and the audio differs slightly from
    the exact path. ``max_batch`` caps how many concurrent requests run as one batch.
    What is not given comes from ``config`` (default: ``ServerConfig.from_env()``).
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
        config: ServerConfig | None = None,
    ):
        if family not in (TEXT, MELODY):
            raise ValueError(f"family must be {TEXT!r} or {MELODY!r}, got {family!r}")
        if not 0 < extend_stride < window_seconds:
            raise ValueError(f"extend_stride must be between 0 and window_seconds, got {extend_stride}")
        self.config = config or ServerConfig.from_env()
        self.family = family
        self.model_id = model_id or (self.config.text_model if family == TEXT else self.config.melody_model)
        self.revision = revision
        self.fast = self.config.fast_cpu if fast is None else fast
        self.max_batch = max(1, max_batch or self.config.max_batch)
        self.window_seconds, self.extend_stride = window_seconds, extend_stride
        self._device = device or self.config.device
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
            self._device = pick_device(self.config.device)
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
        engine = cls(model_id, **options)
        copied = shared_weights_copy(model)
        engine._model = on_model_thread(prepare_for_generation, copied, engine.device, engine.mode == "fast")
        engine._processor = processor
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
        return load_checkpoint(
            self.model_id,
            self.family,
            revision=self.revision,
            device=self.device,
            fast=self.mode == "fast",
            env=TEXT_MODEL_ENV if self.family == TEXT else MELODY_MODEL_ENV,
            offline=self.config.hub_offline,
        )

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
            codes = new if codes is None else join(codes, new)
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

        from .decoding import stream_hook, without_decoding
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
                controls[i].on_tokens = stream_hook(
                    streamer,
                    slice(i * rows, (i + 1) * rows),
                    self._num_codebooks,
                    self._audio_channels,
                    prompt_frames,
                    earlier,
                )
        watcher = StepWatcher(controls)
        settings = [replace(job.settings, seed=window_seed(job.settings.seed, prompt_frames)) for job in jobs]
        sampler = SeededSampler(settings, rows, self.device)
        skip = without_decoding(model.audio_encoder) if not decode else contextlib.nullcontext()
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
        codes = undelay(watcher.last_ids, total, self._audio_channels, rows).reshape(len(jobs), rows, total)
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


def _is_out_of_memory(error: BaseException) -> bool:
    import torch

    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


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
