"""Bad, odd and hostile input through the real gradio_client: every request ends in a track or a clear message.

A clear message is an ``AppError`` that names the parameter or the problem; never Gradio's generic "upstream
Gradio app has raised an exception", never the runner's "Something went wrong inside the generator", never a
traceback. Tables of cases run four at a time (the server's concurrency limit) and report every case that
went wrong at once. The module ends by proving the server still generates, and writes its tally to
``tests/.reports/bad_input.json``.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from app import API_NAMES
from tests.audio_factory import hum, with_silence, write_audio
from tests.conftest import LiveServer
from tests.load_report import write_report

pytestmark = pytest.mark.slow

GENERIC_GRADIO = "upstream Gradio app has raised an exception"
GENERIC_RUNNER = "Something went wrong inside the generator"
CASE_WORKERS = 4  # the server generates at most four requests at once (MOODTAPE_MAX_BATCH)
HUM_NOTES = ("A3", "C#4", "E4", "A4")
HUM_SECONDS = 2.0  # four notes of 0.5 s
LIMITED_MAX_FILE_SIZE = "1mb"  # the second server's upload limit (1048576 bytes)...
LIMITED_MAX_DURATION = 2  # ...and its longest track, so the duration bound can be generated in a second
FUZZ_EXAMPLES = 30  # about 0.6 to 1.5 s each against the tiny model
PARAMETER_WORDS = (*API_NAMES, "format", "nothing to sample")  # a clear message names one ("Unknown format ...")
NUMERIC = (
    *("duration", "seed", "temperature", "top_k", "top_p", "guidance", "sample_rate", "loudness"),
    *("variations", "bpm", "bars"),
)
SAFE_WAV_NAME = re.compile(r"moodtape_[a-z0-9-]+_seed\d+\.wav")

TALLY: Counter[str] = Counter()  # cases, clear_errors, tracks, client_refusals, unclear_errors
_TALLY_LOCK = threading.Lock()


# -- Fixtures ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def bad_input_report():
    """At the end of the module: print the tally on one line and write it to tests/.reports/bad_input.json."""
    started = time.monotonic()
    yield
    figures = {
        "cases": TALLY["cases"],
        "clear_errors": TALLY["clear_errors"],
        "tracks": TALLY["tracks"],
        "client_refusals": TALLY["client_refusals"],  # refused by gradio_client before reaching the server
        "unclear_errors": TALLY["unclear_errors"],
        "fuzz": {kind: TALLY[f"fuzz_{kind}"] for kind in ("track", "error", "client")},
        "seconds": round(time.monotonic() - started, 1),
    }
    write_report("bad_input", figures)


@pytest.fixture(scope="module")
def limited_server(tiny_models_env, tmp_path_factory):
    """A second server with a 1 MB upload limit and a 2 s duration limit."""
    folder = tmp_path_factory.mktemp("limited")
    server = LiveServer(
        {
            **tiny_models_env,
            "MOODTAPE_OUTPUT_DIR": str(folder / "outputs"),
            "MOODTAPE_MAX_FILE_SIZE": LIMITED_MAX_FILE_SIZE,
            "MOODTAPE_MAX_DURATION": str(LIMITED_MAX_DURATION),
        },
        folder / "server.log",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def limited_client(limited_server):
    return Client(limited_server.url, verbose=False)


@pytest.fixture(scope="module")
def melody_files(tmp_path_factory) -> dict[str, Path]:
    """Bad, odd and valid melody files, by name."""
    folder = tmp_path_factory.mktemp("melodies")
    rate = 44_100
    voice = with_silence(hum(HUM_NOTES, note_seconds=0.5, rate=rate), rate, 0.2, 0.2)
    good_wav = write_audio(folder / "good", voice, rate, "wav_16").read_bytes()
    files: dict[str, Path] = {}

    def raw(name: str, content: bytes) -> None:
        files[name] = folder / name
        files[name].write_bytes(content)

    # refused
    raw("empty.wav", b"")
    raw("cut-header.wav", good_wav[:30])  # the RIFF header stops inside the fmt chunk
    damaged = bytearray(good_wav)
    damaged[20:36] = b"\xff" * 16  # the fmt chunk overwritten
    raw("damaged-format.wav", bytes(damaged))
    raw("random-bytes.mp3", np.random.default_rng(0).integers(0, 256, 30_000, dtype=np.uint8).tobytes())
    raw("notes.wav", b"just some text, not a recording\n" * 40)
    raw("picture.flac", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    raw("program.ogg", Path(os.__file__).read_bytes()[:20_000])  # Python source, named as audio
    files["zero-frames.wav"] = folder / "zero-frames.wav"
    sf.write(files["zero-frames.wav"], np.zeros((0, 1), np.float32), rate)
    files["silent.wav"] = folder / "silent.wav"
    sf.write(files["silent.wav"], np.zeros(2 * rate, np.float32), rate)
    with_nan = voice.copy()
    with_nan[1_000:2_000] = np.nan
    files["nan.wav"] = folder / "nan.wav"
    sf.write(files["nan.wav"], with_nan, rate, subtype="FLOAT")
    with_inf = voice.copy()
    with_inf[5_000] = np.inf
    files["inf.wav"] = folder / "inf.wav"
    sf.write(files["inf.wav"], with_inf, rate, subtype="FLOAT")
    # unusual but valid
    files["8khz-8bit.wav"] = write_audio(folder / "8khz-8bit", hum(HUM_NOTES, 0.5, rate=8_000), 8_000, "wav_u8")
    files["96khz-float.wav"] = write_audio(
        folder / "96khz-float", hum(HUM_NOTES, 0.5, rate=96_000), 96_000, "wav_float"
    )
    files["6-channel.wav"] = write_audio(folder / "6-channel", voice, rate, "wav_16", channels=6)
    files["mono.mp3"] = write_audio(folder / "mono", voice, rate, "mp3", channels=1)
    files["stereo.mp3"] = write_audio(folder / "stereo", voice, rate, "mp3", channels=2)
    # around the limited server's 1 MB upload limit: 16-bit mono WAVs of about 0.9 MB and 2 MB
    for name, size in (("under-1mb.wav", 900_000), ("2mb.wav", 2 * 1024 * 1024)):
        frames = (size - 44) // 2
        files[name] = folder / name
        sf.write(files[name], np.resize(voice, frames), rate, subtype="PCM_16")
    return files


# -- Calling the server and judging what comes back ----------------------------------------------------------------


def _count(key: str) -> None:
    with _TALLY_LOCK:
        TALLY[key] += 1


def attempt(client: Client, api_name: str = "/generate", **kwargs: Any) -> tuple[str, Any]:
    """One request: ("track", results), ("error", AppError message) or ("client", message of a client refusal)."""
    _count("cases")
    try:
        if api_name == "/generate_stream":
            results = client.submit(api_name=api_name, **kwargs).result()[1:]
        else:
            results = client.predict(api_name=api_name, **kwargs)
    except AppError as e:
        message = str(e)
        _count("unclear_errors" if unclear(message) else "clear_errors")
        return "error", message
    except ValueError as e:  # gradio_client refuses some values before sending (NaN, infinity, a file too big)
        _count("client_refusals")
        return "client", str(e)
    _count("tracks")
    return "track", results


def unclear(message: str) -> str | None:
    """Why a refusal's message is not clear to the person who sent the request, or ``None`` when it is."""
    if GENERIC_GRADIO in message:
        return "Gradio's generic error"
    if GENERIC_RUNNER in message:
        return "an internal error, not the parameter"
    if "Traceback" in message:
        return "a traceback"
    if len(message.strip()) < 15:
        return "too short to explain anything"
    return None


