"""The page: its widgets, its parts (inputs, results, takes) and how a runner's updates and the models' state show.

Each API parameter the page shows gets its widget from ``WIDGETS`` (by name, from the parameter's description in
``generation/endpoints.py``: its default and range); the layout places them. ``app.py`` wires the parts together.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import gradio as gr

from generation.editing.keys import COMMON_KEYS
from generation.editing.sections import MAX_SECTIONS, SECTION_COLUMNS
from generation.endpoints import EVERY_PARAMETER, GENERATE_PARAMETERS, Parameter
from generation.errors import MoodtapeError
from generation.studio import MAX_TAKES, Studio
from runner import RESULT_COUNT, Finished, InProgress, PreviewPlayer, TrackResults

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
LOUDNESS_CHOICES = [
    ("-14 LUFS (streaming)", -14.0),
    ("-16 LUFS (podcasts, Apple)", -16.0),
    ("-23 LUFS (broadcast)", -23.0),
    ("Off (as generated)", 0.0),
]
RATE_CHOICES = [("32 kHz (the model's own)", 0), ("44.1 kHz", 44_100), ("48 kHz", 48_000)]
BARS_CHOICES = [("as many as fit", 0), *((str(bars), bars) for bars in EVERY_PARAMETER["bars"].choices if bars)]
KEY_CHOICES = [("as generated", ""), *COMMON_KEYS]
FORMS = {  # common song forms to start a table from, in seconds (bars need a BPM)
    "Intro, verse, chorus, outro": [
        ["soft intro, a few instruments", None, 6],
        ["verse, the groove settles in", None, 10],
        ["chorus, full band, bright and catchy", None, 10],
        ["outro, fading out", None, 6],
    ],
    "Verse, chorus, verse, chorus": [
        ["verse, laid back", None, 8],
        ["chorus, full and lifted", None, 8],
        ["second verse, a new instrument joins", None, 8],
        ["last chorus, biggest", None, 8],
    ],
    "Intro, build, drop, outro": [
        ["atmospheric intro, pads", None, 6],
        ["build-up, rising tension, risers", None, 8],
        ["the drop, heavy bass and drums", None, 10],
        ["outro, pads fading", None, 6],
    ],
}
FIRST_FORM = next(iter(FORMS))


def _widgets() -> dict[str, Callable[..., gr.Component]]:
    """The page's input for each parameter it shows, by name; the layout adds what depends on the server."""
    p = EVERY_PARAMETER  # defaults and ranges come from the parameters' descriptions
    return {
        "prompt": partial(
            gr.Textbox,
            label="Mood",
            lines=1,  # with one line, Enter submits and Shift+Enter adds a line; the box grows to max_lines
            max_lines=6,
            elem_id="prompt",
            placeholder="rainy night, mellow piano, slow (Enter to generate, Shift+Enter for a new line)",
        ),
        "preset": partial(gr.Dropdown, value=p["preset"].default, label="Style preset", elem_id="preset"),
        "melody": partial(
            gr.Audio,
            sources=["upload", "microphone"],
            type="filepath",
            label="Hum a melody, or upload a song to restyle (optional)",
            elem_id="melody",
        ),
        "melody_cleanup": partial(
            gr.Checkbox,
            value=p["melody_cleanup"].default,
            label="Tidy my hum: snap its notes to its key and to 1/8 notes",
            elem_id="melody-cleanup",
        ),
        "duration": partial(_slider, p["duration"], step=1, label="Duration (s)", elem_id="duration"),
        "seed": partial(
            gr.Number, value=p["seed"].default, precision=0, label="Seed (-1 or empty = random)", elem_id="seed"
        ),
        "temperature": partial(_slider, p["temperature"], step=0.05, label="Temperature"),
        "top_k": partial(_slider, p["top_k"], step=1, label="Top-k (0 = off)"),
        "top_p": partial(_slider, p["top_p"], step=0.01, label="Top-p (0 = off)"),
        "guidance": partial(_slider, p["guidance"], step=0.5, label="Classifier-free guidance"),
        "stems": partial(
            gr.Checkbox,
            value=p["stems"].default,
            label="Split into stems: drums, bass, other, vocals (takes longer)",
            elem_id="stems",
        ),
        "formats": partial(
            gr.CheckboxGroup,
            list(p["formats"].choices),
            value=[p["formats"].default],
            label="Formats (24-bit WAV is always included)",
            elem_id="formats",
        ),
        "sample_rate": partial(
            gr.Dropdown, RATE_CHOICES, value=p["sample_rate"].default, label="Sample rate", elem_id="sample-rate"
        ),
        "loudness": partial(
            gr.Dropdown, LOUDNESS_CHOICES, value=p["loudness"].default, label="Loudness", elem_id="loudness"
        ),
        "negative_prompt": partial(
            gr.Textbox,
            value=p["negative_prompt"].default,
            lines=1,
            label="Negative prompt: what to steer away from (vocals, distortion)",
            elem_id="negative-prompt",
        ),
        "variations": partial(_slider, p["variations"], step=1, label="Takes", elem_id="takes"),
        "bpm": partial(gr.Number, value=p["bpm"].default, label="BPM (empty = as generated)", elem_id="bpm"),
        "loop": partial(
            gr.Checkbox,
            value=p["loop"].default,
            label="Loop: cut into whole bars that repeat without a click",
            elem_id="loop",
        ),
        "bars": partial(gr.Dropdown, BARS_CHOICES, value=p["bars"].default, label="Bars", elem_id="bars"),
        "model": partial(gr.Dropdown, value=p["model"].default, label="Model", elem_id="model"),
        # On the page the track to extend is whatever the main player shows: the latest result, a pick or a take.
        "seconds": partial(_slider, p["seconds"], step=1, label="Seconds to add", elem_id="extend-seconds"),
        # A section of the same track to replace: two numbers, moved to the nearest downbeats when it has a beat
        "start": partial(gr.Number, value=None, label="Replace from (s)", minimum=0, elem_id="replace-start"),
        "end": partial(gr.Number, value=None, label="to (s)", minimum=0, elem_id="replace-end"),
        "candidates": partial(_slider, p["candidates"], step=1, label="Candidates", elem_id="replace-candidates"),
        "key": partial(
            gr.Dropdown,
            KEY_CHOICES,
            value=p["key"].default,
            allow_custom_value=True,  # "Bb minor", "a min" and the other spellings the studio reads
            label="Key (empty = as generated)",
            elem_id="key",
        ),
        # A song in sections: a row per section, its length in bars (at the BPM above) or in seconds
        "sections": partial(
            gr.Dataframe,
            value=FORMS[FIRST_FORM],
            headers=list(SECTION_COLUMNS),
            datatype=["str", "number", "number"],
            type="array",
            column_count=len(SECTION_COLUMNS),  # rows come and go with the buttons below, up to MAX_SECTIONS
            interactive=True,
            label="Sections: what each sounds like, and bars or seconds",
            elem_id="sections",
        ),
    }


