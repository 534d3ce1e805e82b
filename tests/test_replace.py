"""Replacing a section, at the library level: where it runs, which candidate is kept, and the splice.

The generator here is a test double that makes candidates from synthetic drums and chords, one of them the
original's own continuation (blurred a little, as a codec would); everything else is the real code. The
Studio and the live server run the same steps with the tiny models (``tests/test_replace_studio.py``).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import soundfile as sf

from generation.audio.export import export_track
from generation.audio.tempo import measure_tempo
from generation.audio.uploads import read_track
from generation.editing.replace import (
    CROSSFADE_SECONDS,
    MAX_SECTION_SECONDS,
    Candidate,
    Section,
    check_candidates,
    level_whole,
    resolve_section,
    splice,
    splice_candidates,
)
from generation.editing.scoring import OVERLAP_SECONDS, score_candidates
from generation.errors import InvalidInputError
from tests.rhythm_factory import A_MINOR, D_MAJOR, pattern

RATE = 32_000
BPM = 120.0  # bars of 2 s, the first starting at 0
SECONDS = 16.0
EDGE = round(CROSSFADE_SECONDS * RATE)


def blurred(audio: np.ndarray, seed: int) -> np.ndarray:
    """``audio`` 1.25 ms late with noise 40 dB down: what a codec's version of the same music looks like."""
    noise = np.random.default_rng(seed).normal(0.0, 0.01, audio.shape)
    return (np.roll(audio, 40, axis=-1) + noise).astype(np.float32)


class ContinuationDouble:
    """Stands in for the model: candidates for seeds seed, seed + 1, ...; ``true_seed``'s is the original's own.

    The others are the same drums and chords in another key, half a beat late, and 15% faster.
    """

    def __init__(self, original: np.ndarray, true_seed: int):
        self.original, self.true_seed = original, true_seed
        self.others = _mismatches(original.shape[0])

    def candidates(self, section: Section, seed: int, count: int) -> list[Candidate]:
        start, end = section.samples(RATE)
        length = end - start + round(section.overlap * RATE)
        lead = min(start, round(0.1 * RATE))
        made = []
        for i in range(count):
            source = self.original if seed + i == self.true_seed else self.others[i % len(self.others)]
            padded = np.pad(source, ((0, 0), (0, max(0, start + length - source.shape[-1]))))
            audio = blurred(padded[:, start : start + length], seed + i)
            lead_in = blurred(source[:, start - lead : start], seed + i) if start else None
            made.append(Candidate(audio, RATE, seed + i, lead_in))
        return made


@functools.cache
def _mismatches(channels: int) -> list[np.ndarray]:
    return [
        pattern(BPM, SECONDS + 2, RATE, chords=D_MAJOR, channels=channels),
        pattern(BPM, SECONDS + 2, RATE, chords=A_MINOR, offset=0.25, channels=channels),
        pattern(BPM * 1.15, SECONDS + 2, RATE, chords=A_MINOR, channels=channels),
    ]


@pytest.fixture(scope="module")
def song() -> np.ndarray:
    return pattern(BPM, SECONDS, RATE, chords=A_MINOR)


def outside(audio: np.ndarray, section: Section) -> np.ndarray:
    """Every sample outside [start - 0.25 s, end + 0.25 s], concatenated."""
    start, end = section.samples(RATE)
    return np.concatenate([audio[:, : max(0, start - EDGE)], audio[:, end + EDGE :]], axis=-1)


def test_the_original_continuation_wins_wherever_it_is_made(song):
    section = resolve_section(4.0, 10.0, SECONDS)
    for true_seed in (7, 8, 9, 10):
        candidates = ContinuationDouble(song, true_seed).candidates(section, 7, 4)
        replaced = splice_candidates(song, RATE, section, candidates)
        assert replaced[0].seed == true_seed
        scores = [r.score.total for r in replaced]
        assert scores == sorted(scores, reverse=True)
        assert scores[0] > 0.95 and scores[0] - scores[1] > 0.05


