"""Fast mode is the CPU default; recipes replay in the mode they were made, or say why they cannot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import soundfile as sf

from generation.config import ServerConfig
from generation.model.engine import MusicGenEngine
from generation.model.spec import EngineSpec
from generation.recipe import Recipe
from generation.studio import TrackRequest
from tests.conftest import ROOT


def test_unset_means_fast_on_cpu_and_exact_on_a_gpu(tiny_model_dir):
    unset = ServerConfig.from_env({})
    assert unset.fast_cpu is None
    assert MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), device="cpu"), config=unset).mode == "fast"
    assert MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), device="cuda"), config=unset).mode == "exact"
    forced_exact = ServerConfig.from_env({"MOODTAPE_FAST_CPU": "0"})
    assert MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), device="cpu"), config=forced_exact).mode == "exact"
    forced_fast = ServerConfig.from_env({"MOODTAPE_FAST_CPU": "1"})
    assert MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), device="cpu"), config=forced_fast).mode == "fast"
    assert (
        MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), device="cuda"), config=forced_fast).mode == "exact"
    ), "int8 is CPU only"


def test_a_recipe_of_the_other_mode_replays_with_a_note_saying_why_it_differs(studio):
    assert studio.engine.mode == "exact"
    made = studio.make_track(TrackRequest(prompt="rainy night piano", duration=1.0, seed=3))
    same = studio.make_track(TrackRequest.from_recipe(made.recipe))
    assert not any("mode" in note for note in same.recipe.notes)
    np.testing.assert_array_equal(sf.read(made.wav_path)[0], sf.read(same.wav_path)[0])

    from_fast = replace(made.recipe, mode="fast")
    replayed = studio.make_track(TrackRequest.from_recipe(from_fast))
    note = next(note for note in replayed.recipe.notes if "fast CPU mode" in note)
    assert "this server runs the exact path" in note and "MOODTAPE_FAST_CPU=1" in note
    assert replayed.recipe.mode == "exact"


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "generation", *args],
        cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_command_line_replays_a_recipe_in_the_mode_it_was_made(tiny_model_dir, tmp_path):
    first, second = tmp_path / "fast.wav", tmp_path / "replay.wav"
    model = {"MUSICGEN_MODEL": str(tiny_model_dir)}
    made = run_cli("dreamy synth", "-o", str(first), "--duration", "1", env={**model, "MOODTAPE_FAST_CPU": "1"})
    assert made.returncode == 0, made.stderr
    recipe = Recipe.load(first.with_suffix(".recipe.json"))
    assert recipe.mode == "fast"
    # A server setting of exact does not change a replay: the recipe's own mode is used
    replayed = run_cli(
        "-o", str(second), "--recipe", str(first.with_suffix(".recipe.json")), env={"MOODTAPE_FAST_CPU": "0"}
    )
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(second.with_suffix(".recipe.json").read_text())["mode"] == "fast"
    np.testing.assert_array_equal(sf.read(first)[0], sf.read(second)[0])
