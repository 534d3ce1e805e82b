"""A Ray cluster on this machine, on 127.0.0.1 only, for the tests and the benchmark: start it, join it, end it.

``ray start --head --block`` runs in its own process group and is ended by that group, never by a broad
``ray stop`` (which would stop other people's clusters on a shared machine).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from .processes import free_port, listens, wait_until_up

START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 5  # then the group is killed: nothing of a test cluster is worth keeping
# Without these, Ray binds to and talks over the machine's network address, and a cluster can turn on token
# authentication that later clients do not share
LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_AUTH_MODE": "disabled"}


class LocalCluster:
    """``ray start --head`` with ``num_cpus`` logical CPUs; ``env`` is what a process needs to join it."""

    def __init__(self, num_cpus: int, log_path: Path, extra_env: dict[str, str] | None = None):
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.env = {**LOOPBACK_ENV, "RAY_ADDRESS": self.address}
        self.log_path = log_path
        self._joined = False
        ray = shutil.which("ray") or "ray"
        command = [
            ray, "start", "--head", "--block", f"--port={self.port}", f"--num-cpus={num_cpus}", "--num-gpus=0",
            "--include-dashboard=false", "--disable-usage-stats",
        ]  # fmt: skip
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, **LOOPBACK_ENV, **(extra_env or {})}
        env.pop("RAY_ADDRESS", None)
        self.process = subprocess.Popen(
            command, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        wait_until_up(
            self.process,
            listens(self.port),
            what="ray start",
            timeout_s=START_TIMEOUT_S,
            log_path=log_path,
            on_timeout=self.stop,
        )

    def join(self) -> None:
        """Make this process a member of the cluster (a driver), as the app and ``python -m serving`` are."""
        os.environ.update(self.env)  # before Ray is imported: it reads them once, at import
        import ray

        ray.init(address=self.address, logging_level="WARNING", log_to_driver=False)
        self._joined = True

    def stop(self) -> None:
        """End the cluster's whole process group: the GCS, the raylet and every worker and replica."""
        if self._joined:  # leave first, or this process's Ray keeps calling the stopped cluster
            import ray

            ray.shutdown()
            self._joined = False
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._log.close()

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
