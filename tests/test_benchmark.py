"""The benchmark runs end to end (on tiny models here; the real sizes take minutes)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_benchmark_prints_and_writes_its_table(tmp_path, capsys):
    from benchmarks.bench import main

    out = tmp_path / "results.md"
    main(
        [
            "--tiny",
            "--clip",
            "1",
            "--short-clip",
            "1",
            "--long-seconds",
            "6",
            "--window",
            "2",
            "--stride",
            "1",
            "--out",
            str(out),
        ]
    )
    table = out.read_text()
    assert table in capsys.readouterr().out
    for measure in (
        "compute s per s of audio (exact)",
        "fast CPU mode",
        "int8 weights in transformers' generate loop",  # fast mode before Moodtape's own loop, side by side
        "time to first audio",
        "4 concurrent",
        "8 concurrent",
        "long-form",
        "peak memory",
        "outside generate",
        "melody",
    ):
        assert measure in table, measure


def test_gpu_table_runs_its_code_on_cpu(tmp_path, capsys):
    """``--device cuda``'s rows, run on CPU: the fixed-shape loop without graphs, resident memory."""
    from benchmarks.bench import main

    out = tmp_path / "results-gpu-layout.md"
    main(["--tiny", "--gpu-table", "--clip", "1", "--short-clip", "1", "--out", str(out)])
    table = out.read_text()
    assert table in capsys.readouterr().out
    for measure in (
        "text, 1 s clip: compute s per s of audio (musicgen-small",
        "melody, 1 s clip: compute s per s of audio (musicgen-melody",
        "time to first audio, GPU path",
        "throughput, 1 concurrent",
        "throughput, 4 concurrent",
        "throughput, 16 concurrent",
        "peak memory, musicgen-small",
        "CUDA graph capture",
    ):
        assert measure in table, measure


def test_fast_only_compares_the_loops_and_the_two_caches(tmp_path, capsys):
    """``--fast-only``: Moodtape's loop against the generate loop, and this CPU's key/value cache against the
    other kind, interleaved in one run."""
    from benchmarks.bench import main
    from generation.model.static_decoding import cpu_cache_dtype

    out = tmp_path / "results-fast.md"
    main(["--tiny", "--fast-only", "--repeats", "1", "--clip", "1", "--out", str(out)])
    table = out.read_text()
    assert table in capsys.readouterr().out
    assert "Moodtape's loop vs the generate loop" in table
    own = str(cpu_cache_dtype()).removeprefix("torch.")
    other = "float32" if own == "bfloat16" else "bfloat16"
    assert f"this CPU's {own} key/value cache vs a {other} one" in table


def test_floor_only_puts_the_step_beside_its_bytes_over_the_bandwidth(tmp_path, capsys):
    """``--floor-only``: the bytes a fast-mode step reads, the bandwidth measured in the run, the floor they give
    (bytes / bandwidth) beside the measured step, and fast mode's clip against plain ``generate``."""
    from benchmarks.bench import main

    out = tmp_path / "results-floor.md"
    main(["--tiny", "--floor-only", "--repeats", "1", "--clip", "1", "--floor-positions", "6,20", "--out", str(out)])
    table = out.read_text()
    assert table in capsys.readouterr().out
    lines = [line.strip("| ").split(" | ") for line in table.splitlines()[4:]]
    cells = {line[0]: line[1:] for line in lines}

    def row(start: str) -> list[str]:
        return next(cells for what, cells in cells.items() if what.startswith(start))

    weights = float(row("fast-mode step: weights read (MB")[1])
    bandwidth = float(row("memory read bandwidth (GB/s")[1])
    for n in (6, 20):
        cache = float(row(f"fast-mode step: key/value cache read at {n} cached positions")[1])
        floor_ms, step_ms, distance = row(f"fast-mode step at {n} cached positions (ms")[:3]
        assert float(floor_ms) == pytest.approx((weights + cache) / bandwidth, rel=0.01)  # MB / (GB/s) = ms
        assert float(distance.removesuffix("x the floor")) == pytest.approx(float(step_ms) / float(floor_ms), rel=0.01)
    assert float(row("fast-mode step: key/value cache read at 20")[1]) > float(
        row("fast-mode step: key/value cache read at 6")[1]
    )
    plain, fast, ratio, target = row("text, 1 s clip: compute s per s of audio (fast CPU mode")[:4]
    assert float(ratio.removesuffix("x plain")) == pytest.approx(float(fast) / float(plain), rel=0.02)
    assert target == "<= 0.10x plain"
    assert row("fast mode at the floor, 1 s clip")
    int8_ms, int4_ms, speed = row("the same matrices in 4 bits (ms")[:3]
    assert float(int8_ms) == pytest.approx(float(row("a step's 16 int8 matmuls alone")[1]), rel=0.01)
    assert float(speed.split("x as fast")[0]) == pytest.approx(float(int8_ms) / float(int4_ms), rel=0.02)