def _slider(parameter: Parameter, maximum: float | None = None, **options: Any) -> gr.Slider:
    """A slider over the parameter's range (or up to the server's ``maximum``), starting at its default."""
    return gr.Slider(parameter.minimum, maximum or parameter.maximum, value=parameter.default, **options)


WIDGETS = _widgets()

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

    values: dict[str, gr.Component]  # by API parameter name, in /generate's order
    preset_info: gr.Markdown
    generate: gr.Button
    stop: gr.Button
    midi_melody: gr.File | None = None  # a .mid given on the page is the melody (the recorder takes only audio)
    compose: ComposeArea | None = None  # the table of sections and its Compose button


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
class TranscribeArea:
    """Notes as MIDI: a recording (or, left empty, the track the player shows) in; its .mid, a piano roll and the
    notes in words out, as ``/transcribe`` gives them."""

    recording: gr.Audio
    transcribe: gr.Button
    midi: gr.File
    piano_roll: gr.Image
    words: gr.Textbox

    @property
    def outputs(self) -> list[gr.Component]:
        """What ``transcribe_on_page`` fills, in its order."""
        return [self.midi, self.piano_roll, self.words]


TRANSCRIBE_HELP = (
    "Turn the track above, or a recording of your own, into a MIDI file to finish in a DAW: a hum becomes its "
    "melody; a song its lead, bass, chords and drums at its measured tempo."
)
NOTHING_TO_TRANSCRIBE = (
    "Nothing to transcribe: make a track (or pick one of this tab's results), or upload or record a recording "
    "under 'Notes as MIDI', then press Transcribe to MIDI."
)


