"""What a finished track can be delivered as: file formats, sample rates and loudness targets, and their checks.

These rules sit below every layer that needs them (settings, recipe, the exporters, the API table, the command
line): this module imports nothing of the project but ``errors``.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import InvalidInputError

# Every format a track can be exported as, in the order its files are listed; a new format is one more line here
# (and its writer in audio/export.py).
FORMAT_NOTES = {
    "wav": "24-bit PCM WAV, always written",
    "flac": "24-bit FLAC, lossless",
    "mp3": "320 kbps constant-bitrate MP3",
    "midi": "standard MIDI file of the notes: melody, lead, bass, chords and drums at the measured tempo",
}
FORMATS = tuple(FORMAT_NOTES)
MIDI = "midi"  # written from the track's notes (generation/midi), not by the audio exporters
ALWAYS_WRITTEN = "wav"  # the master every export holds, whatever else was asked for
EXPORT_RATES = (44_100, 48_000)  # rates offered besides the track's own
DEFAULT_TARGET_LUFS = -14.0  # streaming services' reference level
TARGET_RANGE_LUFS = (-40.0, -5.0)  # loudness targets we accept


def check_formats(formats: str | Sequence[str]) -> tuple[str, ...]:
    """Format names as ``FORMATS`` orders them, WAV always included; text may list several ("wav,mp3").

    Unknown names are refused, naming the first one.
    """
    if isinstance(formats, str):
        formats = formats.replace(";", ",").split(",")
    names = set()
    for fmt in formats:
        name = str(fmt).strip().lower().lstrip(".")
        if name and name not in FORMATS:
            raise InvalidInputError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}.")
        names.add(name)
    return tuple(f for f in FORMATS if f == ALWAYS_WRITTEN or f in names)


def audio_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """The formats among ``formats`` that are audio files (all but MIDI)."""
    return tuple(f for f in formats if f != MIDI)


def check_rate(target_rate: int | None, sample_rate: int) -> int:
    """The rate to write at: ``sample_rate`` for None, else one of ``EXPORT_RATES`` or ``sample_rate`` itself."""
    if target_rate is None or target_rate == sample_rate:
        return int(sample_rate)
    if isinstance(target_rate, bool) or target_rate not in EXPORT_RATES:
        allowed = " or ".join(str(rate) for rate in EXPORT_RATES)
        raise InvalidInputError(
            f"sample rate must be {allowed} Hz (or the track's own {sample_rate} Hz), got {target_rate!r}."
        )
    return int(target_rate)
