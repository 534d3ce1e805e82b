"""Style presets: named prompt templates and settings, read from one TOML file per preset.

A preset turns a person's mood text ("rainy sunday morning") into a full MusicGen
prompt ("Lo-fi hip hop beat, rainy sunday morning, mellow Rhodes ..., 80 BPM")
and supplies the settings that suit the style. ``presets/README.md`` describes
the file format; ``resolve`` merges a preset with a request.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

from .config import ServerConfig
from .errors import InvalidInputError
from .settings import GenerationSettings

log = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).resolve().parent.parent / "presets"  # the presets shipped with Moodtape
NO_PRESET = "none"  # the dropdown value meaning "no preset"; reserved, so no preset may use it as its id
MAX_ID_CHARS = 64  # ids are short slugs; longer ones are refused before any lookup
MAX_NAME_CHARS = 60  # fits a dropdown label
MAX_DESCRIPTION_CHARS = 200  # one line under the dropdown
MAX_TEMPLATE_CHARS = 600  # leaves room for the mood text within the prompt limit of GenerationSettings
MOOD_SLOT = "{mood}"  # where the mood text goes in a prompt template
FAMILIES = ("text", "melody", "either")  # MusicGen (text only), MusicGen-Melody (text + hummed tune), or both
ENERGIES = ("low", "medium", "high")
MIN_BPM, MAX_BPM = 20, 300  # tempo tag range, beats per minute

_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]*")  # matched whole: lowercase slug, no dots or slashes
_CLAUSE_SPLIT = re.compile(r"([,;.])")  # a template's clauses are separated by these marks
_EDGE_MARKS = " ,;.:!?"  # stripped from the ends of mood text and of a rendered prompt
_FILE_KEYS = ("id", "name", "description", "family", "prompt", "tags", "settings")  # top-level TOML keys
_OPTIONAL_FILE_KEYS = ("settings",)


class _FieldError(InvalidInputError):
    """An invalid preset value, carrying the dotted name of the field that holds it ("" = the whole file)."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


@dataclass(frozen=True)
class PresetTags:
    """What a preset sounds like, for display and filtering; the prompt says the same in words."""

    genre: str  # main genre, e.g. "hip-hop"
    energy: str  # one of ENERGIES
    instruments: tuple[str, ...]  # the instruments you hear, most prominent first
    bpm: int  # tempo in beats per minute, MIN_BPM..MAX_BPM

    def __post_init__(self) -> None:
        _check_line("tags.genre", self.genre, MAX_NAME_CHARS)
        if not isinstance(self.energy, str) or self.energy not in ENERGIES:
            raise _FieldError("tags.energy", f"tags.energy must be one of {', '.join(ENERGIES)}, got {self.energy!r}.")
        if not isinstance(self.instruments, (list, tuple)) or not self.instruments:
            raise _FieldError(
                "tags.instruments",
                f'tags.instruments must be a non-empty list of names, such as ["piano", "drums"]; '
                f"got {self.instruments!r}.",
            )
        for instrument in self.instruments:
            _check_line("tags.instruments", instrument, MAX_NAME_CHARS)
        object.__setattr__(self, "instruments", tuple(self.instruments))
        if isinstance(self.bpm, bool) or not isinstance(self.bpm, int) or not MIN_BPM <= self.bpm <= MAX_BPM:
            raise _FieldError(
                "tags.bpm",
                f"tags.bpm must be a whole number of beats per minute from {MIN_BPM} to {MAX_BPM}, got {self.bpm!r}.",
            )

    def to_dict(self) -> dict[str, Any]:
        return {"genre": self.genre, "energy": self.energy, "instruments": list(self.instruments), "bpm": self.bpm}


