"""Mark a WAV file as a loop with a RIFF ``smpl`` chunk, the loop points that samplers and DAWs read.

The chunk follows the RIFF/WAVE ``smpl`` layout (Microsoft/IBM multimedia spec, 1991): nine little-endian
32-bit fields (manufacturer, product, sample period in nanoseconds, MIDI unity note, pitch fraction, SMPTE
format and offset, number of loops, bytes of sampler data), then 24 bytes per loop (cue point id, type,
start, end, fraction, play count). Start and end are sample frames and the end is the loop's last frame,
inclusive; type 0 is a forward loop and a play count of 0 repeats for ever.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError, quoted
from .export import FILE_MODE, PARTIAL_PREFIX

SMPL_ID = b"smpl"
SMPL_HEADER = struct.Struct("<9I")  # manufacturer .. sampler data size
SMPL_LOOP = struct.Struct("<6I")  # cue id, type, start, end, fraction, play count
UNITY_NOTE = 60  # middle C: a sampler plays the loop at its own pitch on this key
FORWARD = 0  # loop type: play start..end and jump back to start
FOREVER = 0  # play count: repeat until the note is released


@dataclass(frozen=True)
class LoopMarker:
    """The loop a ``smpl`` chunk marks, as a reader sees it."""

    start: int  # first sample frame of the loop
    end: int  # last sample frame of the loop, inclusive
    sample_period_ns: int  # nanoseconds per sample: 31250 at 32 kHz
    unity_note: int  # MIDI note at which the sample plays at its own pitch
    loop_type: int  # 0 forward, 1 alternating, 2 backward
    play_count: int  # 0 for ever


def smpl_chunk(rate: int, start: int, end: int) -> bytes:
    """The whole ``smpl`` chunk (id, size, payload) for one forward loop over frames ``start``..``end`` inclusive."""
    if isinstance(rate, bool) or not isinstance(rate, int) or rate <= 0:
        raise InvalidInputError(f"rate must be a positive whole number of samples per second, got {quoted(rate)}.")
    _check_frame("start", start)
    _check_frame("end", end)
    if end <= start:
        raise InvalidInputError(f"A loop must end after it starts, got start {start} and end {end}.")
    period = round(1e9 / rate)
    payload = SMPL_HEADER.pack(0, 0, period, UNITY_NOTE, 0, 0, 0, 1, 0)
    payload += SMPL_LOOP.pack(0, FORWARD, start, end, 0, FOREVER)
    return SMPL_ID + struct.pack("<I", len(payload)) + payload


def mark_loop(path: str | Path, start: int = 0, end: int | None = None) -> Path:
    """Add (or replace) a ``smpl`` chunk in the WAV file at ``path`` looping frames ``start``..``end`` inclusive.

    ``end`` None is the file's last frame, so by default the whole file is the loop. The audio is not touched;
    the file is rewritten under a ``.partial-`` name beside it and renamed into place, with the RIFF size updated.
    """
    path = Path(path)
    data = _read(path)
    chunks = list(_chunks(data, path))
    fmt = next((payload for ident, payload in chunks if ident == b"fmt "), None)
    frames_bytes = next((len(payload) for ident, payload in chunks if ident == b"data"), None)
    if fmt is None or frames_bytes is None or len(fmt) < 16:
        raise InvalidInputError(f"{path.name} has no fmt or data chunk, so it is not a playable WAV file.")
    rate, block_align = struct.unpack_from("<I", fmt, 4)[0], struct.unpack_from("<H", fmt, 12)[0]
    frames = frames_bytes // max(1, block_align)
    end = frames - 1 if end is None else end
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end < frames):
        raise InvalidInputError(
            f"A loop in {path.name} must lie within its {frames} frames (0 to {frames - 1}), "
            f"got start {quoted(start)} and end {quoted(end)}."
        )
    body = b"".join(_chunk(ident, payload) for ident, payload in chunks if ident != SMPL_ID)
    body += smpl_chunk(rate, start, end)
    _replace(path, b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body)
    return path


def read_loop_marker(path: str | Path) -> LoopMarker | None:
    """The first loop of the WAV file's ``smpl`` chunk, or None when it has none."""
    path = Path(path)
    for ident, payload in _chunks(_read(path), path):
        if ident == SMPL_ID and len(payload) >= SMPL_HEADER.size + SMPL_LOOP.size:
            header = SMPL_HEADER.unpack_from(payload)
            if header[7] == 0:
                return None
            _, loop_type, start, end, _, play_count = SMPL_LOOP.unpack_from(payload, SMPL_HEADER.size + header[8])
            return LoopMarker(start, end, header[2], header[3], loop_type, play_count)
    return None


def _read(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InvalidInputError(f"Cannot read {path.name}: {e.strerror or e}.") from e
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InvalidInputError(f"{path.name} is not a RIFF/WAVE file.")
    return data


def _chunks(data: bytes, path: Path) -> Iterator[tuple[bytes, bytes]]:
    """``(id, payload)`` of each chunk after the ``WAVE`` tag; refuses a chunk that runs past the file's end."""
    offset = 12
    while offset + 8 <= len(data):
        ident, size = data[offset : offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        if offset + 8 + size > len(data):
            raise InvalidInputError(f"{path.name} is cut short: its {ident!r} chunk runs past the end of the file.")
        yield ident, data[offset + 8 : offset + 8 + size]
        offset += 8 + size + size % 2  # chunks are padded to an even length


def _chunk(ident: bytes, payload: bytes) -> bytes:
    return ident + struct.pack("<I", len(payload)) + payload + b"\0" * (len(payload) % 2)


def _check_frame(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**32:
        raise InvalidInputError(f"Loop {name} must be a sample frame from 0 to {2**32 - 1}, got {quoted(value)}.")


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` beside ``path`` under a ``.partial-`` name and rename it onto ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
