"""Compose a song in sections: each section continues the audio before it with its own prompt, then they are joined.

Section ``k`` is made as an extend is: the last 20 s (at most) of the song so far is the audio prompt, and its
prompt, preset and seed (``seed + k``) are its own. Each section is made a little longer than it lasts
(``MARGIN_SECONDS``, and room for the tempo stretch), landed in the key and stretched to the tempo on its own,
cut to its exact length, and joined with ``finishing.join_extend``: a crossfade of its ``JOIN_FADE_SECONDS`` (20 ms)
inside the end of the section before, into the codec's own version of it, which the new section grows out of.

Nothing a section does reaches back past that crossfade, so changing section ``k`` (its prompt, its length, or
the sections after it) leaves every sample before its start less 20 ms as it was, when loudness is off. The
song is made at the model's rate with ``TAIL_SECONDS`` to spare and cut at the output rate, where it is exactly
the sum of its sections to the sample.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace

import numpy as np

from ..audio.cues import Cue
from ..audio.loops import MAX_STRETCH, stretch_to_bpm
from ..audio.tempo import measure_tempo
from ..finishing import join_extend
from ..model.types import AudioPrompt, GeneratedAudio, ProgressCallback
from ..recipe import Recipe
from ..settings import ExportSettings, GenerationSettings
from .keys import Key, Landing, land_in_key
from .sections import MAX_SECTION_SECONDS, MIN_SECTION_SECONDS, Section, section_bounds, total_seconds

MARGIN_SECONDS = 0.1  # each section is made this much longer, then cut: whole codec frames never leave it short
TAIL_SECONDS = 0.05  # the song's extra at the model's rate, so it can be cut to the sample at the output rate
PROGRESS_STEPS = 1000  # progress is reported as thousandths of the whole song


@dataclass(frozen=True)
class ComposeRequest:
    """Raw compose values as a UI or API client sends them; ``None`` means "not given"."""

    sections: str | list | None = None  # JSON text: [{"prompt": ..., "seconds" or "bars": ..., "preset": ...}, ...]
    bpm: float | str | None = None  # 40..240: bars are counted at it and every section is stretched to it
    key: str | None = None  # "A minor", "F# major": every section is landed in it
    seed: int | float | str | None = None  # section k gets seed + k; None, "" or -1 for a random seed
    temperature: float | None = None
    top_k: int | float | None = None
    top_p: float | None = None
    guidance_scale: float | None = None
    negative_prompt: str | None = None
    model: str | None = None  # a model's name from the server's list; None, "" or "auto" for the server's choice
    formats: str | list[str] | tuple[str, ...] | None = None
    sample_rate: int | float | str | None = None
    loudness: float | str | None = None
    stems: bool | None = None

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> ComposeRequest:
        """The request that makes a composed song's recipe again: its sections as asked, tempo, key, seed (each
        section's follows from it), sampling, model and export."""
        sections = []
        for entry in recipe.sections:
            section = {"prompt": entry["asked"], "preset": entry["preset"]}
            section |= {"bars": entry["bars"]} if entry.get("bars") else {"seconds": entry["seconds"]}
            sections.append(section)
        bpm = (recipe.tempo or {}).get("bpm")
        return cls(sections=sections, bpm=bpm, **recipe.request_values())  # the seed, sampling, model, key, export

    @classmethod
    def starting_from(cls, recipe: Recipe) -> ComposeRequest:
        """A song to compose from a kept track: a composed song's own request (so reworking one section keeps the
        sections before it), any other track as one section of its length and mood, at the tempo it was
        stretched to, if any."""
        if recipe.sections:
            return cls.from_recipe(recipe)
        tempo = recipe.tempo or {}
        seconds = round(min(max(recipe.audio_seconds, MIN_SECTION_SECONDS), MAX_SECTION_SECONDS), 2)
        section = {"prompt": recipe.mood or recipe.settings.prompt, "seconds": seconds}
        if recipe.preset:
            section["preset"] = recipe.preset
        bpm = tempo.get("bpm") if tempo.get("stretched") or tempo.get("loop") else None
        return cls(sections=[section], bpm=bpm, **recipe.request_values())


