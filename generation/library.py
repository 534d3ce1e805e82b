"""The library: every finished track kept with its files, per owner, searchable, across restarts.

The library folder holds::

    library.sqlite3            the index (SQLite, WAL mode): one row per entry, FTS5 over prompt, preset and model
    tracks/<owner key>/<id>/   one entry's files as the studio wrote them, and entry.json (owner, parent, created)

The files are the truth and the database is an index of them. An entry's files are written under a
``.partial-<id>`` folder, flushed and renamed into place, and only then is its row inserted, in one
transaction; a delete renames the folder to ``.deleted-<id>`` before the row goes. Opening the library
reconciles the two: rows whose files are gone are dropped (and logged), folders with no row are indexed
again from the recipe every WAV carries, and a deleted or damaged database file is rebuilt from the
folders, which ``Library.status`` says.

Every read and write names an owner and touches only that owner's rows and folder; ids are checked
against one strict form before any query, and every value reaches SQL as a parameter.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from .audio.export import PARTIAL_PREFIX, RECIPE_SUFFIX, read_metadata
from .config import ServerConfig
from .editing.keys import LETTERS, parse_key
from .errors import InvalidInputError, quoted
from .recipe import Recipe

DB_NAME = "library.sqlite3"
TRACKS = "tracks"  # the folder of owners' folders, beside the database
ENTRY_FILE = "entry.json"  # in each entry's folder: who owns it, its parent, when it was kept
DELETED_PREFIX = ".deleted-"  # an entry being deleted; its row goes next
SPACE_STORAGE = Path("/data")  # where a Hugging Face Space mounts its persistent storage
SCHEMA_VERSION = 1  # PRAGMA user_version; a database of another version is rebuilt from the files
ENTRY_ID = re.compile(r"[0-9]{8}-[0-9]{6}-[0-9a-f]{8}")  # UTC time kept, then 32 random bits
MAX_OWNER_CHARS = 200
DEFAULT_LIMIT, MAX_LIMIT = 50, 500  # entries a search returns, by default and at most
MAX_QUERY_WORDS = 16  # words of a search beyond these are ignored
MAX_BPM = 1000.0
STALE_PARTIAL_S = 60.0  # a .partial- folder this old belongs to no running write: a crashed one
BUSY_TIMEOUT_MS = 10_000  # another process writing the same database: wait this long before giving up
MIB = 1024 * 1024
SHARP_NAMES = tuple(  # each pitch class as measured keys spell it, C first
    next((f"{n}" for n, pc in LETTERS.items() if pc == tonic), None)
    or next(f"{n}#" for n, pc in LETTERS.items() if pc == tonic - 1)
    for tonic in range(12)
)
KEYS = tuple(f"{name} {mode}" for mode in ("major", "minor") for name in SHARP_NAMES)  # what a search may ask for

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE entries (
    n INTEGER PRIMARY KEY,          -- stable row number, the FTS rowid
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    created TEXT NOT NULL,          -- UTC, ISO 8601
    prompt TEXT NOT NULL,
    preset TEXT,
    model TEXT,                     -- the name the server offered the model under, else its id
    model_id TEXT,
    seconds REAL NOT NULL,
    bpm REAL,
    key TEXT,
    seed INTEGER,
    parent TEXT,                    -- the entry this one extends or edits
    recipe TEXT NOT NULL,           -- the recipe JSON
    files TEXT NOT NULL,            -- JSON list of paths relative to the library folder, the mix's WAV first
    wav_sha256 TEXT,                -- of the WAV's bytes: an extend's recipe names its parent by it
    size INTEGER NOT NULL           -- bytes of all the files
);
CREATE INDEX entries_by_owner ON entries(owner, created DESC, id DESC);
CREATE INDEX entries_by_sha ON entries(owner, wav_sha256);
CREATE VIRTUAL TABLE entries_fts USING fts5(prompt, preset, model, tokenize = 'unicode61 remove_diacritics 2');
CREATE TRIGGER entries_added AFTER INSERT ON entries BEGIN
    INSERT INTO entries_fts(rowid, prompt, preset, model)
    VALUES (new.n, new.prompt, coalesce(new.preset, ''), coalesce(new.model, '') || ' ' || coalesce(new.model_id, ''));
END;
CREATE TRIGGER entries_removed AFTER DELETE ON entries BEGIN
    DELETE FROM entries_fts WHERE rowid = old.n;
END;
"""
LOCAL_OWNER = "local"  # the one owner of a library on your own machine (the page's, the API's and the command line's)
SIGN_IN = "Sign in with Hugging Face (the button at the top of the page) to keep every track you make in a library."
_COLUMNS = "id, owner, created, prompt, preset, model, seconds, bpm, key, seed, parent, files, size"


