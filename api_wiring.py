"""The API's side of the Blocks: a hidden input per parameter, a trigger per endpoint, and the functions behind them.

Everything comes from the table in ``generation/endpoints.py``: an endpoint's public names, order and defaults are
its parameters'; a ``TRACK`` endpoint runs through the ``TrackRunner`` and answers with the result panels, a
``LISTING`` endpoint answers with its ``call``'s data. ``wire_api`` adds every endpoint of ``ENDPOINTS``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr

from api_components import FormatsParameter, MelodyParameter, TextParameter, TrackParameter
from generation.endpoints import (
    AUDIO,
    ENDPOINTS,
    EVERY_PARAMETER,
    FILES,
    FLAG,
    FORMATS_LIST,
    INTEGER,
    LISTING,
    NUMBER,
    TEXT,
    TRACK,
    Endpoint,
    Parameter,
    Parameters,
    request_from,
)
from generation.errors import MoodtapeError
from generation.studio import Studio
from runner import RESULT_COUNT, Finished, InProgress, TrackRunner

# Each parameter's hidden input, made with value=None ("the preset's or the default") and label=name: by kind, or
# by name where the refusal of a bad file names what the file is for.
HIDDEN_BY_KIND: dict[str, Callable[..., gr.Component]] = {
    TEXT: TextParameter,
    NUMBER: gr.Number,
    INTEGER: gr.Number,
    FLAG: gr.Checkbox,
    FORMATS_LIST: FormatsParameter,
    AUDIO: partial(gr.Audio, type="filepath"),
}
HIDDEN_BY_NAME: dict[str, Callable[..., gr.Component]] = {
    "melody": partial(MelodyParameter, type="filepath"),
    "audio": partial(TrackParameter, type="filepath"),
}


def hidden_input(parameter: Parameter) -> gr.Component:
    """The API's hidden input for ``parameter``."""
    make = HIDDEN_BY_NAME.get(parameter.name) or HIDDEN_BY_KIND[parameter.kind]
    return make(value=None, label=parameter.name)


@dataclass(frozen=True)
class ApiInputs:
    """The API's hidden inputs, its triggers and /generate_stream's piece."""

    values: dict[str, gr.Component]  # by parameter name; endpoints share the inputs of the parameters they share
    triggers: dict[str, gr.Button]  # by TRACK endpoint name
    stream_piece: gr.File

    def inputs(self, parameters: Parameters) -> list[gr.Component]:
        """An endpoint's hidden inputs, in its parameters' order."""
        return [self.values[p.name] for p in parameters]


def api_inputs() -> ApiInputs:
    """Hidden twins of the inputs for API clients: a value left out means "use the preset's or the default"."""
    with gr.Column(visible=False):
        return ApiInputs(
            values={name: hidden_input(p) for name, p in EVERY_PARAMETER.items()},
            triggers={e.name: gr.Button(f"{e.name} (API)") for e in ENDPOINTS if e.answers == TRACK},
            stream_piece=gr.File(label="audio piece"),
        )


def wire_api(
    studio: Studio, runner: TrackRunner, api: ApiInputs, panels: Sequence[gr.Component], **run_settings: Any
) -> list[Any]:
    """Every endpoint of the table, in its order; returns the TRACK endpoints' events (Stop cancels them)."""
    events = []
    for endpoint in ENDPOINTS:
        if endpoint.answers == LISTING:
            gr.api(listing_endpoint(studio, endpoint, runner), api_name=endpoint.name)
            continue
        if endpoint.answers == FILES:
            with gr.Column(visible=False):
                trigger = gr.Button(f"{endpoint.name} (API)")
                delivered = [gr.File(label="files", file_count="multiple"), gr.Image(label="picture"), gr.Textbox()]
            trigger.click(files_endpoint(studio, endpoint), api.inputs(endpoint.parameters), delivered,
                          api_name=endpoint.name)  # fmt: skip
            continue
        outputs = [api.stream_piece, *panels] if endpoint.streams else list(panels)
        function = track_endpoint(runner, endpoint)
        trigger = api.triggers[endpoint.name]
        events.append(
            trigger.click(function, api.inputs(endpoint.parameters), outputs, api_name=endpoint.name, **run_settings)
        )
    return events