@dataclass(frozen=True)
class PlannedSection:
    """One section, resolved: what it asks for and the settings it is made with."""

    section: Section
    settings: GenerationSettings  # its prompt (with preset, key and tempo), its seed, the seconds to make
    preset_id: str | None


@dataclass(frozen=True)
class ComposePlan:
    """A compose request checked and resolved; the stages after it only read it."""

    sections: tuple[PlannedSection, ...]
    seed: int  # the request's seed; section k's is seed + k
    bpm: float | None
    key: Key | None
    export: ExportSettings
    model: str  # the name of the model that makes it, from the server's list

    @property
    def seconds(self) -> float:
        """The song's length: the sum of its sections."""
        return total_seconds([planned.section for planned in self.sections])


@dataclass(frozen=True)
class MadeSection:
    """What making one section did: its audio's place in the song, its landing in the key and its stretch."""

    generated: GeneratedAudio
    landing: Landing | None  # None when no key was asked for
    speed: float  # how much faster it now plays, to reach the tempo; 1 when not stretched
    tempo_note: str | None  # why it was left at its own tempo; None when stretched or no bpm was asked


def seconds_to_make(section: Section, bpm: float | None) -> float:
    """How much audio to ask the model for: the section, the margin, and room to speed up to the tempo."""
    seconds = section.seconds + MARGIN_SECONDS
    return round(seconds * (1 + MAX_STRETCH) if bpm is not None else seconds, 3)


