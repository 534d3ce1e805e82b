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
