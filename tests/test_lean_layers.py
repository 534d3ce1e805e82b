"""The lean decoder layers compute what transformers' layers compute: bit for bit on the exact path."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from transformers.generation.stopping_criteria import StoppingCriteriaList

from generation.model.chroma import MelodyProcessor
from generation.model.engine import MusicGenEngine
from generation.model.lean_layers import join_qkv, lean_layers, rowwise_int8
from generation.model.spec import EngineSpec
from generation.model.types import Melody
from generation.settings import GenerationSettings

PROMPTS = ["rainy night piano", "loud distorted guitars, pounding drums and a choir singing over them"]


class _LastIds:
    def __call__(self, input_ids, scores, **kwargs):
        self.ids = input_ids.clone()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool)


def _codes(model, inputs, steps: int = 40, **more) -> torch.Tensor:
    """Token ids from transformers' own sampling loop, seeded."""
    watcher = _LastIds()
    torch.manual_seed(7)
    with torch.inference_mode():
        model.generate(
            **inputs,
            max_new_tokens=steps,
            do_sample=True,
            guidance_scale=3.0,
            stopping_criteria=StoppingCriteriaList([watcher]),
            **more,
        )
    return watcher.ids


def _text_model(folder):
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    return MusicgenForConditionalGeneration.from_pretrained(folder).eval(), AutoProcessor.from_pretrained(folder)


def test_lean_layers_give_transformers_codes_bit_for_bit(tiny_model_dir):
    model, processor = _text_model(tiny_model_dir)
    # Two prompts of different lengths (a padded cross-attention mask), then a continuation with a code prompt
    inputs = processor(text=PROMPTS, padding=True, return_tensors="pt")
    vocab = model.decoder.config.vocab_size
    continuation = {**inputs, "decoder_input_ids": torch.randint(0, vocab, (2 * 4, 30))}
    shipped = [_codes(model, inputs), _codes(model, continuation)]
    lean_layers(model.decoder)
    lean = [_codes(model, inputs), _codes(model, continuation)]
    for a, b in zip(shipped, lean, strict=True):
        assert torch.equal(a, b)


def test_lean_melody_layers_give_transformers_codes_bit_for_bit(tiny_melody_model_dir):
    from transformers import MusicgenMelodyForConditionalGeneration

    model = MusicgenMelodyForConditionalGeneration.from_pretrained(tiny_melody_model_dir).eval()
    processor = MelodyProcessor.from_pretrained(str(tiny_melody_model_dir))
    tone = (0.5 * np.sin(2 * np.pi * 330 * np.arange(64_000) / 32_000)).astype(np.float32)
    inputs = processor(PROMPTS, [Melody(tone, 32_000)] * 2)  # the text prefix is padded: a self-attention mask
    shipped = _codes(model, inputs)
    lean_layers(model.decoder)
    assert torch.equal(shipped, _codes(model, inputs))


def test_joined_qkv_projections_compute_the_same_logits(tiny_model_dir):
    model, processor = _text_model(tiny_model_dir)
    inputs = processor(text=PROMPTS, padding=True, return_tensors="pt")
    decoder_ids = torch.randint(0, model.decoder.config.vocab_size, (2 * 4, 12))
    with torch.inference_mode():
        separate = model(**inputs, decoder_input_ids=decoder_ids).logits
        join_qkv(lean_layers(model.decoder))
        joined = model(**inputs, decoder_input_ids=decoder_ids).logits
    assert not hasattr(model.decoder.model.decoder.layers[0].self_attn, "q_proj")
    torch.testing.assert_close(joined, separate, rtol=1e-4, atol=1e-4)


