"""A local Ray cluster with Moodtape's two replicas, deployed by docs/deploying.md's own command, for the tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from serving.cluster import LocalCluster
from serving.deploy import read_settings
from tests.conftest import ROOT


def replica_settings() -> dict[str, Any]:
    """``serving/config.yaml`` for a 2-core test machine: one torch thread per replica, faults noticed fast."""
    settings = read_settings()
    settings["replica"] |= {"num_cpus": 1, "threads": 1}  # three replicas on two cores: one thread each
    return settings | {"health_check_period_s": 2, "graceful_shutdown_timeout_s": 5}


@contextmanager
def cluster_with_replicas(folder: Path) -> Iterator[LocalCluster]:
    """A cluster on 127.0.0.1 with two replicas deployed by ``python -m serving --replicas 2``; ended afterwards."""
    cluster = LocalCluster(num_cpus=4, log_path=folder / "ray.log")
    try:
        (folder / "config.yaml").write_text(yaml.safe_dump(replica_settings()))
        command = [sys.executable, "-m", "serving", "--replicas", "2", "--config", str(folder / "config.yaml")]
        done = subprocess.run(command, cwd=ROOT, env={**os.environ, **cluster.env}, capture_output=True, text=True)
        if done.returncode != 0 or "ready with 2 replicas" not in done.stdout:
            raise RuntimeError(f"python -m serving failed:\n{done.stdout}{done.stderr}")
        yield cluster
    finally:
        cluster.stop()
