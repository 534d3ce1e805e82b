"""One request's path from raw values to files on disk: validate, resolve, generate, write, describe."""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import melody as melody_module
from . import presets as presets_module
from .audio.export import export_stems, export_track, metadata_for
from .audio.loudness import apply_gain_db, normalise_loudness, stems_gain_db
from .audio.pictures import stems_picture, track_picture
from .audio.stems import StemSeparator
from .audio.uploads import LoadedAudio, load_audio
from .config import ServerConfig
from .errors import InvalidInputError, ModelLoadError
from .melody_stems import MelodyProgress, MelodySeparator, PreparedMelody
from .model.chroma import SAMPLING_RATE as MELODY_SAMPLING_RATE
from .model.engine import MusicGenEngine
from .model.types import MELODY, AudioCallback, GeneratedAudio, Melody, ProgressCallback
from .recipe import Recipe
from .settings import ExportSettings, GenerationSettings, normalise_seed
from .storage import OutputStore

MELODY_MAX_SECONDS = 30.0  # MusicGen-Melody reads the first 30 s of chroma; longer input is cut
MELODY_MIN_SECONDS = 1.0  # shorter hums carry too few notes to follow


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
    formats: str | list[str] | tuple[str, ...] | None = None  # "wav,flac,mp3"; WAV is always written
    sample_rate: int | float | str | None = None  # None keeps 32 kHz; 44100 or 48000 resample
    loudness: float | str | None = None  # target LUFS (default -14); 0 or "off" leaves the level alone
    stems: bool | None = None  # split into drums, bass, other and vocals
    melody_separation: bool | None = None  # None decides (setting, then the hum rule); a replay says what it did
    melody_stems_model: str | None = None  # the Demucs model a replayed recipe separated its melody with

    @classmethod
    def from_recipe(cls, recipe: Recipe, melody: str | None = None) -> TrackRequest:
        """The request that makes a recipe's track again: its resolved prompt and settings (seed included).

        A melody is separated (or not) as it was: recipes from before separation existed used the whole mix.
        """
        s = recipe.settings
        heard = recipe.melody or {}
        return cls(
            prompt=s.prompt,
            melody=melody,
            duration=s.duration,
            seed=s.seed,
            temperature=s.temperature,
            top_k=s.top_k,
            top_p=s.top_p,
            guidance_scale=s.guidance_scale,
            melody_separation=bool(heard.get("separated", False)) if recipe.melody else None,
            melody_stems_model=heard.get("stems_model"),
        )


@dataclass(frozen=True)
class Track:
    """A finished result: the files written and the recipe that made them."""

    paths: dict[str, Path]  # "wav", "flac", "mp3", "recipe", then each stem and "zip"
    recipe: Recipe
    generated: GeneratedAudio = field(repr=False)
    picture: np.ndarray | None = field(default=None, repr=False)  # waveform and spectrogram, RGB
    stems_picture: np.ndarray | None = field(default=None, repr=False)
    melody_picture: np.ndarray | None = field(default=None, repr=False)  # RGB chroma of the melody followed
    melody_description: str | None = None  # its main notes and likely key, in words

    @property
    def wav_path(self) -> Path:
        return self.paths["wav"]

    @property
    def recipe_path(self) -> Path:
        return self.paths["recipe"]

    @property
    def files(self) -> list[Path]:
        """Every download: the mix in each format, the recipe, the stems and their ZIP."""
        return list(self.paths.values())

    def summary(self) -> str:
        """A few lines for a person: seed, length, time taken, melody heard, notes."""
        r = self.recipe
        lines = [
            f"Seed {r.settings.seed} · {r.audio_seconds:.1f} s of audio at {r.sample_rate} Hz · "
            f"made in {r.seconds_taken:.1f} s on {r.device}"
        ]
        if self.melody_description:
            without = " (drums and bass taken out)" if r.melody.get("separated") else ""
            lines.append(f"Melody heard in {r.melody['file']}{without}: {self.melody_description}")
        loudness = (r.export or {}).get("loudness")
        if loudness and loudness.get("output_lufs") is not None:
            lines.append(
                f"Loudness {loudness['output_lufs']:.1f} LUFS, true peak {loudness['true_peak_dbtp']:.1f} dBTP"
            )
        lines.extend(r.notes)
        return "\n\n".join(lines)


