"""Requests queued for one model and run as batches on the model thread: gather, group, run, hand back.

Requests that arrive together and would not change one another through padding (``Job.batch_key``) run as
one batch of up to ``max_batch``; a long track runs alone. A batch that runs out of memory is retried one
request at a time; any other error reaches every request of its batch, and the queue serves the next.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import GenerationCancelled, OutOfMemory
from ..settings import GenerationSettings
from .model_thread import on_model_thread
from .types import AudioCallback, GeneratedAudio, Melody, ProgressCallback

BATCH_GATHER_SECONDS = 0.05  # a batch leader waits this long for requests arriving at the same moment

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Job:
    """One request waiting for, or inside, a batch: what to make, its callbacks, and its result when done."""

    settings: GenerationSettings
    melody: Melody | None
    on_progress: ProgressCallback | None
    cancel: threading.Event | None
    on_audio: AudioCallback | None
    frames: int  # new code frames to make
    prompt: Any = None  # an extend's audio prompt as codes [rows, frames], or None
    prefix_tokens: int = 0  # melody model: the text tokens its prefix holds (prompt or negative, the longer)
    notes: tuple[str, ...] = ()
    # A section's candidates: one number per call, so they batch only with each other and read their shared audio
    # prompt once (``static_decoding.decode``'s ``share_prompt``); None for every other request
    shared_prompt_group: int | None = None
    done: threading.Event = field(default_factory=threading.Event)
    result: GeneratedAudio | None = None
    error: BaseException | None = None

    @property
    def prompt_frames(self) -> int:
        return 0 if self.prompt is None else int(self.prompt.shape[-1])

    @property
    def negative_prompt(self) -> str:
        """The negative prompt guidance uses: none when the request has no guidance."""
        return self.settings.negative_prompt if self.settings.guidance_scale > 1 else ""

    @property
    def batch_key(self) -> tuple:
        """Requests batch together only when padding would change none of them.

        Padding would change a melody's chroma; a code prompt's left padding would shift its positions;
        the melody model reads text as a prefix, where padding is attended like text (the text model's
        cross-attention masks it out).
        """
        melody = None if self.melody is None else self.melody.shape_key
        return (self.frames, melody, self.prompt_frames, self.prefix_tokens, self.shared_prompt_group)

    def finish(self, result: GeneratedAudio | None = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()


class BatchQueue:
    """The waiting requests of one engine, run by ``run_batch`` on the model thread as batches.

    ``run_batch(jobs)`` returns one result per job; ``runs_alone(job)`` says which jobs may not share a batch.
    """

    def __init__(
        self,
        max_batch: int,
        run_batch: Callable[[list[Job]], list[GeneratedAudio]],
        runs_alone: Callable[[Job], bool],
    ):
        self.max_batch = max_batch
        self._run_batch, self._runs_alone = run_batch, runs_alone
        self.running = threading.Lock()  # held while this queue's batches run
        self._lock = threading.Lock()
        self._waiting: list[Job] = []

    def submit(self, jobs: list[Job]) -> list[GeneratedAudio]:
        """Queue ``jobs`` together, let the model thread run them, and return their results in order."""
        with self._lock:
            self._waiting.extend(jobs)
        on_model_thread(self._drain)
        for job in jobs:
            job.done.wait()
        results = []
        for job in jobs:
            if job.error is not None:
                raise job.error
            assert job.result is not None
            results.append(job.result)
        return results

    def _drain(self) -> None:
        """On the model thread: run batches until no request is waiting."""
        with self.running:
            time.sleep(BATCH_GATHER_SECONDS)  # let requests sent at the same moment join the first batch
            while True:
                with self._lock:
                    if not self._waiting:
                        return
                self._run(self._take_batch())

    def _take_batch(self) -> list[Job]:
        with self._lock:
            first = self._waiting[0]
            limit = 1 if self._runs_alone(first) else self.max_batch
            batch = [j for j in self._waiting if j.batch_key == first.batch_key][:limit]
            batch = batch if first in batch else [first]
            for job in batch:
                self._waiting.remove(job)
        return batch

    def _run(self, jobs: list[Job]) -> None:
        try:
            results = self._run_batch(jobs)
        except BaseException as e:  # every waiting caller gets the error, then the queue serves the next batch
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


def _is_out_of_memory(error: BaseException) -> bool:
    import torch

    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
