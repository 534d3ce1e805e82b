"""/replace through the real gradio_client against a live server: a section replaced in the 24-bit WAV that
/generate wrote, every other sample kept; its candidates as takes; bad sections refused while the server serves on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from generation.editing.replace import CROSSFADE_SECONDS
from generation.endpoints import REPLACE

pytestmark = pytest.mark.slow  # a live server

RATE = 32_000  # the tiny models' rate, MusicGen's own
EDGE = round(CROSSFADE_SECONDS * RATE)


def pcm(path: str | Path) -> np.ndarray:
    audio, _ = sf.read(str(path), dtype="int32", always_2d=True)
    return audio.T


def outside(audio: np.ndarray, start: float, end: float) -> np.ndarray:
    a, b = round(start * RATE), round(end * RATE)
    return np.concatenate([audio[:, : a - EDGE], audio[:, b + EDGE :]], axis=-1)


@pytest.fixture(scope="module")
def original(client) -> tuple:
    """A 4 s track at its level as generated, written as a 24-bit WAV with its recipe."""
    return client.predict(prompt="slow synth pads", duration=4, seed=21, loudness=0, api_name="/generate")


def test_replace_takes_the_table_s_parameters_and_needs_the_file_and_the_section(client):
    endpoint = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/replace"]
    names = [p["parameter_name"] for p in endpoint["parameters"]]
    assert names == list(REPLACE.names)
    assert [p["parameter_name"] for p in endpoint["parameters"] if not p["parameter_has_default"]] == [
        "audio",
        "start",
        "end",
    ]


def test_a_replace_keeps_the_written_wav_bit_for_bit_outside_the_section(client, original):
    audio, downloads, recipe, summary, *_ = client.predict(
        audio=handle_file(original[0]), start=1.0, end=2.5, seed=5, loudness=0, api_name="/replace"
    )
    before, after = pcm(original[0]), pcm(audio)
    assert after.shape == before.shape
    assert np.array_equal(outside(after, 1.0, 2.5), outside(before, 1.0, 2.5))
    assert not np.array_equal(after[:, RATE : 2 * RATE], before[:, RATE : 2 * RATE])
    # Two candidates by default, both downloadable; the recipe names the file, the section and every score
    assert [take["seed"] for take in recipe["takes"]] == [recipe["replace"]["kept_seed"], *[
        c["seed"] for c in recipe["replace"]["candidates"] if c["seed"] != recipe["replace"]["kept_seed"]
    ]]
    assert len([d for d in downloads if d.endswith(".wav")]) == 2
    assert recipe["replace"]["file"] == Path(original[0]).name
    assert (recipe["replace"]["start"], recipe["replace"]["end"]) == (1.0, 2.5)
    assert recipe["settings"]["prompt"] == original[2]["settings"]["prompt"]  # no prompt: the file's recipe's
    assert "Replaced 1.00 s to 2.50 s" in summary


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"start": 2.0, "end": 1.0}, "must come after start"),
        ({"start": 1.0, "end": 6.0}, "at most the file's length"),
        ({"start": 1.0, "end": 2.0, "candidates": 0}, "candidates must be a whole number from 1 to 4"),
        ({"start": 1.0, "end": 2.0, "candidates": 9}, "candidates must be a whole number from 1 to 4"),
    ],
)
def test_a_bad_section_is_refused_clearly(client, original, values, words):
    with pytest.raises(AppError, match=words):
        client.predict(audio=handle_file(original[0]), **values, api_name="/replace")


def test_a_section_over_30_seconds_is_refused_and_the_server_serves_on(client, tmp_path):
    long = tmp_path / "long.wav"
    sf.write(long, np.random.default_rng(0).normal(0, 0.1, 35 * RATE).astype(np.float32), RATE, subtype="PCM_24")
    with pytest.raises(AppError, match=r"replace at most 30 s"):
        client.predict(audio=handle_file(str(long)), start=1.0, end=33.0, prompt="x", api_name="/replace")
    audio, *_ = client.predict(
        audio=handle_file(str(long)), start=30.0, end=31.0, prompt="noise", candidates=1, api_name="/replace"
    )
    assert pcm(audio).shape == (1, 35 * RATE)
