"""Moodtape's Gradio app: layout and wiring around ``generation.Studio``; no model code here.

Read from the top: the API's parameters (declared once, for the API and the page alike), how a runner's
updates become each endpoint's outputs, the page's parts, the wiring, then ``main()``.
"""

from __future__ import annotations

import inspect
import logging
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr

from api_components import FormatsParameter, MelodyParameter, TextParameter, TrackParameter
from generation import __version__
from generation.audio.loops import LOOP_BARS
from generation.config import AUTO_MODEL, ConfigError, ServerConfig
from generation.errors import MoodtapeError
from generation.model.engine import MAX_TAKES
from generation.presets import PresetSettings
from generation.settings import MAX_GUIDANCE, MAX_TEMPERATURE, MAX_TOP_K, MIN_DURATION
from generation.studio import (
    DEFAULT_EXTEND_SECONDS,
    MAX_EXTEND_SECONDS,
    MIN_EXTEND_SECONDS,
    Studio,
    TrackRequest,
)
from runner import RESULT_COUNT, Finished, InProgress, StreamTo, TrackResults, TrackRunner

log = logging.getLogger("moodtape.app")

DEFAULTS = TrackRequest(
    duration=10.0, seed=-1, temperature=1.0, top_k=250, top_p=0.0, guidance_scale=3.0, negative_prompt=""
)
EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
EXAMPLE_INPUTS = ("prompt", "preset", "melody")  # the parameters each example fills
EXAMPLES = [  # hums made by scripts/make_example_hums.py
    ["rainy night, mellow piano, slow", "none", None],
    ["sunrise over the sea, hopeful", "cinematic-orchestral", None],
    ["late night drive through neon city", "synthwave", None],
    ["coffee shop on a sunday morning", "jazz-trio", None],
    ["", "jazz-trio", str(EXAMPLES_DIR / "hum-rising-arpeggio.wav")],
    ["dreamy, slow", "lofi-hip-hop", str(EXAMPLES_DIR / "hum-lullaby.ogg")],
    ["", "epic-metal", str(EXAMPLES_DIR / "hum-minor-riff.flac")],
]
EXAMPLE_LABELS = [
    "Rainy night, mellow piano",
    "Hopeful sunrise, orchestral",
    "Neon night drive, synthwave",
    "Sunday coffee shop, jazz trio",
    "Hum: rising arpeggio as a jazz trio",
    "Hum: lullaby as lo-fi hip-hop",
    "Hum: minor riff as epic metal",
]
MAX_HISTORY = 12  # results kept per browser tab
INTRO = """# Moodtape
Describe a mood, pick a style, press **Generate**: a track to play now and a lossless WAV to download.
Runs [MusicGen](https://huggingface.co/facebook/musicgen-small) (weights CC-BY-NC-4.0); every result is AI-generated.
"""
MELODY_HELP = (
    "With a melody, MusicGen-Melody follows its tune (the first 30 s are used); a hum alone is enough. "
    "**Style transfer**: upload a song and pick a style (or type one) to hear its melody in that style."
)
GENERATE_DOC = "Make a track: returns the audio, downloads, recipe, summary, melody picture, picture, stems picture."
GENERATE_STREAM_DOC = "Like /generate, but first yields the audio in pieces (small WAV files) while it is made."
EXTEND_DOC = (
    "Continue a track (audio: a file) by seconds; an empty prompt reuses the file's recipe. "
    "Returns the same seven results as /generate."
)
LOUDNESS_CHOICES = [
    ("-14 LUFS (streaming)", -14.0),
    ("-16 LUFS (podcasts, Apple)", -16.0),
    ("-23 LUFS (broadcast)", -23.0),
    ("Off (as generated)", 0.0),
]
RATE_CHOICES = [("32 kHz (the model's own)", 0), ("44.1 kHz", 44_100), ("48 kHz", 48_000)]
BARS_CHOICES = [("as many as fit", 0), *((str(bars), bars) for bars in LOOP_BARS)]  # 0 is "not given"


