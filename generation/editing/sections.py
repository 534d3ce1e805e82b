"""A song's sections as a request gives them: read and checked, with their lengths, seeds and sample bounds.

``sections`` is JSON text (or the list it holds): 1 to ``MAX_SECTIONS`` objects, each ``{"prompt": ...,
"seconds": ...}`` or ``{"prompt": ..., "bars": ...}``, with an optional ``"preset"``. Bars are 4/4, so a section
of ``bars`` lasts ``bars * 4 * 60 / bpm`` seconds and needs the request's ``bpm``. A section lasts
``MIN_SECTION_SECONDS`` to ``MAX_SECTION_SECONDS``: MusicGen's 30 s window is as far as one prompt reaches.

Section ``k`` (from 0) is made with seed ``seed + k``, so reworking a later section leaves the seeds, and so the
audio, of every section before it as they were. Bounds are rounded once from the running total of seconds, so
the sections tile the track without a gap and the track is exactly the sum, to the sample.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..audio.tempo import BEATS_PER_BAR
from ..errors import InvalidInputError, quoted
from ..settings import MAX_SEED

MAX_SECTIONS = 12  # sections in one song: an intro, verses and choruses, a bridge and an outro fit easily
MIN_SECTION_SECONDS = 1.0  # a section shorter than this is mostly the model finding its feet
MAX_SECTION_SECONDS = 30.0  # MusicGen's window: one prompt steers at most this much audio
SECTION_COLUMNS = ("prompt", "bars", "seconds")  # a section as a table row: its words, its length in bars or s
FIELDS = ("prompt", "seconds", "bars", "preset")  # what a section may say
EXAMPLE = '[{"prompt": "soft piano intro", "seconds": 8}, {"prompt": "the full band comes in", "seconds": 16}]'


@dataclass(frozen=True)
class Section:
    """One section as asked: its prompt, how long it lasts, and an optional preset."""

    prompt: str  # what this part sounds like; may be empty only when a preset gives the words
    seconds: float  # its length: as given, or its bars at the request's bpm
    bars: int | None = None  # the bars asked for; None when the length was given in seconds
    preset: str | None = None  # a preset id for this section; None for none

    def label(self, index: int) -> str:
        """A short name for markers and summaries: "1: soft piano intro" (cut to 40 characters)."""
        words = self.prompt or self.preset or "section"
        return f"{index + 1}: {words if len(words) <= 40 else words[:39] + '…'}"


def parse_sections(value: object, bpm: float | None = None) -> tuple[Section, ...]:
    """The sections of a request, from JSON text or a list of mappings; refuses anything else, naming it.

    ``bpm`` (already checked, or None) turns bars into seconds; a section in bars without it is refused.
    """
    # 1. JSON text to a list
    wanted = f"a JSON list of 1 to {MAX_SECTIONS} sections, e.g. {EXAMPLE}"
    if isinstance(value, str):
        if not value.strip():
            raise InvalidInputError(f"sections is empty: give {wanted}.")
        try:
            value = json.loads(value)
        except ValueError as e:
            raise InvalidInputError(f"sections is not valid JSON ({e}); write a list such as {EXAMPLE}.") from e
    if value is None:
        raise InvalidInputError(f"sections is missing: give {wanted}.")
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, Sequence):
        raise InvalidInputError(f"sections must be a list of sections such as {EXAMPLE}, got {quoted(value)}.")

    # 2. How many
    if not value:
        raise InvalidInputError(f"sections is an empty list: give 1 to {MAX_SECTIONS} sections, e.g. {EXAMPLE}.")
    if len(value) > MAX_SECTIONS:
        raise InvalidInputError(
            f"sections holds {len(value)} sections; at most {MAX_SECTIONS} make a song. Join some, "
            f"or make the song in two parts and extend the first."
        )

    # 3. Each section
    return tuple(_section(item, index, bpm) for index, item in enumerate(value))


def section_seed(seed: int, index: int) -> int:
    """The seed of section ``index`` (from 0) of a song made with ``seed``: ``seed + index``, wrapping past MAX_SEED."""
    return (seed + index) % (MAX_SEED + 1)


def section_bounds(sections: Sequence[Section], rate: int) -> tuple[int, ...]:
    """Sample positions at ``rate`` where each section starts, then where the last one ends (len + 1 values).

    Each is the running total of seconds rounded once, so section lengths differ from ``seconds * rate`` by
    under a sample and always add up to ``round(total seconds * rate)``.
    """
    total, bounds = 0.0, [0]
    for section in sections:
        total += section.seconds
        bounds.append(round(total * rate))
    return tuple(bounds)


def total_seconds(sections: Sequence[Section]) -> float:
    """The song's length in seconds: the sum of its sections."""
    return math.fsum(section.seconds for section in sections)


