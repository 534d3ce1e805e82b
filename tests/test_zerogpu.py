"""ZeroGPU glue: off the Space nothing changes; the GPU time asked for follows the request's resolved settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from generation.config import ServerConfig
from generation.presets import load_presets
from generation.settings import GenerationSettings
from generation.studio import Studio, TrackRequest
from zerogpu import GPU_SECONDS_MAX, GPU_SECONDS_PER_AUDIO_SECOND, estimate_gpu_seconds, track_maker

PRESET_IDS = load_presets().ids()


def studio_with(engine, melody_engine, separator, folder: Path, environ: dict[str, str]) -> Studio:
    """A studio on the tiny models whose settings come from ``environ`` alone."""
    return Studio(
        engine,
        output_dir=folder / "outputs",
        melody_engine=melody_engine,
        separator=separator,
        config=ServerConfig.from_env(environ),
    )


def test_without_zero_gpu_the_studio_is_called_directly(engine, melody_engine, separator, tmp_path):
    studio = studio_with(engine, melody_engine, separator, tmp_path, {})
    assert track_maker(studio) == studio.make_track


def test_zero_gpu_set_but_no_spaces_package_still_works(engine, melody_engine, separator, tmp_path):
    studio = studio_with(engine, melody_engine, separator, tmp_path, {"SPACES_ZERO_GPU": "true"})
    make = track_maker(studio)  # the spaces package is not installed here
    assert make(TrackRequest(prompt="x", duration=1, seed=1)).wav_path.exists()


def test_gpu_time_grows_with_duration_and_stems_and_is_capped(studio):
    short = estimate_gpu_seconds(studio, TrackRequest(duration=5))
    long = estimate_gpu_seconds(studio, TrackRequest(duration=60))
    assert short < long < estimate_gpu_seconds(studio, TrackRequest(duration=60, stems=True))
    assert estimate_gpu_seconds(studio, TrackRequest(duration=300, stems=True)) <= GPU_SECONDS_MAX
    assert estimate_gpu_seconds(studio, TrackRequest(duration="nonsense")) == estimate_gpu_seconds(
        studio, TrackRequest()
    )


@pytest.mark.parametrize("preset_id", PRESET_IDS)
def test_the_gpu_time_covers_the_duration_a_preset_asks_for(studio, preset_id):
    asked = studio.presets.get(preset_id).settings.duration or GenerationSettings().duration
    left_to_the_preset = estimate_gpu_seconds(studio, TrackRequest(prompt="rain", preset=preset_id))
    assert left_to_the_preset == estimate_gpu_seconds(studio, TrackRequest(prompt="rain", duration=asked))
    assert left_to_the_preset >= GPU_SECONDS_PER_AUDIO_SECOND * asked


def test_an_invalid_request_gets_the_default_gpu_time(studio):
    default = estimate_gpu_seconds(studio, TrackRequest(prompt="rain"))
    for request in (TrackRequest(preset="nope"), TrackRequest(seed="x"), TrackRequest(stems="yes", duration=60)):
        assert estimate_gpu_seconds(studio, request) == default, request
