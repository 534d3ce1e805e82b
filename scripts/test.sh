#!/usr/bin/env bash
# Install everything the tests need on a fresh machine, lint, and run the whole suite offline.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: ffmpeg decodes browser recordings (WebM/Opus, M4A) and MP3, and Gradio streams audio with it;
# Chromium runs the browser tests (Playwright drives the system build; it cannot download its own here).
need_apt=()
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
command -v chromium >/dev/null || need_apt+=(chromium)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Python packages: the CPU build of torch first, so nothing pulls the multi-gigabyte CUDA build.
python -m pip install -q --disable-pip-version-check torch==2.13.0 -r requirements-dev.txt

# numba compiles librosa's beat tracker on first use (about 20 s) and caches it beside librosa: pay that once
# here, not in whichever test server happens to measure a tempo first.
python -c "from generation.audio import tempo; tempo.warm_up()"

python -m ruff check .
HF_HUB_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False python -m pytest -q "$@"

# The live-server API suites once more, with the app generating on a local Ray Serve cluster's two replicas
# (MOODTAPE_BACKEND=ray): the page and the API must not notice where the model runs. Loopback only.
if [ "$#" -eq 0 ]; then
  MOODTAPE_TEST_BACKEND=ray RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_AUTH_MODE=disabled HF_HUB_OFFLINE=1 \
    GRADIO_ANALYTICS_ENABLED=False python -m pytest -q \
    tests/test_app_api.py tests/test_app_streaming.py tests/test_app_iterate.py tests/test_app_melody.py
fi
