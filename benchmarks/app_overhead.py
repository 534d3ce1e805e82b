"""The live app against its own engine: what a ``/generate`` through Gradio adds to ``engine.generate``.

Saves a random musicgen-small of the real size to a temporary folder, starts ``python app.py`` on 127.0.0.1 with
that folder as its only model (and a library, as the app keeps every track by default), builds the same engine in
this process, warms both up, then runs ``--rounds`` rounds, each of: ``engine.generate`` of a ``--seconds``
request in this process, then the same request (prompt, duration, seed) as ``/generate`` through
``gradio_client``, files downloaded. Both use the engine's default mode (fast on CPU unless
``MOODTAPE_FAST_CPU=0``).

Where the app's time goes comes from its own log: ``generation/timing.py``'s one line per track (the studio's
stages: plan, load, generate, finish, describe, write, pictures) and per request (the runner's: the track, the
library's keep, the results, the whole handler). What the client waits for beyond the handler is Gradio's part:
the queue, turning results into files and URLs, the event stream, and the downloads.

``--before DIR`` starts a second app from another checkout of Moodtape (``git worktree add DIR <commit>``) with
the same settings and times it in the same rounds, so a change's before and after are measured in one run.

Run ``python -m benchmarks.app_overhead`` (about 5 minutes on 2 CPU cores for three rounds of 10 s, plus a
minute to build the model); ``--tiny`` runs the same code on the tests' tiny model in about a minute.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from serving.processes import LOOPBACK, answers_http, free_port, wait_until_up

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 300  # loading a real-size model on a busy 2-core machine takes a while
WARM_UP_SECONDS = 1.0  # the warm-up request's length: pays the first-call costs of every stage
PROMPT = "lo-fi hip hop beat, mellow Rhodes chords, vinyl crackle, 80 BPM"
TRACK_STAGES = ("plan", "load", "generate", "finish", "describe", "write", "pictures")  # the studio's, in order
REQUEST_STAGES = ("keep", "results")  # the runner's, after the track is made


@dataclass
class LiveApp:
    """``python app.py`` from ``checkout``, on a free loopback port, logging to ``log_path``."""

    name: str
    checkout: Path
    env: dict[str, str]
    log_path: Path
    port: int = 0
    process: subprocess.Popen | None = None
    seen: int = 0  # log lines already read
    walls: list[float] = field(default_factory=list)  # client seconds per timed request
    logged: list[dict[str, float]] = field(default_factory=list)  # the stages of each timed request

    def rounds(self) -> list[tuple[float, dict[str, float]]]:
        """Each timed request's client seconds and logged stages."""
        return list(zip(self.walls, self.logged, strict=True))

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/"

    def start(self) -> None:
        self.port = free_port()
        env = {**os.environ, **self.env, "GRADIO_SERVER_NAME": LOOPBACK, "GRADIO_SERVER_PORT": str(self.port)}
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "app.py"], cwd=self.checkout, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def wait_until_up(self) -> None:
        wait_until_up(
            self.process,
            answers_http(self.url + "config"),
            what=f"{self.name}'s app.py",
            timeout_s=START_TIMEOUT_S,
            log_path=self.log_path,
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def new_stages(self) -> dict[str, float]:
        """The stages logged since the last call: the track's and the request's lines, merged."""
        from generation.timing import read_line

        lines = self.log_path.read_text().splitlines()
        new, self.seen = lines[self.seen :], len(lines)
        stages: dict[str, float] = {}
        for line in new:
            if "moodtape.timing" in line:
                stages |= read_line(line.split("INFO", 1)[1])
        return stages


def app_env(model: Path, work: Path, name: str) -> dict[str, str]:
    """Settings for one app: the model as its only one, its own output folder and library, no analytics."""
    return {
        "MOODTAPE_MODELS": f"text={model}",
        "MOODTAPE_OUTPUT_DIR": str(work / f"outputs-{name}"),
        "MOODTAPE_LIBRARY_DIR": str(work / f"library-{name}"),
        "HF_HUB_OFFLINE": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
    }


def through_app(client, seconds: float, seed: int) -> float:
    """Wall seconds of one ``/generate`` through ``client``, its files downloaded."""
    started = time.perf_counter()
    client.predict(prompt=PROMPT, duration=seconds, seed=seed, api_name="/generate")
    return time.perf_counter() - started


def table(engine_walls: list[float], apps: list[LiveApp], args: argparse.Namespace) -> str:
    """The Markdown table: medians over the rounds, each app's stages, and its ratio to the engine."""
    import torch

    from benchmarks.bench import cpu_flags, cpu_name

    engine = statistics.median(engine_walls)
    model = "tiny model" if args.tiny else "random musicgen-small of the real size"
    lines = [
        f"CPU: {cpu_name()} ({cpu_flags()}), {os.cpu_count()} cores, {platform.machine()}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; {model}, {args.seconds:g} s tracks, median of "
        f"{args.rounds} interleaved rounds after a warm-up",
        "",
        f"| measure (s) | engine.generate | {' | '.join(app.name for app in apps)} |",
        f"|---|---|{'---|' * len(apps)}",
    ]

    def row(what: str, engine_value: str, per_app) -> None:
        lines.append(f"| {what} | {engine_value} | {' | '.join(per_app(app) for app in apps)} |")

    def stage(name: str):
        return lambda app: f"{statistics.median(stages.get(name, 0.0) for stages in app.logged):.3f}"

    def beyond(name: str):  # the caller's wait less a logged stage, per round
        return lambda app: f"{statistics.median(w - s.get(name, 0.0) for w, s in app.rounds()):.3f}"

    def ratios(app: LiveApp) -> str:
        each = ", ".join(f"{w / e:.3f}" for w, e in zip(app.walls, engine_walls, strict=True))
        return f"{statistics.median(app.walls) / engine:.3f} ({each})"

    row("whole request, as the caller waits", f"{engine:.2f}", lambda app: f"{statistics.median(app.walls):.2f}")
    row("app vs engine (ratio of medians; each round's)", "1.000", ratios)
    for name in TRACK_STAGES:
        row(f"studio: {name}", "-", stage(name))
    for name in REQUEST_STAGES:
        row(f"runner: {name}", "-", stage(name))
    row(
        "runner: track done to the handler's answer (wake-up, keep, results)",
        "-",
        lambda app: f"{statistics.median(s.get('handler', 0.0) - s.get('track', 0.0) for s in app.logged):.3f}",
    )
    row("Gradio and client: queue, results to files and URLs, event stream, downloads", "-", beyond("handler"))
    row("everything but the app's own generate", "-", beyond("generate"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="each track's length (default 10)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds to time (default 3)")
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny model: checks the code in a minute")
    parser.add_argument("--before", type=Path, help="another checkout whose app is timed in the same rounds")
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args(argv)

    from gradio_client import Client

    from benchmarks.serving import save_model
    from generation.config import ServerConfig
    from generation.model.model_thread import on_model_thread
    from generation.studio import Studio, TrackRequest

    with tempfile.TemporaryDirectory(prefix="moodtape-app-overhead-") as folder:
        work = Path(folder)
        print("saving the model...", flush=True)
        # on the model thread: torch work on this thread would leave it an OpenMP team that slows the engine's
        # steps below (the engine column of one run took 40.7 s where the app's own generate took 25.4)
        model = on_model_thread(save_model, work / "model", args.tiny)
        checkouts = [("this checkout", ROOT)] + ([("before", args.before.resolve())] if args.before else [])
        apps = [
            LiveApp(name, path, app_env(model, work, f"app{i}"), work / f"app{i}.log")
            for i, (name, path) in enumerate(checkouts)
        ]
        try:
            for app in apps:  # one at a time: Gradio gives up on a server that answers its own check late
                app.start()
                app.wait_until_up()
            # This process's engine: the same settings the apps read, the same request
            env = {**os.environ, **app_env(model, work, "engine")}
            studio = Studio(config=ServerConfig.from_env(env))
            engine = studio.models.acquire(studio.default_model)
            request = TrackRequest(prompt=PROMPT, duration=args.seconds, seed=1)
            settings = studio.plan(request).settings
            clients = [Client(app.url, verbose=False) for app in apps]
            print(f"warming up (engine mode {engine.mode})...", flush=True)
            engine.generate(studio.plan(TrackRequest(prompt=PROMPT, duration=WARM_UP_SECONDS, seed=0)).settings)
            for app, client in zip(apps, clients, strict=True):
                through_app(client, WARM_UP_SECONDS, 0)
                app.new_stages()
            engine_walls = []
            for round_ in range(args.rounds):
                started = time.perf_counter()
                engine.generate(settings)
                engine_walls.append(time.perf_counter() - started)
                for app, client in zip(apps, clients, strict=True):
                    app.walls.append(through_app(client, args.seconds, 1))
                    time.sleep(0.5)  # the log line is written before the answer; let it reach the file
                    app.logged.append(app.new_stages())
                said = ", ".join(f"{a.name} {a.walls[-1]:.2f} s" for a in apps)
                print(f"round {round_ + 1}: engine {engine_walls[-1]:.2f} s, {said}", flush=True)
        finally:
            for app in apps:
                app.stop()
    result = table(engine_walls, apps, args)
    print(result)
    if args.out:
        args.out.write_text(result + "\n")


if __name__ == "__main__":
    main()
