"""The API's endpoints and their parameters, described once: the app and the command line are both built from them.

Each ``Endpoint`` names its parameters in the order API clients send them; each ``Parameter`` says what it is
called, what it holds (``kind``), its help text, the value the page starts with, the ``TrackRequest`` field it
fills and whether it must be sent. Nothing here knows Gradio: ``app.py`` gives each parameter a hidden API input
(by kind) and a page widget (by name); ``python -m generation`` gives each endpoint a subcommand and each
parameter an option (``top_k`` becomes ``--top-k``; a required one is positional).

What an endpoint answers with (``answers``) decides how it is served:

- ``TRACK``: a track is made (``request_from`` then ``Studio.make_track``); the API returns the seven results of
  ``/generate``, the command line writes the files to ``-o``.
- ``LISTING``: ``call(studio, values, owner)`` returns JSON-ready data; the API returns it, the command line prints
  it. ``owner`` is whose library a request reads (``runner.TrackRunner.owner``; the command line's is the local one).
- ``FILES``: ``call(studio, values, ...)`` returns an object with ``files`` (paths), ``picture`` (RGB) and
  ``words`` (``generation.midi.files.Transcribed``); the API returns the three.

Adding an endpoint:

1. Declare its parameters below (or reuse ``GENERATE``'s, as ``EXTEND`` does) and add an ``Endpoint`` to
   ``ENDPOINTS`` with a one-line ``doc``; a new ``TrackRequest`` field goes in ``generation/studio.py``.
2. A ``TRACK`` or ``LISTING`` endpoint needs nothing more: the API, its hidden inputs and the command line's
   subcommand follow from the table. A parameter of a new kind needs a hidden input in ``api_wiring.py``
   (``HIDDEN_BY_KIND``) and a type in ``__main__.py`` (``CLI_TYPES``); one the page shows needs a widget in
   ``page.py``.
3. An endpoint that answers with something else (files, pictures) gets a new ``answers`` value, its outputs in
   ``api_wiring.py`` and its printing in ``__main__.py``.

``tests/test_cli.py`` fails when an API endpoint's parameter has no option on its subcommand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .audio.loops import LOOP_BARS
from .audio.tempo import MAX_BPM, MIN_BPM
from .config import AUTO_MODEL
from .editing.compose import ComposeRequest
from .editing.replace import DEFAULT_CANDIDATES, MAX_CANDIDATES, MAX_SECTION_SECONDS, MIN_CANDIDATES, ReplaceRequest
from .editing.sections import MAX_SECTIONS
from .formats import DEFAULT_TARGET_LUFS, EXPORT_RATES, FORMATS
from .library import DEFAULT_LIMIT, MAX_LIMIT, Library, delete_entry, search_entries
from .midi.files import transcribe_upload
from .settings import MAX_DURATION, MAX_GUIDANCE, MAX_TEMPERATURE, MAX_TOP_K, MIN_DURATION, GenerationSettings
from .studio import DEFAULT_EXTEND_SECONDS, MAX_EXTEND_SECONDS, MAX_TAKES, MIN_EXTEND_SECONDS, Studio, TrackRequest

# What a parameter holds: how the API receives it and the command line parses it.
TEXT = "text"
NUMBER = "number"
INTEGER = "integer"  # a number the API takes as any number and the command line as a whole one
FLAG = "flag"
AUDIO = "audio"  # an uploaded file for the API, a path for the command line
FORMATS_LIST = "formats"  # "wav,mp3" or ["wav", "mp3"]
KINDS = (TEXT, NUMBER, INTEGER, FLAG, AUDIO, FORMATS_LIST)

# What an endpoint answers with.
TRACK = "track"
LISTING = "listing"
FILES = "files"  # files, a picture and words, such as /transcribe's

_SETTINGS = GenerationSettings()  # MusicGen's own defaults, which the page starts with


@dataclass(frozen=True)
class Parameter:
    """One parameter of the API's endpoints; ``None`` sent or left out means "the preset's or the default"."""

    name: str  # what API clients call it; the command line's option is --name with dashes
    kind: str  # one of KINDS
    help: str  # one line for --help and the docs: what it does, its range, what empty means
    default: Any = None  # the value the page starts with (None: empty)
    field: str = ""  # the TrackRequest field it fills, when that is not ``name``
    required: bool = False  # clients must send it: /generate's prompt (empty is fine with a melody), /extend's audio
    choices: tuple[Any, ...] = ()  # the values it takes, where they are few
    minimum: float | None = None  # the range the page's slider offers (the studio checks every value)
    maximum: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Parameter {self.name!r}: kind must be one of {KINDS}, got {self.kind!r}")

    @property
    def request_field(self) -> str:
        return self.field or self.name


