"""Streaming and batching through the live server, with the real gradio_client."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import soundfile as sf

pytestmark = pytest.mark.slow


def test_generate_stream_yields_pieces_then_the_whole_track(client):
    job = client.submit(prompt="rainy night piano", duration=4, seed=3, loudness=0, api_name="/generate_stream")
    outputs = list(job)
    pieces = [out[0] for out in outputs if out[0]]
    assert len(pieces) >= 2, "the audio arrives in several pieces"
    final = job.outputs()[-1]
    audio_path, downloads, recipe, summary, *pictures = final[1:]
    streamed = np.concatenate([sf.read(p, dtype="float32")[0] for p in pieces])
    whole, rate = sf.read(audio_path, dtype="float32")
    assert rate == 32_000 and len(whole) == 4 * 32_000
    assert len(streamed) == len(whole)
    assert np.abs(streamed - whole).max() < 2e-3  # 16-bit pieces against the 24-bit file
    assert recipe["settings"]["seed"] == 3


def test_streamed_and_plain_requests_give_the_same_track(client):
    plain = client.predict(prompt="dreamy synth", duration=2, seed=11, api_name="/generate")
    job = client.submit(prompt="dreamy synth", duration=2, seed=11, api_name="/generate_stream")
    streamed = job.result()
    assert sf.read(plain[0])[0].tolist() == sf.read(streamed[1])[0].tolist()


def test_concurrent_api_requests_are_batched(client):
    # Eight, not four: on a two-replica Ray cluster each replica's first request may start alone before its
    # batch-mates arrive; the ones that queue behind it must then run together.
    count = 8
    recipes: dict[int, dict] = {}
    barrier = threading.Barrier(count)

    def call(i: int) -> None:
        barrier.wait()
        recipes[i] = client.predict(prompt=f"lofi beat {i}", duration=3, seed=i, api_name="/generate")[2]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(r["batch_size"] for r in recipes.values()) > 1
    assert sorted(r["settings"]["seed"] for r in recipes.values()) == list(range(count))
