"""Working on an idea through the studio: extend a track, hear several takes, steer away, loop at an exact tempo.

Every track here is made by ``Studio.make_track`` with the tiny checkpoints and read back from the files written.
The tiny models make noise with no beat, so every tempo is measured as unclear and no take is stretched; a loop is
still cut to the exact length of its bars.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import soundfile as sf

from generation.audio.arrays import resample
from generation.audio.loop_marker import read_loop_marker
from generation.audio.tempo import UNCLEAR_TEMPO
from generation.errors import InvalidInputError
from generation.finishing import JOIN_FADE_SECONDS
from generation.recipe import Recipe
from generation.studio import Studio, Track, TrackRequest
from tests.rhythm_factory import A_MINOR, pattern

RATE = 32_000  # the tiny models' rate, MusicGen's own
FADE = round(JOIN_FADE_SECONDS * RATE)  # an extend's crossfade inside the original's last samples
WAV_STEP = 2**-22  # two steps of a 24-bit WAV: written at full scale 2**23 - 1, read back divided by 2**23
PROMPT = "dusty vinyl jazz"


def samples(track: Track) -> np.ndarray:
    """A track's WAV samples as ``[channels, samples]`` float32, as a person's player reads them."""
    audio, _ = sf.read(str(track.wav_path), dtype="float32", always_2d=True)
    return audio.T


def refused(studio: Studio, request: TrackRequest) -> str:
    """The message a request is refused with; nothing is written."""
    with pytest.raises(InvalidInputError) as info:
        studio.make_track(request)
    assert not studio.output_dir.exists() or not any(studio.output_dir.rglob("*.wav"))
    return str(info.value)


@pytest.fixture(scope="module")
def workshop(engine, melody_engine, separator, tmp_path_factory) -> Studio:
    """One studio for the tracks this module makes and compares; each request writes to its own folder."""
    folder = tmp_path_factory.mktemp("iterate")
    return Studio(engine, output_dir=folder, melody_engine=melody_engine, separator=separator)


@pytest.fixture(scope="module")
def parent(workshop) -> Track:
    """A 2 s track from a preset, at its level as generated: the track the extends continue."""
    return workshop.make_track(
        TrackRequest(prompt="rainy night", preset="lofi-hip-hop", duration=2, seed=11, loudness="off")
    )


def extend_request(parent: Track) -> TrackRequest:
    """1.5 s more of ``parent``, with no prompt: its recipe says how it goes on."""
    return TrackRequest(extend=str(parent.wav_path), prompt="", duration=1.5, seed=3, loudness="off")


@pytest.fixture(scope="module")
def extended(workshop, parent) -> Track:
    return workshop.make_track(extend_request(parent))


@pytest.fixture(scope="module")
def takes(workshop) -> Track:
    return workshop.make_track(TrackRequest(prompt=PROMPT, duration=1, seed=7, variations=3))


@pytest.fixture(scope="module")
def plain(workshop) -> Track:
    """A 1 s track with no negative prompt: what the negative-prompt tests compare with."""
    return workshop.make_track(TrackRequest(prompt=PROMPT, duration=1, seed=5))


# -- Extend --------------------------------------------------------------------------------------------------------


def test_an_extend_is_the_original_then_exactly_the_seconds_added(parent, extended):
    original, longer = samples(parent), samples(extended)
    assert sf.info(str(extended.wav_path)).samplerate == RATE
    assert longer.shape == (1, original.shape[-1] + round(1.5 * RATE)) == (1, 112_000)
    kept = original.shape[-1] - FADE
    np.testing.assert_allclose(longer[:, :kept], original[:, :kept], rtol=0, atol=WAV_STEP)
    assert longer[:, original.shape[-1] :].std() > 1e-4, "the added seconds hold new audio"
    assert extended.recipe.audio_seconds == 3.5


def test_the_same_extend_again_gives_the_same_audio_bit_for_bit(workshop, parent, extended):
    again = workshop.make_track(extend_request(parent))
    assert again.wav_path != extended.wav_path
    np.testing.assert_array_equal(samples(again), samples(extended))
    np.testing.assert_array_equal(again.generated.codes, extended.generated.codes)


def test_an_extend_with_no_prompt_continues_its_recipe_s_prompt_and_preset(parent, extended):
    made, continued = parent.recipe, extended.recipe
    assert (continued.mood, continued.preset) == (made.mood, made.preset) == ("rainy night", "lofi-hip-hop")
    assert continued.settings.prompt == made.settings.prompt
    assert continued.settings.duration == 1.5, "the model made only the seconds added"


def test_an_extend_s_recipe_names_the_file_it_continued(parent, extended):
    record = json.loads(extended.recipe_path.read_text())["extend"]
    assert record["file"] == parent.wav_path.name
    assert record["sha256"] == hashlib.sha256(parent.wav_path.read_bytes()).hexdigest()
    assert (record["seconds"], record["seconds_added"], record["prompt_seconds"]) == (2.0, 1.5, 2.0)
    assert record["model_continued"] == parent.recipe.model_id
    assert f"Extended {parent.wav_path.name} (2.0 s) by 1.5 s, continuing its last 2.0 s" in extended.summary()


def test_a_file_without_a_recipe_needs_a_prompt_to_extend(studio, tmp_path):
    path = tmp_path / "found-on-disk.wav"
    sf.write(path, pattern(120, 2.0, RATE)[0], RATE)
    message = refused(studio, TrackRequest(extend=str(path), prompt="", duration=1.5))
    assert "'found-on-disk.wav' carries no Moodtape recipe" in message
    assert "describe how the music should go on" in message


@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0, "from 1 to 120 (how much to add), got 0"), (121, "got 121"), ("x", "a number of seconds to add, got 'x'")],
)
def test_the_seconds_to_add_must_be_from_1_to_120(studio, parent, seconds, words):
    message = refused(studio, TrackRequest(extend=str(parent.wav_path), duration=seconds))
    assert message.startswith("seconds must be") and words in message


def test_an_extend_past_the_server_s_longest_track_is_refused(engine, melody_engine, separator, parent, tmp_path):
    small = Studio(engine, output_dir=tmp_path, melody_engine=melody_engine, separator=separator, max_duration=3)
    message = refused(small, TrackRequest(extend=str(parent.wav_path), duration=1.5))
    assert "is 2.0 s long; adding 1.5 s would make 3.5 s, over this server's 3 s. Add at most 1.0 s." in message


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"RIFF\x24\x00\x00\x00WAVEthis is not audio at all", "damaged"),
        (b"", "is empty (0 bytes)"),
        (None, "was not found"),
    ],
)
def test_an_unreadable_file_to_extend_is_refused_clearly(studio, tmp_path, content, words):
    path = tmp_path / "broken.wav"
    if content is not None:
        path.write_bytes(content)
    message = refused(studio, TrackRequest(extend=str(path), prompt="more of the same", duration=1.5))
    assert "'broken.wav'" in message and words in message


def test_a_stereo_upload_at_44_1_khz_keeps_its_channels_and_a_mono_model_continues_it_centred(studio, tmp_path):
    left = pattern(120, 2.0, 44_100, chords=A_MINOR)[0]
    right = pattern(120, 2.0, 44_100, kind="clicks", seed=1)[0]
    upload = tmp_path / "stereo-sketch.wav"
    sf.write(upload, np.stack([left, right], axis=1), 44_100, subtype="FLOAT")
    track = studio.make_track(
        TrackRequest(extend=str(upload), prompt="a drum groove", duration=1.5, seed=2, loudness="off")
    )
    info = sf.info(str(track.wav_path))
    assert (info.samplerate, info.channels, info.frames) == (RATE, 2, round(3.5 * RATE))
    given = resample(np.stack([left, right]), 44_100, RATE)  # both channels, at the model's rate
    kept = round(2.0 * RATE) - FADE
    written = samples(track)
    np.testing.assert_allclose(written[:, :kept], given[:, :kept], rtol=0, atol=WAV_STEP)
    np.testing.assert_array_equal(written[0, round(2.0 * RATE) :], written[1, round(2.0 * RATE) :])
    assert track.recipe.extend["seconds"] == 2.0 and track.recipe.extend["model_continued"] is None


# -- Takes ---------------------------------------------------------------------------------------------------------


def test_each_of_three_takes_is_what_its_seed_gives_alone(workshop, takes):
    every = (takes, *takes.takes)
    assert len(every) == 3
    for i, take in enumerate(every):
        alone = workshop.make_track(TrackRequest(prompt=PROMPT, duration=1, seed=7 + i))
        assert take.recipe.settings.seed == 7 + i and take.recipe.batch_size == 3
        np.testing.assert_array_equal(samples(take), samples(alone))
        np.testing.assert_array_equal(take.generated.codes, alone.generated.codes)


def test_each_take_has_its_own_files_and_every_recipe_lists_them_all(takes):
    every = (takes, *takes.takes)
    listed = [{"seed": 7 + i, "file": take.wav_path.name} for i, take in enumerate(every)]
    assert len({take.wav_path for take in every}) == len({take.recipe_path for take in every}) == 3
    for take in every:
        assert json.loads(take.recipe_path.read_text())["takes"] == listed
    assert takes.downloads[:2] == [takes.wav_path, takes.recipe_path], "this take's files first"
    assert sorted(takes.downloads) == sorted(takes.wav_path.parent.iterdir()), "every file written, once"
    assert "3 takes, seeds 7, 8, 9" in takes.summary()


@pytest.mark.parametrize("variations", [0, 9, 2.5])
def test_variations_must_be_a_whole_number_from_1_to_4(studio, variations):
    message = refused(studio, TrackRequest(prompt=PROMPT, duration=1, variations=variations))
    assert message == f"variations must be a whole number of takes from 1 to 4, got {variations}."


# -- Negative prompt -----------------------------------------------------------------------------------------------


def test_an_empty_negative_prompt_gives_exactly_the_audio_of_none(workshop, plain):
    blank = workshop.make_track(TrackRequest(prompt=PROMPT, duration=1, seed=5, negative_prompt=""))
    np.testing.assert_array_equal(samples(blank), samples(plain))
    np.testing.assert_array_equal(blank.generated.codes, plain.generated.codes)


def test_a_negative_prompt_is_recorded_and_steers_the_audio(workshop, plain):
    steered = workshop.make_track(TrackRequest(prompt=PROMPT, duration=1, seed=5, negative_prompt="vocals, distortion"))
    assert json.loads(steered.recipe_path.read_text())["settings"]["negative_prompt"] == "vocals, distortion"
    assert (steered.generated.codes != plain.generated.codes).any()


def test_a_negative_prompt_without_guidance_gets_a_note_in_the_summary(workshop):
    track = workshop.make_track(
        TrackRequest(prompt=PROMPT, duration=1, seed=5, negative_prompt="vocals", guidance_scale=1)
    )
    assert "The negative prompt did nothing" in track.summary()


# -- Tempo and loops -----------------------------------------------------------------------------------------------


def test_every_track_reports_its_measured_tempo_in_the_recipe_and_summary(parent, extended, takes, plain):
    for track in (parent, extended, takes, *takes.takes, plain):
        tempo = json.loads(track.recipe_path.read_text())["tempo"]
        assert UNCLEAR_TEMPO in tempo["described"] and tempo["measured_bpm"] is None
        assert f"Measured: {tempo['described']}" in track.summary()


@pytest.fixture(scope="module", params=[None, 44_100, 48_000], ids=["32kHz", "44.1kHz", "48kHz"])
def two_bars_at_120(workshop, request) -> Track:
    """A 2-bar loop at 120 BPM, written at the model's rate or the one asked for."""
    return workshop.make_track(
        TrackRequest(prompt=PROMPT, duration=4, seed=4, loop=True, bpm=120, bars=2, sample_rate=request.param)
    )


