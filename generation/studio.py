"""One request's path from raw values to files on disk: validate, resolve, generate, write, describe."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import melody as melody_module
from . import presets as presets_module
from .audio import tempo as tempo_module
from .audio.arrays import resample
from .audio.cues import mark_cues
from .audio.export import export_stems, export_track, metadata_for
from .audio.loop_marker import mark_loop
from .audio.loudness import apply_gain_db, normalise_loudness, stems_gain_db
from .audio.pictures import stems_picture, track_picture
from .audio.stems import StemSeparator
from .audio.uploads import DecodedTrack, LoadedAudio, load_audio, read_track
from .config import AUTO_MODEL, ServerConfig
from .editing import compose as compose_module
from .editing import replace as replacing
from .editing.compose import ComposePlan, ComposeRequest, PlannedSection
from .editing.keys import Key, parse_key
from .editing.replace import Candidate, ReplacePlan, ReplaceRequest
from .editing.sections import parse_sections, section_seed, total_seconds
from .errors import InvalidInputError, ModelLoadError, quoted
from .finishing import JOIN_FADE_SECONDS, FinishedTake, TempoRequest, finish_take, join_extend
from .formats import MIDI
from .library import Library, NewEntry
from .library import embedded_recipe as _embedded_recipe
from .melody_stems import MelodyProgress, MelodySeparator, PreparedMelody
from .midi.as_melody import NotesMelody, is_midi, melody_from_midi, tidied_hum
from .midi.files import MIDI_FROM_BANDS, followed_notes, notes_on_take, track_midi, write_midi
from .midi.notes import Note
from .model.chroma import SAMPLING_RATE as MELODY_SAMPLING_RATE
from .model.engine import MusicGenEngine
from .model.spec import MAX_TAKES, EngineSpec
from .model.types import MELODY, AudioCallback, AudioPrompt, GeneratedAudio, Melody, ProgressCallback
from .models import ModelCatalog
from .naming import track_file_name, track_title
from .recipe import Recipe
from .settings import ExportSettings, GenerationSettings, normalise_seed
from .storage import OutputStore
from .timing import Stopwatch

MELODY_MAX_SECONDS = 30.0  # MusicGen-Melody reads the first 30 s of chroma; longer input is cut
MELODY_MIN_SECONDS = 1.0  # shorter hums carry too few notes to follow
MIN_EXTEND_SECONDS, MAX_EXTEND_SECONDS = 1.0, 120.0  # how much an extend may add; longer runs window by window
DEFAULT_EXTEND_SECONDS = 10.0  # an extend with no seconds given adds this much


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
    melody_cleanup: bool | None = None  # transcribe the hum, tidy it onto its key and a 1/8 grid, follow those notes
    negative_prompt: str | None = None  # what to steer away from ("vocals, distortion"); needs guidance above 1
    variations: int | float | None = None  # takes of one idea, 1 to 4, seeds seed, seed+1, ...; made as one batch
    bpm: float | str | None = None  # 40..240: the track is stretched to exactly this tempo
    loop: bool | None = None  # cut into whole bars that repeat without a click (needs a bpm or a preset's)
    bars: int | float | None = None  # the loop's length: 1, 2, 4, 8 or 16 bars; default the most that fit
    extend: str | None = None  # path of a track to continue; ``duration`` is then the seconds to add
    model: str | None = None  # a model's name from the server's list; None, "" or "auto" for the server's choice
    mode: str | None = None  # a replay: the mode its recipe was made in ("exact" or "fast"), to say if this one differs
    key: str | None = None  # "A minor", "F# major": said in the prompt, and the track moved into it if need be

    @classmethod
    def from_recipe(cls, recipe: Recipe, melody: str | None = None, extend: str | None = None) -> TrackRequest:
        """The request that makes a recipe's track again: its resolved prompt and settings (seed included).

        A melody is separated (or not) as it was: recipes from before separation existed used the whole mix.
        An extend needs the track it continued (``extend``); a loop is cut again at the same tempo and bars.
        """
        heard = recipe.melody or {}
        tempo = recipe.tempo or {}
        return cls(
            prompt=recipe.settings.prompt,
            melody=melody,
            duration=recipe.settings.duration,
            melody_separation=bool(heard.get("separated", False)) if recipe.melody else None,
            melody_stems_model=heard.get("stems_model"),
            melody_cleanup=bool(heard.get("cleanup")) if recipe.melody else None,
            bpm=tempo.get("bpm"),
            loop=bool(tempo.get("loop")),
            bars=(tempo.get("loop") or {}).get("bars"),
            extend=extend,
            mode=recipe.mode,
            **recipe.request_values(),  # the seed, sampling, model, key and export
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
    takes: tuple[Track, ...] = ()  # the request's other takes, when it asked for several
    library_id: str | None = None  # its entry in the owner's library, once kept there

    @property
    def wav_path(self) -> Path:
        return self.paths["wav"]

    @property
    def recipe_path(self) -> Path:
        return self.paths["recipe"]

    @property
    def files(self) -> list[Path]:
        """This take's downloads: the mix in each format, the recipe, the stems and their ZIP."""
        return list(self.paths.values())

    @property
    def downloads(self) -> list[Path]:
        """Every take's files, this one's first."""
        return [path for take in (self, *self.takes) for path in take.files]

    def summary(self) -> str:
        """A few lines for a person: seed, length, time taken, tempo and key, takes, extend, melody, notes."""
        r = self.recipe
        lines = [
            f"Seed {r.settings.seed} · {r.audio_seconds:.1f} s of audio at {r.sample_rate} Hz · "
            f"made in {r.seconds_taken:.1f} s on {r.device}"
        ]
        tempo = r.tempo or {}
        if tempo:
            loop = tempo.get("loop")
            at = f" · a {loop['bars']}-bar loop at exactly {tempo['bpm']:g} BPM" if loop else ""
            stretched = f" · stretched to exactly {tempo['bpm']:g} BPM" if tempo.get("stretched") and not loop else ""
            lines.append(f"Measured: {tempo['described']}{at}{stretched}")
        if r.takes:
            seeds = ", ".join(str(take["seed"]) for take in r.takes)
            lines.append(f"{len(r.takes)} takes, seeds {seeds}: each is what its seed alone gives")
        if r.extend:
            e = r.extend
            lines.append(
                f"Extended {e['file']} ({e['seconds']:.1f} s) by {e['seconds_added']:g} s, "
                f"continuing its last {e['prompt_seconds']:.1f} s"
            )
        if self.melody_description:
            without = " (drums and bass taken out)" if r.melody.get("separated") else ""
            lines.append(f"Melody heard in {r.melody['file']}{without}: {self.melody_description}")
        loudness = (r.export or {}).get("loudness")
        if loudness and loudness.get("output_lufs") is not None:
            lines.append(
                f"Loudness {loudness['output_lufs']:.1f} LUFS, true peak {loudness['true_peak_dbtp']:.1f} dBTP"
            )
        if r.replace:
            lines.append(replacing.describe(r.replace))
        if r.sections:
            lines.append(compose_module.describe_sections(r.sections))
        if r.key:
            lines.append(r.key["described"])
        lines.extend(r.notes)
        return "\n\n".join(lines)


