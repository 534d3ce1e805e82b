"""The library through the live app, with its real database file: concurrency, restarts, kill -9, a lost or damaged
database, two owners, hostile ids. The server runs in a subprocess so it can be killed and started again; the
owner comes from a request header (the test's owner rule), as Gradio's sign-in stand-in needs the hub.
"""

from __future__ import annotations

import signal
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.slow

OWNER_HEADER = "x-moodtape-owner"
ALICE, BOB = "alice", "bob"
# The real app's main(), with the owner read from a header instead of Hugging Face sign-in.
SERVER = f"import app; app.main(owner_rule=lambda request: request.headers.get({OWNER_HEADER!r}))"
HOSTILE_IDS = ["../../etc/passwd", "' OR '1'='1", '"; DROP TABLE entries; --', "20261206-010000-1a2b3c4d/../x"]


class Server(LiveServer):
    """The app with the test's owner rule in a subprocess, its log kept across restarts; ``kill`` is ``kill -9``."""

    def __init__(self, env: dict[str, str], log_path: Path):
        super().__init__(env, log_path, args=("-c", SERVER), log_mode="a")

    def client(self, owner: str | None):
        from gradio_client import Client

        headers = {OWNER_HEADER: owner} if owner else None
        # A busy 2-core machine (model warm-up, other suites) can hold a request past httpx's 5 s default.
        return Client(self.url, headers=headers, verbose=False, httpx_kwargs={"timeout": 120})

    def fetch(self, path: str, owner: str | None) -> int:
        """The HTTP status of downloading ``path`` as ``owner``."""
        request = urllib.request.Request(self.url + "gradio_api/file=" + path, headers={OWNER_HEADER: owner or ""})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status
        except urllib.error.HTTPError as e:
            return e.code

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._log.close()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("library-live")


@pytest.fixture(scope="module")
def env(tiny_models_env: dict[str, str], folder: Path) -> dict[str, str]:
    return {
        **tiny_models_env,
        "MOODTAPE_OUTPUT_DIR": str(folder / "outputs"),
        "MOODTAPE_LIBRARY_DIR": str(folder / "library"),
        "MOODTAPE_FAST_CPU": "0",
    }


@pytest.fixture(scope="module")
def server(env: dict[str, str], folder: Path) -> Iterator[Server]:
    """One server for the tests that neither stop nor kill it."""
    running = Server(env, folder / "server.log")
    yield running
    if running.process.poll() is None:
        running.stop()


def listing(server: Server, owner: str | None, **filters) -> list[dict]:
    return server.client(owner).predict(limit=500, **filters, api_name="/library")


def make(client, prompt: str, seed: int, duration: float = 1.0):
    return client.submit(prompt=prompt, duration=duration, seed=seed, api_name="/generate")


def database_rows(folder: Path) -> dict[str, tuple[str, list[str]]]:
    """id -> (owner, files) straight from the database file."""
    import json

    with sqlite3.connect(folder / "library" / "library.sqlite3") as db:
        return {row[0]: (row[1], json.loads(row[2])) for row in db.execute("SELECT id, owner, files FROM entries")}


def entry_folders(folder: Path) -> set[str]:
    return {p.name for p in (folder / "library" / "tracks").glob("*/*") if not p.name.startswith(".")}


def test_eight_concurrent_tracks_give_eight_rows_kept_across_a_restart(env, folder: Path):
    server = Server(env, folder / "server.log")
    alice = server.client(ALICE)
    jobs = [make(alice, f"concurrent take {i}", seed=i) for i in range(8)]
    results = [job.result(timeout=300) for job in jobs]
    assert all(Path(result[0]).is_file() for result in results)

    entries = listing(server, ALICE)
    assert sorted(e["seed"] for e in entries) == list(range(8))
    assert all(Path(path).is_file() for e in entries for path in e["files"])
    assert len(database_rows(folder)) == 8 and len(entry_folders(folder)) == 8
    assert listing(server, ALICE, query="take 3")[0]["seed"] == 3

    server.stop()
    again = Server(env, folder / "server.log")
    try:
        assert listing(again, ALICE) == entries, "a restart keeps every entry as it was"
    finally:
        again.stop()


