"""Decode a user's audio (a file or a microphone array) into clean mono float32 at a chosen rate.

Every input goes through the same steps, in this order:

1. decode: soundfile (WAV, FLAC, OGG, MP3, ...), else ffmpeg (WebM/Opus, M4A/AAC, ...);
2. check: no NaN or infinite samples, not silent;
3. downmix: the mean of all channels;
4. trim: leading and trailing silence, judged against the loudest 10 ms of the recording;
5. check the length left, then keep at most ``max_seconds`` from the start;
6. resample with soxr (high quality; band-limited, so nothing aliases);
7. normalise the peak to ``TARGET_PEAK_DBFS``.

Anything wrong with the input raises ``InvalidInputError`` with a message for the user.
"""

from __future__ import annotations

import hashlib
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, brief
from .arrays import resample

MIN_SAMPLE_RATE = 4_000  # Hz; below this even a hum's fundamental is lost
MAX_SAMPLE_RATE = 768_000  # Hz; the highest rate WAV writers produce
SILENCE_THRESHOLD_DB = -40.0  # a 10 ms frame this far below the loudest frame counts as silence
SILENT_PEAK_DBFS = -80.0  # audio whose peak is below this is refused as silent
TRIM_FRAME_SECONDS = 0.01  # loudness is measured over frames of this length when trimming
TRIM_MARGIN_SECONDS = 0.1  # kept on each side of the sound so soft attacks and tails survive
TARGET_PEAK_DBFS = -1.0  # level normalisation: the peak is scaled to this, leaving headroom for codecs
QUIET_NOTE_DBFS = -30.0  # inputs peaking below this get a note suggesting a louder recording
NOTE_TRIM_SECONDS = 0.5  # trimming less silence than this is not worth a note
DECODE_HEADROOM_SECONDS = 60.0  # beyond max_seconds, this much more is decoded to find where sound starts
FFMPEG_MAX_SECONDS = 3_600  # ffmpeg decodes at most this much of a file
FFMPEG_TIMEOUT_SECONDS = 120  # a decode taking longer than this is abandoned
FFMPEG_ONLY_SUFFIXES = frozenset({".webm", ".weba", ".m4a", ".mp4", ".aac", ".mov", ".mkv", ".3gp", ".wma", ".amr"})
SOUNDFILE_FORMATS = "WAV, FLAC, OGG and MP3"  # what libsndfile reads without ffmpeg, for messages


@dataclass(frozen=True, eq=False)
class LoadedAudio:
    """A decoded, cleaned recording and what was done to it."""

    samples: np.ndarray  # mono float32 at sample_rate, read-only
    sample_rate: int  # Hz, the rate that was asked for
    source_name: str  # the file name (no folders), or a label such as "microphone"
    source_seconds: float  # length of the original input, before trimming and truncation
    used_seconds: float  # length of ``samples``
    truncated: bool  # True when only the first ``max_seconds`` of sound were kept
    notes: tuple[str, ...]  # short sentences for the user about what was changed
    digest: str  # sha256 of ``samples`` (little-endian float32 bytes), for recipes and caching
    source_rate: int = 0  # Hz, the input's own sample rate
    source_channels: int = 1  # channels in the input before the downmix


def load_audio(path: str | Path, target_rate: int, *, max_seconds: float, min_seconds: float = 1.0) -> LoadedAudio:
    """Decode ``path`` and clean it into mono float32 at ``target_rate``; see the module docstring for the steps."""
    _check_limits(target_rate, max_seconds, min_seconds)
    path = _check_file(path)
    max_frames_seconds = max_seconds + DECODE_HEADROOM_SECONDS
    frames, rate, source_frames = _decode(path, max_frames_seconds)
    return _clean(
        frames,
        rate,
        target_rate,
        name=path.name,
        source_seconds=source_frames / rate,
        max_seconds=max_seconds,
        min_seconds=min_seconds,
        kind="file",
    )