def request(**kwargs: Any) -> dict[str, Any]:
    """A quick, valid request (1 s, fixed seed) with ``kwargs`` changed."""
    return {"prompt": "x", "duration": 1, "seed": 1, **kwargs}


@dataclass
class Case:
    """One request and what must come back: a track (optionally checked) or a clear error with these words."""

    label: str
    kwargs: dict[str, Any]
    words: tuple[str, ...] = ()  # an error must contain each (case-insensitive); empty: a track must come back
    check: Callable[[tuple], str | None] | None = None  # for a track: a problem with it, or None
    seconds: float = 1.0  # the track's expected length
    api_name: str = "/generate"


def judge(client: Client, case: Case) -> str | None:
    """Run one case; return what went wrong, or ``None``."""
    kind, value = attempt(client, case.api_name, **case.kwargs)
    shown = _short(value)
    if case.words:
        if kind != "error":
            return f"{case.label}: expected a clear error naming {list(case.words)}, got {kind}: {shown}"
        if why := unclear(value):
            return f"{case.label}: the message is {why}: {shown}"
        missing = [word for word in case.words if word.lower() not in value.lower()]
        return f"{case.label}: the message does not name {missing}: {shown}" if missing else None
    if kind != "track":
        return f"{case.label}: expected a track, got {kind}: {shown}"
    audio = value[0]
    seconds = sf.info(audio).duration if audio and Path(audio).is_file() else None
    if seconds is None or abs(seconds - case.seconds) > 0.01:
        return f"{case.label}: the track lasts {seconds} s, expected {case.seconds:g} s"
    return case.check(value) if case.check else None