# -- The API's parameters, declared once ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiParameter:
    """One parameter of the API's endpoints: its name, its hidden API input and its page widget."""

    name: str  # what API clients call it
    hidden: Callable[..., gr.Component]  # the API's hidden input, made with value=None ("the preset's or the default")
    widget: Callable[..., gr.Component] | None  # the page's input (the layout adds what depends on the server)
    field: str = ""  # the TrackRequest field it fills, when that is not ``name``
    required: bool = False  # clients must send it: /generate's prompt (empty is fine with a melody), /extend's audio

    @property
    def request_field(self) -> str:
        return self.field or self.name


API_PARAMETERS = (
    ApiParameter(
        "prompt",
        TextParameter,
        partial(
            gr.Textbox,
            label="Mood",
            lines=1,  # with one line, Enter submits and Shift+Enter adds a line; the box grows to max_lines
            max_lines=6,
            elem_id="prompt",
            placeholder="rainy night, mellow piano, slow (Enter to generate, Shift+Enter for a new line)",
        ),
        required=True,
    ),
    ApiParameter("preset", TextParameter, partial(gr.Dropdown, value="none", label="Style preset", elem_id="preset")),
    ApiParameter(
        "melody",
        partial(MelodyParameter, type="filepath"),
        partial(
            gr.Audio,
            sources=["upload", "microphone"],
            type="filepath",
            label="Hum a melody, or upload a song to restyle (optional)",
            elem_id="melody",
        ),
    ),
    ApiParameter(
        "duration",
        gr.Number,
        partial(gr.Slider, MIN_DURATION, value=DEFAULTS.duration, step=1, label="Duration (s)", elem_id="duration"),
    ),
    ApiParameter(
        "seed",
        gr.Number,
        partial(gr.Number, value=-1, precision=0, label="Seed (-1 or empty = random)", elem_id="seed"),
    ),
    ApiParameter(
        "temperature",
        gr.Number,
        partial(gr.Slider, 0.05, MAX_TEMPERATURE, value=DEFAULTS.temperature, step=0.05, label="Temperature"),
    ),
    ApiParameter(
        "top_k", gr.Number, partial(gr.Slider, 0, MAX_TOP_K, value=DEFAULTS.top_k, step=1, label="Top-k (0 = off)")
    ),
    ApiParameter(
        "top_p", gr.Number, partial(gr.Slider, 0.0, 1.0, value=DEFAULTS.top_p, step=0.01, label="Top-p (0 = off)")
    ),
    ApiParameter(
        "guidance",
        gr.Number,
        partial(
            gr.Slider, 1.0, MAX_GUIDANCE, value=DEFAULTS.guidance_scale, step=0.5, label="Classifier-free guidance"
        ),
        field="guidance_scale",
    ),
    ApiParameter(
        "stems",
        gr.Checkbox,
        partial(
            gr.Checkbox,
            value=False,
            label="Split into stems: drums, bass, other, vocals (takes longer)",
            elem_id="stems",
        ),
    ),
    ApiParameter(
        "formats",
        FormatsParameter,
        partial(
            gr.CheckboxGroup,
            ["wav", "flac", "mp3"],
            value=["wav"],
            label="Formats (24-bit WAV is always included)",
            elem_id="formats",
        ),
    ),
    ApiParameter(
        "sample_rate",
        gr.Number,
        partial(gr.Dropdown, RATE_CHOICES, value=0, label="Sample rate", elem_id="sample-rate"),
    ),
    ApiParameter(
        "loudness",
        gr.Number,
        partial(gr.Dropdown, LOUDNESS_CHOICES, value=-14.0, label="Loudness", elem_id="loudness"),
    ),
    ApiParameter(
        "negative_prompt",
        TextParameter,
        partial(
            gr.Textbox,
            value=DEFAULTS.negative_prompt,
            lines=1,
            label="Negative prompt: what to steer away from (vocals, distortion)",
            elem_id="negative-prompt",
        ),
    ),
    ApiParameter(
        "variations",
        gr.Number,
        partial(gr.Slider, 1, MAX_TAKES, value=1, step=1, label="Takes", elem_id="takes"),
    ),
    ApiParameter("bpm", gr.Number, partial(gr.Number, value=None, label="BPM (empty = as generated)", elem_id="bpm")),
    ApiParameter(
        "loop",
        gr.Checkbox,
        partial(
            gr.Checkbox, value=False, label="Loop: cut into whole bars that repeat without a click", elem_id="loop"
        ),
    ),
    ApiParameter("bars", gr.Number, partial(gr.Dropdown, BARS_CHOICES, value=0, label="Bars", elem_id="bars")),
    ApiParameter("model", TextParameter, partial(gr.Dropdown, value=AUTO_MODEL, label="Model", elem_id="model")),
)
API_NAMES = tuple(p.name for p in API_PARAMETERS)
# Picking a preset fills the page's inputs for the settings it sets; one with no input applies when the track is made.
_SET_BY_PRESETS = {f.name for f in fields(PresetSettings)}
PRESET_FIELDS = tuple(p.request_field for p in API_PARAMETERS if p.request_field in _SET_BY_PRESETS)