def transcribe_area() -> TranscribeArea:
    """The recording to transcribe (optional), the button, and the .mid, piano roll and notes it gives."""
    with gr.Accordion("Notes as MIDI: transcribe this track or a recording", open=False, elem_id="transcribe-area"):
        gr.Markdown(TRANSCRIBE_HELP)
        recording = gr.Audio(
            sources=["upload", "microphone"],
            type="filepath",
            label="A recording to transcribe (empty: the track above)",
            elem_id="transcribe-recording",
        )
        transcribe = gr.Button("Transcribe to MIDI", size="sm", elem_id="transcribe")
        midi = gr.File(label="MIDI file (.mid)", interactive=False, elem_id="transcribe-midi")
        piano_roll = gr.Image(
            label="Piano roll: the notes heard", type="numpy", interactive=False, visible=False, elem_id="piano-roll"
        )
        words = gr.Textbox(label="The notes in words", lines=4, interactive=False, elem_id="transcribe-notes")
    return TranscribeArea(recording, transcribe, midi, piano_roll, words)


def transcribe_on_page(
    transcribe: Callable[..., tuple[list[str], Any, str]], recording: str | None, track: str | None
) -> tuple[Any, ...]:
    """The notes of ``recording``, or of the ``track`` the player shows when there is none, through
    ``transcribe`` (the ``/transcribe`` endpoint's function): the .mid, the piano roll and the notes in words."""
    path = recording or track
    if not path:
        raise gr.Error(NOTHING_TO_TRANSCRIBE)
    files, picture, words = transcribe(recording=path)
    return files[0], gr.update(value=picture, visible=True), words


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
    replace: gr.Button  # replaces a section of the track the player shows; its candidates fill the takes row
    replace_start: gr.Number
    replace_end: gr.Number
    candidates: gr.Slider
    transcribe: TranscribeArea | None = None  # notes as MIDI, of the track the player shows or of a recording

    @property
    def player(self) -> gr.Component:
        return self.panels[0]

    @property
    def result(self) -> list[gr.Component]:
        """What ``shown`` fills, in its order: the panels and the loop preview."""
        return [*self.panels, self.loop_preview]


def inputs_column(studio: Studio) -> PageInputs:
    """Mood, style, melody, length, seed and takes; tempo, advanced and export settings folded away; the buttons."""
    widgets: dict[str, gr.Component] = {}

    def place(name: str, **server_values: Any) -> None:
        widgets[name] = WIDGETS[name](**server_values)

    with gr.Column(scale=1):
        place("prompt")
        place("preset", choices=studio.presets.choices(include_none=True))
        preset_info = gr.Markdown(elem_id="preset-info")
        # With one model there is nothing to pick: the input still exists, for the request, but is not shown
        place("model", choices=studio.models.choices(), visible=len(studio.models.names) > 1)
        place("melody")
        midi_melody = gr.File(
            label="Or a MIDI file as the melody (.mid)", file_types=[".mid", ".midi"], elem_id="midi-melody"
        )
        place("melody_cleanup")
        gr.Markdown(MELODY_HELP)
        place("duration", maximum=studio.max_duration)
        place("key")
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
        compose = compose_area()
    values = {p.name: widgets[p.name] for p in GENERATE_PARAMETERS}
    return PageInputs(values, preset_info, generate, stop, midi_melody, compose=compose)


