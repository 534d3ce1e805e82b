"""Moodtape's speed and memory, side by side with a plain transformers ``generate`` on the same model.

Builds randomly initialised models of the exact sizes of musicgen-small and musicgen-melody (speed does not
depend on the weights' values; the sizes, and where they come from, are in ``tests/random_musicgen.py``), then
measures, in one run:

* seconds of compute per second of audio: plain ``generate`` vs Moodtape's exact path and its fast CPU mode,
  for text (musicgen-small) and for text plus a melody (musicgen-melody);
* time to first streamed audio;
* throughput with 1, 4 and 8 concurrent requests (Moodtape batches them) vs the same requests one by one;
* a long-form track vs the same length made as six separate clips (exact path and fast mode);
* four takes of one request (one batch) vs one take;
* the finishing steps a tempo asks for (measure, stretch to an exact BPM, cut a loop) vs loudness alone;
* peak memory (resident set) of each path, and the app's own work outside ``generate`` (decode, files);
* with ``--floor-only`` (a few minutes): fast mode against its memory floor, the bytes a decoding step reads
  (int8 weights, their scales, float weights, the key/value cache) over this machine's read bandwidth measured
  in the same run, beside the measured step and fast mode's clip against plain ``generate`` (``floor.py``).

Run ``python -m benchmarks.bench`` (about 25 minutes on 2 CPU cores; ``--no-long-exact`` saves 9 of them);
``--tiny`` runs the same code on tiny models in seconds (the test suite does, so the benchmark cannot rot).
It prints a Markdown table and writes it to ``--out`` (default ``benchmarks/results-latest.md``; the kept history
of runs is ``benchmarks/results.md``, edited by hand).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from benchmarks import floor
from generation.audio import tempo as tempo_module
from generation.audio.loops import material_seconds
from generation.audio.loudness import normalise_loudness
from generation.finishing import TempoRequest, finish_take
from generation.formats import DEFAULT_TARGET_LUFS
from generation.model import static_decoding
from generation.model.chroma import ChromaExtractor, MelodyProcessor
from generation.model.engine import MusicGenEngine
from generation.model.loading import gpu_dtype, prepare_for_generation, shared_weights_copy
from generation.model.model_thread import on_model_thread
from generation.model.spec import EngineSpec
from generation.model.types import GeneratedAudio, Melody
from generation.settings import GenerationSettings
from generation.studio import Studio, TrackRequest
from scripts.hums import hum
from tests.random_musicgen import MELODY, SMALL, TINY, random_musicgen, text_processor, tokenizer
from tests.rhythm_factory import A_MINOR, pattern

PROMPT = "lo-fi hip hop beat, mellow Rhodes chords, vinyl crackle, 80 BPM"
MELODY_NOTES = ("A3", "C#4", "E4", "A4") * 4  # a rising arpeggio, hummed for 8 s
RATE = 32_000  # the hum's sample rate, MusicGen's own
TAKES = 4  # takes of one request, made as one batch (the most a request may ask for)
LOOP_BPM, LOOP_BARS = 120, 2  # the loop the finishing row cuts: 4 s, the common case
DRUMS_BPM = 117  # drums this far (2.5%) from LOOP_BPM are stretched to it, as a real take would be
FINISH_RUNS = 3  # each finishing path runs this many times after a warm-up run; the median is reported
# Cached positions the floor rows measure a step at (``--floor-positions``): about the middle of a 10 s clip's 503
# steps, and deep into a long track's 30 s window (each later window starts with 600 positions of context)
FLOOR_POSITIONS = (250, 1000)
BANDWIDTH_BYTES = 1 << 30  # the tensor summed to measure read bandwidth: far larger than any CPU cache


@dataclass
class Row:
    """One line of the results table."""

    what: str
    plain: str
    moodtape: str
    ratio: str
    target: str = ""


@dataclass(frozen=True)
class Baseline:
    """Plain ``generate`` on one text clip: the figure the text rows compare with."""

    seconds: float  # wall seconds for the clip
    peak: int  # the process's peak resident bytes meanwhile


def build(family: str, tiny: bool, channels: int = 1):
    """A random musicgen-small ("text") or musicgen-melody ("melody") of the real size, and its processor.

    ``channels=2``: the stereo form (musicgen-stereo-small), the same decoder with 8 codebooks.
    """
    model = random_musicgen(TINY if tiny else SMALL if family == "text" else MELODY, family, channels=channels)
    processor = text_processor() if family == "text" else MelodyProcessor(tokenizer(), ChromaExtractor())
    return model, processor


def plain_generate(model, processor, seconds: float, melody: np.ndarray | None = None, batch: int = 1) -> float:
    """The baseline: transformers' own ``generate`` with MusicGen's defaults; returns wall seconds.

    It runs on Moodtape's model thread, like the app's own work, so both use the same OpenMP threads.
    """
    return on_model_thread(_plain_generate, model, processor, seconds, melody, batch)


def _plain_generate(model, processor, seconds: float, melody: np.ndarray | None, batch: int) -> float:
    if melody is None:
        inputs = processor(text=[PROMPT] * batch, padding=True, return_tensors="pt")
    else:
        inputs = processor([PROMPT] * batch, [Melody(melody, RATE)] * batch)
    steps = round(seconds * 50) + 3
    inputs = {name: value.to(model.device) for name, value in inputs.items()}
    if "input_features" in inputs:
        inputs["input_features"] = inputs["input_features"].to(model.dtype)
    torch.manual_seed(0)
    started = time.perf_counter()
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=steps, do_sample=True, guidance_scale=3.0, top_k=250)
    _synchronize(model.device)
    return time.perf_counter() - started


def _synchronize(device) -> None:
    """Wait for the GPU's queued work, so a wall time covers it (nothing to wait for on CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


