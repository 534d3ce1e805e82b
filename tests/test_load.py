"""Load and soak against a live server with a small queue: nothing is lost, refusals say why, memory stays flat.

The load test runs 20 clients at once, each with its own ``gradio_client.Client``, submitting 1 s tracks with
random seeds to /generate and /generate_stream for ``LOAD_SECONDS``. The server generates four at a time and
queues eight more (``MOODTAPE_QUEUE_SIZE=8``), so some requests are refused; a refused client waits a moment
and tries again, as a person would. Every request must end in a track or a clear refusal; one with no answer
after ``LOST_AFTER_S`` is lost. The soak then makes 200 tracks one after another on the same server and
compares its memory and open files after the 50th and the 200th. Figures go to ``tests/.reports/load.json``.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf
from gradio_client import Client
from gradio_client.exceptions import AppError
from gradio_client.utils import QueueError

from tests.conftest import LiveServer
from tests.load_report import latency_figures, process_sample, write_report

pytestmark = pytest.mark.slow

CLIENTS = 20  # clients at once, each on its own thread with its own Client
LOAD_SECONDS = 20  # each client submits requests for this long
QUEUE_SIZE = 8  # the server's MOODTAPE_QUEUE_SIZE: waiting requests beyond this are refused
LOST_AFTER_S = 120  # a request with no answer after this long is lost (a 1 s track takes about 1 s alone)
RETRY_AFTER_S = (0.3, 0.8)  # a refused client waits a random time in this range before trying again
QUEUE_WORDS = ("queue", "busy", "try again")  # a refusal's message says at least one of these
LOAD_RSS_GROWTH_MB = 300  # the server's memory may grow this much under load (caches, buffers), no more
SOAK_REQUESTS = 200  # tracks made one after another
SOAK_SAMPLES_AT = (50, 200)  # after these many tracks the server's memory and open files are sampled
SOAK_RSS_GROWTH_MB = 100  # between the two samples
SOAK_FD_GROWTH = 20  # between the two samples
APIS = ("/generate", "/generate_stream")


@pytest.fixture(scope="module")
def load_server(tiny_models_env, tmp_path_factory):
    """A server of its own, with a queue of eight."""
    folder = tmp_path_factory.mktemp("load")
    server = LiveServer(
        {
            **tiny_models_env,
            "MOODTAPE_OUTPUT_DIR": str(folder / "outputs"),
            "MOODTAPE_QUEUE_SIZE": str(QUEUE_SIZE),
        },
        folder / "server.log",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def downloads(tmp_path_factory) -> Path:
    """Where the clients download results (so they do not pile up in the shared Gradio temp folder)."""
    return tmp_path_factory.mktemp("load-downloads")


@pytest.fixture(scope="module")
def figures():
    """Filled in by the tests; printed and written to tests/.reports/load.json at the end of the module."""
    data: dict[str, Any] = {}
    yield data
    write_report("load", data)


@dataclass(frozen=True)
class Outcome:
    """How one request ended: completed, refused (a clear refusal), error (a clear error) or lost."""

    kind: str
    api: str
    seconds: float  # from submit to the answer
    message: str = ""


def one_request(client: Client, api: str, prompt: str, seed: int) -> Outcome:
    """Submit one 1 s track and wait for its end; a result is checked to be the track that was asked for."""
    started = time.monotonic()
    job = client.submit(prompt=prompt, duration=1, seed=seed, api_name=api)
    try:
        result = job.result(timeout=LOST_AFTER_S)
    except QueueError as e:
        return Outcome("refused", api, time.monotonic() - started, str(e))
    except AppError as e:
        return Outcome("error", api, time.monotonic() - started, str(e))
    except TimeoutError:
        job.cancel()
        return Outcome("lost", api, time.monotonic() - started, f"no answer after {LOST_AFTER_S} s")
    except Exception as e:  # anything else (a dropped stream, a cancelled future) is a lost request
        return Outcome("lost", api, time.monotonic() - started, f"{type(e).__name__}: {e}")
    seconds = time.monotonic() - started
    audio, _, recipe, *_ = result[1:] if api == "/generate_stream" else result
    settings = recipe["settings"]
    if settings["seed"] != seed or settings["prompt"] != prompt or sf.info(audio).frames != 32_000:
        return Outcome("error", api, seconds, f"wrong track: asked seed {seed} for {prompt!r}, got {settings}")
    return Outcome("completed", api, seconds)


def client_loop(url: str, index: int, downloads: Path, start: threading.Barrier, stop_at: list[float]) -> list:
    """One client: submit, wait, repeat until the load time is over; back off a little after a refusal."""
    rng = random.Random(index)
    client = Client(url, verbose=False, download_files=str(downloads / f"client{index}"))
    outcomes: list[Outcome] = []
    start.wait()
    try:
        while time.monotonic() < stop_at[0]:
            api = APIS[(index + len(outcomes)) % 2]
            outcome = one_request(client, api, f"load test {index}", rng.randrange(2**31))
            outcomes.append(outcome)
            if outcome.kind == "refused":
                time.sleep(rng.uniform(*RETRY_AFTER_S))
    finally:
        client.close()
    return outcomes


class PeakMemory:
    """Samples a process's resident memory on a thread, keeping the highest."""

    def __init__(self, pid: int, every_s: float = 0.25):
        self.pid, self.every_s, self.peak_mb = pid, every_s, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.peak_mb = max(self.peak_mb, process_sample(self.pid)["rss_mb"])


