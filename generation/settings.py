"""What one generation request asks for, as a validated frozen dataclass."""

from __future__ import annotations

import math
import secrets
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from .errors import InvalidInputError, quoted
from .formats import DEFAULT_TARGET_LUFS, EXPORT_RATES, TARGET_RANGE_LUFS, check_formats

MIN_DURATION = 1.0  # seconds; shorter clips are mostly codec warm-up
MAX_DURATION = 300.0  # seconds; beyond MusicGen's 30 s window, tracks are continued window by window
MAX_SEED = 2**31 - 1  # keeps seeds portable across numpy, torch and JSON clients
MAX_PROMPT_CHARS = 2_000  # beyond this a prompt is refused; the text encoder reads far less
MAX_TOP_K = 2048  # MusicGen's codebook size
MAX_TEMPERATURE = 5.0  # higher is indistinguishable from noise
MAX_GUIDANCE = 20.0  # higher saturates the logits


@dataclass(frozen=True)
class GenerationSettings:
    """One request's prompt and sampling settings; invalid values raise ``InvalidInputError``.

    The defaults are MusicGen's own (audiocraft): sampling with top-k 250 and
    classifier-free guidance 3.
    """

    prompt: str = ""  # the mood or style in words; may be empty only when a melody is given
    duration: float = 10.0  # seconds of audio, MIN_DURATION..MAX_DURATION
    seed: int | None = None  # None means "pick a random seed"; the one used goes in the recipe
    temperature: float = 1.0  # softmax temperature; > 0
    top_k: int = 250  # sample from the k most likely tokens; 0 disables top-k
    top_p: float = 0.0  # nucleus sampling mass in (0, 1]; 0 disables top-p
    guidance_scale: float = 3.0  # classifier-free guidance; 1 disables it
    negative_prompt: str = ""  # what to steer away from; takes the empty text's place in guidance (needs guidance > 1)

    def __post_init__(self) -> None:
        prompt_hint = "a sentence or two describing genre, instruments, tempo and mood works best"
        object.__setattr__(self, "prompt", _clean_text("prompt", self.prompt, prompt_hint))
        negative_hint = "a few words naming what to avoid, e.g. 'vocals, distortion'"
        object.__setattr__(self, "negative_prompt", _clean_text("negative prompt", self.negative_prompt, negative_hint))
        _check_number("duration", self.duration, MIN_DURATION, MAX_DURATION, "seconds")
        if self.seed is not None:
            _check_integer("seed", self.seed, 0, MAX_SEED, hint="or leave it empty (-1) for a random seed")
        _check_number("temperature", self.temperature, 0.0, MAX_TEMPERATURE, open_low=True)
        _check_integer("top_k", self.top_k, 0, MAX_TOP_K, hint="0 turns top-k off")
        _check_number("top_p", self.top_p, 0.0, 1.0, hint="0 turns top-p off")
        _check_number("guidance_scale", self.guidance_scale, 1.0, MAX_GUIDANCE, hint="1 turns guidance off")
        if self.top_k == 0 and self.top_p == 0.0:
            raise InvalidInputError(
                "top_k and top_p are both 0, which leaves nothing to sample from; "
                "set top_k (MusicGen's default is 250) or top_p (for example 0.9)."
            )
        object.__setattr__(self, "duration", float(self.duration))
        object.__setattr__(self, "temperature", float(self.temperature))
        object.__setattr__(self, "top_p", float(self.top_p))
        object.__setattr__(self, "guidance_scale", float(self.guidance_scale))
        object.__setattr__(self, "top_k", int(self.top_k))
        if self.seed is not None:
            object.__setattr__(self, "seed", int(self.seed))

    def with_seed(self) -> GenerationSettings:
        """Return these settings with a concrete seed, drawing a random one if none was given."""
        if self.seed is not None:
            return self
        return replace(self, seed=secrets.randbelow(MAX_SEED + 1))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GenerationSettings:
        """Build settings from a mapping, refusing names that are not settings."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidInputError(f"Unknown setting(s) {unknown}; known settings are {sorted(known)}.")
        return cls(**values)


def normalise_seed(seed: float | int | str | None) -> int | None:
    """Turn a UI or API seed (empty, -1, a number or numeric text) into ``None`` or an int."""
    if seed is None or (isinstance(seed, str) and not seed.strip()):
        return None
    if isinstance(seed, bool):
        raise InvalidInputError(f"seed must be a whole number or empty, got {seed!r}.")
    try:
        value = float(seed)
    except (TypeError, ValueError, OverflowError) as e:
        raise InvalidInputError(
            f"seed must be a whole number between 0 and {MAX_SEED} or empty, got {quoted(seed)}."
        ) from e
    if value == -1:
        return None
    if not math.isfinite(value) or value != int(value):
        raise InvalidInputError(f"seed must be a whole number or empty, got {quoted(seed)}.")
    return int(value)


def _clean_text(name: str, value: Any, hint: str) -> str:
    """A prompt's text with its whitespace collapsed; refuses other types and text over MAX_PROMPT_CHARS."""
    if not isinstance(value, str):
        raise InvalidInputError(f"The {name} must be text, got {type(value).__name__}.")
    text = " ".join(value.split())
    if len(text) > MAX_PROMPT_CHARS:
        raise InvalidInputError(
            f"The {name} is {len(text)} characters long; keep it under {MAX_PROMPT_CHARS} ({hint})."
        )
    return text


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_number(
    name: str, value: Any, low: float, high: float, unit: str = "", *, open_low: bool = False, hint: str = ""
) -> None:
    suffix = f" {unit}" if unit else ""
    extra = f" ({hint})" if hint else ""
    if not _is_real(value) or not _finite(value):
        raise InvalidInputError(f"{name} must be a number between {low:g} and {high:g}{suffix}, got {quoted(value)}.")
    if (value <= low if open_low else value < low) or value > high:
        lower = f"above {low:g}" if open_low else f"at least {low:g}"
        raise InvalidInputError(f"{name} must be {lower} and at most {high:g}{suffix}{extra}, got {value:g}.")