class PeakMemory:
    """The highest resident set size of this process while the block runs, sampled every 20 ms."""

    def __enter__(self) -> PeakMemory:
        self.start = self.peak = _rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss())


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def concurrently(calls: list[Callable[[], object]]) -> float:
    """Run the calls in threads released together; returns wall seconds until all are done."""
    barrier = threading.Barrier(len(calls) + 1)
    threads = [threading.Thread(target=lambda c=c: (barrier.wait(), c())) for c in calls]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def request(i: int, seconds: float) -> GenerationSettings:
    """The ``i``-th of several different requests for ``seconds`` of audio."""
    return GenerationSettings(prompt=f"{PROMPT} {i}", duration=seconds, seed=i)


def concurrent_requests(engine: MusicGenEngine, n: int, seconds: float) -> float:
    """Wall seconds for ``n`` different requests sent to ``engine`` at the same moment (it batches them)."""
    return concurrently([(lambda i=i: engine.generate(request(i, seconds))) for i in range(n)])


def time_to_first_audio(engine: MusicGenEngine, seconds: float) -> float:
    """Seconds from the request reaching the model to the first streamed audio (the request is then cancelled)."""
    first = threading.Event()
    cancel = threading.Event()
    state: dict[str, float] = {}
    started = time.perf_counter()

    def on_audio(_audio) -> None:
        if not first.is_set():
            state["first"] = time.perf_counter() - started
            first.set()
            cancel.set()

    try:
        engine.generate(GenerationSettings(prompt=PROMPT, duration=seconds, seed=1), on_audio=on_audio, cancel=cancel)
    except Exception:  # the cancel ends it
        pass
    return state["first"]


def compute_row(what: str, seconds: float, plain: float | None, app: float, fast: bool, target: str = "") -> Row:
    """Seconds of compute per second of audio for one ``seconds`` clip: plain ``generate`` (None: not run) vs
    Moodtape."""
    label = f"{what}, {seconds:g} s clip: compute s per s of audio ({'fast CPU mode' if fast else 'exact'})"
    if plain is None:
        return Row(label, "-", f"{app / seconds:.2f}", "-", target)
    ratio = f"{plain / app:.2f}x faster" if fast else f"{app / plain:.3f}x time"
    return Row(label, f"{plain / seconds:.2f}", f"{app / seconds:.2f}", ratio, target)


def first_audio_row(mode: str, plain: float, first: float) -> Row:
    """When the first audio is heard: after plain's whole clip, or after Moodtape's first streamed piece."""
    return Row(
        f"time to first audio, {mode} (s)",
        f"{plain:.1f} (whole clip)",
        f"{first:.2f}",
        f"{plain / first:.1f}x sooner",
        "<= 2.5 s",
    )


def throughput_row(what: str, n: int, seconds: float, one_by_one: float, together: float, target: str = "") -> Row:
    """Audio seconds per wall second for ``n`` requests of ``seconds`` each: one by one vs sent together."""
    return Row(
        what,
        f"{n * seconds / one_by_one:.3f}",
        f"{n * seconds / together:.3f}",
        f"{one_by_one / together:.2f}x",
        target,
    )


def memory_row(what: str, plain: int, app: int, unit: str = "GB resident") -> Row:
    """Peak memory in bytes (resident, or allocated on the GPU): plain ``generate`` vs Moodtape."""
    return Row(
        f"peak memory, {what} ({unit})", f"{plain / 1e9:.2f}", f"{app / 1e9:.2f}", f"{(app - plain) / 1e6:+.0f} MB"
    )


def long_form_row(engine: MusicGenEngine, seconds: float, mode: str) -> Row:
    """One long track vs the same length made as 6 separate clips, on the same engine."""
    pieces = sum(
        engine.generate(GenerationSettings(prompt=PROMPT, duration=seconds / 6, seed=i)).seconds_taken for i in range(6)
    )
    whole = engine.generate(GenerationSettings(prompt=PROMPT, duration=seconds, seed=1))
    return Row(
        f"long-form {seconds:g} s ({mode}, {whole.windows} windows) vs 6 x {seconds / 6:g} s clips (s)",
        f"{pieces:.1f}",
        f"{whole.seconds_taken:.1f}",
        f"{whole.seconds_taken / pieces:.2f}x",
        "within 15% of 6 clips",
    )