def run_cases(client: Client, cases: list[Case]) -> list[str]:
    """Run ``cases`` four at a time, a client per worker, against ``client``'s server; return every problem found.

    One ``Client`` shared by threads is not safe: when one request's event stream closes, gradio_client 2.7 can
    end another thread's request with a ``CancelledError`` that the server never sent (seen in CI).
    """
    local = threading.local()

    def judge_on_own_client(case: Case) -> str | None:
        if not hasattr(local, "client"):
            local.client = Client(client.src, verbose=False)
        return judge(local.client, case)

    with ThreadPoolExecutor(max_workers=CASE_WORKERS) as pool:
        return [problem for problem in pool.map(judge_on_own_client, cases) if problem]


def assert_no_problems(problems: list[str], live_server: LiveServer) -> None:
    assert live_server.alive(), "the server died"
    assert not problems, f"{len(problems)} case(s) went wrong:\n" + "\n".join(problems)


def _short(value: Any, limit: int = 300) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _label(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}... ({len(text)} chars)"


# -- Prompts -------------------------------------------------------------------------------------------------------

ODD_BUT_VALID_PROMPTS = [
    "\x00\x01 caf\u00e9 \ufffd\ufffd 🎵",  # control characters, replacement characters, an emoji
    "cafÃ© Ã¼ber â€œniceâ€\x9d",  # UTF-8 read as Windows-1252 (mojibake)
    "\u202eevil\u200d\u200b piano",  # a right-to-left override and zero-width characters
    "🎵🎶🎸",  # nothing but emoji
    "夜の雨、静かなピアノ",  # Japanese
    "موسيقى هادئة",  # Arabic
    "e\u0301\u0301\u0301 zalgo\u0336\u0336",  # stacked combining marks
]


def _prompt_kept(expected: str) -> Callable[[tuple], str | None]:
    def check(results: tuple) -> str | None:
        audio, _, recipe, *_ = results
        if recipe["settings"]["prompt"] != expected:
            return f"the recipe's prompt is {recipe['settings']['prompt']!r}, expected {expected!r}"
        if not SAFE_WAV_NAME.fullmatch(Path(audio).name):
            return f"unsafe file name {Path(audio).name!r}"
        return None

    return check


def test_empty_whitespace_oversized_and_odd_prompts(client, live_server):
    whitespace = " \t\n\u3000\u00a0\u2003 "
    cases = [
        Case("empty prompt", request(prompt=""), ("prompt is empty",)),
        Case("whitespace-only prompt", request(prompt=whitespace), ("prompt is empty",)),
        Case("no prompt (null)", request(prompt=None), ("prompt is empty",)),
        Case("10,000-character prompt", request(prompt="rainy piano " * 833 + "slow"), ("prompt", "10000", "2000")),
        Case("2,001-character prompt", request(prompt="x" * 2001), ("prompt", "2001", "2000")),
        Case("prompt as a list", request(prompt=["rainy", "piano"]), ("prompt",)),
        Case("prompt as a dict", request(prompt={"mood": "rainy"}), ("prompt",)),
    ]
    cases += [
        Case(f"odd but valid prompt {_label(p)}", request(prompt=p), check=_prompt_kept(" ".join(p.split())))
        for p in ODD_BUT_VALID_PROMPTS
    ]
    assert_no_problems(run_cases(client, cases), live_server)


