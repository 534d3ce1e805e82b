"""Compose a song in sections, and land a track in a key, through the studio with the tiny checkpoints.

The tiny models make noise with no beat and no key, so none of their sections is stretched or moved; the stretch
and the move are proven on synthetic music: a stand-in band for the model (``SyntheticBand``) and the finishing
test below.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from generation.audio.cues import read_cues
from generation.audio.tempo import measure_tempo
from generation.editing.compose import TAIL_SECONDS, ComposeRequest, key_record, make_song
from generation.editing.keys import measure_key, parse_key
from generation.errors import InvalidInputError
from generation.finishing import JOIN_FADE_SECONDS, TempoRequest, finish_take
from generation.model.types import GeneratedAudio
from generation.models import ModelCatalog
from generation.recipe import Recipe
from generation.studio import Studio, Track, TrackRequest
from tests.rhythm_factory import pattern
from tests.test_keys import C_MAJOR

RATE = 32_000
FADE = round(JOIN_FADE_SECONDS * RATE)


def samples(track: Track) -> np.ndarray:
    audio, _ = sf.read(str(track.wav_path), dtype="float32", always_2d=True)
    return audio.T


def song(*sections: tuple[str, float]) -> str:
    return json.dumps([{"prompt": prompt, "seconds": seconds} for prompt, seconds in sections])


@pytest.fixture
def three(studio) -> Track:
    """Three sections of uneven length, loudness off, so later songs can be compared sample for sample."""
    sections = song(("soft piano intro", 1.3), ("the band comes in", 1.45), ("quiet outro", 1.05))
    return studio.compose(ComposeRequest(sections=sections, seed=21, loudness="off"))


def test_a_song_is_exactly_the_sum_of_its_sections_with_a_labelled_cue_at_each(three):
    audio = samples(three)
    assert audio.shape[-1] == round(3.8 * RATE)
    assert [(cue.frame, cue.label) for cue in read_cues(three.wav_path)] == [
        (0, "1: soft piano intro"),
        (round(1.3 * RATE), "2: the band comes in"),
        (round(2.75 * RATE), "3: quiet outro"),
    ]
    sections = three.recipe.sections
    assert [(s["prompt"], s["start"], s["end"], s["seed"]) for s in sections] == [
        ("soft piano intro", 0.0, 1.3, 21),
        ("the band comes in", 1.3, 2.75, 22),
        ("quiet outro", 2.75, 3.8, 23),
    ]
    assert Recipe.load(three.recipe_path).sections == sections
    assert "Sections: 1. soft piano intro 0.0-1.3 s; 2. the band comes in 1.3-2.8 s; 3. quiet outro" in three.summary()
    assert three.recipe.settings.seed == 21 and three.recipe.audio_seconds == 3.8


def test_changing_a_section_leaves_every_sample_before_it(studio, three):
    before = samples(three)
    last = studio.compose(
        ComposeRequest(
            sections=song(("soft piano intro", 1.3), ("the band comes in", 1.45), ("a long fade, strings", 2.2)),
            seed=21,
            loudness="off",
        )
    )
    after = samples(last)
    third = round(2.75 * RATE)
    np.testing.assert_array_equal(after[:, : third - FADE], before[:, : third - FADE])
    assert after.shape[-1] == round(4.95 * RATE)
    assert not np.array_equal(after[:, third:], before[:, third : after.shape[-1]])

    second = studio.compose(
        ComposeRequest(
            sections=song(("soft piano intro", 1.3), ("drums only", 1.45), ("quiet outro", 1.05)),
            seed=21,
            loudness="off",
        )
    )
    np.testing.assert_array_equal(samples(second)[:, : round(1.3 * RATE) - FADE], before[:, : round(1.3 * RATE) - FADE])


def test_bars_at_a_tempo_are_exact_at_the_output_rate(studio):
    sections = json.dumps([{"prompt": "intro", "bars": 1}, {"prompt": "groove", "bars": 1, "preset": "lofi-hip-hop"}])
    track = studio.compose(ComposeRequest(sections=sections, bpm=137, seed=4, sample_rate=44_100, key="E minor"))
    bar = 4 * 60 / 137
    info = sf.info(str(track.wav_path))
    assert info.samplerate == 44_100 and info.frames == round(2 * bar * 44_100)
    assert [cue.frame for cue in read_cues(track.wav_path)] == [0, round(bar * 44_100)]
    first, second = track.recipe.sections
    assert first["bars"] == 1 and first["prompt"] == "intro, in E minor, 137 bpm"
    assert second["preset"] == "lofi-hip-hop" and "in E minor, 137 bpm" in second["prompt"]
    assert first["key"]["asked"] == "E minor" and "speed" in first
    assert track.recipe.key["asked"] == "E minor" and track.recipe.tempo["bpm"] == 137


@pytest.mark.parametrize(
    ("request_values", "words"),
    [
        ({"sections": ""}, "sections is empty"),
        ({"sections": song(*[("x", 1.0)] * 13)}, "holds 13 sections"),
        ({"sections": "intro, verse"}, "not valid JSON"),
        ({"sections": '[{"seconds": 2}]'}, "section 1 has no prompt"),
        ({"sections": '[{"prompt": "x", "bars": 2}]'}, "bars need a tempo"),
        ({"sections": song(("x", 31.0))}, "a section lasts 1 to 30 s"),
        ({"sections": song(("x", 2.0)), "key": "H major"}, "'H major' is not a key"),
        ({"sections": song(("x", 2.0)), "bpm": 500}, "bpm must be from 40 to 240"),
        ({"sections": song(("x", 2.0)), "seed": 2**40}, "seed must be between"),
        ({"sections": song(("x", 2.0)), "loudness": 5}, "loudness"),
        ({"sections": song(("x", 2.0)), "model": "nope"}, "nope"),
        ({"sections": '[{"prompt": "x", "seconds": 2, "preset": "no-such-preset"}]'}, "no-such-preset"),
    ],
)
def test_bad_compose_requests_are_refused_before_any_work(studio, request_values, words):
    with pytest.raises(InvalidInputError) as caught:
        studio.compose(ComposeRequest(**request_values))
    assert words in str(caught.value)


def test_a_song_longer_than_the_server_allows_is_refused(engine, melody_engine, separator, tmp_path):
    small = Studio(engine, output_dir=tmp_path, melody_engine=melody_engine, separator=separator, max_duration=20)
    with pytest.raises(InvalidInputError, match="add up to 24.0 s, over this server's 20 s"):
        small.compose(ComposeRequest(sections=song(("a", 12.0), ("b", 12.0))))


def test_a_key_is_said_in_the_prompt_and_recorded(studio):
    track = studio.make_track(TrackRequest(prompt="mellow piano", duration=1.5, seed=3, key="a min", bpm=90))
    recipe = track.recipe
    assert recipe.settings.prompt == "mellow piano, in A minor, 90 bpm"
    assert recipe.key["asked"] == "A minor" and recipe.key["described"] in track.summary()
    again = TrackRequest.from_recipe(Recipe.load(track.recipe_path))
    assert again.key == "A minor"
    assert studio.plan(again).settings.prompt == recipe.settings.prompt  # a replay says the key once
    with pytest.raises(InvalidInputError, match="'H major' is not a key"):
        studio.make_track(TrackRequest(prompt="x", duration=1, key="H major"))


def test_finishing_moves_a_c_major_take_into_d_major_before_loudness():
    take = pattern(100, 8.0, RATE, chords=C_MAJOR)
    finished = finish_take(
        take, RATE, TempoRequest(), loudness_lufs=-14.0, out_rate=None, duration=8.0, key=parse_key("D major")
    )
    assert finished.key_record["measured"] == "C major" and finished.key_record["semitones"] == 2
    assert finished.tempo_record["key"] == "D major" and finished.tempo.key == "D major"
    assert finished.audio.shape == take.shape and finished.loudness.gain_db != 0.0
    assert measure_key(finished.audio, RATE) == "D major"


class SyntheticBand:
    """A stand-in for the model that plays what the tiny checkpoints cannot: drums and chords in C major at
    115 BPM, a little slow for the song; each section's drums vary with its seed. It continues an audio prompt as
    the engine does: the new audio only, with the prompt's last 0.1 s as the lead-in."""

    sample_rate = RATE

    def generate(self, settings, *, audio_prompt=None, on_progress=None, cancel=None):
        audio = pattern(115, settings.duration, RATE, chords=C_MAJOR, seed=settings.seed)
        lead_in = None if audio_prompt is None else np.asarray(audio_prompt.samples)[:, -round(0.1 * RATE) :]
        return GeneratedAudio(audio, RATE, settings, "synthetic", None, "cpu", "float32", 0.1, lead_in=lead_in)


