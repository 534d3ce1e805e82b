"""The managed output folder: a fresh folder per job, and a cleaner that keeps the whole within size and age limits.

Rules the cleaner keeps, in this order:

* Downloads stay available for at least ``min_keep_seconds`` (default 60 minutes):
  nothing younger is removed, even when the folder is over its size limit (it may
  exceed ``max_bytes`` for a while rather than delete files someone may be fetching).
  An entry's age is the time since anything in it last changed, so a job still
  writing (``.partial-`` files) is young.
* Entries older than ``max_age_seconds`` are removed.
* While the folder is over ``max_bytes``, the oldest remaining entries are removed.
* Only direct children of ``root`` are ever removed; symbolic links are never followed,
  neither when measuring nor when deleting, and a link directly in ``root`` is left alone.
* A protected folder (the library, should it be set inside the output folder) is never measured or removed,
  nor is any entry holding it.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import stat
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .audio.export import PARTIAL_PREFIX
from .config import ServerConfig

DEFAULT_MAX_MB = 2048  # size limit of the output folder, in MiB (the config's default)
DEFAULT_MAX_AGE_H = 24  # age limit of a job's files, in hours (the config's default)
MIN_KEEP_SECONDS = 60 * 60  # downloads stay available at least this long
CLEANUP_INTERVAL_S = 10 * 60  # how often the background cleaner runs
MIB = 1024 * 1024

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CleanupReport:
    """What one cleanup did."""

    removed: tuple[Path, ...]  # entries deleted, oldest first
    freed_bytes: int
    kept_bytes: int  # bytes still in the folder
    over_limit: bool  # still over max_bytes because everything left is younger than the keep time


@dataclass(frozen=True)
class _Entry:
    path: Path
    size: int  # bytes of the regular files in it
    newest: float  # latest modification time of anything in it
    young_partial: bool  # holds a .partial- file younger than the keep time


class OutputStore:
    """One folder holding every job's files, kept within ``max_bytes`` and ``max_age_seconds``."""

    def __init__(
        self,
        root: str | Path,
        *,
        max_bytes: int = DEFAULT_MAX_MB * MIB,
        max_age_seconds: float = DEFAULT_MAX_AGE_H * 3600,
        min_keep_seconds: float = MIN_KEEP_SECONDS,
    ):
        if max_bytes <= 0 or max_age_seconds <= 0 or min_keep_seconds < 0:
            raise ValueError(
                f"limits must be positive, got max_bytes={max_bytes}, max_age_seconds={max_age_seconds}, "
                f"min_keep_seconds={min_keep_seconds}"
            )
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self.root = self.root.resolve()
        self.max_bytes = int(max_bytes)
        self.max_age_seconds = float(max_age_seconds)
        self.min_keep_seconds = float(min_keep_seconds)
        self._cleanup_lock = threading.Lock()
        self._protected: set[Path] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(
        cls, root: str | Path, config: ServerConfig | None = None, *, min_keep_seconds: float = MIN_KEEP_SECONDS
    ) -> OutputStore:
        """Limits from ``config`` (default: the environment's ``MOODTAPE_OUTPUT_MAX_MB`` and ``..._MAX_AGE_H``)."""
        config = config or ServerConfig.from_env()
        return cls(
            root,
            max_bytes=round(config.output_max_mb * MIB),
            max_age_seconds=config.output_max_age_h * 3600,
            min_keep_seconds=min_keep_seconds,
        )

    def new_job_folder(self) -> Path:
        """A fresh, empty folder for one job's files: ``<root>/<UTC time>-<random>``."""
        while True:
            folder = self.root / f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
            try:
                folder.mkdir()
                return folder
            except FileExistsError:
                continue

    def protect(self, path: str | Path) -> None:
        """Never remove ``path``, nor an entry of the output folder that holds it."""
        self._protected.add(Path(path).expanduser().resolve())

    def _is_protected(self, path: Path) -> bool:
        return any(kept == path or kept.is_relative_to(path) for kept in self._protected)

    def cleanup(self, now: float | None = None) -> CleanupReport:
        """Remove entries past the age limit, then the oldest while over the size limit; never young ones."""
        now = time.time() if now is None else now
        with self._cleanup_lock:
            entries = sorted(self._entries(now), key=lambda entry: entry.newest)
            total = sum(entry.size for entry in entries)
            removed: list[Path] = []
            freed = 0
            for entry in entries:
                age = now - entry.newest
                if age < self.min_keep_seconds or entry.young_partial:
                    break  # sorted oldest first: everything after this is younger still
                if age <= self.max_age_seconds and total - freed <= self.max_bytes:
                    continue
                if self._remove(entry.path):
                    removed.append(entry.path)
                    freed += entry.size
            kept = total - freed
            if removed:
                log.info("Output cleanup removed %d entries, %.1f MiB", len(removed), freed / MIB)
            return CleanupReport(tuple(removed), freed, kept, kept > self.max_bytes)

    def start(self, interval_seconds: float = CLEANUP_INTERVAL_S) -> None:
        """Run ``cleanup`` now and then every ``interval_seconds`` on a daemon thread, until ``stop``."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(interval_seconds,), name="moodtape-output-cleanup", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the background cleaner and wait for it to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self, interval_seconds: float) -> None:
        while True:
            try:
                self.cleanup()
            except Exception:  # a cleaner that dies silently would let the disk fill up
                log.exception("Output cleanup failed; trying again in %.0f s", interval_seconds)
            if self._stop.wait(interval_seconds):
                return

    def _entries(self, now: float) -> list[_Entry]:
        """Direct children of root (folders and files, not links), each measured without following links."""
        entries = []
        with os.scandir(self.root) as children:
            for child in children:
                if self._is_protected(Path(child.path)):
                    continue
                try:
                    info = child.stat(follow_symlinks=False)
                except OSError:
                    continue  # removed meanwhile
                if stat.S_ISDIR(info.st_mode):
                    size, newest, young_partial = self._measure(Path(child.path), info.st_mtime, now)
                elif stat.S_ISREG(info.st_mode):
                    size, newest = info.st_size, info.st_mtime
                    young_partial = child.name.startswith(PARTIAL_PREFIX) and now - newest < self.min_keep_seconds
                else:
                    continue  # a symlink, socket or device: not ours to measure or delete
                entries.append(_Entry(Path(child.path), size, newest, young_partial))
        return entries

    def _measure(self, folder: Path, newest: float, now: float) -> tuple[int, float, bool]:
        size, young_partial = 0, False
        for dirpath, dirnames, filenames in os.walk(folder, followlinks=False, onerror=lambda e: None):
            for name in dirnames + filenames:
                try:
                    info = os.lstat(os.path.join(dirpath, name))
                except OSError:
                    continue
                newest = max(newest, info.st_mtime)
                if stat.S_ISREG(info.st_mode):
                    size += info.st_size
                    if name.startswith(PARTIAL_PREFIX) and now - info.st_mtime < self.min_keep_seconds:
                        young_partial = True
        return size, newest, young_partial

    def _remove(self, path: Path) -> bool:
        """Delete one direct child of root, never following links; return whether it went."""
        if path.parent != self.root or path.is_symlink() or self._is_protected(path):
            log.warning("Refusing to remove %s: not a plain entry of %s", path, self.root)
            return False
        try:
            if path.is_dir():
                shutil.rmtree(path)  # removes links inside without following them
            else:
                path.unlink()
        except OSError as e:
            log.warning("Could not remove %s: %s", path, e)
            return False
        return True
