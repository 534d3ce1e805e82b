"""Melody inputs are heard as MusicGen-Melody was trained: drums and bass taken out with Demucs, once per upload.

The chroma logic runs on synthetic songs split by construction (``SplitByConstruction``, the one test double);
the plumbing, and the melody path's cheaper Demucs settings, run on the real ``StemSeparator`` with a tiny random
HTDemucs.
"""

from __future__ import annotations

import hashlib
import inspect
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from generation.audio.arrays import resample
from generation.audio.stems import EXPORT_SEPARATION, MELODY_SEPARATION, SeparationSettings, StemSeparator
from generation.audio.uploads import LoadedAudio, load_audio
from generation.config import ConfigError, ServerConfig
from generation.errors import GenerationCancelled, InvalidInputError
from generation.melody import picture_and_description
from generation.melody_stems import (
    CLEAN_HUM,
    NOT_ASKED,
    NOTHING_LEFT,
    SEPARATED,
    SEPARATING,
    TURNED_OFF,
    UNAVAILABLE,
    MelodySeparator,
    is_clean_hum,
)
from generation.model.chroma import ChromaExtractor
from scripts.hums import note_hz
from tests.audio_factory import hum
from tests.tiny_demucs import build_tiny_demucs

RATE = 32_000  # MusicGen-Melody's rate, which load_audio gives every melody
EXTRACTOR = ChromaExtractor()
BASS_LINE = ("A1", "F1", "C2", "G1")  # pitch classes A, F, C, G: one note a second
TUNE = ("E4", "B4", "D5", "E5", "B4", "D5", "E5", "D5")  # pitch classes E, B, D: four notes a second
BASS_CLASSES, TUNE_CLASSES = {9, 5, 0, 7}, {4, 11, 2}  # chroma indices, C first
HUMS = {  # (notes, seconds per note): a bass singer's low hum to a soprano's
    "low male": (("A2", "C3", "E3", "D3", "C3", "A2"), 0.6),
    "male": (("D3", "F3", "A3", "G3", "F3", "E3"), 0.6),
    "arpeggio": (("A3", "C#4", "E4", "A4", "C#5", "E5"), 0.6),
    "high": (("E5", "G5", "E5", "C5", "D5", "E5"), 0.5),
}


# -- Synthetic songs and the separator that splits them by construction ------------------------------------------


def bass_line(seconds: float) -> np.ndarray:
    """A sawtooth-like synth bass, one note of BASS_LINE a second, peak 1."""
    n = RATE
    t = np.arange(n) / RATE
    envelope = np.minimum(1.0, np.minimum(t / 0.01, (1.0 - t) / 0.05))
    notes = []
    for i in range(int(np.ceil(seconds))):
        hz = note_hz(BASS_LINE[i % len(BASS_LINE)])
        notes.append(envelope * sum(np.sin(2 * np.pi * k * hz * t) / k for k in range(1, 13)))
    line = np.concatenate(notes)[: round(seconds * RATE)]
    return line / np.abs(line).max()


def drum_pattern(seconds: float, seed: int = 0) -> np.ndarray:
    """Kick on 1 and 3, snare on 2 and 4, hi-hats on every eighth, at 120 BPM; peak 1."""
    rng = np.random.default_rng(seed)
    out = np.zeros(round(seconds * RATE))
    t = np.arange(round(0.25 * RATE)) / RATE
    kick = np.sin(2 * np.pi * np.cumsum(50 + 100 * np.exp(-t * 30)) / RATE) * np.exp(-t * 12)
    snare = (0.6 * rng.standard_normal(len(t)) + np.sin(2 * np.pi * 190 * t)) * np.exp(-t * 25)
    hat = np.diff(rng.standard_normal(len(t) + 1)) * np.exp(-t * 80) * 0.3
    for eighth in range(int(seconds * 4)):
        start = round(eighth * 0.25 * RATE)
        for hit in (hat, kick if eighth % 4 == 0 else None, snare if eighth % 4 == 2 else None):
            if hit is not None:
                end = min(len(out), start + len(hit))
                out[start:end] += hit[: end - start]
    return out / np.abs(out).max()