def make_song(
    engine,
    plan: ComposePlan,
    *,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> tuple[np.ndarray, list[MadeSection]]:
    """Every section in turn, each continuing the song so far; the song ``TAIL_SECONDS`` longer than its sections.

    Returns the song ``[channels, samples]`` at the engine's rate and what was done to each section.
    """
    rate = engine.sample_rate
    bounds = section_bounds([planned.section for planned in plan.sections], rate)
    song: np.ndarray | None = None
    made: list[MadeSection] = []
    for index, planned in enumerate(plan.sections):
        # 1. Continue the song so far (its last 20 s at most) with this section's prompt and seed
        generated = engine.generate(
            planned.settings,
            audio_prompt=None if song is None else AudioPrompt(song, rate),
            on_progress=_section_progress(on_progress, index, len(plan.sections)),
            cancel=cancel,
        )
        # 2. Land it in the key and stretch it to the tempo, with the codec's version of the song's end before it
        lead_in = generated.lead_in if generated.lead_in is not None else np.zeros_like(generated.audio[:, :0])
        head = lead_in.shape[-1]
        audio = np.concatenate([lead_in, generated.audio], axis=-1)
        measured = measure_tempo(audio, rate, hint_bpm=plan.bpm) if plan.key or plan.bpm else None
        landing = land_in_key(audio, rate, plan.key, measured.key) if plan.key else None
        audio = landing.audio if landing else audio  # moving the pitch keeps the timing: the beats still hold
        speed, note = 1.0, None
        if plan.bpm is not None:
            stretched = stretch_to_bpm(audio, rate, measured, plan.bpm)
            audio, speed, note = stretched.audio, stretched.speed, stretched.note
            head = round(head / speed)
        # 3. Cut it to its exact length (the last one a little longer) and join it to the song
        length = bounds[index + 1] - bounds[index] + (round(TAIL_SECONDS * rate) if index == len(bounds) - 2 else 0)
        lead_in, new = audio[:, :head], audio[:, head : head + length]
        song = new if song is None else join_extend(song, lead_in, new, rate)
        made.append(MadeSection(replace(generated, audio=new, lead_in=lead_in), landing, speed, note))
    assert song is not None and song.shape[-1] == bounds[-1] + round(TAIL_SECONDS * rate)
    return song, made


def sections_record(plan: ComposePlan, made: list[MadeSection]) -> list[dict]:
    """For the recipe: each section's prompt, start and end (seconds), seed, and what was done to it."""
    record, start = [], 0.0
    for planned, section_made in zip(plan.sections, made, strict=True):
        section = planned.section
        entry = {
            "prompt": planned.settings.prompt,
            "asked": section.prompt,
            "preset": planned.preset_id,
            "start": round(start, 4),
            "end": round(start + section.seconds, 4),
            "seconds": section.seconds,
            "seed": planned.settings.seed,
        }
        if section.bars is not None:
            entry["bars"] = section.bars
        if section_made.landing is not None:
            entry["key"] = section_made.landing.record()
        if plan.bpm is not None:
            entry["speed"] = round(section_made.speed, 5)
            entry["stretched"] = section_made.tempo_note is None
        record.append(entry)
        start += section.seconds
    return record


def song_generated(plan: ComposePlan, made: list[MadeSection], audio: np.ndarray) -> GeneratedAudio:
    """The song as one generation: its audio, the request's settings (seed, the first section's prompt, the whole
    length), the time and windows of every section, and their notes once each."""
    first = made[0].generated
    notes = dict.fromkeys(note for section in made for note in section.generated.notes)
    return replace(
        first,
        audio=audio,
        settings=replace(first.settings, seed=plan.seed, duration=round(plan.seconds, 3)),
        seconds_taken=sum(section.generated.seconds_taken for section in made),
        windows=sum(section.generated.windows for section in made),
        notes=tuple(notes),
        codes=None,
        prompt_seconds=0.0,
        lead_in=None,
    )


def key_record(plan: ComposePlan, made: list[MadeSection], measured: str | None) -> dict | None:
    """For the recipe: the key asked for, each section's move into it (None where it had no clear key to move
    from), and the key the whole song measures."""
    if plan.key is None:
        return None
    landings = [section.landing for section in made if section.landing is not None]
    moves = [landing.semitones if landing.measured else None for landing in landings]
    said = ", ".join(f"section {i + 1} {_moved(move)}" for i, move in enumerate(moves))
    return {
        "asked": plan.key.name,
        "measured": measured,
        "semitones": moves,
        "described": f"Key: asked for {plan.key.name}; {said}; the song measures {measured or 'no clear key'}",
    }


def _moved(semitones: int | None) -> str:
    if semitones is None:
        return "had no clear key, so it was left as made"
    if semitones == 0:
        return "was in it already"
    return f"moved {'up' if semitones > 0 else 'down'} {abs(semitones)}"


def song_cues(plan: ComposePlan, rate: int) -> list[Cue]:
    """A cue point at the start of each section, at ``rate`` (the output's), labelled with its number and prompt."""
    sections = [planned.section for planned in plan.sections]
    starts = section_bounds(sections, rate)[:-1]
    return [Cue(start, section.label(i)) for i, (section, start) in enumerate(zip(sections, starts, strict=True))]


def describe_sections(record: list[dict] | tuple[dict, ...]) -> str:
    """The sections and their times, for the summary: "Sections: 1. soft piano intro 0.0-8.0 s; 2. ..."."""
    parts = [
        f"{i + 1}. {entry['asked'] or entry['preset']} {entry['start']:.1f}-{entry['end']:.1f} s"
        for i, entry in enumerate(record)
    ]
    return "Sections: " + "; ".join(parts)


def song_notes(plan: ComposePlan, made: list[MadeSection]) -> tuple[str, ...]:
    """What the person should know about the sections: a tempo left as made (the key's moves are in its record)."""
    notes = []
    for index, section_made in enumerate(made):
        if section_made.tempo_note:
            notes.append(f"Section {index + 1}: tempo: {section_made.tempo_note}.")
    return tuple(notes)


def _section_progress(callback: ProgressCallback | None, index: int, count: int) -> ProgressCallback | None:
    """Section ``index``'s progress as thousandths of the whole song."""
    if callback is None:
        return None

    def report(done: int, total: int) -> None:
        fraction = (index + (done / total if total else 0.0)) / count
        callback(min(PROGRESS_STEPS, round(fraction * PROGRESS_STEPS)), PROGRESS_STEPS)

    return report

