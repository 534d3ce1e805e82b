"""Write the three hum recordings shipped in ``examples/`` for people to try the melody input.

The hums come from ``scripts/hums.py``, mono at 32 kHz (MusicGen's rate), each with a little quiet before and
after as in a real recording. The output is deterministic, so running the script again rewrites the same files
(OGG/Vorbis bytes may differ between libsndfile releases).

    python -m scripts.make_example_hums [FOLDER]   # from the repository root; default FOLDER: examples/
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import soundfile

from scripts.hums import hum

RATE = 32_000  # MusicGen's sample rate; the app resamples anything else anyway
LEAD_SECONDS = 0.2  # silence before the first note, as in a real recording
TAIL_SECONDS = 0.3  # silence after the last note


@dataclass(frozen=True)
class ExampleHum:
    """One shipped file: its name (with the suffix that picks the format), notes and note length."""

    name: str
    notes: tuple[str, ...]  # note names such as "A3" or "C#4"; "-" is a rest
    note_seconds: float
    format: str  # soundfile format
    subtype: str  # soundfile subtype


EXAMPLES = (
    ExampleHum("hum-rising-arpeggio.wav", ("A3", "C#4", "E4", "A4", "C#5", "E5"), 0.6, "WAV", "PCM_16"),
    ExampleHum("hum-lullaby.ogg", ("E4", "G4", "E4", "C4", "D4", "E4", "D4", "-"), 0.6, "OGG", "VORBIS"),
    ExampleHum("hum-minor-riff.flac", ("D4", "F4", "A4", "G4", "F4", "E4", "D4", "-"), 0.5, "FLAC", "PCM_16"),
)


def main(argv: list[str]) -> None:
    folder = Path(argv[0]) if argv else Path(__file__).resolve().parent.parent / "examples"
    folder.mkdir(parents=True, exist_ok=True)
    for seed, example in enumerate(EXAMPLES):
        samples = hum(example.notes, example.note_seconds, RATE, seed=seed, lead=LEAD_SECONDS, tail=TAIL_SECONDS)
        path = folder / example.name
        soundfile.write(path, samples, RATE, format=example.format, subtype=example.subtype)
        print(f"{path}: {len(samples) / RATE:.1f} s, {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main(sys.argv[1:])