def _check_integer(name: str, value: Any, low: int, high: int, hint: str = "") -> None:
    extra = f" ({hint})" if hint else ""
    if not _is_real(value) or not _finite(value) or value != int(value):
        raise InvalidInputError(f"{name} must be a whole number between {low} and {high}{extra}, got {quoted(value)}.")
    if not low <= value <= high:
        raise InvalidInputError(f"{name} must be between {low} and {high}{extra}, got {int(value)}.")


@dataclass(frozen=True)
class ExportSettings:
    """How a finished track is delivered: formats, rate, loudness and stems."""

    formats: tuple[str, ...] = ("wav",)  # any of formats.FORMATS; WAV is added when missing
    sample_rate: int | None = None  # None keeps the model's rate (32 kHz); 44100 or 48000 resample with soxr
    loudness_lufs: float | None = DEFAULT_TARGET_LUFS  # integrated loudness (EBU R128); None leaves the level alone
    stems: bool = False  # also split the track into drums, bass, other and vocals with Demucs

    def __post_init__(self) -> None:
        formats = self.formats
        if not isinstance(formats, (str, tuple, list)) or not all(isinstance(f, str) for f in formats):
            raise InvalidInputError(f"formats must be a list of names such as ['wav', 'mp3'], got {quoted(formats)}.")
        object.__setattr__(self, "formats", check_formats(formats))
        if self.sample_rate is not None:
            if not _is_real(self.sample_rate) or self.sample_rate not in EXPORT_RATES:
                raise InvalidInputError(
                    f"sample_rate must be empty (the model's own 32 kHz) or one of {list(EXPORT_RATES)}, "
                    f"got {quoted(self.sample_rate)}."
                )
            object.__setattr__(self, "sample_rate", int(self.sample_rate))
        if self.loudness_lufs is not None:
            _check_number(
                "loudness",
                self.loudness_lufs,
                *TARGET_RANGE_LUFS,
                "LUFS",
                hint="-14 suits streaming, -23 broadcast; 0 or 'off' turns it off",
            )
            object.__setattr__(self, "loudness_lufs", float(self.loudness_lufs))
        if not isinstance(self.stems, bool):
            raise InvalidInputError(f"stems must be true or false, got {self.stems!r}.")

    @classmethod
    def from_request(cls, formats=None, sample_rate=None, loudness=None, stems=None) -> ExportSettings:
        """Export settings from UI or API values: ``None`` takes the default; loudness 0 or "off" turns it off."""
        values: dict[str, Any] = {}
        for name, value in (("sample_rate", sample_rate), ("loudness", loudness)):
            if isinstance(value, bool):
                raise InvalidInputError(f"{name} must be a number, got {value!r}.")
        if formats not in (None, "", [], ()):
            values["formats"] = formats
        if sample_rate not in (None, "", 0, "native"):
            values["sample_rate"] = sample_rate
        if isinstance(loudness, str) and loudness.strip().lower() in ("off", "none", "0"):
            values["loudness_lufs"] = None
        elif loudness is not None and loudness != "":
            values["loudness_lufs"] = None if loudness == 0 else loudness
        if stems is not None:
            values["stems"] = stems
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "formats": list(self.formats)}
