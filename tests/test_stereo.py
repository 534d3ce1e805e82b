"""Stereo MusicGen everywhere mono works: two channels that differ, replayed bit for bit, streamed, long, batched,
fast, finished (loudness, true peak, stems, pictures, every format), and a stereo melody model following a hum.

The tiny stereo checkpoints are built from facebook/musicgen-stereo-small's and facebook/musicgen-stereo-melody's
published configs (8 codebooks interleaved left and right, 2 channels out).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from generation.audio.loudness import integrated_loudness, true_peak_dbtp
from generation.model.engine import MusicGenEngine
from generation.model.spec import EngineSpec
from generation.model.types import AudioPrompt, Melody
from generation.models import ModelCatalog
from generation.recipe import Recipe
from generation.settings import GenerationSettings
from generation.studio import Studio, TrackRequest
from tests.audio_factory import hum, write_audio
from tests.batching import run_together

RATE = 32_000


def settings(duration: float = 2.0, seed: int = 7, prompt: str = "wide ambient pads") -> GenerationSettings:
    return GenerationSettings(prompt=prompt, duration=duration, seed=seed)


@pytest.fixture(scope="module")
def stereo_melody_engine(tiny_stereo_melody_model_dir: Path) -> MusicGenEngine:
    engine = MusicGenEngine(EngineSpec(model_id=str(tiny_stereo_melody_model_dir), family="melody"))
    engine.load()
    return engine


@pytest.fixture
def stereo_studio(engine, melody_engine, stereo_engine, stereo_melody_engine, separator, tmp_path: Path) -> Studio:
    engines = {"small": engine, "stereo": stereo_engine, "melody": melody_engine, "stereo-melody": stereo_melody_engine}
    models = ModelCatalog(
        [(name, e.model_id) for name, e in engines.items()], engine.config, engines=engines, max_loaded=4
    )
    return Studio(models=models, output_dir=tmp_path / "outputs", separator=separator)


def channels_differ(audio: np.ndarray) -> bool:
    return audio.shape[0] == 2 and float(np.abs(audio[0] - audio[1]).mean()) > 1e-3 * float(np.abs(audio).mean())


def test_a_stereo_model_makes_two_channels_that_differ(stereo_engine):
    result = stereo_engine.generate(settings())
    assert result.audio.shape == (2, 2 * RATE)
    assert result.codes.shape == (8, 100), "8 codebooks: 4 per channel, interleaved"
    assert channels_differ(result.audio)


def test_the_same_seed_gives_the_same_stereo_audio_alone_and_batched(stereo_engine):
    alone = stereo_engine.generate(settings(seed=3))
    together = run_together(stereo_engine, [settings(seed=3), settings(seed=4, prompt="dark drones")])
    np.testing.assert_array_equal(alone.audio, together[0].audio)
    np.testing.assert_array_equal(alone.codes, together[0].codes)
    assert together[0].batch_size == 2


def test_streamed_pieces_of_a_stereo_track_join_to_the_whole_track(stereo_engine):
    pieces: list[np.ndarray] = []
    result = stereo_engine.generate(settings(duration=4.0), on_audio=pieces.append)
    assert len(pieces) > 2 and all(piece.shape[0] == 2 for piece in pieces)
    np.testing.assert_allclose(np.concatenate(pieces, axis=-1), result.audio, atol=1e-5)


def test_a_long_stereo_track_continues_window_by_window_and_streams_seamlessly(tiny_stereo_model_dir):
    engine = MusicGenEngine(EngineSpec(model_id=str(tiny_stereo_model_dir), window_seconds=2.0, extend_stride=1.0))
    pieces: list[np.ndarray] = []
    result = engine.generate(settings(duration=4.5), on_audio=pieces.append)
    assert result.audio.shape == (2, round(4.5 * RATE)) and result.windows == 4
    assert channels_differ(result.audio[:, -RATE:]), "the last window is stereo too"
    np.testing.assert_allclose(np.concatenate(pieces, axis=-1), result.audio, atol=1e-5)


def test_stereo_takes_are_each_what_their_seed_gives_alone(stereo_engine):
    takes = stereo_engine.generate_takes(settings(seed=10), 2)
    second = stereo_engine.generate(settings(seed=11))
    np.testing.assert_array_equal(takes[1].audio, second.audio)
    assert takes[0].audio.shape == (2, 2 * RATE)


def test_fast_mode_makes_stereo_too(tiny_stereo_model_dir):
    fast = MusicGenEngine(EngineSpec(model_id=str(tiny_stereo_model_dir), fast=True, device="cpu"))
    result = fast.generate(settings())
    assert fast.mode == "fast" and result.mode == "fast"
    assert channels_differ(result.audio)
    np.testing.assert_array_equal(result.audio, fast.generate(settings()).audio)


def test_a_stereo_extend_continues_both_channels(stereo_engine):
    start = stereo_engine.generate(settings(duration=1.5))
    more = stereo_engine.generate(settings(duration=1.0), audio_prompt=AudioPrompt(start.audio, RATE))
    assert more.audio.shape == (2, RATE) and channels_differ(more.audio)
    assert more.lead_in is not None and more.lead_in.shape[0] == 2


def test_the_stereo_melody_model_follows_a_hum_in_two_channels(stereo_melody_engine):
    rising = Melody(hum(("A3", "C#4", "E4", "A4"), note_seconds=0.8, rate=RATE), RATE)
    falling = Melody(hum(("G4", "D4", "B3", "G3"), note_seconds=0.8, rate=RATE), RATE)
    up = stereo_melody_engine.generate(settings(), melody=rising)
    down = stereo_melody_engine.generate(settings(), melody=falling)
    assert up.codes.shape == (8, 100) and channels_differ(up.audio)
    assert float((up.codes != down.codes).mean()) > 0.01, "the hum changes the codes"


def test_a_stereo_track_is_written_in_two_channels_and_its_recipe_replays_bit_for_bit(stereo_studio, tmp_path):
    track = stereo_studio.make_track(TrackRequest(prompt="wide pads", duration=2, model="stereo", formats="wav,flac"))
    audio, rate = sf.read(track.wav_path, dtype="float32", always_2d=True)
    assert audio.shape == (2 * RATE, 2) and channels_differ(audio.T)
    assert sf.info(str(track.paths["flac"])).channels == 2
    recipe = Recipe.load(track.recipe_path)
    assert (recipe.model_name, recipe.channels) == ("stereo", 2)
    assert recipe.model_id == stereo_studio.models.entries["stereo"]
    again = stereo_studio.make_track(TrackRequest.from_recipe(recipe), destination=tmp_path / "again.wav")
    np.testing.assert_array_equal(sf.read(again.wav_path, dtype="float32")[0], audio)


def test_stereo_loudness_and_true_peak_are_measured_on_both_channels(stereo_studio):
    track = stereo_studio.make_track(TrackRequest(prompt="wide pads", duration=3, seed=2, model="stereo"))
    audio, rate = sf.read(track.wav_path, dtype="float32", always_2d=True)
    assert integrated_loudness(audio.T, rate) == pytest.approx(-14.0, abs=0.5)
    assert true_peak_dbtp(audio.T) <= -1.0 + 0.05
    loud_left = audio.T * np.array([[1.0], [0.0]], dtype=np.float32)
    assert integrated_loudness(loud_left, rate) < integrated_loudness(audio.T, rate), "both channels count"


def test_stems_of_a_stereo_track_keep_both_channels(stereo_studio):
    track = stereo_studio.make_track(TrackRequest(prompt="wide pads", duration=2, seed=2, model="stereo", stems=True))
    for name in ("drums", "bass", "other", "vocals"):
        assert sf.info(str(track.paths[name])).channels == 2
    assert track.stems_picture is not None


def test_mp3_of_a_stereo_track_has_two_channels(stereo_studio):
    request = TrackRequest(prompt="wide pads", duration=2, seed=2, model="stereo", formats="mp3")
    track = stereo_studio.make_track(request)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=channels", "-of", "csv=p=0", str(track.paths["mp3"])],
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "2"


def test_the_picture_of_a_stereo_track_draws_both_channels(stereo_studio):
    from generation.audio.pictures import track_picture

    track = stereo_studio.make_track(TrackRequest(prompt="wide pads", duration=2, seed=2, model="stereo"))
    audio = track.generated.audio
    assert not np.array_equal(track_picture(audio, RATE), track_picture(audio[:1].repeat(2, axis=0), RATE))


def test_a_hum_with_the_stereo_melody_model_gives_a_stereo_track(stereo_studio, tmp_path):
    path = write_audio(tmp_path / "hum", hum(("A3", "C#4", "E4", "A4"), rate=RATE), RATE, "wav_16")
    track = stereo_studio.make_track(TrackRequest(prompt="", melody=str(path), duration=2, model="stereo-melody"))
    assert sf.info(str(track.wav_path)).channels == 2
    assert track.recipe.melody is not None and track.recipe.model_name == "stereo-melody"


def test_a_mono_model_stays_mono(stereo_studio):
    track = stereo_studio.make_track(TrackRequest(prompt="piano", duration=1, seed=2, model="small"))
    assert sf.info(str(track.wav_path)).channels == 1 and track.recipe.channels == 1
