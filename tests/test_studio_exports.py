"""What a producer downloads: formats, rates, loudness, stems, provenance and pictures, through the studio."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import soundfile as sf

from generation.audio.export import read_metadata
from generation.audio.loudness import integrated_loudness, true_peak_dbtp
from generation.errors import InvalidInputError
from generation.studio import Studio, TrackRequest


def request(**more) -> TrackRequest:
    return TrackRequest(**{"prompt": "rainy night, mellow piano", "duration": 3, "seed": 4, **more})


def test_every_format_at_the_chosen_rate_carries_the_recipe(studio):
    track = studio.make_track(request(formats="wav,flac,mp3", sample_rate=48_000))
    assert set(track.paths) == {"wav", "flac", "mp3", "recipe"}
    for fmt in ("wav", "flac", "mp3"):
        path = track.paths[fmt]
        assert path.name == f"moodtape_rainy-night-mellow-piano_seed4.{fmt}"
        if fmt != "mp3":
            info = sf.info(str(path))
            assert info.samplerate == 48_000 and abs(info.frames - 3 * 48_000) <= 2
        meta = read_metadata(path)
        assert json.loads(meta["recipe_json"]) == track.recipe.to_dict()
        assert "AI-generated" in meta["notice"]
    assert sf.info(str(track.paths["wav"])).subtype == "PCM_24"


def test_the_mix_is_exported_at_the_loudness_asked_for(studio):
    for target in (-14.0, -20.0):
        track = studio.make_track(request(loudness=target))
        audio, rate = sf.read(track.wav_path, dtype="float32", always_2d=True)
        assert integrated_loudness(audio.T, rate) == pytest.approx(target, abs=0.5)
        assert true_peak_dbtp(audio.T) <= -1.0 + 0.05
        assert track.recipe.export["loudness"]["target_lufs"] == target


def test_loudness_off_leaves_the_level_as_generated(studio):
    track = studio.make_track(request(loudness="off"))
    audio, _ = sf.read(track.wav_path, dtype="float32", always_2d=True)
    np.testing.assert_allclose(audio.T, track.generated.audio, atol=2e-6)  # 24-bit rounding only
    assert track.recipe.export["loudness_lufs"] is None


def test_stems_come_as_named_wavs_and_one_zip_with_the_recipe(studio):
    track = studio.make_track(request(stems=True))
    stems = ("drums", "bass", "other", "vocals")
    for name in stems:
        info = sf.info(str(track.paths[name]))
        assert track.paths[name].name == f"moodtape_rainy-night-mellow-piano_seed4_{name}.wav"
        assert (info.samplerate, info.frames) == (32_000, 3 * 32_000)
    with zipfile.ZipFile(track.paths["zip"]) as archive:
        names = set(archive.namelist())
    assert {f"moodtape_rainy-night-mellow-piano_seed4_{n}.wav" for n in stems} < names
    assert "moodtape_rainy-night-mellow-piano_seed4.recipe.json" in names
    assert track.recipe.export["stems_written"] == sorted(stems)
    assert track.stems_picture is not None and track.stems_picture.shape[-1] == 3


def test_without_the_separation_weights_the_mix_still_downloads_and_says_why(
    engine, melody_engine, tmp_path, monkeypatch
):
    from generation.audio.stems import StemSeparator

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    studio = Studio(
        engine, output_dir=tmp_path, melody_engine=melody_engine, separator=StemSeparator("htdemucs-not-here")
    )
    track = studio.make_track(request(stems=True))
    assert track.wav_path.exists()
    assert any(note.startswith("Stems are missing") for note in track.recipe.notes)
    assert "Stems are missing" in track.summary()
    assert track.recipe.export["stems_written"] == []


def test_every_track_comes_with_a_waveform_and_spectrogram_picture(studio):
    track = studio.make_track(request())
    assert track.picture.ndim == 3 and track.picture.shape[-1] == 3 and track.picture.std() > 10


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"formats": "ogg"}, ["format must be one of", "ogg"]),
        ({"sample_rate": 22_050}, ["sample_rate", "44100"]),
        ({"loudness": 3}, ["loudness", "LUFS"]),
        ({"loudness": "loud"}, ["loudness"]),
    ],
)
def test_bad_export_settings_are_refused_before_generation(studio, values, words):
    with pytest.raises(InvalidInputError) as info:
        studio.make_track(request(**values))
    assert all(word in str(info.value) for word in words)