def takes_row(engine: MusicGenEngine, seconds: float, one_take: float) -> Row:
    """``TAKES`` takes of one request (one batch) vs one take of it, in wall seconds on the same engine."""
    started = time.perf_counter()
    engine.generate_takes(GenerationSettings(prompt=PROMPT, duration=seconds, seed=1), TAKES)
    takes = time.perf_counter() - started
    return Row(
        f"{TAKES} takes of {seconds:g} s vs one take, exact (s; plain column: one take)",
        f"{one_take:.1f}",
        f"{takes:.1f}",
        f"{takes / one_take:.2f}x time",
        "<= 2.2x",
    )


def finishing_seconds(audio: np.ndarray, rate: int, tempo: TempoRequest | None) -> tuple[float, dict]:
    """Median wall seconds of ``finish_take`` with ``tempo`` on ``audio`` (plain ``normalise_loudness`` when
    ``tempo`` is None) over ``FINISH_RUNS`` runs after one warm-up run, and the tempo record of the last."""

    def once() -> dict:
        if tempo is None:
            normalise_loudness(audio, rate, DEFAULT_TARGET_LUFS)
            return {}
        seconds = audio.shape[-1] / rate
        finished = finish_take(audio, rate, tempo, loudness_lufs=DEFAULT_TARGET_LUFS, out_rate=None, duration=seconds)
        return finished.tempo_record

    record = once()
    times = []
    for _ in range(FINISH_RUNS):
        started = time.perf_counter()
        record = once()
        times.append(time.perf_counter() - started)
    return statistics.median(times), record


def finishing_rows(engine: MusicGenEngine, made: GeneratedAudio, say: Callable[..., object]) -> list[Row]:
    """Measuring the tempo, stretching to ``LOOP_BPM`` and cutting a loop, on top of loudness, after warm-up.

    On the generated clip (a random model's has no beat, so it is measured but not stretched), and on drums at
    ``DRUMS_BPM`` that are stretched. A clip too short for the loop (``--clip`` below 6.5 s) is made again longer.
    """
    tempo_module.warm_up()  # as Studio.warm_up does at start-up: numba compiles the beat tracker once
    needed = round(material_seconds(LOOP_BPM, LOOP_BARS), 2)
    if made.duration < needed:
        made = engine.generate(GenerationSettings(prompt=PROMPT, duration=needed, seed=1))
    rate, seconds = made.sample_rate, made.duration
    drums = pattern(DRUMS_BPM, seconds, rate, chords=A_MINOR)
    loop = TempoRequest(bpm=LOOP_BPM, loop=True, bars=LOOP_BARS)
    rows = []
    for source, audio in (("generated clip", made.audio), (f"drums at {DRUMS_BPM} BPM", drums)):
        loudness, _ = finishing_seconds(audio, rate, None)
        measure, _ = finishing_seconds(audio, rate, TempoRequest())
        looped, record = finishing_seconds(audio, rate, loop)
        done = f"stretched to {LOOP_BPM} BPM" if record.get("stretched") else f"not stretched: {record['described']}"
        rows.append(
            Row(
                f"tempo, stretch and loop added to a {seconds:g} s track after warm-up (s; plain column: loudness "
                f"alone): {source}, {done}, {LOOP_BARS}-bar loop",
                f"{loudness:.2f}",
                f"{looped:.2f} (measuring only: {measure:.2f})",
                f"+{looped - loudness:.2f} s",
                "< 0.5 s",
            )
        )
        say(rows[-1])
    return rows


def exact_rows(
    model, processor, exact: MusicGenEngine, args: argparse.Namespace, say: Callable[..., object]
) -> tuple[list[Row], Baseline]:
    """The text model on Moodtape's exact path against plain ``generate``; also returns plain's clip."""
    clip, short = args.clip, args.short_clip
    plain_generate(model, processor, 1.0)  # warm-up: first calls pay for lazy initialisation
    exact.generate(GenerationSettings(prompt=PROMPT, duration=1.0, seed=0))
    with PeakMemory() as plain_memory:
        plain_seconds = plain_generate(model, processor, clip)
    plain = Baseline(plain_seconds, plain_memory.peak)
    say(f"plain {clip:g} s clip: {plain.seconds:.1f} s")
    with PeakMemory() as app_memory:
        started = time.perf_counter()
        made = exact.generate(GenerationSettings(prompt=PROMPT, duration=clip, seed=1))
        one_take = time.perf_counter() - started
    app = made.seconds_taken
    say(f"app exact: {app:.1f} s")
    rows = [compute_row("text", clip, plain.seconds, app, fast=False, target="within 5% of plain")]

    with tempfile.TemporaryDirectory() as folder:
        studio = Studio(exact, output_dir=folder, melody_engine=exact)
        studio.warm_up()  # as the app does at start-up
        started = time.perf_counter()
        track = studio.make_track(TrackRequest(prompt=PROMPT, duration=clip, seed=1))
        overhead = time.perf_counter() - started - track.generated.seconds_taken
        del studio, track
    percent = f"{100 * overhead / plain.seconds:.1f}% of plain"
    rows.append(
        Row("app work outside generate (WAV, recipe, level), s", "-", f"{overhead:.2f}", percent, "nothing measurable")
    )
    rows.append(first_audio_row("exact", plain.seconds, time_to_first_audio(exact, clip)))

    # Throughput: the same short requests one by one (plain) vs concurrently (Moodtape batches them)
    for n in (1, 4, 8):
        sequential = sum(plain_generate(model, processor, short) for _ in range(n))
        together = concurrent_requests(exact, n, short)
        what = f"throughput, {n} concurrent {short:g} s requests (audio s per s)"
        rows.append(throughput_row(what, n, short, sequential, together, ">= 2x at 4" if n == 4 else ""))
        say(f"{n} concurrent: sequential {sequential:.1f} s, batched {together:.1f} s")

    rows.append(memory_row("text", plain.peak, app_memory.peak))
    rows.append(takes_row(exact, clip, one_take))
    say(rows[-1])
    rows += finishing_rows(exact, made, say)
    if args.long_exact:
        rows.append(long_form_row(exact, args.long_seconds, "exact"))
        say(rows[-1])
    return rows, plain