# /extend: the track and the seconds to add, then /generate's parameters but those an extend has no use for.
EXTEND_ONLY_PARAMETERS = (
    # On the page the track is whatever the main player shows: the latest result, a picked one or a picked take.
    ApiParameter("audio", partial(TrackParameter, type="filepath"), None, field="extend", required=True),
    ApiParameter(
        "seconds",
        gr.Number,
        partial(
            gr.Slider,
            MIN_EXTEND_SECONDS,
            MAX_EXTEND_SECONDS,
            value=DEFAULT_EXTEND_SECONDS,
            step=1,
            label="Seconds to add",
            elem_id="extend-seconds",
        ),
        field="duration",
    ),
)
# The file gives the melody and the start; seconds replaces duration; one take; the studio refuses a loop on an extend.
NOT_FOR_EXTEND = ("melody", "duration", "variations", "loop", "bars")
EXTEND_PARAMETERS = (
    *EXTEND_ONLY_PARAMETERS,
    *(
        replace(p, required=False) if p.name == "prompt" else p  # an empty prompt reuses the file's recipe
        for p in API_PARAMETERS
        if p.name not in NOT_FOR_EXTEND
    ),
)
EXTEND_NAMES = tuple(p.name for p in EXTEND_PARAMETERS)
EVERY_PARAMETER = {p.name: p for p in (*API_PARAMETERS, *EXTEND_ONLY_PARAMETERS)}  # each row once: hidden inputs
Parameters = tuple[ApiParameter, ...]  # one endpoint's parameters, in order


def request_from(parameters: Parameters, values: Mapping[str, Any]) -> TrackRequest:
    """The one place widget and API values (by parameter name) become a request."""
    return TrackRequest(**{p.request_field: values[p.name] for p in parameters})


def endpoint_signature(parameters: Parameters) -> inspect.Signature:
    """An API function's signature: Gradio reads the public parameter names and defaults from it."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    named = [
        inspect.Parameter(p.name, kind, default=inspect.Parameter.empty if p.required else None) for p in parameters
    ]
    progress = inspect.Parameter("progress", kind, default=gr.Progress())  # Gradio fills this slot itself
    return inspect.Signature([*named, progress])


# -- From the runner's updates to each endpoint's outputs ----------------------------------------------------------


def api_endpoint(
    runner: TrackRunner, name: str, doc: str, parameters: Parameters, stream_to: StreamTo = None
) -> Callable[..., Iterator[tuple[Any, ...]]]:
    """An API function that takes ``parameters`` by name and yields the endpoint's outputs."""
    signature = endpoint_signature(parameters)

    def endpoint(*args: Any, **kwargs: Any) -> Iterator[tuple[Any, ...]]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = bound.arguments
        for update in runner.run(request_from(parameters, values), values["progress"], stream_to=stream_to):
            yield api_outputs(update, streaming=stream_to is not None)

    endpoint.__signature__ = signature  # type: ignore[attr-defined]
    endpoint.__name__ = endpoint.__qualname__ = name
    endpoint.__doc__ = doc
    return endpoint


def api_outputs(update: InProgress | Finished, *, streaming: bool) -> tuple[Any, ...]:
    """One update as an API endpoint's outputs; ``/generate_stream`` has an audio piece before the results."""
    if isinstance(update, Finished):
        results = update.results.outputs()
        return (None, *results) if streaming else results
    if streaming:  # API clients read a skip as an update dict: they get None in slots with nothing new
        return (update.piece, *(None,) * RESULT_COUNT)
    return (gr.skip(),) * RESULT_COUNT