def synthetic_song(seconds: float = 6.0, melody: float = 0.15, bass: float = 0.6, drums: float = 0.6) -> dict:
    """The parts of a song, as htdemucs names its stems: a hummed tune (vocals) over a bass line and drums."""
    n = round(seconds * RATE)
    tune = hum(tuple(TUNE[i % len(TUNE)] for i in range(int(seconds * 4))), 0.25, RATE)
    parts = {
        "drums": drums * drum_pattern(seconds),
        "bass": bass * bass_line(seconds),
        "other": np.zeros(n),
        "vocals": melody * tune[:n] / np.abs(tune).max(),
    }
    return {name: part.astype(np.float32) for name, part in parts.items()}


def mix_of(parts: dict) -> np.ndarray:
    return np.sum(list(parts.values()), axis=0, dtype=np.float32)


def as_loaded(samples: np.ndarray, name: str = "song.wav") -> LoadedAudio:
    """What load_audio gives for a clean 32 kHz mono file holding ``samples``."""
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    samples.setflags(write=False)
    seconds = len(samples) / RATE
    digest = hashlib.sha256(samples.astype("<f4").tobytes()).hexdigest()
    return LoadedAudio(samples, RATE, name, seconds, seconds, False, (), digest, RATE, 1)


class SplitByConstruction:
    """A stem separator that knows how its mixes were made and gives back their parts: an ideal Demucs.

    The same contract as ``StemSeparator.separate``; used only where the chroma logic is tested.
    """

    model_id = "split-by-construction"

    def __init__(self, *songs: dict):
        self.songs, self.calls = songs, 0

    def separate(self, audio, sample_rate, *, on_progress=None, cancel=None, settings=None) -> dict[str, np.ndarray]:
        self.calls += 1
        assert audio.ndim == 2 and sample_rate == RATE
        for parts in self.songs:
            if np.array_equal(audio[0], mix_of(parts)):
                return {name: np.repeat(part[None], audio.shape[0], axis=0) for name, part in parts.items()}
        raise AssertionError("this mix was not made by the test")


class CountingSeparator:
    """The real StemSeparator, counting its calls and keeping what it returned and the settings it was given."""

    def __init__(self, real: StemSeparator):
        self.real, self.calls, self.settings = real, [], []

    @property
    def model_id(self) -> str:
        return self.real.model_id

    def separate(self, audio, sample_rate, **options) -> dict[str, np.ndarray]:
        stems = self.real.separate(audio, sample_rate, **options)
        self.calls.append((audio.shape, sample_rate, stems))
        self.settings.append(options.get("settings"))
        return stems


def melody_separator(separator, **options) -> MelodySeparator:
    return MelodySeparator(separator, config=options.pop("config", ServerConfig()), **options)


def pitch_classes(samples: np.ndarray) -> np.ndarray:
    """The pitch class MusicGen-Melody is given for each frame (its one-hot chroma's argmax)."""
    return EXTRACTOR(samples, RATE)[0].argmax(-1).numpy()


def share_in(classes: np.ndarray, wanted: set[int]) -> float:
    return float(np.isin(classes, list(wanted)).mean())


# -- What the model hears -----------------------------------------------------------------------------------------


def test_a_songs_chroma_follows_the_bass_on_the_full_mix_and_the_tune_once_drums_and_bass_are_out():
    parts = synthetic_song()
    loaded = as_loaded(mix_of(parts))

    prepared = melody_separator(SplitByConstruction(parts)).prepare(loaded)

    assert share_in(pitch_classes(loaded.samples), BASS_CLASSES) > 0.8
    assert prepared.separated and prepared.reason == SEPARATED and prepared.stems == ("other", "vocals")
    assert share_in(pitch_classes(prepared.samples), TUNE_CLASSES) > 0.95
    # the picture and the words describe what the model hears
    _, heard = picture_and_description(prepared.samples, prepared.sample_rate)
    _, whole_mix = picture_and_description(loaded.samples, loaded.sample_rate)
    assert heard.startswith("Mostly E") and not any(note in heard for note in ("A", "F", "C", "G"))
    assert not whole_mix.startswith("Mostly E")


