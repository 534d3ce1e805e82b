"""Where a request's time goes: named stages timed with ``time.perf_counter``, logged as one line per request.

The line goes to the ``moodtape.timing`` logger as ``<what> <stage>=<seconds> ...`` (seconds to the millisecond),
so an operator sees it in the app's log and ``benchmarks/app_overhead.py`` can read it back. Nothing here changes
what a request returns.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("moodtape.timing")
_FIELD = re.compile(r"(\w+)=([0-9.]+)")


class Stopwatch:
    """Seconds per named stage of one request; a stage timed twice adds up."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the block as stage ``name`` (also when it raises)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        """Count ``seconds`` more for stage ``name``."""
        self.stages[name] = self.stages.get(name, 0.0) + seconds

    def line(self, what: str) -> str:
        """``what`` and every stage as ``name=seconds``, in the order the stages were first timed."""
        return " ".join([what, *(f"{name}={seconds:.3f}" for name, seconds in self.stages.items())])

    def log(self, what: str) -> None:
        """Log the stages as one line (``line``) at INFO on ``moodtape.timing``."""
        log.info("%s", self.line(what))


def read_line(line: str) -> dict[str, float]:
    """The stages of one logged line, by name (what ``Stopwatch.line`` wrote)."""
    return {name: float(seconds) for name, seconds in _FIELD.findall(line)}