SHOWN_COUNT = RESULT_COUNT + 1  # what ``shown`` fills: the result panels and the loop preview
TAKES_SHOWN_COUNT = 2 + 2 * MAX_TAKES  # what ``takes_shown`` fills: the takes, their row, a column and player each


def page_outputs(update: InProgress | Finished, history: list[TrackResults]) -> tuple[Any, ...]:
    """One update as the page's outputs: preview player, the result and its takes, this tab's history."""
    if isinstance(update, InProgress):
        piece = gr.skip() if update.piece is None else update.piece
        return (piece, *(gr.skip(),) * (SHOWN_COUNT + TAKES_SHOWN_COUNT + 2))
    results = update.results
    return (gr.skip(), *shown(results), *takes_shown(results.takes), *history_shown(history))


def shown(results: TrackResults) -> tuple[Any, ...]:
    """Results for the page's panels and loop preview: what has nothing to show is hidden."""
    pictures = (results.melody_picture, results.picture, results.stems_picture)
    visible = [gr.update(value=p, visible=p is not None) for p in pictures]
    loop = bool((results.recipe.get("tempo") or {}).get("loop"))
    loop_preview = gr.update(value=results.audio if loop else None, visible=loop)
    return (results.audio, results.downloads, results.recipe, results.summary, *visible, loop_preview)


def takes_shown(takes: tuple[TrackResults, ...]) -> tuple[Any, ...]:
    """The takes row: a player per take, side by side, labelled with its seed; hidden for a single take."""
    players = [
        gr.update(value=take.audio, label=f"Take {i + 1} · seed {take.recipe['settings']['seed']}")
        for i, take in enumerate(takes)
    ]
    players += [gr.update(value=None)] * (MAX_TAKES - len(takes))
    columns = [gr.update(visible=i < len(takes)) for i in range(MAX_TAKES)]
    return (list(takes), gr.update(visible=len(takes) > 1), *columns, *players)


def history_shown(history: list[TrackResults]) -> tuple[Any, ...]:
    """This tab's results and their dropdown, with the newest picked."""
    return (history, gr.update(choices=history_choices(history), value=0))


def history_choices(history: list[TrackResults]) -> list[tuple[str, int]]:
    """Dropdown labels for the results of this tab, newest first: title, seed and length."""
    return [(_history_label(results.recipe), index) for index, results in enumerate(history)]


def _history_label(recipe: dict[str, Any]) -> str:
    title = recipe.get("mood") or recipe["settings"]["prompt"][:40] or (recipe.get("melody") or {}).get("file", "")
    preset = f" · {recipe['preset']}" if recipe.get("preset") else ""
    return f"{title or 'untitled'}{preset} · seed {recipe['settings']['seed']} · {recipe['audio_seconds']:g} s"


def studio_status(studio: Studio) -> str:
    """The models in a line: each one's name, whether it is ready, and fast CPU mode where it is on."""
    try:
        default = studio.default_model
    except MoodtapeError as e:
        return f"Model unavailable: {e}"
    parts = []
    for name in studio.models.names:
        engine = studio.models.engine(name) if name == default else studio.models.made(name)
        if engine is None or not engine.loaded:
            state = "loading in the background (your first track waits for it)" if name == default else "not loaded"
        else:
            state = "ready" + (
                " · fast CPU mode (int8; MOODTAPE_FAST_CPU=0 for the exact path)" if engine.mode == "fast" else ""
            )
        label = Path(engine.model_id).name if engine is not None and len(studio.models.names) == 1 else name
        parts.append(f"{label} {state}")
    return ("Model " if len(parts) == 1 else "Models: ") + ", ".join(parts)


def default_model_loaded(studio: Studio) -> bool:
    """Whether the model a text-only request gets is in memory (the status stops refreshing then)."""
    try:
        return studio.engine.loaded
    except MoodtapeError:
        return True  # nothing will change by itself: the status says why