@dataclass(frozen=True, eq=False)
class DecodedTrack:
    """A whole track as it is in its file: no trimming, no level change; for continuing it (an extend)."""

    samples: np.ndarray  # float32 [channels, samples], 1 or 2 channels, read-only
    sample_rate: int  # the file's own rate
    source_name: str  # the file name, no folders
    digest: str  # sha256 of the file's bytes: the recipe names exactly which file was continued

    @property
    def seconds(self) -> float:
        return self.samples.shape[-1] / self.sample_rate


def read_track(path: str | Path, *, max_seconds: float, min_seconds: float = 1.0) -> DecodedTrack:
    """Decode ``path`` as it is (any format ``load_audio`` reads); more than two channels are mixed to mono.

    Refuses a file longer than ``max_seconds`` or shorter than ``min_seconds``, naming both.
    """
    path = _check_file(path)
    frames, rate, total = _decode(path, max_seconds + 1.0)
    _check_source_rate(rate, path.name)
    seconds = total / rate
    if seconds > max_seconds:
        raise InvalidInputError(
            f"{path.name!r} is {seconds:.1f} s long; this server continues tracks of at most {max_seconds:g} s."
        )
    if seconds < min_seconds:
        raise InvalidInputError(f"{path.name!r} is {seconds:.2f} s long; give at least {min_seconds:g} s to continue.")
    if not np.isfinite(frames).all():
        raise InvalidInputError(f"{path.name!r} holds NaN or infinite samples; export it again.")
    samples = frames.T if frames.shape[1] <= 2 else frames.mean(axis=1, keepdims=True).T
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    samples.setflags(write=False)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return DecodedTrack(samples, rate, path.name, digest)


def _check_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(f"The audio file {path.name!r} was not found; upload it again or check the path.")
    if not path.is_file():
        raise InvalidInputError(f"{path.name!r} is a folder, not an audio file; choose a file inside it.")
    if path.stat().st_size == 0:
        raise InvalidInputError(f"The audio file {path.name!r} is empty (0 bytes); record or upload it again.")
    return path


# -- Decoding ------------------------------------------------------------------------------------------------------


def _decode(path: Path, max_seconds: float) -> tuple[np.ndarray, int, int]:
    """Return (float32 frames x channels, sample rate, frames in the whole file), reading at most ``max_seconds``."""
    try:
        return _decode_with_soundfile(path, max_seconds)
    except InvalidInputError:
        raise
    except _soundfile_errors() as e:
        soundfile_error = e  # not a format libsndfile knows, or damaged: let ffmpeg try
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        if path.suffix.lower() in FFMPEG_ONLY_SUFFIXES:
            raise InvalidInputError(
                f"Reading {path.suffix.lower()} files such as {path.name!r} needs ffmpeg, which is not installed; "
                f"install it (for example `apt-get install ffmpeg`) or upload {SOUNDFILE_FORMATS} instead."
            ) from soundfile_error
        raise InvalidInputError(
            f"{path.name!r} could not be read as audio ({brief(soundfile_error)}); it may be damaged or not a sound "
            f"file. Upload {SOUNDFILE_FORMATS}, or install ffmpeg to read WebM and M4A recordings."
        ) from soundfile_error
    return _decode_with_ffmpeg(ffmpeg, path, max_seconds)


def _soundfile_errors() -> tuple[type[BaseException], ...]:
    import soundfile

    # libsndfile reports unknown formats and damaged files through several exception types.
    return (soundfile.SoundFileError, RuntimeError, ValueError, TypeError, OSError, EOFError)


def _decode_with_soundfile(path: Path, max_seconds: float) -> tuple[np.ndarray, int, int]:
    import soundfile

    with soundfile.SoundFile(path) as f:
        rate = int(f.samplerate)
        if f.frames <= 0:
            raise ValueError("no audio frames")
        _check_source_rate(rate, path.name)
        wanted = min(f.frames, math.ceil(max_seconds * rate))
        frames = f.read(frames=wanted, dtype="float32", always_2d=True)
        total = max(f.frames, len(frames))
    return frames, rate, total


