"""Mark places in a WAV file with labelled cue points, the markers DAWs and samplers show (a song's sections).

The layout is the RIFF/WAVE one (Microsoft/IBM multimedia spec, 1991). A ``cue `` chunk holds a count, then
24 bytes per cue point: its id, its position in play order, the chunk it points into (``data``), two zero
offsets for uncompressed audio, and its sample frame. The labels sit in a ``LIST`` chunk of type ``adtl``: one
``labl`` sub-chunk per cue, its cue id then zero-terminated text (UTF-8 here; Reaper, Audacity and Logic read
it). Ids count from 1. The file is rewritten as a loop marker is (``loop_marker``): every other chunk kept,
the audio untouched, under a ``.partial-`` name renamed into place.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError, quoted
from .loop_marker import _chunk, _chunks, _read, _replace

CUE_ID = b"cue "
LIST_ID, ADTL_TYPE, LABEL_ID = b"LIST", b"adtl", b"labl"
CUE_POINT = struct.Struct("<II4sIII")  # id, position, chunk id, chunk start, block start, sample frame
MAX_LABEL_BYTES = 255  # longer labels are cut: DAWs show a line, not a paragraph


@dataclass(frozen=True)
class Cue:
    """A labelled place in a track: its sample frame at the file's rate, and what to call it."""

    frame: int
    label: str


def cue_chunks(cues: Sequence[Cue]) -> bytes:
    """The ``cue `` chunk and the ``LIST``/``adtl`` chunk of labels, whole (ids, sizes, payloads)."""
    points, labels = b"", b""
    for number, cue in enumerate(cues, start=1):
        if isinstance(cue.frame, bool) or not isinstance(cue.frame, int) or not 0 <= cue.frame < 2**32:
            raise InvalidInputError(f"A cue's frame must be a whole sample frame from 0, got {quoted(cue.frame)}.")
        if not isinstance(cue.label, str):
            raise InvalidInputError(f"A cue's label must be text, got {quoted(cue.label)}.")
        points += CUE_POINT.pack(number, number, b"data", 0, 0, cue.frame)
        text = cue.label.encode("utf-8")[:MAX_LABEL_BYTES].decode("utf-8", errors="ignore").encode("utf-8")
        labels += _chunk(LABEL_ID, struct.pack("<I", number) + text + b"\0")
    return _chunk(CUE_ID, struct.pack("<I", len(cues)) + points) + _chunk(LIST_ID, ADTL_TYPE + labels)


def mark_cues(path: str | Path, cues: Sequence[Cue]) -> Path:
    """Add (or replace) the cue points and labels of the WAV file at ``path``; every cue must lie in its audio."""
    import soundfile

    path = Path(path)
    chunks = list(_chunks(_read(path), path))
    try:
        frames = soundfile.info(path).frames
    except RuntimeError as e:  # soundfile's LibsndfileError
        raise InvalidInputError(f"{path.name} is not a playable WAV file: {e}") from e
    outside = [cue.frame for cue in cues if not (isinstance(cue.frame, int) and 0 <= cue.frame < frames)]
    if outside:
        raise InvalidInputError(
            f"Cues in {path.name} must lie within its {frames} frames (0 to {frames - 1}), got {quoted(outside[0])}."
        )
    kept = (chunk for chunk in chunks if not _is_cue_chunk(*chunk))
    body = b"".join(_chunk(ident, payload) for ident, payload in kept) + cue_chunks(cues)
    _replace(path, b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body)
    return path


def read_cues(path: str | Path) -> tuple[Cue, ...]:
    """The WAV file's cue points with their labels, in order of position; empty when it has none."""
    path = Path(path)
    frames: dict[int, int] = {}
    labels: dict[int, str] = {}
    for ident, payload in _chunks(_read(path), path):
        if ident == CUE_ID and len(payload) >= 4:
            count = min(struct.unpack_from("<I", payload)[0], (len(payload) - 4) // CUE_POINT.size)
            for i in range(count):
                number, _, _, _, _, frame = CUE_POINT.unpack_from(payload, 4 + i * CUE_POINT.size)
                frames[number] = frame
        elif ident == LIST_ID and payload[:4] == ADTL_TYPE:
            for sub_id, sub in _sub_chunks(payload):
                if sub_id == LABEL_ID and len(sub) >= 4:
                    labels[struct.unpack_from("<I", sub)[0]] = sub[4:].split(b"\0", 1)[0].decode("utf-8", "replace")
    return tuple(Cue(frame, labels.get(number, "")) for number, frame in sorted(frames.items(), key=lambda x: x[1]))


def _is_cue_chunk(ident: bytes, payload: bytes) -> bool:
    return ident == CUE_ID or (ident == LIST_ID and payload[:4] == ADTL_TYPE)


def _sub_chunks(payload: bytes):
    """``(id, payload)`` of each sub-chunk of a ``LIST`` payload, after its 4-byte type; stops at a cut one."""
    offset = 4
    while offset + 8 <= len(payload):
        ident, size = payload[offset : offset + 4], struct.unpack_from("<I", payload, offset + 4)[0]
        if offset + 8 + size > len(payload):
            return
        yield ident, payload[offset + 8 : offset + 8 + size]
        offset += 8 + size + size % 2