def fast_rows(
    fast: MusicGenEngine,
    plain: Baseline,
    args: argparse.Namespace,
    say: Callable[..., object],
    before: MusicGenEngine | None = None,
) -> list[Row]:
    """The text model in fast CPU mode against the exact path's plain baseline (and itself one by one).

    ``before`` is fast mode's int8 model in transformers' ``generate`` loop (fast mode before Moodtape's own
    loop), timed interleaved with ``fast`` on the same clip.
    """
    clip, short = args.clip, args.short_clip
    settings = GenerationSettings(prompt=PROMPT, duration=clip, seed=1)
    before_s = []
    with PeakMemory() as memory:
        app = fast.generate(settings).seconds_taken
    if before is not None:  # interleaved, best of two each: the machine's load changes within minutes
        before_s.append(before.generate(settings).seconds_taken)
        app = min(app, fast.generate(settings).seconds_taken)
        before_s.append(before.generate(settings).seconds_taken)
    say(f"app fast: {app:.1f} s; before (generate loop): {before_s}")
    first = time_to_first_audio(fast, clip)
    one_by_one = sum(fast.generate(request(i, short)).seconds_taken for i in range(4))
    together = concurrent_requests(fast, 4, short)
    what = f"throughput, 4 concurrent {short:g} s requests, fast mode (plain column: fast mode one by one)"
    rows = [
        compute_row("text", clip, plain.seconds, app, fast=True, target="<= 1.5 s per s"),
        *(
            [
                compute_row(
                    "text, fast mode's int8 weights in transformers' generate loop",
                    clip,
                    plain.seconds,
                    min(before_s),
                    fast=True,
                )
            ]
            if before_s
            else []
        ),
        throughput_row(what, 4, short, one_by_one, together, ">= 2x at 4"),
        first_audio_row("fast mode", plain.seconds, first),
        memory_row("fast mode", plain.peak, memory.peak),
        long_form_row(fast, args.long_seconds, "fast mode"),
    ]
    say(rows[-1])
    return rows


def melody_rows(args: argparse.Namespace, say: Callable[..., object]) -> list[Row]:
    """The melody model with a hum, exact path and fast CPU mode, against plain ``generate``."""
    short = args.short_clip
    say("building musicgen-melody (random weights)...")
    model, processor = on_model_thread(build, "melody", args.tiny)
    melody = hum(MELODY_NOTES, note_seconds=0.5, rate=RATE)
    settings = GenerationSettings(prompt=PROMPT, duration=short, seed=1)
    exact = MusicGenEngine.from_model(
        model, processor, EngineSpec(model_id="random musicgen-melody", family="melody", fast=False)
    )
    plain_generate(model, processor, 1.0, melody)  # warm-up
    plain = plain_generate(model, processor, short, melody)
    app = exact.generate(settings, melody=Melody(melody, RATE)).seconds_taken
    fast = MusicGenEngine.from_model(
        model, processor, EngineSpec(model_id="random musicgen-melody", family="melody", fast=True)
    )
    fast_s = fast.generate(settings, melody=Melody(melody, RATE)).seconds_taken
    return [
        compute_row("melody", short, plain, app, fast=False, target="within 5% of plain"),
        compute_row("melody", short, plain, fast_s, fast=True),
    ]


def stereo_rows(args: argparse.Namespace, say: Callable[..., object]) -> list[Row]:
    """musicgen-stereo-small (small's decoder, 8 codebooks, two channels decoded), exact and fast, against plain."""
    short = args.short_clip
    say("building musicgen-stereo-small (random weights)...")
    model, processor = on_model_thread(build, "text", args.tiny, 2)
    settings = GenerationSettings(prompt=PROMPT, duration=short, seed=1)
    name = "random musicgen-stereo-small"
    exact = MusicGenEngine.from_model(model, processor, EngineSpec(model_id=name, fast=False, device="cpu"))
    plain_generate(model, processor, 1.0)  # warm-up
    plain = plain_generate(model, processor, short)
    app = exact.generate(settings).seconds_taken
    fast = MusicGenEngine.from_model(model, processor, EngineSpec(model_id=name, fast=True, device="cpu"))
    fast.generate(replace(settings, duration=1.0))  # warm-up: the fast loop's buffers and int8 kernels
    fast_s = fast.generate(settings).seconds_taken
    say(f"stereo-small: plain {plain:.1f} s, exact {app:.1f} s, fast {fast_s:.1f} s for {short:g} s")
    return [
        compute_row("stereo-small", short, plain, app, fast=False, target="within 5% of plain"),
        compute_row("stereo-small", short, plain, fast_s, fast=True),
    ]


