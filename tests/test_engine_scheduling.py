"""Batching, long-form continuation, streaming and the fast CPU mode of the engine."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from generation.errors import GenerationCancelled
from generation.model.decoding import CONV_CHUNK_FRAMES, DECODE_PIECE_FRAMES, decode_all, decode_range, decode_whole
from generation.model.engine import MusicGenEngine
from generation.model.spec import EngineSpec
from generation.settings import GenerationSettings
from tests.batching import run_together

RATE = 32_000
PROMPTS = ["calm strings", "epic metal guitar", "jazz trio brushes", "lofi beat rain"]


def settings(prompt="rainy night piano", duration=2.0, seed=1, **more) -> GenerationSettings:
    return GenerationSettings(prompt=prompt, duration=duration, seed=seed, **more)


def test_concurrent_requests_are_generated_as_one_batch(engine):
    results = run_together(engine, [settings(p, seed=i) for i, p in enumerate(PROMPTS)])
    assert max(r.batch_size for r in results) > 1
    assert all(r.audio.shape == (1, 2 * RATE) for r in results)


def test_a_batched_request_gives_the_same_audio_as_alone(engine):
    requests = [settings(p, seed=10 + i, temperature=0.8 + 0.1 * i, top_k=50 * (i + 1)) for i, p in enumerate(PROMPTS)]
    batched = run_together(engine, requests)
    assert max(r.batch_size for r in batched) > 1
    for request, together in zip(requests, batched, strict=True):
        alone = engine.generate(request)
        assert alone.batch_size == 1
        np.testing.assert_array_equal(alone.codes, together.codes)
        np.testing.assert_allclose(alone.audio, together.audio, atol=1e-5)


def test_requests_of_different_lengths_are_not_batched_together(engine):
    results = run_together(engine, [settings(duration=1), settings(duration=2)])
    assert [r.audio.shape[-1] for r in results] == [RATE, 2 * RATE]
    assert all(r.batch_size == 1 for r in results)


def test_max_batch_caps_the_batch(tiny_model_dir):
    engine = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), max_batch=2))
    results = run_together(engine, [settings(p, seed=i) for i, p in enumerate(PROMPTS)])
    assert max(r.batch_size for r in results) == 2


def test_cancelling_one_request_in_a_batch_leaves_the_others(engine):
    cancel = threading.Event()
    cancel.set()
    outcomes: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def run(name: str, event) -> None:
        barrier.wait()
        try:
            outcomes[name] = engine.generate(settings(name), cancel=event)
        except GenerationCancelled as e:
            outcomes[name] = e

    threads = [threading.Thread(target=run, args=("kept", None)), threading.Thread(target=run, args=("gone", cancel))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert isinstance(outcomes["gone"], GenerationCancelled)
    assert outcomes["kept"].audio.shape == (1, 2 * RATE)


def test_a_track_longer_than_a_window_is_continued_window_by_window(short_window_engine):
    steps = []
    result = short_window_engine.generate(settings(duration=5.5), on_progress=lambda d, t: steps.append((d, t)))
    assert result.audio.shape == (1, round(5.5 * RATE))
    assert result.codes.shape == (4, 275)
    assert result.windows == 5  # 2 s, then 1 s, 1 s, 1 s and 0.5 s more
    total = steps[-1][1]
    assert steps[-1] == (total, total) and [d for d, _ in steps] == sorted(d for d, _ in steps)


def test_long_form_continues_from_the_previous_window_without_jumps(short_window_engine):
    result = short_window_engine.generate(settings(duration=5.0))
    audio = result.audio[0]
    jumps = np.abs(np.diff(audio))
    typical = np.percentile(jumps, 99.9)
    for boundary in (2, 3, 4):  # seconds where a new window starts
        at = boundary * RATE
        assert jumps[at - 4 : at + 4].max() <= typical, f"a jump at the {boundary} s window boundary"
    # the seams are decoded with context: the same as decoding all codes at once
    whole = (
        short_window_engine._model.audio_encoder.decode(torch.as_tensor(result.codes)[None, None], audio_scales=[None])
        .audio_values[0]
        .detach()
        .numpy()
    )
    np.testing.assert_allclose(audio, whole[0, : audio.shape[-1]], atol=1e-4)


def test_a_long_track_decodes_its_audio_once_not_once_per_window(short_window_engine, monkeypatch):
    codec = short_window_engine._model.audio_encoder
    decoded_frames: list[int] = []
    shipped = type(codec).decode

    def counting(self, audio_codes, *args, **kwargs):
        decoded_frames.append(audio_codes.shape[-1])
        return shipped(self, audio_codes, *args, **kwargs)

    monkeypatch.setattr(type(codec), "decode", counting)
    result = short_window_engine.generate(settings(duration=5.0))
    assert result.windows == 4
    assert sum(decoded_frames) == 250  # the 5 s track's frames, decoded once at the end
    assert "decode" not in vars(codec)  # generate's own decode is back


def test_long_form_is_reproducible_from_its_seed(short_window_engine):
    first = short_window_engine.generate(settings(duration=4.0, seed=9))
    again = short_window_engine.generate(settings(duration=4.0, seed=9))
    np.testing.assert_array_equal(first.audio, again.audio)


def test_long_form_follows_a_melody_through_every_window(tiny_melody_model_dir):
    from generation.model.types import Melody
    from tests.audio_factory import hum

    engine = MusicGenEngine(
        EngineSpec(model_id=str(tiny_melody_model_dir), family="melody", window_seconds=2.0, extend_stride=1.0)
    )
    melody = Melody(hum(("A3", "C#4", "E4"), note_seconds=0.6, rate=RATE), RATE)
    result = engine.generate(settings(duration=4.0), melody=melody)
    assert result.audio.shape == (1, 4 * RATE) and result.windows == 3


def test_streamed_pieces_add_up_to_the_final_audio(engine):
    pieces: list[np.ndarray] = []
    result = engine.generate(settings(duration=4.0), on_audio=pieces.append)
    assert len(pieces) > 2
    assert pieces[0].shape[-1] == 15 * 640, "the first piece comes after 0.3 s of codes"
    np.testing.assert_allclose(np.concatenate(pieces, axis=-1), result.audio, atol=1e-5)


def test_streaming_a_long_track_crosses_window_boundaries_seamlessly(short_window_engine):
    pieces: list[np.ndarray] = []
    result = short_window_engine.generate(settings(duration=5.5), on_audio=pieces.append)
    np.testing.assert_allclose(np.concatenate(pieces, axis=-1), result.audio, atol=1e-5)


def test_the_first_streamed_audio_arrives_long_before_the_end(engine):
    seen_at: list[int] = []
    steps = {"done": 0}

    def on_progress(done: int, total: int) -> None:
        steps["done"] = done

    engine.generate(settings(duration=5.0), on_progress=on_progress, on_audio=lambda a: seen_at.append(steps["done"]))
    assert seen_at[0] <= 15 + 5 + 3 + 1, "first audio after 0.3 s of codes plus the margin and codebook delay"
    assert seen_at[0] < 253 / 5


def test_decoding_in_pieces_matches_decoding_at_once(engine):
    codes = torch.as_tensor(engine.generate(settings(duration=12.0)).codes)
    codec = engine._model.audio_encoder
    whole = codec.decode(codes[None, None], audio_scales=[None]).audio_values[0].detach().numpy()
    pieces = decode_all(codec, codes)
    assert codes.shape[-1] > DECODE_PIECE_FRAMES
    np.testing.assert_allclose(pieces, whole[:, : pieces.shape[-1]], atol=1e-4)
    middle = decode_range(codec, codes, 100, 200)
    np.testing.assert_allclose(middle, whole[:, 100 * 640 : 200 * 640], atol=1e-4)


@pytest.mark.parametrize("seconds", [1.0, 2.0, 4.7])  # less than a chunk, exactly one, two and a part
def test_decoding_the_last_layers_in_chunks_gives_the_whole_decodes_samples(engine, seconds):
    """Fast mode's codec runs its convolutions ``CONV_CHUNK_FRAMES`` at a time: the same audio up to rounding."""
    codes = torch.as_tensor(engine.generate(settings(duration=seconds)).codes)
    assert CONV_CHUNK_FRAMES == 100
    codec = engine._model.audio_encoder
    whole, chunked = decode_whole(codec, codes), decode_whole(codec, codes, chunked=True)
    assert chunked.shape == whole.shape == (1, round(seconds * RATE))
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-6 * np.abs(whole).max())
    end = codes.shape[-1] - 10
    part, chunked_part = decode_range(codec, codes, 10, end), decode_range(codec, codes, 10, end, chunked=True)
    np.testing.assert_allclose(chunked_part, part, rtol=0, atol=1e-6 * np.abs(part).max())