@dataclass(frozen=True)
class ComposeArea:
    """Compose in sections: the table, a form to start from, a row more or less, and the Compose button."""

    table: gr.Dataframe
    form: gr.Dropdown
    add_row: gr.Button
    remove_row: gr.Button
    compose: gr.Button
    area: gr.Accordion  # folded until a creator opens it, or opens a kept track in it


def compose_area() -> ComposeArea:
    """A song in sections, each continuing the one before; it takes the key, tempo and settings above."""
    with gr.Accordion("Compose a song in sections", open=False, elem_id="compose-area") as area:
        gr.Markdown(COMPOSE_HELP)
        form = gr.Dropdown(list(FORMS), value=FIRST_FORM, label="Start from a form", elem_id="compose-form")
        table = WIDGETS["sections"]()
        with gr.Row():
            add_row = gr.Button("Add a section", size="sm", elem_id="add-section")
            remove_row = gr.Button("Remove the last", size="sm", elem_id="remove-section")
            compose = gr.Button("Compose", variant="primary", elem_id="compose")
    return ComposeArea(table, form, add_row, remove_row, compose, area)


COMPOSE_HELP = (
    "Each section continues the one before with its own words; a section lasts 1 to 30 s. Give its length in "
    "**bars** (at the BPM under *Tempo and loop*) or in **seconds**. The key, seed and settings above apply to all; "
    "the WAV carries a marker per section."
)


def sections_from_table(rows: Any) -> list[dict[str, Any]]:
    """The table's rows as the sections a compose request takes; empty rows are left out, empty cells unsaid."""
    sections = []
    for row in rows or []:
        cells = dict(zip(SECTION_COLUMNS, [*row, None, None, None][: len(SECTION_COLUMNS)], strict=True))
        prompt = str(cells["prompt"] or "").strip()
        lengths = {name: _number(cells[name]) for name in ("bars", "seconds")}
        if not prompt and all(value is None for value in lengths.values()):
            continue
        sections.append({"prompt": prompt, **{name: value for name, value in lengths.items() if value is not None}})
    return sections


def add_section(rows: Any) -> list[list[Any]]:
    """The table with one more row, to fill in."""
    return [*(rows or []), ["", None, None]][:MAX_SECTIONS]


def remove_section(rows: Any) -> list[list[Any]]:
    """The table without its last row (one is always left)."""
    rows = list(rows or [])
    return rows[:-1] if len(rows) > 1 else rows


def form_rows(form: str) -> list[list[Any]]:
    """The rows of a common form, to start from."""
    return [list(row) for row in FORMS.get(form, FORMS[FIRST_FORM])]


def _number(value: Any) -> Any:
    """A table cell as a number, or None when empty; text that is not a number is passed on to be refused."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    if isinstance(value, float) and value != value:  # NaN: an empty cell in a numeric column
        return None
    return int(value) if isinstance(value, float) and value.is_integer() else value


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


def results_column() -> ResultPanels:
    """The preview, the track and its takes, downloads, summary, pictures; extend, reuse or transcribe it;
    history, recipe."""
    with gr.Column(scale=1):
        stream_player = PreviewPlayer(  # its stream reaches the page only with audio in it
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
        extend_seconds = WIDGETS["seconds"]()
        with gr.Row(equal_height=True):
            replace_start, replace_end = WIDGETS["start"](), WIDGETS["end"]()
            candidates = WIDGETS["candidates"]()
            replace = gr.Button("Replace", size="sm", elem_id="replace")
        transcribe = transcribe_area()
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
        stream_player,
        panels,
        loop_preview,
        takes,
        use_as_melody,
        extend,
        extend_seconds,
        history,
        history_pick,
        status,
        replace,
        replace_start,
        replace_end,
        candidates,
        transcribe,
    )

