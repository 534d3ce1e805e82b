"""Exports: every format reads back at the right rate and length, and carries its recipe and AI notice."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf

from generation.audio.export import export_track, read_metadata
from generation.errors import InvalidInputError
from tests.test_loudness import music_like

RATE = 32_000
SECONDS = 2.0
NOTICE = "AI-generated music, made with Moodtape 0.1.0 using the model facebook/musicgen-small."
# Non-ASCII, XML-special and longer than the ~2 KB that libsndfile keeps in a WAV comment
RECIPE_JSON = json.dumps(
    {
        "format": 1,
        "generator": "moodtape",
        "ai_generated": NOTICE,
        "mood": "pluie fine sur un café — 雨の夜 🎹 <b>&</b>",
        "notes": ["x" * 60] * 50,
    },
    indent=2,
    ensure_ascii=False,
)
METADATA = {
    "title": "pluie fine — 雨の夜",
    "artist": "AI-generated with facebook/musicgen-small",
    "notice": NOTICE,
    "software": "Moodtape 0.1.0",
    "date": "2026-11-22",
}


def export(folder, audio=None, **kwargs):
    audio = music_like(SECONDS) if audio is None else audio
    options = {"formats": ("wav", "flac", "mp3"), "metadata": METADATA, "recipe_json": RECIPE_JSON} | kwargs
    return export_track(audio, RATE, folder=folder, file_name="moodtape_rainy-night_seed7", **options)


def test_every_format_reads_back_at_the_native_rate_with_the_same_length(tmp_path):
    audio = music_like(SECONDS)

    paths = export(tmp_path, audio)

    assert sorted(paths) == ["flac", "mp3", "recipe", "wav"]
    for fmt in ("wav", "flac", "mp3"):
        data, rate = sf.read(paths[fmt], always_2d=True, dtype="float32")
        assert paths[fmt].name == f"moodtape_rainy-night_seed7.{fmt}"
        assert rate == RATE and data.shape == (audio.shape[1], 2)
    wav, _ = sf.read(paths["wav"], always_2d=True, dtype="float32")
    assert np.abs(wav.T - audio).max() < 2**-22  # 24-bit: within one step
    assert sf.info(paths["wav"]).subtype == "PCM_24" and sf.info(paths["flac"]).subtype == "PCM_24"
    assert paths["recipe"].name == "moodtape_rainy-night_seed7.recipe.json"
    assert paths["recipe"].read_text(encoding="utf-8") == RECIPE_JSON


@pytest.mark.parametrize("target_rate", [44_100, 48_000])
def test_resampled_exports_have_the_new_rate_and_the_scaled_length(tmp_path, target_rate):
    audio = music_like(SECONDS)[:, :63_997]  # a length that does not divide evenly

    paths = export(tmp_path, audio, target_rate=target_rate)

    expected = round(63_997 * target_rate / RATE)
    for fmt in ("wav", "flac", "mp3"):
        data, rate = sf.read(paths[fmt], always_2d=True, dtype="float32")
        assert rate == target_rate
        assert abs(data.shape[0] - expected) <= 2


def test_resampling_keeps_the_music(tmp_path):
    tone = np.sin(2 * np.pi * 1000 * np.arange(RATE) / RATE).astype(np.float32)[None] * 0.5

    data, rate = sf.read(export(tmp_path, tone, formats=("wav",), target_rate=48_000)["wav"], dtype="float32")

    spectrum = np.abs(np.fft.rfft(data * np.hanning(data.size)))
    assert np.fft.rfftfreq(data.size, 1 / rate)[spectrum.argmax()] == pytest.approx(1000, abs=2)
    assert np.abs(data).max() == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3"])
def test_recipe_and_ai_notice_round_trip_from_each_format(tmp_path, fmt):
    tags = read_metadata(export(tmp_path)[fmt])

    assert tags["recipe_json"] == RECIPE_JSON
    assert tags["notice"] == NOTICE
    assert tags["title"] == METADATA["title"] and tags["artist"] == METADATA["artist"]
    assert tags["software"] == METADATA["software"] and tags["date"] == METADATA["date"]
    assert tags["format"] == fmt


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffprobe")
def test_other_tools_see_the_tags_and_the_mp3_is_320_kbps(tmp_path):
    paths = export(tmp_path)

    def probe(path):
        command = ["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path)]
        return json.loads(subprocess.run(command, capture_output=True, check=True, text=True).stdout)

    wav, flac, mp3 = (probe(paths[fmt]) for fmt in ("wav", "flac", "mp3"))
    assert wav["format"]["tags"]["comment"] == RECIPE_JSON  # RIFF ICMT
    assert wav["format"]["tags"]["title"] == METADATA["title"]  # RIFF INAM
    assert flac["format"]["tags"]["TITLE"] == METADATA["title"]
    assert RECIPE_JSON in flac["format"]["tags"].values()  # DESCRIPTION, which ffmpeg shows as the comment
    assert mp3["format"]["tags"]["title"] == METADATA["title"]
    assert mp3["format"]["tags"]["comment"] == NOTICE
    assert mp3["format"]["tags"]["moodtape_recipe"] == RECIPE_JSON
    assert mp3["streams"][0]["bit_rate"] == "320000"


def test_the_notice_comes_from_the_recipe_when_not_given(tmp_path):
    metadata = {key: value for key, value in METADATA.items() if key != "notice"}

    paths = export(tmp_path, formats=("flac",), metadata=metadata)

    assert read_metadata(paths["flac"])["notice"] == NOTICE
    assert read_metadata(paths["wav"])["notice"] == NOTICE


def test_mono_audio_exports_as_mono(tmp_path):
    paths = export(tmp_path, music_like(SECONDS)[:1])

    for fmt in ("wav", "flac", "mp3"):
        assert sf.info(paths[fmt]).channels == 1


def test_an_unknown_format_is_refused_with_the_allowed_ones(tmp_path):
    with pytest.raises(InvalidInputError, match=r"^format must be one of wav, flac, mp3, midi, got 'ogg'\.$"):
        export(tmp_path, formats=("wav", "ogg"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("rate", [22_050, 96_000, 0])
def test_an_unsupported_sample_rate_is_refused_with_the_allowed_ones(tmp_path, rate):
    with pytest.raises(InvalidInputError, match=rf"sample rate must be 44100 or 48000 Hz .*32000 Hz.*got {rate}"):
        export(tmp_path, target_rate=rate)


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", ""])
def test_a_file_name_with_folders_is_refused(tmp_path, name):
    with pytest.raises(InvalidInputError, match="file name must be a plain name"):
        export_track(music_like(0.5), RATE, folder=tmp_path, file_name=name, metadata=METADATA, recipe_json="{}")


def test_a_failed_export_leaves_no_partial_or_half_set_of_files(tmp_path, monkeypatch):
    from mutagen.id3 import ID3

    (tmp_path / "earlier-track.wav").write_bytes(b"keep me")

    def broken_save(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ID3, "save", broken_save)  # fails inside the MP3, after the WAV and FLAC are written

    with pytest.raises(OSError, match="disk full"):
        export(tmp_path)

    assert [path.name for path in tmp_path.iterdir()] == ["earlier-track.wav"]
    assert (tmp_path / "earlier-track.wav").read_bytes() == b"keep me"


def test_a_failed_wav_write_leaves_nothing_behind(tmp_path, monkeypatch):
    import generation.audio.export as exports

    def broken_ixml(notice, recipe_json):
        raise RuntimeError("simulated crash while writing")

    monkeypatch.setattr(exports, "_ixml", broken_ixml)

    with pytest.raises(RuntimeError, match="simulated crash"):
        export(tmp_path, formats=("wav",))

    assert list(tmp_path.iterdir()) == []
