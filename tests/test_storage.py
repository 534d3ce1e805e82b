"""The output folder: old and oversized jobs go, fresh downloads stay, nothing outside the folder is touched."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from generation.errors import InvalidInputError
from generation.storage import MIB, OutputStore

MAX_MB_ENV, MAX_AGE_ENV = "MOODTAPE_OUTPUT_MAX_MB", "MOODTAPE_OUTPUT_MAX_AGE_H"

HOUR = 3600.0
NOW = time.time()


def make_job(store: OutputStore, hours_old: float, size: int = 1000, name: str | None = None) -> Path:
    """A job folder holding one file of ``size`` bytes, last changed ``hours_old`` hours ago."""
    folder = store.root / name if name else store.new_job_folder()
    folder.mkdir(exist_ok=True)
    (folder / "track.wav").write_bytes(b"\0" * size)
    age(folder, hours_old)
    return folder


def age(path: Path, hours_old: float) -> None:
    """Set the modification time of a path and everything in it, without following links."""
    stamp = NOW - hours_old * HOUR
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (stamp, stamp), follow_symlinks=False)
    os.utime(path, (stamp, stamp), follow_symlinks=False)


def store_in(tmp_path: Path, **limits) -> OutputStore:
    options = {"max_bytes": 10 * MIB, "max_age_seconds": 24 * HOUR} | limits
    return OutputStore(tmp_path / "outputs", **options)


def test_each_job_gets_a_fresh_empty_folder_inside_the_root(tmp_path):
    store = store_in(tmp_path)

    first, second = store.new_job_folder(), store.new_job_folder()

    assert first != second
    assert first.parent == store.root and second.parent == store.root
    assert list(first.iterdir()) == [] and first.is_dir()


def test_cleanup_removes_jobs_older_than_the_age_limit(tmp_path):
    store = store_in(tmp_path, max_age_seconds=24 * HOUR)
    old = make_job(store, hours_old=30)
    recent = make_job(store, hours_old=5)

    report = store.cleanup(now=NOW)

    assert not old.exists() and recent.exists()
    assert report.removed == (old,) and report.freed_bytes == 1000


def test_cleanup_removes_the_oldest_jobs_while_over_the_size_limit(tmp_path):
    store = store_in(tmp_path, max_bytes=2500)
    oldest = make_job(store, hours_old=4)
    middle = make_job(store, hours_old=3)
    newest = make_job(store, hours_old=2)

    report = store.cleanup(now=NOW)

    assert not oldest.exists() and middle.exists() and newest.exists()
    assert report.kept_bytes == 2000 and not report.over_limit


def test_fresh_jobs_are_never_removed_even_over_the_size_limit(tmp_path):
    store = store_in(tmp_path, max_bytes=100, max_age_seconds=60)  # limits far below the keep time
    fresh = [make_job(store, hours_old=0.5) for _ in range(3)]

    report = store.cleanup(now=NOW)

    assert all(folder.exists() for folder in fresh)
    assert report.removed == () and report.over_limit and report.kept_bytes == 3000


def test_a_job_still_writing_is_kept_and_a_stale_partial_file_goes(tmp_path):
    store = store_in(tmp_path, max_bytes=100)
    writing = make_job(store, hours_old=30)
    (writing / ".partial-abc.wav").write_bytes(b"\0" * 500)  # being written now
    stale = store.root / ".partial-old.wav"
    stale.write_bytes(b"\0" * 500)
    age(stale, 2)

    store.cleanup(now=NOW)

    assert writing.exists() and (writing / "track.wav").exists()
    assert not stale.exists()


def test_links_to_outside_the_root_are_never_followed(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    precious = outside / "precious.wav"
    precious.write_bytes(b"\0" * 5000)
    store = store_in(tmp_path, max_bytes=1, max_age_seconds=HOUR)
    job = make_job(store, hours_old=30)
    (job / "link-to-file").symlink_to(precious)
    (job / "link-to-folder").symlink_to(outside, target_is_directory=True)
    age(job, 30)
    root_link = store.root / "link-at-root"
    root_link.symlink_to(outside, target_is_directory=True)
    os.utime(root_link, (NOW - 30 * HOUR,) * 2, follow_symlinks=False)

    report = store.cleanup(now=NOW)

    assert not job.exists()
    assert report.freed_bytes == 1000  # the link's target was not counted
    assert precious.read_bytes() == b"\0" * 5000 and outside.is_dir()
    assert root_link.is_symlink()  # a link directly in the root is not ours to remove


def test_the_background_cleaner_runs_and_stops(tmp_path):
    store = store_in(tmp_path, max_age_seconds=HOUR)
    old = make_job(store, hours_old=30)

    store.start(interval_seconds=0.05)
    try:
        deadline = time.monotonic() + 5
        while old.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert store.running
    finally:
        store.stop()

    assert not old.exists()
    assert not store.running
    later = make_job(store, hours_old=30)
    time.sleep(0.2)
    assert later.exists()  # nothing runs after stop


def test_limits_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(MAX_MB_ENV, "512")
    monkeypatch.setenv(MAX_AGE_ENV, "1.5")

    store = OutputStore.from_config(tmp_path / "outputs")

    assert store.max_bytes == 512 * MIB and store.max_age_seconds == 1.5 * HOUR
    assert store.min_keep_seconds == HOUR


def test_defaults_apply_when_the_environment_is_silent(tmp_path, monkeypatch):
    monkeypatch.delenv(MAX_MB_ENV, raising=False)
    monkeypatch.delenv(MAX_AGE_ENV, raising=False)

    store = OutputStore.from_config(tmp_path / "outputs")

    assert store.max_bytes == 2048 * MIB and store.max_age_seconds == 24 * HOUR


@pytest.mark.parametrize("value", ["lots", "-5", "0", "nan"])
def test_a_bad_limit_in_the_environment_is_refused_naming_the_variable(tmp_path, monkeypatch, value):
    monkeypatch.setenv(MAX_MB_ENV, value)

    with pytest.raises(InvalidInputError, match=rf"{MAX_MB_ENV} must be a positive number of megabytes"):
        OutputStore.from_config(tmp_path / "outputs")