@pytest.mark.parametrize("name", list(HUMS))
def test_a_clean_hum_is_followed_as_recorded_since_an_ideal_separator_changes_none_of_its_chroma(name):
    notes, seconds = HUMS[name]
    samples = hum(notes, seconds, RATE)
    noisy = samples + 0.03 * np.abs(samples).max() * np.random.default_rng(1).standard_normal(len(samples))
    for recording in (samples, noisy.astype(np.float32)):
        loaded = as_loaded(recording, "hum.wav")
        parts = {"drums": 0 * recording, "bass": 0 * recording, "other": 0 * recording, "vocals": recording}
        split = SplitByConstruction(parts)
        separator = melody_separator(split)

        kept = separator.prepare(loaded)
        ideal = separator.prepare(loaded, separate=True)  # what separating it would give

        assert kept.reason == CLEAN_HUM and kept.samples is loaded.samples and not kept.separated
        assert "clean hum" in kept.notes[0] and split.calls == 1
        assert np.array_equal(pitch_classes(ideal.samples), pitch_classes(loaded.samples))


# (melody, bass, drums) levels, and whether separation changes the chroma the model is given
MIXES = [
    ((0.15, 0.6, 0.6), True),
    ((0.25, 0.5, 0.6), True),
    ((0.3, 0.6, 0.0), True),
    ((0.4, 0.3, 0.3), False),
    ((0.5, 0.2, 0.2), False),
    ((0.5, 0.0, 0.6), False),
    ((0.5, 0.05, 0.05), False),
]


@pytest.mark.parametrize(("levels", "steered"), MIXES)
def test_only_mixes_whose_chroma_separation_would_not_change_can_pass_for_a_hum(levels, steered):
    parts = synthetic_song(*(6.0, *levels))
    mix = mix_of(parts)
    changed = float((pitch_classes(mix) != pitch_classes(parts["vocals"])).mean())

    assert (changed > 0.2) == steered
    if steered:
        assert not is_clean_hum(mix, RATE)
    elif is_clean_hum(mix, RATE):
        assert changed < 0.05


def test_drums_and_bass_alone_leave_no_melody_so_the_whole_upload_is_followed():
    parts = synthetic_song(melody=0.0)
    loaded = as_loaded(mix_of(parts), "drum-loop.wav")
    split = SplitByConstruction(parts)
    separator = melody_separator(split)

    prepared = separator.prepare(loaded)

    assert prepared.reason == NOTHING_LEFT and not prepared.separated and prepared.samples is loaded.samples
    assert "left next to nothing" in prepared.notes[0]
    assert separator.prepare(loaded).cache_hit and split.calls == 1  # Demucs is not run again to learn that


def test_the_cache_keeps_the_latest_uploads_only():
    songs = [synthetic_song(2.0, melody=level) for level in (0.15, 0.2, 0.25)]
    split = SplitByConstruction(*songs)
    separator = melody_separator(split, cache_entries=2)
    first, second, third = (as_loaded(mix_of(parts)) for parts in songs)

    for loaded in (first, second, first, third, first, second):
        separator.prepare(loaded)

    # first, second and third are separated; first stays (used again), so second is dropped for third
    assert split.calls == 4


class GatedSplit(SplitByConstruction):
    """Splits by construction once the test opens the gate, so requests can be made to overlap."""

    def __init__(self, *songs: dict):
        super().__init__(*songs)
        self.started, self.gate = threading.Event(), threading.Event()

    def separate(self, audio, sample_rate, **options) -> dict[str, np.ndarray]:
        self.started.set()
        assert self.gate.wait(10)
        return super().separate(audio, sample_rate, **options)