def test_the_original_continuation_outscores_each_kind_of_mismatch():
    """Measured per feature: key, beat phase, tempo, level and instruments each lose to the true continuation."""
    for bpm in (90.0, 120.0, 150.0):
        for chords, other in ((A_MINOR, D_MAJOR), (D_MAJOR, A_MINOR)):
            whole = pattern(bpm, 8, RATE, chords=chords)
            at, n = 6 * RATE, round(OVERLAP_SECONDS * RATE)
            after = whole[:, at : at + n]
            mismatches = [
                pattern(bpm, 8, RATE, chords=other)[:, at : at + n],
                pattern(bpm, 8, RATE, chords=chords, offset=30.0 / bpm)[:, at : at + n],
                pattern(bpm * 1.15, 8, RATE, chords=chords)[:, at : at + n],
                0.5 * after,
                0.3 * pattern(bpm, 8, RATE, chords=chords, kind="clicks")[:, at : at + n],
            ]
            true, *wrong = score_candidates([blurred(after, 3), *mismatches], after, RATE)
            assert all(true.total > w.total + 0.05 for w in wrong), (bpm, true, wrong)


@pytest.mark.parametrize("channels", [1, 2])
def test_a_replace_keeps_every_sample_outside_the_section_and_its_crossfades(channels):
    original = pattern(BPM, SECONDS, RATE, chords=A_MINOR, channels=channels, seed=channels)
    section = resolve_section(3.3, 9.1, SECONDS)
    candidates = ContinuationDouble(original, 99).candidates(section, 1, 2)
    for replaced in splice_candidates(original, RATE, section, candidates):
        assert replaced.audio.shape == original.shape
        assert np.array_equal(outside(replaced.audio, section), outside(original, section))
        start, end = section.samples(RATE)
        assert not np.array_equal(replaced.audio[:, start:end], original[:, start:end])


def test_a_mono_candidate_fills_both_channels_and_a_stereo_one_is_mixed_for_mono():
    stereo = pattern(BPM, 6, RATE, channels=2)
    mono_candidate = np.full((1, 5 * RATE), 0.25, np.float32)
    out = splice(stereo, mono_candidate, None, RATE, 3 * RATE, RATE)
    assert out.shape == stereo.shape and np.all(out[:, RATE : 3 * RATE] == 0.25)
    mono = pattern(BPM, 6, RATE)
    stereo_candidate = np.stack([np.full(5 * RATE, 0.5), np.zeros(5 * RATE)]).astype(np.float32)
    out = splice(mono, stereo_candidate, None, RATE, 3 * RATE, RATE)
    assert out.shape == mono.shape and np.all(out[:, RATE : 3 * RATE] == 0.25)


