"""Moodtape's own decoding loop: a key/value cache allocated once per window and a lean step, for fast CPU
mode and for GPUs.

transformers' ``generate`` does a lot around each step of a 420M decoder: it re-applies the delay pattern
to the whole sequence, rebuilds attention masks, runs its logits processors over every row and appends to a
growing cache; on a GPU each of the step's ~600 small kernels is launched from Python, which takes longer than
the arithmetic. This loop:

1. builds the conditioning (text states, a melody's prefix, negative prompts, guidance's null half) with
   transformers' own methods and runs the first forward (BOS, any code prompt, a melody prefix) through
   transformers' decoder, so what conditions the decoding is exactly what ``generate`` would use;
2. copies that forward's keys and values into buffers sized for the whole window;
3. runs every later step as direct tensor calls on those buffers (``Stepper``), samples with
   ``SeededSampler.choose`` (each request its own seed and settings) and hands the ids so far to
   ``StepWatcher`` (progress, streaming, cancel), as ``generate``'s loop does.

On CPU (fast mode) attention reads only the filled part of the cache, kept in bfloat16 on CPUs with AMX (half
the bytes attention reads per step) and in float32 elsewhere (``cpu_cache_dtype``), and the int8 matmuls quantise
each row with its own scale (``lean_layers.rowwise_int8``), so a batch's requests share each read of the weights
and a request's audio does not depend on what it is batched with. On CUDA the step has fixed shapes
(attention over the whole buffer with a mask, the position as a tensor) and is captured once per bucket of
batch rows, cache length and text length as a CUDA graph (``CudaGraphSteps``), then replayed: one launch per
step.

What "the same" means: with float32 weights and a float32 cache, the loop gives the tokens ``generate`` gives
for the same seeds (tested on tiny models: the same kernels on the same values), and the fixed-shape step
gives the tokens of the dynamic one (its masked positions add exact zeros to the softmax; tested). With a
bfloat16 cache or half-precision weights the logits move by rounding, so a sampled token may differ; a request
then still gives the same audio every time it runs on the same machine in the same batch bucket.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from .guidance import _BUILDERS
from .lean_layers import direct, layer_calls

SHARED_PREFIX_MIN = 100  # positions (2 s) a shared prefix needs before reading it once pays for joining softmaxes
_FLASH = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu  # SDPA that also returns its log-sum-exp
POSITION_BUCKET = 256  # CUDA graphs: cache lengths are rounded up to a multiple of this many positions
TEXT_BUCKETS = (32, 64, 128, 256)  # CUDA graphs: cross-attention lengths (prompt tokens) are padded to one of these
ROW_BUCKETS = (2, 4, 8, 16, 32, 64)  # CUDA graphs: decoder rows (requests, doubled for guidance) padded to one of these
MAX_GRAPHS = 8  # buckets kept at once (each holds its own key/value buffers); the least recently used goes first

log = logging.getLogger(__name__)


def cpu_cache_dtype() -> torch.dtype:
    """Fast mode's key/value cache on this CPU: bfloat16 where the CPU has AMX, float32 elsewhere.

    bfloat16 halves the bytes attention reads per step, but only AMX makes its attention kernel fast: on an
    AMD EPYC with avx512_bf16 and no AMX, SDPA over 250 cached positions took 395 us a layer in bfloat16 against
    153 in float32, and a 6 s clip 1.14 s of compute per second of audio against 1.01. Fixed per machine, so a
    recipe replays to the same audio on it.
    """
    return torch.bfloat16 if _has_amx() else torch.float32


def _has_amx() -> bool:
    try:
        return bool(torch.cpu._is_amx_tile_supported())
    except AttributeError:  # a torch without the probe: assume the common case, no AMX
        return False


class Prefill:
    """The first forward of a window, through transformers: conditioning, delay pattern, cache and logits.

    Requests whose forward would be the same (takes and a section's candidates differ only in their seeds) run
    it once; their rows share its results.
    """

    def __init__(self, model: Any, inputs: dict[str, torch.Tensor], prompt, steps: int, guided: bool):
        from transformers.masking_utils import create_bidirectional_mask

        # 1. Conditioning, with transformers' own method (a negative prompt's wrapper included)
        config = copy.copy(model.generation_config)
        config.guidance_scale = 3.0 if guided else None  # any value > 1 doubles the rows for guidance
        input_ids = inputs["input_ids"]
        kwargs = {name: value for name, value in inputs.items() if name != "input_ids"}
        build = getattr(model, next(name for name in _BUILDERS if hasattr(type(model), name)))
        kwargs = build(input_ids, kwargs, "input_ids", config)

        # 2. BOS, then any code prompt, laid out in the codebook delay pattern
        start_id = config.decoder_start_token_id if config.decoder_start_token_id is not None else config.bos_token_id
        rows = input_ids.shape[0] * model.decoder.num_codebooks
        ids = torch.full((rows, 1), start_id, dtype=torch.long, device=input_ids.device)
        if prompt is not None:
            ids = torch.cat([ids, prompt], dim=-1)
        ids, self.pattern = model.decoder.build_delay_pattern_mask(ids, start_id, ids.shape[-1] + steps)
        self.start = ids.shape[-1]  # positions before the first new token
        self.ids = self.pattern.clone()
        self.ids[:, : self.start] = ids

        # 3. The first forward, as generate's first iteration runs it, for each distinct request once: takes and
        # a section's candidates differ only in their seeds, which the forward does not read
        batch, halves = input_ids.shape[0], 2 if guided else 1
        codebooks = model.decoder.num_codebooks
        firsts = _first_of_each(ids, kwargs, batch, halves, codebooks)
        distinct = sorted(set(firsts))
        self.shared_by = batch if len(distinct) == 1 else 0  # requests that all read this one forward, or 0
        forward_rows = [request + half * batch for half in range(halves) for request in distinct]
        code_rows = [request * codebooks + c for request in distinct for c in range(codebooks)]
        step_inputs = model.prepare_inputs_for_generation(
            ids[code_rows],
            past_key_values=None,
            use_cache=True,
            guidance_scale=config.guidance_scale,
            is_first_iteration=True,
            decoder_delay_pattern_mask=self.pattern[code_rows],
            **_rows_of(kwargs, forward_rows, batch * halves),
        )
        out = model(**step_inputs, return_dict=True)
        # Every row takes its request's first copy: request r's row in half h is distinct's row h * len + index
        where = {request: i for i, request in enumerate(distinct)}
        spread = torch.tensor(
            [where[firsts[row % batch]] + (row // batch) * len(distinct) for row in range(batch * halves)],
            device=ids.device,
        )
        spread_codes = (spread[:, None] * codebooks + torch.arange(codebooks, device=ids.device)).flatten()
        self.logits = out.logits[:, -1, :].float().index_select(0, spread_codes)  # [rows * halves, vocab]
        cache = out.past_key_values
        own = getattr(cache, "self_attention_cache", cache)
        self.keys = [layer.keys.index_select(0, spread) for layer in own.layers]
        self.values = [layer.values.index_select(0, spread) for layer in own.layers]
        self.offset = self.keys[0].shape[-2] - self.start  # a melody's prefix (chroma and text) comes first

        # 4. Cross-attention on the text (MusicGen; MusicGen-Melody reads it as the prefix instead)
        cross = getattr(cache, "cross_attention_cache", None)
        self.cross_keys = self.cross_values = self.cross_mask = None
        if cross is not None and len(cross.layers) and cross.layers[0].keys is not None:
            self.cross_keys = [layer.keys.index_select(0, spread) for layer in cross.layers]
            self.cross_values = [layer.values.index_select(0, spread) for layer in cross.layers]
            rows2, _, length, _ = self.cross_keys[0].shape
            hidden = model.decoder.config.hidden_size
            mask = kwargs.get("attention_mask")
            self.cross_mask = create_bidirectional_mask(
                config=model.decoder.model.decoder.config,
                inputs_embeds=self.logits.new_zeros(rows2, 1, hidden),
                attention_mask=mask,
                encoder_hidden_states=self.logits.new_zeros(rows2, length, hidden),
            )

    @property
    def rows2(self) -> int:
        """Decoder rows: requests, doubled when guided (conditional half, then unconditional half)."""
        return self.keys[0].shape[0]


class Stepper:
    """One decoding step for ``rows2`` rows on buffers allocated once; ``static`` gives it fixed shapes.

    The dynamic form (CPU) attends to the filled part of the cache; the static form (captured as a CUDA
    graph) attends to all ``capacity`` positions with a mask and reads its position from a tensor.
    """

    def __init__(
        self,
        model: Any,
        rows2: int,
        capacity: int,
        cache_dtype: torch.dtype,
        *,
        static: bool = False,
        cross_length: int = 0,
        shared_prefix: int = 0,
    ):
        decoder = model.decoder
        inner = decoder.model.decoder
        self.plan = [_Layer.of(layer) for layer in inner.layers]
        self.embed = list(inner.embed_tokens)
        if inner.embed_positions.weights.shape[0] < capacity:
            inner.embed_positions.make_weights(capacity, inner.embed_positions.embedding_dim)
        self.positions = inner.embed_positions.weights
        self.final_norm = _norm(inner.layer_norm)
        self.heads = [direct(head) for head in decoder.lm_heads]
        self.codebooks = decoder.num_codebooks
        self.rows2, self.capacity, self.static = rows2, capacity, static
        self.cache_dtype = cache_dtype
        weight = self.positions
        heads = self.plan[0].heads
        dim = decoder.config.hidden_size // heads
        device, dtype = weight.device, next(decoder.parameters()).dtype
        if not dtype.is_floating_point:  # a quantised decoder's first parameters may be integers
            dtype = torch.float32
        self.dtype = dtype
        # A shared prefix (``load_shared``) is kept once per guidance half; the buffers hold each row's own positions
        self.prefix = shared_prefix
        self.prefix_keys: list[torch.Tensor] | None = None
        self.prefix_values: list[torch.Tensor] | None = None
        self.requests = rows2
        shape = (rows2, heads, capacity - shared_prefix, dim)
        # empty, not zeros: ``load`` fills the prefill's positions and the static form zeroes the rest; the dynamic
        # form reads only positions it wrote (zeroing a 10 s window's 200 MB took 0.2 s)
        self.keys = [torch.empty(shape, dtype=cache_dtype, device=device) for _ in self.plan]
        self.values = [torch.empty(shape, dtype=cache_dtype, device=device) for _ in self.plan]
        self.cross = self.plan[0].cross_q is not None  # MusicGen; MusicGen-Melody reads its text as a prefix
        self.cross_keys: list[torch.Tensor] | None = None
        self.cross_values: list[torch.Tensor] | None = None
        self.cross_mask: torch.Tensor | None = None
        self.length = 0  # positions filled
        # The static form's inputs, updated in place before each replay
        self.tokens = torch.zeros(rows2 * self.codebooks, dtype=torch.long, device=device)
        self.position = torch.zeros(1, dtype=torch.long, device=device)
        self.arange = torch.arange(capacity, device=device)
        if static and self.cross:
            cross_shape = (rows2, heads, cross_length, dim)
            self.cross_keys = [torch.zeros(cross_shape, dtype=dtype, device=device) for _ in self.plan]
            self.cross_values = [torch.zeros(cross_shape, dtype=dtype, device=device) for _ in self.plan]
            self.cross_mask = torch.zeros((rows2, 1, 1, cross_length), dtype=dtype, device=device)

    def load(self, prefill: Prefill) -> None:
        """Take a prefill's keys and values (and cross-attention's) as the start of this window."""
        filled = prefill.keys[0].shape[-2]
        rows = prefill.rows2
        if filled > self.capacity or rows > self.rows2:
            raise ValueError(
                f"the prefill ({rows} rows, {filled} positions) does not fit {self.rows2} x {self.capacity}"
            )
        for buffer, given in zip([*self.keys, *self.values], [*prefill.keys, *prefill.values], strict=True):
            buffer[:rows, :, :filled] = given
            if self.static:  # stale positions of an earlier window: masked, but kept finite
                buffer[:, :, filled:].zero_()
                buffer[rows:].zero_()
        self.length = filled
        if prefill.cross_keys is None:
            return
        if not self.static:
            self.cross_keys, self.cross_values = prefill.cross_keys, prefill.cross_values
            self.cross_mask = prefill.cross_mask
            return
        assert self.cross_keys is not None and self.cross_values is not None and self.cross_mask is not None
        length = prefill.cross_keys[0].shape[-2]
        for buffer, given in zip(
            [*self.cross_keys, *self.cross_values], [*prefill.cross_keys, *prefill.cross_values], strict=True
        ):
            buffer.zero_()
            buffer[:rows, :, :length] = given
        # An additive mask: padding and masked text get the lowest finite value, so a row with nothing to
        # attend to (guidance's null half: its states are zeros) averages zeros instead of giving NaN
        lowest = torch.finfo(self.cross_mask.dtype).min
        self.cross_mask.fill_(lowest)
        given_mask = prefill.cross_mask
        if given_mask is None:
            self.cross_mask[:rows, ..., :length] = 0
        elif given_mask.dtype == torch.bool:
            self.cross_mask[:rows, ..., :length] = torch.where(given_mask, 0.0, lowest).to(self.cross_mask.dtype)
        else:
            self.cross_mask[:rows, ..., :length] = given_mask.clamp(min=lowest).to(self.cross_mask.dtype)

    def load_shared(self, prefill: Prefill, requests: int) -> None:
        """Take a prefill whose ``requests`` requests all read the same first forward (a section's candidates):
        its keys and values once per guidance half as the shared prefix, the cross-attention as ``load``."""
        if self.static or prefill.keys[0].shape[-2] != self.prefix or prefill.rows2 != self.rows2:
            raise ValueError(f"a shared prefix of {self.prefix} positions needs the dynamic step and its own prefill")
        self.requests = requests
        # Rows are [half * requests + request]: the first row of each half holds what every request of it reads
        self.prefix_keys = [k[::requests].to(self.cache_dtype).contiguous() for k in prefill.keys]
        self.prefix_values = [v[::requests].to(self.cache_dtype).contiguous() for v in prefill.values]
        self.length = self.prefix
        self.cross_keys, self.cross_values = prefill.cross_keys, prefill.cross_values
        self.cross_mask = prefill.cross_mask

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits ``[rows2 * codebooks, vocab]`` for one new token per row (``tokens`` ``[rows2 * codebooks]``)."""
        n = self.length
        self.length += 1
        if self.static:
            self.tokens.copy_(tokens)
            self.position.fill_(n)
            return self.static_step()
        return self._forward(tokens, self.positions[n : n + 1], n)

    def static_step(self) -> torch.Tensor:
        """The fixed-shape step on ``tokens`` at ``position``: what a CUDA graph captures and replays."""
        return self._forward(self.tokens, self.positions.index_select(0, self.position), None)

    def _forward(self, tokens: torch.Tensor, position: torch.Tensor, n: int | None) -> torch.Tensor:
        # Few Python steps per layer (24 layers of small tensors: on 2 CPU cores the steps between the kernels add
        # up): direct kernels, narrow() rather than indexing, residuals added in place; the same values as before.
        codes = tokens.view(-1, self.codebooks, 1)
        # As transformers sums them: codebook by codebook, then the sinusoidal position
        hidden = sum(self.embed[c](codes[:, c]) for c in range(self.codebooks)) + position
        rows = hidden.shape[0]
        own_mask = None if n is not None else (self.arange <= self.position).view(1, 1, 1, -1)
        convert = self.cache_dtype != hidden.dtype
        for i, layer in enumerate(self.plan):
            heads = layer.heads
            # Self-attention, the new key and value written into the window's buffers
            x = F.layer_norm(hidden, *layer.self_norm)
            if layer.qkv is not None:
                query, key, value = layer.qkv(x).view(rows, 1, 3 * heads, -1).transpose(1, 2).chunk(3, dim=1)
            else:
                query, key, value = (_heads(linear(x), heads) for linear in (layer.q, layer.k, layer.v))
            keys, values = self.keys[i], self.values[i]
            if n is None:
                keys.index_copy_(2, self.position, key.to(self.cache_dtype))
                values.index_copy_(2, self.position, value.to(self.cache_dtype))
            else:
                own = n - self.prefix
                keys.narrow(2, own, 1).copy_(key)
                values.narrow(2, own, 1).copy_(value)
                keys, values = keys.narrow(2, 0, own + 1), values.narrow(2, 0, own + 1)
            query = query.to(self.cache_dtype) if convert else query
            if self.prefix_keys is None:
                attended = _attend(query, keys, values, own_mask, layer.scaling)
            else:
                assert self.prefix_values is not None
                prefix = (self.prefix_keys[i], self.prefix_values[i])
                attended = _attend_after_prefix(query, *prefix, keys, values, self.requests, layer.scaling)
            hidden = layer.out(attended.to(hidden.dtype) if convert else attended).add_(hidden)

            # Cross-attention on the text
            if self.cross:
                assert self.cross_keys is not None and self.cross_values is not None
                x = F.layer_norm(hidden, *layer.cross_norm)
                query = _heads(layer.cross_q(x), heads)
                attended = _attend(query, self.cross_keys[i], self.cross_values[i], self.cross_mask, layer.scaling)
                hidden = layer.cross_out(attended).add_(hidden)

            # Feed-forward
            x = F.layer_norm(hidden, *layer.feed_forward_norm)
            hidden = layer.fc2(layer.activation(layer.fc1(x))).add_(hidden)
        hidden = F.layer_norm(hidden, *self.final_norm)
        logits = torch.stack([head(hidden) for head in self.heads], dim=1)  # [rows2, codebooks, 1, vocab]
        return logits.reshape(-1, logits.shape[-1])


class _Layer(NamedTuple):
    """One decoder layer as ``Stepper`` runs it: its norms' arguments, direct matmul calls and attention sizes."""

    self_norm: tuple
    qkv: Callable | None  # fast mode's joined projections; else q, k and v apart
    q: Callable | None
    k: Callable | None
    v: Callable | None
    out: Callable
    cross_norm: tuple | None  # cross-attention (MusicGen); None for MusicGen-Melody
    cross_q: Callable | None
    cross_out: Callable | None
    feed_forward_norm: tuple
    fc1: Callable
    fc2: Callable
    activation: Callable
    heads: int
    scaling: float

    @classmethod
    def of(cls, layer: Any) -> _Layer:
        c = layer_calls(layer)
        cross = getattr(layer, "encoder_attn", None) is not None
        activation = layer.activation_fn
        return cls(
            self_norm=_norm(layer.self_attn_layer_norm),
            qkv=c["qkv"],
            q=c["q"],
            k=c["k"],
            v=c["v"],
            out=c["out"],
            cross_norm=_norm(layer.encoder_attn_layer_norm) if cross else None,
            cross_q=c["cross_q"] if cross else None,
            cross_out=c["cross_out"] if cross else None,
            feed_forward_norm=_norm(layer.final_layer_norm),
            fc1=c["fc1"],
            fc2=c["fc2"],
            activation=getattr(activation, "act", activation),  # GELUActivation's own function: one call fewer
            heads=c["heads"],
            scaling=c["scaling"],
        )


class CudaGraphSteps:
    """CUDA graphs of ``Stepper.static_step``, one per bucket (rows, cache length, text length), kept for reuse.

    A bucket is captured on first use (a warm-up on a side stream, then the capture); ``capture_seconds``
    records how long each took. Each graph keeps its own memory pool: buckets are replayed in any order.
    The key/value buffers are allocated outside the capture and reused by every window of the bucket.
    """

    def __init__(self, capture: bool = True) -> None:
        from collections import OrderedDict

        self.capture = capture  # False: replay the same fixed-shape step without a graph (CPU, tests)
        self.graphs: OrderedDict[tuple[int, int, int], tuple[Stepper, Any]] = OrderedDict()
        self.capture_seconds: dict[tuple[int, int, int], float] = {}

    @staticmethod
    def bucket(rows2: int, positions: int, cross_length: int) -> tuple[int, int, int]:
        rows = next((b for b in ROW_BUCKETS if b >= rows2), rows2)
        length = -(-positions // POSITION_BUCKET) * POSITION_BUCKET
        text = next((b for b in TEXT_BUCKETS if b >= cross_length), cross_length) if cross_length else 0
        return rows, length, text

    def stepper(self, model: Any, prefill: Prefill, positions: int, cache_dtype: torch.dtype) -> Stepper:
        """A captured stepper for ``prefill``'s bucket, loaded with its cache."""
        cross_length = 0 if prefill.cross_keys is None else prefill.cross_keys[0].shape[-2]
        key = self.bucket(prefill.rows2, positions, cross_length)
        if key not in self.graphs:
            while len(self.graphs) >= MAX_GRAPHS:
                self.graphs.popitem(last=False)
            self.graphs[key] = self._capture(model, key, cache_dtype)
        self.graphs.move_to_end(key)
        stepper, graph = self.graphs[key]
        stepper.load(prefill)
        stepper.graph = graph
        return stepper

    def _capture(self, model: Any, key: tuple[int, int, int], cache_dtype: torch.dtype) -> tuple[Stepper, Any]:
        rows, length, text = key
        started = time.perf_counter()
        stepper = Stepper(model, rows, length, cache_dtype, static=True, cross_length=text)
        if not self.capture:
            return stepper, _Uncaptured(stepper)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):  # warm-up: library handles, workspaces and kernel choices before capture
                stepper.static_step()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: CUDA work on the app's other threads (none is expected) cannot break the capture
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            stepper.out = stepper.static_step()
        torch.cuda.synchronize()
        self.capture_seconds[key] = time.perf_counter() - started
        log.info(
            "Captured the decoding step for %s rows, %s positions, %s text tokens in %.2f s",
            *key,
            self.capture_seconds[key],
        )
        return stepper, graph


class _Uncaptured:
    """A bucket's step run eagerly where a graph would replay: the buckets' padding and buffers, without CUDA."""

    def __init__(self, stepper: Stepper):
        self.stepper = stepper

    def replay(self) -> None:
        self.stepper.out = self.stepper.static_step()


def replay(stepper: Stepper, tokens: torch.Tensor) -> torch.Tensor:
    """One step of a captured stepper: inputs copied into its buffers, the graph replayed, its logits."""
    n = stepper.length
    stepper.length += 1
    stepper.tokens[: tokens.shape[0]].copy_(tokens)
    stepper.position.fill_(n)
    stepper.graph.replay()
    return stepper.out


def decode(
    model: Any,
    inputs: dict[str, torch.Tensor],
    prompt,
    steps: int,
    choose: Callable[[torch.Tensor, int], torch.Tensor],
    watch: Callable[[torch.Tensor, Any], Any],
    guided: bool,
    *,
    cache_dtype: torch.dtype,
    graphs: CudaGraphSteps | None = None,
    static: bool = False,
    share_prompt: bool = False,
) -> torch.Tensor:
    """Sample ``steps`` tokens per row after the BOS and any code ``prompt``; returns the ids ``[rows, 1 + ...]``.

    ``choose(logits, rows)`` picks a token per row (``SeededSampler.choose``); ``watch(ids, logits)`` runs after
    every step (``StepWatcher``: progress, streaming, cancel). ``graphs`` replays the step as CUDA graphs;
    ``static`` runs the fixed-shape step without a graph (what the graph captures, for tests on CPU).
    ``share_prompt``: where every request reads the same first forward (a section's candidates) and that forward
    holds at least ``SHARED_PREFIX_MIN`` positions, the dynamic step keeps its keys and values once per guidance
    half and reads them once for all requests (``_attend_after_prefix``). Attention then sums in another order,
    so a request's tokens may differ from those it gets alone; the same batch gives the same tokens every time.
    Fast mode's int8 matmuls quantise each row on its own (``lean_layers.rowwise_int8``), so a request gives
    the same tokens alone or batched.
    """
    with torch.inference_mode():
        prefill = Prefill(model, inputs, prompt, steps, guided)
        positions = prefill.offset + prefill.ids.shape[-1]
        rows = prefill.ids.shape[0]
        if graphs is not None:
            stepper = graphs.stepper(model, prefill, positions, cache_dtype)
            advance: Callable[[torch.Tensor], torch.Tensor] = lambda tokens: replay(stepper, tokens)  # noqa: E731
        elif share_prompt and not static and prefill.shared_by > 1 and prefill.keys[0].shape[-2] >= SHARED_PREFIX_MIN:
            prefix = prefill.keys[0].shape[-2]
            stepper = Stepper(model, prefill.rows2, positions, cache_dtype, shared_prefix=prefix)
            stepper.load_shared(prefill, prefill.shared_by)
            advance = stepper.step
        else:
            stepper = Stepper(model, prefill.rows2, positions, cache_dtype, static=static, **_cross(prefill, static))
            stepper.load(prefill)
            advance = stepper.step
        ids, pattern, logits = prefill.ids, prefill.pattern, prefill.logits
        real = prefill.rows2 * stepper.codebooks  # a graph's bucket may hold padding rows after these
        halves = real // rows  # 2 when guided: both halves run on the same ids
        for t in range(steps):
            pos = prefill.start + t
            chosen = choose(logits, rows)
            ids[:, pos] = torch.where(pattern[:, pos] == -1, chosen, pattern[:, pos])
            watch(ids[:, : pos + 1], logits)
            if t + 1 < steps:
                tokens = ids[:, pos].repeat(halves)
                logits = advance(tokens)[:real].float()
        return ids


def _first_of_each(ids: torch.Tensor, kwargs: dict[str, Any], batch: int, halves: int, codebooks: int) -> list[int]:
    """For each request, the first request of the batch whose first forward reads the same codes and conditioning."""
    from transformers.modeling_outputs import BaseModelOutput

    def reads(request: int) -> list[torch.Tensor]:
        doubled = [request + half * batch for half in range(halves)]
        found = [ids[request * codebooks : (request + 1) * codebooks]]
        for value in kwargs.values():
            if isinstance(value, BaseModelOutput):
                value = value.last_hidden_state
            if isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == batch * halves:
                found.append(value[doubled])
            elif isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == batch:
                found.append(value[request])
        return found

    firsts: list[int] = []
    seen: list[tuple[int, list[torch.Tensor]]] = []
    for request in range(batch):
        mine = reads(request)
        same = (first for first, theirs in seen if all(torch.equal(a, b) for a, b in zip(mine, theirs, strict=True)))
        first = next(same, request)
        if first == request:
            seen.append((request, mine))
        firsts.append(first)
    return firsts


def _rows_of(kwargs: dict[str, Any], rows: list[int], total: int) -> dict[str, Any]:
    """The conditioning of some rows of the (guidance-doubled) batch: tensors and encoder outputs indexed."""
    from transformers.modeling_outputs import BaseModelOutput

    picked: dict[str, Any] = {}
    for name, value in kwargs.items():
        if isinstance(value, BaseModelOutput):
            picked[name] = BaseModelOutput(last_hidden_state=value.last_hidden_state[rows])
        elif isinstance(value, torch.Tensor) and value.shape[0] == total:
            picked[name] = value[rows]
        elif not isinstance(value, torch.Tensor):
            picked[name] = value
        # anything else (a melody's raw chroma, already in the prefix) is not read by the forward
    return picked


def _cross(prefill: Prefill, static: bool) -> dict[str, int]:
    if not static or prefill.cross_keys is None:
        return {}
    return {"cross_length": prefill.cross_keys[0].shape[-2]}


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``[batch, time, heads * dim]`` to ``[batch, heads, time, dim]``."""
    return x.view(*x.shape[:-1], heads, -1).transpose(1, 2)


def _attend(query, key, value, mask, scaling: float) -> torch.Tensor:
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scaling)
    return out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1)


def _attend_after_prefix(query, prefix_keys, prefix_values, keys, values, requests: int, scaling: float):
    """Attention of ``query`` ``[halves * requests, heads, 1, dim]`` over a prefix its requests share
    (``[halves, heads, prefix, dim]``, read once for all of them) and then each row's own ``keys`` and ``values``.

    The prefix is attended as grouped-query attention (each request's heads side by side over one copy), each
    row's own positions apart; the two softmaxes are joined by their log-sum-exps, so the result is the softmax
    over all positions, up to rounding.
    """
    rows, heads, _, dim = query.shape
    halves = rows // requests
    grouped = query.view(halves, requests, heads, dim).transpose(1, 2).reshape(halves, heads * requests, 1, dim)
    on_prefix, prefix_lse = _FLASH(grouped, prefix_keys, prefix_values, scale=scaling)
    on_own, own_lse = _FLASH(query, keys, values, scale=scaling)
    on_prefix = on_prefix.view(halves, heads, requests, dim).transpose(1, 2).reshape(rows, heads, 1, dim)
    prefix_lse = prefix_lse.view(halves, heads, requests).transpose(1, 2).reshape(rows, heads, 1, 1)
    share = torch.sigmoid(prefix_lse - own_lse.view(rows, heads, 1, 1))  # the prefix's part of the softmax
    out = torch.lerp(on_own.float(), on_prefix.float(), share).to(query.dtype)
    return out.transpose(1, 2).reshape(rows, 1, heads * dim)


def _norm(norm: torch.nn.LayerNorm) -> tuple:
    return norm.normalized_shape, norm.weight, norm.bias, norm.eps


__all__: Sequence[str] = ("CudaGraphSteps", "Prefill", "Stepper", "cpu_cache_dtype", "decode")
