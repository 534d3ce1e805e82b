"""Replacing a section through the studio with the tiny text, melody and stereo checkpoints, read back from the WAVs.

The tiny models make noise with no beat, so a track they made has no tempo and its section is used as given;
a synthetic drum track (no recipe, so it needs a prompt) shows the boundaries moving to its downbeats.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from generation.audio.export import export_track
from generation.editing.replace import CROSSFADE_SECONDS, ReplaceRequest
from generation.errors import InvalidInputError
from generation.model.engine import MusicGenEngine
from generation.model.spec import EngineSpec
from generation.models import ModelCatalog
from generation.recipe import Recipe
from generation.studio import Studio, Track, TrackRequest
from tests.rhythm_factory import A_MINOR, pattern

RATE = 32_000
EDGE = round(CROSSFADE_SECONDS * RATE)


def pcm(path: Path) -> np.ndarray:
    """A WAV's integer samples as ``[channels, samples]``."""
    audio, _ = sf.read(str(path), dtype="int32", always_2d=True)
    return audio.T


def outside(audio: np.ndarray, start: float, end: float) -> np.ndarray:
    a, b = round(start * RATE), round(end * RATE)
    return np.concatenate([audio[:, : max(0, a - EDGE)], audio[:, b + EDGE :]], axis=-1)


@pytest.fixture(scope="module")
def studio(engine, melody_engine, stereo_engine, separator, tmp_path_factory) -> Studio:
    engines = {"text": engine, "melody": melody_engine, "stereo": stereo_engine}
    models = ModelCatalog([(name, e.model_id) for name, e in engines.items()], engine.config, engines=engines)
    return Studio(models=models, output_dir=tmp_path_factory.mktemp("replace"), separator=separator)


@pytest.fixture(scope="module")
def parent(studio) -> Track:
    """A 5 s track by the text model, level as generated: the track whose middle is replaced."""
    return studio.make_track(TrackRequest(prompt="warm synth pads", duration=5, seed=3, loudness="off", model="text"))


def test_a_replace_keeps_the_file_outside_the_section_bit_for_bit(studio, parent):
    request = ReplaceRequest(audio=str(parent.wav_path), start=1.5, end=3.0, seed=40, loudness="off")
    track = studio.replace_section(request)
    before, after = pcm(parent.wav_path), pcm(track.wav_path)
    assert after.shape == before.shape
    assert np.array_equal(outside(after, 1.5, 3.0), outside(before, 1.5, 3.0))
    assert not np.array_equal(after[:, 48_000:96_000], before[:, 48_000:96_000])
    # Two candidates, seeds 40 and 41, the best first; each file's recipe says which it holds and how all scored
    other = pcm(track.takes[0].wav_path)
    assert len(track.takes) == 1 and np.array_equal(outside(other, 1.5, 3.0), outside(before, 1.5, 3.0))
    record = Recipe.load(track.recipe_path).replace
    assert [c["seed"] for c in record["candidates"]] == [40, 41]
    assert record["kept_seed"] == record["best_seed"] == max(record["candidates"], key=lambda c: c["score"])["seed"]
    assert record["file"] == parent.wav_path.name and len(record["sha256"]) == 64
    assert (record["start"], record["end"]) == (1.5, 3.0)
    assert Recipe.load(track.takes[0].recipe_path).replace["kept_seed"] != record["kept_seed"]
    # No prompt: the file's recipe gave it, and its model
    recipe = track.recipe
    assert recipe.settings.prompt == parent.recipe.settings.prompt and recipe.model_name == "text"
    assert "Replaced 1.50 s to 3.00 s" in track.summary()
    # The same request gives the same audio
    again = studio.replace_section(request)
    assert np.array_equal(pcm(again.wav_path), after)


def test_candidates_after_a_long_prompt_read_it_once_and_still_repeat_bit_for_bit(
    tiny_model_dir, tmp_path, monkeypatch
):
    """In fast mode a section's candidates read the audio before it once a step (``share_prompt``)."""
    from generation.model import static_decoding

    fast = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), fast=True, device="cpu"))
    studio = Studio(
        models=ModelCatalog([("text", fast.model_id)], fast.config, engines={"text": fast}), output_dir=tmp_path
    )
    parent = studio.make_track(TrackRequest(prompt="warm synth pads", duration=5, seed=3, loudness="off"))
    shared = []
    load = static_decoding.Stepper.load_shared
    monkeypatch.setattr(
        static_decoding.Stepper, "load_shared", lambda self, *args: (shared.append(args[1]), load(self, *args))
    )
    request = ReplaceRequest(audio=str(parent.wav_path), start=2.5, end=4.0, seed=50, loudness="off")
    track = studio.replace_section(request)
    assert shared == [2]  # 2.5 s of prompt: 125 frames, read once for both candidates
    after = pcm(track.wav_path)
    assert np.array_equal(outside(after, 2.5, 4.0), outside(pcm(parent.wav_path), 2.5, 4.0))
    assert np.array_equal(pcm(studio.replace_section(request).wav_path), after)


