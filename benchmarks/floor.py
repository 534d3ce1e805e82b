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


INT4_GROUP = 128  # weights per scale and zero point in the 4-bit comparison, as torchao's int4 weight-only default
KERNEL_REPEATS = 5  # passes over a step's matrices in ``matmul_kernels``; the median counts


@dataclass(frozen=True)
class KernelTiming:
    """One step's int8 matmuls timed apart, against the same matrices in 4 bits."""

    int8_seconds: float  # fast mode's own calls (``lean_layers.direct``), one pass over every matrix a step reads
    int4_seconds: float  # ``int4_linear``'s calls over the same matrices: torch's CPU int4 weight-only kernel
    int8_bytes: int  # the int8 matrices' bytes, as ``weight_bytes`` counts them
    int4_bytes: int  # the packed int4 matrices' bytes plus their bfloat16 scales and zero points
    matrices: int
    group: int  # int4 weights per scale (the first matrix's: every one's at full size)


def matmul_kernels(decoder: Any, rows: int, repeats: int = KERNEL_REPEATS) -> KernelTiming:
    """Time a step's int8 matmuls on their own, and the same matrices with 4-bit weights (``int4_linear``).

    Fewer bits per weight is the one way below the int8 floor, so this says whether torch's 4-bit kernel turns
    half the bytes into less time on this CPU. Each pass runs every int8 layer a step reads once, in the model's
    order, on ``rows`` random rows (each layer's weights are evicted from the caches by the others', as in a
    step), interleaved with the other kind's pass. Run it on the model thread.
    """
    if rows < 1 or repeats < 1:
        raise ValueError(f"matmul_kernels needs at least 1 row and 1 repeat, got {rows} rows, {repeats} repeats")
    from generation.model.lean_layers import direct

    int8_calls, int4_calls = [], []
    int8_bytes = int4_bytes = group = 0
    for name, module in decoder.named_modules():
        if name.endswith(NOT_READ_PER_STEP) or not _is_int8_linear(module):
            continue
        call, weight = int4_linear(module), module.weight()
        assert call is not None  # an int8 layer always has a 4-bit form
        int8_bytes += weight.int_repr().nbytes
        int4_bytes += call.nbytes
        group = group or call.group
        x = torch.randn(rows, 1, weight.shape[1])
        int8_calls.append((direct(module), x))
        int4_calls.append((call, x))

    timed: dict[str, list[float]] = {"int8": [], "int4": []}
    with torch.inference_mode():
        for _ in range(repeats + 1):  # the first round warms up; interleaved, so a change in load hits both
            for kind, calls in (("int8", int8_calls), ("int4", int4_calls)):
                started = time.perf_counter()
                for call, x in calls:
                    call(x)
                timed[kind].append(time.perf_counter() - started)
    median = {kind: statistics.median(times[1:]) for kind, times in timed.items()}
    return KernelTiming(
        int8_seconds=median["int8"],
        int4_seconds=median["int4"],
        int8_bytes=int8_bytes,
        int4_bytes=int4_bytes,
        matrices=len(int8_calls),
        group=group or INT4_GROUP,
    )


class Int4Linear:
    """A linear layer with 4-bit weights through torch's CPU int4 weight-only kernel: rows in bfloat16, float32 out.

    Each row is multiplied on its own (no activation scale), so a row gives the same values alone or batched.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None):
        self.out_features, self.in_features = weight.shape
        self.packed, self.scales_zeros, self.group = int4_weights(weight)
        self.bias = bias
        self.nbytes = self.packed.nbytes + self.scales_zeros.nbytes

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).to(torch.bfloat16)
        out = torch._weight_int4pack_mm_for_cpu(rows, self.packed, self.group, self.scales_zeros).float()
        out = out.view(*x.shape[:-1], self.out_features)
        return out if self.bias is None else out.add_(self.bias)


def int4_linear(module: Any) -> Int4Linear | None:
    """A ``torch.ao`` dynamic int8 linear layer's weights in 4 bits (``Int4Linear``); None for anything else.

    The int4 weights are the int8 ones dequantised and quantised again: their error is close to what quantising
    the float weights to 4 bits would give, since the int8 rounding is far finer than the int4 one.
    """
    if not _is_int8_linear(module):
        return None
    bias = module.bias()
    return Int4Linear(module.weight().dequantize(), None if bias is None else bias.detach())


def int4_weights(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``weight`` ([out, in], float) as torch's CPU int4 kernel takes it: packed codes, bfloat16 scales and zeros
    ([in / group, out, 2]; a weight is (code - 8) x scale + zero), and the group size (asymmetric, ``INT4_GROUP``
    weights per scale as torchao's int4 weight-only default, fewer where the width is not a multiple)."""
    out_features, in_features = weight.shape
    group = next((g for g in (INT4_GROUP, 64, 32) if in_features % g == 0), None)
    if group is None:
        raise ValueError(f"int4 weights need an input width that is a multiple of 32, got {in_features}")
    grouped = weight.float().reshape(out_features, in_features // group, group)
    low, high = grouped.amin(-1, keepdim=True), grouped.amax(-1, keepdim=True)
    scale = ((high - low) / 15).clamp_min(1e-8)
    codes = ((grouped - low) / scale).round().clamp(0, 15).to(torch.int32).reshape(out_features, in_features)
    zero = low + 8 * scale
    scales_zeros = torch.stack((scale, zero), -1).reshape(out_features, -1, 2).transpose(0, 1).contiguous()
    return torch._convert_weight_to_int4pack_for_cpu(codes, 1), scales_zeros.to(torch.bfloat16), group
