"""Replace a section of a track: where it runs, which candidate fits best, and the candidate spliced in.

A section is replaced by continuing the audio before it (the path an extend takes), a little past its end:
the overlap there is scored against the original (``scoring.py``), and the best candidate is spliced in with
an equal-power crossfade inside the audio before ``start`` and another just after ``end``. Outside
``[start - CROSSFADE_SECONDS, end + CROSSFADE_SECONDS]`` the result is the original, sample for sample, and it
is exactly as long.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from ..audio.arrays import resample
from ..audio.export import PCM_24_MAX
from ..audio.loudness import (
    DEFAULT_CEILING_DBTP,
    LoudnessReport,
    apply_gain_db,
    integrated_loudness,
    true_peak_dbtp,
)
from ..audio.tempo import BEATS_PER_BAR, TempoReport, measure_tempo
from ..audio.uploads import DecodedTrack
from ..errors import InvalidInputError, quoted
from ..finishing import FinishedTake, StemSplitter, crossfade
from ..model.types import AudioPrompt
from ..recipe import Recipe
from ..settings import MIN_DURATION, ExportSettings, GenerationSettings
from .scoring import MIN_SCORED_SECONDS, OVERLAP_SECONDS, Score, score_candidates

MAX_SECTION_SECONDS = 30.0  # the longest section one request replaces: one MusicGen window of new audio
MIN_CANDIDATES, MAX_CANDIDATES = 1, 4  # candidates made together in one batch (4: the engine's largest)
DEFAULT_CANDIDATES = 2  # two to choose from; a batch of two costs far less than two requests
CROSSFADE_SECONDS = 0.25  # the longest crossfade at either edge of the section
END_TOLERANCE_SECONDS = 0.005  # an end this little past the file's end (a rounded length) means its end
PCM_24_STEP = 2**23  # a 24-bit WAV's sample k reads back (libsndfile) as k / 2**23
MIN_LEAD_SECONDS = 0.1  # a section starting closer to 0 starts at 0: too little before it to continue or fade
MARGIN_SECONDS = 0.1  # made past the overlap, so a candidate is never a frame short of it


@dataclass(frozen=True)
class ReplaceRequest:
    """Raw replace values as a UI or API client sends them; ``None`` means "not given"."""

    audio: str | None = None  # path of the track: a result, a history entry, a take or an upload
    start: float | str | None = None  # seconds into the file where the section starts
    end: float | str | None = None  # seconds into the file where it ends
    prompt: str | None = ""  # empty: the file's embedded recipe gives prompt, preset and model
    candidates: int | float | None = None  # versions made together, 1 to 4 (default 2), seeds seed, seed + 1, ...
    seed: int | float | str | None = None  # None, "" or -1 for a random seed
    temperature: float | None = None
    top_k: int | float | None = None
    top_p: float | None = None
    guidance_scale: float | None = None
    negative_prompt: str | None = None
    preset: str | None = None
    model: str | None = None  # None, "" or "auto": the model that made the file, else the server's choice
    formats: str | list[str] | tuple[str, ...] | None = None
    sample_rate: int | float | str | None = None  # None keeps the file's own rate
    loudness: float | str | None = None  # "off" keeps every sample outside the section as it is
    stems: bool | None = None

    @classmethod
    def from_recipe(cls, recipe: Recipe, audio: str) -> ReplaceRequest:
        """The request that replaces the same section of ``audio`` again: the section as asked (it moves to the same
        downbeats), the same candidates and seeds, the resolved prompt, sampling and export.

        ``audio`` must be the file the recipe's ``replace`` record names (by its SHA-256).
        """
        record = recipe.replace
        if not record:
            raise InvalidInputError("This recipe replaced no section: make its track again with generate --recipe.")
        digest = hashlib.sha256(Path(audio).read_bytes()).hexdigest()
        if digest != record["sha256"]:
            raise InvalidInputError(
                f"This recipe replaced a section of {record['file']!r} (SHA-256 {record['sha256'][:12]}...), "
                f"but {Path(audio).name!r} is another file (SHA-256 {digest[:12]}...): pass the file it edited."
            )
        given = {name: value for name, value in recipe.request_values().items() if name in _FIELDS}
        return cls(**{
            **given,
            "audio": audio,
            "start": record["asked_start"],
            "end": record["asked_end"],
            "prompt": recipe.settings.prompt,
            "candidates": len(record["candidates"]),
            "seed": record["candidates"][0]["seed"],  # listed in the order made: seed, seed + 1, ...
        })


_FIELDS = {f.name for f in fields(ReplaceRequest)}


@dataclass(frozen=True)
class ReplacePlan:
    """A replace request checked and resolved; the stages after it only read it."""

    source: DecodedTrack  # the track, as in its file
    section: Section  # where it is replaced, moved to downbeats
    candidates: int
    settings: GenerationSettings  # prompt, sampling and the first seed; duration is the section plus its overlap
    export: ExportSettings
    model: str  # the name of the model that makes the candidates
    preset_id: str | None = None
    mood: str | None = None
    source_model: str | None = None  # the model that made the file, from its recipe

    @property
    def audio_prompt(self) -> AudioPrompt | None:
        """The audio before the section, which the candidates continue (the engine keeps its last 20 s)."""
        start, _ = self.section.samples(self.source.sample_rate)
        return AudioPrompt(self.source.samples[:, :start], self.source.sample_rate) if start else None


def seconds_to_make(section: Section) -> float:
    """What the model makes of each candidate: the section, its overlap, and a small margin."""
    return max(MIN_DURATION, round(section.seconds + section.overlap + MARGIN_SECONDS, 2))


def measured_tempo(source: DecodedTrack) -> TempoReport:
    """The track's tempo and downbeats, which the section's boundaries move to."""
    return measure_tempo(source.samples, source.sample_rate)


@dataclass(frozen=True)
class Section:
    """The part of a track to replace, in seconds, as asked and as used (moved to downbeats where there are)."""

    start: float  # used: the first second replaced
    end: float  # used: where the original takes over again
    asked_start: float
    asked_end: float
    file_seconds: float  # the whole track's length
    bpm: float | None = None  # the tempo the boundaries were snapped with; None when none was measured
    note: str = ""  # where the boundaries moved and why, for the summary

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def overlap(self) -> float:
        """Seconds a candidate runs past ``end``, to be scored against the original and crossfaded there."""
        return min(OVERLAP_SECONDS, self.file_seconds - self.end)

    def samples(self, rate: int) -> tuple[int, int]:
        """``start`` and ``end`` as sample indices at ``rate``."""
        return round(self.start * rate), min(round(self.end * rate), round(self.file_seconds * rate))

    def to_dict(self) -> dict:
        return {
            "start": round(self.start, 4),
            "end": round(self.end, 4),
            "asked_start": self.asked_start,
            "asked_end": self.asked_end,
            "snapped_bpm": None if self.bpm is None else round(self.bpm, 2),
        }


@dataclass(frozen=True)
class Candidate:
    """One version of the section as the model made it: from ``start`` on, past ``end`` into the overlap."""

    audio: np.ndarray  # [channels, samples] starting at the section's start
    sample_rate: int
    seed: int
    lead_in: np.ndarray | None = None  # its version of the audio just before start; None when start is 0


@dataclass(frozen=True)
class Replaced:
    """The track with one candidate spliced in, and how well that candidate met the original."""

    audio: np.ndarray  # [channels, samples] float32 at the original's rate, exactly its length
    seed: int
    score: Score | None  # None when too little follows the section to score


def splice_candidates(
    original: np.ndarray, rate: int, section: Section, candidates: list[Candidate]
) -> list[Replaced]:
    """The track with each candidate spliced in, best scored first (ties keep the order made).

    ``original`` is ``[channels, samples]`` at ``rate``, as read from its file; the result keeps its samples
    outside the section and its crossfades so that a 24-bit WAV of it holds the same integers there.
    """
    original = on_wav_grid(original)
    start, end = section.samples(rate)
    made = [_at_rate(candidate, rate) for candidate in candidates]
    scores = candidate_scores([audio for audio, _ in made], original, section, rate)
    return [
        Replaced(splice(original, made[i][0], made[i][1], start, end, rate), candidates[i].seed, scores[i])
        for i in ranked(scores)
    ]


def check_candidates(value: object) -> int:
    """How many candidates to make: ``DEFAULT_CANDIDATES`` when not given, else a whole number 1 to 4."""
    if value is None or value == "":
        return DEFAULT_CANDIDATES
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_CANDIDATES <= value <= MAX_CANDIDATES:
        raise InvalidInputError(
            f"candidates must be a whole number from {MIN_CANDIDATES} to {MAX_CANDIDATES}, got {quoted(value)}: "
            f"each candidate is one more version of the section to choose from."
        )
    return value


def resolve_section(start: object, end: object, file_seconds: float, tempo: TempoReport | None = None) -> Section:
    """Check ``start`` and ``end`` against a track of ``file_seconds``, then move them to the nearest downbeats.

    A boundary moves to the nearest downbeat at most one bar away when ``tempo`` has a measured tempo; ``start``
    0 and ``end`` at the file's end stay (there is nothing to meet there). If moving would make the section
    empty or longer than ``MAX_SECTION_SECONDS``, both stay as given.
    """
    start = _seconds(start, "start")
    end = _seconds(end, "end")
    if start < 0:
        raise InvalidInputError(f"start must be 0 or more seconds into the file, got {start:g}.")
    if end <= start:
        raise InvalidInputError(
            f"end ({end:g} s) must come after start ({start:g} s): the section runs from start to end, in seconds."
        )
    if end > file_seconds + END_TOLERANCE_SECONDS:
        raise InvalidInputError(
            f"end must be at most the file's length, {file_seconds:.2f} s, got {end:g} s; "
            f"to replace up to the end, give end {file_seconds:.2f}."
        )
    end = min(end, file_seconds)
    if end - start > MAX_SECTION_SECONDS:
        raise InvalidInputError(
            f"The section from {start:g} s to {end:g} s is {end - start:.1f} s long; replace at most "
            f"{MAX_SECTION_SECONDS:g} s at a time (in several requests for more)."
        )
    asked_start = start
    if start < MIN_LEAD_SECONDS:
        start = 0.0
    given = Section(start, end, asked_start, end, file_seconds)
    if tempo is None or tempo.bpm is None or not tempo.downbeats:
        return _noted(given, f"No steady tempo was measured, so the section is replaced as given ({_span(given)}).")
    bar = BEATS_PER_BAR * 60.0 / tempo.bpm
    downbeats = np.asarray(tempo.downbeats)
    moved_start = start if start == 0 else _nearest(start, downbeats, bar)
    moved_end = end if end == file_seconds else _nearest(end, downbeats, bar)
    if not 0 < moved_end - moved_start <= MAX_SECTION_SECONDS or moved_end > file_seconds:
        return _noted(given, f"The section is replaced as given ({_span(given)}): moved to downbeats it would not fit.")
    moved = Section(moved_start, moved_end, asked_start, end, file_seconds, bpm=tempo.bpm)
    if (moved_start, moved_end) == (asked_start, end):
        return _noted(moved, f"The section {_span(moved)} is replaced as given.")
    return _noted(moved, f"The section moved to the nearest downbeats at {tempo.bpm:.0f} BPM: {_span(moved)}.")


def splice(
    original: np.ndarray, candidate: np.ndarray, lead_in: np.ndarray | None, start: int, end: int, rate: int
) -> np.ndarray:
    """``original`` with samples ``start`` to ``end`` replaced by ``candidate``, crossfaded in and out.

    ``candidate`` starts at ``start`` and should run past ``end`` (the overlap); ``lead_in`` is its version of the
    audio just before ``start`` (the codec's, for a continuation), into which the original fades. Both
    crossfades are equal-power and at most ``CROSSFADE_SECONDS`` long, the first inside the audio before
    ``start``, the second right after ``end``; every other sample is ``original``'s, unchanged. The result has
    ``original``'s channels and length; a mono candidate plays in both channels of a stereo original, a stereo
    one is mixed to mono for a mono original. All are ``[channels, samples]`` at the original's rate.
    """
    channels, length = original.shape
    if not 0 <= start < end <= length:
        raise ValueError(f"The section {start}..{end} is not inside the track's {length} samples.")
    if candidate.shape[-1] < end - start:
        raise ValueError(f"A candidate of {candidate.shape[-1]} samples cannot fill a section of {end - start}.")
    longest = round(CROSSFADE_SECONDS * rate)
    candidate = _to_channels(candidate, channels)
    out = np.array(original, dtype=np.float32, copy=True)
    out[:, start:end] = candidate[:, : end - start]
    if lead_in is not None and start > 0:
        lead_in = _to_channels(lead_in, channels)
        fade = min(longest, start, lead_in.shape[-1])
        if fade:
            out[:, start - fade : start] = crossfade(original[:, start - fade : start], lead_in[:, -fade:])
    fade = min(longest, length - end, candidate.shape[-1] - (end - start))
    if fade:
        made = candidate[:, end - start : end - start + fade]
        out[:, end : end + fade] = crossfade(made, original[:, end : end + fade])
    return out


def candidate_scores(
    candidates: list[np.ndarray], original: np.ndarray, section: Section, rate: int
) -> list[Score | None]:
    """Each candidate's score (``None`` for all when there is too little after the section to score)."""
    start, end = section.samples(rate)
    overlap = min(round(section.overlap * rate), original.shape[-1] - end)
    if overlap < MIN_SCORED_SECONDS * rate:
        return [None] * len(candidates)
    after = original[:, end : end + overlap]
    return list(score_candidates([c[:, end - start : end - start + overlap] for c in candidates], after, rate))


def ranked(scores: list[Score | None]) -> list[int]:
    """Candidate indices best first; ties (and no scores) keep the order made (seed, seed + 1, ...)."""
    return sorted(range(len(scores)), key=lambda i: (-(scores[i].total if scores[i] is not None else 0.0), i))


def on_wav_grid(samples: np.ndarray) -> np.ndarray:
    """Samples read from a 16- or 24-bit file, rescaled so that the 24-bit WAV writer gives back the same integers.

    libsndfile reads integer sample k of a 24-bit file as ``k / 2**23``; the writer scales by ``2**23 - 1``, which
    for about half the values above -8.5 dBFS rounds to k - 1. ``k / (2**23 - 1)`` in float32 round-trips every
    k (checked for all 2**24). Audio that is not on the 24-bit grid (float files, MP3) is returned unchanged.
    """
    scaled = np.asarray(samples, dtype=np.float64) * PCM_24_STEP
    integers = np.round(scaled)
    if not np.array_equal(scaled, integers) or np.abs(integers).max(initial=0) > PCM_24_STEP:
        return np.asarray(samples, dtype=np.float32)
    return (integers / PCM_24_MAX).astype(np.float32)


def level_whole(audio: np.ndarray, rate: int, target_lufs: float | None) -> tuple[np.ndarray, LoudnessReport]:
    """One gain over the whole track towards ``target_lufs``, held down so its true peak stays under the ceiling.

    No limiter (it would change the untouched audio unevenly); ``None`` leaves the audio as it is.
    """
    peak = true_peak_dbtp(audio)
    if target_lufs is None:
        return audio, LoudnessReport(None, None, None, peak, 0.0, False, note="")
    measured = integrated_loudness(audio, rate)
    if measured is None or not math.isfinite(measured) or not math.isfinite(peak):
        note = "The track is too short or too quiet to measure its loudness, so its level was left as it is."
        return audio, LoudnessReport(target_lufs, measured, measured, peak, 0.0, False, 0.0, note)
    gain_db = min(target_lufs - measured, DEFAULT_CEILING_DBTP - peak)
    note = ""
    if gain_db < target_lufs - measured - 0.1:
        note = (
            f"The replaced track was levelled with one gain over the whole file; its peaks held it at "
            f"{measured + gain_db:.1f} LUFS rather than {target_lufs:g}."
        )
    out = apply_gain_db(audio, gain_db)
    report = LoudnessReport(target_lufs, measured, measured + gain_db, true_peak_dbtp(out), gain_db, False, 0.0, note)
    return out, report


def finish_replaced(
    audio: np.ndarray, rate: int, export: ExportSettings, split_stems: StemSplitter | None = None
) -> FinishedTake:
    """A spliced track ready to write: its tempo and key measured, one gain for loudness, its stems."""
    measured = measure_tempo(audio, rate)
    record = {"measured_bpm": None if measured.bpm is None else round(measured.bpm, 2), "key": measured.key}
    record["described"] = measured.describe()
    levelled, loudness = level_whole(audio, rate, export.loudness_lufs)
    notes = [loudness.note] if loudness.note else []
    stems: dict[str, np.ndarray] = {}
    if split_stems is not None:
        stems, stems_note = split_stems(audio, rate, loudness.gain_db)
        notes.extend([stems_note] if stems_note else [])
    return FinishedTake(levelled, rate, measured, loudness, stems, record, tuple(notes))


def replace_record(plan: ReplacePlan, replaced: list[Replaced], kept: Replaced) -> dict:
    """The recipe's ``replace`` record: the file, the section used, every candidate's seed and score, the one kept.

    ``replaced`` is best first; candidates are listed in the order made (seed, seed + 1, ...).
    """
    return {
        "file": plan.source.source_name,
        "sha256": plan.source.digest,
        **plan.section.to_dict(),
        "overlap_seconds": round(plan.section.overlap, 3),
        "crossfade_ms": CROSSFADE_SECONDS * 1000,
        "candidates": [
            {"seed": r.seed, **(r.score.to_dict() if r.score is not None else {"score": None})}
            for r in sorted(replaced, key=lambda r: _order(r.seed, plan))
        ],
        "best_seed": replaced[0].seed,
        "kept_seed": kept.seed,
        "model_continued": plan.source_model,
    }


def describe(record: dict) -> str:
    """The summary's line: the section replaced, where it moved, and how each candidate scored."""
    scores = ", ".join(
        f"seed {c['seed']}: {c['score']:.2f}" if c["score"] is not None else f"seed {c['seed']}"
        for c in record["candidates"]
    )
    scored = f" (scores {scores})" if any(c["score"] is not None for c in record["candidates"]) else ""
    ranked_by = "best match with what follows" if scored else "nothing after the section to match: first made"
    return (
        f"Replaced {record['start']:.2f} s to {record['end']:.2f} s of {record['file']} with seed "
        f"{record['kept_seed']} of {len(record['candidates'])} candidates{scored}; best: seed "
        f"{record['best_seed']} ({ranked_by})"
    )


def _order(seed: int, plan: ReplacePlan) -> int:
    first = plan.settings.seed or 0
    return (seed - first) % (2**31)


def _at_rate(candidate: Candidate, rate: int) -> tuple[np.ndarray, np.ndarray | None]:
    """A candidate and its lead-in at ``rate``, resampled as one piece so the filter sees no edge between them."""
    if candidate.lead_in is None:
        return resample(candidate.audio, candidate.sample_rate, rate), None
    whole = resample(np.concatenate([candidate.lead_in, candidate.audio], axis=-1), candidate.sample_rate, rate)
    lead = round(candidate.lead_in.shape[-1] * rate / candidate.sample_rate)
    return whole[:, lead:], whole[:, :lead]


def _seconds(value: object, name: str) -> float:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise InvalidInputError(f"{name} must be a number of seconds into the file, got {quoted(value)}.") from None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or value is None:
        raise InvalidInputError(f"{name} must be a number of seconds into the file, got {quoted(value)}.")
    if not math.isfinite(value):
        raise InvalidInputError(f"{name} must be a finite number of seconds, got {quoted(value)}.")
    return float(value)


def _nearest(time: float, downbeats: np.ndarray, bar: float) -> float:
    """The downbeat nearest ``time`` if it is at most one bar away, else ``time``."""
    nearest = float(downbeats[np.argmin(np.abs(downbeats - time))])
    return round(nearest, 4) if abs(nearest - time) <= bar else time


def _span(section: Section) -> str:
    return f"{section.start:.2f} s to {section.end:.2f} s"


def _noted(section: Section, note: str) -> Section:
    return Section(**{**section.__dict__, "note": note})


def _to_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.shape[0] == channels:
        return audio
    if channels == 1:
        return audio.mean(axis=0, keepdims=True)
    return np.repeat(audio, channels, axis=0)
