"""Where torch work runs: one long-lived thread for the model (loading, generating, the benchmark's model
building), and threads that end with their call for torch work that must not wait behind generation.

A thread that has run one of torch's parallel operations keeps an OpenMP team of worker threads for as long as
it lives. With two teams on 2 cores, GNU OpenMP sees more threads than cores and stops its idle workers'
spinning, so each small operation of the model thread's decoding step waits for a sleeping worker to wake: on an
AMD EPYC with 2 cores, a fast-mode step took 30.5 ms instead of 18.6 (layer norms 48 us instead of 5), and a
10 s clip 1.65 s of compute per second of audio instead of 1.05, for as long as the request thread that had
checked one hum's chroma lived. A thread that ends takes its team with it.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class _ModelThread:
    """One long-lived thread for all model work.

    Loading and generation always run here, so the decoding step has one OpenMP team (see the module's
    docstring): on 2 cores a 2 s musicgen-small clip took 7.8 s here and 10.7 s from a thread started after
    another had used torch. Request threads queue work and wait. It also keeps two loads from running at once,
    which corrupts transformers' global meta-device state.
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
            _settle(*self._tasks.get())


def _settle(future: Future, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    """Run ``fn`` and put its result, or the error it raised, in ``future`` for the waiting caller."""
    try:
        future.set_result(fn(*args, **kwargs))
    except BaseException as e:  # handed to the waiting caller
        future.set_exception(e)


_MODEL_THREAD = _ModelThread()
_EPHEMERAL = threading.local()


def on_model_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` on the model thread (at once if already there) and return its result."""
    return _MODEL_THREAD.run(fn, *args, **kwargs)


def on_ephemeral_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn`` on a new thread that ends when it returns (at once on the model thread); its result or error.

    For torch work on request threads (a hum's chroma, Demucs): it runs at once, alongside any generation, and
    leaves no OpenMP team behind to slow the model thread down (see the module's docstring).
    """
    if threading.current_thread() is _MODEL_THREAD._thread or getattr(_EPHEMERAL, "inside", False):
        return fn(*args, **kwargs)
    future: Future = Future()

    def run() -> None:
        _EPHEMERAL.inside = True  # nested calls run inline
        _settle(future, fn, args, kwargs)

    thread = threading.Thread(target=run, name="moodtape-torch-task", daemon=True)
    thread.start()
    thread.join()
    return future.result()


def ephemeral_thread(fn: Callable[..., T]) -> Callable[..., T]:
    """Decorate torch work so that it always runs through ``on_ephemeral_thread``."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        return on_ephemeral_thread(fn, *args, **kwargs)

    return wrapper
