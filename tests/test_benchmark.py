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
