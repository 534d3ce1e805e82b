"""Where torch work runs: request threads leave no OpenMP team behind to slow the model thread's decoding.

A live thread that has run torch's parallel operations keeps OpenMP worker threads; with two teams on 2 cores
every small operation of a decoding step waits for a sleeping worker (see ``generation/model/model_thread.py``).
These tests look for threads that Python did not start and that outlive the work, so they hold on any machine
speed.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
import torch

from generation.model.model_thread import ephemeral_thread, on_ephemeral_thread, on_model_thread
from generation.studio import TrackRequest
from tests.audio_factory import hum, with_silence, write_audio

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc")


def native_thread_ids() -> set[int]:
    """Threads of this process that Python did not start (OpenMP's workers among them)."""
    started_by_python = {thread.native_id for thread in threading.enumerate()}
    return {int(tid) for tid in os.listdir("/proc/self/task")} - started_by_python


def parallel_work() -> float:
    """A torch operation large enough to run on an OpenMP team."""
    return float(torch.ones(1 << 22).mul_(2).sum())


def left_behind_by(fn, wait: float = 10.0) -> set[int]:
    """Run ``fn`` in a thread that stays alive afterwards, as a web server's worker does; the native threads that
    started meanwhile and are still there (after up to ``wait`` seconds: workers end a little after their thread).

    Sets of thread ids, not counts: other components' threads may end at any time in a long test session.
    """
    done, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            fn()
        except BaseException as e:  # reported by the test
            errors.append(e)
        done.set()
        release.wait()

    before = native_thread_ids()
    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    done.wait()
    try:
        if errors:
            raise errors[0]
        deadline = time.monotonic() + wait
        while (new := native_thread_ids() - before) and time.monotonic() < deadline:
            time.sleep(0.05)
        return new
    finally:
        release.set()
        thread.join()


def warm_up(fn) -> None:
    """The model thread's own team, and pools a process makes once on first use (the tokenizer's Rust workers),
    in place before a measurement: ``fn`` runs once on a thread that ends."""
    on_model_thread(parallel_work)
    on_ephemeral_thread(fn)


def threads_of_a_new_thread() -> int:
    """The torch threads a thread started now computes with (1: it starts no OpenMP workers)."""
    return on_ephemeral_thread(torch.get_num_threads)


def test_the_check_sees_a_team_that_a_live_thread_keeps():
    """The check itself: torch work left on a long-lived thread leaves native threads behind."""
    if threads_of_a_new_thread() < 2:
        pytest.skip("torch runs one thread here: no OpenMP workers to find")
    warm_up(parallel_work)
    assert left_behind_by(parallel_work, wait=1.0)


def test_a_request_with_a_hum_stems_and_melody_separation_leaves_no_team_behind(studio, tmp_path):
    """Chroma, Demucs and the hum's checks run on threads that end with them; generation on the model thread."""
    path = write_audio(
        tmp_path / "hum", with_silence(hum(("A3", "C#4", "E4"), rate=44_100), 44_100, 0.5, 0.5), 44_100, "wav_16"
    )
    request = TrackRequest(
        prompt="calm piano", melody=str(path), melody_separation=True, stems=True, duration=1, seed=3
    )
    made = []
    warm_up(lambda: studio.make_track(request))
    assert not left_behind_by(lambda: made.append(studio.make_track(request)))
    assert made and made[0].recipe.model_id == studio.melody_engine.model_id
    assert made[0].recipe.melody["separated"] and "zip" in made[0].paths and made[0].melody_description


def test_ephemeral_work_returns_its_result_and_raises_its_error():
    assert on_ephemeral_thread(lambda a, b=0: a + b, 2, b=3) == 5

    def fails() -> None:
        raise ValueError("the melody is empty")

    with pytest.raises(ValueError, match="the melody is empty"):
        on_ephemeral_thread(fails)


def test_ephemeral_work_runs_in_place_on_the_model_thread_and_when_nested():
    where = ephemeral_thread(threading.current_thread)
    model_thread = on_model_thread(threading.current_thread)
    assert on_model_thread(where) is model_thread
    outer = on_ephemeral_thread(lambda: (threading.current_thread(), where()))
    assert outer[0] is outer[1] and outer[0] is not threading.current_thread()
