"""ZeroGPU glue: off the Space nothing changes; the GPU time asked for follows the request."""

from __future__ import annotations

from generation.studio import TrackRequest
from gpu import GPU_SECONDS_MAX, estimate_gpu_seconds, track_maker


def test_without_zero_gpu_the_studio_is_called_directly(studio, monkeypatch):
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    assert track_maker(studio) == studio.make_track


def test_zero_gpu_set_but_no_spaces_package_still_works(studio, monkeypatch):
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    make = track_maker(studio)  # the spaces package is not installed here
    assert make(TrackRequest(prompt="x", duration=1, seed=1)).wav_path.exists()


def test_gpu_time_grows_with_duration_and_stems_and_is_capped():
    short = estimate_gpu_seconds(TrackRequest(duration=5))
    long = estimate_gpu_seconds(TrackRequest(duration=60))
    assert short < long < estimate_gpu_seconds(TrackRequest(duration=60, stems=True))
    assert estimate_gpu_seconds(TrackRequest(duration=300, stems=True)) <= GPU_SECONDS_MAX
    assert estimate_gpu_seconds(TrackRequest(duration="nonsense")) == estimate_gpu_seconds(TrackRequest())
