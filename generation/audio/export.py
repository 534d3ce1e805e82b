"""Write a finished track and its stems as files a producer can use, each carrying its recipe.

Formats: 24-bit WAV (always written: the lossless master), 24-bit FLAC and 320 kbps
CBR MP3 (libsndfile's LAME encoder, through soundfile), at the model's own rate or
resampled to 44.1 or 48 kHz with soxr's very-high-quality filter. Every file says
where it came from:

* WAV: a RIFF ``LIST/INFO`` chunk (INAM title, IART artist, ICMT the recipe JSON,
  ISFT software, ICRD date) and an ``iXML`` chunk (NOTE the AI notice, USER the
  recipe JSON). Both are written here rather than by libsndfile, which silently
  drops every INFO string once the comment passes about 2 KB.
* FLAC: Vorbis comments TITLE, ARTIST, DATE, COMMENT (the AI notice),
  DESCRIPTION (the recipe JSON) and ENCODER.
* MP3: ID3v2.3 frames TIT2, TPE1, TDRC, COMM (the AI notice), TSSE and
  ``TXXX:moodtape_recipe`` (the recipe JSON).

The recipe also goes beside the audio as ``<file_name>.recipe.json``. Each file is
written under a ``.partial-`` name and renamed into place; if any file of an export
fails, the files that export already wrote are removed too.
"""

from __future__ import annotations

import json
import os
import re
import struct
import tempfile
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

import numpy as np

from ..errors import InvalidInputError
from ..formats import FORMATS, audio_formats, check_formats, check_rate
from .arrays import check_audio, resample

if TYPE_CHECKING:
    from ..recipe import Recipe

METADATA_KEYS = ("title", "artist", "notice", "software", "date")  # what a caller may pass as metadata
PCM_24_MAX = 2**23 - 1  # full scale of a 24-bit sample
MP3_COMPRESSION_LEVEL = 0.0  # libsndfile/LAME: 0.0 with CONSTANT bitrate is 320 kbps CBR
RECIPE_SUFFIX = ".recipe.json"
RECIPE_ID3_DESC = "moodtape_recipe"  # TXXX frame description holding the recipe JSON
PARTIAL_PREFIX = ".partial-"  # half-written files carry this prefix; storage cleanup knows it
FILE_MODE = 0o644  # finished files are readable by the web server and the person downloading them
WAV_INFO_IDS = {"title": b"INAM", "artist": b"IART", "software": b"ISFT", "date": b"ICRD"}


def export_track(
    audio: np.ndarray,
    sample_rate: int,
    *,
    folder: str | Path,
    file_name: str,
    formats: Sequence[str] = ("wav",),
    target_rate: int | None = None,
    metadata: Mapping[str, str],
    recipe_json: str,
) -> dict[str, Path]:
    """Write ``[channels, samples]`` float audio as ``<file_name>.<format>`` files plus the recipe sidecar.

    Returns ``{"wav": path, "flac": path, "mp3": path, "recipe": path}`` for what was
    written. ``target_rate`` None keeps ``sample_rate``; 44100 or 48000 resample.
    """
    # 1. Check inputs
    wanted = check_formats(formats)
    rate = check_rate(target_rate, sample_rate)
    audio = check_audio(audio)
    _check_file_name(file_name)
    tags = _check_metadata(metadata, recipe_json)
    folder = Path(folder)

    # 2. Resample once for every format
    audio = resample(audio, sample_rate, rate)

    # 3. Write each file, all or nothing
    with _all_or_nothing() as written:
        paths: dict[str, Path] = {}
        for fmt in audio_formats(wanted):  # a MIDI file is written from the notes, beside these
            paths[fmt] = written(_WRITERS[fmt](folder / f"{file_name}.{fmt}", audio, rate, tags, recipe_json))
        paths["recipe"] = written(_write_text(folder / f"{file_name}{RECIPE_SUFFIX}", recipe_json))
    return paths