def _decode_with_ffmpeg(ffmpeg: str, path: Path, max_seconds: float) -> tuple[np.ndarray, int, int]:
    """Convert the first audio stream to a float WAV with ffmpeg, then read that with soundfile."""
    with tempfile.TemporaryDirectory(prefix="moodtape-decode-") as folder:
        wav = Path(folder) / "decoded.wav"
        command = [
            ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", str(path),
            "-map", "0:a:0", "-vn", "-sn", "-dn", "-t", str(FFMPEG_MAX_SECONDS),
            "-c:a", "pcm_f32le", "-f", "wav", "-y", str(wav),
        ]  # fmt: skip
        try:
            result = subprocess.run(command, capture_output=True, timeout=FFMPEG_TIMEOUT_SECONDS, check=False)
        except subprocess.TimeoutExpired as e:
            raise InvalidInputError(
                f"Decoding {path.name!r} took longer than {FFMPEG_TIMEOUT_SECONDS} s; upload a shorter recording."
            ) from e
        except OSError as e:
            raise InvalidInputError(f"ffmpeg could not be started to decode {path.name!r}: {e}.") from e
        detail = result.stderr.decode("utf-8", "replace").strip()
        if result.returncode != 0 or not wav.is_file() or wav.stat().st_size == 0:
            raise InvalidInputError(_ffmpeg_failure_message(path, detail)) from _FfmpegError(detail)
        try:
            return _decode_with_soundfile(wav, max_seconds)
        except InvalidInputError:
            raise
        except _soundfile_errors() as e:
            raise InvalidInputError(
                f"{path.name!r} decoded to no usable audio ({brief(e)}); it may be damaged. Record or export it again."
            ) from e


class _FfmpegError(RuntimeError):
    """ffmpeg's own error text, kept as the cause of the user-facing error."""


def _ffmpeg_failure_message(path: Path, detail: str) -> str:
    name, lowered = path.name, detail.lower()
    if "matches no streams" in lowered or "does not contain any stream" in lowered:
        return f"{name!r} has no audio track (it looks like an image or a silent video); upload a sound recording."
    if any(sign in lowered for sign in _DAMAGED_SIGNS):
        return f"{name!r} is not a recognised audio file or is damaged; upload WAV, FLAC, OGG, MP3, WebM or M4A audio."
    detail = brief(detail.replace(str(path), name)) or "ffmpeg failed"
    return f"{name!r} could not be decoded ({detail}); record or export it again."


_DAMAGED_SIGNS = (  # ffmpeg's words for input that is not audio, or is cut short or corrupt
    "invalid data found",
    "could not find codec",
    "invalid argument",
    "input/output error",
    "end of file",
    "error while decoding",
    "header missing",
)


# -- Cleaning ------------------------------------------------------------------------------------------------------