def test_a_prompt_at_the_length_limit_generates_and_is_cut_to_what_the_encoder_reads(client):
    prompt = " ".join(f"word{i}" for i in range(400))[:2000]
    assert len(prompt) == 2000
    kind, value = attempt(client, **request(prompt=prompt))
    assert kind == "track", _short(value)
    _, _, recipe, summary, *_ = value
    assert recipe["settings"]["prompt"] == prompt, "the recipe keeps the prompt as asked"
    assert "cut" in summary, f"no note that the prompt was cut: {summary!r}"


# -- Numbers: at, just past and far past their bounds, and of the wrong type --------------------------------------


def _used(name: str, value: Any) -> Callable[[tuple], str | None]:
    """A check that the recipe used ``value`` for parameter ``name``."""

    def check(results: tuple) -> str | None:
        recipe = results[2]
        if name == "seed":
            seed = recipe["settings"]["seed"]
            random = value in (-1, "")
            ok = 0 <= seed <= 2**31 - 1 if random else seed == value
            return None if ok else f"seed {value!r} became {seed}"
        if name == "variations":
            seeds = [take["seed"] for take in recipe["takes"]]
            return None if len(seeds) == value else f"variations={value!r} gave the takes {seeds}"
        where, key = {
            "loudness": ("export", "loudness_lufs"),
            "sample_rate": ("export", "sample_rate"),
            "guidance": ("settings", "guidance_scale"),
            "bpm": ("tempo", "bpm"),
        }.get(name, ("settings", name))
        wanted = None if (name == "loudness" and value == 0) else value
        got = recipe[where][key]
        return None if got == wanted else f"{name}={value!r} became {got!r}"

    return check


AT_BOUNDS = [
    ("duration", 1),
    ("seed", 0),
    ("seed", 2**31 - 1),
    ("seed", -1),
    ("temperature", 5),
    ("temperature", 1e-6),
    ("top_k", 2048),
    ("top_p", 0),
    ("top_p", 1),
    ("guidance", 1),
    ("guidance", 20),
    ("loudness", -40),
    ("loudness", -5),
    ("loudness", 0),
    ("sample_rate", 44_100),
    ("sample_rate", 48_000),
    ("variations", 4),
    ("bpm", 40),
    ("bpm", 240),
]

PAST_BOUNDS = {
    "duration": [0.999, 0, -5, 300.001, 301, 1e9, 1e308],
    "seed": [-2, 2**31, 1.5, 1e18, -1e300],
    "temperature": [0, -0.001, 5.001, 1e300, -1e300],
    "top_k": [-1, 2049, 2.5, 1e12],
    "top_p": [-0.0001, 1.0001, 1e10],
    "guidance": [0.999, 20.001, -1e6, 1e300],
    "loudness": [-40.001, -4.999, 10, -1e300],
    "sample_rate": [44_099, 44_101, 8_000, 96_000, -48_000, 44_100.5],
    "variations": [0, -1, 5, 9, 2.5],
    "bpm": [39.99, 240.01, 1000, -120, 1e300],
    "bars": [3, 5, 32, -2, 1.5],
}

WRONG_TYPES = ["ten", [1], {"value": 1}, True, False]


def test_numbers_at_their_bounds_generate(client, live_server):
    cases = [Case(f"{name}={value!r}", request(**{name: value}), check=_used(name, value)) for name, value in AT_BOUNDS]
    cases.append(
        Case("top_k=0 with top_p=0.9", request(top_k=0, top_p=0.9), check=_used("top_k", 0)),
    )
    assert_no_problems(run_cases(client, cases), live_server)


