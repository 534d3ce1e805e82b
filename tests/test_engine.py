"""The engine: loading through from_pretrained, lengths, seeds, prompts, progress, cancel."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from generation.config import ServerConfig
from generation.errors import GenerationCancelled, InvalidInputError, ModelLoadError
from generation.model.engine import MusicGenEngine
from generation.model.loading import pick_device
from generation.model.spec import EngineSpec
from generation.settings import GenerationSettings


def settings(**overrides) -> GenerationSettings:
    values = {"prompt": "rainy night, mellow piano", "duration": 1.5, "seed": 11, **overrides}
    return GenerationSettings(**values)


def test_generated_audio_has_the_requested_length_and_native_rate(engine):
    result = engine.generate(settings(duration=2.5))
    assert result.sample_rate == 32_000
    assert result.audio.dtype == np.float32
    assert result.audio.shape == (1, 80_000)
    assert np.isfinite(result.audio).all()
    assert result.audio.std() > 1e-4, "the tiny model must produce a signal, not silence"


def test_same_seed_and_settings_give_identical_audio(engine):
    first = engine.generate(settings())
    second = engine.generate(settings())
    np.testing.assert_array_equal(first.audio, second.audio)


def test_different_seeds_give_different_audio(engine):
    first = engine.generate(settings(seed=1))
    second = engine.generate(settings(seed=2))
    assert np.abs(first.audio - second.audio).mean() > 0.1 * np.abs(first.audio).mean()


def test_different_prompts_give_different_audio(engine):
    calm = engine.generate(settings(prompt="calm ambient strings"))
    loud = engine.generate(settings(prompt="epic metal guitar drums"))
    assert np.abs(calm.audio - loud.audio).mean() > 0.1 * np.abs(calm.audio).mean()


def test_sampling_settings_change_the_audio(engine):
    base = engine.generate(settings())
    for change in ({"temperature": 0.3}, {"top_k": 5}, {"top_p": 0.5}, {"guidance_scale": 1.0}):
        other = engine.generate(settings(**change))
        assert not np.array_equal(base.audio, other.audio), change


def test_missing_seed_is_drawn_and_reported(engine):
    result = engine.generate(settings(seed=None))
    assert isinstance(result.settings.seed, int)
    again = engine.generate(settings(seed=result.settings.seed))
    np.testing.assert_array_equal(result.audio, again.audio)


def test_progress_is_reported_for_every_decoding_step(engine):
    seen: list[tuple[int, int]] = []
    engine.generate(settings(duration=1.0), on_progress=lambda done, total: seen.append((done, total)))
    total = 50 + 3  # 50 frames per second plus the codebook delay
    assert seen[-1] == (total, total)
    assert [done for done, _ in seen] == list(range(1, total + 1))


def test_cancel_stops_generation_with_a_clear_error(engine):
    cancel = threading.Event()

    def cancel_after_ten_steps(done: int, total: int) -> None:
        if done == 10:
            cancel.set()

    with pytest.raises(GenerationCancelled):
        engine.generate(settings(duration=5), on_progress=cancel_after_ten_steps, cancel=cancel)
    assert engine.generate(settings(duration=1)).audio.shape[-1] == 32_000, "the engine still works after a cancel"


def test_empty_prompt_is_refused(engine):
    with pytest.raises(InvalidInputError, match="prompt is empty"):
        engine.generate(GenerationSettings(prompt="   ", duration=1))


def test_model_loads_once_and_is_reused(tiny_model_dir):
    engine = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir)))
    assert not engine.loaded
    engine.load()
    model = engine._model
    engine.generate(settings(duration=1))
    assert engine._model is model


def test_unreachable_hub_model_explains_how_to_get_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    engine = MusicGenEngine(EngineSpec(model_id="facebook/musicgen-does-not-exist-here"))
    with pytest.raises(ModelLoadError) as info:
        engine.load()
    message = str(info.value)
    assert "facebook/musicgen-does-not-exist-here" in message
    assert "hf download" in message and "MUSICGEN_MODEL" in message
    assert not engine.loaded, "a failed load can be retried later"


def test_folder_without_a_checkpoint_is_named_in_the_error(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelLoadError, match=str(tmp_path)):
        MusicGenEngine(EngineSpec(model_id=str(tmp_path))).load()


def test_model_id_comes_from_the_environment(monkeypatch, tiny_model_dir):
    monkeypatch.setenv("MUSICGEN_MODEL", str(tiny_model_dir))
    assert ServerConfig.from_env().text_model == str(tiny_model_dir)
    assert MusicGenEngine().model_id == str(tiny_model_dir)
    monkeypatch.delenv("MUSICGEN_MODEL")
    assert ServerConfig.from_env().text_model == "facebook/musicgen-small"
    assert MusicGenEngine().model_id == "facebook/musicgen-small"


def test_device_falls_back_to_cpu_and_can_be_forced(monkeypatch):
    monkeypatch.delenv("MOODTAPE_DEVICE", raising=False)
    assert pick_device() in {"cpu", "cuda", "mps"}
    monkeypatch.setenv("MOODTAPE_DEVICE", "cpu")
    assert pick_device(ServerConfig.from_env().device) == "cpu"
    assert MusicGenEngine().device == "cpu"
