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
        "time to first audio",
        "4 concurrent",
        "8 concurrent",
        "long-form",
        "peak memory",
        "outside generate",
        "melody",
    ):
        assert measure in table, measure
