"""Shared fixtures: tiny real checkpoints on disk and a live Moodtape server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from serving.processes import answers_http, free_port, wait_until_up
from tests.tiny_demucs import save_tiny_demucs
from tests.tiny_melody_model import build_melody_model
from tests.tiny_models import build_checkpoint, build_text_model

ROOT = Path(__file__).resolve().parent.parent
SERVER_START_TIMEOUT_S = 120

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing in the suite may reach the network
# Unset, fast mode is the CPU default; the suite's bit-for-bit checks against transformers need the exact path, so
# engines here are exact unless a test asks for fast mode by name (tests/test_fast_mode.py covers the default).
os.environ.setdefault("MOODTAPE_FAST_CPU", "0")
# Tests never write into the real per-user library folder: the library is off unless a test gives it a folder
# (tests/test_library.py, tests/test_library_live.py).
os.environ.setdefault("MOODTAPE_LIBRARY_DIR", "off")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random MusicGen checkpoint saved with save_pretrained."""
    return build_text_model(tmp_path_factory.mktemp("tiny-musicgen"))


@pytest.fixture(scope="session")
def tiny_melody_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random MusicGen-Melody checkpoint, with its chroma settings."""
    return build_melody_model(tmp_path_factory.mktemp("tiny-musicgen-melody"))


@pytest.fixture(scope="session")
def tiny_stereo_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random stereo MusicGen (facebook/musicgen-stereo-small's configs: 8 codebooks, 2 channels)."""
    return build_checkpoint("musicgen-stereo-small", tmp_path_factory.mktemp("tiny-musicgen-stereo"))


@pytest.fixture(scope="session")
def tiny_stereo_melody_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random stereo MusicGen-Melody (facebook/musicgen-stereo-melody's configs)."""
    return build_checkpoint("musicgen-stereo-melody", tmp_path_factory.mktemp("tiny-musicgen-stereo-melody"))


@pytest.fixture(scope="session")
def tiny_demucs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random HTDemucs saved the way the hub holds htdemucs (a bag .yaml and a .safetensors)."""
    return save_tiny_demucs(tmp_path_factory.mktemp("tiny-demucs"))


@pytest.fixture(scope="session")
def engine(tiny_model_dir: Path):
    from generation.model.engine import MusicGenEngine
    from generation.model.spec import EngineSpec

    engine = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir)))
    engine.load()
    return engine


@pytest.fixture(scope="module")
def short_window_engine(tiny_model_dir: Path):
    """Windows of 2 s continued 1 s at a time: the long-form path at test scale (the app uses 30 s and 18 s).

    An extend then continues at most 1.33 s of its audio (two thirds of a window, as 20 s of 30).
    """
    from generation.model.engine import MusicGenEngine
    from generation.model.spec import EngineSpec

    engine = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), window_seconds=2.0, extend_stride=1.0))
    engine.load()
    return engine


@pytest.fixture(scope="session")
def melody_engine(tiny_melody_model_dir: Path):
    from generation.model.engine import MusicGenEngine
    from generation.model.spec import EngineSpec

    engine = MusicGenEngine(EngineSpec(model_id=str(tiny_melody_model_dir), family="melody"))
    engine.load()
    return engine


@pytest.fixture(scope="session")
def stereo_engine(tiny_stereo_model_dir: Path):
    from generation.model.engine import MusicGenEngine
    from generation.model.spec import EngineSpec

    engine = MusicGenEngine(EngineSpec(model_id=str(tiny_stereo_model_dir)))
    engine.load()
    return engine


@pytest.fixture(scope="session")
def separator():
    """Stem separation with a tiny random HTDemucs."""
    from generation.audio.stems import StemSeparator
    from tests.tiny_demucs import build_tiny_demucs

    return StemSeparator.from_model(build_tiny_demucs(), name="tiny-htdemucs")


@pytest.fixture
def studio(engine, melody_engine, separator, tmp_path: Path):
    from generation.studio import Studio

    return Studio(engine, output_dir=tmp_path / "outputs", melody_engine=melody_engine, separator=separator)


class LiveServer:
    """``python app.py`` (or ``python <args>``) in a subprocess, configured only through environment variables.

    ``log_mode`` "a" keeps a restarted server's log after the last one's.
    """

    def __init__(self, env: dict[str, str], log_path: Path, args: tuple[str, ...] = ("app.py",), log_mode: str = "w"):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.output_dir = Path(env["MOODTAPE_OUTPUT_DIR"])
        self.log_path = log_path
        full_env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "GRADIO_SERVER_PORT": str(self.port),
            "GRADIO_ANALYTICS_ENABLED": "False",
            **env,
        }
        self._log = open(log_path, log_mode)  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=full_env, stdout=self._log, stderr=subprocess.STDOUT
        )
        wait_until_up(
            self.process,
            answers_http(self.url + "config"),
            what="the app",
            timeout_s=SERVER_START_TIMEOUT_S,
            log_path=log_path,
            on_timeout=self.stop,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture(scope="session")
def tiny_models_env(tiny_model_dir: Path, tiny_melody_model_dir: Path, tiny_demucs_dir: Path) -> dict[str, str]:
    """The environment that points a server at the tiny checkpoints."""
    return {
        "MUSICGEN_MODEL": str(tiny_model_dir),
        "MUSICGEN_MELODY_MODEL": str(tiny_melody_model_dir),
        "MOODTAPE_STEMS_MODEL": str(tiny_demucs_dir),
    }


@pytest.fixture(scope="session")
def live_server(tiny_models_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The real app on a free localhost port, serving the tiny checkpoints.

    With ``MOODTAPE_TEST_BACKEND=ray`` it generates on two replicas of a local Ray Serve cluster instead.
    """
    folder = tmp_path_factory.mktemp("live")
    env = {**tiny_models_env, "MOODTAPE_OUTPUT_DIR": str(folder / "outputs")}
    with ExitStack() as stack:
        if os.environ.get("MOODTAPE_TEST_BACKEND") == "ray":
            from tests.serving_cluster import cluster_with_replicas

            cluster = stack.enter_context(cluster_with_replicas(folder))
            env |= {**cluster.env, "MOODTAPE_BACKEND": "ray"}
        server = LiveServer(env, folder / "server.log")
        yield server
        server.stop()


@pytest.fixture(scope="session")
def client(live_server: LiveServer):
    from gradio_client import Client

    return Client(live_server.url, verbose=False)