def export_stems(
    stems: Mapping[str, np.ndarray],
    sample_rate: int,
    *,
    folder: str | Path,
    file_name: str,
    target_rate: int | None = None,
    metadata: Mapping[str, str],
    recipe_json: str,
) -> dict[str, Path]:
    """Write each stem as ``<file_name>_<stem>.wav`` (24-bit) and all of them, with the recipe, in one ZIP.

    Returns ``{"drums": path, ..., "zip": path}``; the ZIP is ``<file_name>_stems.zip``
    and holds the WAVs and ``<file_name>.recipe.json``.
    """
    # 1. Check inputs
    if not stems:
        raise InvalidInputError("There are no stems to write.")
    rate = check_rate(target_rate, sample_rate)
    checked = {name: check_audio(audio) for name, audio in stems.items()}
    _check_file_name(file_name)
    for name in checked:
        _check_file_name(f"{file_name}_{name}")
    tags = _check_metadata(metadata, recipe_json)
    folder = Path(folder)

    # 2. Write one WAV per stem, then the ZIP
    with _all_or_nothing() as written:
        paths: dict[str, Path] = {}
        for name, audio in checked.items():
            stem_tags = {**tags, "title": f"{tags.get('title', file_name)} ({name})"}
            target = folder / f"{file_name}_{name}.wav"
            paths[name] = written(write_wav(target, resample(audio, sample_rate, rate), rate, stem_tags, recipe_json))
        zip_path = folder / f"{file_name}_stems.zip"
        with _atomic(zip_path) as tmp, zipfile.ZipFile(tmp, "w") as archive:
            for path in paths.values():
                archive.write(path, arcname=path.name, compress_type=zipfile.ZIP_STORED)  # PCM barely compresses
            archive.writestr(f"{file_name}{RECIPE_SUFFIX}", recipe_json, compress_type=zipfile.ZIP_DEFLATED)
        paths["zip"] = written(zip_path)
    return paths


def metadata_for(recipe: Recipe, title: str) -> dict[str, str]:
    """The tags every file of a track carries: its title, the model as artist, the AI notice, software and date."""
    return {
        "title": title[:200],
        "artist": f"AI-generated with {recipe.model_id}",
        "notice": recipe.ai_notice,
        "software": f"Moodtape {recipe.app_version}",
        "date": recipe.created_at[:10],
    }