def test_requests_at_once_separate_an_upload_once_and_a_cached_upload_never_waits():
    cached, new = synthetic_song(2.0), synthetic_song(2.0, melody=0.2)
    split = GatedSplit(cached, new)
    melodies = melody_separator(split)
    split.gate.set()
    melodies.prepare(as_loaded(mix_of(cached)))
    split.gate.clear()
    split.started.clear()  # so the wait below sees the new upload's separation start, not the cached one's
    cancel = threading.Event()
    cancel.set()

    with ThreadPoolExecutor(max_workers=4) as pool:
        first = pool.submit(melodies.prepare, as_loaded(mix_of(new)))
        assert split.started.wait(10)
        second = pool.submit(melodies.prepare, as_loaded(mix_of(new)))
        given_up = pool.submit(melodies.prepare, as_loaded(mix_of(new)), cancel=cancel)
        hit = pool.submit(melodies.prepare, as_loaded(mix_of(cached))).result(timeout=5)
        with pytest.raises(GenerationCancelled):
            given_up.result(timeout=5)  # cancel works while waiting for another request's separation
        assert hit.cache_hit and not first.done() and not second.done()
        split.gate.set()
        results = first.result(timeout=10), second.result(timeout=10)

    assert split.calls == 2 and not results[0].cache_hit and results[1].cache_hit
    assert results[1].samples is results[0].samples


def test_a_hum_shorter_than_a_chroma_window_is_measured_too():
    assert is_clean_hum(hum(("A4",), 0.3, RATE), RATE)


# -- The real Demucs class, tiny random weights -------------------------------------------------------------------


@pytest.fixture(scope="module")
def song_file(tmp_path_factory) -> str:
    """A stereo 44.1 kHz song file, as people upload them: 1.5 s, one segment of the tiny Demucs (2-3 s of CPU)."""
    parts = synthetic_song(1.5)
    mono = mix_of(parts)
    stereo = resample(np.stack([mono, 0.8 * mono]), RATE, 44_100).T
    path = tmp_path_factory.mktemp("songs") / "song.wav"
    sf.write(path, stereo, 44_100, subtype="PCM_16")
    return str(path)


def load_melody(path: str) -> LoadedAudio:
    return load_audio(path, RATE, max_seconds=30.0)


def test_an_upload_is_separated_once_by_demucs_into_vocals_plus_other(separator, song_file):
    counting = CountingSeparator(separator)
    melodies = melody_separator(counting)
    loaded = load_melody(song_file)

    prepared = melodies.prepare(loaded)
    again = melodies.prepare(load_melody(song_file))  # a new take of the same upload

    assert loaded.source_channels == 2 and loaded.sample_rate == RATE
    shape, rate, stems = counting.calls[0]
    assert shape == (1, len(loaded.samples)) and rate == RATE  # the mono the model reads, at its rate
    assert prepared.separated and prepared.stems_model == "tiny-htdemucs" and prepared.stems == ("other", "vocals")
    assert prepared.samples.shape == loaded.samples.shape and prepared.samples.dtype == np.float32
    assert prepared.sample_rate == RATE and not prepared.samples.flags.writeable
    expected = stems["vocals"][0] + stems["other"][0]  # stems 3 and 2, as transformers' extractor takes them
    scale = np.abs(prepared.samples).max() / np.abs(expected).max()
    np.testing.assert_allclose(prepared.samples, expected * scale, rtol=1e-5, atol=1e-6)
    assert abs(20 * np.log10(np.abs(prepared.samples).max()) + 1.0) < 0.01  # peak -1 dBFS, as load_audio leaves it
    assert len(counting.calls) == 1 and again.cache_hit and not prepared.cache_hit
    assert np.array_equal(again.samples, prepared.samples)
    assert prepared.record() == {
        "separated": True,
        "stems_model": "tiny-htdemucs",
        "stems": ["other", "vocals"],
        "separation": SEPARATED,
    }


