"""A long track against the same seconds made as six separate clips, in fast mode, side by side in one run.

Builds a randomly initialised musicgen-small of the exact size (as ``benchmarks.bench``: speed does not depend
on the weights' values), then, ``--repeats`` times, interleaved: six clips of ``--seconds / 6`` and one track of
``--seconds`` (by default 60 s: windows of 30 s, each later one continuing the last 12 s). Each figure is the best
of its runs, the ratio is long over clips, and the CPU is named beside them: absolute seconds on a shared 2-core
machine vary from run to run, the ratio measured side by side much less.

``--variant WINDOW:STRIDE`` (repeatable) adds engines with other windows and strides on the same int8 weights,
measured in the same interleaved rounds, to weigh a setting against today's.

Run ``python -m benchmarks.long_tracks`` (about 5 minutes a round on 2 cores); ``--seconds 20 --repeats 1``
for a quick look; ``--tiny`` checks it runs, in seconds (the test suite does).
"""

from __future__ import annotations

import argparse
import os
import platform
from dataclasses import dataclass

import torch

from benchmarks.bench import PROMPT, build, cpu_flags, cpu_name
from generation.model.engine import MusicGenEngine
from generation.model.model_thread import on_model_thread
from generation.model.spec import EXTEND_STRIDE_SECONDS, WINDOW_SECONDS, EngineSpec
from generation.settings import GenerationSettings

CLIPS = 6  # the long track is measured against this many clips of its length over six


@dataclass(frozen=True)
class Setting:
    """One long-form setting: a window and the new seconds each later window makes."""

    window: float
    stride: float

    @property
    def name(self) -> str:
        return f"{self.window:g} s windows, {self.window - self.stride:g} s of context"

    @classmethod
    def parse(cls, text: str) -> Setting:
        """``"30:18"`` as a window of 30 s and a stride of 18 s; a ValueError naming ``text`` otherwise."""
        try:
            window, stride = (float(part) for part in text.split(":"))
        except ValueError as e:
            raise ValueError(f"a variant is WINDOW:STRIDE in seconds, e.g. 30:18, got {text!r}") from e
        return cls(window, stride)


@dataclass
class Figures:
    """The best seconds seen for one setting's long track, and the windows it took."""

    best: float = float("inf")
    windows: int = 0


def engines(settings: list[Setting], tiny: bool) -> dict[Setting, MusicGenEngine]:
    """A fast-mode engine per setting, all from one random musicgen-small (each quantises its own copy)."""
    model, processor = on_model_thread(build, "text", tiny)
    made = {}
    for setting in settings:
        spec = EngineSpec(
            model_id="random musicgen-small",
            fast=True,
            device="cpu",
            window_seconds=setting.window,
            extend_stride=setting.stride,
        )
        made[setting] = MusicGenEngine.from_model(model, processor, spec)
    return made


def clips_seconds(engine: MusicGenEngine, seconds: float) -> float:
    """Compute seconds for ``CLIPS`` separate clips that add up to ``seconds``."""
    return sum(
        engine.generate(GenerationSettings(prompt=PROMPT, duration=seconds / CLIPS, seed=i)).seconds_taken
        for i in range(CLIPS)
    )


def measure(args: argparse.Namespace) -> tuple[float, dict[Setting, Figures]]:
    """Best clips seconds (on today's setting's engine) and each setting's best long-track figures."""
    settings = [Setting(args.window, args.stride), *args.variant]
    made = engines(settings, args.tiny)
    today = made[settings[0]]
    clips, figures = float("inf"), {setting: Figures() for setting in settings}
    say = print if args.verbose else (lambda *a, **k: None)
    # warm-up: first-use costs (allocations, kernel choices) land outside the timed rounds
    today.generate(GenerationSettings(prompt=PROMPT, duration=1.0, seed=0))
    for round_ in range(args.repeats):
        clips = min(clips, clips_seconds(today, args.seconds))
        say(f"round {round_ + 1}: {CLIPS} clips {clips:.1f} s (best so far)")
        for setting, engine in made.items():
            result = engine.generate(GenerationSettings(prompt=PROMPT, duration=args.seconds, seed=1))
            figures[setting].best = min(figures[setting].best, result.seconds_taken)
            figures[setting].windows = result.windows
            say(f"round {round_ + 1}: {setting.name}: {result.seconds_taken:.1f} s, {result.windows} windows")
    return clips, figures


def table(args: argparse.Namespace, clips: float, figures: dict[Setting, Figures]) -> str:
    machine = (
        f"{cpu_name()} ({cpu_flags()}), {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    model = "tiny test model" if args.tiny else "random musicgen-small (420M decoder)"
    lines = [
        f"Machine: {machine}. Model: {model}, fast mode (int8), guidance 3, best of {args.repeats}, interleaved.",
        "",
        f"| {args.seconds:g} s of audio, fast mode | {CLIPS} x {args.seconds / CLIPS:g} s clips (s) "
        "| one track (s) | track vs clips | goal |",
        "|---|---|---|---|---|",
    ]
    for setting, got in figures.items():
        lines.append(
            f"| {setting.name} ({got.windows} windows) | {clips:.1f} | {got.best:.1f} | {got.best / clips:.2f}x "
            "| within 1.15x |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="the long track's length (default 60)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds; the best of each counts")
    parser.add_argument("--window", type=float, default=WINDOW_SECONDS, help="today's window (default the app's)")
    parser.add_argument("--stride", type=float, default=EXTEND_STRIDE_SECONDS, help="today's new seconds per window")
    parser.add_argument(
        "--variant", type=Setting.parse, action="append", default=[], help="another WINDOW:STRIDE to measure too"
    )
    parser.add_argument("--tiny", action="store_true", help="a tiny model: checks the benchmark runs, in seconds")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    clips, figures = measure(args)
    print(table(args, clips, figures))


if __name__ == "__main__":
    main()
