"""The models a server offers, picked by name: what each is (from its config), and at most N of them in memory.

The operator lists them (``MOODTAPE_MODELS``, or the text and melody models); a request names one or leaves the
choice to the server. Whether a model follows melodies and how many channels it makes come from its checkpoint's
``config.json``, never from its name. Engines are made on first use; before one loads, the least recently used
others are unloaded so that no more than ``max_loaded`` are in memory.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .config import AUTO_MODEL, ServerConfig
from .errors import InvalidInputError, ModelLoadError, quoted
from .hub import load_failure_message
from .model.loading import LOCAL_FORM
from .model.types import MELODY, TEXT

MODELS_ENV = ServerConfig.env_name("models")
_LOOKS_LIKE_A_PLACE = re.compile(r"[/\\:~]|^\.")  # a path, a hub id (owner/name) or a URL


@dataclass(frozen=True)
class ModelInfo:
    """What a checkpoint's config says about it."""

    kind: str  # "text" (MusicGen) or "melody" (MusicGen-Melody: text plus a melody's chroma)
    channels: int  # 1 (mono) or 2 (stereo: codebooks interleaved left and right)
    layers: int  # decoder layers
    hidden_size: int  # decoder width
    parameters: int  # decoder parameters, embeddings and heads included

    @classmethod
    def from_config(cls, config: Any) -> ModelInfo:
        """Read a ``MusicgenConfig`` or ``MusicgenMelodyConfig``; refuse any other model type."""
        kinds = {"musicgen": TEXT, "musicgen_melody": MELODY}
        model_type = getattr(config, "model_type", None)
        if model_type not in kinds:
            raise ValueError(f"it is a {model_type!r} checkpoint, not MusicGen or MusicGen-Melody")
        decoder = config.decoder
        h, ffn, layers = decoder.hidden_size, decoder.ffn_dim, decoder.num_hidden_layers
        attention = 4 * h * h * (2 if kinds[model_type] == TEXT else 1)  # MusicGen cross-attends to the text
        per_layer = attention + 2 * h * ffn + 2 * h * (3 if kinds[model_type] == TEXT else 2)  # + layer norms
        embeddings = decoder.num_codebooks * (decoder.vocab_size + 1) * h
        heads = decoder.num_codebooks * decoder.vocab_size * h
        return cls(
            kind=kinds[model_type],
            channels=int(decoder.audio_channels),
            layers=layers,
            hidden_size=h,
            parameters=layers * per_layer + embeddings + heads,
        )

    @property
    def label(self) -> str:
        """``text · stereo · 420M`` and the like, for a menu."""
        channels = "stereo" if self.channels == 2 else "mono" if self.channels == 1 else f"{self.channels} channels"
        count = self.parameters
        size = (
            f"{count / 1e9:.1f}B" if count >= 1e9 else f"{count / 1e6:.0f}M" if count >= 1e6 else f"{count / 1e3:.0f}K"
        )
        return f"{self.kind} · {channels} · {size}"


def read_model_info(
    source: str, config: ServerConfig, revision: str | None = None, setting: str = MODELS_ENV
) -> ModelInfo:
    """A model's kind, channels and size from its ``config.json`` (a small download for a hub id, no weights).

    ``setting`` is the environment variable that named ``source``, for the failure message.
    """
    # A submodule import: transformers' lazy top-level names are not safe to resolve while the model thread imports
    from transformers.models.auto.configuration_auto import AutoConfig

    try:
        return ModelInfo.from_config(AutoConfig.from_pretrained(source, revision=revision))
    except Exception as e:  # transformers raises OSError, ValueError, hub errors...
        message = load_failure_message(
            source, e, what="MusicGen model", env=setting, local_form=LOCAL_FORM, offline=config.hub_offline
        )
        raise ModelLoadError(message) from e


def make_room(engines: Iterable[Any], loading: Any, max_loaded: int) -> None:
    """Before ``loading`` loads: unload the loaded others, least recently used first, until fewer than
    ``max_loaded`` remain. ``engines`` are in order of last use, least recent first.
    """
    others = [e for e in engines if e.loaded and e is not loading]
    while len(others) >= max_loaded:
        others.pop(0).unload()  # waits for a batch it is running to finish