class LibraryFullError(InvalidInputError):
    """An owner's library has no room for a track under ``MOODTAPE_LIBRARY_MAX_MB``."""


@dataclass(frozen=True)
class Entry:
    """One kept track: what it is, and its files (absolute paths, the mix's WAV first)."""

    id: str
    owner: str
    created: str  # UTC, ISO 8601
    prompt: str
    preset: str | None
    model: str | None
    seconds: float
    bpm: float | None
    key: str | None
    seed: int | None
    parent: str | None  # the id of the entry it extends or edits
    files: tuple[Path, ...]
    size: int  # bytes of all its files

    @property
    def wav(self) -> Path:
        return self.files[0]

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON values for an API client (paths as strings, no owner: it is always the caller)."""
        return {
            "id": self.id,
            "created": self.created,
            "prompt": self.prompt,
            "preset": self.preset,
            "model": self.model,
            "seconds": self.seconds,
            "bpm": self.bpm,
            "key": self.key,
            "seed": self.seed,
            "parent": self.parent,
            "files": [str(path) for path in self.files],
            "size": self.size,
        }


@dataclass(frozen=True)
class NewEntry:
    """A finished track to keep: its files (the mix's WAV first, or under "wav"), its recipe, and its parent."""

    files: Mapping[str, str | Path] | Sequence[str | Path]
    recipe: Recipe
    parent: str | None = None  # the entry it extends or edits; None finds the one its recipe extended, if any


@dataclass(frozen=True)
class Search:
    """One search of an owner's entries, checked: every field is safe to hand to SQL as a parameter."""

    words: tuple[str, ...] = ()  # every word must start a word of the prompt, preset or model
    bpm_min: float | None = None
    bpm_max: float | None = None
    key: str | None = None  # "A minor", "C# major"
    model: str | None = None  # the model's name on the server or its id
    limit: int = DEFAULT_LIMIT

    @classmethod
    def of(
        cls,
        query: str | None = None,
        bpm_min: object = None,
        bpm_max: object = None,
        key: str | None = None,
        model: str | None = None,
        limit: object = None,
    ) -> Search:
        """Check raw values from a page or an API client; a bad one raises ``InvalidInputError`` naming it."""
        if query is not None and not isinstance(query, str):
            raise InvalidInputError(f"query must be text (words to find), got {quoted(query)}.")
        words = tuple(re.findall(r"\w+", (query or "").lower()))[:MAX_QUERY_WORDS]
        low, high = _bpm(bpm_min, "bpm_min"), _bpm(bpm_max, "bpm_max")
        if low is not None and high is not None and low > high:
            raise InvalidInputError(f"bpm_min ({low:g}) must not be above bpm_max ({high:g}); swap them.")
        if model is not None and not isinstance(model, str):
            raise InvalidInputError(f"model must be a model's name, got {quoted(model)}.")
        model = (model or "").strip() or None
        if model is not None and len(model) > 200:
            raise InvalidInputError(f"model must be a model's name (at most 200 characters), got {len(model)}.")
        return cls(words, low, high, _key(key), model, _limit(limit))

    def match(self) -> str | None:
        """The FTS5 query: each word quoted as a string (so no word is read as syntax), matched as a prefix."""
        if not self.words:
            return None
        return " ".join('"' + word.replace('"', '""') + '"*' for word in self.words)


class Library:
    """An owner-partitioned index of kept tracks in one folder; safe to use from many threads at once."""

    def __init__(self, root: str | Path, *, max_mb: float = 2048.0):
        if not (max_mb > 0 and math.isfinite(max_mb)):
            raise ValueError(f"max_mb must be a positive number of megabytes, got {max_mb!r}")
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self.root = self.root.resolve()
        (self.root / TRACKS).mkdir(exist_ok=True)
        self.max_mb = max_mb
        self.max_bytes = round(max_mb * MIB)
        self.db_path = self.root / DB_NAME
        self._lock = threading.RLock()  # one connection, one user at a time: searches take about a millisecond
        self.notes: list[str] = []  # what opening found: rows dropped, folders indexed, a rebuild
        self._db = self._open()
        self.reconcile()
        # The database file alone holds everything at rest from here on (a damaged file is then seen as damaged,
        # not read through a write-ahead log that still holds its pages).
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.status = " ".join([f"Library: every finished track is kept in {self.root}.", *self._rebuilt()])

    @classmethod
    def from_config(cls, config: ServerConfig | None = None) -> tuple[Library | None, str]:
        """The library the settings ask for, or None; and a line for the status: where it is, or why it is off."""
        config = config or ServerConfig.from_env()
        folder, why_off = library_location(config)
        if folder is None:
            return None, why_off
        try:
            library = cls(folder, max_mb=config.library_max_mb)
        except OSError as e:
            env = ServerConfig.env_name("library_dir")
            return None, f"Library off: cannot use {folder} ({e}); set {env} to a writable folder."
        return library, library.status

    # -- Keeping, reading and deleting --------------------------------------------------------------------------

    def add(
        self,
        owner: str,
        files: Mapping[str, str | Path] | Sequence[str | Path],
        recipe: Recipe,
        *,
        parent: str | None = None,
    ) -> Entry:
        """Move one finished track's files into ``owner``'s library; see ``add_many``."""
        return self.add_many(owner, [NewEntry(files, recipe, parent)])[0]

    def add_many(self, owner: str, tracks: Sequence[NewEntry]) -> list[Entry]:
        """Move finished tracks (a request's takes) into ``owner``'s library together: all of them or none.

        Each track's files are linked or copied into a new entry's folder, which is renamed into place; then
        the rows are inserted in one transaction; then the originals are removed. A parent left out is the
        entry whose WAV the recipe says it extended. Raises ``LibraryFullError`` when the owner's limit would
        be passed; nothing moves then.
        """
        # 1. Check the owner, the files and the parents
        owner_key = _owner_key(owner)
        sources = [_ordered_files(track.files) for track in tracks]
        parents = [check_id(track.parent) if track.parent is not None else None for track in tracks]
        size = sum(path.stat().st_size for files in sources for path in files)
        owner_dir = self.root / TRACKS / owner_key
        owner_dir.mkdir(exist_ok=True)
        with self._lock:
            parents = [given or self._parent_of(owner, t.recipe) for given, t in zip(parents, tracks, strict=True)]
        ids = [_new_id() for _ in tracks]
        now = datetime.now(timezone.utc)
        created = [(now + timedelta(microseconds=i)).isoformat(timespec="microseconds") for i in range(len(tracks))]
        partials = [owner_dir / f"{PARTIAL_PREFIX}{entry_id}" for entry_id in ids]

        # 2. Write each track's files under .partial-<id>, flushed, outside the lock (copies across disks take time)
        try:
            for partial, files, entry_id, when, parent in zip(partials, sources, ids, created, parents, strict=True):
                partial.mkdir()
                for source in files:
                    _link_or_copy(source, partial / source.name)
                record = {"owner": owner, "id": entry_id, "created": when, "parent": parent}
                _write_synced(partial / ENTRY_FILE, json.dumps(record, indent=2))
                _sync_dir(partial)

            # 3. Within the owner's limit: rename into place, then the rows in one transaction
            with self._lock:
                used = self.used_bytes(owner)
                if used + size > self.max_bytes:
                    raise LibraryFullError(
                        f"Your library is full: {_mb(used)} MB of {self.max_mb:g} MB used, and this track needs "
                        f"{_mb(size)} MB. Delete entries you no longer need to keep new tracks."
                    )
                finals: list[Path] = []
                try:
                    for partial, entry_id in zip(partials, ids, strict=True):
                        os.rename(partial, owner_dir / entry_id)
                        finals.append(owner_dir / entry_id)
                    _sync_dir(owner_dir)
                    with self._transaction():
                        for final, files, track, when, parent in zip(
                            finals, sources, tracks, created, parents, strict=True
                        ):
                            kept = _in_order([final / source.name for source in files], final / files[0].name)
                            size_of = sum(path.stat().st_size for path in kept)
                            wav_sha = _sha256(kept[0])
                            self._insert(
                                self._row(final.name, owner, when, track.recipe, kept, size_of, parent, wav_sha)
                            )
                except BaseException:
                    for final in finals:
                        shutil.rmtree(final, ignore_errors=True)
                    raise
        except BaseException:
            for partial in partials:
                shutil.rmtree(partial, ignore_errors=True)
            raise

        # 4. The originals go: the tracks now live only in the library
        for files in sources:
            for source in files:
                source.unlink(missing_ok=True)
            _remove_if_empty(files[0].parent)
        return [self.get(owner, entry_id) for entry_id in ids]

    def get(self, owner: str, entry_id: str) -> Entry:
        """``owner``'s entry ``entry_id``; the same message for one that does not exist and one of another owner."""
        entry_id = check_id(entry_id)
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM entries WHERE owner = ? AND id = ?", (_owner(owner), entry_id)
            ).fetchone()
        if row is None:
            raise InvalidInputError(f"There is no entry {entry_id!r} in your library; search it to see the ids.")
        return self._entry(row)

    def recipe(self, owner: str, entry_id: str) -> dict[str, Any]:
        """The recipe of ``owner``'s entry ``entry_id``."""
        entry = self.get(owner, entry_id)
        with self._lock:
            (recipe,) = self._db.execute("SELECT recipe FROM entries WHERE id = ?", (entry.id,)).fetchone()
        return json.loads(recipe)

    def search(self, owner: str, search: Search | None = None) -> list[Entry]:
        """``owner``'s entries matching ``search`` (default: all), newest first, at most ``search.limit``."""
        search = search or Search()
        clauses, values = ["owner = ?"], [_owner(owner)]
        match = search.match()
        if match is not None:
            clauses.append("n IN (SELECT rowid FROM entries_fts WHERE entries_fts MATCH ?)")
            values.append(match)
        if search.bpm_min is not None:
            clauses.append("bpm >= ?")
            values.append(search.bpm_min)
        if search.bpm_max is not None:
            clauses.append("bpm <= ?")
            values.append(search.bpm_max)
        if search.key is not None:
            clauses.append("key = ?")
            values.append(search.key)
        if search.model is not None:
            clauses.append("(model = ? OR model_id = ?)")
            values.extend([search.model, search.model])
        sql = f"SELECT {_COLUMNS} FROM entries WHERE {' AND '.join(clauses)} ORDER BY created DESC, id DESC LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, [*values, search.limit]).fetchall()
        return [self._entry(row) for row in rows]

    def delete(self, owner: str, entry_id: str) -> Entry:
        """Remove ``owner``'s entry ``entry_id``, row and files; returns what it was."""
        entry_id = check_id(entry_id)
        with self._lock:
            entry = self.get(owner, entry_id)
            folder = self.root / TRACKS / _owner_key(owner) / entry_id
            doomed = folder.with_name(f"{DELETED_PREFIX}{entry_id}")
            if folder.is_dir():
                os.rename(folder, doomed)  # first: a crash now leaves a row without files, dropped at the next open
            with self._transaction():
                self._db.execute("DELETE FROM entries WHERE owner = ? AND id = ?", (entry.owner, entry_id))
        shutil.rmtree(doomed, ignore_errors=True)
        return entry

    def used_bytes(self, owner: str) -> int:
        """Bytes of ``owner``'s files."""
        with self._lock:
            (used,) = self._db.execute(
                "SELECT coalesce(sum(size), 0) FROM entries WHERE owner = ?", (_owner(owner),)
            ).fetchone()
        return int(used)

    def owner_of(self, path: str | Path) -> str | None:
        """The owner of a file inside the library's entries, or None for any other path (links not followed)."""
        try:
            relative = Path(os.path.abspath(path)).relative_to(self.root / TRACKS)
        except ValueError:
            return None
        if len(relative.parts) < 3 or not ENTRY_ID.fullmatch(relative.parts[1]):
            return None
        with self._lock:
            row = self._db.execute("SELECT owner FROM entries WHERE id = ?", (relative.parts[1],)).fetchone()
        if row is None or _owner_key(row[0]) != relative.parts[0]:
            return None
        return row[0]

    def count(self) -> int:
        """Entries of every owner."""
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM entries").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- Opening and reconciling ------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Make the rows and the folders agree: drop rows whose files are gone, index folders that have no row."""
        with self._lock:
            self._drop_rows_without_files()
            self._index_folders_without_rows()

    def _open(self) -> sqlite3.Connection:
        """The database, checked; a missing, empty or damaged one is made anew (set aside when damaged)."""
        if not self.db_path.exists():  # a WAL left beside a deleted database belongs to no database now
            for suffix in ("-wal", "-shm"):
                Path(f"{self.db_path}{suffix}").unlink(missing_ok=True)
        existed = self.db_path.exists()
        try:
            db = self._connect()
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version == SCHEMA_VERSION and db.execute("PRAGMA quick_check").fetchone()[0] == "ok":
                return db
            if version == 0 and not db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                if self._has_folders():
                    what = "empty" if existed else "missing"
                    log.warning("The library database %s was %s: rebuilding it from the files", self.db_path, what)
                    self.notes.append(f"The library database was {what}; it was rebuilt from the files in {self.root}.")
                return self._made(db)
            db.close()
            problem = "it failed SQLite's integrity check"
            if version != SCHEMA_VERSION:
                problem = f"its format is version {version}, this Moodtape reads {SCHEMA_VERSION}"
        except sqlite3.DatabaseError as e:
            problem = str(e)
        aside = self._set_aside()
        log.warning("The library database %s is damaged (%s): rebuilding it from the files", self.db_path, problem)
        self.notes.append(
            f"The library database was damaged ({problem}); it was rebuilt from the files in {self.root} "
            f"(the damaged file is kept as {aside.name})."
        )
        return self._made(self._connect())

    def _made(self, db: sqlite3.Connection) -> sqlite3.Connection:
        """``db`` with the library's tables, made in one transaction."""
        db.executescript(f"BEGIN; {_SCHEMA} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")
        return db

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.db_path, check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000
        )
        try:
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")  # a kept track's row survives a power cut, not only a crash
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def _set_aside(self) -> Path:
        """Move the damaged database (and its WAL and shared-memory files) out of the way; return its new path."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        aside = self.db_path.with_name(f"{DB_NAME}.damaged-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            path = Path(f"{self.db_path}{suffix}")
            if path.exists():
                os.replace(path, f"{aside}{suffix}")
        return aside

    def _has_folders(self) -> bool:
        return any(self._entry_folders())

    def _entry_folders(self) -> Iterable[tuple[str, Path]]:
        """(owner key, folder) of every finished entry folder; stale half-written and half-deleted ones go."""
        tracks = self.root / TRACKS
        for owner_dir in sorted(tracks.iterdir()) if tracks.is_dir() else ():
            if owner_dir.is_symlink() or not owner_dir.is_dir():
                continue
            for folder in sorted(owner_dir.iterdir()):
                if folder.is_symlink() or not folder.is_dir():
                    continue
                if folder.name.startswith(DELETED_PREFIX) or (
                    folder.name.startswith(PARTIAL_PREFIX) and time.time() - folder.stat().st_mtime > STALE_PARTIAL_S
                ):
                    shutil.rmtree(folder, ignore_errors=True)
                elif ENTRY_ID.fullmatch(folder.name):
                    yield owner_dir.name, folder

    def _drop_rows_without_files(self) -> None:
        rows = self._db.execute("SELECT id, owner, files FROM entries").fetchall()
        for entry_id, owner, files_json in rows:
            files = json.loads(files_json)
            present = [name for name in files if (self.root / name).is_file()]
            if present and present[0] == files[0]:
                if len(present) < len(files):  # a download deleted by hand: the entry keeps what is left
                    left = sum((self.root / name).stat().st_size for name in present)
                    with self._transaction():
                        self._db.execute(
                            "UPDATE entries SET files = ?, size = ? WHERE id = ?", (json.dumps(present), left, entry_id)
                        )
                continue
            log.warning("Library entry %s of %r has lost its WAV (%s): dropping its row", entry_id, owner, files[0])
            self.notes.append(f"Entry {entry_id} was dropped: its WAV is gone.")
            with self._transaction():
                self._db.execute("DELETE FROM entries WHERE id = ?", (entry_id,))
            shutil.rmtree(self.root / TRACKS / _owner_key(owner) / entry_id, ignore_errors=True)

    def _index_folders_without_rows(self) -> None:
        known = {row[0] for row in self._db.execute("SELECT id FROM entries")}
        found = [(key, folder) for key, folder in self._entry_folders() if folder.name not in known]
        orphans: list[tuple[str, str, Recipe]] = []  # indexed without a parent: looked up once all are in
        with self._transaction():  # one commit for a whole rebuild: 10,000 entries in seconds, not minutes
            for owner_key, folder in found:
                try:
                    row, recipe = self._row_of_folder(owner_key, folder)
                    self._insert(row)
                except (InvalidInputError, OSError, ValueError, sqlite3.IntegrityError) as e:
                    log.warning("Library folder %s could not be indexed (%s); leaving it as it is", folder, e)
                    self.notes.append(f"The folder {folder.name} could not be indexed: {e}")
                    continue
                if row["parent"] is None:
                    orphans.append((row["id"], row["owner"], recipe))
            for entry_id, owner, recipe in orphans:
                parent = self._parent_of(owner, recipe)
                if parent is not None and parent != entry_id:
                    self._db.execute("UPDATE entries SET parent = ? WHERE id = ?", (parent, entry_id))
        if found:
            log.info("Library: indexed %d entries from their files", len(found))

    def _row_of_folder(self, owner_key: str, folder: Path) -> tuple[dict[str, Any], Recipe]:
        """One entry's row again, from its entry.json and the recipe its WAV carries; and that recipe."""
        record = _read_record(folder / ENTRY_FILE)
        owner = record.get("owner") or _owner_from_key(owner_key)
        if _owner_key(owner) != owner_key:
            raise ValueError(f"entry.json names the owner {owner!r}, but the folder is another owner's")
        wav, recipe = _main_wav(folder)
        kept = _in_order([p for p in folder.iterdir() if p.is_file() and p.name != ENTRY_FILE], wav)
        created = record.get("created") or recipe.created_at
        parent = record.get("parent")
        parent = parent if isinstance(parent, str) and ENTRY_ID.fullmatch(parent) else None
        size = sum(path.stat().st_size for path in kept)
        return self._row(folder.name, owner, created, recipe, kept, size, parent, _sha256(wav)), recipe

    def _insert(self, row: dict[str, Any]) -> None:
        self._db.execute(f"INSERT INTO entries ({', '.join(row)}) VALUES ({_marks(row)})", [*row.values()])

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error (the connection is otherwise in autocommit)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _rebuilt(self) -> list[str]:
        return [note for note in self.notes if "rebuilt" in note]

    # -- Rows -------------------------------------------------------------------------------------------------

    def _row(
        self,
        entry_id: str,
        owner: str,
        created: str,
        recipe: Recipe,
        files: list[Path],
        size: int,
        parent: str | None,
        wav_sha256: str,
    ) -> dict[str, Any]:
        tempo = recipe.tempo or {}
        bpm = tempo.get("bpm", tempo.get("measured_bpm"))
        return {
            "id": entry_id,
            "owner": owner,
            "created": created,
            "prompt": recipe.settings.prompt,
            "preset": recipe.preset,
            "model": recipe.model_name or recipe.model_id,
            "model_id": recipe.model_id,
            "seconds": float(recipe.audio_seconds),
            "bpm": float(bpm) if isinstance(bpm, (int, float)) else None,
            "key": tempo.get("key"),
            "seed": recipe.settings.seed,
            "parent": parent,
            "recipe": recipe.to_json(),
            "files": json.dumps([path.relative_to(self.root).as_posix() for path in files]),
            "wav_sha256": wav_sha256,
            "size": size,
        }

    def _entry(self, row: tuple) -> Entry:
        entry_id, owner, created, prompt, preset, model, seconds, bpm, key, seed, parent, files, size = row
        paths = tuple(self.root / name for name in json.loads(files))
        return Entry(entry_id, owner, created, prompt, preset, model, seconds, bpm, key, seed, parent, paths, size)

    def _parent_of(self, owner: str, recipe: Recipe) -> str | None:
        """The entry of ``owner`` whose WAV the recipe extended or edited, found by the WAV's sha256."""
        digest = (recipe.extend or recipe.replace or {}).get("sha256")
        if not digest:
            return None
        row = self._db.execute(
            "SELECT id FROM entries WHERE owner = ? AND wav_sha256 = ? ORDER BY created LIMIT 1", (owner, digest)
        ).fetchone()
        return row[0] if row else None