def test_the_melody_and_stereo_models_replace_too(studio, parent):
    for model, channels in (("melody", 1), ("stereo", 1)):
        request = ReplaceRequest(audio=str(parent.wav_path), start=0, end=2.0, model=model, candidates=1, seed=5)
        track = studio.replace_section(request)
        audio = pcm(track.wav_path)
        assert audio.shape == (channels, pcm(parent.wav_path).shape[1]) and track.recipe.model_name == model
        assert track.takes == ()


def test_a_stereo_track_keeps_both_channels(studio):
    stereo = studio.make_track(TrackRequest(prompt="wide pads", duration=4, seed=8, loudness="off", model="stereo"))
    track = studio.replace_section(ReplaceRequest(audio=str(stereo.wav_path), start=1.0, end=4.0, loudness="off"))
    before, after = pcm(stereo.wav_path), pcm(track.wav_path)
    assert after.shape == before.shape == (2, 4 * RATE)
    assert np.array_equal(after[:, : RATE - EDGE], before[:, : RATE - EDGE])
    assert track.recipe.replace["candidates"][0]["score"] is None  # the section ends the file: nothing to score


def test_boundaries_move_to_downbeats_of_a_track_with_a_beat(studio, tmp_path):
    drums = pattern(120.0, 10.0, RATE, chords=A_MINOR)  # bars of 2 s from 0
    wav = export_track(drums, RATE, folder=tmp_path, file_name="drums", metadata={}, recipe_json="{}")["wav"]
    request = ReplaceRequest(audio=str(wav), start=3.8, end=6.3, prompt="drums and chords", candidates=1, seed=2)
    track = studio.replace_section(request)
    record = track.recipe.replace
    assert record["start"] == pytest.approx(4.0, abs=0.03) and record["end"] == pytest.approx(6.0, abs=0.03)
    assert (record["asked_start"], record["asked_end"]) == (3.8, 6.3)
    assert "nearest downbeats at 120 BPM" in track.summary()
    assert track.recipe.model_name == "text"  # no recipe: the server's choice


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"start": 2.0, "end": 2.0}, "must come after start"),
        ({"start": 1.0, "end": 9.0}, "at most the file's length, 5.00 s"),
        ({"start": 1.0, "end": 2.0, "candidates": 0}, "candidates must be a whole number from 1 to 4"),
        ({"start": 1.0, "end": 2.0, "candidates": 9}, "candidates must be a whole number from 1 to 4"),
        ({"start": 1.0, "end": 2.0, "model": "nope"}, "nope"),
    ],
)
def test_bad_requests_are_refused_before_any_work(studio, parent, values, words):
    with pytest.raises(InvalidInputError, match=words):
        studio.replace_section(ReplaceRequest(audio=str(parent.wav_path), **values))


def test_a_file_without_a_recipe_needs_a_prompt(studio, tmp_path):
    wav = export_track(pattern(100.0, 3.0, RATE), RATE, folder=tmp_path, file_name="x", metadata={}, recipe_json="{}")
    with pytest.raises(InvalidInputError, match="carries no Moodtape recipe"):
        studio.replace_section(ReplaceRequest(audio=str(wav["wav"]), start=1.0, end=2.0))
    with pytest.raises(InvalidInputError, match="audio is missing"):
        studio.replace_section(ReplaceRequest(start=1.0, end=2.0))


def test_on_zero_gpu_a_replace_holds_the_gpu_for_its_section_and_every_candidate(studio, parent):
    from zerogpu import estimate_gpu_seconds

    one = ReplaceRequest(audio=str(parent.wav_path), start=1.0, end=3.0, candidates=1)
    three = ReplaceRequest(audio=str(parent.wav_path), start=1.0, end=3.0, candidates=3)
    made = studio.plan_replace(one).settings.duration  # the section, its overlap and a margin
    assert made > 2.0
    assert estimate_gpu_seconds(studio, one) == estimate_gpu_seconds(studio, TrackRequest(prompt="r", duration=made))
    assert estimate_gpu_seconds(studio, three) == estimate_gpu_seconds(
        studio, TrackRequest(prompt="r", duration=made, variations=3)
    )
    refused = ReplaceRequest(audio=str(parent.wav_path), start=3.0, end=1.0)
    assert estimate_gpu_seconds(studio, refused) == estimate_gpu_seconds(studio, TrackRequest(prompt="r"))