class Studio:
    """Turns track requests into WAV files and recipes, with one engine shared by all requests."""

    def __init__(
        self,
        engine: MusicGenEngine | None = None,
        library: presets_module.PresetLibrary | None = None,
        output_dir: str | Path | None = None,
        melody_engine: MusicGenEngine | None = None,
        max_loaded_models: int | None = None,
        max_duration: float | None = None,
        separator: StemSeparator | None = None,
        config: ServerConfig | None = None,
        melody_separator: MelodySeparator | None = None,
    ):
        config = config or ServerConfig.from_env()
        self.config = config
        self.engine = engine or MusicGenEngine(config=config)
        self.separator = separator or StemSeparator(config=config)
        self.melody_separator = melody_separator or MelodySeparator(self.separator, config=config)
        self.melody_engine = melody_engine or MusicGenEngine(family=MELODY, config=config)
        self.presets = library if library is not None else presets_module.load_presets(config=config)
        self.output_dir = Path(output_dir) if output_dir is not None else config.output_dir
        self.store = OutputStore.from_config(self.output_dir, config)
        self.max_loaded_models = max_loaded_models or config.max_loaded_models
        self.max_duration = max_duration or config.max_duration

    def warm_up(self) -> None:
        """Pay the finishing steps' one-time costs now, not in the first track; writes nothing.

        Loudness and pictures import their libraries and set up filters and fonts on first use:
        about 1.1 s of the first track's time on 2 CPU cores, against 0.3 s for every later one.
        The app calls this at start-up, while the model loads.
        """
        rate = MELODY_SAMPLING_RATE  # MusicGen's own rate, for every model
        noise = np.random.default_rng(0).normal(0.0, 0.05, (1, rate)).astype(np.float32)
        audio, _ = normalise_loudness(noise, rate)
        track_picture(audio, rate)

    def sample_rate_for(self, with_melody: bool) -> int:
        """The audio rate of the model that serves a request with (or without) a melody."""
        return (self.melody_engine if with_melody else self.engine).sample_rate

    def write_stream_piece(self, wav_bytes: bytes) -> str:
        """Save one streamed piece as a small WAV file for API clients; returns its path."""
        path = self.store.new_job_folder() / "piece.wav"
        path.write_bytes(wav_bytes)
        return str(path)

    def engine_for(self, with_melody: bool) -> MusicGenEngine:
        """The engine a request needs; with a one-model limit, the other one is unloaded first."""
        wanted, other = (self.melody_engine, self.engine) if with_melody else (self.engine, self.melody_engine)
        if self.max_loaded_models < 2 and other.loaded and other is not wanted:
            other.unload()
        return wanted

    def settings_for(self, request: TrackRequest, preset: presets_module.Preset | None = None) -> GenerationSettings:
        """Validate a request and merge it with its preset (``preset``, or looked up) into concrete settings."""
        return presets_module.resolve(
            preset or self.presets.find(request.preset),
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
        on_audio: AudioCallback | None = None,
        on_status: MelodyProgress | None = None,
    ) -> Track:
        """Generate one track and write it; raises ``MoodtapeError`` subclasses for bad input.

        Files go to a fresh folder under ``output_dir`` with descriptive names, or to
        ``destination`` (a .wav path) with the recipe beside it as ``<name>.recipe.json``.
        ``on_audio`` receives pieces of audio while the track is made (streaming); ``on_status``
        hears of the steps before decoding starts ("Separating the melody", fraction done).
        """
        # 1. Validate and resolve the preset
        preset = self.presets.find(request.preset)
        settings = self.settings_for(request, preset).with_seed()
        export = ExportSettings.from_request(request.formats, request.sample_rate, request.loudness, request.stems)
        if settings.duration > self.max_duration:
            raise InvalidInputError(
                f"duration must be at most {self.max_duration:g} seconds on this server, got {settings.duration:g}."
            )
        if not settings.prompt and not request.melody:
            raise InvalidInputError(
                "The prompt is empty: describe the music (e.g. 'rainy night, mellow piano, slow'), "
                "pick a preset, or give a melody to follow."
            )

        # 2. Prepare the melody: decode it, then take out a song's drums and bass (once per file)
        hum = self.prepare_melody(request.melody) if request.melody else None
        heard = self.hear_melody(hum, request, on_status, cancel) if hum else None
        notes = [*hum.notes, *heard.notes] if hum and heard else []
        if hum and preset is not None and preset.family == "text":
            notes.append(
                f"The preset '{preset.name}' was written for text-only generation; it may follow a hum loosely."
            )

        # 3. Generate
        engine = self.engine_for(with_melody=hum is not None)
        melody = Melody(np.asarray(heard.samples), heard.sample_rate) if heard else None
        generated = engine.generate(settings, melody=melody, on_progress=on_progress, cancel=cancel, on_audio=on_audio)
        rate = generated.sample_rate
        notes.extend(generated.notes)

        # 4. Post-process: loudness (true peak kept under -1 dBTP), then stems at the mix's gain
        audio, loudness = normalise_loudness(generated.audio, rate, export.loudness_lufs)
        if loudness.note:
            notes.append(loudness.note)
        stems: dict[str, np.ndarray] = {}
        if export.stems:
            stems, stems_note = self.split_stems(generated.audio, rate, loudness.gain_db, cancel)
            if stems_note:
                notes.append(stems_note)

        # 5. Describe it
        recipe = Recipe(
            settings=generated.settings,
            model_id=generated.model_id,
            model_revision=generated.model_revision,
            preset=preset.id if preset is not None else None,
            mood=" ".join((request.prompt or "").split()) or None,
            audio_seconds=round(audio.shape[-1] / rate, 3),
            sample_rate=rate,
            channels=audio.shape[0],
            gain_db=round(loudness.gain_db, 2),
            seconds_taken=round(generated.seconds_taken, 2),
            device=generated.device,
            dtype=generated.dtype,
            mode=generated.mode,
            batch_size=generated.batch_size,
            windows=generated.windows,
            melody=_melody_record(hum, heard),
            export={**export.to_dict(), "loudness": loudness.to_dict(), "stems_written": sorted(stems)},
            notes=tuple(notes),
        )

        # 6. Write files: the mix in each format, the recipe beside it, the stems and their ZIP
        if destination is None:
            folder, file_name = self.store.new_job_folder(), track_file_name(recipe)
        else:
            folder, file_name = Path(destination).parent, Path(destination).with_suffix("").name
        title = track_title(recipe)
        metadata, recipe_json = metadata_for(recipe, title), recipe.to_json()
        paths = export_track(
            audio,
            rate,
            folder=folder,
            file_name=file_name,
            formats=export.formats,
            target_rate=export.sample_rate,
            metadata=metadata,
            recipe_json=recipe_json,
        )
        if stems:
            paths |= export_stems(
                stems,
                rate,
                folder=folder,
                file_name=file_name,
                target_rate=export.sample_rate,
                metadata=metadata,
                recipe_json=recipe_json,
            )

        # 7. Pictures: the track, its stems, the melody it followed (with its notes in words)
        melody_picture, melody_description = (
            melody_module.picture_and_description(np.asarray(heard.samples), heard.sample_rate)
            if heard
            else (None, None)
        )
        return Track(
            paths=paths,
            recipe=recipe,
            generated=replace(generated, audio=audio),
            picture=track_picture(audio, rate),
            stems_picture=stems_picture(stems, rate, title=f"Stems of {title}") if stems else None,
            melody_picture=melody_picture,
            melody_description=melody_description,
        )

    def split_stems(
        self, audio: np.ndarray, sample_rate: int, gain_db: float, cancel: threading.Event | None = None
    ) -> tuple[dict[str, np.ndarray], str | None]:
        """Stems of the mix at the mix's loudness gain; when Demucs is unavailable, none and the reason why."""
        try:
            stems = self.separator.separate(audio, sample_rate, cancel=cancel)
        except ModelLoadError as e:
            return {}, f"Stems are missing: {e}"
        shared = stems_gain_db(stems, gain_db)  # one gain for all: stems keep their relative levels
        return {name: apply_gain_db(stem, shared) for name, stem in stems.items()}, None

    def hear_melody(
        self,
        hum: LoadedAudio,
        request: TrackRequest,
        on_status: MelodyProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> PreparedMelody:
        """What the melody model is given: a song without its drums and bass, or a clean hum as recorded."""
        return self.melody_separator.prepare(
            hum,
            separate=request.melody_separation,
            stems_model=request.melody_stems_model,
            on_progress=on_status,
            cancel=cancel,
        )

    def prepare_melody(self, path: str | Path) -> LoadedAudio:
        """Decode, clean and check a hum or song file (any common format) for MusicGen-Melody."""
        return load_audio(path, MELODY_SAMPLING_RATE, max_seconds=MELODY_MAX_SECONDS, min_seconds=MELODY_MIN_SECONDS)


def track_file_name(recipe: Recipe) -> str:
    """A descriptive file name without extension: moodtape_<preset>_<prompt slug>_seed<seed>."""
    parts = ["moodtape"]
    if recipe.preset:
        parts.append(recipe.preset)
    parts.append(slugify(track_title(recipe), max_chars=32))
    parts.append(f"seed{recipe.settings.seed}")
    return "_".join(parts)


def track_title(recipe: Recipe) -> str:
    """The words that name a track: the mood typed, else the prompt, else the melody's file name."""
    if recipe.mood or recipe.settings.prompt:
        return recipe.mood or recipe.settings.prompt
    return f"hum {Path(recipe.melody['file']).stem}" if recipe.melody else "untitled"


def _melody_record(hum: LoadedAudio | None, heard: PreparedMelody | None) -> dict | None:
    if hum is None or heard is None:
        return None
    return {
        "file": hum.source_name,
        "source_seconds": round(hum.source_seconds, 3),
        "seconds_used": round(hum.used_seconds, 3),
        "truncated": hum.truncated,
        "sha256": hum.digest,
        **heard.record(),
    }


def slugify(text: str, max_chars: int = 40) -> str:
    """A short, safe file-name fragment from free text ("Rainy night, piano!" -> "rainy-night-piano")."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_chars].rstrip("-") or "untitled"


def _whole(value: int | float | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidInputError(f"{name} must be a whole number, got {value!r}.")