@dataclass(frozen=True)
class PresetSettings:
    """The generation settings a preset sets; ``None`` leaves that value to the request or the default.

    Each value must pass the same checks as in ``GenerationSettings``.
    """

    duration: float | None = None  # seconds of audio
    temperature: float | None = None  # softmax temperature
    top_k: int | None = None  # 0 turns top-k off
    top_p: float | None = None  # 0 turns top-p off
    guidance_scale: float | None = None  # classifier-free guidance; 1 turns it off
    negative_prompt: str | None = None  # what the style steers away from, unless the request says otherwise

    def __post_init__(self) -> None:
        for name, value in self.to_dict().items():
            try:  # each value alone first, with top_p on so that top_k = 0 is judged by itself
                checked = GenerationSettings(**{"top_p": 1.0, name: value})
            except InvalidInputError as e:
                raise _FieldError(f"settings.{name}", str(e)) from e
            object.__setattr__(self, name, getattr(checked, name))
        try:  # then together, with the defaults for the rest (catches top_k = 0 with top_p unset)
            GenerationSettings(**self.to_dict())
        except InvalidInputError as e:
            raise _FieldError("settings", str(e)) from e

    def to_dict(self) -> dict[str, Any]:
        """The values this preset sets, by name; unset ones are left out."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(frozen=True)
class Preset:
    """One style: a prompt template with a ``{mood}`` slot, the settings that suit it, and tags.

    The ``{mood}`` slot must stand in a clause of its own (clauses are separated by
    ``,`` ``;`` or ``.``): with no mood text the whole clause and one separator are
    dropped, so "Lo-fi beat, {mood}, vinyl crackle" renders as "Lo-fi beat, vinyl crackle".
    """

    id: str  # lowercase letters, digits and hyphens; equals the file name without ".toml"
    name: str  # display name for the dropdown
    description: str  # one line saying what it sounds like
    family: str  # which model family suits it: one of FAMILIES
    prompt: str  # template with exactly one {mood} slot
    tags: PresetTags
    settings: PresetSettings = field(default_factory=PresetSettings)
    source: Path | None = field(default=None, compare=False)  # the file it came from; None when built in code

    def __post_init__(self) -> None:
        problem = _id_problem(self.id)
        if problem:
            raise _FieldError("id", problem)
        if self.id == NO_PRESET:
            raise _FieldError("id", f"The id {NO_PRESET!r} is reserved for 'no preset'; choose another id.")
        _check_line("name", self.name, MAX_NAME_CHARS)
        _check_line("description", self.description, MAX_DESCRIPTION_CHARS)
        if not isinstance(self.family, str) or self.family not in FAMILIES:
            raise _FieldError("family", f"family must be one of {', '.join(FAMILIES)}, got {self.family!r}.")
        _check_template(self.prompt)
        if not isinstance(self.tags, PresetTags):
            raise _FieldError("tags", f"tags must be PresetTags, got {type(self.tags).__name__}.")
        if not isinstance(self.settings, PresetSettings):
            raise _FieldError("settings", f"settings must be PresetSettings, got {type(self.settings).__name__}.")

    def render_prompt(self, mood: str | None = "") -> str:
        """Fill the ``{mood}`` slot with the mood text, or drop the slot's clause when there is none."""
        mood = _clean_mood(mood)
        text = self.prompt.replace(MOOD_SLOT, mood) if mood else _drop_mood_clause(self.prompt)
        text = re.sub(r"\s+([,;.])", r"\1", " ".join(text.split()))  # "a , b" -> "a, b"
        return text.strip(_EDGE_MARKS)

    def settings_dict(self) -> dict[str, Any]:
        """The generation settings this preset sets, by name; unset ones are left out."""
        return self.settings.to_dict()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description: id, name, description, family, prompt template, tags, settings."""
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "family": self.family,
            "prompt": self.prompt,
            "tags": self.tags.to_dict(),
            "settings": self.settings_dict(),
        }


@dataclass(frozen=True)
class PresetProblem:
    """Why one preset file was skipped: the file, the field at fault ("" = the whole file), and what to fix."""

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file} [{self.field}]" if self.field else self.file
        return f"{where}: {self.message}"


class PresetLibrary:
    """The presets available to a request, by id, plus the files that could not be loaded."""

    def __init__(self, presets: Iterable[Preset] = (), problems: Iterable[PresetProblem] = ()) -> None:
        self._by_id: dict[str, Preset] = {}
        for preset in presets:
            if preset.id in self._by_id:
                raise InvalidInputError(f"Two presets have the id {preset.id!r}; give each preset its own id.")
            self._by_id[preset.id] = preset
        self._problems = tuple(problems)

    @property
    def problems(self) -> tuple[PresetProblem, ...]:
        """Files that were skipped, with the reason; empty when everything loaded."""
        return self._problems

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, preset_id: object) -> bool:
        return isinstance(preset_id, str) and preset_id in self._by_id

    def get(self, preset_id: str) -> Preset:
        """Return the preset with this id; a malformed or unknown id raises ``InvalidInputError``.

        The id is checked against the loaded presets only; it never reaches the filesystem.
        """
        problem = _id_problem(preset_id)
        if problem:
            raise InvalidInputError(problem)
        if preset_id not in self._by_id:
            raise InvalidInputError(self._unknown_id_message(preset_id))
        return self._by_id[preset_id]

    def find(self, preset_id: str | None) -> Preset | None:
        """Like ``get``, but ``None``, an empty string and "none" mean "no preset" and return ``None``."""
        if preset_id is None:
            return None
        if isinstance(preset_id, str):
            preset_id = preset_id.strip()
            if preset_id.lower() in ("", NO_PRESET):
                return None
        return self.get(preset_id)

    def ids(self) -> list[str]:
        """All preset ids, in alphabetical order."""
        return sorted(self._by_id)

    def all(self) -> list[Preset]:
        """All presets, sorted by display name (ties by id)."""
        return sorted(self._by_id.values(), key=lambda p: (p.name.casefold(), p.id))

    def choices(self, *, include_none: bool = False) -> list[tuple[str, str]]:
        """(label, id) pairs for a dropdown, sorted by label; ``include_none`` adds ("No preset", "none") first."""
        pairs = [(p.name, p.id) for p in self.all()]
        return [("No preset", NO_PRESET), *pairs] if include_none else pairs

    def describe(self) -> list[dict[str, Any]]:
        """Every preset as a plain, JSON-serialisable dict, in ``all()`` order (for a ``/presets`` endpoint)."""
        return [p.to_dict() for p in self.all()]

    def _unknown_id_message(self, preset_id: str) -> str:
        if not self._by_id:
            return f"Unknown preset {preset_id!r}: no presets are loaded; check the presets folder."
        ids = self.ids()
        close = difflib.get_close_matches(preset_id, ids, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        shown = ", ".join(repr(i) for i in ids[:6])
        more = f", ... ({len(ids)} in all)" if len(ids) > 6 else ""
        return f"Unknown preset {preset_id!r}.{hint} Known presets: {shown}{more}."


def resolve(
    preset: Preset | None,
    mood: str | None,
    *,
    duration: float | None = None,
    seed: int | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    guidance_scale: float | None = None,
    negative_prompt: str | None = None,
) -> GenerationSettings:
    """Merge a request with a preset: explicit values win, ``None`` takes the preset's value, then the default.

    The prompt is the preset's template filled with the mood text; with no preset it is
    the mood text as given. Invalid values raise ``InvalidInputError``.
    """
    # 1. Prompt
    prompt = preset.render_prompt(mood) if preset is not None else _check_mood_type(mood)
    # 2. Settings: defaults < preset < request
    values = preset.settings_dict() if preset is not None else {}
    requested = {
        "duration": duration,
        "temperature": temperature,
        "top_k": top_k,
        "top_p": top_p,
        "guidance_scale": guidance_scale,
        "negative_prompt": negative_prompt,
    }
    values.update({name: value for name, value in requested.items() if value is not None})
    return GenerationSettings(prompt=prompt, seed=seed, **values)


def load_presets(extra_dir: str | Path | None = None, config: ServerConfig | None = None) -> PresetLibrary:
    """Read the built-in presets, then the user presets from ``extra_dir``.

    When ``extra_dir`` is None, ``config.presets_dir`` (``MOODTAPE_PRESETS_DIR``) is read
    instead, if it is set. A user preset with the same
    id as a built-in one replaces it. A file that cannot be used (bad TOML, a missing,
    unknown or invalid field, an id that differs from the file name) is skipped,
    logged as a warning and listed in ``library.problems``; it never stops the others
    from loading, and a broken user file leaves the built-in of that id in place.
    """
    if extra_dir is None:
        extra_dir = (config or ServerConfig.from_env()).presets_dir
    folders = [BUILTIN_DIR]
    if extra_dir is not None and str(extra_dir).strip():
        folders.append(Path(extra_dir).expanduser())

    presets: dict[str, Preset] = {}
    problems: list[PresetProblem] = []
    for folder in folders:
        found, skipped = _read_folder(folder)
        for preset in found:
            if preset.id in presets:
                log.info(
                    "Preset %r from %s overrides the one from %s.", preset.id, preset.source, presets[preset.id].source
                )
            presets[preset.id] = preset
        problems.extend(skipped)
    for problem in problems:
        log.warning("Skipped preset: %s", problem)
    return PresetLibrary(presets.values(), problems)


def read_preset(path: str | Path) -> Preset:
    """Read one preset file; any problem raises ``InvalidInputError`` naming the field to fix."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise _FieldError("", f"Not valid TOML ({e}); fix the syntax, see https://toml.io.") from e
    except UnicodeDecodeError as e:
        raise _FieldError("", "Not UTF-8 text; save the file as UTF-8.") from e
    except OSError as e:
        raise _FieldError("", f"Could not read the file: {e.strerror or e}.") from e
    return _preset_from_table(data, path)


