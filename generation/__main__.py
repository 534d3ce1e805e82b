"""Command line: ``python -m generation "rainy night, mellow piano" -o out.wav``."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from pathlib import Path

from . import MoodtapeError, MusicGenEngine, ServerConfig, Studio, TrackRequest
from .model.types import MELODY
from .recipe import Recipe


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m generation",
        description="Make music from a text prompt with MusicGen. Writes a 24-bit WAV and a recipe JSON beside it.",
    )
    parser.add_argument("prompt", nargs="?", default="", help="the mood or style in words")
    parser.add_argument("-o", "--output", type=Path, default=Path("moodtape.wav"), help="WAV file to write")
    parser.add_argument("--preset", help="style preset id (see --list-presets)")
    parser.add_argument("--melody", help="a hum or song to follow (any common audio format); uses MusicGen-Melody")
    parser.add_argument("--duration", type=float, help="seconds of audio (default 10, or the preset's)")
    parser.add_argument("--seed", type=int, help="random seed; omit or -1 for a random one")
    parser.add_argument("--temperature", type=float, help="sampling temperature (default 1.0)")
    parser.add_argument("--top-k", type=int, help="top-k sampling, 0 = off (default 250)")
    parser.add_argument("--top-p", type=float, help="top-p sampling, 0 = off (default 0)")
    parser.add_argument("--guidance", type=float, help="classifier-free guidance scale (default 3.0)")
    parser.add_argument("--model", help="hub id or local folder (default: $MUSICGEN_MODEL or facebook/musicgen-small)")
    parser.add_argument(
        "--melody-model",
        help="hub id or local folder (default: $MUSICGEN_MELODY_MODEL or facebook/musicgen-melody)",
    )
    parser.add_argument("--recipe", type=Path, help="reproduce the track described by a recipe JSON file")
    parser.add_argument("--list-presets", action="store_true", help="print the preset ids and exit")
    return parser


def request_from_args(args: argparse.Namespace) -> tuple[TrackRequest, str | None, str | None]:
    """Turn parsed arguments into a request and the text and melody model ids; a recipe supplies them when given."""
    if args.recipe is None:
        names = ("prompt", "preset", "melody", "duration", "seed", "temperature", "top_k", "top_p")
        request = TrackRequest(guidance_scale=args.guidance, **{name: getattr(args, name) for name in names})
        return request, args.model, args.melody_model
    recipe = Recipe.load(args.recipe)
    if recipe.melody and not args.melody:
        raise MoodtapeError(
            f"This recipe followed the melody '{recipe.melody['file']}': pass that file with --melody to reproduce it."
        )
    # The command line runs the recipe's own model (or the one given) as its text or melody model
    request = replace(TrackRequest.from_recipe(recipe, melody=args.melody), model=None)
    if recipe.melody:
        return request, args.model, args.melody_model or recipe.model_id
    return request, args.model or recipe.model_id, args.melody_model


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        config = ServerConfig.from_env()
        request, text_model, melody_model = request_from_args(args)
        fast = None if request.mode is None else request.mode == "fast"  # a recipe replays in its own mode
        studio = Studio(
            MusicGenEngine(text_model, fast=fast, config=config),
            melody_engine=MusicGenEngine(melody_model, family=MELODY, fast=fast, config=config),
            config=config,
        )
        if args.list_presets:
            for preset in studio.presets.all():
                print(f"{preset.id:24} {preset.description}")
            return 0
        if args.output.suffix.lower() != ".wav":
            raise MoodtapeError(f"The output file must end in .wav, got '{args.output}'.")

        def show_progress(done: int, total: int) -> None:
            print(f"\rGenerating: step {done}/{total}", end="", file=sys.stderr, flush=True)

        track = studio.make_track(request, on_progress=show_progress, destination=args.output)
    except MoodtapeError as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 2
    print(file=sys.stderr)
    print(track.summary())
    print(f"Wrote {track.wav_path} and {track.recipe_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
