"""Choosing a model: the operator's list, what each model is (from its config), picking one, and memory limits."""

from __future__ import annotations

import threading

import pytest

from generation.config import ConfigError, ServerConfig
from generation.errors import InvalidInputError, ModelLoadError
from generation.models import ModelCatalog
from generation.studio import Studio, TrackRequest


@pytest.fixture(scope="module")
def folders(tiny_model_dir, tiny_stereo_model_dir, tiny_melody_model_dir, tiny_stereo_melody_model_dir):
    return {
        "small": str(tiny_model_dir),
        "stereo": str(tiny_stereo_model_dir),
        "melody": str(tiny_melody_model_dir),
        "stereo-melody": str(tiny_stereo_melody_model_dir),
    }


def catalog(entries: dict[str, str], max_loaded: int = 2) -> ModelCatalog:
    return ModelCatalog(list(entries.items()), ServerConfig(), max_loaded=max_loaded)


def test_moodtape_models_lists_names_and_sources_in_order():
    config = ServerConfig.from_env({"MOODTAPE_MODELS": "small=facebook/musicgen-small, stereo=/models/stereo"})
    assert config.model_entries == (("small", "facebook/musicgen-small"), ("stereo", "/models/stereo"))


def test_without_moodtape_models_the_text_and_melody_settings_are_offered_as_text_and_melody():
    config = ServerConfig.from_env({"MUSICGEN_MODEL": "/m/text", "MUSICGEN_MELODY_MODEL": "/m/melody"})
    assert config.model_entries == (("text", "/m/text"), ("melody", "/m/melody"))


@pytest.mark.parametrize(
    "value",
    ["small", "small=", "=facebook/musicgen-small", "a=x,a=y", "Big=x", "auto=x", "a b=c"],
)
def test_a_malformed_model_list_stops_the_server_with_the_form_expected(value):
    with pytest.raises(ConfigError, match=r"MOODTAPE_MODELS must be comma-separated name=source entries"):
        ServerConfig.from_env({"MOODTAPE_MODELS": value})


def test_kind_and_channels_come_from_the_config_not_the_name(folders):
    misleading = catalog({"melody": folders["stereo"], "small": folders["stereo-melody"]})
    described = {row["name"]: row for row in misleading.describe()}
    assert (described["melody"]["kind"], described["melody"]["channels"]) == ("text", 2)
    assert (described["small"]["kind"], described["small"]["channels"]) == ("melody", 2)
    assert described["melody"]["default"] and described["small"]["default_with_melody"]


def test_the_model_list_says_kind_channels_size_loaded_and_defaults(folders):
    models = catalog(folders)
    rows = models.describe()
    assert [r["name"] for r in rows] == ["small", "stereo", "melody", "stereo-melody"]
    assert [(r["kind"], r["channels"]) for r in rows] == [("text", 1), ("text", 2), ("melody", 1), ("melody", 2)]
    assert all(r["decoder"]["layers"] == 2 and r["decoder"]["hidden_size"] == 32 for r in rows)
    assert [r["default"] for r in rows] == [True, False, False, False]
    assert [r["default_with_melody"] for r in rows] == [False, False, True, False]
    assert not any(r["loaded"] for r in rows)
    models.acquire("stereo")
    assert [r["loaded"] for r in models.describe()] == [False, True, False, False]


def test_the_real_checkpoints_decoder_sizes_are_counted_as_published():
    from transformers import MusicgenConfig, MusicgenMelodyConfig

    from tests.tiny_models import published

    small = read_info(MusicgenConfig.from_dict(published("musicgen-small", "config.json")))
    melody = read_info(MusicgenMelodyConfig.from_dict(published("musicgen-melody", "config.json")))
    stereo = read_info(MusicgenConfig.from_dict(published("musicgen-stereo-small", "config.json")))
    assert small.parameters == pytest.approx(420e6, rel=0.02) and small.label == "text · mono · 420M"
    assert melody.parameters == pytest.approx(1.39e9, rel=0.02) and melody.label == "melody · mono · 1.4B"
    assert stereo.channels == 2 and stereo.layers == small.layers and stereo.parameters > small.parameters


def read_info(config):
    from generation.models import ModelInfo

    return ModelInfo.from_config(config)


