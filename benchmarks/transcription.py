"""How well and how fast audio becomes notes: mir_eval scores on music whose notes are known, and the cost.

The music is written as MIDI and rendered from it (``tests/midi_factory.py``): a hummed tune (vibrato, breath,
glides, repeated notes), a plucked bass, piano block chords and a drum kit at one tempo; the drums are also
scored on the three patterns at other tempos (``OTHER_DRUMS``) and on a kick-only loop (no snare or hat), and a
mix without drums should give no hits.
Each part is transcribed alone (a stem) and from the mix of all four. Demucs' pretrained weights come from the
Hugging Face hub, which this machine cannot reach, so the mix is split by band
(``generation.midi.transcribe.split_bands``), the fallback the app uses when the weights are missing.

Scores: notes F1 with onsets within 50 ms and pitch within 50 cents, offsets ignored (mir_eval.transcription);
chords right on the share of beats (mir_eval's major/minor comparison, each beat judged at its middle); drums F1
per class with onsets within 50 ms (mir_eval.onset). Cost per 10 s of audio, best of ``--repeats`` after a
warm-up call (librosa's numba code compiles on first use): wall-clock seconds, and this process's CPU seconds,
which other work on a shared machine does not inflate (the transcription runs on one core: pYIN's Viterbi pass
and the peak picking are single-threaded).

    python -m benchmarks.transcription [--bars 8] [--repeats 2]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from generation.midi.notes import DRUM_NAMES, KICK, Chord, Note
from generation.midi.transcribe import (
    BASS,
    HUM,
    transcribe_audio,
    transcribe_chords,
    transcribe_drums,
    transcribe_line,
)

ONSET_TOLERANCE = 0.05  # seconds
# (pattern, BPM): drums beside the main piece's rock at 100 BPM
OTHER_DRUMS = (("dance", 128.0), ("funk", 84.0), ("dance", 100.0), ("rock", 128.0), ("funk", 96.0))
KICKS_ONLY_BPM = 128.0  # a kick-only loop, alone (the stem)
PITCH_TOLERANCE = 50.0  # cents


def notes_f1(reference: Sequence[Note], estimate: Sequence[Note]) -> float:
    """mir_eval's note F1: onset within 50 ms, pitch within 50 cents, offsets not judged."""
    import mir_eval

    if not reference or not estimate:
        return 0.0
    ref = np.array([[n.start, n.end] for n in reference]), np.array([n.hz for n in reference])
    est = np.array([[n.start, n.end] for n in estimate]), np.array([n.hz for n in estimate])
    _, _, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
        *ref, *est, onset_tolerance=ONSET_TOLERANCE, pitch_tolerance=PITCH_TOLERANCE, offset_ratio=None
    )
    return float(f1)


def drums_f1(reference: Sequence[Note], estimate: Sequence[Note]) -> dict[str, float]:
    """Onset F1 (within 50 ms) of each drum: {"kick": ..., "snare": ..., "hi-hat": ...}."""
    import mir_eval

    scores = {}
    for key, name in DRUM_NAMES.items():
        ref = np.array([n.start for n in reference if n.pitch == key])
        est = np.array([n.start for n in estimate if n.pitch == key])
        scores[name] = float(mir_eval.onset.f_measure(ref, est, window=ONSET_TOLERANCE)[0]) if len(est) else 0.0
    return scores


def chords_per_beat(reference: Sequence[Chord], estimate: Sequence[Chord], bpm: float, seconds: float) -> float:
    """Share of beats whose chord (major/minor triad, judged mid-beat) is right."""
    import mir_eval

    beat = 60.0 / bpm
    middles = np.arange(beat / 2, seconds, beat)
    refs = [_chord_at(reference, t) for t in middles]
    ests = [_chord_at(estimate, t) for t in middles]
    judged = [(r, e) for r, e in zip(refs, ests, strict=True) if r != "N"]
    if not judged:
        return 0.0
    right = mir_eval.chord.majmin([r for r, _ in judged], [e for _, e in judged])
    return float(np.mean(np.maximum(right, 0)))


def _chord_at(chords: Sequence[Chord], seconds: float) -> str:
    return next((c.label for c in chords if c.start <= seconds < c.end), "N")