def read_metadata(path: str | Path) -> dict[str, str]:
    """The tags and recipe of a file Moodtape wrote (WAV, FLAC or MP3).

    Returns the keys of ``METADATA_KEYS`` that the file has, plus ``recipe_json`` and ``format``.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise InvalidInputError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r} ({path.name}).")
    try:
        found = {"wav": _read_wav_tags, "flac": _read_flac_tags, "mp3": _read_mp3_tags}[fmt](path)
    except (OSError, ValueError, struct.error) as e:
        raise InvalidInputError(f"Could not read the tags of '{path.name}': {e}") from e
    found = {key: value for key, value in found.items() if value}
    if "notice" not in found and "recipe_json" in found:
        notice = _notice_from_recipe(found["recipe_json"])
        if notice:
            found["notice"] = notice
    return {**found, "format": fmt}


# --- Writers: each takes (path, audio, rate, tags, recipe_json) and returns the path -----------------


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int, tags: Mapping[str, str], recipe_json: str) -> Path:
    """24-bit PCM WAV with a LIST/INFO chunk and an iXML chunk, written atomically."""
    path = Path(path)
    channels, samples = audio.shape
    pcm = np.ascontiguousarray(np.round(np.clip(audio.T, -1.0, 1.0) * PCM_24_MAX), dtype="<i4")  # interleaved
    data = pcm.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()  # little-endian: keep the low three bytes
    block_align = channels * 3
    fmt = struct.pack("<HHIIHH", 1, channels, sample_rate, sample_rate * block_align, block_align, 24)
    info = {key: tags[key] for key in WAV_INFO_IDS if tags.get(key)}
    with _atomic(path) as tmp, open(tmp, "wb") as f:
        info_chunks = b"".join(_chunk(WAV_INFO_IDS[key], _zstr(value)) for key, value in info.items())
        info_chunks += _chunk(b"ICMT", _zstr(recipe_json))
        head = b"WAVE" + _chunk(b"fmt ", fmt) + _chunk(b"LIST", b"INFO" + info_chunks)
        head += _chunk(b"iXML", _ixml(tags.get("notice", ""), recipe_json).encode("utf-8"))
        riff_size = len(head) + 8 + len(data) + len(data) % 2
        f.write(b"RIFF" + struct.pack("<I", riff_size) + head + b"data" + struct.pack("<I", len(data)))
        f.write(data)
        if len(data) % 2:
            f.write(b"\0")
    return path


def write_flac(
    path: str | Path, audio: np.ndarray, sample_rate: int, tags: Mapping[str, str], recipe_json: str
) -> Path:
    """24-bit FLAC with Vorbis comments, written atomically."""
    import soundfile as sf
    from mutagen.flac import FLAC

    path = Path(path)
    with _atomic(path) as tmp:
        sf.write(tmp, np.clip(audio.T, -1.0, 1.0), sample_rate, subtype="PCM_24", format="FLAC")
        flac = FLAC(tmp)
        comments = {
            "TITLE": tags.get("title"),
            "ARTIST": tags.get("artist"),
            "DATE": tags.get("date"),
            "COMMENT": tags.get("notice"),
            "DESCRIPTION": recipe_json,
            "ENCODER": tags.get("software"),
        }
        for key, value in comments.items():
            if value:
                flac[key] = value
        flac.save()
    return path


def write_mp3(path: str | Path, audio: np.ndarray, sample_rate: int, tags: Mapping[str, str], recipe_json: str) -> Path:
    """320 kbps CBR MP3 (LAME via libsndfile, gapless) with ID3v2.3 tags, written atomically."""
    import soundfile as sf
    from mutagen.id3 import COMM, ID3, TDRC, TIT2, TPE1, TSSE, TXXX, Encoding

    path = Path(path)
    with _atomic(path) as tmp:
        with sf.SoundFile(
            tmp,
            "w",
            samplerate=sample_rate,
            channels=audio.shape[0],
            format="MP3",
            subtype="MPEG_LAYER_III",
            compression_level=MP3_COMPRESSION_LEVEL,
            bitrate_mode="CONSTANT",
        ) as f:
            f.write(np.clip(audio.T, -1.0, 1.0))
        id3 = ID3()
        text = Encoding.UTF16  # ID3v2.3 has no UTF-8
        frames = {
            "title": lambda v: TIT2(encoding=text, text=v),
            "artist": lambda v: TPE1(encoding=text, text=v),
            "date": lambda v: TDRC(encoding=text, text=v),
            "notice": lambda v: COMM(encoding=text, lang="eng", desc="", text=v),
            "software": lambda v: TSSE(encoding=text, text=v),
        }
        for key, frame in frames.items():
            if tags.get(key):
                id3.add(frame(tags[key]))
        id3.add(TXXX(encoding=text, desc=RECIPE_ID3_DESC, text=recipe_json))
        id3.save(tmp, v2_version=3)
    return path


_WRITERS = {"wav": write_wav, "flac": write_flac, "mp3": write_mp3}


# --- Readers --------------------------------------------------------------------------------------------


def _read_wav_tags(path: Path) -> dict[str, str]:
    names = {ident: key for key, ident in WAV_INFO_IDS.items()}
    found: dict[str, str] = {}
    for ident, payload in _riff_chunks(path.read_bytes()):
        if ident == b"LIST" and payload[:4] == b"INFO":
            for sub_id, value in _chunks(payload, 4):
                text = value.split(b"\0", 1)[0].decode("utf-8", errors="replace")
                if sub_id == b"ICMT":
                    found.setdefault("recipe_json", text)
                elif sub_id in names:
                    found[names[sub_id]] = text
        elif ident == b"iXML":
            found.update(_parse_ixml(payload))
    return found


def _read_flac_tags(path: Path) -> dict[str, str]:
    from mutagen.flac import FLAC

    comments = FLAC(path).tags or {}
    keys = {"title": "TITLE", "artist": "ARTIST", "date": "DATE", "notice": "COMMENT"}
    keys.update({"recipe_json": "DESCRIPTION", "software": "ENCODER"})
    return {key: comments[name][0] for key, name in keys.items() if name in comments}


def _read_mp3_tags(path: Path) -> dict[str, str]:
    from mutagen.id3 import ID3

    id3 = ID3(path)
    found = {}
    for key, frame_id in (("title", "TIT2"), ("artist", "TPE1"), ("software", "TSSE")):
        if frame_id in id3:
            found[key] = str(id3[frame_id].text[0])
    dates = id3.getall("TDRC") or id3.getall("TYER")
    if dates:
        found["date"] = str(dates[0].text[0])
    comments = id3.getall("COMM")
    if comments:
        found["notice"] = str(comments[0].text[0])
    recipe = id3.getall(f"TXXX:{RECIPE_ID3_DESC}")
    if recipe:
        found["recipe_json"] = str(recipe[0].text[0])
    return found


# --- RIFF helpers ---------------------------------------------------------------------------------------


def _chunk(ident: bytes, payload: bytes) -> bytes:
    """A RIFF chunk: id, little-endian size, payload, and a pad byte to keep chunks word-aligned."""
    return ident + struct.pack("<I", len(payload)) + payload + (b"\0" if len(payload) % 2 else b"")


def _zstr(text: str) -> bytes:
    return text.encode("utf-8") + b"\0"


def _chunks(data: bytes, start: int) -> Iterator[tuple[bytes, bytes]]:
    position = start
    while position + 8 <= len(data):
        ident, size = data[position : position + 4], struct.unpack("<I", data[position + 4 : position + 8])[0]
        yield ident, data[position + 8 : position + 8 + size]
        position += 8 + size + size % 2


def _riff_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    return _chunks(data, 12)


def _ixml(notice: str, recipe_json: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<BWFXML><IXML_VERSION>2.10</IXML_VERSION>'
        f"<PROJECT>Moodtape</PROJECT><NOTE>{escape(notice)}</NOTE><USER>{escape(recipe_json)}</USER></BWFXML>\n"
    )


def _parse_ixml(payload: bytes) -> dict[str, str]:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(payload.rstrip(b"\0"))
    found = {}
    if root.findtext("NOTE"):
        found["notice"] = root.findtext("NOTE")
    if root.findtext("USER"):
        found["recipe_json"] = root.findtext("USER")
    return found


# --- Checks and file safety -----------------------------------------------------------------------------


def _check_file_name(file_name: str) -> None:
    if not file_name or file_name.startswith(".") or re.search(r"[/\\\0]", file_name) or len(file_name) > 200:
        raise InvalidInputError(
            "file name must be a plain name without folders or a leading dot, at most 200 characters, "
            f"got {file_name!r}."
        )


def _check_metadata(metadata: Mapping[str, str], recipe_json: str) -> dict[str, str]:
    unknown = sorted(set(metadata) - set(METADATA_KEYS))
    if unknown:
        raise ValueError(f"metadata keys must be among {', '.join(METADATA_KEYS)}, got {', '.join(unknown)}")
    try:
        json.loads(recipe_json)
    except (TypeError, ValueError) as e:
        raise ValueError(f"recipe_json must be JSON text: {e}") from e
    tags = {key: str(value) for key, value in metadata.items() if value}
    tags.setdefault("notice", _notice_from_recipe(recipe_json) or "AI-generated music.")
    return tags


def _notice_from_recipe(recipe_json: str) -> str | None:
    try:
        data = json.loads(recipe_json)
    except ValueError:
        return None
    return data.get("ai_generated") if isinstance(data, dict) else None


def _write_text(path: Path, text: str) -> Path:
    with _atomic(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return path


@contextmanager
def _atomic(path: Path) -> Iterator[str]:
    """A temporary ``.partial-`` path beside ``path``: renamed onto it on success, removed on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, FILE_MODE)
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def _all_or_nothing() -> Iterator:
    """Collect the paths an export writes; if the export fails, remove them all."""
    done: list[Path] = []

    def written(path: Path) -> Path:
        done.append(path)
        return path

    try:
        yield written
    except BaseException:
        for path in done:
            path.unlink(missing_ok=True)
        raise