def test_separation_reports_progress_and_stops_when_cancelled(separator, song_file):
    loaded = load_melody(song_file)
    melodies = melody_separator(CountingSeparator(separator))
    cancel = threading.Event()
    cancel.set()

    with pytest.raises(GenerationCancelled):
        melodies.prepare(loaded, cancel=cancel)
    reports: list[tuple[str, float]] = []
    melodies.prepare(loaded, on_progress=lambda what, done: reports.append((what, done)))

    assert len(melodies.separator.calls) == 1  # the cancelled one left nothing in the cache
    assert {what for what, _ in reports} == {SEPARATING}
    fractions = [done for _, done in reports]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions) and len(fractions) > 2


def test_without_demucs_weights_the_melody_is_the_whole_mix_and_the_note_says_how_to_fix_it(song_file, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    melodies = MelodySeparator(StemSeparator("htdemucs-not-here"))
    loaded = load_melody(song_file)

    started = time.perf_counter()
    prepared = melodies.prepare(loaded)

    assert time.perf_counter() - started < 5
    assert prepared.reason == UNAVAILABLE and not prepared.separated and prepared.samples is loaded.samples
    note = prepared.notes[0]
    assert "drums and bass" in note and "Stems are unavailable" in note and "hf download" in note
    assert "MOODTAPE_STEMS_MODEL" in note and "MOODTAPE_MELODY_SEPARATION=0" in note
    assert prepared.record() == {"separated": False, "stems_model": None, "stems": [], "separation": UNAVAILABLE}
    assert not melodies.prepare(loaded).cache_hit  # tried again next time: the weights may be there by then


def test_an_operator_can_turn_melody_separation_off(song_file):
    config = ServerConfig.from_env({"MOODTAPE_MELODY_SEPARATION": "off"})
    split = SplitByConstruction()
    loaded = load_melody(song_file)

    prepared = melody_separator(split, config=config).prepare(loaded)
    replayed = melody_separator(split, config=config).prepare(loaded, separate=True)

    assert not config.melody_separation and ServerConfig().melody_separation
    assert prepared.reason == TURNED_OFF and prepared.samples is loaded.samples and prepared.notes == ()
    assert replayed.reason == TURNED_OFF and "MOODTAPE_MELODY_SEPARATION=0" in replayed.notes[0]
    assert split.calls == 0
    with pytest.raises(ConfigError, match="MOODTAPE_MELODY_SEPARATION must be 1 or 0"):
        ServerConfig.from_env({"MOODTAPE_MELODY_SEPARATION": "maybe"})


def test_a_replay_separates_exactly_when_its_recipe_did():
    parts = synthetic_song(2.0)
    song = as_loaded(mix_of(parts))
    notes, seconds = HUMS["arpeggio"]
    hummed = hum(notes, seconds, RATE)
    humming = {"drums": 0 * hummed, "bass": 0 * hummed, "other": 0 * hummed, "vocals": hummed}
    split = SplitByConstruction(parts, humming)
    melodies = melody_separator(split)

    original = melodies.prepare(song)
    not_separated = melodies.prepare(song, separate=False)
    hum_separated = melodies.prepare(as_loaded(hummed, "hum.wav"), separate=True)
    other_model = melodies.prepare(song, **_replay(original.record() | {"stems_model": "htdemucs_ft"}))

    assert not_separated.reason == NOT_ASKED and not not_separated.separated
    assert hum_separated.separated
    assert other_model.separated and "'htdemucs_ft'" in other_model.notes[0] and "may differ" in other_model.notes[0]
    assert melodies.prepare(song, **_replay(original.record())).notes == ()
    assert split.calls == 2  # the song once, the hum once


# -- The melody path's cheaper separation ------------------------------------------------------------------------


def separation_runs(separator: StemSeparator, samples: np.ndarray, settings: SeparationSettings) -> int:
    """How many segments Demucs ran to separate ``samples`` (32 kHz mono), counted from its progress reports."""
    reports: list[float] = []
    separator.separate(samples[None], RATE, on_progress=reports.append, settings=settings)
    return len(reports) - 1  # one report per segment, then the final 1.0


def test_the_export_keeps_todays_demucs_settings():
    assert EXPORT_SEPARATION == SeparationSettings(overlap=0.25, shifts=0, skip_tail=False, int8=False, bf16=False)
    assert inspect.signature(StemSeparator.separate).parameters["settings"].default is EXPORT_SEPARATION
    assert MelodySeparator(SplitByConstruction(), config=ServerConfig()).settings is MELODY_SEPARATION
    assert MELODY_SEPARATION.skip_tail and MELODY_SEPARATION.int8 and MELODY_SEPARATION != EXPORT_SEPARATION


def test_the_melody_path_skips_the_padding_segment_and_runs_int8_linear_layers_while_the_export_runs_todays():
    separator = StemSeparator.from_model(build_tiny_demucs(), name="tiny-htdemucs")  # its own: the int8 copy
    mix = mix_of(synthetic_song(5.0))  # the tiny Demucs' 2 s segments start every 1.5 s
    calls = CountingSeparator(separator)

    exported = separation_runs(separator, mix, EXPORT_SEPARATION)
    made_for_export = separator._int8[1]
    melody_separator(calls).prepare(as_loaded(mix))
    separated_for_melody = separation_runs(separator, mix, calls.settings[0])

    assert calls.settings == [MELODY_SEPARATION]
    assert exported == 4  # the 4th starts at 4.5 s, though the 3rd reaches the end
    assert separated_for_melody == 3
    assert made_for_export is None  # the export never quantises
    quantised = separator._int8[1]
    assert any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in quantised.modules())
    assert not any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in separator._model.modules())


