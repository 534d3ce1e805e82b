"""Takes: several takes of one request, seeds seed, seed + 1, ..., made as one batch, each what its seed gives alone."""

from __future__ import annotations

import numpy as np
import pytest

from generation.errors import InvalidInputError
from generation.model.engine import MusicGenEngine
from generation.model.spec import MAX_TAKES, EngineSpec
from generation.model.types import AudioPrompt, Melody
from generation.settings import MAX_SEED, GenerationSettings
from tests.audio_factory import hum

RATE = 32_000


def settings(prompt="rainy night mellow piano", seed=20, **more) -> GenerationSettings:
    return GenerationSettings(prompt=prompt, duration=1.5, seed=seed, **more)


def assert_twins(takes, engine: MusicGenEngine, request: GenerationSettings, **inputs) -> None:
    """Each take is, bit for bit, what ``generate`` gives for its seed alone."""
    for i, take in enumerate(takes):
        assert take.settings.seed == (request.seed + i) % (MAX_SEED + 1)
        alone = engine.generate(take.settings, **inputs)
        assert alone.batch_size == 1
        np.testing.assert_array_equal(alone.codes, take.codes)
        np.testing.assert_array_equal(alone.audio, take.audio)


def test_takes_run_as_one_batch_and_each_equals_its_seed_alone(engine):
    request = settings(temperature=0.9, top_k=40)
    takes = engine.generate_takes(request, 3)
    assert [t.batch_size for t in takes] == [3, 3, 3]
    assert [t.settings.seed for t in takes] == [20, 21, 22]
    assert all(t.audio.shape == (1, round(1.5 * RATE)) for t in takes)
    assert len({t.codes.tobytes() for t in takes}) == 3, "three different takes"
    assert_twins(takes, engine, request)


def test_takes_with_a_negative_prompt_equal_their_seeds_alone(engine):
    request = settings(negative_prompt="epic metal guitar drums")
    assert_twins(engine.generate_takes(request, 2), engine, request)


def test_takes_of_an_extend_share_the_audio_prompt_and_batch(engine):
    samples = hum(("A3", "C#4", "E4"), note_seconds=0.5, rate=RATE)[None]
    prompt = AudioPrompt(samples, RATE)
    request = settings()
    takes = engine.generate_takes(request, 3, audio_prompt=prompt)
    assert [t.batch_size for t in takes] == [3, 3, 3]
    assert all(t.prompt_seconds == 1.5 and t.audio.shape == (1, round(1.5 * RATE)) for t in takes)
    assert_twins(takes, engine, request, audio_prompt=prompt)


def test_takes_of_a_melody_equal_their_seeds_alone(melody_engine):
    melody = Melody(hum(("A3", "C#4", "E4", "A4"), note_seconds=0.5, rate=RATE), RATE)
    request = settings()
    takes = melody_engine.generate_takes(request, 2, melody=melody)
    assert [t.batch_size for t in takes] == [2, 2]
    assert_twins(takes, melody_engine, request, melody=melody)


def test_takes_beyond_max_batch_still_equal_their_seeds_alone(tiny_model_dir):
    engine = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), max_batch=2))
    request = settings()
    takes = engine.generate_takes(request, 3)
    assert sorted(t.batch_size for t in takes) == [1, 2, 2]
    assert_twins(takes, engine, request)


def test_takes_of_a_long_track_run_one_by_one_and_equal_their_seeds_alone(tiny_model_dir):
    engine = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), window_seconds=2.0, extend_stride=1.0))
    request = GenerationSettings(prompt="rainy night", duration=3.0, seed=7)
    takes = engine.generate_takes(request, 2)
    assert [(t.batch_size, t.windows) for t in takes] == [(1, 2), (1, 2)]
    assert_twins(takes, engine, request)


def test_a_missing_seed_is_drawn_once_and_the_takes_follow_it(engine):
    takes = engine.generate_takes(settings(seed=None), 2)
    first = takes[0].settings.seed
    assert isinstance(first, int) and takes[1].settings.seed == (first + 1) % (MAX_SEED + 1)


def test_seeds_wrap_past_the_largest_seed(engine):
    takes = engine.generate_takes(settings(seed=MAX_SEED), 2)
    assert [t.settings.seed for t in takes] == [MAX_SEED, 0]


def test_progress_covers_all_takes_together(engine):
    seen: list[tuple[int, int]] = []
    engine.generate_takes(
        GenerationSettings(prompt="calm", duration=1.0, seed=1), 2, on_progress=lambda d, t: seen.append((d, t))
    )
    total = 2 * (50 + 3)
    assert seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


@pytest.mark.parametrize("takes", [0, MAX_TAKES + 1, 2.0, True, "2"])
def test_a_number_of_takes_out_of_range_is_refused_clearly(engine, takes):
    with pytest.raises(InvalidInputError, match=f"takes must be a whole number from 1 to {MAX_TAKES}"):
        engine.generate_takes(settings(), takes)
