"""One engine spec: the local engine, the remote one and the replicas take the same frozen, checked options."""

from __future__ import annotations

import dataclasses

import pytest

from generation import EngineSpec
from generation.config import ServerConfig
from generation.model.engine import MusicGenEngine
from generation.model.spec import WINDOW_SECONDS


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"family": "drums"}, "family must be 'text' or 'melody', got 'drums'"),
        ({"decoding": "beam"}, "decoding must be 'static' or 'generate', got 'beam'"),
        ({"cpu_cache": "int8"}, "cpu_cache must be 'float32' or 'bfloat16', got 'int8'"),
        ({"max_batch": 2.5}, "max_batch must be a whole number, got 2.5"),
        ({"window_seconds": 0}, "window_seconds must be above 0, got 0"),
        ({"extend_stride": 30.0}, r"extend_stride must be between 0 and window_seconds \(30.0\), got 30.0"),
        (
            {"window_seconds": 2.0, "extend_stride": 1.0, "prompt_seconds": 3.0},
            r"prompt_seconds must be .* \(2.0\), got 3.0",
        ),
    ],
)
def test_a_bad_option_is_refused_by_name_before_any_engine_exists(options, message):
    with pytest.raises(ValueError, match=message):
        EngineSpec(**options)


def test_what_a_spec_leaves_open_comes_from_the_config_in_one_place():
    config = ServerConfig.from_env(
        {"MUSICGEN_MELODY_MODEL": "my/melody", "MOODTAPE_MAX_BATCH": "3", "MOODTAPE_FAST_CPU": "0"}
    )
    spec = EngineSpec(family="melody").resolved(config)
    assert (spec.model_id, spec.max_batch, spec.fast) == ("my/melody", 3, False)
    assert spec.prompt_seconds == 20.0 and spec.window_seconds == WINDOW_SECONDS
    short = EngineSpec(model_id="x", window_seconds=3.0, extend_stride=1.0, fast=True).resolved(config)
    assert short.prompt_seconds == 2.0 and short.fast is True, "a short window continues two thirds of itself"
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.fast = True  # type: ignore[misc]


def test_the_engine_keeps_its_resolved_spec_and_answers_from_it(tiny_model_dir):
    engine = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), fast=False, device="cpu", max_batch=2))
    assert engine.spec.model_id == engine.model_id == str(tiny_model_dir)
    assert (engine.max_batch, engine.mode, engine.decoding, engine.family) == (2, "exact", "generate", "text")
    assert not engine.loaded, "a spec alone loads nothing"
