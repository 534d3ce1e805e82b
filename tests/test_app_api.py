"""The app through the real gradio_client against a live local server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import soundfile as sf
from gradio_client.exceptions import AppError

from app import API_NAMES

pytestmark = pytest.mark.slow


def test_generate_endpoint_parameters_are_named_and_all_but_prompt_optional(client):
    params = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/generate"]["parameters"]
    assert [p["parameter_name"] for p in params] == list(API_NAMES)
    optional = {p["parameter_name"]: p["parameter_has_default"] for p in params}
    assert optional.pop("prompt") is False
    assert all(optional.values())


def test_a_prompt_alone_gives_audio_a_downloadable_wav_and_a_recipe(client):
    audio, downloads, recipe, summary, melody_picture, picture, stems_picture = client.predict(
        prompt="rainy night, mellow piano, slow", api_name="/generate"
    )
    assert melody_picture is None and stems_picture is None, "no melody, no stems: no pictures of them"
    assert picture.endswith((".png", ".webp")), "the waveform and spectrogram picture"
    info = sf.info(audio)
    assert (info.samplerate, info.subtype) == (32_000, "PCM_24")
    assert info.duration == pytest.approx(10.0), "the default duration is 10 s"
    wav, recipe_file = (Path(p) for p in downloads)
    assert wav.suffix == ".wav" and recipe_file.name.endswith(".recipe.json")
    assert sf.info(str(wav)).frames == 320_000
    assert json.loads(recipe_file.read_text())["settings"] == recipe["settings"]
    assert recipe["settings"]["prompt"] == "rainy night, mellow piano, slow"
    assert f"Seed {recipe['settings']['seed']}" in summary


def test_the_same_seed_through_the_api_gives_the_same_audio(client):
    first = client.predict(prompt="calm strings", duration=1, seed=123, api_name="/generate")
    second = client.predict(prompt="calm strings", duration=1, seed=123, api_name="/generate")
    assert sf.read(first[0])[0].tolist() == sf.read(second[0])[0].tolist()
    assert first[2]["settings"]["seed"] == 123


def test_advanced_settings_reach_the_model(client):
    _, _, recipe, *_ = client.predict(
        prompt="x", duration=1, seed=1, temperature=0.7, top_k=50, top_p=0.9, guidance=2.0, api_name="/generate"
    )
    assert recipe["settings"] | {"prompt": "x"} == {
        "prompt": "x",
        "duration": 1.0,
        "seed": 1,
        "temperature": 0.7,
        "top_k": 50,
        "top_p": 0.9,
        "guidance_scale": 2.0,
        "negative_prompt": "",
    }


def test_a_preset_by_id_resolves_the_prompt_and_its_settings(client):
    _, _, recipe, *_ = client.predict(
        prompt="sunday morning", preset="jazz-trio", seed=2, duration=1, api_name="/generate"
    )
    assert recipe["preset"] == "jazz-trio"
    assert "sunday morning" in recipe["settings"]["prompt"] and "BPM" in recipe["settings"]["prompt"]


def test_presets_endpoint_lists_ids_names_descriptions_tags_and_settings(client):
    presets = client.predict(api_name="/presets")
    assert len(presets) >= 16
    first = presets[0]
    assert {"id", "name", "description", "tags", "settings"} <= set(first)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"prompt": ""}, ["prompt is empty"]),
        ({"prompt": "   "}, ["prompt is empty"]),
        ({"prompt": "x", "duration": 0}, ["duration", "at least 1"]),
        ({"prompt": "x", "duration": 301}, ["duration", "at most 300"]),
        ({"prompt": "x", "temperature": -1}, ["temperature"]),
        ({"prompt": "x", "top_k": 0, "top_p": 0}, ["nothing to sample"]),
        ({"prompt": "x", "top_p": 3}, ["top_p", "at most 1"]),
        ({"prompt": "x", "guidance": 0}, ["guidance_scale", "at least 1"]),
        ({"prompt": "x", "seed": 1.5}, ["seed", "whole number"]),
        ({"prompt": "x", "preset": "nope"}, ["Unknown preset", "nope"]),
        ({"prompt": "x", "preset": "../secrets"}, ["not a valid preset id"]),
    ],
)
def test_bad_input_gets_a_clear_message_and_the_server_keeps_serving(client, live_server, kwargs, words):
    with pytest.raises(AppError) as info:
        client.predict(api_name="/generate", **kwargs)
    message = str(info.value)
    for word in words:
        assert word in message
    assert "Traceback" not in message
    assert live_server.alive()


def test_server_still_generates_after_bad_input(client):
    with pytest.raises(AppError):
        client.predict(prompt="x", duration=-5, api_name="/generate")
    audio, *_ = client.predict(prompt="still here", duration=1, seed=1, api_name="/generate")
    assert sf.info(audio).frames == 32_000


def test_cancelling_a_request_stops_its_generation(client, live_server):
    job = client.submit(prompt="cancel me", duration=30, seed=77, api_name="/generate")
    deadline = time.monotonic() + 60
    while not _is_generating(job) and not job.done() and time.monotonic() < deadline:
        time.sleep(0.05)
    job.cancel()
    deadline = time.monotonic() + 30
    while "Generation cancelled by the client" not in live_server.log_path.read_text():
        assert time.monotonic() < deadline, "the server never stopped the cancelled generation"
        time.sleep(0.2)
    audio, *_ = client.predict(prompt="after the cancel", duration=1, seed=1, api_name="/generate")
    assert sf.info(audio).frames == 32_000
    assert not list(live_server.output_dir.rglob("*cancel-me*")), "the cancelled track was never written"


def _is_generating(job) -> bool:
    progress = job.status().progress_data
    return bool(progress) and progress[0].unit == "steps" and (progress[0].index or 0) > 0


def test_unloadable_model_gets_a_message_that_says_how_to_fix_it(tmp_path):
    from gradio_client import Client

    from tests.conftest import LiveServer

    server = LiveServer(
        {"MUSICGEN_MODEL": "facebook/musicgen-small", "MOODTAPE_OUTPUT_DIR": str(tmp_path / "o")},
        tmp_path / "server.log",
    )
    try:
        client = Client(server.url, verbose=False)
        for _ in range(2):  # the second request gets the same clear answer: the failure is not cached as a crash
            with pytest.raises(AppError) as info:
                client.predict(prompt="x", duration=1, api_name="/generate")
            message = str(info.value)
            assert "facebook/musicgen-small" in message and "MUSICGEN_MODEL" in message and "hf download" in message
        assert server.alive()
    finally:
        server.stop()


def test_exports_through_the_api_formats_rate_loudness_stems_and_pictures(client):
    audio, downloads, recipe, summary, _, picture, stems_picture = client.predict(
        prompt="funky bass groove",
        duration=2,
        seed=8,
        stems=True,
        formats="wav,flac,mp3",
        sample_rate=44_100,
        loudness=-16,
        api_name="/generate",
    )
    names = sorted(Path(p).name for p in downloads)
    stem = "moodtape_funky-bass-groove_seed8"
    assert names == sorted(
        [
            f"{stem}.wav",
            f"{stem}.flac",
            f"{stem}.mp3",
            f"{stem}.recipe.json",
            *(f"{stem}_{s}.wav" for s in ("drums", "bass", "other", "vocals")),
            f"{stem}_stems.zip",
        ]
    )
    wav = next(p for p in downloads if p.endswith(f"{stem}.wav"))
    assert sf.info(wav).samplerate == 44_100
    assert recipe["export"]["loudness"]["target_lufs"] == -16.0
    assert "LUFS" in summary
    assert picture and stems_picture
