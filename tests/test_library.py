"""The library keeps every finished track: real WAVs with their recipes, an SQLite index, owners kept apart."""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from generation import library as library_module
from generation.audio.export import PARTIAL_PREFIX, export_track, metadata_for
from generation.config import ServerConfig
from generation.errors import InvalidInputError
from generation.library import (
    DB_NAME,
    ENTRY_FILE,
    Library,
    LibraryFullError,
    NewEntry,
    Search,
    check_id,
    library_location,
)
from generation.recipe import Recipe
from generation.settings import GenerationSettings

RATE = 32_000
ALICE, BOB = "alice", "bob"
HOSTILE_IDS = [
    "../../etc/passwd",
    "20261206-010000-1a2b3c4d/../x",
    "' OR '1'='1",
    '" OR 1=1 --',
    "1; DROP TABLE entries; --",
    "20261206-010000-1A2B3C4D",  # upper case is not the form
    "",
    None,
    42,
]


def write_track(
    folder: Path,
    prompt: str,
    *,
    seed: int = 1,
    bpm: float | None = 100.0,
    key: str | None = "A minor",
    model: str = "text",
    preset: str | None = None,
    extend_sha256: str | None = None,
    formats: tuple[str, ...] = ("wav",),
) -> tuple[dict[str, Path], Recipe]:
    """A real track as the studio writes it: audio through the export code, its recipe embedded and beside it."""
    tempo = {"measured_bpm": bpm, "key": key, "described": "test"} if bpm is not None or key else None
    recipe = Recipe(
        settings=GenerationSettings(prompt=prompt, duration=1.0, seed=seed),
        model_id=f"facebook/musicgen-{model}",
        model_revision=None,
        model_name=model,
        preset=preset,
        tempo=tempo,
        extend={"file": "parent.wav", "sha256": extend_sha256} if extend_sha256 else None,
        audio_seconds=0.5,
        sample_rate=RATE,
    )
    audio = np.random.default_rng(seed).normal(0, 0.1, (1, RATE // 2)).astype(np.float32)
    job = folder / f"job-{seed}-{abs(hash(prompt)) % 10_000}"
    job.mkdir(parents=True, exist_ok=True)
    paths = export_track(
        audio,
        RATE,
        folder=job,
        file_name=f"track-{seed}",
        formats=formats,
        metadata=metadata_for(recipe, prompt),
        recipe_json=recipe.to_json(),
    )
    return paths, recipe


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    return tmp_path / "outputs"


@pytest.fixture
def library(tmp_path: Path) -> Library:
    library = Library(tmp_path / "library")
    yield library
    library.close()


def keep(library: Library, outputs: Path, prompt: str, owner: str = ALICE, **kwargs) -> library_module.Entry:
    paths, recipe = write_track(outputs, prompt, **kwargs)
    return library.add(owner, paths, recipe)


def reopen(library: Library) -> Library:
    library.close()
    return Library(library.root)


def test_a_kept_track_moves_into_the_library_with_its_row(library: Library, outputs: Path):
    paths, recipe = write_track(outputs, "rainy night, mellow piano", seed=7, formats=("wav", "mp3"), preset="lofi")
    entry = library.add(ALICE, paths, recipe)

    assert check_id(entry.id) == entry.id
    assert (entry.prompt, entry.preset, entry.model, entry.seed) == ("rainy night, mellow piano", "lofi", "text", 7)
    assert (entry.seconds, entry.bpm, entry.key, entry.parent) == (0.5, 100.0, "A minor", None)
    names = [p.name for p in entry.files]
    assert names == ["track-7.wav", "track-7.mp3", "track-7.recipe.json"], "the WAV first, then by name"
    assert all(p.is_file() and p.is_relative_to(library.root) for p in entry.files)
    assert entry.size == sum(p.stat().st_size for p in entry.files)
    assert not any(p.exists() for p in paths.values()), "the originals are moved, not copied"
    assert library.recipe(ALICE, entry.id)["settings"]["seed"] == 7
    assert library.get(ALICE, entry.id) == entry
    assert reopen(library).search(ALICE) == [entry]


def test_search_by_words_bpm_key_and_model_returns_exactly_the_matching_entries(library: Library, outputs: Path):
    piano = keep(library, outputs, "mellow piano at night", seed=1, bpm=80, key="A minor", model="text")
    house = keep(library, outputs, "deep house groove", seed=2, bpm=124, key="C# major", preset="deep-house")
    hum = keep(library, outputs, "piano ballad, strings", seed=3, bpm=96, key="C# major", model="melody")
    keep(library, outputs, "mellow piano at night", seed=4, owner=BOB)

    def ids(**filters) -> list[str]:
        return [e.id for e in library.search(ALICE, Search.of(**filters))]

    assert ids() == [hum.id, house.id, piano.id], "newest first"
    assert ids(query="piano") == [hum.id, piano.id]
    assert ids(query="pian") == [hum.id, piano.id], "a word matches as a prefix"
    assert ids(query="mellow piano") == [piano.id], "every word must match"
    assert ids(query="deep-house") == [house.id], "the preset is searched"
    assert ids(query="melody") == [hum.id], "the model is searched"
    assert ids(bpm_min=90) == [hum.id, house.id]
    assert ids(bpm_min=90, bpm_max=100) == [hum.id]
    assert ids(key="c# MAJOR") == [hum.id, house.id]
    assert ids(key="Db major") == [hum.id, house.id], "a flat finds the sharp it equals"
    assert ids(model="melody") == [hum.id]
    assert ids(model="facebook/musicgen-text") == [house.id, piano.id], "the model's id works too"
    assert ids(query="piano", key="A minor", model="text", bpm_max=85) == [piano.id]
    assert ids(limit=2) == [hum.id, house.id]
    assert ids(query="nothing like this") == []


@pytest.mark.parametrize(
    "query",
    ['"', "piano*", "piano OR house", "NEAR(piano house)", "'; DROP TABLE entries; --", "prompt:piano", "^-()"],
)
def test_search_words_are_never_read_as_syntax(library: Library, outputs: Path, query: str):
    entry = keep(library, outputs, "piano house prompt")
    found = library.search(ALICE, Search.of(query=query))
    assert found in ([], [entry])
    assert library.search(ALICE) == [entry], "the table is intact"


@pytest.mark.parametrize(
    ("filters", "named"),
    [
        ({"bpm_min": "fast"}, "bpm_min"),
        ({"bpm_max": -5}, "bpm_max"),
        ({"bpm_min": 120, "bpm_max": 90}, "bpm_min (120) must not be above bpm_max (90)"),
        ({"key": "H minor"}, "'H minor'"),
        ({"key": "A minor'; --"}, "is not a key this reads"),
        ({"limit": 0}, "limit"),
        ({"limit": 10_000}, "limit"),
        ({"query": 5}, "query"),
    ],
)
def test_bad_search_values_are_refused_naming_them(filters: dict, named: str):
    with pytest.raises(InvalidInputError, match=named.replace("(", r"\(").replace(")", r"\)")):
        Search.of(**filters)


def test_owners_cannot_list_search_read_or_delete_each_others_entries(library: Library, outputs: Path):
    mine = keep(library, outputs, "alice's secret song", owner=ALICE)
    theirs = keep(library, outputs, "bob's song", owner=BOB)

    assert library.search(ALICE) == [mine] and library.search(BOB) == [theirs]
    assert library.search(BOB, Search.of(query="secret")) == []
    for action in (library.get, library.recipe, library.delete):
        with pytest.raises(InvalidInputError) as refused:
            action(BOB, mine.id)
        with pytest.raises(InvalidInputError) as missing:
            action(BOB, "20991231-235959-00000000")
        assert str(refused.value).replace(mine.id, "X") == str(missing.value).replace("20991231-235959-00000000", "X")
    assert library.get(ALICE, mine.id) == mine and mine.wav.is_file()
    assert library.owner_of(mine.wav) == ALICE and library.owner_of(theirs.files[-1]) == BOB
    assert library.owner_of(library.root / DB_NAME) is None
    assert library.owner_of(mine.wav.parent.parent.parent / theirs.wav.parent.parent.name / mine.id / "x") is None
    assert mine.wav.parent.parent != theirs.wav.parent.parent, "each owner has a folder of their own"


@pytest.mark.parametrize("bad_id", HOSTILE_IDS)
def test_ids_that_are_not_entry_ids_are_refused_with_a_clear_message(library: Library, outputs: Path, bad_id):
    entry = keep(library, outputs, "kept")
    for action in (library.get, library.delete, library.recipe):
        with pytest.raises(InvalidInputError, match="id must be a library entry's id such as"):
            action(ALICE, bad_id)
    assert library.search(ALICE) == [entry] and entry.wav.is_file()


@pytest.mark.parametrize("owner", ["", "   ", "a\nb", "x" * 201, None])
def test_a_missing_or_strange_owner_is_refused(library: Library, owner):
    with pytest.raises(InvalidInputError, match="owner must be"):
        library.search(owner)


def test_an_owner_name_cannot_reach_outside_its_folder(library: Library, outputs: Path):
    entry = keep(library, outputs, "climbing", owner="../../escape")
    assert entry.wav.is_relative_to(library.root / "tracks")
    assert library.search("../../escape") == [entry] and library.search(ALICE) == []


def test_delete_removes_the_row_and_the_files(library: Library, outputs: Path):
    gone, kept = keep(library, outputs, "goes", seed=1), keep(library, outputs, "stays", seed=2)
    assert library.delete(ALICE, gone.id) == gone
    assert not gone.wav.parent.exists()
    assert library.search(ALICE) == [kept]
    with pytest.raises(InvalidInputError, match="no entry"):
        library.delete(ALICE, gone.id)
    assert reopen(library).search(ALICE) == [kept]


def test_an_extend_names_its_parent_by_the_wav_it_continued(library: Library, outputs: Path):
    parent = keep(library, outputs, "the start", seed=1)
    digest = library_module._sha256(parent.wav)
    child = keep(library, outputs, "the start, going on", seed=2, extend_sha256=digest)
    other_owner = keep(library, outputs, "bob's extend", seed=3, owner=BOB, extend_sha256=digest)
    assert child.parent == parent.id
    assert other_owner.parent is None, "another owner's track is never a parent"
    paths, recipe = write_track(outputs, "an edit", seed=4)
    assert library.add(ALICE, paths, recipe, parent=child.id).parent == child.id


def test_rows_whose_files_are_gone_are_dropped_and_logged_at_open(
    library: Library, outputs: Path, caplog: pytest.LogCaptureFixture
):
    lost = keep(library, outputs, "lost", seed=1)
    trimmed = keep(library, outputs, "trimmed", seed=2, formats=("wav", "flac"))
    lost.wav.unlink()
    trimmed.files[1].unlink()  # the FLAC, deleted by hand
    with caplog.at_level(logging.WARNING, logger="generation.library"):
        library = reopen(library)
    assert [e.id for e in library.search(ALICE)] == [trimmed.id]
    assert library.get(ALICE, trimmed.id).files == (trimmed.files[0], trimmed.files[2])
    assert any(lost.id in record.getMessage() for record in caplog.records)
    assert not lost.wav.parent.exists()


def test_a_folder_without_a_row_is_indexed_again_from_its_recipe(library: Library, outputs: Path):
    first = keep(library, outputs, "first", seed=1)
    orphan = keep(library, outputs, "kept, then the row was lost", seed=2, bpm=121, key="G major")
    with sqlite3.connect(library.db_path) as db:  # as if the process died between the rename and the insert
        db.execute("DELETE FROM entries WHERE id = ?", (orphan.id,))
    library = reopen(library)
    assert library.search(ALICE) == [orphan, first]
    assert library.search(ALICE, Search.of(query="lost", key="G major", bpm_min=120)) == [orphan]


def test_a_half_written_entry_is_never_listed_and_is_cleared_once_stale(library: Library, outputs: Path):
    entry = keep(library, outputs, "whole", seed=1)
    half = entry.wav.parent.with_name(f"{PARTIAL_PREFIX}20261206-010000-0badf00d")
    half.mkdir()
    (half / "track-9.wav").write_bytes(b"RIFF")
    library = reopen(library)
    assert library.search(ALICE) == [entry] and half.exists(), "a fresh one may be another process's write"
    library.close()
    library_module.os.utime(half, (0, 0))
    library = Library(library.root)
    assert library.search(ALICE) == [entry] and not half.exists()


def test_a_deleted_database_is_rebuilt_from_the_files_with_the_same_entries(library: Library, outputs: Path):
    parent = keep(library, outputs, "mellow piano", seed=1, formats=("wav", "mp3"))
    child = keep(library, outputs, "mellow piano, on", seed=2, extend_sha256=library_module._sha256(parent.wav))
    theirs = keep(library, outputs, "bob's", seed=3, owner="Bob Smith")
    library.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{library.db_path}{suffix}").unlink(missing_ok=True)

    library = Library(library.root)
    assert "was missing; it was rebuilt from the files" in library.status
    assert library.search(ALICE) == [child, parent] and library.search("Bob Smith") == [theirs]
    assert library.search(ALICE, Search.of(query="piano", key="A minor")) == [child, parent]
    assert library.recipe(ALICE, child.id)["extend"]["sha256"] == library_module._sha256(parent.wav)
    assert "rebuilt" not in reopen(library).status, "only the open that rebuilt says so"


def test_entries_without_their_entry_file_are_still_rebuilt_from_the_wavs_recipe(library: Library, outputs: Path):
    parent = keep(library, outputs, "the start", seed=1)
    child = keep(library, outputs, "going on", seed=2, extend_sha256=library_module._sha256(parent.wav))
    for entry in (parent, child):
        (entry.wav.parent / ENTRY_FILE).unlink()
        entry.files[-1].unlink()  # and the recipe beside the WAV: the WAV's own tags carry it
    library.close()
    library.db_path.unlink()
    library = Library(library.root)
    rebuilt = library.search(ALICE)
    # Without entry.json the time made is the recipe's, to the second: two tracks of one second may list either way
    assert sorted((e.id, e.prompt, e.seed, e.parent) for e in rebuilt) == sorted([
        (child.id, "going on", 2, parent.id),
        (parent.id, "the start", 1, None),
    ])


@pytest.mark.parametrize("damage", [b"this is not a database" * 100, b""])
def test_a_damaged_database_is_set_aside_and_rebuilt(library: Library, outputs: Path, damage: bytes):
    entries = [keep(library, outputs, f"track {i}", seed=i) for i in range(3)]
    library.close()
    library.db_path.write_bytes(damage)
    library = Library(library.root)
    assert library.search(ALICE) == entries[::-1]
    assert "rebuilt from the files" in library.status
    if damage:
        assert "damaged" in library.status
        assert len(list(library.root.glob(f"{DB_NAME}.damaged-*"))) == 1


def test_a_database_damaged_inside_its_pages_is_rebuilt(library: Library, outputs: Path):
    entries = [keep(library, outputs, f"song number {i}", seed=i) for i in range(30)]
    library.close()
    with sqlite3.connect(library.db_path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(library.db_path.read_bytes())
    page = 4096
    data[page * 2 : page * 4] = bytes(page * 2)  # two pages of the tables zeroed
    library.db_path.write_bytes(bytes(data))
    library = Library(library.root)
    assert "damaged" in library.status
    assert library.search(ALICE, Search.of(limit=100)) == entries[::-1]


def test_a_full_library_refuses_a_track_with_a_clear_message_and_moves_nothing(tmp_path: Path, outputs: Path):
    library = Library(tmp_path / "library", max_mb=0.08)  # one half-second 24-bit WAV (about 51 KB) fits
    keep(library, outputs, "first", seed=1)
    paths, recipe = write_track(outputs, "second", seed=2)
    full = r"Your library is full: 0\.0\d+ MB of 0\.08 MB used, and this track needs 0\.0\d+ MB\. Delete entries"
    with pytest.raises(LibraryFullError, match=full):
        library.add(ALICE, paths, recipe)
    assert all(p.is_file() for p in paths.values()), "the track stays where it was"
    assert len(library.search(ALICE)) == 1
    assert not list((library.root / "tracks").glob(f"*/{PARTIAL_PREFIX}*"))
    assert library.add(BOB, paths, recipe).owner == BOB, "the limit is per owner"


def test_a_requests_takes_are_kept_together_or_not_at_all(tmp_path: Path, outputs: Path):
    library = Library(tmp_path / "library", max_mb=0.08)  # room for one take, not two
    takes = [write_track(outputs, "takes", seed=seed) for seed in (1, 2)]
    with pytest.raises(LibraryFullError):
        library.add_many(ALICE, [NewEntry(paths, recipe) for paths, recipe in takes])
    assert library.search(ALICE) == [] and all(p.is_file() for paths, _ in takes for p in paths.values())
    assert not list((library.root / "tracks").glob("*/*")), "no folder was left behind"

    roomy = Library(tmp_path / "roomy")
    kept = roomy.add_many(ALICE, [NewEntry(paths, recipe) for paths, recipe in takes])
    assert [e.seed for e in kept] == [1, 2] and roomy.search(ALICE) == kept[::-1]


def test_eight_tracks_kept_at_once_give_eight_rows(library: Library, outputs: Path):
    tracks = [write_track(outputs, f"take {i}", seed=i) for i in range(8)]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []
    searched: list[int] = []

    def keep_one(paths, recipe) -> None:
        barrier.wait()
        try:
            library.add(ALICE, paths, recipe)
            searched.append(len(library.search(ALICE)))
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=keep_one, args=track) for track in tracks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    entries = reopen(library).search(ALICE)
    assert sorted(e.seed for e in entries) == list(range(8))
    assert len({e.id for e in entries}) == 8 and all(f.is_file() for e in entries for f in e.files)
    assert sorted(searched)[-1] == 8


def test_the_library_lives_where_the_settings_say(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    off = ServerConfig.from_env({"MOODTAPE_LIBRARY_DIR": "OFF"})
    assert library_location(off) == (None, library_location(off)[1])
    assert "MOODTAPE_LIBRARY_DIR=off" in library_location(off)[1]
    assert Library.from_config(off) == (None, library_location(off)[1])

    chosen = ServerConfig.from_env({"MOODTAPE_LIBRARY_DIR": str(tmp_path / "mine"), "MOODTAPE_LIBRARY_MAX_MB": "5"})
    library, status = Library.from_config(chosen)
    assert library.root == (tmp_path / "mine").resolve() and library.max_bytes == 5 * 1024 * 1024
    assert status == f"Library: every finished track is kept in {library.root}."
    library.close()

    local = library_location(ServerConfig.from_env({}))[0]
    import platformdirs

    assert local == Path(platformdirs.user_data_dir("moodtape", appauthor=False)) / "library"

    space = ServerConfig.from_env({"SPACE_ID": "someone/moodtape"})
    monkeypatch.setattr(library_module, "SPACE_STORAGE", tmp_path / "no-such-mount")
    folder, why = library_location(space)
    assert folder is None and "no persistent storage" in why and "MOODTAPE_LIBRARY_DIR" in why
    (tmp_path / "data").mkdir()
    monkeypatch.setattr(library_module, "SPACE_STORAGE", tmp_path / "data")
    assert library_location(space) == (tmp_path / "data" / "moodtape-library", "")


def test_an_unusable_folder_turns_the_library_off_with_the_reason(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    library, status = Library.from_config(ServerConfig.from_env({"MOODTAPE_LIBRARY_DIR": str(blocker / "library")}))
    assert library is None and status.startswith("Library off: cannot use") and "MOODTAPE_LIBRARY_DIR" in status


def test_entries_read_as_json_for_api_clients(library: Library, outputs: Path):
    entry = keep(library, outputs, "for the api")
    data = entry.to_dict()
    assert {"id", "created", "prompt", "seconds", "bpm", "key", "model", "files"} <= set(data)
    assert "owner" not in data and data["files"][0] == str(entry.wav)


def test_the_search_benchmark_runs(capsys: pytest.CaptureFixture):
    from benchmarks.library import SEARCHES, main

    main(["--entries", "40", "--repeats", "1"])
    printed = capsys.readouterr().out
    assert "40 entries of one owner, 48 in all" in printed and "plain LIKE scan" in printed
    assert all(f"| {name} |" in printed for name in SEARCHES)


def test_the_output_cleaner_never_touches_a_library_inside_the_output_folder(tmp_path: Path):
    from generation.storage import OutputStore

    store = OutputStore(tmp_path / "outputs", max_bytes=1, max_age_seconds=1, min_keep_seconds=0)
    library = Library(tmp_path / "outputs" / "library")
    entry = keep(library, tmp_path / "outputs", "kept for good")
    store.protect(library.root)
    old_job = store.new_job_folder()
    (old_job / "old.wav").write_bytes(b"x" * 100)
    report = store.cleanup(now=library_module.time.time() + 3600)
    assert report.removed == (old_job,)
    assert entry.wav.is_file() and library.search(ALICE) == [entry]


def test_the_studio_keeps_every_take_and_an_extend_names_its_parent(engine, melody_engine, separator, tmp_path: Path):
    from generation.studio import Studio, TrackRequest

    library = Library(tmp_path / "library")
    studio = Studio(
        engine, output_dir=tmp_path / "outputs", melody_engine=melody_engine, separator=separator, track_library=library
    )
    made = studio.make_track(TrackRequest(prompt="rainy night piano", duration=1.0, seed=3, variations=2))
    kept = studio.keep(made, ALICE)
    entries = library.search(ALICE)
    assert {e.id for e in entries} == {kept.library_id, kept.takes[0].library_id}
    assert all(path.is_file() and path.is_relative_to(library.root) for path in kept.downloads)
    assert not any(path.exists() for path in made.downloads), "moved out of the output folder"

    longer = studio.keep(studio.make_track(TrackRequest(extend=str(kept.wav_path), duration=1.0)), ALICE)
    assert library.get(ALICE, longer.library_id).parent == kept.library_id
    assert studio.keep(made, None) is made, "no owner, nothing kept"


def test_the_owner_is_the_signed_in_hugging_face_user_on_a_space_and_one_local_owner_elsewhere():
    import time

    from library_tab import hugging_face_owner, local_owner, owner_rule_for

    class Request:  # what Starlette hands Gradio: the session lives in the scope, once SessionMiddleware ran
        def __init__(self, session: dict | None):
            self.scope = {"type": "http"} if session is None else {"type": "http", "session": session}

    userinfo = {"name": "Alice A.", "preferred_username": "alice", "profile": "", "picture": ""}
    signed_in = {"oauth_info": {"userinfo": userinfo, "expires_at": time.time() + 3600}}
    expired = {"oauth_info": {"userinfo": userinfo, "expires_at": time.time() - 1}}
    assert hugging_face_owner(Request(signed_in)) == "alice"
    assert hugging_face_owner(Request(expired)) is None
    assert hugging_face_owner(Request({})) is None and hugging_face_owner(Request(None)) is None
    assert local_owner(Request(None)) == library_module.LOCAL_OWNER
    assert owner_rule_for(ServerConfig.from_env({"SPACE_ID": "someone/moodtape"})) is hugging_face_owner
    assert owner_rule_for(ServerConfig.from_env({})) is local_owner


def test_the_api_calls_refuse_clearly_without_a_library_or_an_owner(library: Library, outputs: Path):
    from generation.library import delete_entry, search_entries

    entry = keep(library, outputs, "api")
    assert search_entries(library, ALICE, {"query": "api"})[0]["id"] == entry.id
    with pytest.raises(InvalidInputError, match="keeps no library"):
        search_entries(None, ALICE, {})
    with pytest.raises(InvalidInputError, match="Sign in with Hugging Face"):
        search_entries(library, None, {})
    with pytest.raises(InvalidInputError, match="id must be"):
        delete_entry(library, ALICE, "../x")
    assert delete_entry(library, ALICE, entry.id)["id"] == entry.id


def test_the_library_tab_lists_picks_opens_and_deletes_the_owners_tracks(engine, melody_engine, separator, tmp_path):
    import gradio as gr

    from app import build_app
    from generation.studio import Studio

    library = Library(tmp_path / "library")
    studio = Studio(engine, output_dir=tmp_path / "outputs", melody_engine=melody_engine, separator=separator,
                    track_library=library)  # fmt: skip
    mine, theirs = (
        keep(library, tmp_path / "made", "rainy piano", seed=1),
        keep(library, tmp_path / "made", "x", owner=BOB),
    )
    demo = build_app(studio, owner_rule=lambda request: request.headers.get("x-owner"))
    handlers = {}
    for block_function in demo.fns.values():
        handlers.setdefault(getattr(block_function.fn, "__name__", ""), block_function.fn)

    class Request:
        headers = {"x-owner": ALICE}

    where, rows, shown = handlers["search"]("piano", None, None, "any", "any", Request())
    assert [row[-1] for row in rows] == [mine.id] and shown == [mine.to_dict()]
    assert where.startswith("1 shown") and "MB of your 2048 MB used" in where
    chosen, wav, files = handlers["pick"](shown, gr.SelectData(None, {"index": [0, 1], "value": "rainy piano"}))
    assert (chosen, wav, files) == (mine.id, str(mine.wav), [str(p) for p in mine.files])
    path, tabs = handlers["open_in_create_tab"](wav)
    assert path == wav and tabs.selected == "create"
    rows, seed, bpm, key, area, tabs = handlers["open_in_compose"](wav)
    assert (rows, seed, bpm, key) == ([["rainy piano", None, 1.0]], 1, None, None)
    assert area.open and tabs.selected == "create"
    cleared = handlers["delete"](chosen, "", None, None, "any", "any", Request())
    assert cleared[:3] == (None, None, None) and cleared[4] == []
    assert library.search(ALICE) == [] and library.search(BOB) == [theirs]

    class Anonymous:
        headers = {}

    assert handlers["search"]("", None, None, "any", "any", Anonymous())[0].startswith("Sign in")
