"""Moodtape's Gradio app: the Blocks, their wiring and ``main()`` around ``generation.Studio``; no model code here.

Read from the top: the page's requests (Generate, Enter, Extend) and the API's endpoints, then everything around a
request (presets, history, takes, the models' status), then ``build_app`` and ``main()``. The endpoints and their
parameters are described in ``generation/endpoints.py`` (the command line reads the same table); ``api_wiring.py``
makes the API from it and ``page.py`` holds the page's parts.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import fields
from functools import partial
from typing import Any

import gradio as gr

from api_wiring import ApiInputs, api_inputs, files_endpoint, wire_api
from generation import __version__
from generation.config import ConfigError, ServerConfig
from generation.endpoints import COMPOSE, EXTEND, GENERATE, REPLACE, TRANSCRIBE, Endpoint, Parameters, request_from
from generation.errors import MoodtapeError
from generation.library import Library, library_status
from generation.presets import PresetSettings
from generation.studio import Studio
from library_tab import OwnerRule, guard_kwargs, library_tab, owner_rule_for, wire_library
from page import (
    EXAMPLE_INPUTS,
    EXAMPLE_LABELS,
    EXAMPLES,
    EXAMPLES_DIR,
    INTRO,
    MAX_HISTORY,
    SHOWN_COUNT,
    TAKES_SHOWN_COUNT,
    PageInputs,
    ResultPanels,
    add_section,
    form_rows,
    history_shown,
    inputs_column,
    page_outputs,
    remove_section,
    results_column,
    sections_from_table,
    shown,
    studio_status,
    takes_shown,
    transcribe_on_page,
    use_track_as_melody,
)
from runner import Finished, TrackResults, TrackRunner, quiet_queue

log = logging.getLogger("moodtape.app")

API_NAMES = GENERATE.names  # /generate's (and /generate_stream's) parameters, in order
EXTEND_NAMES = EXTEND.names
DEFAULTS = {p.request_field: p.default for p in GENERATE.parameters}  # what the page's inputs start with
# Picking a preset fills the page's inputs for the settings it sets; one with no input applies when the track is made.
_SET_BY_PRESETS = {f.name for f in fields(PresetSettings)}
PRESET_FIELDS = tuple(p.request_field for p in GENERATE.parameters if p.request_field in _SET_BY_PRESETS)
STATUS_REFRESH_S = 5  # how often the models' status line is refreshed


# -- Wiring --------------------------------------------------------------------------------------------------------


def _wire_generation(
    studio: Studio, inputs: PageInputs, results: ResultPanels, api: ApiInputs, owner_rule: OwnerRule
) -> list[Any]:
    """Generate (button or Enter), extend and replace from the page, and the API's endpoints; Stop cancels any."""
    # One model serves batches of up to max_batch concurrent requests (see generation/model/engine.py); on a cluster
    # the replicas batch and Serve's bounded line answers "busy", so the page sends up to a queue's worth at once.
    at_once = studio.config.max_batch if studio.config.backend == "local" else studio.config.queue_size
    runner = TrackRunner(studio, workers=max(8, at_once), owner_rule=owner_rule)  # it keeps tracks in libraries
    run_settings = {"concurrency_id": "musicgen", "concurrency_limit": at_once}
    # Progress and errors show on the preview player only, not as a badge on every result panel.
    ui_event = {"api_visibility": "private", "show_progress_on": [results.stream_player], **run_settings}
    # Every parameter's input on the page: an extend continues, and a replace edits, whatever the main player shows.
    page = {**inputs.values, "audio": results.player, "seconds": results.extend_seconds}
    page |= {"start": results.replace_start, "end": results.replace_end, "candidates": results.candidates}
    page |= {"sections": inputs.compose.table}  # a song composed from the table of sections

    def run_in_page(
        endpoint: Endpoint, values: dict[gr.Component, Any], progress: gr.Progress
    ) -> Iterator[tuple[Any, ...]]:
        parameters: Parameters = endpoint.parameters
        chosen = {p.name: values[page[p.name]] for p in parameters}
        if "melody" in chosen and values[inputs.midi_melody]:  # a MIDI file given on the page is the melody
            chosen["melody"] = values[inputs.midi_melody]
        request = request_from(parameters, chosen, endpoint.request_type)
        history = values[results.history]
        for update in runner.run(request, progress, stream_to="player"):
            if isinstance(update, Finished):
                history = [update.results, *history][:MAX_HISTORY]
            yield page_outputs(update, history)

    def generate_in_page(
        values: dict[gr.Component, Any],
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects it
    ) -> Iterator[tuple[Any, ...]]:
        yield from run_in_page(GENERATE, values, progress)

    def extend_in_page(
        values: dict[gr.Component, Any],
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects it
    ) -> Iterator[tuple[Any, ...]]:
        if not values[results.player]:
            raise gr.Error("Make a track first (or pick one of this tab's results): then it can be extended.")
        yield from run_in_page(EXTEND, values, progress)

    def replace_in_page(
        values: dict[gr.Component, Any],
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects it
    ) -> Iterator[tuple[Any, ...]]:
        if not values[results.player]:
            raise gr.Error("Make a track first (or pick one of this tab's results): then a section can be replaced.")
        yield from run_in_page(REPLACE, values, progress)

    def compose_in_page(
        values: dict[gr.Component, Any],
        progress: gr.Progress = gr.Progress(),  # noqa: B008 - Gradio injects it
    ) -> Iterator[tuple[Any, ...]]:
        table = inputs.compose.table
        yield from run_in_page(COMPOSE, {**values, table: sections_from_table(values[table])}, progress)

    page_in = {*page.values(), results.history, inputs.midi_melody}  # a set: the handler gets the values by component
    page_out = [results.stream_player, *results.result, *results.takes.outputs, results.history, results.history_pick]
    click = inputs.generate.click(generate_in_page, page_in, page_out, api_name="ui_generate_click", **ui_event)
    submit = inputs.values["prompt"].submit(
        generate_in_page, page_in, page_out, api_name="ui_generate_submit", **ui_event
    )
    extend = results.extend.click(extend_in_page, page_in, page_out, api_name="ui_extend_click", **ui_event)
    replace = results.replace.click(replace_in_page, page_in, page_out, api_name="ui_replace_click", **ui_event)
    compose = inputs.compose.compose.click(
        compose_in_page, page_in, page_out, api_name="ui_compose_click", **ui_event
    )
    api_events = wire_api(studio, runner, api, results.panels, **run_settings)
    inputs.stop.click(None, cancels=[click, submit, extend, replace, compose, *api_events])
    return [click, submit, extend, replace, compose]


