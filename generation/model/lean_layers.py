"""MusicGen's decoder layers without transformers' per-call overhead: the same math in fewer Python steps.

A decoding step of musicgen-small runs 24 layers of a few dozen small tensor operations
for one new token. On 2 CPU cores transformers' module calls, attention dispatch, cache
bookkeeping and no-op dropouts took a third of a fast-mode step (measured: 42 ms per step,
of which 20 ms in the int8 matmuls). ``lean_layers`` gives each decoder layer a direct
``forward``: layer norms, projections, SDPA and the feed-forward as plain tensor calls.

Fast mode also joins each self-attention's query, key and value projections
(``join_qkv``) into one int8 matrix, one matmul instead of three. On the exact path every
operation and kernel is transformers' own, so the outputs are the same bit for bit
(tested); there it only removes overhead.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

Linear = Callable[[torch.Tensor], torch.Tensor]


def lean_layers(decoder: Any) -> Any:
    """Give every layer of a MusicGen (or MusicGen-Melody) decoder a direct ``forward``; returns ``decoder``.

    ``decoder`` is a ``MusicgenForCausalLM`` or ``MusicgenMelodyForCausalLM`` in eval mode,
    float or quantised by ``torch.ao`` dynamic quantisation. Call it again after changing
    the layers' weights: each layer keeps direct calls to the weights it had.
    """
    for layer in decoder.model.decoder.layers:
        layer.__dict__.pop("_lean_calls", None)
        # MusicGen-Melody's layers (no cross-attention) return (hidden states, attention weights)
        layer._lean_tuple = not hasattr(layer, "encoder_attn")
        layer.forward = types.MethodType(_layer_forward, layer)
    return decoder


def join_qkv(decoder: Any) -> Any:
    """Join each float self-attention's query, key and value projections into one ``qkv_proj``; returns ``decoder``.

    One matmul instead of three per layer and step; only ``lean_layers``' forward reads ``qkv_proj``.
    """
    for layer in decoder.model.decoder.layers:
        attention = layer.self_attn
        if not hasattr(attention, "qkv_proj"):
            attention.qkv_proj = _joined(attention.q_proj, attention.k_proj, attention.v_proj)
            del attention.q_proj, attention.k_proj, attention.v_proj
    return decoder


def _joined(*projections: torch.nn.Linear) -> torch.nn.Linear:
    """One linear layer computing several bias-free projections side by side."""
    if any(p.bias is not None for p in projections) or any(not isinstance(p, torch.nn.Linear) for p in projections):
        raise ValueError("only float, bias-free projections can be joined (join before quantising)")
    weight = torch.cat([p.weight.data for p in projections])
    joined = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False, device=weight.device, dtype=weight.dtype)
    joined.weight.data = weight
    return joined


def direct(module: Any) -> Linear:
    """A direct call for a linear layer: ``F.linear`` for float, ``rowwise_int8`` for ``torch.ao`` dynamic int8."""
    if isinstance(module, torch.nn.Linear):
        weight, bias = module.weight, module.bias
        return lambda x: F.linear(x, weight, bias)
    own = module.__dict__.get("forward")  # a call given to this module itself (fast mode's: see quantize_decoder)
    return own or rowwise_int8(module) or module  # anything else runs as the module itself


def rowwise_int8(module: Any, full_range: bool | None = None) -> Linear | None:
    """A ``torch.ao`` dynamic int8 linear layer whose every input row is quantised with its own scale.

    torch's dynamic int8 kernel quantises its whole input with one scale (from the input's minimum and maximum),
    so in a batch a row's values would depend on its batch-mates. Here each row is first divided by its own
    largest magnitude, and one extra row holding -1 and 1 fixes the kernel's range to exactly [-1, 1] whatever
    the batch holds; the output rows are multiplied back. A row then gives the same values alone or batched
    (tested), so requests run through each weight matrix together: one read of the weights for all of them.
    Rows are quantised to 8 bits where the CPU has VNNI (``full_range_int8``), else to 7 as torch.ao does;
    ``full_range`` overrides that choice (8 bits on a CPU without VNNI can overflow: see ``full_range_int8``).
    Returns None for anything but a qint8 dynamic linear layer. Call it on the model thread only.
    """
    packed_params = getattr(module, "_packed_params", None)
    if getattr(packed_params, "dtype", None) != torch.qint8:
        return None
    weight, bias = packed_params._weight_bias()
    packed = packed_params._packed_params
    if bias is not None:  # added after the rows are scaled back
        bias = bias.detach()
        packed = torch.ops.quantized.linear_prepack(weight, None)
    kernel = torch.ops.quantized.linear_dynamic.default._op  # the C++ kernel itself: no Python dispatch checks
    reduce_range = not (full_range_int8() if full_range is None else full_range)
    guard = torch.zeros(1, weight.shape[1])
    guard[0, 0], guard[0, -1] = -1.0, 1.0
    steps: dict[torch.Size, torch.Tensor] = {}  # a decoding step's input shape: its rows with the guard row after them

    def call(x: torch.Tensor) -> torch.Tensor:
        scale = x.abs().amax(-1, keepdim=True).clamp_min_(_SMALLEST_SCALE)
        if x.dim() == 3 and x.shape[1] == 1:  # a decoding step: few Python calls (each costs more than its arithmetic)
            rows = steps.get(x.shape)
            if rows is None:
                rows = steps[x.shape] = torch.cat((x.new_empty(x.shape), guard.view(1, 1, -1).to(x.dtype)))
            torch.div(x, scale, out=rows[:-1])
            out = kernel(rows, packed, reduce_range)[:-1].mul_(scale)
        else:
            flat, flat_scale = x.reshape(-1, x.shape[-1]), scale.reshape(-1, 1)
            out = kernel(torch.cat((flat / flat_scale, guard)), packed, reduce_range)[:-1].mul_(flat_scale)
            out = out.view(*x.shape[:-1], out.shape[-1])
        return out if bias is None else out.add_(bias)

    return call


def full_range_int8() -> bool:
    """Whether this CPU's int8 kernels take activations of 8 bits: those with VNNI (avx512_vnni).

    torch.ao quantises activations to 7 bits ("reduce_range") because without VNNI the int8 kernels add pairs of
    products in 16 bits, which 8-bit activations can overflow; VNNI instructions add them in 32 bits. 8 bits
    halve the rounding step: on a random musicgen-small of the real size, fast mode's logits' mean error against
    the exact path was lower with them than with torch.ao's 7 bits (``python -m benchmarks.batching``).
    """
    try:
        return bool(torch.cpu._is_vnni_supported())
    except AttributeError:  # a torch without the probe: 7 bits, safe on every CPU
        return False


_SMALLEST_SCALE = 1e-30  # an all-zero row (guidance's null half reading empty text) stays zero instead of NaN


def layer_calls(layer: Any) -> dict[str, Any]:
    """The layer's weights as direct calls, made once per layer (the modules do not change afterwards)."""
    calls = getattr(layer, "_lean_calls", None)
    if calls is None:
        attention = layer.self_attn
        calls = {
            "qkv": direct(attention.qkv_proj) if hasattr(attention, "qkv_proj") else None,
            "q": None if hasattr(attention, "qkv_proj") else direct(attention.q_proj),
            "k": None if hasattr(attention, "qkv_proj") else direct(attention.k_proj),
            "v": None if hasattr(attention, "qkv_proj") else direct(attention.v_proj),
            "out": direct(attention.out_proj),
            "fc1": direct(layer.fc1),
            "fc2": direct(layer.fc2),
            "heads": attention.num_heads,
            "scaling": attention.scaling,
            "index": attention.layer_idx,
        }
        cross = getattr(layer, "encoder_attn", None)
        if cross is not None:
            calls.update(
                cross_q=direct(cross.q_proj),
                cross_k=direct(cross.k_proj),
                cross_v=direct(cross.v_proj),
                cross_out=direct(cross.out_proj),
            )
        layer._lean_calls = calls
    return calls


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``[batch, time, heads * dim]`` to ``[batch, heads, time, dim]``."""
    return x.view(*x.shape[:-1], heads, -1).transpose(1, 2)


def _attend(query, key, value, mask, scaling: float) -> torch.Tensor:
    """SDPA as transformers calls it: causal only for several queries without a mask."""
    causal = query.shape[2] > 1 and mask is None
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scaling, is_causal=causal)
    return out.transpose(1, 2).reshape(out.shape[0], out.shape[2], -1)


def _layer_forward(
    self: Any,
    hidden_states: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    encoder_hidden_states: torch.Tensor | None = None,
    encoder_attention_mask: torch.Tensor | None = None,
    past_key_values: Any = None,
    use_cache: bool | None = True,
    **kwargs: Any,
) -> torch.Tensor:
    from transformers.cache_utils import EncoderDecoderCache

    c = layer_calls(self)
    heads, index = c["heads"], c["index"]
    pair = isinstance(past_key_values, EncoderDecoderCache)
    self_cache = past_key_values.self_attention_cache if pair else past_key_values

    # Self-attention
    residual = hidden_states
    x = F.layer_norm(hidden_states, *_norm(self.self_attn_layer_norm))
    if c["qkv"] is not None:
        query, key, value = _heads(c["qkv"](x), 3 * heads).chunk(3, dim=1)
    else:
        query, key, value = (_heads(c[name](x), heads) for name in ("q", "k", "v"))
    if self_cache is not None:
        key, value = self_cache.update(key, value, index)
    hidden_states = residual + c["out"](_attend(query, key, value, attention_mask, c["scaling"]))

    # Cross-attention on the text (MusicGen; MusicGen-Melody has the text as a prefix instead)
    if encoder_hidden_states is not None:
        residual = hidden_states
        x = F.layer_norm(hidden_states, *_norm(self.encoder_attn_layer_norm))
        query = _heads(c["cross_q"](x), heads)
        if pair and past_key_values.is_updated.get(index):
            layer_cache = past_key_values.cross_attention_cache.layers[index]
            key, value = layer_cache.keys, layer_cache.values
        else:
            key = _heads(c["cross_k"](encoder_hidden_states), heads)
            value = _heads(c["cross_v"](encoder_hidden_states), heads)
            if pair:
                key, value = past_key_values.cross_attention_cache.update(key, value, index)
                past_key_values.is_updated[index] = True
        hidden_states = residual + c["cross_out"](_attend(query, key, value, encoder_attention_mask, c["scaling"]))

    # Feed-forward
    residual = hidden_states
    x = F.layer_norm(hidden_states, *_norm(self.final_layer_norm))
    hidden_states = residual + c["fc2"](self.activation_fn(c["fc1"](x)))
    return (hidden_states, None) if self._lean_tuple else hidden_states


def _norm(norm: torch.nn.LayerNorm) -> tuple:
    return norm.normalized_shape, norm.weight, norm.bias, norm.eps
