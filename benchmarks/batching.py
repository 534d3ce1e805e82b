"""What quantising each row on its own costs and buys fast mode: step time alone and in a batch, logits' error.

Fast mode's int8 matmuls used to quantise their whole input with one scale (torch's dynamic kernel as shipped),
so a batch ran each request's rows through every matmul on its own to keep a request's audio independent of its
batch-mates. Now each row is scaled to its own range first (``lean_layers.rowwise_int8``) and a batch's requests
go through each matmul together. This benchmark runs both in one process on the same random musicgen-small of
the real size, interleaved, best of ``--rounds``:

- ms per decoding step of one guided request (2 rows), and of 4 requests (8 rows), at about 250 cached positions;
- the logits' error against the exact path (float32 weights and cache) over ``--steps`` teacher-forced steps of
  one request: mean and largest absolute difference, as a share of the exact logits' standard deviation;
- the same for 4-bit weights through torch's CPU int4 kernel (``floor.int4_linear``), the one way below the int8
  floor: what a 4-bit mode would gain per step and how far its logits would move. It is measured, not shipped.

Run ``python -m benchmarks.batching`` (about 5 minutes on 2 CPU cores; ``--tiny`` checks it runs).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from benchmarks import floor
from benchmarks.bench import build, concurrent_requests, cpu_flags, cpu_name, request
from generation.model import lean_layers, static_decoding
from generation.model.engine import MusicGenEngine
from generation.model.guidance import tokenize
from generation.model.model_thread import on_model_thread
from generation.model.spec import EngineSpec

PROMPTS = [f"lofi hip hop beat with mellow piano, take {i}" for i in range(4)]
WARM_POSITIONS = 250  # cached positions before the timed steps: a 5 s point in a clip


def per_call_scale(module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """torch's dynamic int8 kernel as shipped: one input scale for all rows (fast mode before ``rowwise_int8``)."""
    params = getattr(module, "_packed_params", None)
    if getattr(params, "dtype", None) != torch.qint8:
        return None
    packed, kernel = params._packed_params, torch.ops.quantized.linear_dynamic.default._op
    return lambda x: kernel(x, packed, True)


def requests_apart(call: Callable[[torch.Tensor], torch.Tensor], requests: int) -> Callable:
    """``call`` on each request's rows on its own (rows are half-major: request r's are r and r + requests)."""
    if requests == 1:
        return call
    return lambda x: torch.stack([call(x[r::requests]) for r in range(requests)], dim=1).flatten(0, 1)


def with_calls(model, make: Callable) -> None:
    """Give every decoder layer and head of a fast-mode ``model`` the int8 calls ``make(module)`` returns."""
    decoder = model.decoder
    for module in decoder.modules():
        call = make(module)
        if call is not None:
            module.forward = call
    for layer in decoder.model.decoder.layers:
        layer.__dict__.pop("_lean_calls", None)  # rebuilt from the new calls on first use


def prefill(model, requests: int, steps: int) -> static_decoding.Prefill:
    inputs, _ = tokenize(model.tokenizer, PROMPTS[:requests], [""] * requests, 256)
    return static_decoding.Prefill(model, inputs, None, steps, guided=True)


def stepper(model, first: static_decoding.Prefill, capacity: int, cache) -> static_decoding.Stepper:
    steps = static_decoding.Stepper(model, first.rows2, capacity, cache)
    steps.load(first)
    return steps


def step_ms(model, requests: int, cache, steps: int) -> float:
    """ms per step for ``requests`` guided requests after ``WARM_POSITIONS`` steps."""
    first = prefill(model, requests, WARM_POSITIONS + steps)
    run = stepper(model, first, WARM_POSITIONS + steps + 8, cache)
    tokens = torch.zeros(first.rows2 * run.codebooks, dtype=torch.long)
    for _ in range(WARM_POSITIONS):
        run.step(tokens)
    started = time.perf_counter()
    for _ in range(steps):
        run.step(tokens)
    return (time.perf_counter() - started) / steps * 1e3


def forced_logits(model, cache, steps: int) -> torch.Tensor:
    """Logits of one guided request over ``steps`` steps fed the same token sequence (teacher forcing)."""
    first = prefill(model, 1, steps)
    run = stepper(model, first, steps + 8, cache)
    generator = torch.Generator().manual_seed(0)
    vocabulary = model.decoder.config.vocab_size
    logits = [first.logits]
    for _ in range(steps):
        tokens = torch.randint(0, vocabulary, (run.codebooks,), generator=generator).repeat(2)
        logits.append(run.step(tokens).float())
    return torch.stack(logits)