def warm_up(url: str, downloads: Path) -> None:
    """One request on each endpoint, so that lazy imports and first-use caches are in memory before measuring."""
    client = Client(url, verbose=False, download_files=str(downloads / "warm-up"))
    for api in APIS:
        outcome = one_request(client, api, "warm up", 1)
        assert outcome.kind == "completed", outcome
    client.close()


def test_twenty_clients_at_once_nothing_is_lost_and_refusals_are_clear(load_server, downloads, figures):
    pid = load_server.process.pid
    warm_up(load_server.url, downloads)
    before = process_sample(pid)
    start = threading.Barrier(CLIENTS + 1)
    stop_at = [float("inf")]  # set once every client is connected
    with PeakMemory(pid) as peak, ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        futures = [pool.submit(client_loop, load_server.url, i, downloads, start, stop_at) for i in range(CLIENTS)]
        start.wait(timeout=120)
        started = time.monotonic()
        stop_at[0] = started + LOAD_SECONDS
        # every client ends within its last request's limit; a client still running after that has hung
        results = [f.result(timeout=LOAD_SECONDS + LOST_AFTER_S + 60) for f in futures]
        wall = time.monotonic() - started
    after = process_sample(pid)

    outcomes: list[Outcome] = [o for client_outcomes in results for o in client_outcomes]
    kinds = Counter(o.kind for o in outcomes)
    completed = [o for o in outcomes if o.kind == "completed"]
    refusals = Counter(o.message for o in outcomes if o.kind == "refused")
    figures["load"] = {
        "clients": CLIENTS,
        "queue_size": QUEUE_SIZE,
        "seconds": round(wall, 1),
        "submitted": len(outcomes),
        "completed": kinds["completed"],
        "completed_by_api": dict(Counter(o.api for o in completed)),
        "refused": kinds["refused"],
        "refusal_messages": dict(refusals),
        "errors": kinds["error"],
        "lost": kinds["lost"],
        "tracks_per_second": round(kinds["completed"] / wall, 2),
        "latency": latency_figures([o.seconds for o in completed]),
        "server_rss_mb": {"before": before["rss_mb"], "peak": peak.peak_mb, "after": after["rss_mb"]},
        "server_rss_growth_mb": round(after["rss_mb"] - before["rss_mb"], 1),
        "server_fds": {"before": before["fds"], "after": after["fds"]},
    }

    assert load_server.alive(), "the server died under load"
    lost = [o for o in outcomes if o.kind == "lost"]
    assert not lost, f"{len(lost)} request(s) lost: {lost[:5]}"
    errors = [o for o in outcomes if o.kind == "error"]
    assert not errors, f"{len(errors)} valid request(s) failed under load: {errors[:5]}"
    assert kinds["refused"] > 0, f"a queue of {QUEUE_SIZE} refused none of {CLIENTS} clients' requests"
    unclear = [m for m in refusals if not any(word in m.lower() for word in QUEUE_WORDS)]
    assert not unclear, f"refusals that do not say the server is busy: {unclear}"
    assert set(figures["load"]["completed_by_api"]) == set(APIS), "both endpoints complete requests under load"
    growth = after["rss_mb"] - before["rss_mb"]
    assert growth < LOAD_RSS_GROWTH_MB, f"server memory grew {growth:.0f} MB under load"


def test_two_hundred_tracks_in_a_row_keep_memory_and_open_files_flat(load_server, downloads, figures):
    pid = load_server.process.pid
    client = Client(load_server.url, verbose=False, download_files=str(downloads / "soak"))
    samples: dict[int, dict] = {0: process_sample(pid)}
    latencies: list[float] = []
    started = time.monotonic()
    try:
        for i in range(1, SOAK_REQUESTS + 1):
            outcome = one_request(client, "/generate", "soak", i)
            assert outcome.kind == "completed", f"track {i} of the soak: {outcome}"
            latencies.append(outcome.seconds)
            if i in SOAK_SAMPLES_AT:
                samples[i] = process_sample(pid)
    finally:
        client.close()
    first, last = (samples[n] for n in SOAK_SAMPLES_AT)
    figures["soak"] = {
        "tracks": SOAK_REQUESTS,
        "seconds": round(time.monotonic() - started, 1),
        "latency": latency_figures(latencies),
        "server_rss_mb": {str(n): s["rss_mb"] for n, s in samples.items()},
        "server_fds": {str(n): s["fds"] for n, s in samples.items()},
        "rss_growth_mb": round(last["rss_mb"] - first["rss_mb"], 1),
        "fd_growth": last["fds"] - first["fds"],
    }
    assert load_server.alive()
    low, high = SOAK_SAMPLES_AT
    assert last["rss_mb"] - first["rss_mb"] < SOAK_RSS_GROWTH_MB, f"memory grew from track {low} to {high}: {samples}"
    assert last["fds"] - first["fds"] < SOAK_FD_GROWTH, f"open files grew from track {low} to {high}: {samples}"