def gpu_rows(args: argparse.Namespace, say: Callable[..., object]) -> list[Row]:
    """The GPU path against plain ``generate`` on the same GPU, same weights and dtype, for small and melody.

    Moodtape's side: the static key/value cache and the decoding step replayed as CUDA graphs (captured once
    per bucket; the capture is timed apart, after a warm-up request of each shape). With ``--gpu-table`` on a
    machine without a GPU the same code runs on CPU (the fixed-shape loop without graphs), so it cannot rot.
    """
    device = args.device
    cuda = device == "cuda"
    dtype = gpu_dtype() if cuda else torch.float32
    clip, short = args.clip, args.short_clip
    rows: list[Row] = []
    for family, name in (("text", "musicgen-small"), ("melody", "musicgen-melody")):
        say(f"building {name} (random weights) on {device}...")
        model, processor = on_model_thread(build, family, args.tiny)
        model = on_model_thread(lambda m=model: m.to(device=device, dtype=dtype).eval())
        engine = MusicGenEngine.from_model(
            model,
            processor,
            EngineSpec(
                model_id=f"random {name}", family=family, fast=False, device=device, decoding="static", max_batch=16
            ),
        )
        melody = hum(MELODY_NOTES, note_seconds=0.5, rate=RATE) if family == "melody" else None
        heard = None if melody is None else Melody(melody, RATE)
        settings = GenerationSettings(prompt=PROMPT, duration=clip, seed=1)
        # Warm-up at the measured shapes: first calls pay for lazy initialisation and the graphs' capture
        plain_generate(model, processor, clip, melody)
        engine.generate(settings, melody=heard)
        _reset_peak(device)
        with PeakMemory() as plain_rss:
            plain = plain_generate(model, processor, clip, melody)
        plain_peak = _peak(device, plain_rss)
        _reset_peak(device)
        with PeakMemory() as app_rss:
            app = engine.generate(settings, melody=heard).seconds_taken
        app_peak = _peak(device, app_rss)
        say(f"{name}: plain {plain:.2f} s, Moodtape {app:.2f} s for {clip:g} s")
        label = f"{family}, {clip:g} s clip: compute s per s of audio ({name}, {str(dtype).removeprefix('torch.')})"
        target = "<= 0.2 (5x real time)" if family == "text" else "<= 0.5 (2x real time)"
        rows.append(Row(label, f"{plain / clip:.3f}", f"{app / clip:.3f}", f"{plain / app:.2f}x faster", target))
        rows.append(memory_row(name, plain_peak, app_peak, "GB allocated on the GPU" if cuda else "GB resident"))
        if family == "text":
            rows.append(first_audio_row("GPU path", plain, time_to_first_audio(engine, clip)))
            rows[-1].target = "<= 0.3 s"
            for n in (1, 4, 16):
                concurrent_requests(engine, n, short)  # warm-up: captures this batch size's graph
                sequential = sum(plain_generate(model, processor, short) for _ in range(n))
                together = concurrent_requests(engine, n, short)
                what = f"throughput, {n} concurrent {short:g} s requests (audio s per s; plain: one by one)"
                rows.append(throughput_row(what, n, short, sequential, together))
                say(f"{n} concurrent: sequential {sequential:.1f} s, batched {together:.1f} s")
            one = next(r for r in rows if r.what.startswith("throughput, 1 "))
            sixteen = rows[-1]
            scale = float(sixteen.moodtape) / float(one.moodtape)
            sixteen.target = f">= 10x one request's throughput (here {scale:.1f}x)"
        captures = engine.graph_capture_seconds
        rows.append(
            Row(
                f"{name}: CUDA graph capture, {len(captures)} buckets (s; once per bucket, at first use)",
                "-",
                f"{sum(captures.values()):.2f}" if captures else "no graphs on CPU",
                f"largest {max(captures.values()):.2f}" if captures else "-",
            )
        )
        del engine, model
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    return rows


def _reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak(device: str, rss: PeakMemory) -> int:
    """Peak bytes: allocated on the GPU, else the process's resident set."""
    return torch.cuda.max_memory_allocated() if device == "cuda" else rss.peak