class ModelCatalog:
    """The models people may pick, by name, with an engine each made on first use and at most ``max_loaded`` loaded.

    ``entries`` are (name, source) pairs in the operator's order; ``engines`` may hold ready engines by name
    (a notebook's, the tests'). ``make_engine(source, kind)`` builds the others (default: ``new_engine``, in this
    process or on the cluster as ``config.backend`` says).
    """

    def __init__(
        self,
        entries: Sequence[tuple[str, str]],
        config: ServerConfig,
        *,
        engines: Mapping[str, Any] | None = None,
        max_loaded: int | None = None,
        make_engine: Any = None,
    ):
        if not entries:
            raise ValueError("a catalog needs at least one model")
        self.entries = dict(entries)
        self.config = config
        self.max_loaded = max(1, max_loaded or config.max_loaded_models)
        self._engines: dict[str, Any] = dict(engines or {})
        self._infos: dict[str, ModelInfo] = {}
        self._recent: list[str] = []  # names by last use, least recent first
        self._lock = threading.Lock()
        self._make_engine = make_engine or self._new_engine

    @classmethod
    def from_config(cls, config: ServerConfig, **options: Any) -> ModelCatalog:
        """The operator's models: ``MOODTAPE_MODELS``, else ``text`` and ``melody`` from the two model settings."""
        return cls(config.model_entries, config, **options)

    @property
    def names(self) -> list[str]:
        return list(self.entries)

    def info(self, name: str) -> ModelInfo:
        """What the model ``name`` is, read from its config once."""
        if name not in self._infos:
            self._infos[name] = read_model_info(self.entries[name], self.config, setting=self.setting(name))
        return self._infos[name]

    def setting(self, name: str) -> str:
        """The environment variable that offers model ``name``: MOODTAPE_MODELS, or the text or melody setting."""
        if self.config.models is None and name in (TEXT, MELODY):
            return ServerConfig.env_name("text_model" if name == TEXT else "melody_model")
        return MODELS_ENV

    def kind(self, name: str) -> str:
        """``"text"`` or ``"melody"``: a ready engine's family, else what the model's config says."""
        engine = self._engines.get(name)
        return engine.family if engine is not None else self.info(name).kind

    def pick(self, requested: str | None, *, melody: bool) -> str:
        """The name of the model a request gets: the one it names, or the first text (melody) model.

        Raises ``InvalidInputError`` for a name not offered (paths, hub ids and URLs included) and for a
        melody given to a model that follows text only.
        """
        name = (requested or "").strip()
        if name in ("", AUTO_MODEL):
            return self._default(melody)
        if name not in self.entries:
            place = (
                " Paths, hub ids and URLs cannot be picked: the server's operator chooses the models."
                if _LOOKS_LIKE_A_PLACE.search(name)
                else ""
            )
            raise InvalidInputError(
                f"model must be one of {self._listed()} on this server (or empty for the server's choice), "
                f"got {quoted(name)}.{place}"
            )
        if melody and self.kind(name) != MELODY:
            melody_models = [n for n in self.names if self.kind(n) == MELODY]
            choice = f"pick {self._listed(melody_models)}" if melody_models else "this server offers none"
            raise InvalidInputError(
                f"The model {name!r} follows text only; a melody needs a MusicGen-Melody model: {choice}, "
                "or leave the melody out."
            )
        return name

    def _default(self, melody: bool) -> str:
        wanted = MELODY if melody else TEXT
        for name in self.names:
            if self.kind(name) == wanted:
                return name
        if melody:
            raise InvalidInputError(
                f"This server offers no MusicGen-Melody model ({self._listed()} follow text only), so it cannot "
                "follow a melody: leave the melody out and describe the music instead."
            )
        return self.names[0]  # only melody models: they make music from text alone as well

    def name_for_source(self, source: str | None) -> str | None:
        """The name under which ``source`` (a recipe's model id) is offered, if it is."""
        return next((name for name, offered in self.entries.items() if offered == source), None)

    def engine(self, name: str) -> Any:
        """The engine of model ``name``, without loading it."""
        with self._lock:
            return self._engine(name)

    def made(self, name: str) -> Any:
        """The engine of model ``name`` if one was made already, else None (nothing is read or built)."""
        return self._engines.get(name)

    def acquire(self, name: str) -> Any:
        """The engine of model ``name``, loaded; the least recently used others are unloaded first if need be.

        A model that is loading for another request is waited for, not loaded twice (loads run one at a time).
        """
        with self._lock:
            engine = self._engine(name)
            self._recent = [n for n in self._recent if n != name] + [name]
            if not engine.loaded:
                make_room([self._engines[n] for n in self._recent], engine, self.max_loaded)
        engine.load()
        return engine

    def _engine(self, name: str) -> Any:
        if name not in self._engines:
            self._engines[name] = self._make_engine(self.entries[name], self.info(name).kind)
        return self._engines[name]

    def _new_engine(self, source: str, kind: str) -> Any:
        from .model.backends import new_engine  # in this process, or on the cluster (MOODTAPE_BACKEND)
        from .model.spec import EngineSpec

        return new_engine(self.config, EngineSpec(model_id=source, family=kind))

    def describe(self) -> list[dict[str, Any]]:
        """Each model: name, source, kind, channels, decoder size, loaded or not, and what it is the default for."""
        text_default = self._safe_default(melody=False)
        melody_default = self._safe_default(melody=True)
        described = []
        for name, source in self.entries.items():
            engine = self._engines.get(name)
            row: dict[str, Any] = {"name": name, "source": source, "loaded": bool(engine and engine.loaded)}
            try:
                info = self.info(name)
            except ModelLoadError as e:
                row |= {"kind": None, "channels": None, "decoder": None, "error": str(e)}
            else:
                row |= {
                    "kind": info.kind,
                    "channels": info.channels,
                    "decoder": {"layers": info.layers, "hidden_size": info.hidden_size, "parameters": info.parameters},
                    "label": info.label,
                }
            row["default"] = name == text_default
            row["default_with_melody"] = name == melody_default
            described.append(row)
        return described

    def choices(self) -> list[tuple[str, str]]:
        """The page's menu: the server's choice first, then each model with its kind, channels and size."""
        rows = [(f"{name} · {self.info(name).label}" if self._readable(name) else name, name) for name in self.names]
        return [("automatic: text model, or melody model for a melody", AUTO_MODEL), *rows]

    def _readable(self, name: str) -> bool:
        try:
            self.info(name)
        except ModelLoadError:
            return False
        return True

    def _safe_default(self, melody: bool) -> str | None:
        try:
            return self._default(melody)
        except (InvalidInputError, ModelLoadError):
            return None

    def _listed(self, names: Sequence[str] | None = None) -> str:
        return ", ".join(repr(n) for n in (self.names if names is None else names))
