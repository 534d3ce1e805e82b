"""What the library costs with 10,000 entries: a search (FTS5), beside a plain LIKE scan of the same table.

Writes one real track with the export code, then 10,000 entry folders of one owner (and 2,000 of others) that
hard-link its WAV, each with its own recipe beside it (prompts from a word list, tempo, key and model varied),
as the library keeps them. Opening the library then indexes every folder from its recipe: that is a rebuild,
timed; a second open (the reconcile every start-up does) is timed too. Each search runs as ``/library`` does:
``Search.of`` on the raw values, ``Library.search``, each entry as JSON.

    python -m benchmarks.library [--entries 10000] [--repeats 20]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.melody_separation import machine
from generation.library import _COLUMNS, ENTRY_FILE, TRACKS, Library, Search, _owner_key
from generation.recipe import Recipe
from tests.test_library import write_track

OWNER, OTHERS = "benchmark", ("someone", "someone-else")
WORDS = (
    "mellow piano rainy night lofi beat warm rhodes vinyl crackle deep house groove sub bass chord stabs "
    "cinematic strings brass swell taiko choir ambient drone pads evolving slow fast driving guitar jangly "
    "garage drums synthwave retro arpeggio neon funk slap wah clavinet horns jazz trio walking brushed "
    "reggaeton dembow latin percussion folk fingerpicked harmonica chiptune square lead epic metal riffs"
).split()
KEYS = [f"{tonic} {mode}" for tonic in ("C", "D", "E", "F", "G", "A", "B", "C#", "F#") for mode in ("major", "minor")]
MODELS = ("text", "melody", "stereo")
SEARCHES: dict[str, dict] = {
    "everything, newest 50": {},
    "one word (piano)": {"query": "piano"},
    "two words (mellow piano)": {"query": "mellow piano"},
    "a word's prefix (synth)": {"query": "synth"},
    "word + BPM 90-110": {"query": "bass", "bpm_min": 90, "bpm_max": 110},
    "key (A minor)": {"key": "A minor"},
    "model + key + BPM": {"model": "melody", "key": "C major", "bpm_min": 100},
    "a word no entry has": {"query": "bagpipes"},
}


def fill(root: Path, entries: int, seed: int = 0) -> None:
    """``entries`` folders for OWNER and a sixth as many for others, each a hard link of one real WAV."""
    rng = random.Random(seed)
    paths, recipe = write_track(root / "outputs", "template", formats=("wav",))
    wav = paths["wav"]
    template = recipe.to_dict()
    owners = [OWNER] * entries + [rng.choice(OTHERS) for _ in range(entries // 5)]
    for n, owner in enumerate(owners):
        entry_id = f"2026{1 + n // 400000:02d}{1 + (n // 14400) % 28:02d}-{(n // 3600) % 24:02d}{(n // 60) % 60:02d}"
        entry_id += f"{n % 60:02d}-{n:08x}"
        folder = root / "library" / TRACKS / _owner_key(owner) / entry_id
        folder.mkdir(parents=True)
        data = json.loads(json.dumps(template))
        data["settings"]["prompt"] = " ".join(rng.sample(WORDS, rng.randint(3, 8)))
        data["settings"]["seed"] = n
        data["tempo"] = {"measured_bpm": round(rng.uniform(60, 180), 2), "key": rng.choice(KEYS), "described": ""}
        data["model_name"] = rng.choice(MODELS)
        os.link(wav, folder / "track.wav")
        (folder / "track.recipe.json").write_text(Recipe.from_dict(data).to_json())
        created = f"2026-{1 + n % 12:02d}-01T00:00:{n % 60:02d}.{n:06d}+00:00"
        (folder / ENTRY_FILE).write_text(json.dumps({"owner": owner, "id": entry_id, "created": created}))


def timed(run: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median milliseconds of ``repeats`` runs, and the last result."""
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


def like_scan(library: Library, filters: dict) -> Callable[[], list]:
    """The plain baseline: one SELECT with LIKE '%word%' per word over prompt, preset and model, same filters,
    its rows turned into the same JSON entries."""
    db = sqlite3.connect(library.db_path, check_same_thread=False)
    clauses, values = ["owner = ?"], [OWNER]
    for word in (filters.get("query") or "").split():
        clauses.append("(prompt LIKE ? OR preset LIKE ? OR model LIKE ?)")
        values += [f"%{word}%"] * 3
    for name, sql in (("bpm_min", "bpm >= ?"), ("bpm_max", "bpm <= ?"), ("key", "key = ?"), ("model", "model = ?")):
        if name in filters:
            clauses.append(sql)
            values.append(filters[name])
    sql = f"SELECT {_COLUMNS} FROM entries WHERE {' AND '.join(clauses)} ORDER BY created DESC LIMIT 50"
    return lambda: [library._entry(row).to_dict() for row in db.execute(sql, values)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000, help="entries of the searching owner (default 10000)")
    parser.add_argument("--repeats", type=int, default=20, help="runs per search; the median is shown (default 20)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="moodtape-library-bench-") as folder:
        root = Path(folder)
        fill(root, args.entries)
        started = time.perf_counter()
        library = Library(root / "library")
        rebuild_s = time.perf_counter() - started
        total = library.count()
        library.close()
        started = time.perf_counter()
        library = Library(root / "library")
        reopen_s = time.perf_counter() - started

        print(f"Machine: {machine()}; SQLite {sqlite3.sqlite_version}")
        print(f"{args.entries} entries of one owner, {total} in all")
        print(f"opening with no database (a rebuild from {total} folders' recipes): {rebuild_s:.1f} s")
        print(f"opening again (the start-up reconcile): {reopen_s * 1000:.0f} ms")
        print()
        print(f"| search (median of {args.repeats}; 50 at most) | found | /library: FTS5 | found | plain LIKE scan |")
        print("|---|---|---|---|---|")
        for name, filters in SEARCHES.items():

            def search(filters=filters) -> list[dict]:
                return [entry.to_dict() for entry in library.search(OWNER, Search.of(**filters))]

            fts_ms, found = timed(search, args.repeats)
            like_ms, like_found = timed(like_scan(library, filters), args.repeats)
            print(f"| {name} | {len(found)} | {fts_ms:.2f} ms | {len(like_found)} | {like_ms:.2f} ms |")
        library.close()


if __name__ == "__main__":
    main()