def _wire_helpers(
    demo: gr.Blocks, studio: Studio, inputs: PageInputs, results: ResultPanels, requests: list[Any]
) -> None:
    """Everything around a request: presets fill the settings, history and takes, melody from a track, status."""

    def fill_from_preset(preset_id: str | None) -> tuple[Any, ...]:
        try:
            preset = studio.presets.find(preset_id)
        except MoodtapeError as e:
            raise gr.Error(str(e)) from e
        if preset is None:
            return ("", *(gr.skip(),) * len(PRESET_FIELDS), gr.update(placeholder=""))
        merged = {**DEFAULTS, **preset.settings_dict()}
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

    library_line = library_status(studio.track_library, studio.config)  # where it is, or why there is none

    def model_status() -> str:
        return f"{studio_status(studio)} · {library_line} · Moodtape {__version__}"

    widgets = inputs.values
    by_field = {p.request_field: widgets[p.name] for p in GENERATE.parameters}
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
    notes = results.transcribe  # notes as MIDI: of the recording given there, else of the track the player shows
    transcribe = partial(transcribe_on_page, files_endpoint(studio, TRANSCRIBE))
    notes.transcribe.click(transcribe, [notes.recording, results.player], notes.outputs, api_visibility="private")
    table = inputs.compose.table  # compose: start from a form, add or remove a section
    inputs.compose.form.input(form_rows, inputs.compose.form, table, api_visibility="private")
    inputs.compose.add_row.click(add_section, table, table, api_visibility="private")
    inputs.compose.remove_row.click(remove_section, table, table, api_visibility="private")
    # The models load and unload with requests from any tab or client: the line follows them after each of this
    # tab's requests and on a timer (one short string; each tick costs about as much as a page's ping).
    status = {"fn": model_status, "outputs": results.status, "api_visibility": "private", "show_progress": "hidden"}
    demo.load(**status)
    for request in requests:
        request.then(**status)
    gr.Timer(STATUS_REFRESH_S).tick(**status)


