"""A long track against the same seconds made as six separate clips, in fast mode, side by side in one run.

Builds a randomly initialised musicgen-small of the exact size (as ``benchmarks.bench``: speed does not depend
on the weights' values), then, ``--repeats`` times, interleaved: six clips of ``--seconds / 6`` and one track of
``--seconds`` (by default 60 s: windows of 30 s, each later one continuing the last 12 s). Each figure is the best
of its runs, the ratio is long over clips, and the CPU is named beside them: absolute seconds on a shared 2-core
machine vary from run to run, the ratio measured side by side much less. Beside wall seconds it reports the
process's CPU seconds: on a machine shared with other work, run it with ``OMP_NUM_THREADS=1`` and read those (two
OpenMP threads that wait for each other's time slices there spend seconds a step; one thread's CPU time does not).

``--variant WINDOW:STRIDE`` (repeatable) adds engines with other windows and strides on the same int8 weights,
measured in the same interleaved rounds, to weigh a setting against today's.

Run ``python -m benchmarks.long_tracks`` (a 60 s track and six 10 s clips a round: a few minutes on 2 idle
cores); ``--seconds 12 --window 6 --stride 3.6 --repeats 1`` is the same plan at a fifth of the scale (3 windows);
``--tiny`` checks it runs, in seconds (the test suite does).
"""

from __future__ import annotations

import argparse
import os
import platform
import time
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
    """The best wall and CPU seconds seen for one setting (or for the clips), and the windows it took."""

    best: float = float("inf")
    cpu: float = float("inf")
    windows: int = 0

    def add(self, wall: float, cpu: float, windows: int) -> None:
        self.best, self.cpu, self.windows = min(self.best, wall), min(self.cpu, cpu), windows


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


def timed(engine: MusicGenEngine, seconds: float, seed: int) -> tuple[float, float, int]:
    """Wall seconds (the engine's own), the process's CPU seconds and the windows of one track of ``seconds``."""
    cpu = time.process_time()
    result = engine.generate(GenerationSettings(prompt=PROMPT, duration=seconds, seed=seed))
    return result.seconds_taken, time.process_time() - cpu, result.windows


def clips_seconds(engine: MusicGenEngine, seconds: float) -> tuple[float, float]:
    """Wall and CPU seconds for ``CLIPS`` separate clips that add up to ``seconds``."""
    runs = [timed(engine, seconds / CLIPS, i) for i in range(CLIPS)]
    return sum(run[0] for run in runs), sum(run[1] for run in runs)


def measure(args: argparse.Namespace) -> tuple[Figures, dict[Setting, Figures]]:
    """Best clips figures (on today's setting's engine) and each setting's best long-track figures."""
    settings = [Setting(args.window, args.stride), *args.variant]
    made = engines(settings, args.tiny)
    today = made[settings[0]]
    clips, figures = Figures(), {setting: Figures() for setting in settings}
    say = print if args.verbose else (lambda *a, **k: None)
    # warm-up: first-use costs (allocations, kernel choices) land outside the timed rounds
    today.generate(GenerationSettings(prompt=PROMPT, duration=1.0, seed=0))
    for round_ in range(args.repeats):
        clips.add(*clips_seconds(today, args.seconds), CLIPS)
        say(f"round {round_ + 1}: {CLIPS} clips {clips.best:.1f} s, {clips.cpu:.1f} s CPU (best so far)")
        for setting, engine in made.items():
            wall, cpu, windows = timed(engine, args.seconds, 1)
            figures[setting].add(wall, cpu, windows)
            say(f"round {round_ + 1}: {setting.name}: {wall:.1f} s, {cpu:.1f} s CPU, {windows} windows")
    return clips, figures


def table(args: argparse.Namespace, clips: Figures, figures: dict[Setting, Figures]) -> str:
    machine = (
        f"{cpu_name()} ({cpu_flags()}), {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    model = "tiny test model" if args.tiny else "random musicgen-small (420M decoder)"
    lines = [
        f"Machine: {machine}. Model: {model}, fast mode (int8), guidance 3, best of {args.repeats}, interleaved.",
        "",
        f"| {args.seconds:g} s of audio, fast mode | {CLIPS} x {args.seconds / CLIPS:g} s clips: wall (CPU) s "
        "| one track: wall (CPU) s | track vs clips: wall (CPU) | goal |",
        "|---|---|---|---|---|",
    ]
    for setting, got in figures.items():
        lines.append(
            f"| {setting.name} ({got.windows} windows) | {clips.best:.1f} ({clips.cpu:.1f}) "
            f"| {got.best:.1f} ({got.cpu:.1f}) | {got.best / clips.best:.2f}x ({got.cpu / clips.cpu:.2f}x) "
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
