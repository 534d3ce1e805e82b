"""The command line: ``python -m generation "prompt" -o out.wav``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import soundfile as sf

from tests.conftest import ROOT


def run_cli(*args: str, model_dir=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if model_dir is not None:
        env["MUSICGEN_MODEL"] = str(model_dir)
    return subprocess.run(
        [sys.executable, "-m", "generation", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_cli_writes_a_wav_and_its_recipe(tiny_model_dir, tmp_path):
    out = tmp_path / "song.wav"
    result = run_cli("rainy night piano", "-o", str(out), "--duration", "2", "--seed", "4", model_dir=tiny_model_dir)
    assert result.returncode == 0, result.stderr
    assert sf.info(str(out)).frames == 64_000
    recipe = json.loads(out.with_suffix(".recipe.json").read_text())
    assert recipe["settings"]["seed"] == 4
    assert "Seed 4" in result.stdout


def test_cli_reproduces_a_track_from_its_recipe(tiny_model_dir, tmp_path):
    first = tmp_path / "first.wav"
    assert (
        run_cli(
            "dreamy synth", "-o", str(first), "--duration", "1.5", "--top-p", "0.8", model_dir=tiny_model_dir
        ).returncode
        == 0
    )
    second = tmp_path / "second.wav"
    result = run_cli("-o", str(second), "--recipe", str(first.with_suffix(".recipe.json")))
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(sf.read(first)[0], sf.read(second)[0])


def test_cli_bad_input_prints_the_problem_and_exits_2(tiny_model_dir, tmp_path):
    result = run_cli("x", "-o", str(tmp_path / "a.wav"), "--duration", "999", model_dir=tiny_model_dir)
    assert result.returncode == 2
    assert "duration must be at least 1 and at most 300" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_lists_presets(tiny_model_dir):
    result = run_cli("--list-presets", model_dir=tiny_model_dir)
    assert result.returncode == 0
    assert "lofi-hip-hop" in result.stdout and "jazz-trio" in result.stdout


def test_cli_follows_a_hum_and_reproduces_it_from_the_recipe(tiny_model_dir, tiny_melody_model_dir, tmp_path):
    from tests.audio_factory import hum, write_audio

    hum_file = write_audio(tmp_path / "hum", hum(("C4", "E4", "G4"), rate=22_050), 22_050, "ogg")
    first = tmp_path / "first.wav"
    result = run_cli(
        "",
        "--melody",
        str(hum_file),
        "--melody-model",
        str(tiny_melody_model_dir),
        "-o",
        str(first),
        "--duration",
        "1",
        model_dir=tiny_model_dir,
    )
    assert result.returncode == 0, result.stderr
    recipe_path = first.with_suffix(".recipe.json")
    assert json.loads(recipe_path.read_text())["melody"]["file"] == "hum.ogg"

    without = run_cli("-o", str(tmp_path / "x.wav"), "--recipe", str(recipe_path))
    assert without.returncode == 2 and "--melody" in without.stderr

    second = tmp_path / "second.wav"
    again = run_cli("-o", str(second), "--recipe", str(recipe_path), "--melody", str(hum_file))
    assert again.returncode == 0, again.stderr
    np.testing.assert_array_equal(sf.read(first)[0], sf.read(second)[0])
