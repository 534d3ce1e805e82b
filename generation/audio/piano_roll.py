"""A piano-roll picture of note tracks: pitch against time, one colour per part, drums in a strip below.

Drawn like the other pictures (``pictures.py``): matplotlib's Agg canvas, no pyplot, returned as RGB ``uint8``
``[height, width, 3]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..midi.notes import DRUM_NAMES, PITCH_CLASSES, Chord, NoteTrack
from .pictures import DPI, WIDTH_PX, _render, stem_colour

PIANO_ROLL_HEIGHT_PX = 420  # pitched notes
DRUM_STRIP_PX = 90  # kick, snare and hi-hat rows, when there are drums
TRACK_COLOURS = {"melody": "#6a4c93", "lead": "#00798c", "bass": "#edae49", "chords": "#66a182", "drums": "#d1495b"}


def piano_roll_picture(tracks: Sequence[NoteTrack], chords: Sequence[Chord] = (), title: str = "") -> np.ndarray:
    """Every pitched track's notes as bars on a pitch axis (C of each octave named), chord names along the top,
    and drum hits as ticks in a strip below; an empty roll says that no notes were heard."""
    from matplotlib.figure import Figure

    pitched = [t for t in tracks if not t.drums and t.notes]
    drums = [t for t in tracks if t.drums and t.notes]
    height = PIANO_ROLL_HEIGHT_PX + (DRUM_STRIP_PX if drums else 0)
    figure = Figure(figsize=(WIDTH_PX / DPI, height / DPI), dpi=DPI)
    ratios = [PIANO_ROLL_HEIGHT_PX, DRUM_STRIP_PX] if drums else [1]
    axes = figure.subplots(len(ratios), 1, sharex=True, squeeze=False, gridspec_kw={"height_ratios": ratios})[:, 0]
    roll = axes[0]
    end = max([n.end for t in tracks for n in t.notes] + [c.end for c in chords] + [1.0])

    # 1. Pitched notes, one colour per track
    pitches = [n.pitch for t in pitched for n in t.notes]
    low, high = (min(pitches) - 2, max(pitches) + 2) if pitches else (48, 72)
    for index, track in enumerate(pitched):
        colour = TRACK_COLOURS.get(track.name, stem_colour(track.name, index))
        bars = [(n.start, n.end - n.start) for n in track.notes]
        for pitch in sorted({n.pitch for n in track.notes}):
            spans = [bar for bar, n in zip(bars, track.notes, strict=True) if n.pitch == pitch]
            roll.broken_barh(spans, (pitch - 0.4, 0.8), facecolors=colour, edgecolor="black", linewidth=0.3)
        roll.plot([], [], color=colour, linewidth=6, label=f"{track.name} ({len(track.notes)})")
    roll.set_ylim(low, high)
    octaves = [p for p in range(low, high + 1) if p % 12 == 0]
    roll.set_yticks(octaves)
    roll.set_yticklabels([f"{PITCH_CLASSES[0]}{p // 12 - 1}" for p in octaves])
    roll.grid(axis="y", color="#dddddd", linewidth=0.5)
    roll.set_ylabel("pitch")
    if pitched:
        roll.legend(loc="upper right", fontsize=8)
    else:
        roll.text(end / 2, (low + high) / 2, "no pitched notes heard", ha="center", va="center", color="#777777")

    # 2. Chord names along the top, at each change
    previous = None
    for chord in chords:
        if chord.name != previous and chord.name != "N":
            roll.text(chord.start, high - 0.5, chord.name, fontsize=8, va="top", color="#333333")
        previous = chord.name
    if title:
        roll.set_title(title, fontsize=11)

    # 3. Drums: one row per drum
    if drums:
        strip = axes[1]
        keys = sorted(DRUM_NAMES)
        for track in drums:
            for row, key in enumerate(keys):
                times = [n.start for n in track.notes if n.pitch == key]
                strip.vlines(times, row - 0.35, row + 0.35, color=TRACK_COLOURS["drums"], linewidth=2.5)
        strip.set_yticks(range(len(keys)))
        strip.set_yticklabels([DRUM_NAMES[k] for k in keys], fontsize=8)
        strip.set_ylim(-0.6, len(keys) - 0.4)
    axes[-1].set_xlabel("time (s)")
    axes[-1].set_xlim(0.0, end)
    figure.tight_layout(pad=0.6)
    return _render(figure)