def error(made: torch.Tensor, exact: torch.Tensor) -> tuple[float, float]:
    scale = exact.std()
    difference = (made - exact).abs()
    return float(difference.mean() / scale), float(difference.max() / scale)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny test model: checks the benchmark runs")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of each is kept")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per round, and teacher-forced steps")
    parser.add_argument(
        "--requests-seconds",
        type=float,
        default=10.0,
        help="then 4 requests of this many seconds one by one and at once, through the engine (0: skip)",
    )
    args = parser.parse_args(argv)

    def measure() -> list[str]:
        model, processor = build("text", args.tiny)
        spec = {"model_id": "random musicgen-small", "device": "cpu"}
        fast = MusicGenEngine.from_model(model, processor, EngineSpec(fast=True, **spec))
        exact = MusicGenEngine.from_model(model, processor, EngineSpec(fast=False, **spec))
        fast.load(), exact.load()
        fast_model, exact_model = fast._model, exact._model
        fast_model.tokenizer = exact_model.tokenizer = processor.tokenizer  # read by ``prefill``
        cache = fast._cpu_cache_dtype()
        made: dict[int, floor.Int4Linear | None] = {}  # each int8 layer's 4-bit form, made once for every round

        def int4_calls(module) -> floor.Int4Linear | None:
            if id(module) not in made:
                made[id(module)] = floor.int4_linear(module)
            return made[id(module)]

        with torch.inference_mode():
            reference = forced_logits(exact_model, torch.float32, args.steps)
            times: dict[str, list[float]] = {}
            errors: dict[str, tuple[float, float]] = {}
            variants = {
                "one scale per call, requests apart (before)": lambda requests: (
                    lambda module: (lambda call: call and requests_apart(call, requests))(per_call_scale(module))
                ),
                "a scale per row, 7 bits as torch.ao's, requests together": lambda requests: (
                    lambda module: lean_layers.rowwise_int8(module, full_range=False)
                ),
                f"a scale per row, {8 if lean_layers.full_range_int8() else 7} bits, requests together (now)": (
                    lambda requests: lean_layers.rowwise_int8
                ),
                f"int4 weights in groups of {floor.INT4_GROUP}, bfloat16 rows (torch's CPU int4 kernel; not shipped)": (
                    lambda requests: int4_calls
                ),
            }
            for _ in range(args.rounds):
                for name, make in variants.items():
                    for requests in (1, 4):
                        with_calls(fast_model, make(requests))
                        times.setdefault(f"{name}, {requests}", []).append(
                            step_ms(fast_model, requests, cache, args.steps)
                        )
                    with_calls(fast_model, make(1))
                    errors[name] = error(forced_logits(fast_model, cache, args.steps), reference)
        lines = [
            f"CPU: {cpu_name()} ({cpu_flags()}), {torch.get_num_threads()} threads, torch {torch.__version__}; "
            f"{'tiny model' if args.tiny else 'random musicgen-small (real size)'}, key/value cache {cache}, "
            f"best of {args.rounds} interleaved rounds of {args.steps} steps after {WARM_POSITIONS} positions",
            "",
            "| matmuls | ms per step, 1 request | ms per step, 4 requests | 4 requests' throughput vs 1 "
            "| logits' error vs exact path: mean, max (share of the logits' std) |",
            "|---|---|---|---|---|",
        ]
        for name in variants:
            one, four = min(times[f"{name}, 1"]), min(times[f"{name}, 4"])
            mean, largest = errors[name]
            lines.append(f"| {name} | {one:.3g} | {four:.3g} | {4 * one / four:.2f}x | {mean:.4f}, {largest:.3f} |")
        with_calls(fast_model, lean_layers.rowwise_int8)  # the engine as shipped: rows together
        return lines, fast

    lines, fast = on_model_thread(measure)
    seconds = args.requests_seconds
    if seconds > 0:  # from request threads, as the app sends them: the engine batches those that arrive together
        fast.generate(request(9, 1.0))
        one_by_one = sum(fast.generate(request(i, seconds)).seconds_taken for i in range(4))
        together = concurrent_requests(fast, 4, seconds)
        lines += [
            "",
            f"4 different {seconds:g} s requests through the engine (fast mode as shipped): one by one "
            f"{one_by_one:.1f} s, sent at once {together:.1f} s: {one_by_one / together:.2f}x the throughput",
        ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