def test_two_owners_never_see_fetch_or_delete_each_others_entries(server: Server, folder: Path):
    make(server.client(BOB), "bob's own song", seed=100).result(timeout=300)
    mine, theirs = listing(server, ALICE), listing(server, BOB)
    assert [e["prompt"] for e in theirs] == ["bob's own song"]
    assert not {e["id"] for e in mine} & {e["id"] for e in theirs}
    assert listing(server, BOB, query="concurrent") == []

    alice_wav = mine[0]["files"][0]
    assert server.fetch(alice_wav, ALICE) == 200
    assert server.fetch(alice_wav, BOB) == 403
    assert server.fetch(alice_wav, None) == 403
    assert server.fetch(alice_wav.replace("/tracks/", "/tracks/../tracks/"), BOB) == 403
    assert server.fetch(str(folder / "library" / "library.sqlite3"), ALICE) == 403

    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="There is no entry"):
        server.client(BOB).predict(id=mine[0]["id"], api_name="/library_delete")
    assert listing(server, ALICE) == mine
    with pytest.raises(AppError, match="Sign in"):
        listing(server, None)


def test_bad_ids_are_refused_and_the_server_keeps_serving(server: Server):
    from gradio_client.exceptions import AppError

    before = listing(server, ALICE)
    for bad_id in HOSTILE_IDS:
        with pytest.raises(AppError, match="id must be a library entry's id"):
            server.client(ALICE).predict(id=bad_id, api_name="/library_delete")
    assert listing(server, ALICE) == before


def test_delete_removes_the_entry_and_its_files(server: Server, folder: Path):
    entry = make(server.client(ALICE), "short-lived", seed=200).result(timeout=300)
    (kept,) = listing(server, ALICE, query="short lived")
    assert Path(kept["files"][0]).name == Path(entry[0]).name
    deleted = server.client(ALICE).predict(id=kept["id"], api_name="/library_delete")
    assert deleted["id"] == kept["id"]
    assert listing(server, ALICE, query="short lived") == []
    assert not any(Path(path).exists() for path in kept["files"])
    assert kept["id"] not in database_rows(folder)


def test_kill_9_in_the_middle_of_tracks_leaves_no_half_row_and_no_missing_file(server: Server, env, folder: Path):
    server.stop()  # the shared server's work is done; this one is killed
    server = Server(env, folder / "server.log")
    alice = server.client(ALICE)
    before = {e["id"] for e in listing(server, ALICE)}
    jobs = [make(alice, f"interrupted {i}", seed=300 + i, duration=4.0 if i else 1.0) for i in range(4)]
    jobs[0].result(timeout=300)  # one is kept; the others are being made or written
    server.kill()

    again = Server(env, folder / "server.log")
    try:
        entries = listing(again, ALICE)
    finally:
        again.stop()
    rows = database_rows(folder)
    assert before < {e["id"] for e in entries}, "what was kept before the kill is still there"
    assert set(rows) == entry_folders(folder), "no row without its folder, no finished folder without its row"
    assert all((folder / "library" / name).is_file() for _owner, files in rows.values() for name in files)
    assert all(Path(path).is_file() for e in entries for path in e["files"])


def test_a_deleted_then_a_damaged_database_is_rebuilt_with_the_same_entries(env, folder: Path):
    database = folder / "library" / "library.sqlite3"
    server = Server(env, folder / "server.log")
    before = {owner: listing(server, owner) for owner in (ALICE, BOB)}
    server.stop()

    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    log_start = folder.joinpath("server.log").stat().st_size
    server = Server(env, folder / "server.log")
    try:
        assert {owner: listing(server, owner) for owner in (ALICE, BOB)} == before
    finally:
        server.stop()
    assert "was missing: rebuilding it from the files" in folder.joinpath("server.log").read_text()[log_start:]

    database.write_bytes(b"not a database at all" * 200)
    log_start = folder.joinpath("server.log").stat().st_size
    server = Server(env, folder / "server.log")
    try:
        assert {owner: listing(server, owner) for owner in (ALICE, BOB)} == before, "the app starts and rebuilds"
    finally:
        server.stop()
    assert "is damaged" in folder.joinpath("server.log").read_text()[log_start:]
    assert list((folder / "library").glob("library.sqlite3.damaged-*")), "the damaged file is kept aside"
