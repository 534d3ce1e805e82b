"""A request's whole path: files with descriptive names, the recipe, reproducing from it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from generation.errors import InvalidInputError
from generation.recipe import Recipe
from generation.studio import Studio, TrackRequest


def test_track_is_a_24_bit_wav_at_the_native_rate_with_a_recipe_beside_it(studio):
    track = studio.make_track(TrackRequest(prompt="Rainy night, mellow piano!", duration=2, seed=42))
    info = sf.info(str(track.wav_path))
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (32_000, 1, "PCM_24", 64_000)
    assert track.wav_path.name == "moodtape_rainy-night-mellow-piano_seed42.wav"
    assert track.recipe_path.name == "moodtape_rainy-night-mellow-piano_seed42.recipe.json"
    assert json.loads(track.recipe_path.read_text()) == track.recipe.to_dict()
    assert not list(track.wav_path.parent.glob(".partial-*")), "no half-written files are left behind"


def test_recipe_records_everything_that_made_the_track(studio, tiny_model_dir):
    track = studio.make_track(TrackRequest(prompt="calm strings", duration=1.5, seed=5, top_p=0.9))
    data = track.recipe.to_dict()
    assert data["settings"] == {
        "prompt": "calm strings",
        "duration": 1.5,
        "seed": 5,
        "temperature": 1.0,
        "top_k": 250,
        "top_p": 0.9,
        "guidance_scale": 3.0,
        "negative_prompt": "",
    }
    assert data["model_id"] == str(tiny_model_dir)
    assert "model_revision" in data
    assert data["audio_seconds"] == 1.5 and data["sample_rate"] == 32_000
    assert data["seconds_taken"] > 0 and data["app_version"]
    assert {"python", "torch", "transformers"} <= set(data["environment"])
    assert "AI-generated" in data["ai_generated"]


def test_the_same_recipe_gives_the_same_audio(studio, tmp_path):
    first = studio.make_track(TrackRequest(prompt="lofi beat", duration=1.5))  # random seed
    recipe = Recipe.load(first.recipe_path)
    again = studio.make_track(TrackRequest.from_recipe(recipe), destination=tmp_path / "again.wav")
    a, _ = sf.read(first.wav_path, dtype="float32")
    b, _ = sf.read(again.wav_path, dtype="float32")
    np.testing.assert_array_equal(a, b)


def test_wav_carries_the_recipe_and_an_ai_notice_in_its_metadata(studio):
    track = studio.make_track(TrackRequest(prompt="jazz trio", duration=1, seed=1))
    with sf.SoundFile(str(track.wav_path)) as f:
        assert f.title == "jazz trio"
        assert "AI-generated" in f.artist
        assert json.loads(f.comment)["settings"]["seed"] == 1


def test_preset_fills_the_prompt_and_settings_and_request_values_win(studio):
    track = studio.make_track(TrackRequest(prompt="rainy night", preset="lofi-hip-hop", duration=1, seed=3))
    recipe = track.recipe
    assert recipe.preset == "lofi-hip-hop" and recipe.mood == "rainy night"
    assert "rainy night" in recipe.settings.prompt and "80 BPM" in recipe.settings.prompt
    assert recipe.settings.duration == 1.0, "the explicit duration wins over the preset's 15 s"
    assert track.wav_path.name.startswith("moodtape_lofi-hip-hop_rainy-night_seed3")


def test_each_track_gets_its_own_folder_so_nothing_is_overwritten(studio):
    first = studio.make_track(TrackRequest(prompt="same", duration=1, seed=9))
    second = studio.make_track(TrackRequest(prompt="same", duration=1, seed=9))
    assert first.wav_path != second.wav_path
    assert first.wav_path.exists() and second.wav_path.exists()


@pytest.mark.parametrize(
    ("request_values", "words"),
    [
        ({"prompt": ""}, ["prompt is empty"]),
        ({"prompt": "x", "duration": 0}, ["duration", "at least 1"]),
        ({"prompt": "x", "top_k": 3.5}, ["top_k", "whole number"]),
        ({"prompt": "x", "preset": "no-such-style"}, ["Unknown preset", "no-such-style"]),
        ({"prompt": "x", "preset": "../../etc/passwd"}, ["not a valid preset id"]),
        ({"prompt": "x", "seed": "lucky"}, ["seed", "lucky"]),
    ],
)
def test_bad_requests_are_refused_before_any_work(studio, request_values, words):
    with pytest.raises(InvalidInputError) as info:
        studio.make_track(TrackRequest(**request_values))
    for word in words:
        assert word in str(info.value)
    assert not studio.output_dir.exists() or not any(studio.output_dir.rglob("*.wav"))


def test_recipe_file_that_is_not_a_recipe_is_refused(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"hello": 1}')
    with pytest.raises(InvalidInputError, match="not a Moodtape recipe"):
        Recipe.load(path)
    path.write_text("{not json")
    with pytest.raises(InvalidInputError, match="Could not read the recipe"):
        Recipe.load(path)


def test_output_folder_comes_from_the_environment(monkeypatch, engine, tmp_path):
    monkeypatch.setenv("MOODTAPE_OUTPUT_DIR", str(tmp_path / "mine"))
    track = Studio(engine).make_track(TrackRequest(prompt="x", duration=1, seed=1))
    assert (tmp_path / "mine") in track.wav_path.parents


WARM_UP_PROBE = """
import sys
from generation.studio import Studio

LIBRARIES = ("pyloudnorm", "matplotlib.backends.backend_agg")
studio = Studio(output_dir=sys.argv[1])
print(",".join(name for name in LIBRARIES if name in sys.modules))
studio.warm_up()
print(",".join(name for name in LIBRARIES if name in sys.modules))
"""


def test_warm_up_loads_the_finishing_steps_libraries_before_any_track_and_writes_nothing(tmp_path):
    # A fresh interpreter: in this one, earlier tests have imported everything already.
    out = tmp_path / "tracks"
    probe = subprocess.run(
        [sys.executable, "-c", WARM_UP_PROBE, str(out)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    before, after = probe.stdout.splitlines()[:2]
    assert before == ""
    assert after == "pyloudnorm,matplotlib.backends.backend_agg"
    assert not [p for p in out.rglob("*") if p.is_file()]
