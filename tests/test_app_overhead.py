"""What a request adds to its engine's work: its stages are logged, and Gradio's queue does not spin meanwhile."""

from __future__ import annotations

import pytest

from generation.timing import read_line
from runner import PROGRESS_POLL_S, QUEUE_POLL_S, quiet_queue
from tests.conftest import LiveServer

TRACK_STAGES = {"plan", "load", "generate", "finish", "describe", "write", "pictures"}


def test_a_made_track_logs_each_stage_of_its_request_once(studio, caplog):
    from generation.studio import TrackRequest

    with caplog.at_level("INFO", logger="moodtape.timing"):
        track = studio.make_track(TrackRequest(prompt="calm strings", duration=1, seed=3))
    lines = [record.getMessage() for record in caplog.records if record.name == "moodtape.timing"]
    assert len(lines) == 1
    assert lines[0].startswith(f"track {track.wav_path.parent.name} ")
    stages = read_line(lines[0])
    assert set(stages) >= TRACK_STAGES
    assert all(seconds >= 0 for seconds in stages.values())
    assert stages["generate"] > 0


def test_a_replace_logs_each_stage_of_its_request_once(studio, caplog):
    from generation.editing.replace import ReplaceRequest
    from generation.studio import TrackRequest

    parent = studio.make_track(TrackRequest(prompt="warm pads", duration=3, seed=4, loudness="off"))
    with caplog.at_level("INFO", logger="moodtape.timing"):
        track = studio.replace_section(ReplaceRequest(audio=str(parent.wav_path), start=1, end=2, seed=5))
    lines = [record.getMessage() for record in caplog.records if record.name == "moodtape.timing"]
    assert len(lines) == 1
    assert lines[0].startswith(f"replace {track.wav_path.parent.name} ")
    stages = read_line(lines[0])
    assert set(stages) >= {"plan", "load", "generate", "splice", "finish", "describe", "write", "pictures"}
    assert all(seconds >= 0 for seconds in stages.values())
    assert stages["generate"] > 0


@pytest.mark.slow
def test_an_api_request_logs_the_track_and_the_handler_in_the_servers_log(client, live_server: LiveServer) -> None:
    audio, *_ = client.predict(prompt="logged strings", duration=1, seed=11, api_name="/generate")
    logged = [line for line in live_server.log_path.read_text().splitlines() if "moodtape.timing" in line]
    track = [read_line(line) for line in logged if " track " in line]
    request = [read_line(line) for line in logged if " request " in line]
    assert track and set(track[-1]) >= TRACK_STAGES
    assert request and set(request[-1]) >= {"track", "keep", "results", "handler"}
    assert request[-1]["handler"] >= request[-1]["track"]


def test_the_apps_queue_looks_for_jobs_and_sends_progress_no_more_often_than_the_runner_needs(studio):
    from app import build_app

    demo = build_app(studio).queue()
    quiet_queue(demo)
    assert demo._queue.sleep_when_free == QUEUE_POLL_S  # Gradio's own is 1 ms: it spins while a track is made
    assert demo._queue.progress_update_sleep_when_free == PROGRESS_POLL_S
