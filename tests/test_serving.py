"""Generation on a Ray Serve cluster: replicas serve, stream, cancel, survive a death, say "busy", and the page works.

One local cluster for the whole module, on 127.0.0.1 only, with the tiny checkpoints. Two Serve applications
run on it: ``moodtape`` (two replicas, as ``python -m serving --replicas 2`` deploys) and ``moodtape-solo``
(one replica with a short waiting line, so batching and overflow are certain). Every replica runs one torch
thread, so three replicas share this machine's two cores without fighting over them.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from serving.cluster import LOOPBACK_ENV

os.environ.update(LOOPBACK_ENV)  # before anything imports Ray: it reads them at import

from generation.config import ServerConfig  # noqa: E402
from generation.errors import (  # noqa: E402
    BUSY_MESSAGE,
    GenerationCancelled,
    ModelLoadError,
    ServerBusy,
    WorkerLost,
)
from generation.model.engine import MusicGenEngine  # noqa: E402
from generation.model.remote import DEPLOYMENT, RETRY_NOTE, SERVE_APP, RemoteEngine  # noqa: E402
from generation.model.spec import EngineSpec  # noqa: E402
from generation.settings import GenerationSettings  # noqa: E402
from tests.conftest import LiveServer  # noqa: E402
from tests.serving_cluster import cluster_with_replicas, replica_settings  # noqa: E402
from tests.test_app_api import _is_generating  # noqa: E402

pytestmark = pytest.mark.slow

SOLO_APP = "moodtape-solo"
SOLO_ONGOING, SOLO_QUEUED = 3, 2  # the solo replica takes 3 requests at once; 2 more wait; the rest are refused
NEW_REPLICA_TIMEOUT_S = 90
ROUNDS = 5  # rounds of six requests sent together, at most, until both replicas have served one


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """The cluster, with two replicas deployed by docs/deploying.md's own command and one more deployed here."""
    from serving.deploy import deploy

    with cluster_with_replicas(tmp_path_factory.mktemp("ray")) as local:
        local.join()
        solo = {**replica_settings(), "max_ongoing_requests": SOLO_ONGOING, "max_queued_requests": SOLO_QUEUED}
        deploy(solo, replicas=1, name=SOLO_APP)
        yield local


def remote(model_dir: Path, app: str = SERVE_APP) -> RemoteEngine:
    engine = RemoteEngine(EngineSpec(model_id=str(model_dir)), config=ServerConfig.from_env(), app=app)
    engine.load()
    return engine


def settings(prompt: str = "warm tape loop", duration: float = 2.0, seed: int = 5) -> GenerationSettings:
    return GenerationSettings(prompt=prompt, duration=duration, seed=seed)


def concurrently(calls: dict[str, object]) -> dict[str, object]:
    """Run each call on its own thread, started together; each key gets its result or the error it raised."""
    outcomes: dict[str, object] = {}
    barrier = threading.Barrier(len(calls))

    def run(key: str, call) -> None:
        barrier.wait()
        try:
            outcomes[key] = call()
        except Exception as e:
            outcomes[key] = e

    threads = [threading.Thread(target=run, args=item) for item in calls.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def replica_names(app: str = SERVE_APP) -> set[str]:
    import ray

    prefix = f"SERVE_REPLICA::{app}#{DEPLOYMENT}#"
    return {a["name"] for a in ray.util.list_named_actors(all_namespaces=True) if a["name"].startswith(prefix)}


def test_two_replicas_both_serve_and_give_the_same_audio_for_the_same_seed(cluster, tiny_model_dir):
    engine = remote(tiny_model_dir)
    made: list = []
    for _ in range(ROUNDS):  # Serve's router may send one round all to one replica; it spreads them over rounds
        made += concurrently({str(i): lambda: engine.generate(settings(duration=4.0)) for i in range(6)}).values()
        if len({m.worker for m in made}) == 2:
            break
    workers = {m.worker for m in made}
    assert len(workers) == 2 and all(w.startswith(f"SERVE_REPLICA::{SERVE_APP}#") for w in workers)
    for one in made:
        np.testing.assert_array_equal(one.audio, made[0].audio)  # bit for bit, whichever replica made it


def test_the_same_seed_gives_the_same_audio_in_process_and_on_the_cluster(cluster, tiny_model_dir):
    import torch

    from generation.model.model_thread import on_model_thread

    on_cluster = remote(tiny_model_dir).generate(settings(seed=42))
    # As the replicas run: the same code on the same CPU with the same threads. OpenMP's thread count belongs to
    # the thread that sets it, so it is set on the model thread, where the engine computes.
    threads = on_model_thread(torch.get_num_threads)
    on_model_thread(torch.set_num_threads, 1)
    try:
        here = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir))).generate(settings(seed=42))
    finally:
        on_model_thread(torch.set_num_threads, threads)
    assert here.worker is None and on_cluster.worker is not None
    np.testing.assert_array_equal(on_cluster.codes, here.codes)
    np.testing.assert_array_equal(on_cluster.audio, here.audio)


