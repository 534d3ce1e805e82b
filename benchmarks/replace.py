"""Replacing a section against making the same seconds alone, and the time to score the candidates.

Through the Studio, as the app runs them (files written, loudness on): ``/replace`` of 8 s in the middle of a
30 s track (synthetic drums and chords at 120 BPM, so the section moves to downbeats) with 2 candidates, against
``/generate`` of an 8 s track. A replace continues up to 20 s of the audio before the section and makes the
section plus its 1.5 s overlap for every candidate in one batch; then it scores the overlaps and splices.
The model is a randomly initialised musicgen-small of the exact size (``--tiny``: the tiny test model) in fast
CPU mode. Each is run once to warm up, then ``--runs`` times interleaved; the best of each is reported.

Run ``python -m benchmarks.replace`` (about 10 minutes on 2 CPU cores; ``--tiny`` in about 3). On a machine
whose cores other work also uses, run it with ``OMP_NUM_THREADS=1``: two OpenMP threads that wait for each other
at every step then stall whenever either core is taken (a warm-up 8 s track took over 30 minutes that way).

Each round also runs the replace with every candidate reading its own copy of the audio prompt (the shared prefix
turned off), so the shared prefix's gain is measured in the same run.

Where a replace's time goes, in fast mode: the candidates run as one batch, their rows through each int8 matmul
together (each row quantised with its own scale, so a candidate's audio does not depend on its batch), and their
shared audio prompt through the decoder once (the candidates differ only in their seeds, which that first forward
does not read); scoring, splicing, loudness and files add a few seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.bench import build, cpu_flags, cpu_name
from generation.audio.export import export_track
from generation.audio.uploads import read_track
from generation.editing.replace import Candidate, ReplaceRequest, candidate_scores
from generation.model import static_decoding
from generation.model.engine import MusicGenEngine
from generation.model.model_thread import on_model_thread
from generation.model.spec import EngineSpec
from generation.models import ModelCatalog
from generation.studio import Studio, TrackRequest
from tests.rhythm_factory import A_MINOR, pattern

PROMPT = "lo-fi hip hop beat, mellow Rhodes chords, vinyl crackle"
RATE = 32_000
TRACK_SECONDS = 30.0
START, END = 10.0, 18.0  # 8 s in the middle, on downbeats (bars of 2 s): 10 s before it to continue, 12 s after
GOAL = 1.6  # a replace may cost at most this many times making its seconds alone
SCORING_GOAL_S = 0.2
SCORING_RUNS = 20


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny test model: checks the benchmark runs")
    parser.add_argument("--runs", type=int, default=2, help="timed runs of each, interleaved (default 2)")
    parser.add_argument("--candidates", type=int, default=2, help="candidates per replace (default 2)")
    args = parser.parse_args(argv)

    model, processor = on_model_thread(build, "text", args.tiny)
    name = "tiny musicgen" if args.tiny else "random musicgen-small"
    engine = MusicGenEngine.from_model(model, processor, EngineSpec(model_id=name, fast=True, device="cpu"))
    folder = Path(tempfile.mkdtemp(prefix="moodtape-replace-bench-"))
    models = ModelCatalog([("text", name)], engine.config, engines={"text": engine})
    studio = Studio(models=models, output_dir=folder / "outputs")
    studio.warm_up()
    song = pattern(120.0, TRACK_SECONDS, RATE, chords=A_MINOR)
    wav = export_track(song, RATE, folder=folder, file_name="song", metadata={}, recipe_json="{}")["wav"]

    section = END - START
    alone = TrackRequest(prompt=PROMPT, duration=section, seed=1)
    replacing = ReplaceRequest(
        audio=str(wav), start=START, end=END, prompt=PROMPT, seed=1, candidates=args.candidates
    )

    def timed(call, request) -> tuple[float, object]:
        began = time.perf_counter()
        track = call(request)
        return time.perf_counter() - began, track

    def apart(request) -> object:
        """The replace with each candidate reading its own copy of the prompt (as before the shared prefix)."""
        shared_from = static_decoding.SHARED_PREFIX_MIN
        static_decoding.SHARED_PREFIX_MIN = 10**9
        try:
            return studio.replace_section(request)
        finally:
            static_decoding.SHARED_PREFIX_MIN = shared_from

    timed(studio.make_track, alone)  # warm-up: the fast loop's buffers, int8 kernels, librosa's first calls
    timed(studio.replace_section, replacing)
    timed(apart, replacing)
    alone_s, replace_s, made_alone, made_replace = [], [], [], []  # wall seconds, and the model's part of them
    apart_s, made_apart = [], []
    for _ in range(args.runs):
        seconds, track = timed(studio.make_track, alone)
        alone_s.append(seconds)
        made_alone.append(track.recipe.seconds_taken)
        seconds, track = timed(apart, replacing)
        apart_s.append(seconds)
        made_apart.append(track.recipe.seconds_taken)
        seconds, track = timed(studio.replace_section, replacing)
        replace_s.append(seconds)
        made_replace.append(track.recipe.seconds_taken)

    # Scoring: the candidates as the model made them, scored against the original after the section
    record = track.recipe.replace
    source = read_track(wav, max_seconds=60)
    plan = studio.plan_replace(replacing)
    made = engine.generate_takes(plan.settings, args.candidates, audio_prompt=plan.audio_prompt)
    candidates = [Candidate(g.audio, g.sample_rate, g.settings.seed, g.lead_in).audio for g in made]
    scoring = []
    for _ in range(SCORING_RUNS):
        began = time.perf_counter()
        candidate_scores(candidates, np.asarray(source.samples), plan.section, RATE)
        scoring.append(time.perf_counter() - began)

    best_alone, best_replace = min(alone_s), min(replace_s)
    ratio = best_replace / best_alone
    machine = (
        f"{cpu_name()} ({cpu_flags()}), {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"Machine: {machine}. Model: {name}, fast CPU mode (int8), guidance 3, top-k 250.")
    print(
        f"Section used: {record['start']:.2f} to {record['end']:.2f} s (asked {START:g} to {END:g}); "
        f"each candidate made {plan.settings.duration:g} s after {record['start']:.2f} s of audio prompt."
    )
    print()
    print("| measure | baseline | replace | ratio | goal |")
    print("|---|---|---|---|---|")
    print(
        f"| replace {section:g} s of a {TRACK_SECONDS:g} s track, {args.candidates} candidates, vs making "
        f"{section:g} s alone (Studio, files written; best of {args.runs}) | {best_alone:.1f} s | "
        f"{best_replace:.1f} s | {ratio:.2f}x | <= {GOAL:g}x |"
    )
    print(
        f"| of which the model (generate vs {args.candidates} candidates continuing the audio before the section) | "
        f"{min(made_alone):.1f} s | {min(made_replace):.1f} s | {min(made_replace) / min(made_alone):.2f}x | |"
    )
    print(
        f"| the same replace, each candidate reading its own copy of the prompt (before the shared prefix): whole, "
        f"and the model | {min(alone_s):.1f} s, {min(made_alone):.1f} s | {min(apart_s):.1f} s, "
        f"{min(made_apart):.1f} s | {min(apart_s) / best_alone:.2f}x, {min(made_apart) / min(made_alone):.2f}x | |"
    )
    print(
        f"| scoring {args.candidates} candidates' {record['overlap_seconds']:g} s overlaps (median of "
        f"{SCORING_RUNS}) | | {statistics.median(scoring) * 1000:.0f} ms | | <= {SCORING_GOAL_S * 1000:.0f} ms |"
    )
    print()
    print(
        f"All runs: alone {[round(s, 1) for s in alone_s]}, replace {[round(s, 1) for s in replace_s]}, "
        f"apart {[round(s, 1) for s in apart_s]}"
    )


if __name__ == "__main__":
    main()
