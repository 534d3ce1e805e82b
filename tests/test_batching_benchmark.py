"""The batching benchmark runs and prints each way of running the matmuls with its step time and logits' error."""

from __future__ import annotations

import pytest


def test_the_batching_table_has_every_matmul_kind_with_its_throughput_and_error(capsys):
    from benchmarks.batching import main

    main(["--tiny", "--rounds", "1", "--steps", "4", "--requests-seconds", "0"])

    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")][2:]
    kinds = [line.split(" | ")[0].removeprefix("| ") for line in table]
    assert kinds[-2].endswith("(now)") and kinds[-1].startswith("int4 weights in groups of")
    for line in table:
        one, four, throughput, error = line.strip("| ").split(" | ")[1:]
        assert float(throughput.removesuffix("x")) == pytest.approx(4 * float(one) / float(four), rel=0.02)
        mean, largest = (float(x) for x in error.split(", "))
        assert 0 <= mean <= largest