def test_streamed_pieces_arrive_while_the_track_is_made_and_join_to_the_whole(cluster, tiny_model_dir):
    pieces: list[np.ndarray] = []
    steps = {"done": 0, "at_first_piece": None}

    def on_progress(done: int, total: int) -> None:
        steps["done"], steps["total"] = done, total

    def on_audio(piece: np.ndarray) -> None:
        if steps["at_first_piece"] is None:
            steps["at_first_piece"] = steps["done"]
        pieces.append(piece)

    made = remote(tiny_model_dir).generate(settings(duration=4.0), on_progress=on_progress, on_audio=on_audio)
    assert len(pieces) > 2
    assert steps["at_first_piece"] < steps["total"] / 2, "the first piece came long before the end"
    assert steps["done"] == steps["total"]
    np.testing.assert_allclose(np.concatenate(pieces, axis=-1), made.audio, atol=1e-5)


def test_a_model_the_replicas_cannot_load_gets_the_engine_s_own_message(cluster, tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError) as raised:
        remote(missing)
    assert str(missing) in str(raised.value) and "Traceback" not in str(raised.value)


def test_cancel_reaches_the_replica_and_frees_it_for_the_next_request(cluster, tiny_model_dir):
    engine = remote(tiny_model_dir, SOLO_APP)
    cancel = threading.Event()
    seen: list[tuple[float, int, int]] = []

    def on_progress(done: int, total: int) -> None:
        seen.append((time.monotonic(), done, total))
        if done >= 100:
            cancel.set()

    with pytest.raises(GenerationCancelled):
        engine.generate(settings(duration=30.0), on_progress=on_progress, cancel=cancel)
    (t0, d0, _), (t1, d1, total) = seen[0], seen[-1]
    left_s = (total - d1) * (t1 - t0) / max(1, d1 - d0)  # what the cancelled track would still have taken
    started = time.monotonic()
    engine.generate(settings(duration=1.0))
    waited = time.monotonic() - started
    assert waited < left_s / 2, f"the next request waited {waited:.1f} s; the cancelled one had {left_s:.1f} s left"


def test_cancel_mid_stream_drops_that_row_while_its_batch_mate_finishes(cluster, tiny_model_dir):
    engine = remote(tiny_model_dir, SOLO_APP)
    cancel = threading.Event()
    pieces: list[np.ndarray] = []

    def on_audio(piece: np.ndarray) -> None:
        pieces.append(piece)
        cancel.set()  # at the first piece: mid-stream

    def cancelled():
        time.sleep(0.3)  # behind the first request, so this and its mate wait together on the engine's queue
        return engine.generate(settings("row to drop", 4.0, 1), on_audio=on_audio, cancel=cancel)

    def mate():
        time.sleep(0.3)
        return engine.generate(settings("batch-mate", 4.0, 2), on_audio=lambda piece: None)

    def first():  # keeps the replica busy while the other two arrive: they then go as one batch
        return engine.generate(settings("first", 8.0, 3))

    outcomes = concurrently({"first": first, "cancelled": cancelled, "mate": mate})
    assert isinstance(outcomes["cancelled"], GenerationCancelled), outcomes["cancelled"]
    assert len(pieces) >= 1
    finished = outcomes["mate"]
    assert finished.batch_size == 2, "the two went as one batch"
    alone = engine.generate(settings("batch-mate", 4.0, 2))
    np.testing.assert_array_equal(finished.audio, alone.audio)


