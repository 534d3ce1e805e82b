"""The long-tracks benchmark runs end to end (on a tiny model here; the real size takes minutes)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_long_tracks_benchmark_prints_clips_beside_each_setting_in_wall_and_cpu_seconds_with_the_cpu_named(capsys):
    from benchmarks.bench import cpu_name
    from benchmarks.long_tracks import main

    main(["--tiny", "--seconds", "6", "--window", "2", "--stride", "1", "--variant", "2:1.5", "--repeats", "1"])
    printed = capsys.readouterr().out
    assert cpu_name() in printed
    assert "| 2 s windows, 1 s of context (5 windows) |" in printed
    assert "| 2 s windows, 0.5 s of context (4 windows) |" in printed
    assert "6 x 1 s clips" in printed and "track vs clips: wall (CPU)" in printed


def test_a_variant_that_is_not_window_colon_stride_is_refused_by_name():
    from benchmarks.long_tracks import Setting

    with pytest.raises(ValueError, match="WINDOW:STRIDE in seconds, e.g. 30:18, got '30-18'"):
        Setting.parse("30-18")