def test_numbers_past_their_bounds_are_refused_naming_the_parameter(client, live_server):
    cases = [
        Case(f"{name}={value!r}", request(**{name: value}), (name,))
        for name, values in PAST_BOUNDS.items()
        for value in values
    ]
    cases += [
        Case(f"{name}=<400-digit integer>", request(**{name: 10**400}), (name,)) for name in NUMERIC if name != "bpm"
    ]
    cases.append(Case("top_k=0 and top_p=0", request(top_k=0, top_p=0), ("nothing to sample",)))
    assert_no_problems(run_cases(client, cases), live_server)


def test_a_400_digit_bpm_is_refused_naming_it(client, live_server):
    assert_no_problems(
        run_cases(client, [Case("bpm=<400-digit integer>", request(bpm=10**400), ("bpm",))]), live_server
    )


def test_values_of_the_wrong_type_are_refused_naming_the_parameter(client, live_server):
    cases = [Case(f"{name}={value!r}", request(**{name: value}), (name,)) for name in NUMERIC for value in WRONG_TYPES]
    cases += [
        Case(f"{name}={value!r}", request(**{name: value}), (name,))
        for name in ("stems", "loop")
        for value in ("yes", 1, [True], {"on": True})
    ]
    cases += [
        Case(f"negative_prompt={value!r}", request(negative_prompt=value), ("negative_prompt",))
        for value in (5, ["vocals"], {"not": "vocals"})
    ]
    cases += [
        Case(f"formats={value!r}", request(formats=value), ("format",)) for value in (5, "ogg", "wav,aiff", {"a": 1})
    ]
    cases += [Case(f"preset={value!r}", request(preset=value), ("preset",)) for value in (5, ["jazz-trio"], {"id": 1})]
    # a melody must be a file sent with handle_file; anything else is refused by name
    cases += [
        Case(f"melody={value!r}", request(melody=value), ("melody",))
        for value in ("/etc/passwd", "hum.wav", 5, [1, 2], {"path": 3})
    ]
    assert_no_problems(run_cases(client, cases), live_server)


def test_formats_as_a_list_and_an_empty_melody_are_understood(client, live_server):
    def has_mp3(results: tuple) -> str | None:
        names = [Path(p).name for p in results[1]]
        return None if any(n.endswith(".mp3") for n in names) else f"no MP3 among {names}"

    cases = [
        Case("formats=['wav', 'mp3']", request(formats=["wav", "mp3"]), check=has_mp3),
        Case("formats='wav, MP3'", request(formats="wav, MP3"), check=has_mp3),
        Case("melody='' (no melody)", request(melody="")),
    ]
    assert_no_problems(run_cases(client, cases), live_server)


def test_values_that_json_cannot_carry_are_refused_by_the_client(client):
    for value in (math.nan, math.inf, -math.inf):
        kind, message = attempt(client, **request(duration=value))
        assert kind == "client" and "JSON" in message, (value, kind, _short(message))


def test_the_servers_own_duration_limit_holds_at_its_bound(limited_client, limited_server):
    cases = [
        Case(f"duration={LIMITED_MAX_DURATION} (the limit)", request(duration=LIMITED_MAX_DURATION), seconds=2),
        Case("duration=2.01", request(duration=2.01), ("duration", "at most 2")),
        Case("duration=300 (the default limit)", request(duration=300), ("duration", "at most 2")),
    ]
    assert_no_problems(run_cases(limited_client, cases), limited_server)


def test_bad_input_through_generate_stream_gets_the_same_clear_messages(client, live_server):
    cases = [
        Case("stream: duration='ten'", request(duration="ten"), ("duration",), api_name="/generate_stream"),
        Case("stream: top_p=2", request(top_p=2), ("top_p",), api_name="/generate_stream"),
        Case("stream: empty prompt", request(prompt=" "), ("prompt is empty",), api_name="/generate_stream"),
        Case("stream: preset '../x'", request(preset="../x"), ("preset",), api_name="/generate_stream"),
    ]
    assert_no_problems(run_cases(client, cases), live_server)


# -- Presets -------------------------------------------------------------------------------------------------------


