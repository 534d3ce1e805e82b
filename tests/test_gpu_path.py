"""The GPU path on a CUDA GPU: the decoding step captured as CUDA graphs, half precision, every kind of request.

Skipped without a GPU; ``bash scripts/gpu_check.sh`` runs these, then the GPU benchmark. What can run on CPU
(the fixed-shape step, the buckets' padding, the loop against ``generate``) is in ``test_static_decoding.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generation.model import static_decoding
from generation.model.engine import MusicGenEngine
from generation.model.sampling import RowControl, SeededSampler, StepWatcher
from generation.model.spec import EngineSpec
from generation.model.types import Melody
from generation.settings import GenerationSettings

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

RATE = 32_000
TONE = (0.5 * np.sin(2 * np.pi * 330 * np.arange(2 * RATE) / RATE)).astype(np.float32)


def settings(**overrides) -> GenerationSettings:
    return GenerationSettings(**{"prompt": "rainy night, mellow piano", "duration": 1.5, "seed": 5, **overrides})


@pytest.fixture(scope="module")
def gpu_engine(tiny_model_dir):
    engine = MusicGenEngine(
        EngineSpec(model_id=str(tiny_model_dir), device="cuda", window_seconds=2.0, extend_stride=1.0)
    )
    engine.load()
    return engine


def test_the_gpu_engine_runs_the_static_loop_in_half_precision(gpu_engine):
    assert gpu_engine.mode == "exact" and gpu_engine.decoding == "static"
    assert gpu_engine._model.decoder.dtype in (torch.bfloat16, torch.float16)
    assert gpu_engine._model.audio_encoder.dtype == torch.float32
    first = gpu_engine.generate(settings())
    assert first.audio.shape == (1, 48_000) and np.isfinite(first.audio).all() and first.audio.std() > 1e-4
    assert gpu_engine.graph_capture_seconds, "the step ran as a captured graph"
    np.testing.assert_array_equal(first.codes, gpu_engine.generate(settings()).codes)


def test_captured_graphs_give_the_uncaptured_steps_tokens(gpu_engine):
    prompts = ["rainy night piano", "loud guitars", "a choir over pounding drums"]
    tokens = gpu_engine._processor.tokenizer(prompts, padding=True, return_tensors="pt")
    inputs = {name: tokens[name].cuda() for name in ("input_ids", "attention_mask")}
    runs = []
    for graphs in (static_decoding.CudaGraphSteps(capture=False), static_decoding.CudaGraphSteps()):
        sampler = SeededSampler([settings(prompt=p, seed=i) for i, p in enumerate(prompts)], 4, "cuda")
        runs.append(
            static_decoding.decode(
                gpu_engine._model,
                inputs,
                None,
                60,
                sampler.choose,
                StepWatcher([RowControl(60) for _ in prompts]),
                sampler.guided,
                cache_dtype=gpu_engine._model.decoder.dtype,
                graphs=graphs,
            )
        )
    assert torch.equal(runs[0], runs[1])


def test_streaming_batching_long_tracks_and_negative_prompts_on_the_gpu(gpu_engine):
    pieces: list[np.ndarray] = []
    streamed = gpu_engine.generate(settings(duration=2.0), on_audio=pieces.append)
    np.testing.assert_allclose(np.concatenate(pieces, axis=-1), streamed.audio, atol=1e-4)
    long = gpu_engine.generate(settings(duration=4.5, negative_prompt="drums"))
    assert long.windows > 1 and long.audio.shape == (1, int(4.5 * RATE)) and np.isfinite(long.audio).all()
    takes = gpu_engine.generate_takes(settings(), 3)
    assert [t.batch_size for t in takes] == [3, 3, 3]
    assert len({t.codes.tobytes() for t in takes}) == 3, "each take has its own seed"


def test_the_melody_model_follows_its_melody_on_the_gpu(tiny_melody_model_dir):
    engine = MusicGenEngine(EngineSpec(model_id=str(tiny_melody_model_dir), family="melody", device="cuda"))
    with_melody = engine.generate(settings(), melody=Melody(TONE, RATE))
    without = engine.generate(settings())
    assert np.isfinite(with_melody.audio).all()
    assert not np.array_equal(with_melody.codes, without.codes)