def fast_comparison_rows(args: argparse.Namespace, say: Callable[..., object]) -> list[Row]:
    """Fast mode side by side, interleaved, best of ``--repeats``: Moodtape's own loop vs the same int8 weights in
    transformers' ``generate`` loop (fast mode before it), then plain ``generate`` and the exact path once each.

    A shorter run than the whole table for a shared machine, where load changes within minutes.
    """
    clip = args.clip
    say("building musicgen-small (random weights)...")
    model, processor = on_model_thread(build, "text", args.tiny)
    own = str(static_decoding.cpu_cache_dtype()).removeprefix("torch.")  # this CPU's key/value cache
    other = "float32" if own == "bfloat16" else "bfloat16"
    engines = {
        "after": MusicGenEngine.from_model(
            model, processor, EngineSpec(model_id="random musicgen-small", fast=True, device="cpu")
        ),
        "before": MusicGenEngine.from_model(
            model, processor, EngineSpec(model_id="random musicgen-small", fast=True, device="cpu", decoding="generate")
        ),
        "other cache": MusicGenEngine.from_model(
            model, processor, EngineSpec(model_id="random musicgen-small", fast=True, device="cpu", cpu_cache=other)
        ),
    }
    settings = GenerationSettings(prompt=PROMPT, duration=clip, seed=1)
    for engine in engines.values():  # warm-up
        engine.generate(GenerationSettings(prompt=PROMPT, duration=1.0, seed=0))
    best = {name: float("inf") for name in engines}
    for repeat in range(args.repeats):
        for name, engine in engines.items():
            best[name] = min(best[name], engine.generate(settings).seconds_taken)
        say(f"repeat {repeat + 1}: best so far {best}")
    rows = []
    plain: float | None = None  # not run: the plain and exact columns take 4 more minutes
    if args.with_plain:
        exact = MusicGenEngine.from_model(
            model, processor, EngineSpec(model_id="random musicgen-small", fast=False, device="cpu")
        )
        exact.generate(GenerationSettings(prompt=PROMPT, duration=1.0, seed=0))
        plain = plain_generate(model, processor, clip)
        app = exact.generate(settings).seconds_taken
        say(f"plain {plain:.1f} s, exact {app:.1f} s")
        rows.append(compute_row("text", clip, plain, app, fast=False, target="within 5% of plain"))
    rows.append(compute_row("text", clip, plain, best["after"], fast=True, target="<= 1.5 s per s"))
    before = "text, fast mode's int8 weights in transformers' generate loop"
    rows.append(compute_row(before, clip, plain, best["before"], fast=True))
    rows.append(
        Row(
            f"fast mode, {clip:g} s clip: Moodtape's loop vs the generate loop (best of {args.repeats}, interleaved)",
            f"{best['before']:.1f} s",
            f"{best['after']:.1f} s",
            f"{best['before'] / best['after']:.2f}x faster",
        )
    )
    rows.append(
        Row(
            f"fast mode, {clip:g} s clip: this CPU's {own} key/value cache vs a {other} one (best of {args.repeats})",
            f"{best['other cache']:.1f} s ({other})",
            f"{best['after']:.1f} s ({own})",
            f"{best['other cache'] / best['after']:.2f}x as fast",
        )
    )
    return rows