Parameters = tuple[Parameter, ...]  # one endpoint's parameters, in order


@dataclass(frozen=True)
class Endpoint:
    """One API endpoint: its name (``/name``), what it does, its parameters in order and what it answers with."""

    name: str
    doc: str  # the API's description of it, and the subcommand's
    parameters: Parameters = ()
    answers: str = TRACK  # TRACK or LISTING
    call: Callable[[Studio, Mapping[str, Any], str | None], Any] | None = None  # a LISTING's answer: values, owner
    streams: bool = False  # a TRACK endpoint that first yields its audio in pieces
    command: str | None = ""  # its subcommand: "" for its own name, another's name to share it, None for none
    request_type: type = TrackRequest  # what a TRACK endpoint's values become; the studio's make_track takes it

    def __post_init__(self) -> None:
        if (self.call is None) == (self.answers in (LISTING, FILES)):
            raise ValueError(f"Endpoint {self.name!r}: a LISTING or FILES endpoint, and only one, has a call")

    @property
    def subcommand(self) -> str | None:
        return self.name if self.command == "" else self.command

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)


def request_from(parameters: Parameters, values: Mapping[str, Any], request_type: type = TrackRequest) -> Any:
    """The one place page, API and command-line values (by parameter name) become a request."""
    return request_type(**{p.request_field: values[p.name] for p in parameters})


# -- /generate -----------------------------------------------------------------------------------------------------