def test_each_section_is_stretched_to_the_tempo_and_landed_in_the_key(studio):
    sections = json.dumps([{"prompt": "verse", "bars": 4}, {"prompt": "chorus", "bars": 4}])
    plan = studio.plan_compose(ComposeRequest(sections=sections, bpm=120, key="D major", seed=1))
    song, made = make_song(SyntheticBand(), plan)
    assert song.shape[-1] == round(16.0 * RATE) + round(TAIL_SECONDS * RATE)
    for section in made:
        assert section.landing.measured == "C major" and section.landing.semitones == 2
        assert section.speed == pytest.approx(120 / 115, abs=0.01) and section.tempo_note is None
    assert measure_key(song, RATE) == "D major"
    assert key_record(plan, made, "D major")["described"] == (
        "Key: asked for D major; section 1 moved up 2, section 2 moved up 2; the song measures D major"
    )
    assert measure_tempo(song, RATE, hint_bpm=120).bpm == pytest.approx(120, abs=0.5)


def test_a_songs_recipe_makes_the_same_song_again(studio, three, tmp_path):
    request = ComposeRequest.from_recipe(Recipe.load(three.recipe_path))
    assert [s["prompt"] for s in request.sections] == ["soft piano intro", "the band comes in", "quiet outro"]
    again = studio.compose(request, destination=tmp_path / "again.wav")
    np.testing.assert_array_equal(samples(again), samples(three))
    assert [cue.label for cue in read_cues(again.wav_path)] == [cue.label for cue in read_cues(three.wav_path)]