def test_fast_mode_stores_the_decoder_as_int8_and_still_makes_music(tiny_model_dir):
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    fast = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), fast=True, device="cpu"))
    result = fast.generate(settings())
    assert fast.mode == "fast" and result.mode == "fast"
    assert isinstance(fast._model.decoder.lm_heads[0], DynamicQuantizedLinear)
    assert result.audio.shape == (1, 2 * RATE) and np.isfinite(result.audio).all()
    again = fast.generate(settings())
    np.testing.assert_array_equal(result.audio, again.audio)


def test_fast_mode_is_read_from_the_environment(monkeypatch, tiny_model_dir):
    monkeypatch.setenv("MOODTAPE_FAST_CPU", "1")
    assert MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), device="cpu")).mode == "fast"
    monkeypatch.setenv("MOODTAPE_FAST_CPU", "0")
    assert MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), device="cpu")).mode == "exact"


def test_streaming_requests_batch_together_and_each_gets_its_own_audio(engine):
    pieces: dict[int, list[np.ndarray]] = {0: [], 1: []}
    results: dict[int, object] = {}
    barrier = threading.Barrier(2)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = engine.generate(settings(PROMPTS[i], duration=3.0, seed=i), on_audio=pieces[i].append)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0].batch_size == 2
    for i in range(2):
        np.testing.assert_allclose(np.concatenate(pieces[i], axis=-1), results[i].audio, atol=1e-5)


def test_in_place_cache_appends_give_the_same_codes_and_leave_transformers_as_shipped(engine):
    from transformers.cache_utils import DynamicLayer
    from transformers.generation.stopping_criteria import StoppingCriteriaList

    from generation.model.kvcache import in_place_appends

    shipped = DynamicLayer.update
    model, processor = engine._model, engine._processor
    inputs = processor(text=["rainy night piano"], return_tensors="pt")

    def plain_codes():
        watcher = _LastIds()
        torch.manual_seed(3)
        model.generate(
            **inputs,
            max_new_tokens=120,
            do_sample=True,
            guidance_scale=3.0,
            stopping_criteria=StoppingCriteriaList([watcher]),
        )
        return watcher.ids

    with_cat = plain_codes()
    with in_place_appends():
        assert DynamicLayer.update is not shipped
        in_place = plain_codes()
    assert DynamicLayer.update is shipped
    assert torch.equal(with_cat, in_place)


class _LastIds:
    def __call__(self, input_ids, scores, **kwargs):
        self.ids = input_ids.clone()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool)
