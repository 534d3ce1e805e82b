"""What the floor benchmark counts: the bytes a fast-mode decoding step reads, from the model's own tensors."""

from __future__ import annotations

import pytest
import torch

from benchmarks import floor
from generation.model.loading import prepare_for_generation
from tests.random_musicgen import TINY, random_musicgen, text_processor


@pytest.fixture(scope="module")
def fast_model():
    """The tiny random MusicGen in fast mode's form: int8 decoder, joined QKV projections, lean layers."""
    return prepare_for_generation(random_musicgen(TINY, "text"), "cpu", True)


def test_a_step_reads_every_int8_weight_but_cross_attentions_keys_and_values_made_once_a_window(fast_model):
    decoder = fast_model.decoder
    state = decoder.state_dict()
    packed = {name: value[0] for name, value in state.items() if name.endswith("._packed_params._packed_params")}
    read = {
        name: w
        for name, w in packed.items()
        if ".encoder_attn.k_proj." not in name and ".encoder_attn.v_proj." not in name
    }
    layers, codebooks, hidden = TINY.decoder.num_hidden_layers, decoder.num_codebooks, TINY.decoder.hidden_size
    assert len(read) == 6 * layers + codebooks  # qkv, out, cross q, cross out, fc1, fc2; one LM head per codebook

    counted = floor.weight_bytes(decoder, rows=2)

    assert counted.int8 == sum(w.int_repr().numel() for w in read.values())  # one byte per weight
    assert counted.scales == sum(w.shape[0] for w in read.values()) * floor.PER_CHANNEL_BYTES
    norms = sum(value.nbytes for name, value in state.items() if "layer_norm" in name)
    embedding_rows = 2 * codebooks * hidden * 4  # one float32 row per codebook and decoder row
    assert counted.float == norms + embedding_rows + hidden * 4  # and one row of the sinusoidal positions
    assert counted.total == counted.int8 + counted.scales + counted.float


def test_the_cache_read_grows_with_the_positions_by_one_key_and_value_per_layer_and_head(fast_model):
    inputs = dict(text_processor()(text=["lofi piano"], padding=True, return_tensors="pt"))

    timing = floor.time_steps(fast_model, inputs, [3, 7], torch.bfloat16)

    layers, heads = TINY.decoder.num_hidden_layers, TINY.decoder.num_attention_heads
    dim = TINY.decoder.hidden_size // heads
    text = inputs["input_ids"].shape[1]
    cross = 2 * layers * timing.rows * heads * text * dim * 4  # float32 keys and values of the text, read whole
    for n in (3, 7):
        own = 2 * layers * timing.rows * heads * (n + 1) * dim * 2  # bfloat16, the new position included
        assert timing.cache_bytes[n] == own + cross
        assert timing.seconds[n] > 0
    assert timing.rows == 2  # one request, doubled for guidance


def test_positions_before_the_prefill_end_are_refused(fast_model):
    inputs = dict(text_processor()(text=["lofi piano"], padding=True, return_tensors="pt"))
    with pytest.raises(ValueError, match="at least 1"):
        floor.time_steps(fast_model, inputs, [0, 5], torch.float32)


def test_bandwidth_is_bytes_over_seconds_and_refuses_an_empty_tensor():
    assert floor.read_bandwidth(1 << 20, repeats=2) > 0
    with pytest.raises(ValueError, match="got 2 bytes"):
        floor.read_bandwidth(2)


def test_the_int4_comparison_runs_every_matrix_a_step_reads_in_half_the_bytes(fast_model):
    kernels = floor.matmul_kernels(fast_model.decoder, rows=2, repeats=1)

    assert kernels.int8_bytes == floor.weight_bytes(fast_model.decoder, rows=2).int8
    assert kernels.matrices == 6 * TINY.decoder.num_hidden_layers + fast_model.decoder.num_codebooks
    packed_codes = kernels.int8_bytes // 2  # two 4-bit codes a byte, then a bfloat16 scale and zero per group
    assert packed_codes < kernels.int4_bytes <= packed_codes + kernels.int8_bytes // 32 * 2 * 2  # groups >= 32
    assert kernels.int8_seconds > 0 and kernels.int4_seconds > 0


def test_the_int4_weights_the_kernel_reads_are_the_layers_own_to_within_half_a_step():
    """The comparison times a real 4-bit quantisation: the packed codes, scales and zeros multiply as the
    float weights do, to within the rounding of 4 bits per group (and bfloat16 rows and scales)."""
    weight = torch.randn(96, 256, generator=torch.Generator().manual_seed(0))
    rows = torch.randn(3, 256, generator=torch.Generator().manual_seed(1))

    packed, scales_zeros, group = floor.int4_weights(weight)
    out = torch._weight_int4pack_mm_for_cpu(rows.to(torch.bfloat16), packed, group, scales_zeros).float()

    assert group == floor.INT4_GROUP and scales_zeros.shape == (256 // group, 96, 2)
    exact = rows @ weight.T
    step = (weight.reshape(96, -1, group).amax(-1) - weight.reshape(96, -1, group).amin(-1)).max() / 15
    bound = (rows.abs().sum(-1, keepdim=True) * step / 2) * 1.1 + 0.02 * exact.abs().max()  # bfloat16's share
    assert ((out - exact).abs() <= bound).all()
    # and far from noise (4 bits give a relative error of about 0.1): codes, scales and zeros are packed right
    assert torch.nn.functional.cosine_similarity(out.flatten(), exact.flatten(), dim=0) > 0.99
    with pytest.raises(ValueError, match="0 rows"):
        floor.matmul_kernels(torch.nn.Module(), rows=0)


def test_a_row_through_4_bit_weights_is_the_same_alone_or_batched(fast_model):
    layer = fast_model.decoder.model.decoder.layers[0].fc1
    call = floor.int4_linear(layer)
    rows = torch.randn(4, 1, layer.weight().shape[1], generator=torch.Generator().manual_seed(2))

    together = call(rows)

    assert together.shape == (4, 1, layer.weight().shape[0]) and together.dtype == torch.float32
    for r in range(4):
        assert torch.equal(call(rows[r : r + 1]), together[r : r + 1])
    assert floor.int4_linear(torch.nn.Linear(32, 32)) is None  # only int8 layers have a 4-bit form here