GENERATE_PARAMETERS: Parameters = (
    Parameter("prompt", TEXT, "the mood or style in words (may be empty with a melody)", "", required=True),
    Parameter("preset", TEXT, "a style preset's id (see the presets list); 'none' for no preset", "none"),
    Parameter("melody", AUDIO, "a hum or song whose tune to follow (the first 30 s; any common audio format)"),
    Parameter(
        "duration",
        NUMBER,
        f"seconds of audio, {MIN_DURATION:g} to the server's maximum (default {_SETTINGS.duration:g}, or the preset's)",
        _SETTINGS.duration,
        minimum=MIN_DURATION,
        maximum=MAX_DURATION,
    ),
    Parameter("seed", INTEGER, "the random seed; empty or -1 for a random one (the recipe keeps it)", -1),
    Parameter(
        "temperature",
        NUMBER,
        f"sampling temperature, above 0 to {MAX_TEMPERATURE:g} (default {_SETTINGS.temperature:g})",
        _SETTINGS.temperature,
        minimum=0.05,
        maximum=MAX_TEMPERATURE,
    ),
    Parameter(
        "top_k",
        INTEGER,
        f"sample from the k likeliest tokens, 0 to {MAX_TOP_K}; 0 turns it off (default {_SETTINGS.top_k})",
        _SETTINGS.top_k,
        minimum=0,
        maximum=MAX_TOP_K,
    ),
    Parameter(
        "top_p",
        NUMBER,
        f"nucleus sampling mass, 0 to 1; 0 turns it off (default {_SETTINGS.top_p:g})",
        _SETTINGS.top_p,
        minimum=0.0,
        maximum=1.0,
    ),
    Parameter(
        "guidance",
        NUMBER,
        f"classifier-free guidance, 1 to {MAX_GUIDANCE:g}; 1 turns it off (default {_SETTINGS.guidance_scale:g})",
        _SETTINGS.guidance_scale,
        field="guidance_scale",
        minimum=1.0,
        maximum=MAX_GUIDANCE,
    ),
    Parameter("stems", FLAG, "also split the track into drums, bass, other and vocals (takes longer)", False),
    Parameter(
        "formats",
        FORMATS_LIST,
        f"formats to write besides the 24-bit WAV: {', '.join(FORMATS)}, comma-separated",
        "wav",
        choices=FORMATS,
    ),
    Parameter(
        "sample_rate",
        INTEGER,
        f"resample the exports to {' or '.join(str(r) for r in EXPORT_RATES)} Hz; 0 keeps the model's 32 kHz",
        0,
        choices=(0, *EXPORT_RATES),
    ),
    Parameter(
        "loudness",
        NUMBER,
        f"target loudness in LUFS, e.g. -14 (streaming), -16, -23 (broadcast); 0 leaves the level as generated "
        f"(default {DEFAULT_TARGET_LUFS:g})",
        DEFAULT_TARGET_LUFS,
    ),
    Parameter(
        "negative_prompt",
        TEXT,
        "what to steer away from, e.g. 'vocals, distortion' (needs guidance above 1)",
        _SETTINGS.negative_prompt,
    ),
    Parameter(
        "variations",
        INTEGER,
        f"takes of one idea, 1 to {MAX_TAKES}, made at once with seeds seed, seed+1, ...",
        1,
        minimum=1,
        maximum=MAX_TAKES,
    ),
    Parameter(
        "bpm",
        NUMBER,
        f"stretch the track to exactly this tempo, {MIN_BPM} to {MAX_BPM}; empty keeps it as generated",
        minimum=MIN_BPM,
        maximum=MAX_BPM,
    ),
    Parameter("loop", FLAG, "cut into whole bars that repeat without a click (needs a bpm or a preset's)", False),
    Parameter(
        "bars",
        INTEGER,
        f"the loop's length in bars: {', '.join(str(b) for b in LOOP_BARS)}; 0 for as many as fit",
        0,
        choices=(0, *LOOP_BARS),
    ),
    Parameter("model", TEXT, f"a model's name from the models list; '{AUTO_MODEL}' for the server's pick", AUTO_MODEL),
    Parameter(
        "key",
        TEXT,
        "the key to land in, e.g. 'A minor', 'F# major', 'Bb minor' (a relative key counts as the same); "
        "said in the prompt, and the track moved by at most 6 semitones if it differs; empty keeps it as generated",
        "",
    ),
    Parameter(
        "melody_cleanup",
        FLAG,
        "tidy a hummed melody: transcribe it, move its notes onto its key's scale and a 1/8 grid (at bpm, or its own "
        "tempo) and follow those notes",
        False,
    ),
)

def from_generate(names: tuple[str, ...], helps: Mapping[str, str]) -> Parameters:
    """/generate's parameters of these ``names``, none of them required, with the ``helps`` given in place of theirs."""
    return tuple(
        replace(p, required=False, help=helps.get(p.name, p.help)) for p in GENERATE_PARAMETERS if p.name in names
    )


# -- /extend: the track and the seconds to add, then /generate's parameters but those an extend has no use for --------

EXTEND_ONLY_PARAMETERS: Parameters = (
    Parameter("audio", AUDIO, "the track to continue (any /generate result)", field="extend", required=True),
    Parameter(
        "seconds",
        NUMBER,
        f"seconds to add, {MIN_EXTEND_SECONDS:g} to {MAX_EXTEND_SECONDS:g} (default {DEFAULT_EXTEND_SECONDS:g})",
        DEFAULT_EXTEND_SECONDS,
        field="duration",
        minimum=MIN_EXTEND_SECONDS,
        maximum=MAX_EXTEND_SECONDS,
    ),
)
# The file gives the melody and the start; seconds replaces duration; one take; the studio refuses a loop on an extend.
NOT_FOR_EXTEND = ("melody", "melody_cleanup", "duration", "variations", "loop", "bars")
EXTEND_PARAMETERS: Parameters = (
    *EXTEND_ONLY_PARAMETERS,
    *(
        # an empty prompt reuses the file's recipe
        replace(p, required=False, help="the mood or style in words; empty reuses the track's recipe")
        if p.name == "prompt"
        else p
        for p in GENERATE_PARAMETERS
        if p.name not in NOT_FOR_EXTEND
    ),
)

