"""Limits that keep one request from hurting others: prompt length, time limit, memory, crashes."""

from __future__ import annotations

import threading

import gradio as gr
import numpy as np
import pytest

from generation.errors import OutOfMemory
from generation.model.engine import MusicGenEngine
from generation.model.spec import EngineSpec
from generation.model.types import MAX_PROMPT_TOKENS
from generation.settings import GenerationSettings
from generation.studio import TrackRequest
from runner import Finished, TrackRunner


def no_progress(*args, **kwargs) -> None:
    return None


def test_a_prompt_longer_than_the_encoder_reads_is_cut_and_the_person_told(studio):
    long_prompt = " ".join(["rainy night piano"] * 100)  # 300 words, 1,799 characters: under the refusal
    track = studio.make_track(TrackRequest(prompt=long_prompt, duration=1, seed=1))
    assert any(f"cut to its first {MAX_PROMPT_TOKENS} tokens" in note for note in track.recipe.notes)
    assert "cut to its first" in track.summary()
    short = studio.make_track(TrackRequest(prompt="rainy night piano", duration=1, seed=1))
    assert not any("cut" in note for note in short.recipe.notes)


def test_a_request_over_the_time_limit_is_stopped_with_a_clear_message(studio):
    runner = TrackRunner(studio, timeout_s=0.5)
    with pytest.raises(gr.Error, match="longer than the server's limit of 0.5 s"):
        for _ in runner.run(TrackRequest(prompt="slow one", duration=30, seed=1), no_progress):
            pass
    # the model is free again: the stopped generation let go of it
    track = studio.make_track(TrackRequest(prompt="next", duration=1, seed=1))
    assert track.wav_path.exists()


def test_out_of_memory_in_a_batch_retries_each_request_alone(tiny_model_dir, monkeypatch):
    engine = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir)))
    engine.load()
    real = engine._run_window_batch

    def fail_when_batched(jobs):
        if len(jobs) > 1:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp] DefaultCPUAllocator: can't allocate memory")
        return real(jobs)

    monkeypatch.setattr(engine, "_run_window_batch", fail_when_batched)
    results: dict[int, object] = {}
    barrier = threading.Barrier(3)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = engine.generate(GenerationSettings(prompt=f"tune {i}", duration=1, seed=i))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 1, 2]
    assert all(r.batch_size == 1 and np.isfinite(r.audio).all() for r in results.values())


def test_out_of_memory_alone_is_refused_with_advice_and_the_engine_serves_on(tiny_model_dir, monkeypatch):
    engine = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir)))
    engine.load()
    real = engine._run_window_batch
    calls = {"n": 0}

    def fail_once(jobs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise MemoryError()
        return real(jobs)

    monkeypatch.setattr(engine, "_run_window_batch", fail_once)
    with pytest.raises(OutOfMemory, match="shorter duration"):
        engine.generate(GenerationSettings(prompt="big", duration=2, seed=1))
    assert engine.generate(GenerationSettings(prompt="small", duration=1, seed=1)).audio.shape == (1, 32_000)


def test_a_crash_inside_generation_becomes_a_clear_error_and_the_next_request_works(studio, monkeypatch):
    runner = TrackRunner(studio)
    real = studio.engine._run_window_batch

    def crash_once(jobs):
        monkeypatch.setattr(studio.engine, "_run_window_batch", real)
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(studio.engine, "_run_window_batch", crash_once)
    with pytest.raises(gr.Error, match="Something went wrong inside the generator"):
        for _ in runner.run(TrackRequest(prompt="crash", duration=1, seed=1), no_progress):
            pass
    outputs = list(runner.run(TrackRequest(prompt="fine", duration=1, seed=1), no_progress))
    assert isinstance(outputs[-1], Finished) and outputs[-1].results.audio.endswith(".wav")
