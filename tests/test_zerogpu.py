"""ZeroGPU glue: off the Space nothing changes; the GPU time asked for follows the request's resolved settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from generation.config import ServerConfig
from generation.presets import load_presets
from generation.settings import GenerationSettings
from generation.studio import Studio, TrackRequest
from zerogpu import (
    GPU_SECONDS_BASE,
    GPU_SECONDS_MAX,
    GPU_SECONDS_PER_AUDIO_SECOND,
    GPU_SECONDS_PER_EXTRA_TAKE,
    GPU_SECONDS_STEMS,
    REFERENCE_PARAMETERS,
    estimate_gpu_seconds,
    track_maker,
)

PRESET_IDS = load_presets().ids()


def studio_with(engine, melody_engine, separator, folder: Path, environ: dict[str, str]) -> Studio:
    """A studio on the tiny models whose settings come from ``environ`` alone."""
    return Studio(
        engine,
        output_dir=folder / "outputs",
        melody_engine=melody_engine,
        separator=separator,
        config=ServerConfig.from_env(environ),
    )


def test_without_zero_gpu_the_studio_is_called_directly(engine, melody_engine, separator, tmp_path):
    studio = studio_with(engine, melody_engine, separator, tmp_path, {})
    assert track_maker(studio) == studio.make_track


def test_zero_gpu_set_but_no_spaces_package_still_works(engine, melody_engine, separator, tmp_path):
    studio = studio_with(engine, melody_engine, separator, tmp_path, {"SPACES_ZERO_GPU": "true"})
    make = track_maker(studio)  # the spaces package is not installed here
    assert make(TrackRequest(prompt="x", duration=1, seed=1)).wav_path.exists()


def test_gpu_time_grows_with_duration_and_stems_and_is_capped(studio):
    short = estimate_gpu_seconds(studio, TrackRequest(prompt="rain", duration=5))
    long = estimate_gpu_seconds(studio, TrackRequest(prompt="rain", duration=60))
    assert short < long < estimate_gpu_seconds(studio, TrackRequest(prompt="rain", duration=60, stems=True))
    assert estimate_gpu_seconds(studio, TrackRequest(prompt="rain", duration=300, stems=True)) <= GPU_SECONDS_MAX
    assert estimate_gpu_seconds(studio, TrackRequest(prompt="rain", duration="nonsense")) == estimate_gpu_seconds(
        studio, TrackRequest(prompt="rain")
    )


def test_gpu_time_counts_every_take_at_a_share_of_one(studio):
    one = estimate_gpu_seconds(studio, TrackRequest(prompt="rain", duration=20))
    four = estimate_gpu_seconds(studio, TrackRequest(prompt="rain", duration=20, variations=4))
    assert four == one + int(3 * GPU_SECONDS_PER_EXTRA_TAKE * GPU_SECONDS_PER_AUDIO_SECOND * 20)
    assert one < four < 4 * one, "takes share a batch: more time than one, less than four alone"
    with_stems = estimate_gpu_seconds(studio, TrackRequest(prompt="rain", duration=20, variations=4, stems=True))
    assert with_stems == four + 4 * GPU_SECONDS_STEMS, "each take is split"


def test_gpu_time_covers_a_loop_s_material_and_an_extend_s_added_seconds(studio, tmp_path):
    loop = TrackRequest(prompt="rain", duration=4, loop=True, bpm=120, bars=2)
    generated = studio.plan(loop).settings.duration
    assert generated > 4, "a loop is cut from more music than itself"
    assert estimate_gpu_seconds(studio, loop) == estimate_gpu_seconds(
        studio, TrackRequest(prompt="r", duration=generated)
    )
    track = tmp_path / "ten-seconds.wav"
    sf.write(track, np.zeros(10 * 32_000, np.float32), 32_000)
    extend = TrackRequest(extend=str(track), prompt="more", duration=5)
    assert estimate_gpu_seconds(studio, extend) == estimate_gpu_seconds(studio, TrackRequest(prompt="r", duration=5))


@pytest.mark.parametrize("preset_id", PRESET_IDS)
def test_the_gpu_time_covers_the_duration_a_preset_asks_for(studio, preset_id):
    asked = studio.presets.get(preset_id).settings.duration or GenerationSettings().duration
    left_to_the_preset = estimate_gpu_seconds(studio, TrackRequest(prompt="rain", preset=preset_id))
    assert left_to_the_preset == estimate_gpu_seconds(studio, TrackRequest(prompt="rain", duration=asked))
    assert left_to_the_preset >= GPU_SECONDS_PER_AUDIO_SECOND * asked


def test_an_invalid_request_gets_the_default_gpu_time(studio):
    default = estimate_gpu_seconds(studio, TrackRequest(prompt="rain"))
    for request in (TrackRequest(preset="nope"), TrackRequest(seed="x"), TrackRequest(stems="yes", duration=60)):
        assert estimate_gpu_seconds(studio, request) == default, request


def test_a_larger_model_holds_the_gpu_longer_in_proportion_to_its_decoder(tmp_path):
    """musicgen-large's config alone (no weights are read to estimate): its 3.3B decoder against melody's 1.39B."""
    import json

    from generation.models import ModelCatalog
    from tests.tiny_models import published

    sizes = {"hidden_size": 2048, "num_hidden_layers": 48, "num_attention_heads": 32, "ffn_dim": 8192}
    folders = {}
    for name, decoder in (("small", {}), ("large", sizes)):
        config = published("musicgen-small", "config.json")
        config["decoder"] |= decoder
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(config))
        folders[name] = str(tmp_path / name)
    config = ServerConfig()
    studio = Studio(models=ModelCatalog(list(folders.items()), config), output_dir=tmp_path / "out", config=config)
    small = estimate_gpu_seconds(studio, TrackRequest(prompt="piano", duration=30, model="small"))
    large = estimate_gpu_seconds(studio, TrackRequest(prompt="piano", duration=30, model="large"))
    assert small == int(GPU_SECONDS_BASE + GPU_SECONDS_PER_AUDIO_SECOND * 30), "small is within the reference size"
    size = studio.models.info("large").parameters / REFERENCE_PARAMETERS
    assert size == pytest.approx(3.3e9 / 1.39e9, rel=0.05)
    assert large == int(GPU_SECONDS_BASE + GPU_SECONDS_PER_AUDIO_SECOND * 30 * size)