def bars_seconds(bars: int, bpm: float) -> float:
    """Seconds in ``bars`` bars of 4/4 at ``bpm``: ``bars * 4 * 60 / bpm``."""
    return bars * BEATS_PER_BAR * 60.0 / bpm


def _section(item: Any, index: int, bpm: float | None) -> Section:
    """One section, checked; ``index`` counts from 0, messages from 1."""
    where = f"section {index + 1}"
    if not isinstance(item, dict):
        raise InvalidInputError(
            f'{where} must be an object with "prompt" and "seconds" or "bars", got {quoted(item)}.'
        )
    unknown = sorted(set(item) - set(FIELDS))
    if unknown:
        raise InvalidInputError(f"{where} has unknown field(s) {unknown}; a section may have {list(FIELDS)}.")
    prompt, preset = item.get("prompt"), item.get("preset")
    if prompt is not None and not isinstance(prompt, str):
        raise InvalidInputError(f"{where}'s prompt must be text, got {quoted(prompt)}.")
    if preset is not None and not isinstance(preset, str):
        raise InvalidInputError(f"{where}'s preset must be a preset's id (text), got {quoted(preset)}.")
    prompt, preset = " ".join((prompt or "").split()), (preset or "").strip() or None
    if not prompt and preset is None:
        raise InvalidInputError(
            f"{where} has no prompt: say what it sounds like, e.g. \"the chorus, full band\" (or give a preset)."
        )
    seconds, bars = item.get("seconds"), item.get("bars")
    if (seconds is None) == (bars is None):
        given = "both" if seconds is not None else "neither"
        raise InvalidInputError(f'{where} needs "seconds" or "bars" (one of them), got {given}.')
    if bars is not None:
        if isinstance(bars, bool) or not isinstance(bars, (int, float)) or not math.isfinite(bars):
            raise InvalidInputError(f"{where}'s bars must be a whole number of bars, got {quoted(bars)}.")
        if bars != int(bars) or bars < 1:
            raise InvalidInputError(f"{where}'s bars must be a whole number of bars, 1 or more, got {bars:g}.")
        if bpm is None:
            raise InvalidInputError(
                f"{where} is {int(bars)} bars long, and bars need a tempo: give bpm (40 to 240), "
                'or give the section in "seconds".'
            )
        bars = int(bars)
        seconds = bars_seconds(bars, bpm)
    elif isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise InvalidInputError(f"{where}'s seconds must be a number of seconds, got {quoted(seconds)}.")
    if not MIN_SECTION_SECONDS <= seconds <= MAX_SECTION_SECONDS:
        length = f"{bars} bars at {bpm:g} BPM ({seconds:.2f} s)" if bars is not None else f"{seconds:g} s"
        raise InvalidInputError(
            f"{where} is {length}; a section lasts {MIN_SECTION_SECONDS:g} to {MAX_SECTION_SECONDS:g} s "
            "(MusicGen's window is 30 s): split a longer part into two sections."
        )
    return Section(prompt, float(seconds), bars, preset)
