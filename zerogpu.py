"""Hugging Face ZeroGPU: hold a GPU only while a track is made; everywhere else nothing changes.

On a ZeroGPU Space (``SPACES_ZERO_GPU`` is set and the ``spaces`` package is there), the
call that makes a track is wrapped in ``spaces.GPU`` with a duration estimated from the
request. ZeroGPU runs that call in a worker process, so it gets only the request (progress
and streaming callbacks cannot cross); the result comes back whole.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from generation.studio import Studio, Track, TrackRequest

log = logging.getLogger("moodtape.gpu")

ZERO_GPU_ENV = "SPACES_ZERO_GPU"  # set by Hugging Face on ZeroGPU hardware
GPU_SECONDS_BASE = 30  # model loading on first use, prompt encoding, decoding and files
GPU_SECONDS_PER_AUDIO_SECOND = 1.5  # musicgen-melody with guidance on an A100 runs about 1.2 s per s; with margin
GPU_SECONDS_STEMS = 20  # Demucs on a GPU, per request
GPU_SECONDS_MAX = 600


def estimate_gpu_seconds(request: TrackRequest) -> int:
    """How long to hold a GPU for ``request``: a margin over its expected time, capped."""
    duration = float(request.duration or 10.0) if _is_number(request.duration) else 10.0
    seconds = GPU_SECONDS_BASE + GPU_SECONDS_PER_AUDIO_SECOND * duration
    seconds += GPU_SECONDS_STEMS if request.stems else 0
    return int(min(GPU_SECONDS_MAX, seconds))


def track_maker(studio: Studio) -> Callable[..., Track]:
    """``studio.make_track``, or on ZeroGPU a GPU-holding version of it that takes the request alone."""
    if not os.environ.get(ZERO_GPU_ENV):
        return studio.make_track
    try:
        import spaces
    except ImportError:
        log.warning("%s is set but the spaces package is missing: running without ZeroGPU", ZERO_GPU_ENV)
        return studio.make_track

    @spaces.GPU(duration=lambda request: estimate_gpu_seconds(request))
    def make_track_on_gpu(request: TrackRequest) -> Track:
        return studio.make_track(request)

    def make_track(request: TrackRequest, **_callbacks: Any) -> Track:
        return make_track_on_gpu(request)

    log.info("ZeroGPU: each track holds a GPU for a duration estimated from its request")
    return make_track


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