def endpoint_signature(parameters: Parameters) -> inspect.Signature:
    """An API function's signature: Gradio reads the public parameter names and defaults from it."""
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    named = [
        inspect.Parameter(p.name, kind, default=inspect.Parameter.empty if p.required else None) for p in parameters
    ]
    progress = inspect.Parameter("progress", kind, default=gr.Progress())  # Gradio fills this slot itself
    return inspect.Signature([*named, progress])


# -- From the runner's updates to each endpoint's outputs ----------------------------------------------------------


def track_endpoint(runner: TrackRunner, endpoint: Endpoint) -> Callable[..., Iterator[tuple[Any, ...]]]:
    """An API function that takes the endpoint's parameters by name and yields its outputs."""
    signature = endpoint_signature(endpoint.parameters)
    stream_to = "files" if endpoint.streams else None

    def function(*args: Any, **kwargs: Any) -> Iterator[tuple[Any, ...]]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = bound.arguments
        request = request_from(endpoint.parameters, values, endpoint.request_type)
        for update in runner.run(request, values["progress"], stream_to=stream_to):
            yield api_outputs(update, streaming=endpoint.streams)

    return _named(function, endpoint, signature)


def api_outputs(update: InProgress | Finished, *, streaming: bool) -> tuple[Any, ...]:
    """One update as an API endpoint's outputs; ``/generate_stream`` has an audio piece before the results."""
    if isinstance(update, Finished):
        results = update.results.outputs()
        return (None, *results) if streaming else results
    if streaming:  # API clients read a skip as an update dict: they get None in slots with nothing new
        return (update.piece, *(None,) * RESULT_COUNT)
    return (gr.skip(),) * RESULT_COUNT


def files_endpoint(studio: Studio, endpoint: Endpoint) -> Callable[..., tuple[list[str], Any, str]]:
    """A FILES endpoint: its files, picture and words; bad input becomes a ``gr.Error`` naming it."""
    signature = endpoint_signature(endpoint.parameters)

    def function(*args: Any, **kwargs: Any) -> tuple[list[str], Any, str]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        try:
            delivered = endpoint.call(studio, bound.arguments)
        except (MoodtapeError, OSError) as e:
            raise gr.Error(str(e)) from e
        return [str(path) for path in delivered.files], delivered.picture, delivered.words

    return _named(function, endpoint, signature)


_PYTHON_TYPES = {TEXT: str, NUMBER: float, INTEGER: int, FLAG: bool, FORMATS_LIST: str, AUDIO: str}


def listing_endpoint(studio: Studio, endpoint: Endpoint, runner: TrackRunner) -> Callable[..., list[dict]]:
    """A LISTING endpoint as a ``gr.api`` function: Gradio reads its parameters' types from the signature.

    It answers for the caller: ``runner.owner()`` says whose library a /library call reads.
    """
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    signature = inspect.Signature(
        [
            inspect.Parameter(
                p.name,
                kind,
                default=inspect.Parameter.empty if p.required else None,
                annotation=_PYTHON_TYPES[p.kind] if p.required else _PYTHON_TYPES[p.kind] | None,
            )
            for p in endpoint.parameters
        ],
        return_annotation=Any,  # the API describes these answers as Any (JSON of any shape)
    )

    def function(*args: Any, **kwargs: Any) -> list[dict]:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return endpoint.call(studio, bound.arguments, runner.owner())

    annotations = {name: p.annotation for name, p in signature.parameters.items()}
    function.__annotations__ = {**annotations, "return": Any}
    return _named(function, endpoint, signature)


def _named(function: Callable[..., Any], endpoint: Endpoint, signature: inspect.Signature) -> Callable[..., Any]:
    function.__signature__ = signature  # type: ignore[attr-defined]
    function.__name__ = function.__qualname__ = endpoint.name
    function.__doc__ = endpoint.doc
    return function
