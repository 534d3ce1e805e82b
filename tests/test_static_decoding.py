"""Moodtape's own decoding loop gives the tokens transformers' ``generate`` gives, for every kind of request.

"The same" here: with float32 weights and a float32 key/value cache the loop's codes equal ``generate``'s for
the same seeds, bit for bit (the same kernels on the same values). The fixed-shape step that a GPU captures as
a CUDA graph is run here on CPU, without the graph, and gives the dynamic step's codes.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

from generation.errors import GenerationCancelled
from generation.model import static_decoding
from generation.model.engine import MusicGenEngine
from generation.model.sampling import RowControl, SeededSampler, StepWatcher
from generation.model.spec import EngineSpec
from generation.model.types import AudioPrompt, Melody
from generation.settings import GenerationSettings
from tests.batching import run_together
from tests.random_musicgen import TINY, random_musicgen, text_processor

RATE = 32_000
TONE = (0.5 * np.sin(2 * np.pi * 330 * np.arange(2 * RATE) / RATE)).astype(np.float32)


def settings(**overrides) -> GenerationSettings:
    return GenerationSettings(**{"prompt": "rainy night, mellow piano", "duration": 1.5, "seed": 5, **overrides})


@pytest.fixture(scope="module")
def pair(tiny_model_dir):
    """The same tiny checkpoint behind the generate loop and the static loop, both exact (float32 cache)."""
    common = {"fast": False, "device": "cpu", "window_seconds": 2.0, "extend_stride": 1.0}
    return (
        MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), decoding="generate", **common)),
        MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), decoding="static", **common)),
    )


@pytest.mark.parametrize(
    "request_settings",
    [
        settings(),
        settings(negative_prompt="distorted drums"),
        settings(guidance_scale=1.0),
        settings(top_k=0, top_p=0.7, temperature=0.8),
        settings(duration=4.0),  # beyond the 2 s window: windows continued with a code prompt
    ],
    ids=["plain", "negative", "unguided", "top-p", "long"],
)
def test_static_loop_gives_generates_codes(pair, request_settings):
    shipped, static = pair
    assert static.decoding == "static" and shipped.decoding == "generate"
    a, b = shipped.generate(request_settings), static.generate(request_settings)
    np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_array_equal(a.audio, b.audio)


def test_static_loop_gives_generates_codes_for_a_batch_and_an_extend(pair):
    shipped, static = pair
    prompt = AudioPrompt(np.stack([TONE[: RATE // 2]]), RATE)
    assert np.array_equal(
        shipped.generate(settings(), audio_prompt=prompt).codes, static.generate(settings(), audio_prompt=prompt).codes
    )
    takes = [engine.generate_takes(settings(prompt="a long prompt about loud guitars and drums"), 3) for engine in pair]
    for a, b in zip(*takes, strict=True):
        np.testing.assert_array_equal(a.codes, b.codes)


def test_static_loop_gives_generates_codes_for_a_melody(tiny_melody_model_dir):
    engines = [
        MusicGenEngine(
            EngineSpec(model_id=str(tiny_melody_model_dir), family="melody", fast=False, device="cpu", decoding=loop)
        )
        for loop in ("generate", "static")
    ]
    melody = Melody(TONE, RATE)
    a, b = (engine.generate(settings(), melody=melody) for engine in engines)
    np.testing.assert_array_equal(a.codes, b.codes)
    c, d = (engine.generate(settings(negative_prompt="drums")) for engine in engines)  # no melody: null chroma
    np.testing.assert_array_equal(c.codes, d.codes)


def stereo_model():
    """A tiny random stereo MusicGen: 8 codebooks, left and right interleaved, decoded by the mono codec."""
    from transformers import MusicgenConfig, MusicgenForConditionalGeneration

    data = random_musicgen(TINY).config.to_dict()
    data["decoder"].update(audio_channels=2, num_codebooks=8)
    torch.manual_seed(1)
    model = MusicgenForConditionalGeneration(MusicgenConfig.from_dict(data)).eval()
    special = data["decoder"]["pad_token_id"]
    generation = model.generation_config
    generation.decoder_start_token_id = generation.pad_token_id = generation.bos_token_id = special
    return model


def test_static_loop_gives_generates_codes_in_stereo():
    model, processor = stereo_model(), text_processor()
    engines = [
        MusicGenEngine.from_model(
            model, processor, EngineSpec(model_id="tiny-stereo", fast=False, device="cpu", decoding=loop)
        )
        for loop in ("generate", "static")
    ]
    a, b = (engine.generate(settings()) for engine in engines)
    assert a.audio.shape == (2, 48_000) and a.codes.shape[0] == 8
    np.testing.assert_array_equal(a.codes, b.codes)


def inputs_for(engine: MusicGenEngine, prompts: list[str]) -> dict[str, torch.Tensor]:
    tokens = engine._processor.tokenizer(prompts, padding=True, return_tensors="pt")
    return {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}


@pytest.mark.parametrize("guided", [True, False])
def test_fixed_shape_step_gives_the_dynamic_steps_tokens(pair, guided):
    """The step a GPU captures as a CUDA graph (whole buffer, masked; position as a tensor), run on CPU."""
    engine = pair[1]
    engine.load()
    prompts = ["rainy night piano", "loud distorted guitars, pounding drums and a choir singing over them"]
    runs = []
    for static in (False, True):
        requests = [settings(prompt=p, seed=i, guidance_scale=3.0 if guided else 1.0) for i, p in enumerate(prompts)]
        sampler = SeededSampler(requests, 4, "cpu")
        watcher = StepWatcher([RowControl(60), RowControl(60)])
        ids = static_decoding.decode(
            engine._model,
            inputs_for(engine, prompts),
            None,
            60,
            sampler.choose,
            watcher,
            sampler.guided,
            cache_dtype=torch.float32,
            static=static,
        )
        runs.append(ids)
    assert torch.equal(runs[0], runs[1])


def test_bucket_pads_rows_positions_and_text():
    assert static_decoding.CudaGraphSteps.bucket(6, 300, 17) == (8, 512, 32)
    assert static_decoding.CudaGraphSteps.bucket(2, 256, 0) == (2, 256, 0)


def test_static_loop_streams_reports_progress_and_cancels(pair):
    static = pair[1]
    pieces: list[np.ndarray] = []
    seen: list[int] = []
    made = static.generate(settings(duration=2.0), on_audio=pieces.append, on_progress=lambda d, t: seen.append(d))
    assert seen == list(range(1, 2 * 50 + 4))
    np.testing.assert_allclose(np.concatenate(pieces, axis=-1), made.audio, atol=1e-4)
    cancel = threading.Event()
    with pytest.raises(GenerationCancelled):
        static.generate(settings(duration=2.0), cancel=cancel, on_progress=lambda d, t: d == 5 and cancel.set())


def test_fast_mode_keeps_its_cache_in_bfloat16_only_on_cpus_with_amx(monkeypatch):
    monkeypatch.setattr(static_decoding, "_has_amx", lambda: True)
    assert static_decoding.cpu_cache_dtype() == torch.bfloat16
    monkeypatch.setattr(static_decoding, "_has_amx", lambda: False)
    assert static_decoding.cpu_cache_dtype() == torch.float32


def test_an_unknown_cache_type_is_refused_by_name(tiny_model_dir):
    with pytest.raises(ValueError, match="cpu_cache must be 'float32' or 'bfloat16', got 'int8'"):
        MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), cpu_cache="int8"))


def scores_fed(
    engine: MusicGenEngine,
    requests: GenerationSettings | list[GenerationSettings],
    steps: int,
    fed: list[torch.Tensor],
    **options,
) -> torch.Tensor:
    """The logits of each step of ``requests`` (one batch), sampling their tokens into ``fed``, or feeding those
    ``fed`` already; ``options`` go to ``decode`` (a code ``prompt``, ``share_prompt``)."""
    requests = [requests] if isinstance(requests, GenerationSettings) else requests
    sampler = SeededSampler(requests, 4, "cpu")
    seen: list[torch.Tensor] = []
    given = len(fed)

    def choose(scores: torch.Tensor, rows: int) -> torch.Tensor:
        seen.append(scores.clone())
        if not given:
            fed.append(sampler.choose(scores, rows))
        return fed[len(seen) - 1]

    static_decoding.decode(
        engine._model,
        inputs_for(engine, [request.prompt for request in requests]),
        options.pop("prompt", None),
        steps,
        choose,
        StepWatcher([RowControl(steps) for _ in requests]),
        sampler.guided,
        cache_dtype=engine._cpu_cache_dtype(),
        **options,
    )
    return torch.stack(seen)


def test_the_two_caches_give_nearly_the_same_logits(tiny_model_dir):
    """A bfloat16 cache moves the logits by rounding only: fed the same tokens, both caches score them alike."""
    engines = {}
    for cache in ("float32", "bfloat16"):
        engines[cache] = MusicGenEngine(
            EngineSpec(model_id=str(tiny_model_dir), fast=True, device="cpu", cpu_cache=cache)
        )
        engines[cache].load()
    tokens: list[torch.Tensor] = []
    full = scores_fed(engines["float32"], settings(), 20, tokens)
    half = scores_fed(engines["bfloat16"], settings(), 20, tokens)  # fed the float32 run's tokens
    assert not torch.equal(full, half)
    torch.testing.assert_close(half, full, atol=0.02 * full.abs().max().item(), rtol=0)  # measured: 0.4%


def test_fast_mode_uses_the_static_loop_and_replays_the_same_audio(tiny_model_dir):
    fast = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), fast=True, device="cpu"))
    assert fast.mode == "fast" and fast.decoding == "static"
    first, again = fast.generate(settings()), fast.generate(settings())
    assert first.mode == "fast"
    np.testing.assert_array_equal(first.audio, again.audio)
    assert MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), fast=False, device="cpu")).decoding == "generate"
    assert MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), device="cuda")).decoding == "static"


def test_bucketed_steps_with_padding_rows_give_the_dynamic_steps_tokens(pair):
    """The GPU's bucketed buffers (3 guided requests padded to 8 rows, text padded to 32 tokens), replayed
    without a graph on CPU, give the tokens of the dynamic step; a second window reuses the bucket."""
    engine = pair[1]
    engine.load()
    prompts = ["rainy night piano", "loud guitars", "a choir singing over pounding drums"]
    graphs = static_decoding.CudaGraphSteps(capture=False)
    runs = []
    for use_graphs in (None, graphs, graphs):
        requests = [settings(prompt=p, seed=i) for i, p in enumerate(prompts)]
        sampler = SeededSampler(requests, 4, "cpu")
        ids = static_decoding.decode(
            engine._model,
            inputs_for(engine, prompts),
            None,
            40,
            sampler.choose,
            StepWatcher([RowControl(40) for _ in prompts]),
            sampler.guided,
            cache_dtype=torch.float32,
            graphs=use_graphs,
        )
        runs.append(ids)
    assert list(graphs.graphs) == [(8, 256, 32)]
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0], runs[2])


def test_fast_mode_decodes_audio_with_an_int8_recurrent_layer(tiny_model_dir):
    from torch.ao.nn.quantized.dynamic import LSTM as DynamicQuantizedLSTM

    fast = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), fast=True, device="cpu"))
    exact = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), fast=False, device="cpu"))
    fast.load(), exact.load()
    assert any(isinstance(m, DynamicQuantizedLSTM) for m in fast._model.audio_encoder.decoder.modules())
    assert not any(isinstance(m, DynamicQuantizedLSTM) for m in fast._model.audio_encoder.encoder.modules())
    assert not any(isinstance(m, DynamicQuantizedLSTM) for m in exact._model.audio_encoder.modules())
    made = fast.generate(settings(duration=2.0))
    assert made.audio.shape == (1, 64_000) and np.isfinite(made.audio).all() and made.audio.std() > 1e-4


@pytest.mark.parametrize("cache", ["float32", "bfloat16"])
def test_fast_mode_gives_a_request_the_same_audio_alone_or_batched(tiny_model_dir, cache):
    """int8 matmuls quantise each row with its own scale: a request's rows do not see their batch-mates'.

    Both caches a CPU may get (``cpu_cache_dtype``), whichever this machine's is."""
    fast = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), fast=True, device="cpu", cpu_cache=cache))
    takes = fast.generate_takes(settings(negative_prompt="drums"), 3)
    assert [take.batch_size for take in takes] == [3, 3, 3]
    for take in takes:
        alone = fast.generate(take.settings)
        assert alone.batch_size == 1
        np.testing.assert_array_equal(alone.codes, take.codes)
        np.testing.assert_array_equal(alone.audio, take.audio)
    unguided = fast.generate_takes(settings(guidance_scale=1.0), 2)
    np.testing.assert_array_equal(fast.generate(unguided[1].settings).codes, unguided[1].codes)
    # Different prompts (text padded to the longer one) and settings, sent at the same moment
    requests = [
        settings(prompt="rainy night piano", seed=10, top_k=50),
        settings(prompt="loud distorted guitars, pounding drums and a choir singing over them", seed=11),
    ]
    batched = run_together(fast, requests)
    assert max(result.batch_size for result in batched) > 1
    for request, together in zip(requests, batched, strict=True):
        np.testing.assert_array_equal(fast.generate(request).codes, together.codes)


