"""Where a model runs: in this process (``MusicGenEngine``) or on a Ray Serve cluster (``RemoteEngine``).

Both have the same interface, so the model catalog builds its engines here and the studio never asks which one
it holds.
"""

from __future__ import annotations

from ..config import ServerConfig
from .engine import MusicGenEngine
from .spec import EngineSpec


def new_engine(config: ServerConfig, spec: EngineSpec | None = None):
    """An engine for ``spec`` (default: the config's text model) on ``config.backend``."""
    if config.backend == "ray":
        from .remote import RemoteEngine  # imports ray only when the cluster is asked for

        return RemoteEngine(spec, config=config)
    return MusicGenEngine(spec, config=config)
