"""Requests sent to an engine at the same moment, so that they run as one batch."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from generation.model.engine import MusicGenEngine
from generation.model.types import AudioPrompt, GeneratedAudio
from generation.settings import GenerationSettings


def run_together(
    engine: MusicGenEngine,
    requests: Sequence[GenerationSettings],
    audio_prompts: Sequence[AudioPrompt | None] | None = None,
) -> list[GeneratedAudio]:
    """Each request on its own thread, released together by a barrier; the results in request order."""
    prompts = audio_prompts or [None] * len(requests)
    results: dict[int, GeneratedAudio] = {}
    barrier = threading.Barrier(len(requests))

    def run(i: int) -> None:
        barrier.wait()
        results[i] = engine.generate(requests[i], audio_prompt=prompts[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [results[i] for i in range(len(requests))]
