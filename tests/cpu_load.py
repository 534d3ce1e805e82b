"""Every core busy, for tests of what a loaded machine does differently (slow subprocess start-ups, late pieces)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

LOAD_LIMIT_S = 300  # a spinner ends itself after this long, even if the test that started it never comes back


@contextmanager
def every_core_busy() -> Iterator[None]:
    """One process spinning on each core the tests may use, for the block's duration (at most ``LOAD_LIMIT_S``)."""
    spin = f"import time\nend = time.monotonic() + {LOAD_LIMIT_S}\nwhile time.monotonic() < end: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", spin]) for _ in os.sched_getaffinity(0)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