def _read_folder(folder: Path) -> tuple[list[Preset], list[PresetProblem]]:
    """Every ``*.toml`` preset in one folder, and the problems of those that failed."""
    if not folder.is_dir():
        hint = " or unset MOODTAPE_PRESETS_DIR" if folder != BUILTIN_DIR else ""
        return [], [PresetProblem(str(folder), "", f"The preset folder does not exist; create it{hint}.")]
    presets, problems = [], []
    for path in sorted(folder.glob("*.toml")):
        if path.name.startswith(".") or not path.is_file():  # editor temp files, folders named *.toml
            continue
        try:
            presets.append(read_preset(path))
        except InvalidInputError as e:
            problems.append(PresetProblem(str(path), getattr(e, "field", ""), str(e)))
    return presets, problems


def _preset_from_table(data: dict[str, Any], path: Path) -> Preset:
    """Build a preset from a parsed TOML file, naming the field at fault in any error."""
    _check_keys(data, _FILE_KEYS, _OPTIONAL_FILE_KEYS, prefix="")
    tags = _sub_table(data, "tags", PresetTags)
    settings = _sub_table(data, "settings", PresetSettings) if "settings" in data else PresetSettings()
    preset = Preset(
        id=data["id"],
        name=data["name"],
        description=data["description"],
        family=data["family"],
        prompt=data["prompt"],
        tags=tags,
        settings=settings,
        source=path,
    )
    if preset.id != path.stem:
        raise _FieldError(
            "id",
            f"The id {preset.id!r} differs from the file name {path.name!r}; "
            f"rename the file to {preset.id}.toml or set id = {path.stem!r}.",
        )
    return preset