def test_unknown_and_path_like_presets_are_refused(client, live_server):
    cases = [Case("unknown preset", request(preset="nope"), ("unknown preset", "nope"))]
    cases += [
        Case(f"preset {value!r}", request(preset=value), ("preset id",))
        for value in (
            "../secrets",
            "../../etc/passwd",
            "..\\..\\windows\\win.ini",
            "jazz-trio/../../x",
            "/etc/passwd",
            "%2e%2e%2fsecrets",
            "jazz-trio\x00",
            "x" * 65,
        )
    ]
    assert_no_problems(run_cases(client, cases), live_server)


# -- Melody files --------------------------------------------------------------------------------------------------

BAD_FILES = {
    "empty.wav": ("empty",),
    "zero-frames.wav": ("zero-frames.wav", "no usable audio"),
    "cut-header.wav": ("cut-header.wav", "not a recognised audio file"),
    "damaged-format.wav": ("damaged-format.wav", "not a recognised audio file"),
    "random-bytes.mp3": ("random-bytes.mp3", "not a recognised audio file"),
    "notes.wav": ("notes.wav", "audio"),
    "picture.flac": ("picture.flac", "audio"),
    "program.ogg": ("program.ogg", "audio"),
    "silent.wav": ("silent",),
    "nan.wav": ("nan",),
    "inf.wav": ("infinite",),
}
UNUSUAL_BUT_VALID_FILES = ("8khz-8bit.wav", "96khz-float.wav", "6-channel.wav", "mono.mp3", "stereo.mp3")


def _melody_used(path: Path) -> Callable[[tuple], str | None]:
    def check(results: tuple) -> str | None:
        _, _, recipe, summary, melody_picture, *_ = results
        melody = recipe.get("melody") or {}
        if melody.get("file") != path.name:
            return f"the recipe's melody is {melody!r}, expected the file {path.name!r}"
        if abs(melody["seconds_used"] - HUM_SECONDS) > 0.4:
            return f"{melody['seconds_used']} s of the melody used, expected about {HUM_SECONDS} s"
        if melody_picture is None or "Melody heard" not in summary:
            return "no chroma picture or no 'Melody heard' in the summary"
        return None

    return check


def test_bad_melody_files_are_refused_with_a_clear_message(client, live_server, melody_files):
    cases = [
        Case(name, request(melody=handle_file(str(melody_files[name]))), words) for name, words in BAD_FILES.items()
    ]
    assert_no_problems(run_cases(client, cases), live_server)


def test_unusual_but_valid_melody_files_are_used(client, live_server, melody_files):
    cases = [
        Case(name, request(melody=handle_file(str(melody_files[name]))), check=_melody_used(melody_files[name]))
        for name in UNUSUAL_BUT_VALID_FILES
    ]
    assert_no_problems(run_cases(client, cases), live_server)


def test_a_file_over_the_upload_limit_is_refused_and_one_under_it_is_used(limited_client, limited_server, melody_files):
    big, small = melody_files["2mb.wav"], melody_files["under-1mb.wav"]
    # gradio_client knows the limit and refuses before uploading
    kind, message = attempt(limited_client, **request(melody=handle_file(str(big))))
    assert kind == "client", f"a 2 MB file was not refused by the client: {kind}: {_short(message)}"
    assert "maximum file size" in message and "1048576" in message, message
    # a client that ignores the limit is refused by the server
    _count("cases")
    with big.open("rb") as f:
        response = httpx.post(limited_client.upload_url, files=[("files", (big.name, f))], timeout=60)
    assert response.status_code == 413, (response.status_code, response.text[:300])
    assert "maximum allowed size" in response.text and "1048576" in response.text, response.text[:300]
    _count("clear_errors")
    # just under the limit is fine
    problem = judge(
        limited_client,
        Case("a 0.9 MB melody", request(melody=handle_file(str(small))), check=_melody_file_named(small.name)),
    )
    assert problem is None, problem
    assert limited_server.alive()


def _melody_file_named(name: str) -> Callable[[tuple], str | None]:
    def check(results: tuple) -> str | None:
        melody = results[2].get("melody") or {}
        return None if melody.get("file") == name else f"the recipe's melody is {melody!r}, expected {name!r}"

    return check


# -- Takes, tempo and loops ----------------------------------------------------------------------------------------


