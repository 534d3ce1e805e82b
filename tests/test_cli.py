"""The command line: a subcommand per API endpoint, an option per parameter; ``python -m generation generate ...``."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf

from generation.__main__ import build_parser, commands, shorthand
from tests.conftest import ROOT


def run_cli(*args: str, model_dir=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if model_dir is not None:
        env["MUSICGEN_MODEL"] = str(model_dir)
    return subprocess.run(
        [sys.executable, "-m", "generation", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    (subparsers,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(subparsers.choices)


def test_every_api_parameter_has_an_option_with_help_on_its_subcommand(tiny_model_dir, tiny_melody_model_dir, tmp_path):
    from app import build_app
    from generation.config import ServerConfig
    from generation.endpoints import BY_NAME
    from generation.studio import Studio

    config = replace(
        ServerConfig.from_env(), text_model=str(tiny_model_dir), melody_model=str(tiny_melody_model_dir)
    )
    api = build_app(Studio(config=config, output_dir=tmp_path)).get_api_info()["named_endpoints"]
    parsers = subcommand_parsers()
    missing = []
    for path, endpoint_info in api.items():
        name = path.removeprefix("/")
        assert name in BY_NAME, f"{path} is not in generation/endpoints.py's table: the command line cannot offer it"
        command = BY_NAME[name].subcommand
        assert command in parsers, f"{path} has no subcommand"
        options = {action.dest: action for action in parsers[command]._actions}
        help_text = " ".join(parsers[command].format_help().split())
        for parameter in endpoint_info["parameters"]:
            option = options.get(parameter["parameter_name"])
            if option is None:
                missing.append(f"{command}: {parameter['parameter_name']} (of {path})")
                continue
            assert option.help and " ".join(option.help.split()) in help_text
            assert any(s in help_text for s in (*option.option_strings, parameter["parameter_name"].upper()))
    assert not missing, f"API parameters with no command-line option: {missing}"
    assert {"generate", "extend", "presets", "models"} <= set(parsers) == set(commands())


def test_a_prompt_alone_is_short_for_generate_and_list_presets_for_presets():
    assert shorthand(["rainy night", "-o", "a.wav"]) == ["generate", "rainy night", "-o", "a.wav"]
    assert shorthand(["-o", "a.wav", "--recipe", "a.recipe.json"])[0] == "generate"
    assert shorthand(["extend", "a.wav"]) == ["extend", "a.wav"]
    assert shorthand(["--list-presets"]) == ["presets"]


def test_generate_then_extend_write_wavs_and_recipes_with_the_options_given(tiny_model_dir, tmp_path):
    first = tmp_path / "song.wav"
    result = run_cli(
        "generate",
        "rainy night piano",
        "-o",
        str(first),
        "--duration",
        "2",
        "--seed",
        "4",
        "--negative-prompt",
        "vocals",
        "--formats",
        "wav,flac",
        "--sample-rate",
        "48000",
        "--no-stems",
        model_dir=tiny_model_dir,
    )
    assert result.returncode == 0, result.stderr
    assert sf.info(str(first)).frames == 96_000, "2 s at 48 kHz"
    assert first.with_suffix(".flac").is_file()
    recipe = json.loads(first.with_suffix(".recipe.json").read_text())
    assert (recipe["settings"]["seed"], recipe["settings"]["negative_prompt"]) == (4, "vocals")
    assert (recipe["export"]["sample_rate"], recipe["export"]["formats"]) == (48_000, ["wav", "flac"])
    assert "Seed 4" in result.stdout

    longer = tmp_path / "longer.wav"
    result = run_cli("extend", str(first), "--seconds", "1", "--seed", "5", "-o", str(longer), model_dir=tiny_model_dir)
    assert result.returncode == 0, result.stderr
    assert sf.info(str(longer)).duration == pytest.approx(3.0, abs=0.05), "the 2 s track and 1 s more"
    extended = json.loads(longer.with_suffix(".recipe.json").read_text())
    assert extended["settings"]["seed"] == 5 and extended["settings"]["prompt"] == recipe["settings"]["prompt"]


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


def test_a_songs_and_a_replaces_recipes_make_them_again(tiny_model_dir, tmp_path):
    from generation.__main__ import main, make_studio

    studio = make_studio(str(tiny_model_dir))
    sections = json.dumps([{"prompt": "soft intro", "seconds": 1.0}, {"prompt": "loud chorus", "seconds": 1.5}])
    song = tmp_path / "song.wav"
    assert main(["compose", sections, "--seed", "4", "--loudness", "0", "-o", str(song), "--text-model",
                 str(tiny_model_dir)]) == 0  # fmt: skip
    again = tmp_path / "again.wav"
    assert main(["compose", "--recipe", str(song.with_suffix(".recipe.json")), "-o", str(again)]) == 0
    np.testing.assert_array_equal(sf.read(song)[0], sf.read(again)[0])

    edited = tmp_path / "edited.wav"
    studio_track = ["replace", str(song), "0.5", "1.5", "--prompt", "a drum fill", "--seed", "8"]
    assert main([*studio_track, "--loudness", "0", "-o", str(edited), "--text-model", str(tiny_model_dir)]) == 0
    recipe = edited.with_suffix(".recipe.json")
    edited_again = tmp_path / "edited-again.wav"
    assert main(["replace", str(song), "--recipe", str(recipe), "-o", str(edited_again)]) == 0
    np.testing.assert_array_equal(sf.read(edited)[0], sf.read(edited_again)[0])
    not_the_file = str(again.with_suffix(".recipe.json"))
    assert main(["replace", not_the_file, "--recipe", str(recipe), "-o", str(edited_again)]) == 2
    assert studio.default_model == "text"


def test_cli_bad_input_prints_the_problem_and_exits_2(tiny_model_dir, tmp_path):
    result = run_cli("x", "-o", str(tmp_path / "a.wav"), "--duration", "999", model_dir=tiny_model_dir)
    assert result.returncode == 2
    assert "duration must be at least 1 and at most 300" in result.stderr
    assert "Traceback" not in result.stderr


def test_presets_and_models_print_the_api_s_lists(tiny_model_dir):
    presets = run_cli("presets", model_dir=tiny_model_dir)
    assert presets.returncode == 0, presets.stderr
    assert {"lofi-hip-hop", "jazz-trio"} <= {row["id"] for row in json.loads(presets.stdout)}
    models = run_cli("models", model_dir=tiny_model_dir)
    assert models.returncode == 0, models.stderr
    rows = json.loads(models.stdout)
    assert [(row["name"], row["source"]) for row in rows][0] == ("text", str(tiny_model_dir))


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
