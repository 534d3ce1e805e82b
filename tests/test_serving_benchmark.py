"""The serving benchmark runs end to end on a tiny model and a local cluster (the real size takes minutes)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_the_serving_benchmark_prints_throughput_per_replica_and_the_cluster_s_overhead(tmp_path, capsys):
    from benchmarks.serving import main

    out = tmp_path / "serving.md"
    main(["--tiny", "--clip", "1", "--requests", "2", "--out", str(out)])
    table = out.read_text()
    assert table in capsys.readouterr().out
    for measure in ("throughput", "1 replica", "2 replicas", "time to first audio", "one whole request", "Machine:"):
        assert measure in table, measure