def test_a_kept_song_opens_in_compose_as_its_own_sections_and_a_track_as_one(studio, three):
    song_again = ComposeRequest.starting_from(Recipe.load(three.recipe_path))
    assert song_again == ComposeRequest.from_recipe(Recipe.load(three.recipe_path))
    assert (song_again.seed, [s["seconds"] for s in song_again.sections]) == (21, [1.3, 1.45, 1.05])
    track = studio.make_track(TrackRequest(prompt="rainy night, mellow piano", duration=1.5, seed=9))
    one = ComposeRequest.starting_from(track.recipe)
    assert one.sections == [{"prompt": "rainy night, mellow piano", "seconds": 1.5}] and one.seed == 9
    assert one.bpm is None, "a tempo only measured is not asked for: the song is not stretched to it"


def test_the_melody_model_composes_too(studio):
    track = studio.compose(ComposeRequest(sections=song(("intro", 1.0), ("outro", 1.0)), seed=2, model="melody"))
    assert samples(track).shape[-1] == 2 * RATE and track.recipe.model_name == "melody"


def test_a_stereo_model_composes_a_stereo_song(stereo_engine, separator, tmp_path):
    models = ModelCatalog([("stereo", stereo_engine.model_id)], stereo_engine.config, engines={"stereo": stereo_engine})
    studio = Studio(models=models, output_dir=tmp_path, separator=separator)
    track = studio.compose(ComposeRequest(sections=song(("intro", 1.0), ("outro", 1.2)), seed=2, loudness="off"))
    assert samples(track).shape == (2, round(2.2 * RATE))
    assert [cue.frame for cue in read_cues(track.wav_path)] == [0, RATE]