def test_two_bars_at_120_bpm_are_exactly_four_seconds_at_every_rate(two_bars_at_120):
    rate = two_bars_at_120.recipe.sample_rate
    info = sf.info(str(two_bars_at_120.wav_path))
    assert (info.samplerate, info.frames) == (rate, 4 * rate)
    assert 4 * rate in (128_000, 176_400, 192_000)
    assert two_bars_at_120.recipe.tempo["loop"] == {"bars": 2, "start_seconds": 0.0, "samples": 4 * rate}


def test_a_loop_s_wav_marks_the_whole_file_as_a_loop(two_bars_at_120):
    marker = read_loop_marker(two_bars_at_120.wav_path)
    rate = two_bars_at_120.recipe.sample_rate
    assert marker is not None
    assert (marker.start, marker.end, marker.loop_type, marker.play_count) == (0, 4 * rate - 1, 0, 0)
    assert marker.sample_period_ns == round(1e9 / rate)


def test_a_loop_s_file_name_and_summary_say_its_tempo(two_bars_at_120):
    assert "_seed4_120bpm" in two_bars_at_120.wav_path.name
    assert "a 2-bar loop at exactly 120 BPM" in two_bars_at_120.summary()


def test_a_loop_with_a_preset_and_no_bpm_takes_the_preset_s_tempo(workshop):
    assert workshop.presets.find("drum-and-bass").tags.bpm == 174
    track = workshop.make_track(TrackRequest(prompt="rain", preset="drum-and-bass", duration=2, seed=1, loop=True))
    assert track.recipe.tempo["bpm"] == 174 and track.recipe.tempo["loop"]["bars"] == 1, "the most bars in 2 s"
    assert sf.info(str(track.wav_path)).frames == round(4 * 60 / 174 * RATE) == 44_138
    assert "_174bpm" in track.wav_path.name


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bpm": 0, "loop": True}, "A loop needs a tempo: give bpm (40 to 240)"),
        ({"bpm": 1000}, "bpm must be from 40 to 240 beats per minute, got 1000."),
        ({"bpm": "fast"}, "bpm must be a number of beats per minute from 40 to 240, got 'fast'."),
        ({"bpm": 240, "loop": True, "bars": 3}, "bars must be one of 1, 2, 4, 8, 16, got 3."),
        ({"bpm": 240, "bars": 2}, "bars sets a loop's length: set loop to true as well"),
        ({"loop": True}, "A loop needs a tempo: give bpm (40 to 240), or pick a preset"),
        ({"loop": "yes"}, "loop must be true or false, got 'yes'."),
    ],
)
def test_bad_tempo_and_loop_values_are_refused_naming_the_parameter(studio, values, message):
    assert message in refused(studio, TrackRequest(prompt=PROMPT, duration=1, **values))


def test_a_loop_replayed_from_its_recipe_is_the_same_bit_for_bit(workshop, tmp_path):
    first = workshop.make_track(TrackRequest(prompt=PROMPT, duration=1, seed=21, loop=True, bpm=240, bars=1))
    replay = TrackRequest.from_recipe(Recipe.load(first.recipe_path))
    again = workshop.make_track(replay, destination=tmp_path / "again.wav")
    assert samples(first).shape == (1, RATE), "one bar at 240 BPM is one second"
    np.testing.assert_array_equal(samples(again), samples(first))
    assert again.recipe.tempo == first.recipe.tempo
    assert read_loop_marker(again.wav_path) == read_loop_marker(first.wav_path)