def use_track_as_melody(path: str | None) -> Any:
    """The finished track becomes the melody of the next one."""
    if not path:
        gr.Warning("Make a track first: then it can be the melody of the next one.")
        return gr.skip()
    return path


# -- The page's parts ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageInputs:
    """The left column: an input per /generate parameter, the preset's description and the buttons."""

    values: dict[str, gr.Component]  # by API parameter name, in API_PARAMETERS order
    preset_info: gr.Markdown
    generate: gr.Button
    stop: gr.Button


@dataclass(frozen=True)
class TakePanels:
    """A result's takes side by side: a player and a "Pick take N" button each; hidden for a single take."""

    in_view: gr.State  # the takes shown, as TrackResults, take 1 first
    row: gr.Row
    columns: list[gr.Column]  # one per take a request may ask for
    players: list[gr.Audio]
    picks: list[gr.Button]

    @property
    def outputs(self) -> list[gr.Component]:
        """What ``takes_shown`` fills, in its order."""
        return [self.in_view, self.row, *self.columns, *self.players]


@dataclass(frozen=True)
class ResultPanels:
    """The right column: the preview player, the result panels, its takes, what to do next, this tab's history."""

    stream_player: gr.Audio
    panels: list[gr.Component]  # in TrackResults order: player, downloads, recipe, summary, the three pictures
    loop_preview: gr.Audio  # the same WAV played round and round; shown for a loop
    takes: TakePanels
    use_as_melody: gr.Button
    extend: gr.Button
    extend_seconds: gr.Slider
    history: gr.State  # this tab's TrackResults, newest first
    history_pick: gr.Dropdown
    status: gr.Markdown

    @property
    def player(self) -> gr.Component:
        return self.panels[0]

    @property
    def result(self) -> list[gr.Component]:
        """What ``shown`` fills, in its order: the panels and the loop preview."""
        return [*self.panels, self.loop_preview]


@dataclass(frozen=True)
class ApiInputs:
    """The API's hidden inputs and triggers."""

    values: dict[str, gr.Component]  # by parameter name; endpoints share the inputs of the parameters they share
    generate: gr.Button
    generate_stream: gr.Button
    extend: gr.Button
    stream_piece: gr.File

    def inputs(self, parameters: Parameters) -> list[gr.Component]:
        """An endpoint's hidden inputs, in its parameters' order."""
        return [self.values[p.name] for p in parameters]


def _inputs_column(studio: Studio) -> PageInputs:
    """Mood, style, melody, length, seed and takes; tempo, advanced and export settings folded away; the buttons."""
    declared = {p.name: p.widget for p in API_PARAMETERS}
    widgets: dict[str, gr.Component] = {}

    def place(name: str, **server_values: Any) -> None:
        widgets[name] = declared[name](**server_values)

    with gr.Column(scale=1):
        place("prompt")
        place("preset", choices=studio.presets.choices(include_none=True))
        preset_info = gr.Markdown(elem_id="preset-info")
        # With one model there is nothing to pick: the input still exists, for the request, but is not shown
        place("model", choices=studio.models.choices(), visible=len(studio.models.names) > 1)
        place("melody")
        gr.Markdown(MELODY_HELP)
        place("duration", maximum=studio.max_duration)
        with gr.Row():
            place("seed")
            place("variations")
        with gr.Accordion("Tempo and loop", open=False):
            place("bpm")
            with gr.Row():
                place("loop")
                place("bars")
        with gr.Accordion("Advanced", open=False):
            for name in ("temperature", "top_k", "top_p", "guidance", "negative_prompt"):
                place(name)
        with gr.Accordion("Export: stems, formats, loudness", open=False):
            for name in ("stems", "formats", "sample_rate", "loudness"):
                place(name)
        with gr.Row():
            generate = gr.Button("Generate", variant="primary", elem_id="generate")
            stop = gr.Button("Stop", variant="stop", elem_id="stop")
    return PageInputs({name: widgets[name] for name in API_NAMES}, preset_info, generate, stop)