def floor_rows(args: argparse.Namespace, say: Callable[..., object]) -> list[Row]:
    """Fast mode against its floor, the bytes a decoding step reads over this machine's read bandwidth (issue 28).

    In one run: the bytes counted from the loaded fast-mode model and the step's key/value buffers, the
    bandwidth (measured before and after the steps; the higher counts), ``Stepper``'s step timed at
    ``--floor-positions`` cached positions and at the clip's middle one, and a clip in fast mode against plain
    ``generate``, interleaved, best of ``--repeats``. A floor ignores compute and everything outside the step,
    so a step cannot beat it.
    """
    clip = args.clip
    say("building musicgen-small (random weights) and its fast-mode form...")
    model, processor = on_model_thread(build, "text", args.tiny)
    stepped = on_model_thread(prepare_for_generation, shared_weights_copy(model), "cpu", True)
    cache_dtype = static_decoding.cpu_cache_dtype()
    inputs = dict(processor(text=[PROMPT], padding=True, return_tensors="pt"))

    # A clip's steps: the first token comes from the prefill, then one step each, on average this far into the cache
    steps = round(clip * 50) + 3 - 1
    middle = 1 + steps // 2
    load = os.getloadavg()[0]

    # 1. Read bandwidth around the timed steps (a shared machine's load changes within minutes)
    size = BANDWIDTH_BYTES >> 7 if args.tiny else BANDWIDTH_BYTES  # tiny: 8 MB, checks the code in a moment
    bandwidth = on_model_thread(floor.read_bandwidth, size)
    positions = sorted({middle, *args.floor_positions})
    timing = on_model_thread(floor.time_steps, stepped, inputs, positions, cache_dtype)
    bandwidth = max(bandwidth, on_model_thread(floor.read_bandwidth, size))
    # Unpacking the int8 weights runs torch's parallel kernels: on the main thread they would start a second
    # OpenMP team, which slows every later step of the model thread (see Fast mode's design rules)
    weights = on_model_thread(floor.weight_bytes, stepped.decoder, timing.rows)
    floors = {n: (weights.total + timing.cache_bytes[n]) / bandwidth for n in positions}
    # A CPU whose last-level cache holds the step's bytes (AMX Xeons report up to 480 MiB) may read them faster
    step_size = weights.total + timing.cache_bytes[middle]
    cached_bandwidth = on_model_thread(floor.read_bandwidth, step_size)
    say(f"bandwidth {bandwidth / 1e9:.1f} GB/s; steps {timing.seconds}; floors {floors}")
    kernels = on_model_thread(floor.matmul_kernels, stepped.decoder, timing.rows)
    del stepped

    # 2. A clip in fast mode against plain generate, interleaved
    fast = MusicGenEngine.from_model(
        model, processor, EngineSpec(model_id="random musicgen-small", fast=True, device="cpu")
    )
    fast.generate(GenerationSettings(prompt=PROMPT, duration=1.0, seed=0))  # warm-up: buffers and int8 kernels
    plain_generate(model, processor, 1.0)
    settings = GenerationSettings(prompt=PROMPT, duration=clip, seed=1)
    plain = app = float("inf")
    for repeat in range(args.repeats):
        plain = min(plain, plain_generate(model, processor, clip))
        app = min(app, fast.generate(settings).seconds_taken)
        say(f"repeat {repeat + 1}: plain {plain:.1f} s, fast {app:.1f} s")

    # 3. The table: bytes, bandwidth, floor against step, and what the floor would make of the clip
    own, cross = str(cache_dtype).removeprefix("torch."), "float32 cross-attention on the text"
    rows = [
        Row(
            "fast-mode step: weights read (MB; int8 matrices + their scales + float norms, biases, embedding rows)",
            "-",
            f"{weights.total / 1e6:.5g}",
            f"int8 {weights.int8 / 1e6:.5g} + scales {weights.scales / 1e6:.3g} + float {weights.float / 1e6:.3g}",
        ),
        *(
            Row(
                f"fast-mode step: key/value cache read at {n:,} cached positions (MB; {own} self-attention, {cross})",
                "-",
                f"{timing.cache_bytes[n] / 1e6:.5g}",
                f"{timing.cache_bytes[n] / weights.total:.2f}x the weights",
            )
            for n in args.floor_positions
        ),
        Row(
            f"memory read bandwidth (GB/s; sum of a {size / 2**20:g} MiB float32 tensor, best of 5, "
            f"{torch.get_num_threads()} threads, before and after the steps)",
            "-",
            f"{bandwidth / 1e9:.4g}",
            "-",
        ),
        Row(
            f"read bandwidth over a tensor the size of the clip's middle step's reads (GB/s; {step_size / 1e6:.4g} MB)",
            "-",
            f"{cached_bandwidth / 1e9:.4g}",
            f"{cached_bandwidth / bandwidth:.2f}x the larger tensor's",
        ),
        *(
            Row(
                f"fast-mode step at {n:,} cached positions (ms; plain column: the floor, bytes read / bandwidth)",
                f"{floors[n] * 1e3:.4g}",
                f"{timing.seconds[n] * 1e3:.4g}",
                f"{timing.seconds[n] / floors[n]:.2f}x the floor",
            )
            for n in args.floor_positions
        ),
        Row(
            f"a step's {kernels.matrices} int8 matmuls alone, {timing.rows} rows (ms; plain column: their bytes / the "
            "bandwidth)",
            f"{kernels.int8_bytes / bandwidth * 1e3:.4g}",
            f"{kernels.int8_seconds * 1e3:.4g}",
            f"{kernels.int8_bytes / kernels.int8_seconds / 1e9:.3g} GB/s; "
            f"{kernels.int8_seconds / timing.seconds[middle]:.0%} of the step at {middle} positions",
        ),
        Row(
            f"the same matrices in 4 bits (ms; torch's CPU int4 weight-only kernel, groups of {kernels.group}, "
            "bfloat16 rows; plain column: fast mode's int8)",
            f"{kernels.int8_seconds * 1e3:.4g}",
            f"{kernels.int4_seconds * 1e3:.4g}",
            f"{kernels.int8_seconds / kernels.int4_seconds:.2f}x as fast; "
            f"{kernels.int4_bytes / kernels.int4_seconds / 1e9:.3g} GB/s of {kernels.int4_bytes / 1e6:.4g} MB",
        ),
        Row(
            f"text, {clip:g} s clip: compute s per s of audio (fast CPU mode, best of {args.repeats}, interleaved)",
            f"{plain / clip:.3g}",  # significant digits: a tiny model's 0.02 s per s would round its ratio away
            f"{app / clip:.3g}",
            f"{app / plain:.3f}x plain",
            "<= 0.10x plain",
        ),
    ]
    loop = steps * timing.seconds[middle]
    at_floor = steps * floors[middle] + max(app - loop, 0.0)  # the rest: what the clip spends outside its steps
    rows.append(
        Row(
            f"fast mode, {clip:g} s clip: its {steps} steps at the step measured at {middle} positions (their middle) "
            "vs the whole generate (s; plain column: the steps alone)",
            f"{loop:.2f}",
            f"{app:.2f}",
            f"steps {100 * loop / app:.0f}% of it",
        )
    )
    rows.append(
        Row(
            f"fast mode at the floor, {clip:g} s clip: compute s per s of audio (steps at the floor, the rest as "
            "measured; plain column: plain transformers)",
            f"{plain / clip:.2f}",
            f"{at_floor / clip:.2f}",
            f"{at_floor / plain:.3f}x plain",
            "<= 0.10x plain",
        )
    )
    rows.append(
        Row("load average (1 min) at the start and end of these rows", "-", f"{load:.1f}", f"{os.getloadavg()[0]:.1f}")
    )
    return rows