def test_takes_run_their_first_forward_once_and_match_each_seed_alone(tiny_model_dir):
    """Takes differ only in their seeds, which the first forward does not read: it runs for one of them."""
    fast = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), fast=True, device="cpu"))
    fast.load()
    code_rows: list[int] = []
    hook = fast._model.decoder.register_forward_pre_hook(
        lambda _module, args, kwargs: code_rows.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    try:
        prompt = AudioPrompt(TONE[None, : RATE // 2], RATE)
        takes = fast.generate_takes(settings(negative_prompt="drums"), 3, audio_prompt=prompt)
        one = code_rows.pop()
        alone = [fast.generate(take.settings, audio_prompt=prompt) for take in takes]
    finally:
        hook.remove()
    assert [take.batch_size for take in takes] == [3, 3, 3] and not code_rows[:-3]
    assert code_rows == [one] * 3  # three takes' first forward read the rows of one request alone
    for take, single in zip(takes, alone, strict=True):
        np.testing.assert_array_equal(single.codes, take.codes)
    assert len({take.codes.tobytes() for take in takes}) == 3  # the seeds still make three different takes


def test_buckets_beyond_the_limit_drop_the_least_recently_used(pair, monkeypatch):
    engine = pair[1]
    engine.load()
    monkeypatch.setattr(static_decoding, "MAX_GRAPHS", 1)
    graphs = static_decoding.CudaGraphSteps(capture=False)
    for prompts in (["rainy night piano"], ["rainy night piano", "loud guitars", "a choir"]):
        sampler = SeededSampler([settings(prompt=p) for p in prompts], 4, "cpu")
        watcher = StepWatcher([RowControl(10) for _ in prompts])
        static_decoding.decode(
            engine._model,
            inputs_for(engine, prompts),
            None,
            10,
            sampler.choose,
            watcher,
            True,
            cache_dtype=torch.float32,
            graphs=graphs,
        )
    assert list(graphs.graphs) == [(8, 256, 32)]


@pytest.mark.parametrize(("cache", "tolerance"), [("float32", 1e-4), ("bfloat16", 0.02)])
def test_candidates_reading_their_shared_prompt_once_score_as_they_would_apart(
    tiny_model_dir, monkeypatch, cache, tolerance
):
    """A section's candidates keep their audio prompt's keys and values once and attend to it as grouped queries;
    joined by log-sum-exp with their own positions, the logits are those of every row reading its own copy (up to
    the cache's rounding: a bfloat16 cache rounds the joined attention's output once more)."""
    fast = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), fast=True, device="cpu", cpu_cache=cache))
    fast.load()
    takes, steps, codebooks = 3, 12, fast._num_codebooks
    frames = static_decoding.SHARED_PREFIX_MIN + 20
    vocab = fast._model.decoder.config.vocab_size
    prompt = torch.randint(0, vocab, (codebooks, frames), generator=torch.Generator().manual_seed(0)).repeat(takes, 1)
    shared_loads = []
    monkeypatch.setattr(
        static_decoding.Stepper,
        "load_shared",
        lambda self, prefill, requests, load=static_decoding.Stepper.load_shared: (
            shared_loads.append(requests),
            load(self, prefill, requests),
        ),
    )

    tokens: list[torch.Tensor] = []
    requests = [settings(seed=seed) for seed in range(takes)]
    apart = scores_fed(fast, requests, steps, tokens, prompt=prompt)
    assert shared_loads == []
    together = scores_fed(fast, requests, steps, tokens, prompt=prompt, share_prompt=True)  # fed the same tokens
    assert shared_loads == [takes]
    torch.testing.assert_close(together, apart, atol=tolerance * apart.abs().max().item(), rtol=0)
    assert len({row.tobytes() for row in torch.stack(tokens).view(steps, takes, -1).transpose(0, 1).numpy()}) == takes


def test_a_sections_candidates_repeat_bit_for_bit_and_batch_with_no_one_else(tiny_model_dir):
    fast = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), fast=True, device="cpu"))
    fast.load()
    prompt = AudioPrompt(np.tile(TONE, 2)[None, : 3 * RATE], RATE)  # 150 frames: past SHARED_PREFIX_MIN
    first = fast.generate_takes(settings(), 2, audio_prompt=prompt, share_prompt=True)
    again = fast.generate_takes(settings(), 2, audio_prompt=prompt, share_prompt=True)
    for one, other in zip(first, again, strict=True):
        np.testing.assert_array_equal(one.codes, other.codes)
    assert first[0].codes.tobytes() != first[1].codes.tobytes()
    jobs = [fast._job(settings(), None, prompt, None, None, None) for _ in range(2)]
    plain, grouped = jobs[0], replace(jobs[1], shared_prompt_group=7)
    assert plain.batch_key != grouped.batch_key  # candidates never share a batch with other requests