def test_skipping_the_padding_segment_changes_the_stems_only_where_it_was(separator):
    mix = mix_of(synthetic_song(5.0))

    today = separator.separate(mix[None], RATE)
    skipped = separator.separate(mix[None], RATE, settings=replace(EXPORT_SEPARATION, skip_tail=True))
    whole = separator.separate(
        mix_of(synthetic_song(6.0))[None], RATE, settings=replace(EXPORT_SEPARATION, skip_tail=True)
    )

    start = round(4.45 * RATE)  # the skipped segment began at 4.5 s (resampling back to 32 kHz spreads it a little)
    for name in today:
        np.testing.assert_allclose(today[name][:, :start], skipped[name][:, :start], atol=1e-5)
        assert not np.allclose(today[name][:, start:], skipped[name][:, start:], atol=1e-3)
    assert np.array_equal(whole["vocals"], separator.separate(mix_of(synthetic_song(6.0))[None], RATE)["vocals"])


@pytest.mark.parametrize("levels", [(0.15, 0.6, 0.6), (0.3, 0.6, 0.0), (0.4, 0.3, 0.3)])
def test_the_cheaper_separation_gives_the_melody_chroma_of_todays_on_nearly_every_frame(separator, levels):
    mix = mix_of(synthetic_song(9.5, *levels))  # 7 segments today, the last one skipped

    def melody_classes(settings: SeparationSettings) -> np.ndarray:
        stems = separator.separate(mix[None], RATE, settings=settings)
        return pitch_classes(stems["vocals"][0] + stems["other"][0])

    today, cheaper = melody_classes(EXPORT_SEPARATION), melody_classes(MELODY_SEPARATION)

    assert (today != pitch_classes(mix)).mean() > 0.3  # separation matters for these songs' chroma
    assert (cheaper == today).mean() >= 0.95


@pytest.mark.parametrize(
    ("options", "message"),
    [({"overlap": 1.0}, "overlap must be between 0 and 0.9, got 1.0"), ({"shifts": -1}, "shifts must be a whole")],
)
def test_separation_settings_name_the_bad_value(options, message):
    with pytest.raises(InvalidInputError, match=message):
        SeparationSettings(**options)


def _replay(record: dict) -> dict:
    """A recipe's melody record as ``prepare``'s replay arguments."""
    return {"separate": record["separated"], "stems_model": record["stems_model"]}


def test_the_separation_benchmark_runs():
    from benchmarks.melody_separation import measure

    figures = measure(seconds=1.5, tiny=True)

    assert figures.first_seconds > figures.cached_seconds and any("per second of audio" in x for x in figures.lines())