def test_crossfades_are_equal_power_and_stay_within_a_quarter_second_of_the_section(song):
    start, end = 4 * RATE, 8 * RATE
    candidate = np.zeros((1, 6 * RATE), np.float32)
    lead_in = np.zeros((1, RATE), np.float32)
    out = splice(np.ones_like(song), candidate, lead_in, start, end, RATE)
    changed = np.flatnonzero(out[0] != 1.0)
    assert start - EDGE < changed[0] < start - EDGE + 10  # cos(0) = 1: the first fade sample is the original's
    assert end + EDGE - 10 < changed[-1] < end + EDGE
    # Equal power: halfway through the fade out of ones into zeros the gain is cos(pi/4), not 0.5
    assert out[0, start - EDGE // 2] == pytest.approx(np.cos(np.pi / 4), abs=1e-3)
    assert out[0, end + EDGE // 2] == pytest.approx(np.sin(np.pi / 4), abs=1e-3)


def test_a_section_may_start_at_zero_or_end_at_the_file_end(song):
    whole = SECONDS
    section = resolve_section(0, 5.0, whole)
    first = splice_candidates(song, RATE, section, ContinuationDouble(song, 0).candidates(section, 0, 1))[0]
    after = 5 * RATE + EDGE
    assert first.audio.shape == song.shape and np.array_equal(first.audio[:, after:], song[:, after:])
    section = resolve_section(12.0, whole, whole)
    last = splice_candidates(song, RATE, section, ContinuationDouble(song, 5).candidates(section, 4, 2))
    assert last[0].score is None and last[0].seed == 4  # nothing after the section: the first made is kept
    assert np.array_equal(last[0].audio[:, : 12 * RATE - EDGE], song[:, : 12 * RATE - EDGE])


def test_the_same_candidates_give_the_same_audio_bit_for_bit(song):
    section = resolve_section(2.5, 7.5, SECONDS)
    runs = [splice_candidates(song, RATE, section, ContinuationDouble(song, 3).candidates(section, 2, 3)) for _ in "ab"]
    assert [r.seed for r in runs[0]] == [r.seed for r in runs[1]]
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(*runs, strict=True))


def test_a_24_bit_wav_keeps_its_integers_outside_the_section(tmp_path):
    """Read a 24-bit WAV the way the studio does, replace, write it again: the same integers outside."""
    original = pattern(BPM, SECONDS, RATE, chords=A_MINOR, channels=2)  # peaks at 0.8: far above -8.5 dBFS
    common = {"metadata": {}, "recipe_json": "{}"}
    first = export_track(original, RATE, folder=tmp_path, file_name="first", **common)["wav"]
    track = read_track(first, max_seconds=60)
    section = resolve_section(4.0, 8.0, track.seconds)
    candidates = ContinuationDouble(track.samples, 1).candidates(section, 1, 2)
    best = splice_candidates(np.asarray(track.samples), RATE, section, candidates)[0]
    second = export_track(best.audio, RATE, folder=tmp_path, file_name="second", **common)["wav"]
    before, _ = sf.read(first, dtype="int32", always_2d=True)
    after, _ = sf.read(second, dtype="int32", always_2d=True)
    assert after.shape == before.shape
    assert np.array_equal(outside(after.T, section), outside(before.T, section))


def test_loudness_is_one_gain_over_the_whole_file(song):
    quiet = 0.1 * song
    out, report = level_whole(quiet, RATE, -14.0)
    ratio = out[np.abs(quiet) > 1e-3] / quiet[np.abs(quiet) > 1e-3]
    assert np.allclose(ratio, ratio[0], rtol=1e-5) and ratio[0] > 1
    assert report.true_peak_dbtp <= -1.0 + 0.05
    same, report = level_whole(song, RATE, None)
    assert same is song and report.gain_db == 0.0


def test_boundaries_move_to_the_nearest_downbeats_by_at_most_a_bar(song):
    tempo = measure_tempo(song, RATE)
    assert tempo.bpm == pytest.approx(BPM, abs=1)
    section = resolve_section(3.7, 8.4, SECONDS, tempo)
    assert section.start == pytest.approx(4.0, abs=0.03) and section.end == pytest.approx(8.0, abs=0.03)
    assert "downbeats" in section.note and "120 BPM" in section.note
    assert (section.asked_start, section.asked_end) == (3.7, 8.4)
    whole = resolve_section(0, SECONDS, SECONDS, tempo)
    assert (whole.start, whole.end) == (0, SECONDS)


def test_without_a_tempo_the_section_is_used_as_given():
    noise = np.random.default_rng(0).normal(0, 0.1, (1, 8 * RATE)).astype(np.float32)
    tempo = measure_tempo(noise, RATE)
    section = resolve_section(1.3, 4.7, 8.0, tempo)
    assert (section.start, section.end) == (1.3, 4.7)
    assert "No steady tempo" in section.note


@pytest.mark.parametrize(
    ("start", "end", "words"),
    [
        (5.0, 5.0, "must come after start"),
        (6.0, 2.0, "must come after start"),
        (1.0, 16.5, "at most the file's length, 16.00 s"),
        (-1.0, 4.0, "0 or more seconds"),
        ("soon", 4.0, "start must be a number of seconds"),
        (1.0, float("nan"), "end must be a finite number"),
        (None, 4.0, "start must be a number"),
    ],
)
def test_a_bad_section_is_refused_with_the_values_named(start, end, words):
    with pytest.raises(InvalidInputError, match=words):
        resolve_section(start, end, SECONDS)


def test_a_section_over_30_seconds_is_refused():
    with pytest.raises(InvalidInputError, match=r"31.0 s long; replace at most 30 s"):
        resolve_section(2.0, 33.0, 60.0)
    assert resolve_section(2.0, 2.0 + MAX_SECTION_SECONDS, 60.0).seconds == MAX_SECTION_SECONDS


def test_candidates_are_one_to_four():
    assert check_candidates(None) == 2 and check_candidates(4.0) == 4 and check_candidates(1) == 1
    for bad in (0, 9, 2.5, True, "two"):
        with pytest.raises(InvalidInputError, match="candidates must be a whole number from 1 to 4"):
            check_candidates(bad)
