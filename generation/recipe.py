"""The recipe: what was asked and what was used, as JSON that reproduces the track."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .errors import InvalidInputError
from .settings import GenerationSettings

RECIPE_FORMAT = 1  # bump when a field changes meaning


@dataclass(frozen=True)
class Recipe:
    """Everything needed to make the same track again on the same machine."""

    settings: GenerationSettings  # resolved prompt and settings, with the seed actually used
    model_id: str
    model_revision: str | None  # hub commit hash; None for a local folder
    model_name: str | None = None  # the name the server offered it under (MOODTAPE_MODELS); a replay picks it again
    preset: str | None = None  # preset id used to resolve the settings, for reference only
    mood: str | None = None  # the mood text typed, before a preset wrapped it
    melody: dict[str, Any] | None = None  # file name, seconds used and sha256 of a melody input
    export: dict[str, Any] | None = None  # formats, rate, loudness target and result, stems written
    tempo: dict[str, Any] | None = None  # measured tempo and key; the BPM asked for, the stretch, the loop cut
    extend: dict[str, Any] | None = None  # the track continued: file name, sha256, seconds, seconds continued
    key: dict[str, Any] | None = None  # the key asked for, the key measured, the semitones moved, the key now
    sections: tuple[dict[str, Any], ...] = ()  # a composed song: each section's prompt, start, end (s) and seed
    replace: dict[str, Any] | None = None  # a section replaced: file, sha256, start and end, candidates' seeds, scores
    takes: tuple[dict[str, Any], ...] = ()  # every take of the request: its seed and file names
    audio_seconds: float = 0.0
    sample_rate: int = 0
    channels: int = 1
    gain_db: float = 0.0  # level change applied after generation (0 = untouched)
    seconds_taken: float = 0.0
    device: str = "cpu"
    dtype: str = "float32"
    mode: str = "exact"  # "fast": int8 decoder weights (CPU fast mode), slightly different audio
    batch_size: int = 1  # requests generated together; the audio is the same alone or batched
    windows: int = 1  # 30 s windows the track took (long-form continuation beyond 30 s)
    worker: str | None = None  # the cluster replica and host that made it; None when made in-process
    app_version: str = __version__
    created_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    environment: dict[str, str] = field(default_factory=lambda: _environment())
    notes: tuple[str, ...] = ()

    @property
    def ai_notice(self) -> str:
        return f"AI-generated music, made with Moodtape {self.app_version} using the model {self.model_id}."

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["notes"] = list(self.notes)
        data["takes"] = list(self.takes)
        data["sections"] = list(self.sections)
        return {"format": RECIPE_FORMAT, "generator": "moodtape", "ai_generated": self.ai_notice, **data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def request_values(self) -> dict[str, Any]:
        """What any request that makes this recipe again takes from it, by request field: the seed and sampling,
        the model, the key and the export."""
        s, export = self.settings, self.export or {}
        loudness = export.get("loudness_lufs")
        return {
            "seed": s.seed,
            "temperature": s.temperature,
            "top_k": s.top_k,
            "top_p": s.top_p,
            "guidance_scale": s.guidance_scale,
            "negative_prompt": s.negative_prompt,
            "model": self.model_name,
            "key": (self.key or {}).get("asked"),
            "formats": export.get("formats"),
            "sample_rate": export.get("sample_rate"),
            "loudness": ("off" if loudness is None else loudness) if export else None,
            "stems": export.get("stems"),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        """Read a recipe back, refusing one that lacks settings or a model."""
        try:
            settings = GenerationSettings.from_dict(dict(data["settings"]))
            known = {name for name in cls.__dataclass_fields__ if name != "settings"}
            values = {k: v for k, v in data.items() if k in known}
            values["notes"] = tuple(values.get("notes", ()))
            values["takes"] = tuple(values.get("takes", ()))
            values["sections"] = tuple(values.get("sections", ()))
            return cls(settings=settings, **values)
        except (KeyError, TypeError) as e:
            raise InvalidInputError(f"This is not a Moodtape recipe: missing or malformed field {e}.") from e

    @classmethod
    def load(cls, path: str | Path) -> Recipe:
        """Load a recipe JSON file written by Moodtape."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise InvalidInputError(f"Could not read the recipe '{path}': {e}") from e
        if not isinstance(data, dict):
            raise InvalidInputError(f"The recipe '{path}' must hold a JSON object.")
        return cls.from_dict(data)


def _environment() -> dict[str, str]:
    import torch
    import transformers

    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__}