def measure(bars: int = 8, repeats: int = 2, seconds_per: float = 10.0) -> list[tuple[str, str, float, tuple]]:
    """(part, source, score, (wall, CPU) seconds per ``seconds_per`` s) rows for stems and the band-split mix."""
    from tests.midi_factory import RATE, mix, render_parts, score

    piece = score(bars=bars)
    with tempfile.TemporaryDirectory() as folder:
        parts = render_parts(piece, Path(folder))
    song = mix(parts)
    seconds = len(song) / RATE
    truth = {name: piece.track(name).notes for name in ("melody", "bass", "drums")}

    def timed(run):
        result, wall, cpu = None, float("inf"), float("inf")
        for _ in range(max(1, repeats)):
            start, start_cpu = time.perf_counter(), time.process_time()
            result = run()
            wall, cpu = min(wall, time.perf_counter() - start), min(cpu, time.process_time() - start_cpu)
        return result, (wall / seconds * seconds_per, cpu / seconds * seconds_per)

    transcribe_audio(song[: RATE * 4], RATE)  # warm-up: numba compiles pYIN's Viterbi and the beat tracker
    rows = []
    hum, cost = timed(lambda: transcribe_line(parts["melody"], RATE, HUM))
    rows.append(("hum notes F1", "stem", notes_f1(truth["melody"], hum), cost))
    bass, cost = timed(lambda: transcribe_line(parts["bass"], RATE, BASS))
    rows.append(("bass notes F1", "stem", notes_f1(truth["bass"], bass), cost))
    chords, cost = timed(lambda: transcribe_chords(parts["chords"] + parts["bass"], RATE, _beats(piece)))
    rows.append(("chords per beat", "stem (chords + bass)", chords_per_beat(piece.chords, chords, piece.bpm,
                                                                             piece.seconds), cost))  # fmt: skip
    drums, cost = timed(lambda: transcribe_drums(parts["drums"], RATE))
    rows += [(f"drums {name} F1", "stem", value, cost) for name, value in drums_f1(truth["drums"], drums).items()]

    found, cost = timed(lambda: transcribe_audio(song, RATE))
    rows.append(("lead notes F1", "mix, band-split", notes_f1(truth["melody"], found.track("lead").notes), cost))
    rows.append(("bass notes F1", "mix, band-split", notes_f1(truth["bass"], _notes(found, "bass")), cost))
    rows.append(("chords per beat", "mix, band-split",
                 chords_per_beat(piece.chords, found.chords, piece.bpm, piece.seconds), cost))  # fmt: skip
    mixed_drums = drums_f1(truth["drums"], _notes(found, "drums"))
    rows += [(f"drums {name} F1", "mix, band-split", value, cost) for name, value in mixed_drums.items()]

    # the drums of other patterns at other tempos, from the whole mix, and a drumless mix (hits found: none is right)
    for pattern, bpm in OTHER_DRUMS:
        other = score(bars=bars, bpm=bpm, pattern=pattern)
        with tempfile.TemporaryDirectory() as folder:
            other_song = mix(render_parts(other, Path(folder)))
        drums, cost = timed(lambda song=other_song: transcribe_drums(song, RATE))
        source = f"mix, {pattern} {bpm:g} BPM"
        scores = drums_f1(other.track("drums").notes, drums)
        rows += [(f"drums {name} F1", source, value, cost) for name, value in scores.items()]
    # a kick-only loop (no snare or hat to show a kit): its kicks, and the snares and hats wrongly found (none right)
    kicks = score(bars=bars, bpm=KICKS_ONLY_BPM, pattern="kicks")
    with tempfile.TemporaryDirectory() as folder:
        loop = render_parts(kicks, Path(folder))["drums"]
    hits, cost = timed(lambda: transcribe_drums(loop, RATE))
    source = f"kick-only loop {KICKS_ONLY_BPM:g} BPM"
    rows.append(("drums kick F1", source, drums_f1(kicks.track("drums").notes, hits)["kick"], cost))
    rows.append(("other drums found", source, float(sum(n.pitch != KICK for n in hits)), cost))
    drumless = parts["melody"] + parts["bass"] + parts["chords"]
    hits, cost = timed(lambda: transcribe_drums(drumless, RATE))
    rows.append(("drum hits found", "mix without drums", float(len(hits)), cost))
    return rows


def _beats(piece) -> np.ndarray:
    return np.arange(0.0, piece.seconds, 60.0 / piece.bpm)


def _notes(found, name: str) -> tuple[Note, ...]:
    track = found.track(name)
    return track.notes if track else ()


def cpu_name() -> str:
    """The CPU's model name and the cores this process may use."""
    import os

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {len(os.sched_getaffinity(0))} cores"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=8, help="bars of music at 100 BPM (8 bars: 19.7 s)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each step; the best is shown")
    args = parser.parse_args(argv)
    rows = measure(args.bars, args.repeats)
    print(f"Transcription on {cpu_name()}; {args.bars} bars at 100 BPM")
    print(f"{'what':<18} {'from':<22} {'score':>6}  {'wall s / 10 s':>13}  {'CPU s / 10 s':>12}")
    for what, source, value, (wall, cpu) in rows:
        print(f"{what:<18} {source:<22} {value:>6.3f}  {wall:>13.2f}  {cpu:>12.2f}")
    print("Mix rows: the whole transcribe_audio (tempo, bass, lead, chords, drums) per 10 s; Demucs not run "
          "(its weights cannot be downloaded here), so the mix is split by band.")  # fmt: skip


if __name__ == "__main__":
    main()