def _takes_row() -> TakePanels:
    """Up to four takes side by side, hidden until a result has more than one."""
    columns, players, picks = [], [], []
    with gr.Row(visible=False, elem_id="takes-row") as row:
        for number in range(1, MAX_TAKES + 1):
            with gr.Column(visible=False, min_width=120) as column:
                players.append(
                    gr.Audio(
                        label=f"Take {number}",
                        type="filepath",
                        interactive=False,
                        buttons=["download"],
                        elem_id=f"take-{number}",
                    )
                )
                picks.append(gr.Button(f"Pick take {number}", size="sm", elem_id=f"pick-take-{number}"))
            columns.append(column)
    return TakePanels(gr.State([]), row, columns, players, picks)


def _results_column() -> ResultPanels:
    """The preview, the track and its takes, downloads, summary, pictures; extend or reuse it; history, recipe."""
    with gr.Column(scale=1):
        stream_player = gr.Audio(
            label="Preview: plays while the track is made",
            streaming=True,
            autoplay=True,
            interactive=False,
            elem_id="stream-player",
        )
        player = gr.Audio(
            label="Your track (lossless)", type="filepath", interactive=False, buttons=["download"], elem_id="player"
        )
        loop_preview = gr.Audio(
            label="Loop preview (plays looped)",
            type="filepath",
            interactive=False,
            loop=True,
            visible=False,
            elem_id="loop-preview",
        )
        takes = _takes_row()
        downloads = gr.File(
            label="Downloads: lossless WAV (24-bit) and recipe",
            file_count="multiple",
            interactive=False,
            elem_id="downloads",
        )
        summary = gr.Markdown(label="Summary", show_label=False, elem_id="summary")  # the label names it in the API
        melody_picture = gr.Image(
            label="What the model hears: the melody's pitch classes over time",
            type="numpy",
            interactive=False,
            visible=False,
            elem_id="melody-picture",
        )
        picture = gr.Image(label="Waveform and spectrogram", type="numpy", interactive=False, elem_id="picture")
        stems_picture = gr.Image(label="Stems", type="numpy", interactive=False, visible=False, elem_id="stems-picture")
        with gr.Row():
            use_as_melody = gr.Button("Use this track as the melody", size="sm", elem_id="use-as-melody")
            extend = gr.Button("Extend", size="sm", elem_id="extend")
        extend_seconds = EVERY_PARAMETER["seconds"].widget()
        history_pick = gr.Dropdown(
            choices=[],
            value=None,
            type="index",
            label="Results made in this tab (pick one to compare)",
            elem_id="history",
        )
        history = gr.State([])
        with gr.Accordion("Recipe", open=False):
            recipe = gr.JSON(label="Recipe", elem_id="recipe")
        status = gr.Markdown(elem_id="model-status")
    panels = [player, downloads, recipe, summary, melody_picture, picture, stems_picture]
    return ResultPanels(
        stream_player, panels, loop_preview, takes, use_as_melody, extend, extend_seconds, history, history_pick, status
    )


def _api_inputs() -> ApiInputs:
    """Hidden twins of the inputs for API clients: a value left out means "use the preset's or the default"."""
    with gr.Column(visible=False):
        return ApiInputs(
            values={name: p.hidden(value=None, label=name) for name, p in EVERY_PARAMETER.items()},
            generate=gr.Button("generate (API)"),
            generate_stream=gr.Button("generate_stream (API)"),
            extend=gr.Button("extend (API)"),
            stream_piece=gr.File(label="audio piece"),
        )


# -- Wiring --------------------------------------------------------------------------------------------------------