def library_location(config: ServerConfig) -> tuple[Path | None, str]:
    """Where the library lives, or None and why it is off.

    ``MOODTAPE_LIBRARY_DIR``: a folder, or ``off``; unset, a per-user data folder when run locally, and on a
    Hugging Face Space its persistent storage (``/data``) when one is mounted and writable.
    """
    env = ServerConfig.env_name("library_dir")
    if config.library_dir == "off":
        return None, (
            f"Library off ({env}=off): tracks stay in the per-tab history, and their files are removed after "
            f"{config.output_max_age_h:g} h."
        )
    if config.library_dir is not None:
        return Path(config.library_dir), ""
    if config.space_id:
        if SPACE_STORAGE.is_dir() and os.access(SPACE_STORAGE, os.W_OK):
            return SPACE_STORAGE / "moodtape-library", ""
        return None, (
            f"Library off: this Space has no persistent storage at {SPACE_STORAGE}, so kept tracks would vanish at "
            f"the next restart. Add persistent storage in the Space's settings, or set {env} to a folder."
        )
    import platformdirs

    return Path(platformdirs.user_data_dir("moodtape", appauthor=False)) / "library", ""


def library_status(library: Library | None, config: ServerConfig) -> str:
    """For the status line: where the library is (and whether it was just rebuilt), or why there is none."""
    if library is not None:
        return library.status
    folder, why_off = library_location(config)
    env = ServerConfig.env_name("library_dir")
    return why_off or f"Library off: {folder} could not be used (the log says why); set {env} to a writable folder."