def test_bad_takes_tempo_and_loop_values_get_clear_messages(client, live_server):
    takes = "variations must be a whole number of takes from 1 to 4"
    cases = [
        Case("bpm=0 with loop", request(bpm=0, loop=True), ("A loop needs a tempo: give bpm (40 to 240)",)),
        Case("bpm=1000", request(bpm=1000), ("bpm must be from 40 to 240 beats per minute, got 1000",)),
        Case("bpm='fast'", request(bpm="fast"), ("bpm must be a number of beats per minute", "got 'fast'")),
        Case("bars=3", request(loop=True, bpm=240, bars=3), ("bars must be one of 1, 2, 4, 8, 16, got 3",)),
        Case("bars without loop", request(bpm=240, bars=2), ("bars sets a loop's length: set loop to true",)),
        Case("loop with no tempo", request(loop=True), ("A loop needs a tempo", "or pick a preset")),
        Case("variations=0", request(variations=0), (f"{takes}, got 0",)),
        Case("variations=9", request(variations=9), (f"{takes}, got 9",)),
        Case("variations='two'", request(variations="two"), (f"{takes}, got 'two'",)),
    ]
    assert_no_problems(run_cases(client, cases), live_server)


def test_a_loop_that_needs_more_music_than_the_server_makes_is_refused(limited_client, limited_server):
    loop = request(loop=True, bpm=120, duration=2)
    cases = [Case("a 1-bar loop at 120 BPM", loop, ("1-bar loop at 120 BPM needs", "over this server's 2 s"))]
    assert_no_problems(run_cases(limited_client, cases), limited_server)


# -- Extend --------------------------------------------------------------------------------------------------------

UNREADABLE_TO_EXTEND = ("empty.wav", "cut-header.wav", "damaged-format.wav", "random-bytes.mp3", "notes.wav", "nan.wav")


def extend(**kwargs: Any) -> dict[str, Any]:
    """A quick /extend request (1 s more, the file's own recipe) with ``kwargs`` changed."""
    return {"seconds": 1, "prompt": "", "seed": 1, **kwargs}


def on_extend(cases: list[Case]) -> list[Case]:
    return [replace(case, api_name="/extend") for case in cases]


@pytest.fixture(scope="module")
def a_result(client) -> str:
    """A 1 s track as a client downloads it: what the extends continue."""
    return client.predict(api_name="/generate", **request(prompt="to be continued"))[0]


def test_bad_extends_get_clear_messages(client, live_server, melody_files, a_result):
    track = handle_file(a_result)
    seconds = "seconds must be from 1 to 120 (how much to add)"
    cases = [
        Case("no audio", extend(audio=None), ("audio is required", "handle_file")),
        Case("audio=''", extend(audio=""), ("audio is required",)),
        Case("audio as a path", extend(audio="/etc/passwd"), ("audio must be the track to extend", "handle_file")),
        Case("audio=5", extend(audio=5), ("audio must be the track to extend",)),
        Case("seconds=0", extend(audio=track, seconds=0), (f"{seconds}, got 0",)),
        Case("seconds=121", extend(audio=track, seconds=121), (f"{seconds}, got 121",)),
        Case("seconds='ten'", extend(audio=track, seconds="ten"), ("seconds must be a number of seconds", "'ten'")),
        Case("bpm=1000", extend(audio=track, bpm=1000), ("bpm must be from 40 to 240",)),
        Case("unknown preset", extend(audio=track, preset="nope"), ("Unknown preset",)),
        Case("prompt as a list", extend(audio=track, prompt=["more"]), ("prompt",)),
        Case(
            "an upload with no recipe or prompt",
            extend(audio=handle_file(str(melody_files["mono.mp3"]))),
            ("carries no Moodtape recipe",),
        ),
    ]
    cases += [
        Case(f"extend {name}", extend(audio=handle_file(str(melody_files[name])), prompt="more"), BAD_FILES[name])
        for name in UNREADABLE_TO_EXTEND
    ]
    cases.append(Case("a valid extend after them", extend(audio=track), seconds=2))
    assert_no_problems(run_cases(client, on_extend(cases)), live_server)