def test_no_model_named_picks_the_first_text_model_or_the_first_melody_model_for_a_melody(folders):
    models = catalog(folders)
    assert models.pick(None, melody=False) == "small"
    assert models.pick("", melody=True) == "melody"
    assert models.pick("auto", melody=False) == "small"
    assert catalog({"m": folders["melody"]}).pick(None, melody=False) == "m", "melody models make text-only tracks"


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("large", ""),
        ("/tmp/my-model", "Paths, hub ids and URLs cannot be picked"),
        ("facebook/musicgen-large", "Paths, hub ids and URLs cannot be picked"),
        ("https://example.com/model", "Paths, hub ids and URLs cannot be picked"),
    ],
)
def test_a_model_not_listed_is_refused_with_the_names_allowed(folders, name, extra):
    allowed = r"model must be one of 'small', 'stereo', 'melody', 'stereo-melody'"
    with pytest.raises(InvalidInputError, match=allowed) as e:
        catalog(folders).pick(name, melody=False)
    assert extra in str(e.value)


def test_a_melody_for_a_text_model_is_refused_naming_the_melody_models(folders):
    with pytest.raises(InvalidInputError, match=r"'stereo' follows text only.*pick 'melody', 'stereo-melody'"):
        catalog(folders).pick("stereo", melody=True)
    with pytest.raises(InvalidInputError, match="offers no MusicGen-Melody model"):
        catalog({"small": folders["small"]}).pick(None, melody=True)


def test_a_model_whose_config_cannot_be_read_gets_a_message_naming_the_setting(tmp_path):
    broken = catalog({"gone": str(tmp_path / "nothing-here")})
    with pytest.raises(ModelLoadError, match="MOODTAPE_MODELS"):
        broken.pick(None, melody=False)
    assert "MOODTAPE_MODELS" in broken.describe()[0]["error"]


def test_loading_past_the_limit_unloads_the_least_recently_used_model(folders):
    models = catalog(folders, max_loaded=2)
    small, stereo = models.acquire("small"), models.acquire("stereo")
    models.acquire("small")  # now stereo is the least recently used
    melody = models.acquire("melody")
    assert (small.loaded, stereo.loaded, melody.loaded) == (True, False, True)
    models.acquire("stereo")
    assert (small.loaded, stereo.loaded, melody.loaded) == (False, True, True)


def test_requests_for_a_model_that_is_loading_wait_for_it_instead_of_loading_it_twice(folders):
    models = catalog(folders)
    engine = models.engine("stereo")
    loads = []
    real_load = engine._load

    def counted_load():
        loads.append(threading.current_thread().name)
        return real_load()

    engine._load = counted_load
    threads = [threading.Thread(target=models.acquire, args=("stereo",)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1 and engine.loaded


def test_a_studio_makes_each_request_with_the_model_it_names_and_never_mixes_models_in_a_batch(folders, tmp_path):
    studio = Studio(models=catalog(folders, max_loaded=4), output_dir=tmp_path)
    requests = [TrackRequest(prompt="piano", duration=1, seed=1, model=name) for name in ("small", "stereo")] * 2
    tracks: list = [None] * len(requests)

    def make(i: int) -> None:
        tracks[i] = studio.make_track(requests[i])

    threads = [threading.Thread(target=make, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for request, track in zip(requests, tracks, strict=True):
        assert track.recipe.model_name == request.model
        assert track.recipe.model_id == folders[request.model]
        assert track.recipe.channels == (2 if request.model == "stereo" else 1)
        assert track.recipe.batch_size <= 2, "only requests for the same model share a batch"


def test_an_extend_goes_on_with_the_model_that_made_the_track(folders, tmp_path):
    studio = Studio(models=catalog(folders, max_loaded=4), output_dir=tmp_path)
    first = studio.make_track(TrackRequest(prompt="pads", duration=1.5, seed=1, model="stereo"))
    for unnamed in (None, "", "auto"):  # "auto" is what the page's menu sends when nothing is picked
        more = studio.make_track(TrackRequest(extend=str(first.wav_path), duration=1.0, model=unnamed))
        assert more.recipe.model_name == "stereo" and more.recipe.channels == 2
    mono = studio.make_track(TrackRequest(extend=str(first.wav_path), duration=1.0, model="small"))
    assert mono.recipe.model_name == "small" and mono.recipe.channels == 2, "the stereo original, joined"
