"""MusicGen-Melody follows the hum: proven on audio codes, since some transformers releases ignored it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from generation.errors import InvalidInputError
from generation.model.engine import MusicGenEngine
from generation.model.spec import EngineSpec
from generation.model.types import Melody
from generation.settings import GenerationSettings
from generation.studio import TrackRequest
from tests.audio_factory import hum, with_silence, write_audio

RATE = 32_000
RISING = ("A3", "C#4", "E4", "A4")
FALLING = ("G4", "D4", "B3", "G3")


def settings(prompt: str = "calm piano", seed: int = 1) -> GenerationSettings:
    return GenerationSettings(prompt=prompt, duration=2, seed=seed)


def melody(notes) -> Melody:
    return Melody(hum(notes, note_seconds=0.8, rate=RATE), RATE)


def changed(a: np.ndarray, b: np.ndarray) -> float:
    return float((a != b).mean())


def test_two_different_hums_give_different_audio_codes(melody_engine):
    rising = melody_engine.generate(settings(), melody=melody(RISING))
    falling = melody_engine.generate(settings(), melody=melody(FALLING))
    assert rising.codes.shape == falling.codes.shape == (4, 100)
    assert changed(rising.codes, falling.codes) > 0.01
    assert not np.array_equal(rising.audio, falling.audio)


def test_a_hum_gives_different_codes_than_no_hum(melody_engine):
    with_hum = melody_engine.generate(settings(), melody=melody(RISING))
    without = melody_engine.generate(settings())
    assert changed(with_hum.codes, without.codes) > 0.01


def test_the_same_hum_prompt_and_seed_give_the_same_codes(melody_engine):
    first = melody_engine.generate(settings(), melody=melody(RISING))
    again = melody_engine.generate(settings(), melody=melody(RISING))
    np.testing.assert_array_equal(first.codes, again.codes)
    np.testing.assert_array_equal(first.audio, again.audio)


def test_a_hum_alone_with_an_empty_prompt_is_a_valid_request(melody_engine):
    result = melody_engine.generate(settings(prompt=""), melody=melody(RISING))
    assert result.audio.shape == (1, 2 * RATE)


def test_the_text_model_refuses_a_melody_clearly(engine):
    with pytest.raises(InvalidInputError, match="MusicGen-Melody"):
        engine.generate(settings(), melody=melody(RISING))


def test_studio_uses_the_melody_model_only_when_a_hum_is_given(studio, tmp_path):
    path = write_audio(tmp_path / "hum", with_silence(hum(RISING, rate=44_100), 44_100, 0.7, 0.5), 44_100, "wav_16")
    text_track = studio.make_track(TrackRequest(prompt="calm piano", duration=1, seed=3))
    hum_track = studio.make_track(TrackRequest(prompt="calm piano", melody=str(path), duration=1, seed=3))
    assert text_track.recipe.model_id == studio.engine.model_id
    assert hum_track.recipe.model_id == studio.melody_engine.model_id
    assert text_track.recipe.melody is None


def test_recipe_records_the_melody_file_length_used_and_hash(studio, tmp_path):
    path = write_audio(tmp_path / "my hum", hum(RISING, rate=48_000), 48_000, "flac", channels=2)
    track = studio.make_track(TrackRequest(prompt="", melody=str(path), duration=1, seed=3))
    record = json.loads(track.recipe_path.read_text())["melody"]
    assert record["file"] == "my hum.flac"
    assert record["seconds_used"] == pytest.approx(len(RISING) * 0.8, abs=0.3)
    assert len(record["sha256"]) == 64 and record["truncated"] is False
    assert track.wav_path.name.startswith("moodtape_hum-my-hum_seed3")


def test_a_hum_comes_back_with_a_chroma_picture_and_its_notes_in_words(studio, tmp_path):
    path = write_audio(tmp_path / "arpeggio", hum(("A3", "C#4", "E4", "A4", "E4", "C#4"), rate=RATE), RATE, "wav_16")
    track = studio.make_track(TrackRequest(prompt="jazz", melody=str(path), duration=1, seed=3))
    assert track.melody_picture.ndim == 3 and track.melody_picture.shape[2] == 3
    assert "A" in track.melody_description and "major" in track.melody_description
    assert track.melody_description in track.summary()


def test_a_long_song_uses_its_first_30_seconds_and_says_so(studio, tmp_path):
    long_hum = hum(RISING * 12, note_seconds=0.8, rate=16_000)  # 38.4 s
    path = write_audio(tmp_path / "song", long_hum, 16_000, "wav_16")
    track = studio.make_track(TrackRequest(prompt="jazz trio", melody=str(path), duration=1, seed=3))
    assert track.recipe.melody["truncated"] is True
    assert track.recipe.melody["seconds_used"] == pytest.approx(30.0, abs=0.01)
    assert any("first 30 s" in note for note in track.recipe.notes)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", ["empty"]),
        (b"hello, this is not audio at all" * 20, ["not", "audio"]),
    ],
)
def test_bad_melody_files_are_refused_before_generation(studio, tmp_path, content, words):
    path = tmp_path / "hum.wav"
    path.write_bytes(content)
    with pytest.raises(InvalidInputError) as info:
        studio.make_track(TrackRequest(prompt="x", melody=str(path), duration=1))
    message = str(info.value).lower()
    assert all(word in message for word in words), message


def test_one_model_limit_unloads_the_other_model(engine, tiny_model_dir, tiny_melody_model_dir, tmp_path):
    from generation.studio import Studio

    text = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir)))
    melodic = MusicGenEngine(EngineSpec(model_id=str(tiny_melody_model_dir), family="melody"))
    studio = Studio(text, output_dir=tmp_path, melody_engine=melodic, max_loaded_models=1)
    path = write_audio(tmp_path / "hum", hum(RISING, rate=RATE), RATE, "wav_16")
    studio.make_track(TrackRequest(prompt="x", duration=1, seed=1))
    assert text.loaded and not melodic.loaded
    studio.make_track(TrackRequest(prompt="x", melody=str(path), duration=1, seed=1))
    assert melodic.loaded and not text.loaded


def test_both_models_can_load_at_the_same_time_from_two_threads(tiny_model_dir, tiny_melody_model_dir):
    import threading

    engines = [
        MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir))),
        MusicGenEngine(EngineSpec(model_id=str(tiny_melody_model_dir), family="melody")),
    ]
    errors: list[BaseException] = []

    def load(engine: MusicGenEngine) -> None:
        try:
            engine.load()
        except BaseException as e:  # collected for the assertion below
            errors.append(e)

    threads = [threading.Thread(target=load, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert engines[0].generate(settings(), melody=None).audio.shape == (1, 2 * RATE)
    assert engines[1].generate(settings(), melody=melody(RISING)).audio.shape == (1, 2 * RATE)
