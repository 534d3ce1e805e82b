"""Read ``config.yaml``, build the Serve application around ``MusicGenReplica``, deploy it and wait until ready."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from generation.errors import InvalidInputError
from generation.model.remote import DEPLOYMENT, SERVE_APP

from .deployment import MusicGenReplica

ROOT = Path(__file__).resolve().parent.parent  # the replicas import generation/ and serving/ from here
CONFIG = Path(__file__).with_name("config.yaml")
SECTIONS = {
    "autoscaling": dict,
    "max_ongoing_requests": int,
    "max_queued_requests": int,
    "graceful_shutdown_timeout_s": (int, float),
    "health_check_period_s": (int, float),
    "health_check_timeout_s": (int, float),
    "replica": dict,
}
REPLICA_KEYS = {"num_cpus", "num_gpus", "threads", "max_batch", "max_loaded_models"}


def read_settings(path: str | Path = CONFIG) -> dict[str, Any]:
    """The deployment settings in ``path``: every section of ``config.yaml``, checked."""
    try:
        settings = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise InvalidInputError(f"Could not read the serving settings '{path}': {e}") from e
    if not isinstance(settings, dict):
        raise InvalidInputError(f"The serving settings '{path}' must hold a YAML mapping.")
    for name, kind in SECTIONS.items():
        if not isinstance(settings.get(name), kind) or isinstance(settings.get(name), bool):
            raise InvalidInputError(f"The serving settings '{path}' need '{name}', got {settings.get(name)!r}.")
    unknown = set(settings["replica"]) - REPLICA_KEYS
    if unknown:
        raise InvalidInputError(
            f"Unknown replica settings in '{path}': {sorted(unknown)}; known: {sorted(REPLICA_KEYS)}."
        )
    return settings


def application(settings: dict[str, Any], replicas: int | None = None):
    """The Serve application: ``replicas`` fixed replicas, or autoscaling as the settings say."""
    from ray import serve

    replica = settings["replica"]
    threads = replica.get("threads")
    env = {"PYTHONPATH": str(ROOT)}
    if threads:  # MKL and OpenMP read these at start; torch.set_num_threads in the replica does the rest
        env |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    scaling = {"num_replicas": replicas} if replicas else {"autoscaling_config": settings["autoscaling"]}
    deployment = serve.deployment(
        MusicGenReplica,
        name=DEPLOYMENT,
        ray_actor_options={
            "num_cpus": replica.get("num_cpus", 1),
            "num_gpus": replica.get("num_gpus", 0),
            "runtime_env": {"env_vars": env},
        },
        max_ongoing_requests=settings["max_ongoing_requests"],
        max_queued_requests=settings["max_queued_requests"],
        graceful_shutdown_timeout_s=settings["graceful_shutdown_timeout_s"],
        health_check_period_s=settings["health_check_period_s"],
        health_check_timeout_s=settings["health_check_timeout_s"],
        **scaling,
    )
    return deployment.bind(
        threads=threads, max_batch=replica.get("max_batch"), max_loaded_models=replica.get("max_loaded_models")
    )


def deploy(settings: dict[str, Any], replicas: int | None = None, name: str = SERVE_APP):
    """Deploy on the cluster Ray finds (``RAY_ADDRESS``, else this machine's) and return when replicas are ready.

    Serve's HTTP proxy is left off: the app talks to the replicas through handles, so nothing listens on a port.
    """
    import ray
    from ray import serve

    if not ray.is_initialized():
        ray.init(address="auto", logging_level=logging.WARNING)
    serve.start(proxy_location="Disabled")
    return serve.run(application(settings, replicas), name=name, route_prefix=None)
