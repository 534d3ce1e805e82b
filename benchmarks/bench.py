"""Moodtape's speed and memory, side by side with a plain transformers ``generate`` on the same model.

Builds randomly initialised models of the exact sizes of musicgen-small and musicgen-melody (speed does not
depend on the weights' values; architecture numbers from the public configs, see shared/FACTS.md), then
measures, in one run:

* seconds of compute per second of audio: plain ``generate`` vs Moodtape's exact path and its fast CPU mode,
  for text (musicgen-small) and for text plus a melody (musicgen-melody);
* time to first streamed audio;
* throughput with 1, 4 and 8 concurrent requests (Moodtape batches them) vs the same requests one by one;
* a long-form track vs the same length made as six separate clips (exact path and fast mode);
* peak memory (resident set) of each path, and the app's own work outside ``generate`` (decode, files).

Run ``python -m benchmarks.bench`` (about 25 minutes on 2 CPU cores; ``--no-long-exact`` saves 9 of them);
``--tiny`` runs the same code on tiny models in seconds (the test suite does, so the benchmark cannot rot).
It prints a Markdown table and writes it to ``--out`` (default ``benchmarks/results.md``).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from generation.model.chroma import ChromaExtractor, MelodyProcessor
from generation.model.engine import MusicGenEngine
from generation.model.model_thread import on_model_thread
from generation.settings import GenerationSettings
from generation.studio import Studio, TrackRequest

PROMPT = "lo-fi hip hop beat, mellow Rhodes chords, vinyl crackle, 80 BPM"
ARCHITECTURES = {  # decoder sizes from the public configs
    "small": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "ffn_dim": 4096},
    "melody": {"hidden_size": 1536, "num_hidden_layers": 48, "num_attention_heads": 24, "ffn_dim": 6144},
    "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "ffn_dim": 64},
}
T5_BASE = {"d_model": 768, "num_layers": 12, "num_heads": 12, "d_ff": 3072, "d_kv": 64, "vocab_size": 32128}
T5_TINY = {"d_model": 32, "num_layers": 2, "num_heads": 4, "d_ff": 64, "d_kv": 8, "vocab_size": 32128}
ENCODEC_32K = {"num_filters": 64, "hidden_size": 128, "codebook_dim": 128, "num_lstm_layers": 2}
ENCODEC_TINY = {"num_filters": 4, "hidden_size": 16, "codebook_dim": 16, "num_lstm_layers": 1}


@dataclass
class Row:
    """One line of the results table."""

    what: str
    plain: str
    moodtape: str
    ratio: str
    target: str = ""


def build(family: str, tiny: bool):
    """A randomly initialised MusicGen (or MusicGen-Melody) of the real size, with a tokenizer and processor."""
    from transformers import (
        EncodecConfig,
        EncodecFeatureExtractor,
        MusicgenConfig,
        MusicgenDecoderConfig,
        MusicgenForConditionalGeneration,
        MusicgenMelodyConfig,
        MusicgenMelodyForConditionalGeneration,
        MusicgenProcessor,
        T5Config,
    )

    from tests.tiny_models import _tokenizer

    arch = ARCHITECTURES["tiny" if tiny else ("small" if family == "text" else "melody")]
    text = T5Config(**(T5_TINY if tiny else T5_BASE), decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    codec = EncodecConfig(
        sampling_rate=32_000,
        audio_channels=1,
        upsampling_ratios=[8, 5, 4, 4],
        target_bandwidths=[2.2],
        codebook_size=2048,
        use_causal_conv=False,
        normalize=False,
        use_conv_shortcut=False,
        **(ENCODEC_TINY if tiny else ENCODEC_32K),
    )
    decoder = dict(
        vocab_size=2048,
        num_codebooks=4,
        max_position_embeddings=2048,
        audio_channels=1,
        pad_token_id=2048,
        bos_token_id=2048,
        decoder_start_token_id=2048,
        **arch,
    )
    torch.manual_seed(0)
    tokenizer = _tokenizer()
    if family == "text":
        config = MusicgenConfig(
            text_encoder=text.to_dict(),
            audio_encoder=codec.to_dict(),
            decoder=MusicgenDecoderConfig(**decoder).to_dict(),
        )
        model = MusicgenForConditionalGeneration(config)
        extractor = EncodecFeatureExtractor(feature_size=1, sampling_rate=32_000)
        processor = MusicgenProcessor(feature_extractor=extractor, tokenizer=tokenizer)
    else:
        config = MusicgenMelodyConfig(
            text_encoder=text.to_dict(),
            audio_encoder=codec.to_dict(),
            decoder={**decoder, "model_type": "musicgen_melody_decoder"},
            num_chroma=12,
            chroma_length=235,
        )
        model = MusicgenMelodyForConditionalGeneration(config)
        processor = MelodyProcessor(tokenizer, ChromaExtractor())
    gc = model.generation_config
    gc.decoder_start_token_id = gc.pad_token_id = gc.bos_token_id = 2048
    return model.eval(), processor


def plain_generate(model, processor, seconds: float, melody: np.ndarray | None = None, batch: int = 1) -> float:
    """The baseline: transformers' own ``generate`` with MusicGen's defaults; returns wall seconds.

    It runs on Moodtape's model thread, like the app's own work, so both use the same OpenMP threads.
    """
    return on_model_thread(_plain_generate, model, processor, seconds, melody, batch)


def _plain_generate(model, processor, seconds: float, melody: np.ndarray | None, batch: int) -> float:
    if melody is None:
        inputs = processor(text=[PROMPT] * batch, padding=True, return_tensors="pt")
    else:
        inputs = processor([PROMPT] * batch, [_melody(melody)] * batch)
    steps = round(seconds * 50) + 3
    torch.manual_seed(0)
    started = time.perf_counter()
    with torch.inference_mode():
        model.generate(**inputs, max_new_tokens=steps, do_sample=True, guidance_scale=3.0, top_k=250)
    return time.perf_counter() - started


def _melody(samples: np.ndarray):
    from generation.model.types import Melody

    return Melody(samples, 32_000)


def hum(seconds: float) -> np.ndarray:
    """A voice-like test hum: a rising arpeggio with harmonics."""
    t = np.arange(round(seconds * 32_000)) / 32_000
    pitch = 220.0 * 2 ** (np.floor(t * 2) % 4 * 4 / 12)
    return (0.4 * sum(a * np.sin(2 * np.pi * h * pitch * t) for h, a in ((1, 1), (2, 0.5), (3, 0.25)))).astype(
        np.float32
    )


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


def concurrent_requests(engine: MusicGenEngine, n: int, seconds: float) -> float:
    """Wall seconds for ``n`` different requests sent to ``engine`` at the same moment (it batches them)."""
    return concurrently(
        [
            (lambda i=i: engine.generate(GenerationSettings(prompt=f"{PROMPT} {i}", duration=seconds, seed=i)))
            for i in range(n)
        ]
    )


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


def run(args: argparse.Namespace) -> list[Row]:
    clip, short, long_s = args.clip, args.short_clip, args.long_seconds
    rows: list[Row] = []
    say = print if args.verbose else (lambda *a, **k: None)

    # 1. Text: musicgen-small
    say("building musicgen-small (random weights)...")
    model, processor = on_model_thread(build, "text", args.tiny)  # the first thread to use torch runs fastest
    windows = {"window_seconds": args.window, "extend_stride": args.stride}  # for tracks longer than one window
    exact = MusicGenEngine.from_model(model, processor, "random musicgen-small", fast=False, device="cpu", **windows)
    plain_generate(model, processor, 1.0)  # warm-up: first calls pay for lazy initialisation
    exact.generate(GenerationSettings(prompt=PROMPT, duration=1.0, seed=0))
    with PeakMemory() as mem_plain:
        plain = plain_generate(model, processor, clip)
    say(f"plain {clip:g} s clip: {plain:.1f} s")
    settings = GenerationSettings(prompt=PROMPT, duration=clip, seed=1)
    with PeakMemory() as mem_app:
        app = exact.generate(settings).seconds_taken
    say(f"app exact: {app:.1f} s")
    rows.append(
        Row(
            f"text, {clip:g} s clip: compute s per s of audio (exact)",
            f"{plain / clip:.2f}",
            f"{app / clip:.2f}",
            f"{app / plain:.3f}x time",
            "within 5% of plain",
        )
    )

    with tempfile.TemporaryDirectory() as folder:
        studio = Studio(exact, output_dir=folder, melody_engine=exact)
        studio.warm_up()  # as the app does at start-up
        started = time.perf_counter()
        track = studio.make_track(TrackRequest(prompt=PROMPT, duration=clip, seed=1))
        overhead = time.perf_counter() - started - track.generated.seconds_taken
        del studio, track
    rows.append(
        Row(
            "app work outside generate (WAV, recipe, level), s",
            "-",
            f"{overhead:.2f}",
            f"{100 * overhead / plain:.1f}% of plain",
            "nothing measurable",
        )
    )

    ttfa_exact = time_to_first_audio(exact, clip)
    rows.append(
        Row(
            "time to first audio, exact (s)",
            f"{plain:.1f} (whole clip)",
            f"{ttfa_exact:.2f}",
            f"{plain / ttfa_exact:.1f}x sooner",
            "<= 2.5 s",
        )
    )

    # Throughput: the same short requests one by one (plain) vs concurrently (Moodtape batches them)
    for n in (1, 4, 8):
        sequential = sum(plain_generate(model, processor, short) for _ in range(n))
        together = concurrent_requests(exact, n, short)
        rows.append(
            Row(
                f"throughput, {n} concurrent {short:g} s requests (audio s per s)",
                f"{n * short / sequential:.3f}",
                f"{n * short / together:.3f}",
                f"{sequential / together:.2f}x",
                ">= 2x at 4" if n == 4 else "",
            )
        )
        say(f"{n} concurrent: sequential {sequential:.1f} s, batched {together:.1f} s")

    rows.append(
        Row(
            "peak memory, text (GB resident)",
            f"{mem_plain.peak / 1e9:.2f}",
            f"{mem_app.peak / 1e9:.2f}",
            f"{(mem_app.peak - mem_plain.peak) / 1e6:+.0f} MB",
            "",
        )
    )

    if args.long_exact:
        rows.append(long_form_row(exact, long_s, "exact"))
        say(rows[-1])

    # 2. Fast CPU mode: int8 decoder weights, quantised from the float model, which is then freed
    fast = MusicGenEngine.from_model(model, processor, "random musicgen-small", fast=True, device="cpu", **windows)
    del exact, model
    gc.collect()
    with PeakMemory() as mem_fast:
        fast_s = fast.generate(settings).seconds_taken
    say(f"app fast: {fast_s:.1f} s")
    rows.append(
        Row(
            f"text, {clip:g} s clip: compute s per s of audio (fast CPU mode)",
            f"{plain / clip:.2f}",
            f"{fast_s / clip:.2f}",
            f"{plain / fast_s:.2f}x faster",
            "<= 1.5 s per s",
        )
    )
    ttfa_fast = time_to_first_audio(fast, clip)
    one_by_one = sum(
        fast.generate(GenerationSettings(prompt=f"{PROMPT} {i}", duration=short, seed=i)).seconds_taken
        for i in range(4)
    )
    together = concurrent_requests(fast, 4, short)
    rows.append(
        Row(
            f"throughput, 4 concurrent {short:g} s requests, fast mode (plain column: fast mode one by one)",
            f"{4 * short / one_by_one:.3f}",
            f"{4 * short / together:.3f}",
            f"{one_by_one / together:.2f}x",
            ">= 2x at 4",
        )
    )
    rows.append(
        Row(
            "time to first audio, fast mode (s)",
            f"{plain:.1f} (whole clip)",
            f"{ttfa_fast:.2f}",
            f"{plain / ttfa_fast:.1f}x sooner",
            "<= 2.5 s",
        )
    )
    rows.append(
        Row(
            "peak memory, fast mode (GB resident)",
            f"{mem_plain.peak / 1e9:.2f}",
            f"{mem_fast.peak / 1e9:.2f}",
            f"{(mem_fast.peak - mem_plain.peak) / 1e6:+.0f} MB",
            "",
        )
    )

    rows.append(long_form_row(fast, long_s, "fast mode"))
    say(rows[-1])
    del fast

    # 3. Melody: musicgen-melody
    say("building musicgen-melody (random weights)...")
    model, processor = on_model_thread(build, "melody", args.tiny)
    melody = hum(8.0)
    exact = MusicGenEngine.from_model(model, processor, "random musicgen-melody", family="melody", fast=False)
    plain_generate(model, processor, 1.0, melody)  # warm-up
    plain = plain_generate(model, processor, short, melody)
    app = exact.generate(GenerationSettings(prompt=PROMPT, duration=short, seed=1), melody=_melody(melody))
    rows.append(
        Row(
            f"melody, {short:g} s clip: compute s per s of audio (exact)",
            f"{plain / short:.2f}",
            f"{app.seconds_taken / short:.2f}",
            f"{app.seconds_taken / plain:.3f}x time",
            "within 5% of plain",
        )
    )
    fast = MusicGenEngine.from_model(model, processor, "random musicgen-melody", family="melody", fast=True)
    fast_s = fast.generate(GenerationSettings(prompt=PROMPT, duration=short, seed=1), melody=_melody(melody))
    rows.append(
        Row(
            f"melody, {short:g} s clip: compute s per s of audio (fast CPU mode)",
            f"{plain / short:.2f}",
            f"{fast_s.seconds_taken / short:.2f}",
            f"{plain / fast_s.seconds_taken:.2f}x faster",
            "",
        )
    )
    return rows


def table(rows: list[Row], args: argparse.Namespace) -> str:
    machine = (
        f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    sizes = "tiny test models" if args.tiny else "random musicgen-small (420M decoder) and musicgen-melody (1.4B)"
    lines = [
        f"Machine: {machine}. Models: {sizes}, float32 on CPU, guidance 3, top-k 250.",
        "",
        "| measure | plain transformers | Moodtape | Moodtape vs plain | target |",
        "|---|---|---|---|---|",
        *(f"| {r.what} | {r.plain} | {r.moodtape} | {r.ratio} | {r.target} |" for r in rows),
    ]
    return "\n".join(lines) + "\n"


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
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.md"))
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    result = table(run(args), args)
    print(result)
    args.out.write_text(result, encoding="utf-8")


if __name__ == "__main__":
    main()