@dataclass(frozen=True)
class _Plan:
    """A request checked and resolved: what to generate, how many takes, and what to do with them."""

    settings: GenerationSettings  # with a seed; duration is what to generate (a loop's material, an extend's new part)
    export: ExportSettings
    tempo: TempoRequest
    takes: int
    duration: float  # the seconds asked for: the track's, or the seconds an extend adds
    preset_id: str | None
    preset_family: str | None
    mood: str | None
    source: DecodedTrack | None = None  # the track an extend continues
    source_model: str | None = None  # the model that made it, from its embedded recipe
    model: str = ""  # the name of the model that makes it, from the server's list
    key: Key | None = None  # the key to land in; None for none
    length: float | None = None  # a composed song: cut to exactly this many seconds at the output rate


class Studio:
    """Turns track requests into WAV files and recipes, with an engine per model shared by all requests.

    The models are ``models`` (default: the operator's list, ``ServerConfig.model_entries``); an ``engine``
    and a ``melody_engine`` given instead are offered as ``text`` and ``melody``.
    """

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
        models: ModelCatalog | None = None,
        track_library: Library | None = None,
    ):
        config = config or ServerConfig.from_env()
        self.config = config
        if models is None and (engine is not None or melody_engine is not None):
            engines = {"text": engine or MusicGenEngine(config=config)}
            engines["melody"] = melody_engine or MusicGenEngine(EngineSpec(family=MELODY), config=config)
            entries = [(name, e.model_id) for name, e in engines.items()]
            models = ModelCatalog(entries, config, engines=engines, max_loaded=max_loaded_models)
        self.models = models or ModelCatalog.from_config(config, max_loaded=max_loaded_models)
        self.separator = separator or StemSeparator(config=config)
        self.melody_separator = melody_separator or MelodySeparator(self.separator, config=config)
        self.presets = library if library is not None else presets_module.load_presets(config=config)
        self.output_dir = Path(output_dir) if output_dir is not None else config.output_dir
        self.store = OutputStore.from_config(self.output_dir, config)
        self.track_library = track_library  # where ``keep`` puts finished tracks; None: the library is off
        if track_library is not None:
            self.store.protect(track_library.root)  # even when set inside the output folder
        self.max_duration = max_duration or config.max_duration

    def warm_up(self) -> None:
        """Pay the finishing steps' one-time costs now, not in the first track; writes nothing.

        Loudness and pictures import their libraries and set up filters and fonts on first use:
        about 1.1 s of the first track's time on 2 CPU cores, against 0.3 s for every later one. The
        beat tracker is compiled by numba on first use: about 3 s, or 20 to 55 s the very first time
        on a machine. The app calls this at start-up, once the model has loaded (run at the same time, its
        import of transformers' audio utilities could collide with the model thread's import of transformers).
        """
        rate = MELODY_SAMPLING_RATE  # MusicGen's own rate, for every model
        noise = np.random.default_rng(0).normal(0.0, 0.05, (1, rate)).astype(np.float32)
        audio, _ = normalise_loudness(noise, rate)
        track_picture(audio, rate)
        tempo_module.warm_up()

    @property
    def default_model(self) -> str:
        """The name of the model a text-only request gets when it names none."""
        return self.models.pick(None, melody=False)

    @property
    def engine(self) -> MusicGenEngine:
        """The engine of the model a text-only request gets when it names none."""
        return self.models.engine(self.default_model)

    @property
    def melody_engine(self) -> MusicGenEngine:
        """The engine of the model a request with a melody gets when it names none."""
        return self.models.engine(self.models.pick(None, melody=True))

    def sample_rate_for(self, request: TrackRequest) -> int:
        """The audio rate of the model that serves ``request``."""
        return self.models.engine(self.model_for(request)).sample_rate

    def model_for(self, request: TrackRequest) -> str:
        """The name of the model ``request`` gets: the one it names, or the server's choice for it."""
        return self.models.pick(request.model, melody=bool(request.melody))

    def write_stream_piece(self, wav_bytes: bytes) -> str:
        """Save one streamed piece as a small WAV file for API clients; returns its path."""
        path = self.store.new_job_folder() / "piece.wav"
        path.write_bytes(wav_bytes)
        return str(path)

    def keep(self, track: Track, owner: str | None, parent: str | None = None) -> Track:
        """Move a finished track and its takes into ``owner``'s library; the track as it is now lives there.

        Returns it unchanged when the library is off or there is no owner (an anonymous visitor). ``parent`` is
        the entry it edits (by default the one it extended, found from its recipe). Raises ``LibraryFullError``,
        moving nothing, when the owner's library has no room for every take.
        """
        if self.track_library is None or owner is None:
            return track
        takes = (track, *track.takes)
        entries = self.track_library.add_many(owner, [NewEntry(take.paths, take.recipe, parent) for take in takes])
        kept = []
        for take, entry in zip(takes, entries, strict=True):
            paths = {kind: entry.wav.parent / path.name for kind, path in take.paths.items()}
            kept.append(replace(take, paths=paths, library_id=entry.id))
        return replace(kept[0], takes=tuple(kept[1:]))

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
            negative_prompt=request.negative_prompt,
        )

    def plan(self, request: TrackRequest) -> _Plan:
        """Check a request and resolve it: preset, settings, export, takes, tempo, and the track to extend."""
        if request.extend:
            return self._plan_extend(request)
        preset = self.presets.find(request.preset)
        settings = self.settings_for(request, preset)
        tempo = TempoRequest.from_request(request.bpm, request.loop, request.bars, _preset_bpm(preset))
        if settings.duration > self.max_duration:
            raise InvalidInputError(
                f"duration must be at most {self.max_duration:g} seconds on this server, got {settings.duration:g}."
            )
        if not settings.prompt and not request.melody:
            raise InvalidInputError(
                "The prompt is empty: describe the music (e.g. 'rainy night, mellow piano, slow'), "
                "pick a preset, or give a melody to follow."
            )
        model = self.model_for(request)
        return self._planned(request, settings, tempo, preset.id if preset else None, preset, model)

    def _plan_extend(self, request: TrackRequest) -> _Plan:
        """An extend: the track to continue, and the prompt, preset and model of its recipe when none is given."""
        seconds = request.duration if request.duration is not None else DEFAULT_EXTEND_SECONDS
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
            raise InvalidInputError(f"seconds must be a number of seconds to add, got {quoted(seconds)}.")
        if not MIN_EXTEND_SECONDS <= seconds <= MAX_EXTEND_SECONDS:
            raise InvalidInputError(
                f"seconds must be from {MIN_EXTEND_SECONDS:g} to {MAX_EXTEND_SECONDS:g} (how much to add), "
                f"got {seconds:g}."
            )
        if request.loop:
            raise InvalidInputError(
                "loop cannot be combined with an extend: a loop is cut from one new take. Extend without loop "
                "(bpm still sets the tempo), or make the loop as a new track."
            )
        source = read_track(request.extend, max_seconds=self.max_duration)
        if source.seconds + seconds > self.max_duration:
            raise InvalidInputError(
                f"{source.source_name!r} is {source.seconds:.1f} s long; adding {seconds:g} s would make "
                f"{source.seconds + seconds:.1f} s, over this server's {self.max_duration:g} s. Add at most "
                f"{max(0.0, self.max_duration - source.seconds):.1f} s."
            )
        parent = _embedded_recipe(request.extend)
        hint = "describe how the music should go on (e.g. 'the same groove, building up')"
        settings, preset_id, mood, preset = self._continuing(replace(request, duration=seconds), parent, source, hint)
        tempo = TempoRequest.from_request(request.bpm, request.loop, request.bars, _preset_bpm(preset))
        named = request.model if (request.model or "").strip() not in ("", AUTO_MODEL) else self._parent_model(parent)
        model = self.model_for(replace(request, model=named))
        plan = self._planned(request, settings, tempo, preset_id, preset, model)
        source_model = parent.model_id if parent is not None else None
        return replace(plan, source=source, source_model=source_model, mood=mood or plan.mood)

    def _continuing(
        self, request: TrackRequest, parent: Recipe | None, source: DecodedTrack, hint: str
    ) -> tuple[GenerationSettings, str | None, str | None, presets_module.Preset | None]:
        """Settings for music that goes on from a file: the request's prompt or preset, else the file's recipe's.

        Returns the settings, the preset id and mood to record, and the preset found (None when reused).
        """
        preset = self.presets.find(request.preset)
        if (request.prompt and request.prompt.strip()) or preset is not None:
            return self.settings_for(request, preset), (preset.id if preset else None), None, preset
        if parent is None:
            raise InvalidInputError(
                f"{source.source_name!r} carries no Moodtape recipe, so there is no prompt to reuse: {hint}."
            )
        reused = replace(  # the recipe's prompt as it was resolved, its preset and sampling reused
            request,
            prompt=parent.settings.prompt,
            preset=None,
            temperature=_given(request.temperature, parent.settings.temperature),
            top_k=_given(request.top_k, parent.settings.top_k),
            top_p=_given(request.top_p, parent.settings.top_p),
            guidance_scale=_given(request.guidance_scale, parent.settings.guidance_scale),
            negative_prompt=_given(request.negative_prompt, parent.settings.negative_prompt),
        )
        return self.settings_for(reused), parent.preset, parent.mood, None

    def _parent_model(self, parent: Recipe | None) -> str | None:
        """The model that made an extended track, when this server offers it: the same sound goes on."""
        if parent is None:
            return None
        if parent.model_name in self.models.entries and self.models.entries[parent.model_name] == parent.model_id:
            return parent.model_name
        return self.models.name_for_source(parent.model_id)

    def _planned(
        self,
        request: TrackRequest,
        settings: GenerationSettings,
        tempo: TempoRequest,
        preset_id: str | None,
        preset: presets_module.Preset | None,
        model: str,
    ) -> _Plan:
        export = ExportSettings.from_request(request.formats, request.sample_rate, request.loudness, request.stems)
        takes = _variations(request.variations)
        duration = settings.duration
        generate = tempo.seconds_to_generate(duration)
        if generate > self.max_duration:
            raise InvalidInputError(
                f"A {tempo.bars_for(duration)}-bar loop at {tempo.bpm:g} BPM needs {generate:g} s of music to cut "
                f"from, over this server's {self.max_duration:g} s; ask for fewer bars."
            )
        key = parse_key(request.key)
        settings = replace(settings, prompt=_saying(settings.prompt, tempo, key), duration=generate).with_seed()
        mood = " ".join((request.prompt or "").split()) or None
        family = preset.family if preset is not None else None
        return _Plan(settings, export, tempo, takes, duration, preset_id, family, mood, model=model, key=key)

    def make_track(
        self,
        request: TrackRequest | ReplaceRequest | ComposeRequest,
        *,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        destination: str | Path | None = None,
        on_audio: AudioCallback | None = None,
        on_status: MelodyProgress | None = None,
    ) -> Track:
        """Generate a track (or several takes, or an extend) and write it; raises ``MoodtapeError`` for bad input.

        Files go to a fresh folder under ``output_dir`` with descriptive names, or to
        ``destination`` (a .wav path) with the recipe beside it as ``<name>.recipe.json``.
        ``on_audio`` receives pieces of audio while the track is made (streaming, one take only);
        ``on_status`` hears of the steps before decoding starts ("Separating the melody", fraction done).
        The first take is returned; the others are in its ``takes``. A ``ReplaceRequest`` is a replace's own plan
        over the same stages (``replace_section``), a ``ComposeRequest`` a compose's (``compose``), so every caller
        of this one serves them too.
        """
        if isinstance(request, ReplaceRequest):
            return self.replace_section(request, on_progress=on_progress, cancel=cancel, destination=destination)
        if isinstance(request, ComposeRequest):
            return self.compose(request, on_progress=on_progress, cancel=cancel, destination=destination)
        clock = Stopwatch()  # where the request's time goes, logged as one line at the end
        # 1. Validate and resolve: preset, settings, export, takes, tempo, key, the track to extend
        with clock.stage("plan"):
            plan = self.plan(request)

        # 2. Prepare the melody: a MIDI file's notes; or decode a recording, take out a song's drums and bass (once
        # per file) and, to tidy a hum, follow its transcribed and tidied notes instead
        with clock.stage("melody"):
            written = melody_from_midi(request.melody) if is_midi(request.melody) else None
            hum = self.prepare_melody(request.melody) if request.melody and written is None else None
            heard = self.hear_melody(hum, request, on_status, cancel) if hum else None
            if heard and request.melody_cleanup:
                written = tidied_hum(heard.samples, heard.sample_rate, _melody_record(hum, heard), plan.tempo.bpm)
        notes = [*hum.notes, *heard.notes] if hum and heard else []
        notes += written.messages if written else ()
        if hum and plan.preset_family == "text":
            notes.append(
                f"The preset '{plan.preset_id}' was written for text-only generation; it may follow a hum loosely."
            )
        if plan.takes > 1 and on_audio is not None:
            notes.append("Several takes are made together, so none of them plays while it is made.")

        # 3. Generate: one take, or every take in one batch; an extend continues the end of its track
        with clock.stage("load"):
            engine = self.models.acquire(plan.model)
        if request.mode is not None and request.mode != engine.mode:
            notes.append(replay_mode_note(request.mode, engine.mode))
        melody = Melody(np.asarray(heard.samples), heard.sample_rate) if heard else None
        melody = written.melody() if written else melody  # notes are given as their chroma
        prompt = AudioPrompt(np.asarray(plan.source.samples), plan.source.sample_rate) if plan.source else None
        with clock.stage("generate"):
            if plan.takes == 1:
                one = engine.generate(
                    plan.settings,
                    melody=melody,
                    audio_prompt=prompt,
                    on_progress=on_progress,
                    cancel=cancel,
                    on_audio=on_audio,
                )
                made = [one]
            else:
                made = engine.generate_takes(
                    plan.settings,
                    plan.takes,
                    melody=melody,
                    audio_prompt=prompt,
                    on_progress=on_progress,
                    cancel=cancel,
                )

        # 4. Finish each take (join, tempo, loop, loudness, stems), then describe and write them all
        with clock.stage("finish"):
            finished = [self._finish(plan, generated, cancel) for generated in made]
        if on_audio is not None and (finished[0].key_record or {}).get("semitones"):
            notes.append("The stream played the take as made; the files are moved into the key asked for.")
        if MIDI in plan.export.formats and not any(f.stems for f in finished):
            notes.append(MIDI_FROM_BANDS)
        with clock.stage("describe"):
            recipes = [
                self._recipe(plan, g, f, hum, heard, notes, written) for g, f in zip(made, finished, strict=True)
            ]
        names = _file_names(recipes, destination)
        takes = tuple({"seed": r.settings.seed, "file": f"{n}.wav"} for r, n in zip(recipes, names, strict=True))
        recipes = [replace(r, takes=takes if len(takes) > 1 else ()) for r in recipes]
        folder = Path(destination).parent if destination is not None else self.store.new_job_folder()
        with clock.stage("pictures"):
            melody_picture, melody_description = (
                (written.picture(), written.description)
                if written
                else melody_module.picture_and_description(np.asarray(heard.samples), heard.sample_rate)
                if heard
                else (None, None)
            )
        followed = followed_notes(written, heard) if MIDI in plan.export.formats else ()
        tracks = [
            self._write(plan, g, f, r, folder, name, melody_picture, melody_description, followed, clock=clock)
            for g, f, r, name in zip(made, finished, recipes, names, strict=True)
        ]
        clock.log(f"track {folder.name}")
        return replace(tracks[0], takes=tuple(tracks[1:]))

    def plan_replace(self, request: ReplaceRequest) -> ReplacePlan:
        """Check a replace request and resolve it: the file, the section (moved to downbeats), the candidates,
        the prompt, preset and model (the file's recipe's when no prompt is given), and the export."""
        if not request.audio:
            raise InvalidInputError("audio is missing: give the track to replace a section of (a WAV, FLAC or MP3).")
        candidates = replacing.check_candidates(request.candidates)
        source = read_track(request.audio, max_seconds=self.max_duration)
        tempo = replacing.measured_tempo(source)
        section = replacing.resolve_section(request.start, request.end, source.seconds, tempo)
        parent = _embedded_recipe(request.audio)
        asked = TrackRequest(
            prompt=request.prompt,
            preset=request.preset,
            duration=replacing.seconds_to_make(section),
            seed=request.seed,
            temperature=request.temperature,
            top_k=request.top_k,
            top_p=request.top_p,
            guidance_scale=request.guidance_scale,
            negative_prompt=request.negative_prompt,
        )
        hint = "describe the new section (e.g. 'a drum break, then the groove again')"
        settings, preset_id, mood, _ = self._continuing(asked, parent, source, hint)
        named = request.model if (request.model or "").strip() not in ("", AUTO_MODEL) else self._parent_model(parent)
        model = self.models.pick(named, melody=False)
        export = ExportSettings.from_request(request.formats, request.sample_rate, request.loudness, request.stems)
        return ReplacePlan(
            source=source,
            section=section,
            candidates=candidates,
            settings=settings.with_seed(),
            export=export,
            model=model,
            preset_id=preset_id,
            mood=mood or " ".join((request.prompt or "").split()) or None,
            source_model=parent.model_id if parent is not None else None,
        )

    def replace_section(
        self,
        request: ReplaceRequest,
        *,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        destination: str | Path | None = None,
    ) -> Track:
        """Replace a section of a track; the best-scored candidate is returned, the others are its ``takes``."""
        clock = Stopwatch()  # where the request's time goes, logged as one line at the end
        # 1. Validate and resolve: the file, the section, candidates, prompt, preset, model, export
        with clock.stage("plan"):
            plan = self.plan_replace(request)

        # 2. Generate: every candidate in one batch, each continuing the audio before the section past its end
        with clock.stage("load"):
            engine = self.models.acquire(plan.model)
        with clock.stage("generate"):
            made = engine.generate_takes(
                plan.settings,
                plan.candidates,
                audio_prompt=plan.audio_prompt,
                on_progress=on_progress,
                cancel=cancel,
                share_prompt=True,  # the candidates read the audio before the section once a step
            )

        # 3. Score each candidate's overlap with what follows, splice each in (best first), level and split
        rate = plan.source.sample_rate
        candidates = [Candidate(g.audio, g.sample_rate, g.settings.seed, g.lead_in) for g in made]
        with clock.stage("splice"):
            replaced = replacing.splice_candidates(np.asarray(plan.source.samples), rate, plan.section, candidates)
        by_seed = {g.settings.seed: g for g in made}
        seconds = plan.section.seconds
        steps = _Plan(plan.settings, plan.export, TempoRequest(), plan.candidates, seconds, plan.preset_id, None, None)
        steps = replace(steps, mood=plan.mood, model=plan.model)

        def split(mix: np.ndarray, mix_rate: int, gain_db: float) -> tuple[dict[str, np.ndarray], str | None]:
            return self.split_stems(mix, mix_rate, gain_db, cancel)

        stems = split if plan.export.stems else None
        with clock.stage("finish"):
            finished = [replacing.finish_replaced(r.audio, rate, plan.export, stems) for r in replaced]

        # 4. Describe and write every candidate, the best first; each recipe names the one it holds
        notes = [plan.section.note] if plan.section.note else []
        with clock.stage("describe"):
            recipes = [
                replace(
                    self._recipe(steps, by_seed[r.seed], f, None, None, notes),
                    replace=replacing.replace_record(plan, replaced, r),
                )
                for r, f in zip(replaced, finished, strict=True)
            ]
        names = _file_names(recipes, destination)
        takes = tuple({"seed": r.settings.seed, "file": f"{n}.wav"} for r, n in zip(recipes, names, strict=True))
        recipes = [replace(r, takes=takes if len(takes) > 1 else ()) for r in recipes]
        folder = Path(destination).parent if destination is not None else self.store.new_job_folder()
        tracks = [
            self._write(steps, by_seed[r.seed], f, recipe, folder, name, None, None, clock=clock)
            for r, f, recipe, name in zip(replaced, finished, recipes, names, strict=True)
        ]
        clock.log(f"replace {folder.name}")
        return replace(tracks[0], takes=tuple(tracks[1:]))

    def plan_compose(self, request: ComposeRequest) -> ComposePlan:
        """Check a compose request and resolve it: the sections, each one's settings and seed, tempo, key, export."""
        bpm = TempoRequest.from_request(request.bpm, None, None, None)
        key = parse_key(request.key)
        sections = parse_sections(request.sections, bpm.bpm)
        if total_seconds(sections) > self.max_duration:
            raise InvalidInputError(
                f"The sections add up to {total_seconds(sections):.1f} s, over this server's "
                f"{self.max_duration:g} s: shorten some, or leave some out."
            )
        export = ExportSettings.from_request(request.formats, request.sample_rate, request.loudness, request.stems)
        model = self.models.pick(request.model, melody=False)
        sampling = TrackRequest(
            seed=request.seed,
            temperature=request.temperature,
            top_k=request.top_k,
            top_p=request.top_p,
            guidance_scale=request.guidance_scale,
            negative_prompt=request.negative_prompt,
        )
        seed = self.settings_for(sampling).with_seed().seed  # checked and drawn once; section k gets seed + k
        planned = []
        for index, section in enumerate(sections):
            preset = self.presets.find(section.preset)
            seconds = compose_module.seconds_to_make(section, bpm.bpm)
            asked = replace(sampling, prompt=section.prompt, duration=seconds, seed=section_seed(seed, index))
            settings = self.settings_for(asked, preset)
            said = replace(settings, prompt=_saying(settings.prompt, bpm, key))
            planned.append(PlannedSection(section, said, preset.id if preset else None))
        return ComposePlan(tuple(planned), seed, bpm.bpm, key, export, model)

    def compose(
        self,
        request: ComposeRequest,
        *,
        on_progress: ProgressCallback | None = None,
        cancel: threading.Event | None = None,
        destination: str | Path | None = None,
    ) -> Track:
        """Make a song section by section and write it with a cue point per section; raises ``MoodtapeError``."""
        # 1. Validate and resolve: sections, their settings and seeds, tempo, key, export
        plan = self.plan_compose(request)

        # 2. Generate: each section continues the song so far, landed in the key and stretched to the tempo
        engine = self.models.acquire(plan.model)
        audio, made = compose_module.make_song(engine, plan, on_progress=on_progress, cancel=cancel)
        generated = compose_module.song_generated(plan, made, audio)

        # 3. Finish the whole song (loudness, stems), cut to exactly the sum of its sections at the output rate
        mood = " / ".join(planned.section.prompt or planned.preset_id or "" for planned in plan.sections)
        steps = _Plan(generated.settings, plan.export, TempoRequest(), 1, plan.seconds, None, None, mood)
        steps = replace(steps, model=plan.model, length=plan.seconds)
        finished = self._finish(steps, generated, cancel)

        # 4. Describe and write: the recipe with its sections, the files, a cue point per section
        recipe = self._recipe(steps, generated, finished, None, None, list(compose_module.song_notes(plan, made)))
        stretched = all(entry.get("stretched", False) for entry in compose_module.sections_record(plan, made))
        tempo = {**(recipe.tempo or {}), **({"bpm": plan.bpm, "stretched": stretched} if plan.bpm else {})}
        recipe = replace(
            recipe,
            tempo=tempo,
            key=compose_module.key_record(plan, made, finished.tempo.key),
            sections=tuple(compose_module.sections_record(plan, made)),
        )
        folder = Path(destination).parent if destination is not None else self.store.new_job_folder()
        name = _file_names([recipe], destination)[0]
        track = self._write(steps, generated, finished, recipe, folder, name, None, None)
        mark_cues(track.wav_path, compose_module.song_cues(plan, finished.sample_rate))
        return track

    def _finish(self, plan: _Plan, generated: GeneratedAudio, cancel: threading.Event | None) -> FinishedTake:
        """One take's audio, finished: an extend joined to its track, then tempo, loop, loudness and stems."""
        audio, rate = generated.audio, generated.sample_rate
        if plan.source is not None:
            original = resample(plan.source.samples, plan.source.sample_rate, rate)
            audio = join_extend(original, generated.lead_in, audio, rate)

        def split(mix: np.ndarray, mix_rate: int, gain_db: float) -> tuple[dict[str, np.ndarray], str | None]:
            return self.split_stems(mix, mix_rate, gain_db, cancel)

        return finish_take(
            audio,
            rate,
            plan.tempo,
            loudness_lufs=plan.export.loudness_lufs,
            out_rate=plan.export.sample_rate,
            duration=plan.duration,
            split_stems=split if plan.export.stems else None,
            key=plan.key,
            length=plan.length,
        )

    def _recipe(
        self,
        plan: _Plan,
        generated: GeneratedAudio,
        finished: FinishedTake,
        hum: LoadedAudio | None,
        heard: PreparedMelody | None,
        notes: list[str],
        written: NotesMelody | None = None,
    ) -> Recipe:
        """The recipe of one take: everything that made it, so it can be made again."""
        audio, rate, loudness = finished.audio, finished.sample_rate, finished.loudness
        export = {**plan.export.to_dict(), "loudness": loudness.to_dict(), "stems_written": sorted(finished.stems)}
        return Recipe(
            settings=generated.settings,
            model_id=generated.model_id,
            model_revision=generated.model_revision,
            model_name=plan.model,
            preset=plan.preset_id,
            mood=plan.mood,
            melody=written.record if written else _melody_record(hum, heard),
            export=export,
            tempo=finished.tempo_record,
            extend=_extend_record(plan, generated),
            key=finished.key_record,
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
            worker=generated.worker,
            notes=(*notes, *generated.notes, *finished.notes),
        )

    def _write(
        self,
        plan: _Plan,
        generated: GeneratedAudio,
        finished: FinishedTake,
        recipe: Recipe,
        folder: Path,
        name: str,
        melody_picture: np.ndarray | None,
        melody_description: str | None,
        followed: tuple[Note, ...] = (),
        *,
        clock: Stopwatch | None = None,
    ) -> Track:
        """Write one take: the mix in each format, the recipe beside it, the stems and their ZIP, the notes as MIDI
        (``followed``: the melody's notes); its pictures. ``clock`` times writing and pictures apart."""
        clock = clock or Stopwatch()
        audio, rate, stems = finished.audio, finished.sample_rate, finished.stems
        target_rate = None if plan.tempo.loop else plan.export.sample_rate  # a loop is cut at the output rate
        title = track_title(recipe)
        metadata, recipe_json = metadata_for(recipe, title), recipe.to_json()
        common = {"folder": folder, "file_name": name, "metadata": metadata, "recipe_json": recipe_json}
        with clock.stage("write"):
            paths = export_track(audio, rate, formats=plan.export.formats, target_rate=target_rate, **common)
            if plan.tempo.loop:
                mark_loop(paths["wav"])  # samplers read the loop points from the WAV's smpl chunk
            if stems:
                paths |= export_stems(stems, rate, target_rate=target_rate, **common)
        if MIDI in plan.export.formats:
            with clock.stage("midi"):
                followed = notes_on_take(followed, finished.tempo_record, audio.shape[-1] / rate)  # stretched, looped
                paths[MIDI] = write_midi(
                    folder / f"{name}.mid", track_midi(audio, rate, finished.tempo, stems, followed, title)
                )
        with clock.stage("pictures"):
            picture = track_picture(audio, rate)
            stems_drawn = stems_picture(stems, rate, title=f"Stems of {title}") if stems else None
        return Track(
            paths=paths,
            recipe=recipe,
            generated=replace(generated, audio=audio),
            picture=picture,
            stems_picture=stems_drawn,
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


def _whole(value: int | float | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidInputError(f"{name} must be a whole number, got {value!r}.")


def _extend_record(plan: _Plan, generated: GeneratedAudio) -> dict | None:
    if plan.source is None:
        return None
    return {
        "file": plan.source.source_name,
        "sha256": plan.source.digest,
        "seconds": round(plan.source.seconds, 3),
        "seconds_added": plan.duration,
        "prompt_seconds": round(generated.prompt_seconds, 3),
        "crossfade_ms": JOIN_FADE_SECONDS * 1000,
        "model_continued": plan.source_model,
    }


def replay_mode_note(recipe_mode: str, mode: str) -> str:
    """Why a replayed recipe's audio differs from the original: the server decodes in the other mode.

    One server runs one mode (its model is held in one form); ``python -m generation --recipe`` replays in the
    recipe's own mode.
    """
    named = {"fast": "fast CPU mode", "exact": "the exact path"}
    setting = "MOODTAPE_FAST_CPU=1 on a CPU" if recipe_mode == "fast" else "MOODTAPE_FAST_CPU=0"
    return (
        f"This recipe was made in {named[recipe_mode]}; this server runs {named[mode]}, so the audio differs "
        f"slightly from the original. To replay it exactly, run with {setting}, or replay it with "
        "`python -m generation --recipe`, which uses the recipe's mode."
    )


def _file_names(recipes: list[Recipe], destination: str | Path | None) -> list[str]:
    """Each take's file name: descriptive, or the destination's with _take2, _take3, ... for later takes."""
    if destination is None:
        return [track_file_name(r) for r in recipes]
    base = Path(destination).with_suffix("").name
    return [base if i == 0 else f"{base}_take{i + 1}" for i in range(len(recipes))]


def _variations(value: int | float | None) -> int:
    if value is None or value == "":
        return 1
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TAKES:
        raise InvalidInputError(
            f"variations must be a whole number of takes from 1 to {MAX_TAKES}, got {quoted(value)}."
        )
    return value


def _saying(prompt: str, tempo: TempoRequest, key: Key | None) -> str:
    """The prompt that says the key and the tempo asked for ("..., in A minor, 90 bpm"), each once."""
    return tempo.prompt_for(key.prompt_for(prompt) if key else prompt)


def _given(value, fallback):
    return fallback if value is None else value


def _preset_bpm(preset: presets_module.Preset | None) -> int | None:
    return preset.tags.bpm if preset is not None else None