def test_a_full_waiting_line_gets_the_busy_message(cluster, tiny_model_dir):
    engine = remote(tiny_model_dir, SOLO_APP)
    count = SOLO_ONGOING + SOLO_QUEUED + 4
    outcomes = concurrently({str(i): lambda i=i: engine.generate(settings(seed=i, duration=3.0)) for i in range(count)})
    refused = [o for o in outcomes.values() if isinstance(o, Exception)]
    made = [o for o in outcomes.values() if not isinstance(o, Exception)]
    assert len(refused) >= count - SOLO_ONGOING - SOLO_QUEUED
    assert all(isinstance(e, ServerBusy) and str(e) == BUSY_MESSAGE for e in refused), refused
    # Requests still being handed to the replica count as waiting, so at least the line's worth is served
    assert len(made) >= SOLO_QUEUED and all(m.audio.shape == (1, 3 * 32_000) for m in made)


def test_killing_a_replica_mid_request_loses_nothing_and_a_new_replica_comes_up(cluster, tiny_model_dir):
    import ray
    from ray import serve

    engine = remote(tiny_model_dir)
    before = replica_names()
    assert len(before) == 2
    started = {key: threading.Event() for key in ("a", "b", "c", "d", "stream-a", "stream-b")}
    streamed = {key: threading.Event() for key in ("stream-a", "stream-b")}

    def plain(key: str):
        return lambda: engine.generate(settings(key, 20.0, 7), on_progress=lambda d, t: started[key].set())

    def streaming(key: str):
        def on_audio(piece):
            streamed[key].set()

        return lambda: engine.generate(
            settings(key, 20.0, 8), on_progress=lambda d, t: started[key].set(), on_audio=on_audio
        )

    def killer():
        for event in [*started.values(), *streamed.values()]:
            assert event.wait(60), "every request was under way before the kill"
        # the replica holding the most of them (the router may have sent them all to one)
        busy = {
            name: ray.get(ray.get_actor(name, namespace="serve").get_num_ongoing_requests.remote()) for name in before
        }
        victim = max(busy, key=busy.get)
        assert busy[victim] > 0, busy
        ray.kill(ray.get_actor(victim, namespace="serve"), no_restart=True)
        return victim

    calls = {key: plain(key) for key in "abcd"} | {key: streaming(key) for key in streamed} | {"kill": killer}
    outcomes = concurrently(calls)
    victim = outcomes.pop("kill")
    assert isinstance(victim, str), victim
    lost = {k: o for k, o in outcomes.items() if isinstance(o, Exception)}
    made = {k: o for k, o in outcomes.items() if not isinstance(o, Exception)}
    # Every request either completed or ended with a clear message; only one that had sent audio could fail
    assert all(isinstance(e, WorkerLost) and "stopped after sending" in str(e) for e in lost.values()), lost
    assert set(lost) <= set(streamed), f"a request with no audio sent yet was not retried: {lost}"
    retried = [k for k, m in made.items() if RETRY_NOTE in m.notes]
    assert retried or lost, f"nothing on the killed replica {victim} was retried or lost"
    assert all(made[k].worker.split(" on ")[0] != victim for k in retried)
    assert all(m.audio.shape == (1, 20 * 32_000) for m in made.values())
    # Serve replaces the dead replica
    deadline = time.monotonic() + NEW_REPLICA_TIMEOUT_S
    while not (len(replica_names()) == 2 and victim not in replica_names()):
        assert time.monotonic() < deadline, f"no new replica within {NEW_REPLICA_TIMEOUT_S} s"
        time.sleep(1)
    while serve.status().applications[SERVE_APP].status != "RUNNING":
        assert time.monotonic() < deadline, f"the application did not recover within {NEW_REPLICA_TIMEOUT_S} s"
        time.sleep(1)
    assert engine.generate(settings(duration=1.0)).audio.shape == (1, 32_000)


