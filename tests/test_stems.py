"""Stems: a tiny random Demucs drives separation and stem files end to end; a missing model fails fast offline."""

from __future__ import annotations

import json
import threading
import time
import zipfile

import numpy as np
import pytest
import soundfile as sf

from generation.audio.export import export_stems, read_metadata
from generation.audio.stems import STEMS_MODEL_ENV, StemSeparator
from generation.errors import GenerationCancelled, InvalidInputError, ModelLoadError
from tests.test_loudness import music_like
from tests.tiny_demucs import SOURCES, build_tiny_demucs, save_tiny_demucs

RATE = 32_000
SECONDS = 2.0
RECIPE_JSON = json.dumps({"ai_generated": "AI-generated music, made with Moodtape.", "mood": "rainy night"}, indent=2)
METADATA = {"title": "rainy night", "artist": "AI-generated with facebook/musicgen-small"}


@pytest.fixture(scope="module")
def separator() -> StemSeparator:
    return StemSeparator.from_model(build_tiny_demucs(), name="tiny-htdemucs")


@pytest.fixture(scope="module")
def stereo_stems(separator):
    return separator.separate(music_like(SECONDS), RATE)


@pytest.fixture
def empty_hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, whatever this machine has downloaded."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.delenv(STEMS_MODEL_ENV, raising=False)


def test_a_stereo_track_splits_into_four_stems_of_its_rate_and_length(stereo_stems):
    assert tuple(stereo_stems) == SOURCES
    for stem in stereo_stems.values():
        assert stem.shape == (2, round(SECONDS * RATE)) and stem.dtype == np.float32
        assert np.all(np.isfinite(stem)) and np.any(stem)


def test_a_mono_track_gives_mono_stems_of_the_same_length(separator):
    stems = separator.separate(music_like(1.5)[:1], RATE)

    assert {name: stem.shape for name, stem in stems.items()} == {name: (1, 48_000) for name in SOURCES}


def test_stems_are_written_as_named_24_bit_wavs_and_one_zip_with_the_recipe(stereo_stems, tmp_path):
    paths = export_stems(
        stereo_stems,
        RATE,
        folder=tmp_path,
        file_name="moodtape_rainy_seed7",
        metadata=METADATA,
        recipe_json=RECIPE_JSON,
    )

    assert sorted(paths) == sorted([*SOURCES, "zip"])
    for name in SOURCES:
        info = sf.info(paths[name])
        assert paths[name].name == f"moodtape_rainy_seed7_{name}.wav"
        assert (info.samplerate, info.frames, info.channels, info.subtype) == (RATE, 64_000, 2, "PCM_24")
        tags = read_metadata(paths[name])
        assert tags["recipe_json"] == RECIPE_JSON and tags["title"] == f"rainy night ({name})"
    with zipfile.ZipFile(paths["zip"]) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == sorted(
            [f"moodtape_rainy_seed7_{name}.wav" for name in SOURCES] + ["moodtape_rainy_seed7.recipe.json"]
        )
        assert archive.read("moodtape_rainy_seed7.recipe.json").decode() == RECIPE_JSON
        assert archive.read("moodtape_rainy_seed7_bass.wav") == paths["bass"].read_bytes()
    assert paths["zip"].name == "moodtape_rainy_seed7_stems.zip"
    assert not list(tmp_path.glob(".partial-*"))


def test_stems_can_be_written_at_48k(stereo_stems, tmp_path):
    paths = export_stems(
        stereo_stems, RATE, folder=tmp_path, file_name="t", target_rate=48_000, metadata={}, recipe_json="{}"
    )

    data, rate = sf.read(paths["drums"])
    assert rate == 48_000 and data.shape == (96_000, 2)


def test_progress_reaches_one_and_cancel_stops_the_separation(separator):
    fractions: list[float] = []
    separator.separate(music_like(3.0), RATE, on_progress=fractions.append)

    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) >= 3

    cancel = threading.Event()
    cancel.set()
    with pytest.raises(GenerationCancelled, match="cancelled"):
        separator.separate(music_like(1.0), RATE, cancel=cancel)


def test_bad_audio_is_refused_before_any_work(separator):
    with pytest.raises(InvalidInputError, match=r"audio must be \[channels, samples\]"):
        separator.separate(np.zeros((3, 1000), dtype=np.float32), RATE)
    with pytest.raises(InvalidInputError, match="NaN"):
        separator.separate(np.full((2, 1000), np.nan, dtype=np.float32), RATE)


def test_the_model_loads_once_from_a_local_folder_named_by_the_env_var(tmp_path, monkeypatch):
    folder = save_tiny_demucs(tmp_path / "tiny-htdemucs")
    monkeypatch.setenv(STEMS_MODEL_ENV, str(folder))
    separator = StemSeparator()
    models = []

    def load():
        separator.load()
        models.append(separator._model)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert separator.model_id == str(folder) and separator.loaded
    assert separator.sources == SOURCES and separator.samplerate == 44_100
    assert all(model is models[0] for model in models)
    assert separator.separate(music_like(0.5), RATE)["vocals"].shape == (2, 16_000)


def test_a_single_model_file_also_loads(tmp_path):
    folder = save_tiny_demucs(tmp_path / "tiny-htdemucs")
    separator = StemSeparator(str(folder / "0000tiny.safetensors"))

    separator.load()

    assert separator.sources == SOURCES


def test_a_missing_model_offline_fails_fast_saying_stems_are_unavailable_and_how_to_fix_it(
    empty_hub_cache, monkeypatch
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    separator = StemSeparator()

    started = time.perf_counter()
    with pytest.raises(ModelLoadError) as caught:
        separator.load()

    assert time.perf_counter() - started < 5
    message = str(caught.value)
    assert message.startswith("Stems are unavailable")
    assert "offline mode is on (HF_HUB_OFFLINE)" in message
    assert "hf download adefossez/HTDemucs" in message and STEMS_MODEL_ENV in message
    assert not separator.loaded


def test_a_missing_model_without_network_fails_fast_too(empty_hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens there
    for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)

    started = time.perf_counter()
    with pytest.raises(ModelLoadError, match=r"Stems are unavailable.*cannot be reached.*hf download"):
        StemSeparator("htdemucs_ft").load()

    assert time.perf_counter() - started < 5


def test_a_folder_without_a_model_says_what_it_must_hold(tmp_path, monkeypatch):
    monkeypatch.setenv(STEMS_MODEL_ENV, str(tmp_path))

    with pytest.raises(ModelLoadError, match=rf"Stems are unavailable.*{STEMS_MODEL_ENV}.*\.safetensors or \.th"):
        StemSeparator().load()
