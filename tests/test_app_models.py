"""Model choice through the real gradio_client against a live server that offers four models (MOODTAPE_MODELS)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tests.audio_factory import hum, write_audio
from tests.conftest import LiveServer

pytestmark = pytest.mark.slow

NAMES = ("small", "stereo", "melody", "stereo-melody")


@pytest.fixture(scope="module")
def models_server(tiny_models_env, tiny_stereo_model_dir, tiny_stereo_melody_model_dir, tmp_path_factory) -> LiveServer:
    folder = tmp_path_factory.mktemp("models-server")
    sources = {
        "small": tiny_models_env["MUSICGEN_MODEL"],
        "stereo": str(tiny_stereo_model_dir),
        "melody": tiny_models_env["MUSICGEN_MELODY_MODEL"],
        "stereo-melody": str(tiny_stereo_melody_model_dir),
    }
    env = {
        "MOODTAPE_STEMS_MODEL": tiny_models_env["MOODTAPE_STEMS_MODEL"],
        "MOODTAPE_MODELS": ",".join(f"{name}={source}" for name, source in sources.items()),
        "MOODTAPE_OUTPUT_DIR": str(folder / "outputs"),
    }
    server = LiveServer(env, folder / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def models_client(models_server: LiveServer) -> Client:
    return Client(models_server.url, verbose=False)


@pytest.fixture(scope="module")
def hum_file(tmp_path_factory):
    rate = 32_000
    return write_audio(
        tmp_path_factory.mktemp("hum") / "hum", hum(("A3", "C#4", "E4", "A4"), rate=rate), rate, "wav_16"
    )


def test_models_lists_each_model_with_kind_channels_size_and_defaults(models_client):
    rows = models_client.predict(api_name="/models")
    assert [row["name"] for row in rows] == list(NAMES)
    assert [(row["kind"], row["channels"]) for row in rows] == [("text", 1), ("text", 2), ("melody", 1), ("melody", 2)]
    assert all(row["decoder"]["parameters"] > 0 for row in rows)
    assert [row["name"] for row in rows if row["default"]] == ["small"]
    assert [row["name"] for row in rows if row["default_with_melody"]] == ["melody"]


@pytest.mark.parametrize(("model", "channels"), [("small", 1), ("stereo", 2)])
def test_each_text_model_can_be_picked_and_the_recipe_names_it(models_client, model, channels):
    audio, _downloads, recipe, *_ = models_client.predict(
        prompt="wide ambient pads", duration=1, seed=5, model=model, api_name="/generate"
    )
    assert sf.info(audio).channels == channels
    assert (recipe["model_name"], recipe["channels"]) == (model, channels)


@pytest.mark.parametrize(("model", "channels"), [("melody", 1), ("stereo-melody", 2), (None, 1)])
def test_each_melody_model_follows_a_hum_and_none_named_picks_the_first(models_client, hum_file, model, channels):
    audio, _downloads, recipe, *_ = models_client.predict(
        prompt="", melody=handle_file(str(hum_file)), duration=1, seed=5, model=model, api_name="/generate"
    )
    assert sf.info(audio).channels == channels
    assert recipe["model_name"] == (model or "melody") and recipe["melody"] is not None


def test_streamed_pieces_of_a_stereo_track_are_stereo_and_join_to_it(models_client):
    job = models_client.submit(
        prompt="wide pads", duration=3, seed=3, loudness=0, model="stereo", api_name="/generate_stream"
    )
    outputs = list(job)
    pieces = [out[0] for out in outputs if out[0]]
    whole, _ = sf.read(job.outputs()[-1][1], dtype="float32")
    streamed = np.concatenate([sf.read(piece, dtype="float32")[0] for piece in pieces])
    assert streamed.shape[1] == 2 and streamed.shape == whole.shape
    assert np.abs(streamed - whole).max() < 2e-3  # 16-bit pieces against the 24-bit file


def test_an_extend_names_its_model_too(models_client):
    first = models_client.predict(prompt="pads", duration=1, seed=2, model="stereo", api_name="/generate")
    audio, _downloads, recipe, *_ = models_client.predict(
        audio=handle_file(first[0]), seconds=1, model="stereo", api_name="/extend"
    )
    assert sf.info(audio).channels == 2 and recipe["model_name"] == "stereo"


@pytest.mark.parametrize("model", ["large", "/tmp/model", "facebook/musicgen-large", "https://example.com/m"])
def test_a_name_not_listed_a_path_a_hub_id_or_a_url_is_refused_listing_the_names(models_client, models_server, model):
    with pytest.raises(AppError, match="model must be one of 'small', 'stereo', 'melody', 'stereo-melody'") as e:
        models_client.predict(prompt="piano", duration=1, model=model, api_name="/generate")
    if model != "large":
        assert "Paths, hub ids and URLs cannot be picked" in str(e.value)
    assert models_server.alive()


def test_a_melody_with_a_text_only_model_is_refused_naming_the_melody_models(models_client, hum_file):
    with pytest.raises(AppError, match="'stereo' follows text only.*pick 'melody', 'stereo-melody'"):
        models_client.predict(
            prompt="", melody=handle_file(str(hum_file)), duration=1, model="stereo", api_name="/generate"
        )
