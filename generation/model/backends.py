"""Where a model runs: in this process (``MusicGenEngine``) or on a Ray Serve cluster (``RemoteEngine``).

Both have the same interface, so the model catalog builds its engines here and the studio never asks which one
it holds.
"""

from __future__ import annotations

from typing import Any

from ..config import ServerConfig
from .engine import MusicGenEngine
from .types import TEXT


def new_engine(config: ServerConfig, model_id: str | None = None, family: str = TEXT, **options: Any):
    """An engine for ``model_id`` (default: the config's model of ``family``) on ``config.backend``.

    ``options`` are the engine's own keyword arguments (``revision``, ``fast``, ``max_batch``, ...).
    """
    if config.backend == "ray":
        from .remote import RemoteEngine  # imports ray only when the cluster is asked for

        return RemoteEngine(model_id, family=family, config=config, **options)
    return MusicGenEngine(model_id, family=family, config=config, **options)
