"""Servers started as child processes on 127.0.0.1: a free port, and waiting until one answers or has died.

The tests' live apps, the app-overhead benchmark and the local Ray cluster all start a process, then poll it until
it answers; a process that exits first or never answers is reported with its log, so a failed start says why.
"""

from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def answers_http(url: str) -> Callable[[], None]:
    """A probe that succeeds once ``url`` answers a GET (a Gradio app: its ``config``)."""

    def probe() -> None:
        with urllib.request.urlopen(url, timeout=2):
            pass

    return probe


def listens(port: int) -> Callable[[], None]:
    """A probe that succeeds once something accepts connections on ``port`` of 127.0.0.1."""

    def probe() -> None:
        socket.create_connection((LOOPBACK, port), timeout=1).close()

    return probe


def wait_until_up(
    process: subprocess.Popen,
    probe: Callable[[], None],
    *,
    what: str,
    timeout_s: float,
    log_path: Path,
    on_timeout: Callable[[], None] | None = None,
    poll_s: float = 0.3,
) -> None:
    """Return once ``probe()`` succeeds; a RuntimeError with ``log_path``'s text if ``process`` exits first or the
    probe still fails after ``timeout_s`` (``on_timeout`` runs first, to stop what was started)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited early (code {process.returncode}):\n{log_path.read_text()}")
        try:
            probe()
            return
        except OSError:
            time.sleep(poll_s)
    if on_timeout is not None:
        on_timeout()
    raise RuntimeError(f"{what} did not answer within {timeout_s:g} s:\n{log_path.read_text()}")
