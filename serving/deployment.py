"""The replica: MusicGen engines on one worker of a Ray Serve cluster, each request streamed back as events.

A replica holds one ``MusicGenEngine`` per model a request names (its ``EngineSpec``), loaded on first use, at most
``max_loaded_models`` at once. Requests run through the engine's own batcher, not Serve's ``@serve.batch``:
the engine drops a cancelled row from a running batch and its batch-mates finish, which ``@serve.batch``
cannot do. Each request is a streaming call whose events ``generation.model.remote.RemoteEngine`` replays.
"""

from __future__ import annotations

import asyncio
import pickle
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from generation.config import ServerConfig
from generation.model.engine import MusicGenEngine
from generation.model.remote import (
    AUDIO,
    DONE,
    ERROR,
    PROGRESS,
    WORKER,
    Description,
    RemoteRequest,
)
from generation.model.spec import EngineSpec
from generation.models import make_room

PROGRESS_EVERY_S = 0.25  # progress events at most this often (and the last step): the page shows progress every 0.5 s


class MusicGenReplica:
    """One replica: engines by model, and a thread per running request (the engine's calls block)."""

    def __init__(self, threads: int | None = None, max_batch: int | None = None, max_loaded_models: int | None = None):
        import torch
        from ray import serve

        if threads:  # replicas sharing a machine's cores each take their share, not all of them
            torch.set_num_threads(threads)
        self.config = ServerConfig.from_env()
        self.max_batch = max_batch or self.config.max_batch
        self.max_loaded_models = max_loaded_models or self.config.max_loaded_models
        self.worker = f"{serve.get_replica_context().replica_id.to_full_id_str()} on {socket.gethostname()}"
        self._engines: OrderedDict[EngineSpec, MusicGenEngine] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="moodtape-replica")

    def _engine(self, spec: EngineSpec) -> MusicGenEngine:
        """The engine for ``spec``, made on first use; others past the limit are unloaded before it loads."""
        spec = replace(spec, max_batch=self.max_batch)  # this replica batches by its own setting
        with self._lock:
            engine = self._engines.pop(spec, None) or MusicGenEngine(spec, config=self.config)
            self._engines[spec] = engine  # the most recently used last
            if not engine.loaded:  # it will load: free the least recently used beyond the limit first
                make_room(self._engines.values(), engine, self.max_loaded_models)
        return engine

    async def describe(self, spec: EngineSpec) -> Description | Exception:
        """Load the model (once) and say what the local engine's properties would; or why it cannot load."""
        engine = self._engine(spec)
        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, engine.load)
        except Exception as e:  # returned, not raised: the caller shows its message as it is, without Ray's wrapping
            return _portable(e)
        return Description(
            engine.sample_rate,
            engine.frame_rate,
            engine.model_revision,
            engine.device,
            engine.mode,
            engine.decoding,
            self.worker,
        )

    async def generate(self, request: RemoteRequest) -> AsyncIterator[tuple]:
        """Stream one request: WORKER, then PROGRESS and AUDIO while it is made, then DONE or ERROR.

        When the caller cancels, Serve raises ``CancelledError`` here; the ``finally`` sets the engine job's
        cancel event, so the engine drops this row at its next step and the rest of its batch goes on.
        """
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple] = asyncio.Queue()
        cancel = threading.Event()

        def send(*event: Any) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        self._pool.submit(self._make, request, cancel, send)
        try:
            yield (WORKER, self.worker)
            while True:
                event = await events.get()
                yield event
                if event[0] in (DONE, ERROR):
                    return
        finally:
            cancel.set()  # cancelled, or the caller went away; after DONE it changes nothing

    def _make(self, request: RemoteRequest, cancel: threading.Event, send) -> None:
        """On a worker thread: run the request through the engine, sending its events as they come."""
        last = [0.0]

        def on_progress(done: int, total: int) -> None:
            now = time.monotonic()
            if done >= total or now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                send(PROGRESS, done, total)

        def on_audio(piece) -> None:
            send(AUDIO, piece)

        try:
            engine = self._engine(request.spec)
            options = dict(melody=request.melody, audio_prompt=request.audio_prompt, cancel=cancel)
            if request.takes is None:
                made = engine.generate(
                    request.settings, on_progress=on_progress, on_audio=on_audio if request.stream else None, **options
                )
                send(DONE, replace(made, worker=self.worker))
            else:
                takes = engine.generate_takes(
                    request.settings,
                    request.takes,
                    on_progress=on_progress,
                    share_prompt=request.share_prompt,
                    **options,
                )
                send(DONE, [replace(made, worker=self.worker) for made in takes])
        except Exception as e:  # the caller raises it as it was raised here
            send(ERROR, _portable(e))


def _portable(error: Exception) -> Exception:
    """The error itself when it survives pickling (all of Moodtape's do), else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error