def _sub_table(data: dict[str, Any], name: str, cls: type) -> Any:
    """Build ``cls`` from the TOML table ``[name]``, refusing unknown and missing keys."""
    table = data[name]
    if not isinstance(table, dict):
        raise _FieldError(name, f"{name} must be a table (a [{name}] section), got {table!r}.")
    names = tuple(f.name for f in fields(cls))
    optional = tuple(f.name for f in fields(cls) if f.default is None)
    _check_keys(table, names, optional, prefix=f"{name}.")
    return cls(**table)


def _check_keys(table: dict[str, Any], allowed: tuple[str, ...], optional: tuple[str, ...], prefix: str) -> None:
    for key in table:
        if key not in allowed:
            extra = " (the seed belongs to each request, not to a preset)" if key == "seed" else ""
            raise _FieldError(
                f"{prefix}{key}",
                f"Unknown field {prefix}{key}{extra}; the known fields are "
                f"{', '.join(prefix + k for k in allowed)}. Check the spelling or remove it.",
            )
    for key in allowed:
        if key not in table and key not in optional:
            raise _FieldError(f"{prefix}{key}", f"Missing field {prefix}{key}; see presets/README.md for the format.")


def _check_line(name: str, value: Any, max_chars: int) -> None:
    """Refuse anything but non-empty, single-line text of at most ``max_chars``."""
    if not isinstance(value, str):
        raise _FieldError(name, f"{name} must be text, got {type(value).__name__} {value!r}.")
    if not value.strip() or "\n" in value or len(value) > max_chars:
        raise _FieldError(name, f"{name} must be one non-empty line of at most {max_chars} characters, got {value!r}.")