# -- /replace: the track and the section, then the sampling and export parameters of /generate -----------------------

REPLACE_ONLY_PARAMETERS: Parameters = (
    Parameter("audio", AUDIO, "the track to replace a section of (any result, take or upload)", required=True),
    Parameter("start", NUMBER, "where the section starts, in seconds into the file (0 for its start)", required=True),
    Parameter(
        "end",
        NUMBER,
        f"where it ends, in seconds (at most the file's length; at most {MAX_SECTION_SECONDS:g} s after start)",
        required=True,
    ),
    Parameter(
        "candidates",
        INTEGER,
        f"versions of the section made at once, {MIN_CANDIDATES} to {MAX_CANDIDATES}, seeds seed, seed+1, ...; "
        f"the one that best meets what follows is returned first (default {DEFAULT_CANDIDATES})",
        DEFAULT_CANDIDATES,
        minimum=MIN_CANDIDATES,
        maximum=MAX_CANDIDATES,
    ),
)
# What a request that is not /generate's takes of its parameters: the sampling, the model and the export
SAMPLING_AND_EXPORT = (
    "seed", "temperature", "top_k", "top_p", "guidance", "negative_prompt", "model",
    "stems", "formats", "sample_rate", "loudness",
)  # fmt: skip
FOR_REPLACE = ("prompt", "preset", *SAMPLING_AND_EXPORT)
_REPLACE_HELP = {
    "prompt": "what the new section should be, in words; empty reuses the track's recipe",
    "sample_rate": f"resample the exports to {' or '.join(str(r) for r in EXPORT_RATES)} Hz; 0 keeps the file's own",
    "loudness": "target loudness in LUFS as one gain over the whole file; 0 keeps every sample outside the "
    f"section as it is (default {DEFAULT_TARGET_LUFS:g})",
}
REPLACE_PARAMETERS: Parameters = (*REPLACE_ONLY_PARAMETERS, *from_generate(FOR_REPLACE, _REPLACE_HELP))

# -- /compose: the sections, then the tempo, key, sampling and export parameters of /generate ----------------------

COMPOSE_ONLY_PARAMETERS: Parameters = (
    Parameter(
        "sections",
        TEXT,
        f'the song as JSON: a list of 1 to {MAX_SECTIONS} sections, each {{"prompt": ..., "seconds": ...}} or '
        '{"prompt": ..., "bars": ...} (bars need bpm), with an optional "preset"; each lasts 1 to 30 s',
        required=True,
    ),
)
FOR_COMPOSE = ("bpm", "key", *SAMPLING_AND_EXPORT)
_COMPOSE_HELP = {
    "bpm": f"the song's tempo, {MIN_BPM} to {MAX_BPM}: bars are counted at it and every section is stretched to it; "
    "empty: sections in seconds, each at its own tempo",
    "key": "the key every section lands in, e.g. 'A minor' or 'F# major'; empty keeps each as generated",
    "seed": "the random seed: section k is made with seed + k; empty or -1 for a random one",
}
COMPOSE_PARAMETERS: Parameters = (*COMPOSE_ONLY_PARAMETERS, *from_generate(FOR_COMPOSE, _COMPOSE_HELP))

# -- /library: a search of the caller's own entries --------------------------------------------------------------

LIBRARY_PARAMETERS: Parameters = (
    Parameter("query", TEXT, "words to find in the prompt, preset or model (each must start a word); empty for all"),
    Parameter("bpm_min", NUMBER, "only entries at this tempo or faster, in BPM"),
    Parameter("bpm_max", NUMBER, "only entries at this tempo or slower, in BPM"),
    Parameter("key", TEXT, "only entries in this key, such as 'A minor' or 'F# major' (flats work too)"),
    Parameter("model", TEXT, "only entries made with this model (its name on the server, or its id)"),
    Parameter(
        "limit", INTEGER, f"at most this many entries, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT})", DEFAULT_LIMIT
    ),
)


