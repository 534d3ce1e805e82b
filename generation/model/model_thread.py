"""One long-lived thread for all torch work: loading, generating, and the benchmark's model building."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


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
