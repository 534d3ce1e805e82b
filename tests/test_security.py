"""What the live server lets a client read: its own results and examples, nothing else."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from gradio_client.exceptions import AppError

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.mark.parametrize("path", ["/etc/passwd", str(ROOT / "app.py"), str(ROOT / "README.md"), "../../etc/hosts"])
def test_files_outside_the_output_folder_cannot_be_read(live_server, path):
    assert status_of(f"{live_server.url}gradio_api/file={path}") in (403, 404)


def test_results_in_the_output_folder_can_be_downloaded(client, live_server):
    client.predict(prompt="open door", duration=1, seed=4242, api_name="/generate")
    made = next(live_server.output_dir.rglob("moodtape_open-door_seed4242.wav"))
    assert status_of(f"{live_server.url}gradio_api/file={made}") == 200


def test_the_server_listens_on_localhost_only_by_default(live_server):
    import psutil

    listening = {c.laddr.ip for c in psutil.Process(live_server.process.pid).net_connections() if c.status == "LISTEN"}
    assert listening and listening <= {"127.0.0.1", "::1"}


def test_no_endpoint_lets_a_client_name_weights_a_revision_or_remote_code(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    names = {p["parameter_name"] for e in endpoints.values() for p in e["parameters"]}
    assert not names & {"model_id", "revision", "trust_remote_code"}


def test_a_client_picks_only_among_the_models_the_operator_lists(client):
    with pytest.raises(AppError, match="model must be one of 'text', 'melody'.*Paths, hub ids and URLs cannot"):
        client.predict(prompt="piano", duration=1, model="../../etc/passwd", api_name="/generate")