def _check_template(template: Any) -> None:
    if not isinstance(template, str):
        raise _FieldError("prompt", f"prompt must be text, got {type(template).__name__} {template!r}.")
    if len(template) > MAX_TEMPLATE_CHARS:
        raise _FieldError("prompt", f"prompt is {len(template)} characters long; keep it under {MAX_TEMPLATE_CHARS}.")
    if template.count(MOOD_SLOT) != 1:
        raise _FieldError(
            "prompt",
            f"prompt must contain {MOOD_SLOT} exactly once, in a clause of its own, "
            f'such as "Lo-fi hip hop beat, {MOOD_SLOT}, vinyl crackle"; got {template!r}.',
        )
    if "{" in template.replace(MOOD_SLOT, "") or "}" in template.replace(MOOD_SLOT, ""):
        raise _FieldError("prompt", f"prompt may use only the slot {MOOD_SLOT} (lowercase); remove other braces.")
    if not _drop_mood_clause(template).strip(_EDGE_MARKS):
        raise _FieldError("prompt", "prompt must describe the style besides the {mood} slot (genre, instruments, BPM).")


def _id_problem(preset_id: Any) -> str:
    """Why this is not a valid preset id, or "" when it is. Pure string checks: no filesystem access."""
    rule = f"ids are 1 to {MAX_ID_CHARS} lowercase letters, digits and hyphens, such as 'lofi-hip-hop'"
    if not isinstance(preset_id, str):
        return f"A preset id must be text, got {type(preset_id).__name__}; {rule}."
    shown = repr(preset_id if len(preset_id) <= 40 else preset_id[:40] + "...")
    if len(preset_id) > MAX_ID_CHARS:
        return f"The preset id {shown} is {len(preset_id)} characters long; {rule}."
    if not _ID_PATTERN.fullmatch(preset_id):
        lower = preset_id.strip().lower()
        hint = f" Did you mean {lower!r}?" if lower != preset_id and _ID_PATTERN.fullmatch(lower) else ""
        return f"{shown} is not a valid preset id; {rule}.{hint}"
    return ""


def _check_mood_type(mood: Any) -> str:
    if mood is None:
        return ""
    if not isinstance(mood, str):
        raise InvalidInputError(f"The mood must be text, got {type(mood).__name__} {mood!r}.")
    return mood


def _clean_mood(mood: Any) -> str:
    """Mood text on one line, without edge punctuation that would clash with the template's commas."""
    return " ".join(_check_mood_type(mood).split()).strip(_EDGE_MARKS)


def _drop_mood_clause(template: str) -> str:
    """Remove the clause holding ``{mood}`` together with the separator before it (or after, if it is first)."""
    parts = _CLAUSE_SPLIT.split(template)  # text, mark, text, mark, ..., text
    slot = next(i for i, part in enumerate(parts) if MOOD_SLOT in part)
    start, stop = (slot - 1, slot + 1) if slot > 0 else (slot, slot + 2)
    return "".join(parts[:start] + parts[stop:])
