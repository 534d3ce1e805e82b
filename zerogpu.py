"""Hugging Face ZeroGPU: hold a GPU only while a track is made, for as long as its settings need.

On a ZeroGPU Space (``ServerConfig.zero_gpu``, from ``SPACES_ZERO_GPU``, with the ``spaces``
package installed) the call that makes a track is wrapped in ``spaces.GPU``, with a duration
estimated from the request's plan: a preset's own duration, a loop's material, an extend's added seconds,
a replaced section with its overlap, and the number of takes (or candidates) count. ZeroGPU runs that call
in a worker process, so it gets only the request (progress and streaming callbacks cannot cross); the result
comes back whole. Everywhere else nothing changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from generation.editing.replace import ReplaceRequest
from generation.errors import MoodtapeError
from generation.settings import GenerationSettings
from generation.studio import Studio, Track, TrackRequest

log = logging.getLogger("moodtape.zerogpu")

GPU_SECONDS_BASE = 30  # model loading on first use, prompt encoding, decoding and files
# NOT MEASURED YET: an estimate (musicgen-melody with guidance on an A100, transformers' eager generate, about
# 1.2 s per s, plus margin). Replace it with the "melody ... compute s per s of audio" figure that
# `bash scripts/gpu_check.sh` writes to benchmarks/results-cuda.md on the GPU, plus margin.
GPU_SECONDS_PER_AUDIO_SECOND = 1.5
REFERENCE_PARAMETERS = 1.39e9  # musicgen-melody's decoder, which the figure above is for; larger ones take longer
GPU_SECONDS_PER_EXTRA_TAKE = 0.35  # each take after the first, as a share of one take's time: takes share a batch
GPU_SECONDS_STEMS = 20  # Demucs on a GPU: the stems of one take, or a song's drums and bass out of its melody
GPU_SECONDS_MAX = 600


def estimate_gpu_seconds(studio: Studio, request: TrackRequest) -> int:
    """How long to hold a GPU for ``request``: a margin over its expected time, capped.

    The request's plan says what will be generated: a preset's own duration, a loop's extra material, the
    seconds an extend adds, and how many takes share the batch.
    """
    if isinstance(request, ReplaceRequest):  # every candidate makes the section and its overlap, in one batch
        try:
            replacing = studio.plan_replace(request)
        except MoodtapeError:
            return _lease(GenerationSettings().duration)
        size = max(1.0, studio.models.info(replacing.model).parameters / REFERENCE_PARAMETERS)
        stems = replacing.candidates * replacing.export.stems
        return _lease(replacing.settings.duration, replacing.candidates, stems, size)
    try:
        plan = studio.plan(request)
    except MoodtapeError:  # the studio refuses it with a clear message before the model runs: any lease will do
        return _lease(GenerationSettings().duration)
    demucs_runs = plan.takes * plan.export.stems + bool(request.melody)  # a melody may be separated first
    size = max(1.0, studio.models.info(plan.model).parameters / REFERENCE_PARAMETERS)
    return _lease(plan.settings.duration, plan.takes, demucs_runs, size)


def _lease(seconds_generated: float, takes: int = 1, demucs_runs: int = 0, size: float = 1.0) -> int:
    """Seconds of GPU for ``takes`` of ``seconds_generated`` each, made as one batch, and ``demucs_runs``.

    ``size`` is the model's decoder against musicgen-melody's (at least 1): time per step grows with it.
    """
    one_take = GPU_SECONDS_PER_AUDIO_SECOND * seconds_generated * size
    seconds = GPU_SECONDS_BASE + one_take * (1 + GPU_SECONDS_PER_EXTRA_TAKE * (takes - 1))
    return int(min(GPU_SECONDS_MAX, seconds + GPU_SECONDS_STEMS * demucs_runs))


def track_maker(studio: Studio) -> Callable[..., Track]:
    """``studio.make_track``, or on ZeroGPU a GPU-holding version of it that takes the request alone."""
    if not studio.config.zero_gpu:
        return studio.make_track
    try:
        import spaces
    except ImportError:
        log.warning("SPACES_ZERO_GPU is set but the spaces package is missing: running without ZeroGPU")
        return studio.make_track

    @spaces.GPU(duration=lambda request: estimate_gpu_seconds(studio, request))
    def make_track_on_gpu(request: TrackRequest) -> Track:
        return studio.make_track(request)

    def make_track(request: TrackRequest, **_callbacks: Any) -> Track:
        return make_track_on_gpu(request)

    log.info("ZeroGPU: each track holds a GPU for a duration estimated from its settings")
    return make_track
