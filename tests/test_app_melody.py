"""Hums and songs through the real gradio_client: every format, the picture, and clear refusals."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
import soundfile as sf
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from tests.audio_factory import FORMATS, hum, with_silence, write_audio

pytestmark = pytest.mark.slow
NOTES = ("A3", "C#4", "E4", "A4")


@pytest.fixture(scope="module")
def hum_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hums")
    samples = with_silence(hum(NOTES, note_seconds=0.5, rate=44_100), 44_100, 0.3, 0.3)
    return {fmt: write_audio(folder / f"hum_{fmt}", samples, 44_100, fmt, channels=2) for fmt in FORMATS}


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_hum_in_each_format_gives_a_track_and_a_chroma_picture(client, hum_files, fmt):
    audio, downloads, recipe, summary, picture, *_ = client.predict(
        prompt="jazz trio", melody=handle_file(str(hum_files[fmt])), duration=1, seed=5, api_name="/generate"
    )
    assert sf.info(audio).frames == 32_000
    assert recipe["melody"]["file"] == hum_files[fmt].name
    assert recipe["melody"]["seconds_used"] == pytest.approx(2.0, abs=0.4)
    assert picture is not None and picture.endswith((".png", ".webp", ".jpg", ".jpeg"))
    assert "Melody heard" in summary


def test_a_hum_alone_is_a_valid_request(client, hum_files):
    audio, _, recipe, *_ = client.predict(
        melody=handle_file(str(hum_files["wav_16"])), prompt="", duration=1, seed=2, api_name="/generate"
    )
    assert sf.info(audio).frames == 32_000
    assert recipe["settings"]["prompt"] == ""


def test_style_transfer_renders_a_song_through_a_preset(client, hum_files):
    _, _, recipe, *_ = client.predict(
        prompt="",
        preset="jazz-trio",
        melody=handle_file(str(hum_files["mp3"])),
        duration=1,
        seed=2,
        api_name="/generate",
    )
    assert recipe["preset"] == "jazz-trio" and "jazz" in recipe["settings"]["prompt"].lower()
    assert recipe["melody"]["file"].endswith(".mp3")


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("empty.wav", b"", ["empty"]),
        ("notes.wav", b"just some text, not a recording\n" * 40, ["audio"]),
        ("picture.mp3", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, ["audio"]),
    ],
)
def test_bad_melody_files_get_a_clear_message_and_the_server_keeps_serving(
    client, live_server, tmp_path, name, content, words
):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AppError) as info:
        client.predict(prompt="x", melody=handle_file(str(path)), duration=1, api_name="/generate")
    message = str(info.value).lower()
    assert all(word in message for word in words), message
    assert "traceback" not in message
    assert live_server.alive()


def test_silent_and_too_short_hums_are_refused(client, tmp_path):
    import numpy as np

    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(44_100, np.float32), 44_100)
    with pytest.raises(AppError, match="(?i)silent"):
        client.predict(prompt="x", melody=handle_file(str(silent)), duration=1, api_name="/generate")
    short = write_audio(tmp_path / "short", hum(("A4",), note_seconds=0.4, rate=44_100), 44_100, "wav_16")
    with pytest.raises(AppError, match="(?i)short"):
        client.predict(prompt="x", melody=handle_file(str(short)), duration=1, api_name="/generate")


def run_page_event(url: str, config: dict, dependency: int) -> list:
    """Run one of the page's own (private) events as the browser does: join the queue, read the answer's stream."""
    session = uuid.uuid4().hex
    trigger_id = config["dependencies"][dependency]["targets"][0][0]
    join = {"data": [], "fn_index": dependency, "session_hash": session, "trigger_id": trigger_id, "event_data": None}
    httpx.post(f"{url}gradio_api/queue/join", json=join, timeout=30).raise_for_status()
    with httpx.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session}, timeout=60) as stream:
        for line in stream.iter_lines():
            message = json.loads(line[len("data:") :]) if line.startswith("data:") else {}
            if message.get("msg") == "process_completed":
                assert message["success"], message
                return message["output"]["data"]
    raise AssertionError("the event's stream ended without an answer")


def test_the_status_line_follows_the_models_after_each_request_and_on_a_timer(client, live_server, hum_files):
    config = httpx.get(f"{live_server.url}config", timeout=30).json()
    ids = {c["id"]: c for c in config["components"]}
    status = next(i for i, c in ids.items() if c["props"].get("elem_id") == "model-status")
    updates = {i: d for i, d in enumerate(config["dependencies"]) if status in d["outputs"]}
    # It is refreshed when the page loads, on a timer that never stops, and after each of the page's requests.
    assert {d["targets"][0][1] for d in updates.values()} == {"load", "tick", "then"}
    timer = next(ids[d["targets"][0][0]] for d in updates.values() if d["targets"][0][1] == "tick")
    assert timer["props"]["active"] and all(timer["id"] not in d["outputs"] for d in config["dependencies"])
    followed = {u["trigger_after"] for u in updates.values()}
    page_requests = {d["api_name"] for d in config["dependencies"] if d["id"] in followed}
    preview = next(i for i, c in ids.items() if c["props"].get("elem_id") == "stream-player")
    requests = {d["api_name"] for d in config["dependencies"] if preview in d["outputs"]}  # the page's requests
    assert page_requests == requests
    assert {"ui_generate_click", "ui_generate_submit", "ui_extend_click"} <= page_requests

    client.predict(prompt="", melody=handle_file(str(hum_files["wav_16"])), duration=1, api_name="/generate")
    tick = next(i for i, d in updates.items() if d["targets"][0][1] == "tick")
    (line,) = run_page_event(live_server.url, config, tick)
    assert "melody ready" in line, line