def build_app(studio: Studio | None = None, owner_rule: OwnerRule | None = None) -> gr.Blocks:
    """Build the Blocks: the page (Create and Library tabs) and the API: /generate, /generate_stream, /extend,
    /replace, /presets, /models, /library, /library_delete.

    ``owner_rule`` says whose library a request reads and fills: by default the signed-in Hugging Face user on a
    Space (anonymous visitors have none) and one local owner elsewhere (see ``library_tab.py``).
    """
    studio = studio or Studio()
    owner_rule = owner_rule or owner_rule_for(studio.config)
    with gr.Blocks(title="Moodtape: text to music") as demo:
        gr.Markdown(INTRO)
        if studio.config.space_id and studio.track_library is not None:
            gr.LoginButton()  # Hugging Face sign-in: each signed-in person has a library of their own
        with gr.Tabs() as tabs:
            with gr.Tab("Create", id="create"):
                with gr.Row():
                    inputs = inputs_column(studio)
                    results = results_column()
                example_inputs = [inputs.values[name] for name in EXAMPLE_INPUTS]
                gr.Examples(examples=EXAMPLES, inputs=example_inputs, label="Try one", example_labels=EXAMPLE_LABELS)
            with gr.Tab("Library", id="library"):
                library = library_tab(studio)
        api = api_inputs()
        requests = _wire_generation(studio, inputs, results, api, owner_rule)
        _wire_helpers(demo, studio, inputs, results, requests)
        wire_library(
            demo, studio, owner_rule, library, tabs=tabs, create_tab="create", player=results.player,
            melody=inputs.values["melody"], compose=inputs.compose,
            song=[inputs.values[name] for name in ("seed", "bpm", "key")], requests=requests,
        )  # fmt: skip
    return demo


# -- Start-up ------------------------------------------------------------------------------------------------------


def main(owner_rule: OwnerRule | None = None) -> None:
    """Start the app: settings first (a bad one stops here), the library (checked against its files, rebuilt if
    its database is lost or damaged), then the page at once, the model in the background.

    ``owner_rule`` replaces the default (Hugging Face sign-in on a Space, one local owner elsewhere).
    """
    try:
        config = ServerConfig.from_env()
    except ConfigError as e:
        print(f"Moodtape cannot start: {e}", file=sys.stderr)
        raise SystemExit(2) from e
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    library, library_line = Library.from_config(config)
    log.info("%s", library_line)
    studio = Studio(config=config, track_library=library)
    for problem in studio.presets.problems:
        log.warning("Skipped preset: %s", problem)
    threading.Thread(target=_preload, args=(studio,), name="moodtape-preload", daemon=True).start()
    studio.store.start()  # removes old results in the background, never ones younger than the keep time
    owner_rule = owner_rule or owner_rule_for(config)
    demo = build_app(studio, owner_rule)
    demo.queue(max_size=config.queue_size)
    quiet_queue(demo)  # Gradio's queue polls every 1 ms: it would take time from the model
    guarded = guard_kwargs(studio, owner_rule)  # the library's files, to their owner only
    demo.launch(
        max_file_size=config.max_file_size,
        server_name=config.server_name,
        server_port=config.server_port,
        allowed_paths=[str(studio.output_dir), str(EXAMPLES_DIR), *guarded.get("allowed_paths", [])],
        app_kwargs=guarded.get("app_kwargs"),
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
