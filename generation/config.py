"""Every environment setting the server reads, read in one place into one frozen dataclass.

``ServerConfig.from_env()`` is the only code that looks at ``os.environ`` for a setting. A bad value stops
with a ``ConfigError`` that names the variable, the value and the form expected, so a typo in a Space's
settings fails at start-up, not in someone's first request. Library objects built without a config (an
engine in a notebook, say) take theirs from the environment the same way.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import InvalidInputError, quoted

DEFAULT_TEXT_MODEL = "facebook/musicgen-small"
DEFAULT_MELODY_MODEL = "facebook/musicgen-melody"
DEFAULT_HUB = "https://huggingface.co"
DEVICES = ("cuda", "mps", "cpu")
AUTO_MODEL = "auto"  # a request's model when it names none: the first text model, or melody model for a melody
MODEL_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,39}")
BACKENDS = ("local", "ray")  # where generation runs: in this process, or on a Ray Serve cluster (serving/)
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class ConfigError(InvalidInputError):
    """A server setting has a value the server cannot use; the message names the variable and the form expected."""


def _setting(env: str, default: Any, why: str, parse: Callable[[str], Any], form: str) -> Any:
    return field(default=default, metadata={"env": env, "why": why, "parse": parse, "form": form})


def _text(raw: str) -> str:
    if not raw:
        raise ValueError
    return raw


def _flag(raw: str) -> bool:
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ValueError


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError
    return value


def _positive(raw: str) -> float:
    value = float(raw)
    if not (value > 0 and math.isfinite(value)):
        raise ValueError
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 1 <= value <= 65_535:
        raise ValueError
    return value


def _device(raw: str) -> str:
    if raw.lower() not in DEVICES:
        raise ValueError
    return raw.lower()


def _backend(raw: str) -> str:
    if raw.lower() not in BACKENDS:
        raise ValueError
    return raw.lower()


def _size(raw: str) -> str:
    if not re.fullmatch(r"\d+(\.\d+)?\s*(b|kb|mb|gb)", raw.lower()):
        raise ValueError
    return raw.lower()


def _url(raw: str) -> str:
    if not re.match(r"https?://[^/\s]+", raw):
        raise ValueError
    return raw.rstrip("/")


def _models(raw: str) -> tuple[tuple[str, str], ...]:
    """``name=source,name=source``: names are short lowercase words, each once; sources are hub ids or folders."""
    entries: list[tuple[str, str]] = []
    for item in raw.split(","):
        name, equals, source = (part.strip() for part in item.partition("="))
        if not equals or not MODEL_NAME.fullmatch(name) or name == AUTO_MODEL or not source:
            raise ValueError
        if name in dict(entries):
            raise ValueError
        entries.append((name, source))
    return tuple(entries)


def _folder(raw: str) -> Path:
    return Path(raw).expanduser()


def _folder_or_off(raw: str) -> Path | str:
    return "off" if raw.lower() == "off" else _folder(raw)


@dataclass(frozen=True)
class ServerConfig:
    """The server's settings: each field is one environment variable, with its default and why it is that."""

    text_model: str = _setting(
        "MUSICGEN_MODEL",
        DEFAULT_TEXT_MODEL,
        "the smallest MusicGen: 2.4 GB, fits a free CPU Space",
        _text,
        "a hub id such as facebook/musicgen-small or a folder saved with save_pretrained",
    )
    melody_model: str = _setting(
        "MUSICGEN_MELODY_MODEL",
        DEFAULT_MELODY_MODEL,
        "the only public MusicGen that follows a melody",
        _text,
        "a hub id such as facebook/musicgen-melody or a folder saved with save_pretrained",
    )
    models: tuple[tuple[str, str], ...] | None = _setting(
        "MOODTAPE_MODELS",
        None,
        "unset offers MUSICGEN_MODEL as `text` and MUSICGEN_MELODY_MODEL as `melody`",
        _models,
        "comma-separated name=source entries, such as small=facebook/musicgen-small,"
        "stereo=facebook/musicgen-stereo-small (names: lowercase letters, digits, '.', '-', '_'; each once; "
        f"not {AUTO_MODEL!r})",
    )
    max_loaded_models: int = _setting(
        "MOODTAPE_MAX_LOADED_MODELS",
        2,
        "small and melody together take about 8.5 GB, within a CPU Space's 16 GB",
        _positive_int,
        "a whole number of models, 1 or more",
    )
    fast_cpu: bool | None = _setting(
        "MOODTAPE_FAST_CPU",
        None,
        "unset: fast on CPU (on 2 cores the app made a 5 s track in 5 s instead of 38), exact on a GPU",
        _flag,
        "1 or 0 (also true/false, yes/no, on/off)",
    )
    max_batch: int = _setting(
        "MOODTAPE_MAX_BATCH",
        4,
        "on 2 CPU cores, 4 at once gave about 2x the throughput of one at a time",
        _positive_int,
        "a whole number of requests, 1 or more",
    )
    max_duration: float = _setting(
        "MOODTAPE_MAX_DURATION",
        300.0,
        "5 minutes, a whole song: about 22 minutes of compute on 2 CPU cores, inside the time limit",
        _positive,
        "a positive number of seconds",
    )
    device: str | None = _setting(
        "MOODTAPE_DEVICE", None, "unset picks CUDA, then Apple MPS, then CPU", _device, f"one of {', '.join(DEVICES)}"
    )
    output_dir: Path = _setting(
        "MOODTAPE_OUTPUT_DIR",
        Path(tempfile.gettempdir()) / "moodtape-outputs",
        "the system's temp folder is writable everywhere, Spaces included",
        _folder,
        "a folder path",
    )
    presets_dir: Path | None = _setting(
        "MOODTAPE_PRESETS_DIR", None, "the built-in presets need no folder of your own", _folder, "a folder path"
    )
    queue_size: int = _setting(
        "MOODTAPE_QUEUE_SIZE",
        32,
        "a few minutes of waiting at most; beyond it, 'try again' is kinder",
        _positive_int,
        "a whole number of requests, 1 or more",
    )
    request_timeout_s: float = _setting(
        "MOODTAPE_REQUEST_TIMEOUT_S",
        1800.0,
        "30 minutes covers 5 minutes of audio on 2 CPU cores",
        _positive,
        "a positive number of seconds",
    )
    max_file_size: str = _setting(
        "MOODTAPE_MAX_FILE_SIZE",
        "50mb",
        "4.5 minutes of CD-quality WAV: a whole song to restyle (its first 30 s are used)",
        _size,
        "a size such as 50mb, 500kb or 1gb",
    )
    server_name: str = _setting(
        "GRADIO_SERVER_NAME",
        "127.0.0.1",
        "only this machine can reach it until you say otherwise",
        _text,
        "an address to listen on, such as 127.0.0.1 or 0.0.0.0",
    )
    server_port: int = _setting("GRADIO_SERVER_PORT", 7860, "Gradio's usual port", _port, "a port from 1 to 65535")
    stems_model: str = _setting(
        "MOODTAPE_STEMS_MODEL",
        "htdemucs",
        "Demucs' default four-stem model",
        _text,
        "a Demucs model name on the hub, or a local .safetensors/.th file or bag folder",
    )
    melody_separation: bool = _setting(
        "MOODTAPE_MELODY_SEPARATION",
        True,
        "MusicGen-Melody was trained on melodies with drums and bass taken out by Demucs, as audiocraft does",
        _flag,
        "1 or 0 (also true/false, yes/no, on/off)",
    )
    output_max_mb: float = _setting(
        "MOODTAPE_OUTPUT_MAX_MB",
        2048.0,
        "2 GB of results fits a Space's ephemeral disk with room to spare",
        _positive,
        "a positive number of megabytes",
    )
    output_max_age_h: float = _setting(
        "MOODTAPE_OUTPUT_MAX_AGE_H", 24.0, "a day to come back for a download", _positive, "a positive number of hours"
    )
    library_dir: Path | str | None = _setting(
        "MOODTAPE_LIBRARY_DIR",
        None,
        "unset keeps every finished track in a per-user data folder, on a Space in its persistent storage (/data)",
        _folder_or_off,
        "a folder path, or off",
    )
    library_max_mb: float = _setting(
        "MOODTAPE_LIBRARY_MAX_MB",
        2048.0,
        "about 500 tracks of 30 s (WAV and MP3) per person",
        _positive,
        "a positive number of megabytes",
    )
    hub_offline: bool = _setting(
        "HF_HUB_OFFLINE", False, "weights are fetched on first use", _flag, "1 or 0 (also true/false, yes/no, on/off)"
    )
    hub_endpoint: str = _setting(
        "HF_ENDPOINT",
        DEFAULT_HUB,
        "the Hugging Face hub itself",
        _url,
        "an http(s) address such as https://hf-mirror.com",
    )
    space_id: str | None = _setting(
        "SPACE_ID",
        None,
        "set by Hugging Face on a Space, never by hand",
        _text,
        "a Space's id such as owner/name",
    )
    zero_gpu: bool = _setting(
        "SPACES_ZERO_GPU",
        False,
        "set by Hugging Face on ZeroGPU hardware, never by hand",
        _flag,
        "1 or 0 (also true/false, yes/no, on/off)",
    )
    backend: str = _setting(
        "MOODTAPE_BACKEND",
        "local",
        "one machine needs no cluster; ray sends generation to the replicas that python -m serving deployed",
        _backend,
        f"one of {', '.join(BACKENDS)}",
    )

    @property
    def model_entries(self) -> tuple[tuple[str, str], ...]:
        """The models people may pick, as (name, source): ``MOODTAPE_MODELS``, else the text and melody models."""
        return self.models or (("text", self.text_model), ("melody", self.melody_model))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerConfig:
        """Read every setting from ``environ`` (default ``os.environ``); unset or empty takes the default.

        Raises ``ConfigError`` listing every bad value at once.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        problems: list[str] = []
        for f in fields(cls):
            env, raw = f.metadata["env"], environ.get(f.metadata["env"], "").strip()
            if not raw:
                continue
            try:
                values[f.name] = f.metadata["parse"](raw)
            except ValueError:
                default = "unset" if f.default is None else f.default
                problems.append(
                    f"{env} must be {f.metadata['form']}, got {quoted(raw)}; unset it for the default ({default})."
                )
        if problems:
            raise ConfigError(" ".join(problems))
        return cls(**values)

    @classmethod
    def env_name(cls, name: str) -> str:
        """The environment variable of the field ``name``."""
        return next(f.metadata["env"] for f in fields(cls) if f.name == name)

    @classmethod
    def settings(cls) -> list[tuple[str, Any, str]]:
        """(environment variable, default, why that default) for every setting, in docs/settings.md's order."""
        return [(f.metadata["env"], f.default, f.metadata["why"]) for f in fields(cls) if f.default is not MISSING]