def _wire_generation(studio: Studio, inputs: PageInputs, results: ResultPanels, api: ApiInputs) -> None:
    """Generate (button or Enter) and extend from the page, and the API's endpoints; Stop cancels any of them."""
    # One model serves batches of up to max_batch concurrent requests (see generation/model/engine.py); on a cluster
    # the replicas batch and Serve's bounded line answers "busy", so the page sends up to a queue's worth at once.
    at_once = studio.config.max_batch if studio.config.backend == "local" else studio.config.queue_size
    runner = TrackRunner(studio, workers=max(8, at_once))
    run_settings = {"concurrency_id": "musicgen", "concurrency_limit": at_once}
    # Progress and errors show on the preview player only, not as a badge on every result panel.
    ui_event = {"api_visibility": "private", "show_progress_on": [results.stream_player], **run_settings}
    # Every parameter's input on the page: an extend continues whatever the main player shows.
    page = {**inputs.values, "audio": results.player, "seconds": results.extend_seconds}

    def run_in_page(
        parameters: Parameters, values: dict[gr.Component, Any], progress: gr.Progress
    ) -> Iterator[tuple[Any, ...]]:
        request = request_from(parameters, {p.name: values[page[p.name]] for p in parameters})
        history = values[results.history]
        for update in runner.run(request, progress, stream_to="player"):
            if isinstance(update, Finished):
                history = [update.results, *history][:MAX_HISTORY]
            yield page_outputs(update, history)

    def generate_in_page(
        values: dict[gr.Component, Any],
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects it
    ) -> Iterator[tuple[Any, ...]]:
        yield from run_in_page(API_PARAMETERS, values, progress)

    def extend_in_page(
        values: dict[gr.Component, Any],
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects it
    ) -> Iterator[tuple[Any, ...]]:
        if not values[results.player]:
            raise gr.Error("Make a track first (or pick one of this tab's results): then it can be extended.")
        yield from run_in_page(EXTEND_PARAMETERS, values, progress)

    page_in = {*page.values(), results.history}  # a set: the handler gets the values by component
    page_out = [results.stream_player, *results.result, *results.takes.outputs, results.history, results.history_pick]
    click = inputs.generate.click(generate_in_page, page_in, page_out, api_name="ui_generate_click", **ui_event)
    submit = inputs.values["prompt"].submit(
        generate_in_page, page_in, page_out, api_name="ui_generate_submit", **ui_event
    )
    extend = results.extend.click(extend_in_page, page_in, page_out, api_name="ui_extend_click", **ui_event)
    endpoints = [
        (api.generate, "generate", GENERATE_DOC, API_PARAMETERS, None),
        (api.generate_stream, "generate_stream", GENERATE_STREAM_DOC, API_PARAMETERS, "files"),
        (api.extend, "extend", EXTEND_DOC, EXTEND_PARAMETERS, None),
    ]
    api_events = []
    for trigger, name, doc, parameters, stream_to in endpoints:
        outputs = [api.stream_piece, *results.panels] if stream_to else results.panels
        function = api_endpoint(runner, name, doc, parameters, stream_to=stream_to)
        api_events.append(trigger.click(function, api.inputs(parameters), outputs, api_name=name, **run_settings))
    inputs.stop.click(None, cancels=[click, submit, extend, *api_events])


def _wire_helpers(demo: gr.Blocks, studio: Studio, inputs: PageInputs, results: ResultPanels) -> None:
    """Everything around a request: presets fill the settings, history and takes, melody from a track, status."""

    def fill_from_preset(preset_id: str | None) -> tuple[Any, ...]:
        try:
            preset = studio.presets.find(preset_id)
        except MoodtapeError as e:
            raise gr.Error(str(e)) from e
        if preset is None:
            return ("", *(gr.skip(),) * len(PRESET_FIELDS), gr.update(placeholder=""))
        merged = {**DEFAULTS.__dict__, **preset.settings_dict()}
        # The preset's tempo is a hint, not a value: filled in, it would stretch every track; a loop takes it anyway.
        bpm_hint = gr.update(placeholder=f"as generated; a loop takes the preset's {preset.tags.bpm}")
        return (f"*{preset.description}*", *(merged[name] for name in PRESET_FIELDS), bpm_hint)

    def show_from_history(index: int | None, history: list[TrackResults]) -> tuple[Any, ...]:
        if index is None or not 0 <= index < len(history):
            return (gr.skip(),) * (SHOWN_COUNT + TAKES_SHOWN_COUNT)
        return (*shown(history[index]), *takes_shown(history[index].takes))

    def take_picker(index: int) -> Callable[..., tuple[Any, ...]]:
        def pick_take(takes: list[TrackResults], history: list[TrackResults]) -> tuple[Any, ...]:
            """Take ``index + 1`` becomes the result, and joins this tab's history."""
            if index >= len(takes):
                return (gr.skip(),) * (SHOWN_COUNT + 2)
            history = [takes[index], *history][:MAX_HISTORY]
            return (*shown(takes[index]), *history_shown(history))

        return pick_take

    def presets() -> list[dict]:
        """List the style presets: id, name, description, family, tags and settings."""
        return studio.presets.describe()

    def models() -> list[dict]:
        """List the models to pick: name, source, kind (text or melody), channels, decoder size, loaded, default."""
        return studio.models.describe()

    def model_status() -> str:
        return f"{studio_status(studio)} · Moodtape {__version__}"

    widgets = inputs.values
    by_field = {p.request_field: widgets[p.name] for p in API_PARAMETERS}
    preset_outputs = [inputs.preset_info, *(by_field[name] for name in PRESET_FIELDS), widgets["bpm"]]
    widgets["preset"].change(fill_from_preset, widgets["preset"], preset_outputs, api_visibility="private")
    results.history_pick.input(
        show_from_history,
        [results.history_pick, results.history],
        [*results.result, *results.takes.outputs],
        api_visibility="private",
    )
    for index, pick in enumerate(results.takes.picks):
        pick.click(
            take_picker(index),
            [results.takes.in_view, results.history],
            [*results.result, results.history, results.history_pick],
            api_visibility="private",
        )
    results.use_as_melody.click(use_track_as_melody, results.player, widgets["melody"], api_visibility="private")
    gr.api(presets, api_name="presets")
    gr.api(models, api_name="models")
    demo.load(model_status, outputs=results.status, api_visibility="private")
    status_timer = gr.Timer(5)  # refreshes the model status until the model is ready, then stops
    status_timer.tick(
        lambda: (model_status(), gr.Timer(active=not default_model_loaded(studio))),
        outputs=[results.status, status_timer],
        api_visibility="private",
    )