def _library(studio: Studio) -> Library | None:
    """The studio's library; a studio made without one (the command line's) opens it from the settings."""
    if studio.track_library is None:
        studio.track_library, _ = Library.from_config(studio.config)
    return studio.track_library


# -- The table -----------------------------------------------------------------------------------------------------

GENERATE = Endpoint(
    "generate",
    "Make a track: returns the audio, downloads, recipe, summary, melody picture, picture, stems picture.",
    GENERATE_PARAMETERS,
)
GENERATE_STREAM = Endpoint(
    "generate_stream",
    "Like /generate, but first yields the audio in pieces (small WAV files) while it is made.",
    GENERATE_PARAMETERS,
    streams=True,
    command="generate",  # the command line writes files; there is nothing to stream to
)
EXTEND = Endpoint(
    "extend",
    "Continue a track (audio: a file) by seconds; an empty prompt reuses the file's recipe. "
    "Returns the same seven results as /generate.",
    EXTEND_PARAMETERS,
)
REPLACE = Endpoint(
    "replace",
    "Replace a section (start to end, in seconds, moved to the nearest downbeats) of a track (audio: a file); "
    "an empty prompt reuses the file's recipe. Returns the same seven results as /generate, the candidates as takes.",
    REPLACE_PARAMETERS,
    request_type=ReplaceRequest,
)
COMPOSE = Endpoint(
    "compose",
    "Compose a song in sections (sections: JSON); each section continues the one before with its own prompt. "
    "Returns the same seven results as /generate; the WAV carries a cue point per section.",
    COMPOSE_PARAMETERS,
    request_type=ComposeRequest,
)
PRESETS = Endpoint(
    "presets",
    "List the style presets: id, name, description, family, tags and settings.",
    answers=LISTING,
    call=lambda studio, values, owner: studio.presets.describe(),
)
MODELS = Endpoint(
    "models",
    "List the models to pick: name, source, kind (text or melody), channels, decoder size, loaded, default.",
    answers=LISTING,
    call=lambda studio, values, owner: studio.models.describe(),
)
LIBRARY = Endpoint(
    "library",
    "Search your library (every track you made, kept across restarts): words of the prompt, preset or model, "
    "a BPM range, a key, a model. Returns entries, newest first: id, created, prompt, preset, model, seconds, bpm, "
    "key, seed, parent, files (download each from gradio_api/file=<path>), size.",
    LIBRARY_PARAMETERS,
    answers=LISTING,
    call=lambda studio, values, owner: search_entries(_library(studio), owner, values),
)
LIBRARY_DELETE = Endpoint(
    "library_delete",
    "Delete an entry of your library (its row and its files) by id; returns the entry as it was.",
    (Parameter("id", TEXT, "the entry's id, as /library lists it", required=True),),
    answers=LISTING,
    call=lambda studio, values, owner: delete_entry(_library(studio), owner, values["id"]),
)
TRANSCRIBE = Endpoint(
    "transcribe",
    "Notes from audio (recording: a file): returns a MIDI file (the melody of a hum; else lead, bass, chords and "
    "drums at the measured tempo), a piano-roll picture and the notes in words.",
    (Parameter("recording", AUDIO, "the audio to transcribe: a hum, a song or any result (any common format)",
               required=True),),  # fmt: skip
    answers=FILES,
    call=lambda studio, values, *_: transcribe_upload(
        values["recording"], studio.store.new_job_folder(), studio.separator, studio.max_duration
    ),
)
ENDPOINTS: tuple[Endpoint, ...] = (  # the API's order
    GENERATE,
    GENERATE_STREAM,
    EXTEND,
    REPLACE,
    COMPOSE,
    PRESETS,
    MODELS,
    LIBRARY,
    LIBRARY_DELETE,
    TRANSCRIBE,
)
BY_NAME = {e.name: e for e in ENDPOINTS}
# Each parameter once, by name, as first declared (endpoints share the hidden input of a name they share).
EVERY_PARAMETER: dict[str, Parameter] = {}
for _endpoint in ENDPOINTS:
    for _parameter in _endpoint.parameters:
        EVERY_PARAMETER.setdefault(_parameter.name, _parameter)
