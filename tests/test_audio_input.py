"""Users' recordings in every format we promise decode to clean mono audio; bad inputs get clear refusals."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
import soundfile

from generation.audio import uploads as audio_input
from generation.audio.uploads import TARGET_PEAK_DBFS, TRIM_MARGIN_SECONDS, load_audio
from generation.errors import InvalidInputError
from tests.audio_factory import FORMATS, LOSSY, hum, tone, with_silence, write_audio

RATE = 44_100  # Hz of the generated hums
TARGET = 32_000  # Hz asked for, MusicGen's rate
HUM_SECONDS = 2.4  # three notes of 0.8 s
LEAD, TAIL = 0.6, 0.6  # seconds of silence written around the hum
PEAK = 10 ** (TARGET_PEAK_DBFS / 20)

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")


def _needs(fmt: str):
    return [needs_ffmpeg] if FORMATS[fmt][1] is None else []


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="module")
def made(folder):
    """Write a hum once per (format, rate, channels) and hand back its path."""
    cache = {}

    def make(fmt: str, rate: int = RATE, channels: int = 1):
        key = (fmt, rate, channels)
        if key not in cache:
            samples = with_silence(hum(rate=rate), rate, LEAD, TAIL)
            cache[key] = write_audio(folder / f"hum_{fmt}_{rate}_{channels}", samples, rate, fmt, channels)
        return cache[key]

    return make


def _refusal(path, **kwargs) -> str:
    with pytest.raises(InvalidInputError) as excinfo:
        load_audio(path, TARGET, max_seconds=kwargs.pop("max_seconds", 30.0), **kwargs)
    return str(excinfo.value)


# -- Every format ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [pytest.param(f, marks=_needs(f)) for f in FORMATS])
def test_every_format_decodes_to_trimmed_normalised_mono_at_the_target_rate(made, fmt):
    path = made(fmt)
    audio = load_audio(path, TARGET, max_seconds=30.0)

    tolerance = 0.15 if fmt in LOSSY else 0.05  # codec padding and pre-echo
    assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
    assert audio.sample_rate == TARGET
    assert audio.used_seconds == pytest.approx(len(audio.samples) / TARGET)
    assert audio.used_seconds == pytest.approx(HUM_SECONDS + 2 * TRIM_MARGIN_SECONDS, abs=tolerance)
    assert audio.source_seconds == pytest.approx(LEAD + HUM_SECONDS + TAIL, abs=tolerance)
    assert np.max(np.abs(audio.samples)) == pytest.approx(PEAK, abs=1e-4)
    assert audio.source_name == path.name
    assert not audio.truncated
    assert audio.digest == hashlib.sha256(audio.samples.astype("<f4").tobytes()).hexdigest()


@pytest.mark.parametrize(
    ("fmt", "channels"), [("flac", 2), ("mp3", 2), pytest.param("webm", 2, marks=needs_ffmpeg), ("wav_float", 6)]
)
def test_multichannel_files_are_mixed_down_to_mono(made, fmt, channels):
    audio = load_audio(made(fmt, channels=channels), TARGET, max_seconds=30.0)
    assert audio.source_channels == channels
    assert audio.samples.ndim == 1
    assert audio.used_seconds == pytest.approx(HUM_SECONDS + 2 * TRIM_MARGIN_SECONDS, abs=0.15)


@pytest.mark.parametrize(
    ("fmt", "rate", "channels"),
    [
        ("wav_u8", 8_000, 1),
        ("wav_float", 96_000, 1),
        ("wav_24", 192_000, 2),
        ("wav_16", 44_100, 6),
        ("mp3", 44_100, 1),
        ("mp3", 22_050, 2),
        ("mp3", 8_000, 1),
        ("ogg", 16_000, 1),
    ],
)
def test_unusual_but_valid_files_are_accepted(made, fmt, rate, channels):
    audio = load_audio(made(fmt, rate, channels), TARGET, max_seconds=30.0)
    assert (audio.source_rate, audio.source_channels) == (rate, channels)
    assert audio.sample_rate == TARGET and audio.samples.ndim == 1
    assert audio.used_seconds == pytest.approx(HUM_SECONDS + 2 * TRIM_MARGIN_SECONDS, abs=0.15)


@pytest.mark.parametrize("target", [16_000, 22_050, 32_000, 48_000])
def test_any_target_rate_gives_the_same_duration(made, target):
    audio = load_audio(made("wav_16"), target, max_seconds=30.0)
    assert audio.sample_rate == target
    assert len(audio.samples) / target == pytest.approx(HUM_SECONDS + 2 * TRIM_MARGIN_SECONDS, abs=0.05)


# -- Cleaning ------------------------------------------------------------------------------------------------------


def test_leading_and_trailing_silence_is_trimmed_with_a_short_margin(folder):
    samples = with_silence(hum(rate=RATE), RATE, 2.0, 1.5)
    path = write_audio(folder / "long_silences", samples, RATE, "wav_16")

    audio = load_audio(path, TARGET, max_seconds=30.0)

    assert audio.used_seconds == pytest.approx(HUM_SECONDS + 2 * TRIM_MARGIN_SECONDS, abs=0.05)
    assert audio.source_seconds == pytest.approx(2.0 + HUM_SECONDS + 1.5, abs=0.01)
    assert any("Trimmed 1.9 s of silence from the start and 1.4 s from the end" in note for note in audio.notes)
    margin = int(0.05 * TARGET)
    assert np.max(np.abs(audio.samples[:margin])) < 0.01  # the kept margin is quiet: the hum starts after it


def test_quiet_recordings_are_raised_to_the_target_peak_with_a_note(folder):
    path = write_audio(folder / "quiet", hum(rate=RATE, amplitude=0.01), RATE, "wav_24")
    audio = load_audio(path, TARGET, max_seconds=30.0)
    assert np.max(np.abs(audio.samples)) == pytest.approx(PEAK, abs=1e-4)
    assert any("very quiet" in note for note in audio.notes)


def test_loud_float_recordings_are_lowered_to_the_target_peak(folder):
    path = write_audio(folder / "loud", hum(rate=RATE, amplitude=4.0), RATE, "wav_float")
    audio = load_audio(path, TARGET, max_seconds=30.0)
    assert np.max(np.abs(audio.samples)) == pytest.approx(PEAK, abs=1e-4)
    assert audio.notes == ()


@pytest.mark.parametrize("fmt", ["wav_16", pytest.param("webm", marks=needs_ffmpeg)])
def test_long_file_is_truncated_to_max_seconds_with_a_note(folder, fmt):
    rate = 16_000
    samples = hum(("A3", "C#4", "E4", "A4") * 10, note_seconds=1.0, rate=rate)  # 40 s
    path = write_audio(folder / f"forty_seconds_{fmt}", samples, rate, fmt)

    audio = load_audio(path, TARGET, max_seconds=30.0)

    assert audio.truncated
    assert audio.used_seconds == pytest.approx(30.0, abs=1e-3)
    assert audio.source_seconds == pytest.approx(40.0, abs=0.1)
    assert "Used the first 30 s of a 40 s file." in audio.notes


def test_resampling_is_band_limited_not_naive_interpolation(folder):
    # A 20 kHz whistle at 48 kHz has no place at 16 kHz: a naive resampler folds it down to 4 kHz.
    rate = 48_000
    samples = tone(440.0, 2.0, rate, 0.4) + tone(20_000.0, 2.0, rate, 0.4)
    path = write_audio(folder / "whistle", samples, rate, "wav_float")

    audio = load_audio(path, 16_000, max_seconds=30.0)

    spectrum = np.abs(np.fft.rfft(audio.samples * np.hanning(len(audio.samples))))
    hz = np.fft.rfftfreq(len(audio.samples), 1 / 16_000)
    tone_level = spectrum[np.abs(hz - 440) < 5].max()
    alias_level = spectrum[np.abs(hz - 4_000) < 50].max()
    assert hz[np.argmax(spectrum)] == pytest.approx(440.0, abs=1.0)
    assert 20 * np.log10(alias_level / tone_level) < -60


# -- Refusals ------------------------------------------------------------------------------------------------------


def test_missing_file_is_refused_with_a_clear_message(folder):
    message = _refusal(folder / "nowhere.wav")
    assert "nowhere.wav" in message and "not found" in message


def test_folder_is_refused_with_a_clear_message(folder):
    assert "folder" in _refusal(folder)


def test_empty_file_is_refused_with_a_clear_message(folder):
    path = folder / "empty.wav"
    path.write_bytes(b"")
    message = _refusal(path)
    assert "empty" in message and "0 bytes" in message


def test_text_file_renamed_wav_is_refused_as_not_audio(folder):
    path = folder / "notes.wav"
    path.write_text("shopping list: eggs, milk, a better microphone\n" * 20)
    message = _refusal(path)
    assert "notes.wav" in message and "not a recognised audio file" in message


@needs_ffmpeg
def test_image_renamed_wav_is_refused_as_having_no_audio(folder):
    import matplotlib.image

    png = folder / "picture.png"
    matplotlib.image.imsave(png, np.random.default_rng(0).random((16, 16)))
    path = png.rename(folder / "picture.wav")
    message = _refusal(path)
    assert "picture.wav" in message and "no audio" in message


@pytest.mark.parametrize("keep_bytes", [60, 300])
def test_cut_off_file_is_refused_as_damaged(folder, keep_bytes):
    whole = write_audio(folder / f"whole_{keep_bytes}", hum(rate=RATE), RATE, "flac")
    path = folder / f"cut_{keep_bytes}.flac"
    path.write_bytes(whole.read_bytes()[:keep_bytes])
    message = _refusal(path)
    assert "cut_" in message and "damaged" in message


def test_random_bytes_are_refused_as_damaged(folder):
    path = folder / "noise.mp3"
    path.write_bytes(np.random.default_rng(1).bytes(4_000))
    assert "damaged" in _refusal(path)


def test_decoder_errors_are_chained_as_the_cause(folder):
    path = folder / "chained.wav"
    path.write_text("not audio")
    with pytest.raises(InvalidInputError) as excinfo:
        load_audio(path, TARGET, max_seconds=30.0)
    assert excinfo.value.__cause__ is not None


def test_silent_file_is_refused_with_a_clear_message(folder):
    path = write_audio(folder / "silence", np.zeros(3 * RATE, np.float32), RATE, "wav_16")
    message = _refusal(path)
    assert "silent" in message and "microphone" in message


def test_short_sound_is_refused_and_the_message_says_how_long_it_was(folder):
    samples = with_silence(hum(("A4",), note_seconds=0.4, rate=RATE), RATE, 1.5, 1.5)
    path = write_audio(folder / "blip", samples, RATE, "wav_16")
    message = _refusal(path, min_seconds=1.0)
    assert "0.6 s of sound after trimming silence" in message
    assert "at least 1 s" in message


@pytest.mark.parametrize(("bad", "word"), [(np.nan, "NaN"), (np.inf, "infinite")])
def test_nan_or_infinite_samples_are_refused(folder, bad, word):
    samples = hum(rate=RATE)
    samples[1_000] = bad
    path = folder / f"broken_{word}.wav"
    soundfile.write(path, samples, RATE, subtype="FLOAT")
    message = _refusal(path)
    assert word in message and "damaged" in message


def test_unsupported_sample_rate_is_refused(folder):
    path = folder / "slow.wav"
    soundfile.write(path, hum(rate=2_000), 2_000, subtype="PCM_16")
    message = _refusal(path)
    assert "2000 Hz" in message and "sample rate" in message


@needs_ffmpeg
def test_browser_recording_without_ffmpeg_asks_for_ffmpeg(made, monkeypatch):
    path = made("webm")
    monkeypatch.setattr(audio_input.shutil, "which", lambda name: None)
    message = _refusal(path)
    assert "ffmpeg" in message and ".webm" in message


def test_wav_loads_without_ffmpeg(made, monkeypatch):
    monkeypatch.setattr(audio_input.shutil, "which", lambda name: None)
    assert load_audio(made("wav_16"), TARGET, max_seconds=30.0).sample_rate == TARGET


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"target_rate": 0, "max_seconds": 30.0}, "target_rate"),
        ({"target_rate": TARGET, "max_seconds": -1.0}, "max_seconds"),
        ({"target_rate": TARGET, "max_seconds": 2.0, "min_seconds": 5.0}, "min_seconds"),
    ],
)
def test_impossible_limits_are_refused(made, kwargs, word):
    with pytest.raises(InvalidInputError, match=word):
        load_audio(made("wav_16"), **kwargs)


def test_samples_cannot_be_changed_after_loading(made):
    audio = load_audio(made("wav_16"), TARGET, max_seconds=30.0)
    with pytest.raises(ValueError):
        audio.samples[0] = 1.0