def _clean(
    frames: np.ndarray,
    rate: int,
    target_rate: int,
    *,
    name: str,
    source_seconds: float,
    max_seconds: float,
    min_seconds: float,
    kind: str,
) -> LoadedAudio:
    # 1. Check the samples
    if frames.size == 0:
        raise InvalidInputError(f"The {kind} {name!r} contains no audio samples; record or upload it again.")
    if not np.isfinite(frames).all():
        raise InvalidInputError(
            f"The {kind} {name!r} contains invalid samples (NaN or infinite values), so it is damaged; "
            "export it again, for example as 16-bit WAV."
        )
    channels = frames.shape[1]
    mono = frames.mean(axis=1, dtype=np.float64).astype(np.float32) if channels > 1 else frames[:, 0]
    peak = float(np.max(np.abs(mono)))
    if peak <= 10 ** (SILENT_PEAK_DBFS / 20):
        raise InvalidInputError(
            f"The {kind} {name!r} is silent (no sound above {SILENT_PEAK_DBFS:g} dBFS); "
            "check the microphone and record again."
        )

    # 2. Trim silence, then enforce the length limits
    start, stop = _sound_bounds(mono, rate)
    lead, tail = start / rate, (len(mono) - stop) / rate
    mono = mono[start:stop]
    seconds = len(mono) / rate
    if seconds < min_seconds:
        raise InvalidInputError(
            f"The {kind} {name!r} has only {seconds:.1f} s of sound after trimming silence; "
            f"record at least {min_seconds:g} s."
        )
    notes = []
    if lead >= NOTE_TRIM_SECONDS or tail >= NOTE_TRIM_SECONDS:
        notes.append(f"Trimmed {lead:.1f} s of silence from the start and {tail:.1f} s from the end.")
    truncated = seconds > max_seconds
    if truncated:
        mono = mono[: round(max_seconds * rate)]
        notes.append(f"Used the first {max_seconds:g} s of a {source_seconds:.0f} s {kind}.")

    # 3. Resample and normalise the level
    mono = resample(mono, rate, target_rate)
    peak = float(np.max(np.abs(mono)))
    if peak < 10 ** (QUIET_NOTE_DBFS / 20):
        notes.append(
            f"The {kind} was very quiet (peak {20 * math.log10(peak):.0f} dBFS) and was made louder; "
            "a louder recording will give a cleaner melody."
        )
    mono = (mono * np.float32(10 ** (TARGET_PEAK_DBFS / 20) / peak)).astype(np.float32)
    mono.setflags(write=False)
    return LoadedAudio(
        samples=mono,
        sample_rate=target_rate,
        source_name=name,
        source_seconds=source_seconds,
        used_seconds=len(mono) / target_rate,
        truncated=truncated,
        notes=tuple(notes),
        digest=hashlib.sha256(mono.astype("<f4").tobytes()).hexdigest(),
        source_rate=rate,
        source_channels=channels,
    )


def _sound_bounds(mono: np.ndarray, rate: int) -> tuple[int, int]:
    """Sample range from the first to the last frame within SILENCE_THRESHOLD_DB of the loudest, plus margins."""
    size = max(1, int(rate * TRIM_FRAME_SECONDS))
    count = math.ceil(len(mono) / size)
    padded = np.zeros(count * size, dtype=np.float64)
    padded[: len(mono)] = mono
    rms = np.sqrt(np.mean(padded.reshape(count, size) ** 2, axis=1))
    loud = np.flatnonzero(rms >= rms.max() * 10 ** (SILENCE_THRESHOLD_DB / 20))
    margin = int(rate * TRIM_MARGIN_SECONDS)
    start = max(0, loud[0] * size - margin)
    stop = min(len(mono), (loud[-1] + 1) * size + margin)
    return int(start), int(stop)


def _check_limits(target_rate: int, max_seconds: float, min_seconds: float) -> None:
    if isinstance(target_rate, bool) or not isinstance(target_rate, (int, np.integer)):
        raise InvalidInputError(f"target_rate must be a whole number of Hz, got {target_rate!r}.")
    if not MIN_SAMPLE_RATE <= target_rate <= MAX_SAMPLE_RATE:
        raise InvalidInputError(
            f"target_rate must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz, got {target_rate}."
        )
    for label, value in (("max_seconds", max_seconds), ("min_seconds", min_seconds)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise InvalidInputError(f"{label} must be a positive number of seconds, got {value!r}.")
    if min_seconds > max_seconds:
        raise InvalidInputError(
            f"min_seconds ({min_seconds:g}) must not exceed max_seconds ({max_seconds:g}); lower min_seconds."
        )


def _check_source_rate(rate: int, name: str) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise InvalidInputError(
            f"{name!r} has a sample rate of {rate} Hz; supported rates are {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz. "
            "Export it again at 44.1 or 48 kHz."
        )