def test_an_extend_past_the_servers_longest_track_is_refused_and_one_up_to_it_is_made(limited_client, limited_server):
    track = handle_file(
        limited_client.predict(api_name="/generate", **request())[0]
    )  # 1 s, on a server that makes at most 2 s
    cases = [
        Case("1 s + 1 s (the limit)", extend(audio=track), seconds=2),
        Case("1 s + 1.5 s", extend(audio=track, seconds=1.5), ("adding 1.5 s would make 2.5 s", "Add at most 1.0 s")),
    ]
    assert_no_problems(run_cases(limited_client, on_extend(cases)), limited_server)


# -- Fuzzing -------------------------------------------------------------------------------------------------------

NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1, 2, 0.5, 2**31, 1e308, -1e308, 2048, 20, -14, 44_100, 48_000]),
)
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=20),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(-5, 5), max_size=2),
)
ANYTHING = st.one_of(NUMBERS, JUNK)


VALID = {  # values each parameter may take, so that a fuzzed request is often valid apart from its changes
    "preset": ["none", ""],
    "seed": [0, 7, -1, "", 2**31 - 1],
    "temperature": [0.5, 1, 5],
    "top_k": [50, 2048],
    "top_p": [0, 0.9, 1],
    "guidance": [1, 3, 20],
    "stems": [False, True],
    "formats": ["wav", "mp3", "flac,mp3", "wav;flac", ""],
    "sample_rate": [44_100, 48_000, 0],
    "loudness": [-14, 0, -40, "off"],
    "negative_prompt": ["", "vocals, distortion"],
    "variations": [1, 2],
    "bpm": [0, 120, 240],
    "loop": [False, True],
    "bars": [0, 1],
}
FUZZED = ("prompt", "duration", *VALID)  # the parameters a fuzzed request changes


def _slow_but_valid_duration(value: Any) -> bool:
    """Real numbers above 2 s are valid and slow to generate; the bounds tests cover them. None means 10 s."""
    real = isinstance(value, (int, float)) and not isinstance(value, bool)
    return value is None or (real and math.isfinite(value) and 2 < value <= 300)


def _changed(request_and_changes: tuple[dict, dict]) -> dict:
    base, changes = request_and_changes
    return {**base, **changes}


FUZZED_REQUEST = (
    st.tuples(
        st.fixed_dictionaries(  # a valid, quick request...
            {
                "prompt": st.one_of(st.sampled_from(["rainy night", ODD_BUT_VALID_PROMPTS[0]]), st.text(max_size=60)),
                "duration": st.sampled_from([1, 1.5, 2]),
            },
            optional={name: st.sampled_from(values) for name, values in VALID.items()},
        ),
        st.dictionaries(st.sampled_from(FUZZED), ANYTHING, max_size=3),  # ...with up to three values changed
    )
    .map(_changed)
    .filter(lambda kwargs: not _slow_but_valid_duration(kwargs["duration"]))
)


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: a failure is reported as found, within the time budget
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(kwargs=FUZZED_REQUEST)
def test_fuzzed_requests_end_in_a_track_or_a_clear_error(client, kwargs):
    kind, value = attempt(client, **kwargs)
    _count(f"fuzz_{kind}")
    if kind == "client":
        assert "JSON" in value, f"{kwargs!r}: refused by the client for an unexpected reason: {value}"
    elif kind == "error":
        assert not unclear(value), f"{kwargs!r}: the message is {unclear(value)}: {_short(value)}"
        assert any(word in value.lower() for word in PARAMETER_WORDS), f"{kwargs!r}: names nothing: {value}"
    else:
        assert Path(value[0]).is_file() and sf.info(value[0]).frames > 0, f"{kwargs!r}: no audio in {value!r}"


# -- And after all of it -------------------------------------------------------------------------------------------


def test_the_server_still_generates_after_all_of_it(client, live_server, limited_client, limited_server):
    for c, server in ((client, live_server), (limited_client, limited_server)):
        problem = judge(c, Case("a plain request after the bad ones", request(prompt="still here", seed=7)))
        assert problem is None, problem
        assert server.alive()