def test_engines_from_a_model_in_memory_leave_the_callers_model_as_it_was(tiny_model_dir):
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    model, processor = _text_model(tiny_model_dir)
    float_decoder = model.decoder
    before = copy.deepcopy(model.state_dict())
    exact = MusicGenEngine.from_model(model, processor, EngineSpec(model_id="tiny", fast=False, device="cpu"))
    fast = MusicGenEngine.from_model(model, processor, EngineSpec(model_id="tiny", fast=True, device="cpu"))
    attention = fast._model.decoder.model.decoder.layers[0].self_attn
    assert isinstance(attention.qkv_proj, DynamicQuantizedLinear)
    assert attention.qkv_proj.weight().qscheme() == torch.per_channel_affine  # a scale per output channel
    # The caller's model: the same float decoder, with transformers' own layers, and unchanged weights
    assert model.decoder is float_decoder
    assert "forward" not in vars(float_decoder.model.decoder.layers[0])
    assert isinstance(float_decoder.model.decoder.layers[0].self_attn.q_proj, torch.nn.Linear)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    # The exact engine shares the caller's weight tensors rather than copying them
    assert exact._model.decoder.lm_heads[0].weight is float_decoder.lm_heads[0].weight
    result = fast.generate(GenerationSettings(prompt=PROMPTS[0], duration=1.0, seed=2))
    assert np.isfinite(result.audio).all() and result.mode == "fast"


@pytest.mark.parametrize("fast", [False, True])
def test_engines_run_their_decoders_through_the_lean_layers(tiny_model_dir, fast):
    engine = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), fast=fast, device="cpu"))
    engine.load()
    layers = engine._model.decoder.model.decoder.layers
    assert all(layer.forward.__func__.__module__ == "generation.model.lean_layers" for layer in layers)


@pytest.mark.parametrize("bias", [False, True])
def test_int8_rows_give_the_same_values_alone_or_batched(bias):
    """Each row is quantised with its own scale: loud, quiet and silent rows do not move one another."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 40, bias=bias)
    quantized = quantize_dynamic(torch.nn.Sequential(linear), {torch.nn.Linear: per_channel_dynamic_qconfig})[0]
    call = rowwise_int8(quantized)
    rows = torch.stack([torch.randn(96) * 300, torch.randn(96) * 1e-3, torch.zeros(96), torch.randn(96)])
    together = call(rows)
    for i, row in enumerate(rows):
        np.testing.assert_array_equal(call(row[None]).numpy(), together[i : i + 1].numpy())
    assert torch.isfinite(together).all()
    exact = linear(rows).detach()
    np.testing.assert_array_equal(together[2].numpy(), exact[2].numpy())  # a silent row gives just the bias

    def error(made: torch.Tensor, i: int) -> float:
        return float((made[i] - exact[i]).abs().max() / exact[i].abs().max())

    for i in (0, 1, 3):  # each row within a few percent of its own size, however small it is
        assert error(together, i) < 0.04, (i, error(together, i))
    shared_scale = quantized(rows).detach()  # torch's own call: one scale for all rows, the loud one's
    assert error(shared_scale, 1) > 10 * error(together, 1)  # the quiet row, drowned by the loud row's scale
    assert together.shape == (4, 40) and call(rows.view(2, 2, 96)).shape == (2, 2, 40)
    assert rowwise_int8(linear) is None  # a float layer is not an int8 one


def test_int8_rows_at_full_scale_sum_without_overflow():
    """The worst case for 16-bit sums of products: every activation and weight at its largest magnitude.

    Rows get 8 bits only on CPUs with VNNI (32-bit sums); a wrong guess would clip these outputs."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    linear = torch.nn.Linear(512, 4, bias=False)
    linear.weight.data.fill_(0.5)
    linear.weight.data[1] *= -1
    linear.weight.data[2, ::2] *= -1
    quantized = quantize_dynamic(torch.nn.Sequential(linear), {torch.nn.Linear: per_channel_dynamic_qconfig})[0]
    rows = torch.ones(3, 512)
    rows[1] *= -1
    rows[2, 1::2] = -1
    exact = linear(rows).detach()
    np.testing.assert_allclose(rowwise_int8(quantized)(rows).numpy(), exact.numpy(), rtol=0.01, atol=0.01 * 256)