def build_app(studio: Studio | None = None) -> gr.Blocks:
    """Build the Blocks: the page for people and the API: /generate, /generate_stream, /extend, /presets, /models."""
    studio = studio or Studio()
    with gr.Blocks(title="Moodtape: text to music") as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            inputs = _inputs_column(studio)
            results = _results_column()
        example_inputs = [inputs.values[name] for name in EXAMPLE_INPUTS]
        gr.Examples(examples=EXAMPLES, inputs=example_inputs, label="Try one", example_labels=EXAMPLE_LABELS)
        api = _api_inputs()
        _wire_generation(studio, inputs, results, api)
        _wire_helpers(demo, studio, inputs, results)
    return demo


# -- Start-up ------------------------------------------------------------------------------------------------------


def main() -> None:
    """Start the app: settings first (a bad one stops here), then the page at once, the model in the background."""
    try:
        config = ServerConfig.from_env()
    except ConfigError as e:
        print(f"Moodtape cannot start: {e}", file=sys.stderr)
        raise SystemExit(2) from e
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    studio = Studio(config=config)
    for problem in studio.presets.problems:
        log.warning("Skipped preset: %s", problem)
    threading.Thread(target=_preload, args=(studio,), name="moodtape-preload", daemon=True).start()
    studio.store.start()  # removes old results in the background, never ones younger than the keep time
    demo = build_app(studio)
    demo.queue(max_size=config.queue_size)
    demo.launch(
        max_file_size=config.max_file_size,
        server_name=config.server_name,
        server_port=config.server_port,
        allowed_paths=[str(studio.output_dir), str(EXAMPLES_DIR)],
        theme=gr.themes.Soft(),
        footer_links=["api"],
        show_error=True,  # Gradio's own input checks (say, a melody that is not an uploaded file) reach the client
    )


def _preload(studio: Studio) -> None:
    """Load the model, then pay the finishing steps' first-use costs, while the page is already up.

    One after the other: the warm-up's key finding imports ``transformers.audio_utils``, and while the model
    thread imports transformers to load, a second thread importing it can find the package half-initialised
    ("cannot import name 'AutoProcessor' from 'transformers'", seen in 3 of 4 test runs when run together).
    """
    try:
        studio.models.acquire(studio.default_model)
    except MoodtapeError as e:
        log.error("%s", e)  # requests will show the same message until the model can be loaded
    studio.warm_up()  # so the first track does not pay for the finishing steps' imports


if __name__ == "__main__":
    main()
