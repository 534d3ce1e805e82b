"""Working on an idea through the API, with the real gradio_client against a live server: several takes, a
negative prompt, a loop at an exact tempo, and /extend of a previous result; and what the progress bar says
while a song's melody is separated.

The tiny models make noise with no beat: no take is stretched, but a loop is still cut to the exact length of its
bars. Bad values for these parameters are in test_bad_input.py, with the rest of the bad input; the page's takes,
extend and loop preview are in test_browser.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
from gradio_client import handle_file

from app import API_NAMES, EXTEND_NAMES
from generation.studio import TrackRequest
from runner import Finished, TrackRunner
from tests.audio_factory import hum, write_audio

pytestmark = pytest.mark.slow  # a live server, except the runner's progress at the end

RATE = 32_000  # the tiny models' rate, MusicGen's own


def wav_files(downloads: list[str]) -> list[str]:
    return [Path(p).name for p in downloads if p.endswith(".wav")]


@pytest.fixture(scope="module")
def first(client) -> tuple:
    """A 2 s track from a preset: what /extend continues."""
    return client.predict(prompt="rainy night", preset="lofi-hip-hop", duration=2, seed=11, api_name="/generate")


def test_the_endpoints_take_the_new_parameters_by_name(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    generate, extend = endpoints["/generate"]["parameters"], endpoints["/extend"]["parameters"]
    # New parameters join at the end, so positional clients of earlier releases keep working
    assert [p["parameter_name"] for p in generate][-8:] == [
        "negative_prompt",
        "variations",
        "bpm",
        "loop",
        "bars",
        "model",
        "key",
        "melody_cleanup",
    ]
    assert [p["parameter_name"] for p in endpoints["/generate_stream"]["parameters"]] == list(API_NAMES)
    assert [p["parameter_name"] for p in extend] == list(EXTEND_NAMES)
    required = [p["parameter_name"] for p in extend if not p["parameter_has_default"]]
    assert required == ["audio"], "only the track is required: an empty prompt reuses its recipe"
    assert extend[0]["python_type"]["type"] == "filepath"


def test_two_takes_give_every_take_s_files_and_their_seeds(client):
    audio, downloads, recipe, summary, *_ = client.predict(
        prompt="dusty vinyl jazz", duration=1, seed=40, variations=2, api_name="/generate"
    )
    takes = recipe["takes"]
    assert [take["seed"] for take in takes] == [40, 41]
    assert wav_files(downloads) == [take["file"] for take in takes], "take 1's files first, then take 2's"
    assert sum(p.endswith(".recipe.json") for p in downloads) == 2
    assert Path(audio).name == takes[0]["file"] and recipe["settings"]["seed"] == 40, "the audio is take 1"
    for wav in (p for p in downloads if p.endswith(".wav")):
        assert sf.info(wav).frames == RATE
    assert "2 takes, seeds 40, 41" in summary


def test_takes_through_generate_stream_end_with_every_take(client):
    job = client.submit(prompt="dusty vinyl jazz", duration=1, seed=40, variations=2, api_name="/generate_stream")
    _, audio, downloads, recipe, summary, *_ = job.result()
    assert [take["seed"] for take in recipe["takes"]] == [40, 41]
    assert len(wav_files(downloads)) == 2
    assert "none of them plays while it is made" in summary


def test_a_negative_prompt_reaches_the_recipe(client):
    _, _, recipe, *_ = client.predict(
        prompt="dusty vinyl jazz", negative_prompt="vocals, distortion", duration=1, seed=5, api_name="/generate"
    )
    assert recipe["settings"]["negative_prompt"] == "vocals, distortion"


def test_two_bars_at_120_bpm_are_exactly_four_seconds(client):
    audio, downloads, recipe, summary, *_ = client.predict(
        prompt="dusty vinyl jazz", duration=4, seed=4, loop=True, bpm=120, bars=2, api_name="/generate"
    )
    info = sf.info(audio)
    assert (info.samplerate, info.frames) == (RATE, 128_000)
    assert recipe["tempo"]["bpm"] == 120 and recipe["tempo"]["loop"]["bars"] == 2
    assert "a 2-bar loop at exactly 120 BPM" in summary
    assert "_120bpm" in Path(audio).name


def test_extending_a_previous_result_with_no_prompt_adds_exactly_the_seconds(client, first):
    audio, downloads, recipe, summary, *_ = client.predict(
        audio=handle_file(first[0]), seconds=1.5, prompt="", seed=3, api_name="/extend"
    )
    made = first[2]
    assert sf.info(audio).frames == sf.info(first[0]).frames + round(1.5 * RATE) == 112_000
    assert recipe["extend"]["file"] == Path(first[0]).name and recipe["extend"]["seconds_added"] == 1.5
    assert (recipe["mood"], recipe["preset"]) == (made["mood"], made["preset"]) == ("rainy night", "lofi-hip-hop")
    assert recipe["settings"]["prompt"] == made["settings"]["prompt"], "the file's recipe says how it goes on"
    assert recipe["settings"]["seed"] == 3 and recipe["audio_seconds"] == 3.5
    assert wav_files(downloads) == [Path(audio).name]
    assert "Extended" in summary


def test_an_extend_with_a_prompt_follows_the_new_prompt_and_its_settings(client, first):
    audio, _, recipe, *_ = client.predict(
        audio=handle_file(first[0]),
        seconds=1,
        prompt="the same groove, building up",
        negative_prompt="vocals",
        seed=4,
        formats="wav,flac",
        api_name="/extend",
    )
    assert sf.info(audio).frames == sf.info(first[0]).frames + RATE
    assert recipe["mood"] == "the same groove, building up" and recipe["preset"] is None
    assert recipe["settings"]["negative_prompt"] == "vocals" and "flac" in recipe["export"]["formats"]


# -- The runner: what the progress bar says before decoding starts ---------------------------------------------------


def test_the_progress_bar_says_when_the_melody_is_being_separated(studio, tmp_path):
    song = write_audio(
        tmp_path / "song", hum(("A3", "C#4", "E4", "A4"), note_seconds=0.5, rate=44_100), 44_100, "wav_16"
    )
    said: list[str | None] = []

    def progress(value, desc=None, **kwargs) -> None:
        said.append(desc)

    request = TrackRequest(prompt="jazz trio", melody=str(song), melody_separation=True, duration=1, seed=1)
    *_, finished = TrackRunner(studio).run(request, progress)
    assert isinstance(finished, Finished) and finished.results.recipe["melody"]["separated"]
    assert "Separating the melody…" in said, said
