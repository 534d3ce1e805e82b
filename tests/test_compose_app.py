"""Compose and keys through the API, with the real gradio_client against a live server: a song in three sections
exact to the sample with a marker per section, a key on /generate, and bad sections refused while the server keeps
serving. The page's Compose area is in test_browser_editor.py.
"""

from __future__ import annotations

import json

import pytest
import soundfile as sf
from gradio_client.exceptions import AppError

from generation.audio.cues import read_cues
from generation.endpoints import COMPOSE

pytestmark = pytest.mark.slow  # a live server

RATE = 32_000  # the tiny models' rate, MusicGen's own


def song(*sections: tuple[str, float]) -> str:
    return json.dumps([{"prompt": prompt, "seconds": seconds} for prompt, seconds in sections])


def test_compose_takes_its_parameters_by_name(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    parameters = endpoints["/compose"]["parameters"]
    assert [p["parameter_name"] for p in parameters] == list(COMPOSE.names)
    assert [p["parameter_name"] for p in parameters if not p["parameter_has_default"]] == ["sections"]
    assert "key" in [p["parameter_name"] for p in endpoints["/generate"]["parameters"]]
    assert "key" in [p["parameter_name"] for p in endpoints["/extend"]["parameters"]]


def test_three_sections_make_one_song_with_a_marker_at_each(client):
    sections = song(("soft piano intro", 1.2), ("drums come in", 1.5), ("quiet outro", 1.1))
    audio, downloads, recipe, summary, *_ = client.predict(
        sections=sections, seed=8, loudness=0, key="C minor", api_name="/compose"
    )
    assert sf.info(audio).frames == round(3.8 * RATE)
    assert [(cue.frame, cue.label) for cue in read_cues(audio)] == [
        (0, "1: soft piano intro"),
        (round(1.2 * RATE), "2: drums come in"),
        (round(2.7 * RATE), "3: quiet outro"),
    ]
    assert [(s["start"], s["end"], s["seed"]) for s in recipe["sections"]] == [
        (0.0, 1.2, 8),
        (1.2, 2.7, 9),
        (2.7, 3.8, 10),
    ]
    assert recipe["sections"][0]["prompt"] == "soft piano intro, in C minor"
    assert "Sections: 1. soft piano intro 0.0-1.2 s; 2. drums come in 1.2-2.7 s; 3. quiet outro 2.7-3.8 s" in summary
    assert recipe["key"]["asked"] == "C minor"


def test_a_key_on_generate_is_said_and_recorded(client):
    _, _, recipe, summary, *_ = client.predict(
        prompt="calm harp", duration=1, seed=2, key="Bb minor", api_name="/generate"
    )
    assert recipe["settings"]["prompt"] == "calm harp, in Bb minor"
    assert recipe["key"]["asked"] == "Bb minor" and recipe["key"]["described"] in summary


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"sections": "[]"}, "empty list"),
        ({"sections": song(*[("x", 1.0)] * 13)}, "holds 13 sections"),
        ({"sections": "intro then verse"}, "not valid JSON"),
        ({"sections": '[{"seconds": 2}]'}, "section 1 has no prompt"),
        ({"sections": '[{"prompt": "verse", "bars": 4}]'}, "bars need a tempo"),
        ({"sections": song(("a long verse", 45.0))}, "a section lasts 1 to 30 s"),
        ({"sections": song(("x", 2.0)), "key": "H major"}, "'H major' is not a key"),
    ],
)
def test_bad_sections_and_keys_are_refused_by_name(client, values, words):
    with pytest.raises(AppError) as info:
        client.predict(**values, api_name="/compose")
    assert words in str(info.value)


def test_a_bad_key_on_generate_is_refused_and_the_server_keeps_serving(client):
    with pytest.raises(AppError, match="'H major' is not a key"):
        client.predict(prompt="x", duration=1, key="H major", api_name="/generate")
    audio, *_ = client.predict(sections=song(("still here", 1.0)), seed=1, api_name="/compose")
    assert sf.info(audio).frames == RATE
