"""One request's path from raw values to files on disk: validate, resolve, generate, write, describe."""

from __future__ import annotations

import os
import secrets
import tempfile
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

from . import presets as presets_module
from .audio_io import fit_to_ceiling, slugify, write_text, write_wav
from .engine import GeneratedAudio, MusicGenEngine, ProgressCallback
from .errors import InvalidInputError
from .recipe import Recipe
from .settings import GenerationSettings, normalise_seed

OUTPUT_DIR_ENV = "MOODTAPE_OUTPUT_DIR"


def default_output_dir() -> Path:
    """Where results are written: ``MOODTAPE_OUTPUT_DIR`` or a folder in the system temp dir."""
    configured = os.environ.get(OUTPUT_DIR_ENV, "").strip()
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "moodtape-outputs"


@dataclass(frozen=True)
class TrackRequest:
    """Raw request values as a UI or API client sends them; ``None`` means "not given"."""

    prompt: str | None = ""  # mood text; a preset wraps it in its template
    preset: str | None = None  # preset id; None, "" or "none" for no preset
    melody: str | None = None  # path of a hum or song to follow (MusicGen-Melody)
    duration: float | None = None
    seed: int | float | str | None = None  # None, "" or -1 for a random seed
    temperature: float | None = None
    top_k: int | float | None = None
    top_p: float | None = None
    guidance_scale: float | None = None


@dataclass(frozen=True)
class Track:
    """A finished result: the files written and the recipe that made them."""

    wav_path: Path
    recipe_path: Path
    recipe: Recipe
    generated: GeneratedAudio = field(repr=False)

    @property
    def files(self) -> list[Path]:
        return [self.wav_path, self.recipe_path]

    def summary(self) -> str:
        """One line for a person: seed, length, time taken."""
        r = self.recipe
        return (
            f"Seed {r.settings.seed} · {r.audio_seconds:.1f} s of audio at {r.sample_rate} Hz · "
            f"made in {r.seconds_taken:.1f} s on {r.device}"
        )


class Studio:
    """Turns track requests into WAV files and recipes, with one engine shared by all requests."""

    def __init__(
        self,
        engine: MusicGenEngine | None = None,
        library: presets_module.PresetLibrary | None = None,
        output_dir: str | Path | None = None,
    ):
        self.engine = engine or MusicGenEngine()
        self.presets = library if library is not None else presets_module.load_presets()
        self.output_dir = Path(output_dir) if output_dir is not None else default_output_dir()

    def settings_for(self, request: TrackRequest) -> GenerationSettings:
        """Validate a request and merge it with its preset into concrete settings."""
        return presets_module.resolve(
            self.presets.find(request.preset),
            request.prompt or "",
            duration=request.duration,
            seed=normalise_seed(request.seed),
            temperature=request.temperature,
            top_k=_whole(request.top_k, "top_k"),
            top_p=request.top_p,
            guidance_scale=request.guidance_scale,
        )

    def make_track(
        self,
        request: TrackRequest,
        *,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        destination: str | Path | None = None,
    ) -> Track:
        """Generate one track and write it; raises ``MoodtapeError`` subclasses for bad input.

        Files go to a fresh folder under ``output_dir`` with descriptive names, or to
        ``destination`` (a .wav path) with the recipe beside it as ``<name>.recipe.json``.
        """
        # 1. Validate and resolve the preset
        preset = self.presets.find(request.preset)
        settings = self.settings_for(request).with_seed()
        if not settings.prompt:
            raise InvalidInputError(
                "The prompt is empty: describe the music (e.g. 'rainy night, mellow piano, slow') or pick a preset."
            )

        # 2. Generate
        generated = self.engine.generate(settings, on_progress=on_progress, cancel=cancel)

        # 3. Post-process: keep the level under the ceiling
        audio, gain_db = fit_to_ceiling(generated.audio)
        notes = (f"Lowered the level by {-gain_db:.1f} dB so the WAV does not clip.",) if gain_db else ()

        # 4. Describe it
        recipe = Recipe(
            settings=generated.settings,
            model_id=generated.model_id,
            model_revision=generated.model_revision,
            preset=preset.id if preset is not None else None,
            mood=" ".join((request.prompt or "").split()) or None,
            audio_seconds=round(audio.shape[-1] / generated.sample_rate, 3),
            sample_rate=generated.sample_rate,
            channels=audio.shape[0],
            gain_db=round(gain_db, 2),
            seconds_taken=round(generated.seconds_taken, 2),
            device=generated.device,
            dtype=generated.dtype,
            notes=notes,
        )

        # 5. Write files
        if destination is None:
            wav_target = self.output_dir / _job_folder_name() / f"{track_stem(recipe)}.wav"
        else:
            wav_target = Path(destination)
        wav_path = write_wav(wav_target, audio, generated.sample_rate, tags=wav_tags(recipe))
        recipe_path = write_text(wav_target.with_suffix(".recipe.json"), recipe.to_json())
        generated = replace(generated, audio=audio)
        return Track(wav_path=wav_path, recipe_path=recipe_path, recipe=recipe, generated=generated)


def track_stem(recipe: Recipe) -> str:
    """A descriptive file name without extension: moodtape_<preset>_<prompt slug>_seed<seed>."""
    parts = ["moodtape"]
    if recipe.preset:
        parts.append(recipe.preset)
    parts.append(slugify(recipe.mood or recipe.settings.prompt, max_chars=32))
    parts.append(f"seed{recipe.settings.seed}")
    return "_".join(parts)


def wav_tags(recipe: Recipe) -> dict[str, str]:
    """RIFF INFO tags: a title, the AI notice and the full recipe as the comment."""
    return {
        "title": (recipe.mood or recipe.settings.prompt)[:200],
        "software": f"Moodtape {recipe.app_version}",
        "artist": f"AI-generated with {recipe.model_id}",
        "comment": recipe.to_json(),
        "date": recipe.created_at[:10],
    }


def _job_folder_name() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def _whole(value: int | float | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidInputError(f"{name} must be a whole number, got {value!r}.")