@pytest.fixture(scope="module")
def ray_server(cluster, tiny_models_env, tmp_path_factory: pytest.TempPathFactory):
    """The real app, ``MOODTAPE_BACKEND=ray``, sending every track to the cluster's replicas."""
    folder = tmp_path_factory.mktemp("live-ray")
    env = {**tiny_models_env, **cluster.env, "MOODTAPE_BACKEND": "ray", "MOODTAPE_OUTPUT_DIR": str(folder / "out")}
    server = LiveServer(env, folder / "server.log")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ray_client(ray_server):
    from gradio_client import Client

    return Client(ray_server.url, verbose=False)


def test_the_page_s_api_makes_a_track_on_a_replica_and_the_recipe_names_it(ray_client):
    audio, downloads, recipe, *_ = ray_client.predict(prompt="night drive", duration=2, seed=3, api_name="/generate")
    assert Path(audio).is_file() and recipe["settings"]["seed"] == 3
    assert recipe["worker"].startswith(f"SERVE_REPLICA::{SERVE_APP}#{DEPLOYMENT}#")


def test_the_page_s_api_streams_pieces_from_the_cluster(ray_client):
    import soundfile as sf

    job = ray_client.submit(prompt="rainy piano", duration=4, seed=3, loudness=0, api_name="/generate_stream")
    outputs = list(job)
    pieces = [out[0] for out in outputs if out[0]]
    assert len(pieces) >= 2
    whole, rate = sf.read(job.outputs()[-1][1], dtype="float32")
    streamed = np.concatenate([sf.read(p, dtype="float32")[0] for p in pieces])
    assert len(streamed) == len(whole) == 4 * rate
    assert np.abs(streamed - whole).max() < 2e-3  # 16-bit pieces against the 24-bit file


def test_cancelling_through_the_client_stops_the_track_on_the_cluster(ray_client, ray_server):
    job = ray_client.submit(prompt="cancel me", duration=30, seed=77, api_name="/generate")
    deadline = time.monotonic() + 60
    while not _is_generating(job) and not job.done():
        assert time.monotonic() < deadline, "the track never started"
        time.sleep(0.05)
    job.cancel()
    while "Generation cancelled by the client" not in ray_server.log_path.read_text():
        assert time.monotonic() < deadline, "the server never stopped the cancelled generation"
        time.sleep(0.2)
    audio, *_ = ray_client.predict(prompt="after the cancel", duration=1, seed=1, api_name="/generate")
    assert Path(audio).is_file()
    assert not list(ray_server.output_dir.rglob("*cancel-me*")), "the cancelled track was never written"


def test_the_backend_setting_picks_where_engines_run_and_refuses_anything_else():
    from generation.config import ConfigError
    from generation.model.backends import new_engine
    from generation.model.types import MELODY

    local = new_engine(ServerConfig.from_env({}))
    on_cluster = new_engine(ServerConfig.from_env({"MOODTAPE_BACKEND": "ray"}), EngineSpec(family=MELODY))
    assert isinstance(local, MusicGenEngine) and isinstance(on_cluster, RemoteEngine)
    assert on_cluster.family == MELODY and not on_cluster.loaded  # nothing reaches the cluster before a request
    with pytest.raises(ConfigError, match="MOODTAPE_BACKEND must be one of local, ray, got 'spark'"):
        ServerConfig.from_env({"MOODTAPE_BACKEND": "spark"})
