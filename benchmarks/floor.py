"""Fast mode's memory floor: the bytes one decoding step reads, this machine's read bandwidth, and the step's time.

A decoding step of fast mode reads every int8 weight matrix once (one token per row: matrix-vector work), so
it cannot take less than the bytes it reads over the memory's read bandwidth. ``benchmarks.bench --floor-only``
prints, for the machine it runs on: the bytes counted from the loaded fast-mode model and from ``Stepper``'s own
key/value buffers, the bandwidth measured in the same run, the floor they give, and the measured step.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

# Per output channel, the int8 kernel keeps a float32 scale, an int32 zero point and an int32 column offset
# beside the packed matrix (fbgemm's PackedLinearWeight); the unpacked tensors hold them as float64 and int64
PER_CHANNEL_BYTES = 4 + 4 + 4
# Computed once per window from the text (Prefill's cross-attention cache), not read by a step
NOT_READ_PER_STEP = ("encoder_attn.k_proj", "encoder_attn.v_proj")
STEP_WINDOW = 16  # steps timed from each measured position on; their median is the step's time


@dataclass(frozen=True)
class WeightBytes:
    """Bytes of weights one fast-mode decoding step reads, by kind."""

    int8: int  # the int8 weight matrices (projections, feed-forward, LM heads)
    scales: int  # their per-output-channel scales, zero points and column offsets
    float: int  # float weights: layer norms, biases, the embedding rows and the position row read for the step

    @property
    def total(self) -> int:
        return self.int8 + self.scales + self.float


def weight_bytes(decoder: Any, rows: int) -> WeightBytes:
    """What a step of fast mode's ``decoder`` (``MusicgenForCausalLM``, int8) reads from weights for ``rows`` rows.

    Counted from the decoder's own tensors, module by module, as ``Stepper`` reads them: int8 linear layers in
    full (but cross-attention's key and value projections, run once per window), layer norms in full, one
    embedding row per codebook and row, and one row of the sinusoidal positions.
    """
    int8 = scales = floats = 0
    for name, module in decoder.named_modules():
        if isinstance(module, torch.nn.LayerNorm):
            floats += sum(p.nbytes for p in module.parameters())
        elif isinstance(module, torch.nn.Embedding):
            floats += rows * module.weight[0].nbytes
        elif name.endswith(NOT_READ_PER_STEP):
            continue
        elif _is_int8_linear(module):
            weight, bias = module.weight(), module.bias()
            int8 += weight.int_repr().nbytes
            scales += weight.q_per_channel_scales().numel() * PER_CHANNEL_BYTES
            floats += 0 if bias is None else bias.nbytes
        elif isinstance(module, torch.nn.Linear):  # a float layer left unquantised
            floats += sum(p.nbytes for p in module.parameters())
    positions = decoder.model.decoder.embed_positions.weights
    return WeightBytes(int8=int8, scales=scales, float=floats + positions[0].nbytes)


def _is_int8_linear(module: Any) -> bool:
    packed = getattr(module, "_packed_params", None)
    return packed is not None and getattr(packed, "dtype", None) == torch.qint8


def cache_bytes(stepper: Any, positions: int) -> int:
    """Bytes a step's attention reads from ``stepper``'s caches with ``positions`` cached: the self-attention keys
    and values of those positions and the new one (in the cache's dtype), and the cross-attention cache of the
    text, which every step reads whole."""
    own = sum(buffer.narrow(2, 0, positions + 1).nbytes for buffer in (*stepper.keys, *stepper.values))
    cross = sum(t.nbytes for t in (*(stepper.cross_keys or ()), *(stepper.cross_values or ())))
    return own + cross


def read_bandwidth(nbytes: int, repeats: int = 5) -> float:
    """Memory read bandwidth in bytes per second: summing a float32 tensor of ``nbytes``, best of ``repeats``.

    Run it on the model thread: it uses that thread's OpenMP team, as a decoding step does.
    """
    if nbytes < 4 or repeats < 1:
        raise ValueError(f"read_bandwidth needs at least 4 bytes and 1 repeat, got {nbytes} bytes, {repeats} repeats")
    data = torch.ones(nbytes // 4)
    data.sum()  # warm-up: the pages are touched and the threads started
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        data.sum()
        best = min(best, time.perf_counter() - started)
    return data.nbytes / best


@dataclass(frozen=True)
class StepTiming:
    """Fast mode's measured step at some cache lengths, and what the step reads there."""

    seconds: dict[int, float]  # cached positions -> median seconds of the steps from there on
    cache_bytes: dict[int, int]  # cached positions -> bytes read from the key/value caches
    cache_dtype: torch.dtype
    rows: int  # decoder rows (one request, doubled for guidance)


def time_steps(
    model: Any, inputs: dict[str, torch.Tensor], positions: Sequence[int], cache_dtype: torch.dtype, guided: bool = True
) -> StepTiming:
    """Time ``Stepper.step`` of fast mode's ``model`` on one request's ``inputs`` at each of ``positions`` cached
    positions: the median of the ``STEP_WINDOW`` steps from there on.

    The cache up to each position is filled with random keys and values rather than stepped through (a thousand
    steps take minutes on a shared machine), and every step's tokens are the same random ids: a step's time
    depends on how many positions it reads, not on their values or on which codes it embeds.
    """
    from generation.model.static_decoding import Prefill, Stepper

    if not positions or min(positions) < 1:
        raise ValueError(f"positions must be at least 1 (the BOS is cached first), got {list(positions)}")
    last = max(positions) + STEP_WINDOW
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        prefill = Prefill(model, inputs, None, last, guided)
        stepper = Stepper(model, prefill.rows2, prefill.offset + prefill.ids.shape[-1], cache_dtype)
        stepper.load(prefill)
        if min(positions) < stepper.length:
            raise ValueError(f"positions must be at least the prefill's {stepper.length}, got {list(positions)}")
        vocab = model.decoder.config.vocab_size
        tokens = torch.randint(vocab, (prefill.rows2 * stepper.codebooks,), generator=generator)
        timed: dict[int, list[float]] = {n: [] for n in positions}
        read = {n: cache_bytes(stepper, n) for n in positions}
        for start in sorted(timed):
            if stepper.length < start:
                _fill(stepper, start, generator)
            while stepper.length < start + STEP_WINDOW:
                n = stepper.length
                started = time.perf_counter()
                stepper.step(tokens)
                took = time.perf_counter() - started
                for first, times in timed.items():
                    if first <= n < first + STEP_WINDOW:
                        times.append(took)
    seconds = {n: statistics.median(times) for n, times in timed.items()}
    return StepTiming(seconds=seconds, cache_bytes=read, cache_dtype=cache_dtype, rows=prefill.rows2)


def _fill(stepper: Any, length: int, generator: torch.Generator) -> None:
    """Random keys and values for ``stepper``'s positions up to ``length``, which it then counts as cached."""
    for buffer in (*stepper.keys, *stepper.values):
        filled = buffer.narrow(2, stepper.length, length - stepper.length)
        filled.copy_(torch.randn(filled.shape, generator=generator))
    stepper.length = length
