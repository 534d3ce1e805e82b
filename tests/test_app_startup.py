"""Starting ``python app.py``: a setting the server cannot use stops start-up with a message that says how to fix it."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

START_TIMEOUT_S = 120  # importing Gradio and torch on a busy 2-core machine


def test_a_bad_setting_stops_start_up_naming_the_variable_the_value_and_the_form(tmp_path):
    env = {**os.environ, "MOODTAPE_MAX_BATCH": "abc", "MOODTAPE_OUTPUT_DIR": str(tmp_path / "outputs")}
    started = subprocess.run(
        [sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S
    )
    assert started.returncode == 2, started.stderr
    assert "MOODTAPE_MAX_BATCH" in started.stderr
    assert "'abc'" in started.stderr
    assert "a whole number of requests, 1 or more" in started.stderr
    assert "Traceback" not in started.stderr
    assert not (tmp_path / "outputs").exists(), "nothing was started before the settings were read"