def run(args: argparse.Namespace) -> list[Row]:
    say = print if args.verbose else (lambda *a, **k: None)
    if args.device == "cuda" or args.gpu_table:
        return gpu_rows(args, say)
    if args.fast_only:
        return fast_comparison_rows(args, say)
    if args.floor_only:
        return floor_rows(args, say)

    # 1. Text: musicgen-small on the exact path
    say("building musicgen-small (random weights)...")
    model, processor = on_model_thread(build, "text", args.tiny)  # one OpenMP team: see model_thread.py
    windows = {"window_seconds": args.window, "extend_stride": args.stride}  # for tracks longer than one window
    exact = MusicGenEngine.from_model(
        model, processor, EngineSpec(model_id="random musicgen-small", fast=False, device="cpu", **windows)
    )
    rows, plain = exact_rows(model, processor, exact, args, say)

    # 2. Fast CPU mode: int8 decoder weights, quantised from the float model, which is then freed
    fast = MusicGenEngine.from_model(
        model, processor, EngineSpec(model_id="random musicgen-small", fast=True, device="cpu", **windows)
    )
    before = MusicGenEngine.from_model(
        model,
        processor,
        EngineSpec(model_id="random musicgen-small", fast=True, device="cpu", decoding="generate", **windows),
    )
    del exact, model
    gc.collect()
    rows += fast_rows(fast, plain, args, say, before)
    del fast, before

    # 3. Stereo: musicgen-stereo-small; 4. Melody: musicgen-melody
    return rows + stereo_rows(args, say) + melody_rows(args, say)


def cpu_name() -> str:
    """The CPU's model name: /proc/cpuinfo's, else lscpu's, else what ``platform`` knows."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    if not any(line.lower().startswith("model name") for line in lines):
        try:
            lines = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout.splitlines()
        except (OSError, subprocess.SubprocessError):
            lines = []
    for line in lines:
        if line.lower().startswith("model name") and ":" in line:
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def cpu_flags() -> str:
    """The CPU's vector and matrix extensions that decide its speed here (AVX-512, VNNI, bfloat16, AMX)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "flags unknown"
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    return " ".join(flag for flag in wanted if flag in flags) or "no AVX2"


def table(rows: list[Row], args: argparse.Namespace) -> str:
    machine = (
        f"{cpu_name()} ({cpu_flags()}), {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    sizes = "tiny test models" if args.tiny else "random musicgen-small (420M decoder) and musicgen-melody (1.4B)"
    if args.device == "cuda":
        where = f"on {torch.cuda.get_device_name()} ({str(gpu_dtype()).removeprefix('torch.')})"
    else:
        where = "on CPU (float32; fast mode int8)"
    lines = [
        f"Machine: {machine}. Models: {sizes}, {where}, guidance 3, top-k 250.",
        "",
        "| measure | plain transformers | Moodtape | Moodtape vs plain | target |",
        "|---|---|---|---|---|",
        *(f"| {r.what} | {r.plain} | {r.moodtape} | {r.ratio} | {r.target} |" for r in rows),
    ]
    return "\n".join(lines) + "\n"


def _positions(text: str) -> tuple[int, ...]:
    """``--floor-positions``: comma-separated whole numbers, each at least 1."""
    try:
        positions = tuple(int(part) for part in text.split(","))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"positions must be whole numbers separated by commas, got {text!r}") from e
    if min(positions) < 1:
        raise argparse.ArgumentTypeError(f"positions must be at least 1 (the BOS is cached first), got {text!r}")
    return positions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models: checks the benchmark runs, in seconds")
    parser.add_argument("--clip", type=float, default=10.0, help="seconds of audio per clip (default 10)")
    parser.add_argument("--short-clip", type=float, default=3.0, help="clip length for throughput and melody")
    parser.add_argument("--long-seconds", type=float, default=60.0, help="long-form length (default 60)")
    parser.add_argument("--window", type=float, default=30.0, help="long-form window (default 30, as the app)")
    parser.add_argument("--stride", type=float, default=18.0, help="long-form new seconds per window (default 18)")
    parser.add_argument(
        "--no-long-exact", dest="long_exact", action="store_false", help="long-form in fast mode only (saves ~9 min)"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cuda: the GPU table")
    parser.add_argument("--gpu-table", action="store_true", help="the GPU table's code on CPU (checks it runs)")
    parser.add_argument("--fast-only", action="store_true", help="fast mode before vs after, interleaved (shorter)")
    parser.add_argument(
        "--floor-only", action="store_true", help="fast mode against its memory floor, in a few minutes (issue 28)"
    )
    parser.add_argument(
        "--floor-positions",
        type=_positions,
        default=FLOOR_POSITIONS,
        help="--floor-only: cached positions to time the step at, comma-separated (default 250,1000)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="--fast-only, --floor-only: runs of each, best counts")
    parser.add_argument("--with-plain", action="store_true", help="--fast-only: plain and exact once each too")
    parser.add_argument("--out", type=Path, help="default benchmarks/results-latest.md (cuda: results-cuda.md)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = Path(__file__).with_name("results-cuda.md" if args.device == "cuda" else "results-latest.md")
    result = table(run(args), args)
    print(result)
    args.out.write_text(result, encoding="utf-8")


if __name__ == "__main__":
    main()
