"""Command line: ``python -m generation generate "rainy night, mellow piano" -o out.wav``; the Studio runs in-process.

A subcommand per endpoint of ``generation/endpoints.py`` (``generate``, ``extend``, ``presets``, ``models``, and
any endpoint added there), an option per parameter with the API's name (``top_k`` is ``--top-k``; a required one
is positional). ``python -m generation "prompt" -o out.wav`` is short for ``generate``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import EngineSpec, MoodtapeError, MusicGenEngine, ServerConfig, Studio, TrackRequest
from .editing.compose import ComposeRequest
from .editing.replace import ReplaceRequest
from .endpoints import (
    AUDIO,
    ENDPOINTS,
    FILES,
    FLAG,
    FORMATS_LIST,
    INTEGER,
    LISTING,
    NUMBER,
    TEXT,
    Endpoint,
    request_from,
)
from .library import LOCAL_OWNER
from .model.types import MELODY
from .recipe import Recipe

PROG = "python -m generation"
CLI_TYPES = {TEXT: str, NUMBER: float, INTEGER: int, AUDIO: str, FORMATS_LIST: str}  # FLAG: --x / --no-x
DEFAULT_OUTPUT = Path("moodtape.wav")
METAVARS = {AUDIO: "FILE", FORMATS_LIST: "FORMATS", NUMBER: "N", INTEGER: "N", TEXT: "TEXT"}


def commands() -> dict[str, Endpoint]:
    """The endpoint each subcommand runs: the first one that names it (``generate_stream`` shares ``generate``)."""
    found: dict[str, Endpoint] = {}
    for endpoint in ENDPOINTS:
        if endpoint.subcommand is not None:
            found.setdefault(endpoint.subcommand, endpoint)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Make music from a text prompt with MusicGen, in this process (no server). A track command writes a "
            f"24-bit WAV and a recipe JSON beside it. '{PROG} \"prompt\" -o out.wav' is short for 'generate'."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, endpoint in commands().items():
        sub = subparsers.add_parser(name, help=endpoint.doc, description=endpoint.doc)
        for parameter in endpoint.parameters:
            _add_option(sub, parameter)
        if endpoint.answers == FILES:
            sub.add_argument("-o", "--output", type=Path, default=Path("."), help="folder to write the files to")
        elif endpoint.answers != LISTING:
            _add_track_options(sub)
    return parser


def _add_option(parser: argparse.ArgumentParser, parameter: Any) -> None:
    """The parameter's option, named as the API names it; a required one is positional (a required text or number
    may be left out: /generate's prompt may be empty with a melody, a replace's section comes from --recipe)."""
    options: dict[str, Any] = {"help": parameter.help}
    if parameter.kind == FLAG:
        options["action"] = argparse.BooleanOptionalAction
    else:
        options["type"] = CLI_TYPES[parameter.kind]
        options["metavar"] = METAVARS[parameter.kind]
        if parameter.choices and parameter.kind != FORMATS_LIST:
            options["choices"] = parameter.choices
            options["metavar"] = "{" + ",".join(str(c) for c in parameter.choices) + "}"
    if parameter.required and parameter.kind != FLAG:
        if parameter.kind == TEXT:
            options.update(nargs="?", default="")
        elif parameter.kind in (NUMBER, INTEGER):  # may be left out with --recipe; the request check names it
            options.update(nargs="?", default=None)
        parser.add_argument(parameter.name, **{**options, "metavar": parameter.name.upper()})
    else:
        parser.add_argument("--" + parameter.name.replace("_", "-"), dest=parameter.name, **options)


def _add_track_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o", "--output", type=Path, default=DEFAULT_OUTPUT, help=f"WAV file to write (default {DEFAULT_OUTPUT})"
    )
    parser.add_argument(
        "--recipe", type=Path, help="make the track a recipe JSON describes again (its settings and seed)"
    )
    parser.add_argument(
        "--text-model", help="hub id or local folder (default: $MUSICGEN_MODEL or facebook/musicgen-small)"
    )
    parser.add_argument(
        "--melody-model", help="hub id or local folder (default: $MUSICGEN_MELODY_MODEL or facebook/musicgen-melody)"
    )


def shorthand(argv: list[str]) -> list[str]:
    """``"prompt" -o out.wav`` (no command) means ``generate``; ``--list-presets`` means ``presets``."""
    if argv == ["--list-presets"]:
        return ["presets"]
    if argv and (argv[0] in commands() or argv[0] in ("-h", "--help")):
        return argv
    return ["generate", *argv]


def track_request(endpoint: Endpoint, args: argparse.Namespace) -> tuple[Any, str | None, str | None]:
    """The request and the text and melody model ids to run it on; a recipe supplies them when given: a composed
    song's recipe composes it again, a replace's replaces the same section of the file given again."""
    values = vars(args)
    if args.recipe is None:
        return request_from(endpoint.parameters, values, endpoint.request_type), args.text_model, args.melody_model
    recipe = Recipe.load(args.recipe)
    if recipe.sections or recipe.replace:
        if recipe.sections:
            edit = ComposeRequest.from_recipe(recipe)
        elif values.get("audio"):
            edit = ReplaceRequest.from_recipe(recipe, values["audio"])
        else:
            raise MoodtapeError(
                f"This recipe replaced a section of '{recipe.replace['file']}': pass that file, "
                f"'{PROG} replace FILE --recipe {args.recipe}'."
            )
        # The recipe's model runs as the Studio's melody model where it was that, else as its text model
        if recipe.model_name == "melody":
            return replace(edit, model="melody"), args.text_model, args.melody_model or recipe.model_id
        return replace(edit, model=None), args.text_model or recipe.model_id, args.melody_model
    melody = values.get("melody")
    if recipe.melody and not melody:
        raise MoodtapeError(
            f"This recipe followed the melody '{recipe.melody['file']}': pass that file with --melody to reproduce it."
        )
    # The recipe's own model (or the one given) runs as the text or melody model
    request = replace(TrackRequest.from_recipe(recipe, melody=melody, extend=values.get("audio")), model=None)
    if recipe.melody:
        return request, args.text_model, args.melody_model or recipe.model_id
    return request, args.text_model or recipe.model_id, args.melody_model


def make_studio(text_model: str | None = None, melody_model: str | None = None, mode: str | None = None) -> Studio:
    """A Studio with a text and a melody model (hub ids or folders; None: the settings'), loaded on first use.

    A recipe replays in its own ``mode`` ("exact" or "fast").
    """
    config = ServerConfig.from_env()
    fast = None if mode is None else mode == "fast"
    return Studio(
        MusicGenEngine(EngineSpec(model_id=text_model, fast=fast), config=config),
        melody_engine=MusicGenEngine(EngineSpec(model_id=melody_model, family=MELODY, fast=fast), config=config),
        config=config,
    )


def run_track(endpoint: Endpoint, args: argparse.Namespace) -> int:
    if args.output.suffix.lower() != ".wav":
        raise MoodtapeError(f"The output file must end in .wav, got '{args.output}'.")
    request, text_model, melody_model = track_request(endpoint, args)
    studio = make_studio(text_model, melody_model, request.mode if isinstance(request, TrackRequest) else None)

    def show_progress(done: int, total: int) -> None:
        print(f"\rGenerating: step {done}/{total}", end="", file=sys.stderr, flush=True)

    track = studio.make_track(request, on_progress=show_progress, destination=args.output)
    print(file=sys.stderr)
    print(track.summary())
    print(f"Wrote {track.wav_path} and {track.recipe_path}")
    return 0


def run_listing(endpoint: Endpoint, values: Mapping[str, Any]) -> int:
    print(json.dumps(endpoint.call(make_studio(), values, LOCAL_OWNER), indent=2, default=str))
    return 0


def run_files(endpoint: Endpoint, values: Mapping[str, Any], output: Path) -> int:
    """A FILES command (transcribe): its files copied into ``output``, its words printed."""
    delivered = endpoint.call(make_studio(), values, LOCAL_OWNER)
    output.mkdir(parents=True, exist_ok=True)
    written = [shutil.copyfile(path, output / path.name) for path in delivered.files]
    print(delivered.words)
    print("Wrote " + ", ".join(str(path) for path in written))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(shorthand(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    endpoint = commands()[args.command]
    try:
        if endpoint.answers == LISTING:
            return run_listing(endpoint, {p.name: getattr(args, p.name) for p in endpoint.parameters})
        if endpoint.answers == FILES:
            return run_files(endpoint, {p.name: getattr(args, p.name) for p in endpoint.parameters}, args.output)
        return run_track(endpoint, args)
    except MoodtapeError as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
