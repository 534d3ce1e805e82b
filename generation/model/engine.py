"""Load MusicGen once and turn settings into audio arrays; no UI, no files.

Requests that arrive together for the same model are generated as one batch
(each keeps its own seed and settings, see ``sampling.py``); tracks longer than
one 30 s window are continued window by window, each conditioned on the end of
the last; new audio can be streamed to a callback while the rest is made.
An extend continues given audio the same way: its end, as codes, prompts the
first window (``continuation.py``). A negative prompt conditions guidance's
unconditional half (``guidance.py``). Several takes of one request run as one batch.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from dataclasses import replace
from typing import Any

import numpy as np

from ..config import ServerConfig
from ..errors import InvalidInputError
from ..settings import MAX_SEED, GenerationSettings
from .batcher import BatchQueue, Job
from .codes import join, undelay, window_seed
from .continuation import LEAD_IN_FRAMES, encode_prompt, prompt_samples
from .loading import load_checkpoint, pick_device, prepare_for_generation, shared_weights_copy
from .model_thread import on_model_thread
from .spec import EngineSpec, SpecEngine, check_takes
from .types import (
    MAX_PROMPT_TOKENS,
    MELODY,
    TEXT,
    AudioCallback,
    AudioPrompt,
    GeneratedAudio,
    Melody,
    ProgressCallback,
)

TEXT_MODEL_ENV = "MUSICGEN_MODEL"  # named in load-failure messages
MELODY_MODEL_ENV = "MUSICGEN_MELODY_MODEL"
_SHARED_PROMPT_GROUPS = itertools.count()  # one number per call of generate_takes(share_prompt=True)

log = logging.getLogger(__name__)


class MusicGenEngine(SpecEngine):
    """MusicGen behind a scheduler: loads lazily on first use, then serves every request.

    ``spec`` says which model and how (``EngineSpec``: model id, family, device, fast mode, decoding loop,
    batch size, windows); what it leaves open comes from ``config`` (default: ``ServerConfig.from_env()``).
    ``MusicGenEngine(EngineSpec(model_id=path, fast=False))`` is an exact-path engine for a local checkpoint.
    """

    def __init__(self, spec: EngineSpec | None = None, *, config: ServerConfig | None = None):
        super().__init__(spec, config)
        self._device = self.spec.device  # None until the first use picks one for this machine
        self._graphs: Any = None  # CUDA graphs of the decoding step, captured per bucket on first use
        self._model: Any = None
        self._processor: Any = None
        self._queue = BatchQueue(self.spec.max_batch, self._run_batch, self._is_long)

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
        """``"fast"`` when int8 decoder weights are in use (on CPU, unless forced off), else ``"exact"``."""
        return "fast" if self.spec.fast is not False and self.device == "cpu" else "exact"

    @property
    def decoding(self) -> str:
        """The decoding loop: ``"static"`` (Moodtape's own) or ``"generate"`` (transformers')."""
        if self.spec.decoding is not None:
            return self.spec.decoding
        return "static" if self.mode == "fast" or self.device.startswith("cuda") else "generate"

    @property
    def graph_capture_seconds(self) -> dict[tuple[int, int, int], float]:
        """Seconds each CUDA graph of the decoding step took to capture, by (rows, positions, text tokens)."""
        return {} if self._graphs is None else dict(self._graphs.capture_seconds)

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
    def from_model(
        cls, model: Any, processor: Any, spec: EngineSpec, *, config: ServerConfig | None = None
    ) -> MusicGenEngine:
        """An engine around a model already in memory (benchmarks build random full-size models this way).

        The engine works on its own copy of the module tree, sharing the weight tensors: the
        caller's model stays exactly as it was (the benchmark's plain baseline runs it). ``spec.model_id``
        names the model in messages and recipes.
        """
        engine = cls(spec, config=config)
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
        with self._queue.running:
            self._model = self._processor = None
            self._graphs = None  # captured steps hold the old weights and their own buffers

    def _load(self) -> tuple[Any, Any]:
        return load_checkpoint(
            self.model_id,
            self.family,
            revision=self.spec.revision,
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
        audio_prompt: AudioPrompt | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        on_audio: AudioCallback | None = None,
    ) -> GeneratedAudio:
        """Generate ``settings.duration`` seconds of audio for ``settings.prompt`` (and ``melody``).

        With ``audio_prompt`` (an extend) the audio continues the end of that audio, and the result holds
        only the new ``settings.duration`` seconds. The same settings (seed included), melody and audio
        prompt on the same machine give the same audio, whether the request ran alone or batched with
        others. ``on_audio`` receives new audio while it is made. Raises ``GenerationCancelled`` when
        ``cancel`` is set.
        """
        job = self._job(settings.with_seed(), melody, audio_prompt, on_progress, cancel, on_audio)
        return self._queue.submit([job])[0]

    def generate_takes(
        self,
        settings: GenerationSettings,
        takes: int,
        *,
        melody: Melody | None = None,
        audio_prompt: AudioPrompt | None = None,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        share_prompt: bool = False,
    ) -> list[GeneratedAudio]:
        """``takes`` takes of one request, with seeds ``seed``, ``seed + 1``, ... (a missing seed is drawn).

        The takes are queued together, so they run as one batch (up to ``max_batch``); each is exactly
        what ``generate`` gives for its seed alone. ``on_progress`` sees the steps of all takes together.
        ``share_prompt`` (a section's candidates): in fast mode the takes batch only with each other and read
        their ``audio_prompt``'s keys and values once a step; a take then equals itself in the same call, not
        its seed made alone.
        """
        # 1. Check inputs
        check_takes(takes)
        settings = settings.with_seed()
        assert settings.seed is not None

        # 2. One request's checks and audio prompt, shared by every take; the seeds wrap past MAX_SEED
        first = self._job(settings, melody, audio_prompt, None, cancel, None)
        progress = _TakesProgress(on_progress, takes) if on_progress is not None else None
        group = next(_SHARED_PROMPT_GROUPS) if share_prompt and audio_prompt is not None else None
        jobs = [
            replace(
                first,
                shared_prompt_group=group,
                settings=replace(settings, seed=(settings.seed + i) % (MAX_SEED + 1)),
                on_progress=None if progress is None else progress.for_take(i),
                done=threading.Event(),
            )
            for i in range(takes)
        ]
        # 3. Queue them together: the model thread takes them as one batch
        return self._queue.submit(jobs)

    def _job(
        self,
        settings: GenerationSettings,
        melody: Melody | None,
        audio_prompt: AudioPrompt | None,
        on_progress: ProgressCallback | None,
        cancel: threading.Event | None,
        on_audio: AudioCallback | None,
    ) -> Job:
        """Check one request and prepare what it needs before queueing: notes, and an extend's prompt codes."""
        if melody is not None and self.family != MELODY:
            raise InvalidInputError(
                f"The model '{self.model_id}' follows text only; a melody needs a MusicGen-Melody model."
            )
        if audio_prompt is not None and not isinstance(audio_prompt, AudioPrompt):
            raise InvalidInputError(f"audio_prompt must be an AudioPrompt, got {type(audio_prompt).__name__}.")
        if not settings.prompt and melody is None and audio_prompt is None:
            raise InvalidInputError("The prompt is empty: describe the music, e.g. 'rainy night, mellow piano, slow'.")
        self.load()
        notes, tokens = self._text_notes(settings)
        prompt = None
        if audio_prompt is not None:
            prompt, note = self._audio_prompt_codes(audio_prompt)
            notes += note
        # Enough whole frames to cover the duration: a duration between frames rounds up, then audio is cut
        frames = math.ceil(round(settings.duration * self.frame_rate, 6))
        return Job(
            settings,
            melody,
            on_progress,
            cancel,
            on_audio,
            frames=frames,
            prompt=prompt,
            prefix_tokens=tokens if self.family == MELODY else 0,
            notes=notes,
        )

    def _text_notes(self, settings: GenerationSettings) -> tuple[tuple[str, ...], int]:
        """Notes on the prompt and negative prompt, and the longer one's token count (as the encoder reads it)."""
        notes: list[str] = []
        counts = [0]
        texts = [("prompt", settings.prompt)]
        if settings.negative_prompt and settings.guidance_scale <= 1:
            notes.append(
                "The negative prompt did nothing: it steers guidance, and guidance is off (guidance_scale 1). "
                "Raise guidance_scale above 1 (3 is MusicGen's default) to steer away from it."
            )
        elif settings.negative_prompt:
            texts.append(("negative prompt", settings.negative_prompt))
        for name, text in texts:
            tokens = len(self._processor.tokenizer(text)["input_ids"])
            counts.append(min(tokens, MAX_PROMPT_TOKENS))
            if tokens > MAX_PROMPT_TOKENS:
                notes.append(
                    f"The {name} was cut to its first {MAX_PROMPT_TOKENS} tokens (of {tokens}): the text encoder "
                    "reads no more. Put what matters most first."
                )
        return tuple(notes), max(counts)

    def _audio_prompt_codes(self, audio_prompt: AudioPrompt) -> tuple[Any, tuple[str, ...]]:
        """An extend's audio prompt as codes ``[rows, frames]`` (encoded once, on the model thread), and a note."""
        samples = prompt_samples(
            audio_prompt,
            sample_rate=self.sample_rate,
            channels=self._audio_channels,
            hop=self._hop,
            max_seconds=self.spec.prompt_seconds,
        )
        codes = on_model_thread(encode_prompt, self._model.audio_encoder, samples, self._num_codebooks)
        given = np.shape(audio_prompt.samples)[-1] / audio_prompt.sample_rate
        used = samples.shape[-1] / self.sample_rate
        if given - used <= 1 / self.frame_rate:  # all of it, but for less than a frame cut to whole frames
            return codes, ()
        return codes, (f"The model continued the last {used:.1f} s of the {given:.1f} s given; it hears no more.",)

    @property
    def _hop(self) -> int:
        """Audio samples per codec frame."""
        return round(self.sample_rate / self.frame_rate)

    @property
    def _window_frames(self) -> int:
        return round(self.spec.window_seconds * self.frame_rate)

    def _is_long(self, job: Job) -> bool:
        """Whether the request's audio prompt and new frames together need more than one window."""
        return job.prompt_frames + job.frames > self._window_frames

    def _run_batch(self, jobs: list[Job]) -> list[GeneratedAudio]:
        """On the model thread: one batch of one window, or one long track window by window."""
        if self._model is None:  # unloaded while these waited
            self.load()
        if self._is_long(jobs[0]):
            return [self._run_long(jobs[0])]
        return self._run_window_batch(jobs)

    def _run_window_batch(self, jobs: list[Job]) -> list[GeneratedAudio]:
        """One window (up to 30 s, audio prompt included) for a batch of requests with the same batch key."""
        import torch

        started = time.perf_counter()
        streamers = [_stream_for(job, self._model) for job in jobs]
        start = jobs[0].prompt_frames
        prompt = None if start == 0 else torch.stack([job.prompt for job in jobs])
        # An extend's window starts with its audio prompt; the melody starts with the new audio
        window_jobs = [replace(job, melody=_melody_from(job.melody, -start / self.frame_rate)) for job in jobs]
        earlier = [job.prompt for job in jobs]
        codes = self._sample_window(window_jobs, jobs[0].frames, prompt=prompt, streamers=streamers, earlier=earlier)
        audios = []
        for streamer, job_codes in zip(streamers, codes, strict=True):
            if streamer is not None:
                streamer.finish(job_codes)
            audios.append(self._decode(job_codes, start))
        taken = time.perf_counter() - started
        return [
            self._result(job, audio, job_codes[:, start:], taken, len(jobs), windows=1)
            for job, audio, job_codes in zip(jobs, audios, codes, strict=True)
        ]

    def _decode(self, codes, start: int) -> np.ndarray:
        """Audio for one request's codes from frame ``start`` on (past an extend's audio prompt), lead-in first.

        Each request is decoded alone: its audio is then the same whatever it was batched with. An extend's new
        audio is decoded in pieces with its audio prompt's end as context, as streaming decodes it; its lead-in
        (the prompt's last ``LEAD_IN_FRAMES``) is decoded on its own with the new audio's start as look-ahead.
        """
        from .decoding import decode_all, decode_range, decode_whole

        codec, channels = self._model.audio_encoder, self._audio_channels
        chunked = self.mode == "fast"  # the codec's last layers chunk by chunk: the same audio up to rounding
        if start == 0 and codes.shape[-1] <= self._window_frames:
            return decode_whole(codec, codes, channels, chunked)  # as generate decodes one request
        new = decode_all(codec, codes, channels, start, chunked)
        if start == 0:
            return new
        lead_in = decode_range(codec, codes, max(0, start - LEAD_IN_FRAMES), start, channels, chunked)
        return np.concatenate([lead_in, new], -1)

    def _plan(self, job: Job) -> list[int]:
        """New frames per window: the first fills the window after any audio prompt, the rest a stride each."""
        stride = round(self.spec.extend_stride * self.frame_rate)
        first = min(job.frames, self._window_frames - job.prompt_frames)
        plan = [first] + [stride] * -(-(job.frames - first) // stride)
        plan[-1] -= sum(plan) - job.frames  # the last window makes only what is left
        return plan

    def _run_long(self, job: Job) -> GeneratedAudio:
        """More than one window: each new window continues the last ``window - stride`` seconds.

        An extend's first window continues its whole audio prompt (``prompt_seconds`` at most).
        """
        started = time.perf_counter()
        fps = self.frame_rate
        context = self._window_frames - round(self.spec.extend_stride * fps)
        plan = self._plan(job)
        total_steps = sum(n + self._num_codebooks - 1 for n in plan)
        streamer = _stream_for(job, self._model)
        codes, start = job.prompt, job.prompt_frames  # codes so far: the audio prompt's, then the new ones
        done_steps = 0
        for index, new_frames in enumerate(plan):
            prompt = None if codes is None else codes if index == 0 else codes[:, -context:]
            # where this window starts, in seconds from the start of the new audio (an extend's first: before it)
            offset_s = 0.0 if codes is None else (codes.shape[-1] - prompt.shape[-1] - start) / fps
            progress = _offset_progress(job.on_progress, done_steps, total_steps)
            melody = _melody_from(job.melody, offset_s)
            window_job = replace(job, on_progress=progress, frames=new_frames, melody=melody)
            window_codes = self._sample_window(
                [window_job],
                new_frames,
                prompt=None if prompt is None else prompt[None],
                streamers=[streamer],
                earlier=[codes],
            )
            new = window_codes[0] if prompt is None else window_codes[0][:, prompt.shape[-1] :]
            codes = new if codes is None else join(codes, new)
            done_steps += new_frames + self._num_codebooks - 1
            made = (codes.shape[-1] - start) / fps
            log.info("Long-form window %d/%d done: %.1f s of new audio so far", index + 1, len(plan), made)
        if streamer is not None:
            streamer.finish(codes)
        audio = self._decode(codes, start)
        return self._result(job, audio, codes[:, start:], time.perf_counter() - started, 1, len(plan))

    @property
    def _num_codebooks(self) -> int:
        """Codebooks per audio channel (4); transformers' ``decoder.num_codebooks`` counts every channel's."""
        return int(self._model.decoder.num_codebooks) // self._audio_channels

    @property
    def _audio_channels(self) -> int:
        return int(self._model.decoder.config.audio_channels)

    def _sample_window(self, jobs: list[Job], new_frames: int, *, prompt=None, streamers=(), earlier=()):
        """Sample ``new_frames`` of codes (after an optional code ``prompt``) for each job.

        ``prompt`` is ``[jobs, rows, frames]``. Codes come back as ``[jobs, rows, prompt frames + new
        frames]``; generate's own decode is skipped (each caller decodes what it keeps). ``earlier`` holds,
        per job, all its codes so far (ending with its ``prompt``) for streaming, or None.
        """
        import torch

        from .decoding import stream_hook, without_decoding
        from .guidance import negative_guidance, tokenize
        from .kvcache import in_place_appends
        from .sampling import RowControl, SeededSampler, StepWatcher

        model, processor = self._model, self._processor
        # 1. Encode the prompts, with any negative prompts in the same padded call (and melodies' chroma)
        prompts = [job.settings.prompt for job in jobs]
        negatives = [job.negative_prompt for job in jobs]
        inputs, negative = tokenize(processor.tokenizer, prompts, negatives, MAX_PROMPT_TOKENS)
        if self.family == MELODY:
            features = processor.features([job.melody for job in jobs])
            if features is not None:
                inputs["input_features"] = features.to(model.dtype)
        inputs = {name: value.to(self.device) for name, value in inputs.items()}
        negative = None if negative is None else negative.to(self.device)
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
                    earlier[i] if earlier else None,
                )
        watcher = StepWatcher(controls)
        settings = [replace(job.settings, seed=window_seed(job.settings.seed, prompt_frames)) for job in jobs]
        sampler = SeededSampler(settings, rows, self.device)
        if self.decoding == "static":
            with negative_guidance(model, negative if sampler.guided else None):
                shared = all(job.shared_prompt_group is not None for job in jobs)
                self._decode_static(inputs, steps, sampler, watcher, share_prompt=shared)
        else:
            with (
                torch.inference_mode(),
                in_place_appends(),
                without_decoding(model.audio_encoder),
                negative_guidance(model, negative if sampler.guided else None),
            ):
                self._decode_with_generate(inputs, steps, sampler, watcher)
        total = prompt_frames + new_frames
        codes = undelay(watcher.last_ids, total, self._audio_channels, rows).reshape(len(jobs), rows, total)
        if prompt is not None:  # the raw ids hold sampled tokens where the delay mask later restores the prompt
            codes[:, :, :prompt_frames] = prompt.to(codes.device)
        return codes

    def _decode_with_generate(self, inputs: dict[str, Any], steps: int, sampler, watcher) -> None:
        """transformers' ``generate``, greedy over logits our sampler has already drawn from (the exact path)."""
        # A submodule import: transformers' lazy top-level names are not safe to resolve from several threads.
        from transformers.generation.logits_process import LogitsProcessorList
        from transformers.generation.stopping_criteria import StoppingCriteriaList

        self._model.generate(
            **inputs,
            max_new_tokens=steps,
            do_sample=False,
            guidance_scale=3.0 if sampler.guided else None,  # any value > 1: doubles the batch for guidance
            logits_processor=LogitsProcessorList([sampler]),
            stopping_criteria=StoppingCriteriaList([watcher]),
        )

    def _decode_static(self, inputs: dict[str, Any], steps: int, sampler, watcher, share_prompt: bool) -> None:
        """Moodtape's own loop (``static_decoding``): CUDA graphs on a GPU, int8 matmuls in fast CPU mode."""
        from . import static_decoding

        graphs = None
        if self.device.startswith("cuda"):
            if self._graphs is None:
                self._graphs = static_decoding.CudaGraphSteps()
            graphs = self._graphs
        inputs = dict(inputs)
        prompt = inputs.pop("decoder_input_ids", None)
        static_decoding.decode(
            self._model,
            inputs,
            prompt,
            steps,
            sampler.choose,
            watcher,
            sampler.guided,
            cache_dtype=self._cpu_cache_dtype() if self.mode == "fast" else self._model.decoder.dtype,
            graphs=graphs,
            share_prompt=share_prompt,
        )

    def _cpu_cache_dtype(self) -> Any:
        import torch

        from . import static_decoding

        return static_decoding.cpu_cache_dtype() if self.spec.cpu_cache is None else getattr(torch, self.spec.cpu_cache)

    def _result(self, job: Job, audio, codes, taken: float, batch_size: int, windows: int) -> GeneratedAudio:
        """The request's answer from its decoded ``audio`` (an extend's lead-in first) and its new ``codes``."""
        lead = min(job.prompt_frames, LEAD_IN_FRAMES) * self._hop
        lead_in, audio = (audio[:, :lead], audio[:, lead:]) if lead else (None, audio)
        return GeneratedAudio(
            audio=np.ascontiguousarray(audio[:, : round(job.settings.duration * self.sample_rate)], dtype=np.float32),
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
            prompt_seconds=job.prompt_frames / self.frame_rate,
            lead_in=None if lead_in is None else np.ascontiguousarray(lead_in, dtype=np.float32),
        )


def _offset_progress(callback: ProgressCallback | None, before: int, total: int) -> ProgressCallback | None:
    if callback is None:
        return None
    return lambda done, _window_total: callback(before + done, total)


def _melody_from(melody: Melody | None, offset_s: float) -> Melody | None:
    """The melody as heard from ``offset_s`` on, looping a short hum to cover a long track.

    A negative offset (an extend's window starting with its audio prompt) starts the melody that much later.
    """
    if melody is None or offset_s == 0:
        return melody
    return melody.from_offset(offset_s)


class _TakesProgress:
    """One progress callback for several takes of one request: the steps of all of them, summed."""

    def __init__(self, callback: ProgressCallback, takes: int):
        self.callback = callback
        self.done = [0] * takes

    def for_take(self, index: int) -> ProgressCallback:
        def report(done: int, total: int) -> None:
            self.done[index] = done
            self.callback(sum(self.done), total * len(self.done))  # the takes of one request take the same steps

        return report


def _stream_for(job: Job, model: Any):
    if job.on_audio is None:
        return None
    from .decoding import StreamingDecoder

    channels = int(model.decoder.config.audio_channels)
    return StreamingDecoder(model.audio_encoder, job.on_audio, channels=channels, start=job.prompt_frames)
