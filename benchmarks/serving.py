"""Moodtape on a Ray Serve cluster: throughput against replicas, and what the cluster adds to the first audio.

Starts a local cluster (127.0.0.1 only) and measures, in one run, on the exact path (float32) and with every
engine on one torch thread (a replica's share when two replicas share two cores):

* throughput, in seconds of audio per wall second: ``--requests`` requests sent together to an engine in this
  process, to one replica, and twice as many to two replicas;
* time to first streamed audio for one request, in this process and through the cluster (the difference is
  what the cluster adds: the handle's routing, the replica's event loop, Ray's streaming);
* one whole request's time, in this process and through the cluster.

Run ``python -m benchmarks.serving`` (a random musicgen-small of the real size, saved to a temporary folder
the replicas load; about 10 minutes on 2 CPU cores); ``--tiny`` runs the same code on a tiny model in about a
minute (the test suite does, so the benchmark cannot rot). It prints a Markdown table (``--out`` writes it).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from serving.cluster import LOOPBACK_ENV, LocalCluster

os.environ.update(LOOPBACK_ENV)  # before anything imports Ray: it reads them at import

import torch  # noqa: E402

from benchmarks.bench import concurrently, cpu_name, request, time_to_first_audio  # noqa: E402
from generation.config import ServerConfig  # noqa: E402
from generation.model.engine import MusicGenEngine  # noqa: E402
from generation.model.remote import SERVE_APP, RemoteEngine  # noqa: E402
from generation.model.spec import EngineSpec  # noqa: E402

THREADS = 1  # torch threads per engine: two replicas on two cores, one each
RUNS = 3  # first-audio and one-request times: the median of this many, after a warm-up


def save_model(folder: Path, tiny: bool) -> Path:
    """A random checkpoint the replicas can load: the tests' tiny one, or musicgen-small of the real size."""
    if tiny:
        from tests.tiny_models import build_text_model

        return build_text_model(folder)
    from tests.random_musicgen import SMALL, random_musicgen, text_processor

    random_musicgen(SMALL, "text").save_pretrained(folder)
    text_processor().save_pretrained(folder)
    return folder


def measure(engine, requests: int, seconds: float) -> dict[str, float]:
    """Throughput of ``requests`` sent together, first-audio and one-request times (medians), for one engine."""
    # Warm-up: every replica loads the model and pays its first-call costs (the router spreads these)
    concurrently([(lambda i=i: engine.generate(request(i, 1.0))) for i in range(requests)])
    firsts = [time_to_first_audio(engine, seconds) for _ in range(RUNS)]
    wholes = []
    for i in range(RUNS):
        started = time.perf_counter()
        engine.generate(request(i, seconds))
        wholes.append(time.perf_counter() - started)
    wall = concurrently([(lambda i=i: engine.generate(request(i, seconds))) for i in range(requests)])
    return {
        "throughput": requests * seconds / wall,
        "first": statistics.median(firsts),
        "whole": statistics.median(wholes),
    }


def deploy_replicas(replicas: int) -> None:
    from serving.deploy import deploy, read_settings

    settings = read_settings()
    settings["replica"] |= {"num_cpus": 1, "threads": THREADS}
    deploy(settings, replicas=replicas)


def run(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        return _run(args)
    finally:  # threads started later in this process (a test session's) take the count back
        torch.set_num_threads(threads)


def _run(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    say = print if args.verbose else (lambda *a, **k: None)
    with tempfile.TemporaryDirectory(prefix="moodtape-serving-bench-") as tmp:
        # 1. A checkpoint on disk, and the engine in this process
        say("saving the model...")
        folder = save_model(Path(tmp) / "model", args.tiny)
        config = ServerConfig.from_env({"HF_HUB_OFFLINE": "1"})
        figures = {}
        say("in this process...")
        local = MusicGenEngine(EngineSpec(model_id=str(folder), device="cpu", fast=False), config=config)
        figures["in-process"] = measure(local, args.requests, args.clip)
        local.unload()

        # 2. The same on a local cluster: one replica, then two
        with LocalCluster(num_cpus=2, log_path=Path(tmp) / "ray.log") as cluster:
            cluster.join()
            for replicas in (1, 2):
                say(f"{replicas} replica(s)...")
                deploy_replicas(replicas)
                remote = RemoteEngine(
                    EngineSpec(model_id=str(folder), device="cpu", fast=False), config=config, app=SERVE_APP
                )
                figures[f"{replicas} replica(s)"] = measure(remote, args.requests * replicas, args.clip)
    return figures


def table(figures: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    size = "tiny test model" if args.tiny else "random musicgen-small (420M decoder)"
    machine = f"{cpu_name()}, {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    inside, one, two = figures["in-process"], figures["1 replica(s)"], figures["2 replica(s)"]
    n, clip = args.requests, args.clip
    lines = [
        f"Machine: {machine}. Model: {size}, exact path (float32) on CPU, {THREADS} torch thread per engine, "
        f"{clip:g} s clips.",
        "",
        "| measure | in this process | 1 replica | 2 replicas | cluster vs in-process |",
        "|---|---|---|---|---|",
        f"| throughput, {n} requests per engine or replica at once (audio s per wall s) | {inside['throughput']:.3f} "
        f"| {one['throughput']:.3f} | {two['throughput']:.3f} | 2 replicas: "
        f"{two['throughput'] / one['throughput']:.2f}x one replica |",
        f"| time to first audio, one request (s) | {inside['first']:.3f} | {one['first']:.3f} | {two['first']:.3f} "
        f"| {one['first'] - inside['first']:+.3f} s |",
        f"| one whole request (s) | {inside['whole']:.3f} | {one['whole']:.3f} | {two['whole']:.3f} "
        f"| {one['whole'] - inside['whole']:+.3f} s |",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny model: checks the benchmark runs, in a minute")
    parser.add_argument("--clip", type=float, default=3.0, help="seconds of audio per request (default 3)")
    parser.add_argument("--requests", type=int, default=4, help="requests at once per replica (default 4, a batch)")
    parser.add_argument("--out", type=Path, help="also write the table here")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    result = table(run(args), args)
    print(result)
    if args.out:
        args.out.write_text(result, encoding="utf-8")


if __name__ == "__main__":
    main()