def search_entries(library: Library | None, owner: str | None, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """/library: ``owner``'s entries matching the values (query, bpm_min, bpm_max, key, model, limit), as JSON."""
    library = _usable(library, owner)
    search = Search.of(
        values.get("query"), values.get("bpm_min"), values.get("bpm_max"), values.get("key"), values.get("model"),
        values.get("limit"),
    )  # fmt: skip
    return [entry.to_dict() for entry in library.search(owner, search)]


def delete_entry(library: Library | None, owner: str | None, entry_id: object) -> dict[str, Any]:
    """/library_delete: remove ``owner``'s entry (row and files); returns what it was, as JSON."""
    return _usable(library, owner).delete(owner, check_id(entry_id)).to_dict()


def _usable(library: Library | None, owner: str | None) -> Library:
    if library is None:
        raise InvalidInputError(
            "This server keeps no library (MOODTAPE_LIBRARY_DIR is off, or the Space has no persistent storage): "
            "tracks stay in the page's history and the output folder."
        )
    if owner is None:
        raise InvalidInputError(SIGN_IN)
    return library


def check_id(value: object) -> str:
    """An entry id as given, or ``InvalidInputError``: ids are a UTC time and 8 hex digits, nothing else."""
    if not isinstance(value, str) or not ENTRY_ID.fullmatch(value.strip()):
        raise InvalidInputError(
            f"id must be a library entry's id such as 20261206-013000-1a2b3c4d (from /library), got {quoted(value)}."
        )
    return value.strip()


# -- Helpers -------------------------------------------------------------------------------------------------------


def _owner(owner: object) -> str:
    if not isinstance(owner, str) or not owner.strip() or len(owner) > MAX_OWNER_CHARS or not owner.isprintable():
        raise InvalidInputError(f"owner must be a user's name (printable, 1 to {MAX_OWNER_CHARS} characters).")
    return owner


def _owner_key(owner: str) -> str:
    """The owner's folder name: the name's UTF-8 bytes in hex, so no name can climb out or collide by case."""
    return _owner(owner).encode("utf-8").hex()


def _owner_from_key(key: str) -> str:
    try:
        return bytes.fromhex(key).decode("utf-8")
    except ValueError as e:
        raise ValueError(f"the folder name {key!r} is not an owner's folder") from e


def _new_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{os.urandom(4).hex()}"


def _mb(size: int) -> str:
    megabytes = size / MIB
    return f"{megabytes:.1f}" if megabytes >= 1 or megabytes == 0 else f"{megabytes:.2g}"


def _marks(row: Mapping[str, Any]) -> str:
    return ", ".join("?" for _ in row)


def _ordered_files(files: Mapping[str, str | Path] | Iterable[str | Path]) -> list[Path]:
    """The files as paths, the mix's WAV first; each must exist and be a plain file, names unique."""
    if isinstance(files, Mapping):
        wav = files.get("wav")
        paths = [Path(wav)] if wav else []
        paths += [Path(p) for kind, p in files.items() if kind != "wav"]
    else:
        paths = [Path(p) for p in files]
    if not paths or paths[0].suffix.lower() != ".wav":
        raise InvalidInputError("A track kept in the library needs its WAV first among its files.")
    names = [path.name for path in paths]
    if len(set(names)) != len(names) or ENTRY_FILE in names:
        raise InvalidInputError(f"A track's files need distinct names, other than {ENTRY_FILE}: got {names}.")
    for path in paths:
        if path.is_symlink() or not path.is_file():
            raise InvalidInputError(f"{path.name!r} is not a finished file, so it cannot be kept in the library.")
    return paths


def _in_order(files: list[Path], wav: Path) -> list[Path]:
    """An entry's files as its row lists them: the mix's WAV, then the others by name."""
    return [wav, *sorted((path for path in files if path != wav), key=lambda path: path.name)]


def _link_or_copy(source: Path, target: Path) -> None:
    """``target`` as a hard link to ``source`` (same disk), else a flushed copy."""
    try:
        os.link(source, target)
    except OSError:
        with open(source, "rb") as read, open(target, "wb") as write:
            shutil.copyfileobj(read, write, 1024 * 1024)
            write.flush()
            os.fsync(write.fileno())
        shutil.copystat(source, target)


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _sync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk, where the system allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def _sha256(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_record(path: Path) -> dict[str, Any]:
    """An entry's entry.json, or nothing when it is missing or unreadable (the folder's name and recipe then do)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _main_wav(folder: Path) -> tuple[Path, Recipe]:
    """The mix's WAV in an entry's folder and its recipe: the WAV with a recipe whose name the others extend."""
    wavs = sorted((p for p in folder.glob("*.wav") if not p.name.startswith(PARTIAL_PREFIX)), key=lambda p: len(p.name))
    for wav in wavs:
        recipe = embedded_recipe(wav)
        if recipe is not None:
            return wav, recipe
    raise InvalidInputError(f"no WAV in {folder.name} carries a Moodtape recipe")


def embedded_recipe(path: str | Path) -> Recipe | None:
    """The Moodtape recipe a file carries (in its tags, or beside it as ``<name>.recipe.json``), or None."""
    path = Path(path)
    beside = path.with_suffix("").with_suffix(RECIPE_SUFFIX)
    try:
        if beside.is_file():
            return Recipe.load(beside)
        recipe_json = read_metadata(path).get("recipe_json")
        return Recipe.from_dict(json.loads(recipe_json)) if recipe_json else None
    except (InvalidInputError, ValueError):
        return None  # a file with foreign or broken tags simply has no recipe to reuse


def _bpm(value: object, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        bpm = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        bpm = math.nan
    if isinstance(value, bool) or not (0 <= bpm <= MAX_BPM):
        raise InvalidInputError(f"{name} must be a tempo in BPM from 0 to {MAX_BPM:g}, got {quoted(value)}.")
    return bpm


def _key(value: object) -> str | None:
    """A key as measured keys are named ("A minor", "C# major"): flats are spelt as the sharps they equal."""
    key = parse_key(value)
    return None if key is None else f"{SHARP_NAMES[key.tonic]} {key.mode}"


def _limit(value: object) -> int:
    if value is None or value == "":
        return DEFAULT_LIMIT
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise InvalidInputError(f"limit must be a whole number of entries from 1 to {MAX_LIMIT}, got {quoted(value)}.")
    return value
