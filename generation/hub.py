"""Where weights come from (a local folder or the Hugging Face hub) and what to say when they cannot be had."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from .config import ServerConfig

HUB_PROBE_TIMEOUT_S = 3.0  # how long to wait for a TCP connection to the hub before calling it unreachable


class WeightsUnavailable(Exception):
    """The weights are not here and cannot be fetched; the message says why in a few words."""


def is_local(model_id: str) -> bool:
    """Whether ``model_id`` names a file or folder on this machine rather than a hub repository."""
    return Path(model_id).expanduser().exists()


def hub_host(config: ServerConfig) -> str:
    """The host name weights are downloaded from (``HF_ENDPOINT``'s, or huggingface.co)."""
    return urlparse(config.hub_endpoint).hostname or "huggingface.co"


def hub_reachable(config: ServerConfig) -> bool:
    """A quick TCP check, so a machine without network fails now rather than after minutes of retries."""
    if urllib.request.getproxies().get("https") or urllib.request.getproxies().get("all"):
        return True  # only the proxy knows; let the download try
    endpoint = urlparse(config.hub_endpoint)
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    try:
        socket.create_connection((hub_host(config), port), timeout=HUB_PROBE_TIMEOUT_S).close()
    except OSError:
        return False
    return True


def load_failure_message(
    model_id: str,
    error: BaseException,
    *,
    what: str,
    env: str,
    local_form: str,
    offline: bool,
    repo: str | None = None,
) -> str:
    """Why ``model_id`` could not be loaded and how to fix it: the folder to point ``env`` at, or what to download.

    ``what`` names the model ("MusicGen model", "Demucs model"); ``local_form`` says what a local copy must be;
    ``offline`` is ``HF_HUB_OFFLINE``; ``repo`` is the hub repository to download when it differs from ``model_id``.
    """
    text = str(error).strip()
    reason = text.splitlines()[0].rstrip(".") if text else type(error).__name__
    if is_local(model_id):
        return f"Could not load the {what} from '{model_id}': {reason}. Point {env} at {local_form}."
    if not isinstance(error, WeightsUnavailable):
        where = (
            "offline mode is on (HF_HUB_OFFLINE)" if offline else "it is not cached here and could not be downloaded"
        )
        reason = f"{where} ({reason})"
    return (
        f"Could not load the {what} '{model_id}': {reason}. Download it once on a machine with network "
        f"(`hf download {repo or model_id}`, or run Moodtape there once), or set {env} to {local_form}."
    )
