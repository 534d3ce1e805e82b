"""Measure a track's tempo, beats, downbeats and key, or say plainly that they cannot be told.

Beats come from librosa's dynamic-programming beat tracker on a mel spectral-flux onset envelope. librosa
quantises its own tempo to the envelope's lag grid (117.45 BPM for a 120 BPM click at its defaults), so the
tempo here is the slope of a least-squares line through the beat times, which lands within 0.05 BPM of the
truth on click and drum patterns at 90, 120 and 174 BPM.

Which metrical level is "the beat" is ambiguous. librosa's usual flux of log (dB) mel bands counts a quiet
hi-hat as much as a kick: on drum patterns it tracked 90 BPM with loud eighth-note hats at 178, and a 174 BPM
kick-snare pattern at 87.6, sometimes on the off-beats. The flux of mel *magnitudes* weighs each onset by its
energy, so kick and snare lead: it found 90.7, 120.2 and 172.3 (before the fit) on all 18 click, drum and
loud-hat patterns tried, in phase. A caller that knows the intended tempo (the request's ``bpm``) passes it as
``hint_bpm`` and the octave nearest it is taken. The envelope is not shifted for the STFT's centring
(``center=False``), so beats land 8 to 15 ms before an attack starts: a loop cut at a downbeat keeps the whole
attack, where librosa's default shift put beats 32 to 38 ms into it.

A track has no tempo to report when fewer than ``MIN_BEATS`` beats were tracked, when the beats stray from
their fitted grid, or when the onset envelope (less its two-second running mean, so that slow swells do not
count) barely repeats one or two beats later: on noise, a sustained chord, randomly timed clicks and clicks
whose tempo swings from 50 to 130 BPM that autocorrelation was at most 0.18; on every click and drum pattern
at least 0.68, and 0.61 with white noise at a quarter of the drums' peak.

Downbeats: no offline, permissively licensed downbeat tracker was fast enough (madmom's RNN takes about 1 s
per 10 s of audio and its models are CC BY-NC-SA), so the bar phase is the one of the four whose beats carry
the most accent, kick and bass, and change of harmony; bars are 4/4. The key is the Krumhansl-Schmuckler key
(``generation.melody.estimate_key``) of the track's chroma energy, as for a hum.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import InvalidInputError, quoted
from .arrays import check_audio, resample

MIN_BPM, MAX_BPM = 40, 240  # the tempi a request may ask for, and the range a measurement is reported in
BEATS_PER_BAR = 4  # 4/4: every bar has four beats
ANALYSIS_RATE = 22_050  # Hz the rhythm is analysed at: librosa's default, and a third less work than 32 kHz
N_FFT = 2_048  # STFT size for the onset envelope: 93 ms, the usual for spectral flux
HOP_LENGTH = 256  # samples between onset frames: 11.6 ms, so beat times are good to about 10 ms
N_MELS = 64  # mel bands the flux is summed over
MEL_FMAX = 8_000.0  # Hz; above this are hats and air, which say nothing about where the beat is
LOW_BAND_HZ = 200.0  # mel bands below this carry the kick and the bass
MIN_BEATS = 6  # fewer beats than a bar and a half is too short to tell a tempo or a bar
OUTLIER = 0.15  # a beat this far from the fitted grid (fraction of a beat) is dropped and the grid refitted
MIN_INLIERS = 0.75  # if fewer than this share of the beats sit on the grid, the track has no steady tempo
MAX_JITTER = 0.05  # RMS distance of the kept beats from their grid, as a fraction of a beat; steady is < 0.01
TREND_SECONDS = 2.0  # the onset envelope's running mean over this long is taken off before the clarity test
MIN_CLARITY = 0.3  # autocorrelation of the envelope one or two beats apart below which there is no clear beat
MIN_KEY_CORRELATION = 0.5  # below this Krumhansl correlation no key is named (as for hums)
UNCLEAR_TEMPO = "too short or too arrhythmic to tell"


@dataclass(frozen=True)
class TempoReport:
    """What was measured in a track: its tempo, beats and bars, and its key; None where it cannot be told."""

    bpm: float | None  # beats per minute, from the beat times; None when the track is too short or arrhythmic
    beats: tuple[float, ...]  # beat times in seconds from the start of the track; empty when bpm is None
    downbeats: tuple[float, ...]  # the beats that start a 4/4 bar, a subset of beats
    key: str | None  # for example "A minor"; None when no key is clear
    clarity: float  # autocorrelation of the onset envelope one or two beats apart: 0 no beat, 1 a metronome
    key_correlation: float  # the Krumhansl-Schmuckler correlation of the key, 0 to 1
    note: str | None = None  # what could not be told and why, in words for the summary; None when all was

    def describe(self) -> str:
        """Tempo and key for a summary or recipe: "92 BPM, A minor", or what could not be told."""
        tempo = f"{self.bpm:.0f} BPM" if self.bpm is not None else f"tempo {UNCLEAR_TEMPO}"
        return f"{tempo}, {self.key or 'no clear key'}"


def measure_tempo(audio: np.ndarray, rate: int, *, hint_bpm: float | None = None) -> TempoReport:
    """Tempo, beats, downbeats and key of ``[channels, samples]`` audio at ``rate`` Hz.

    ``hint_bpm`` (40 to 240), when given, picks between half, single and double of the tempo librosa finds:
    a take asked for at 174 BPM that pulses at 87 is tracked and reported at 174. Without it the tempo is
    librosa's estimate (a log-normal prior around 120 BPM), folded into 40 to 240.
    """
    # 1. Check inputs
    audio = check_audio(audio)
    rate = check_sample_rate(rate)
    if hint_bpm is not None:
        hint_bpm = check_bpm(hint_bpm, "hint_bpm")

    # 2. Key, from the whole track at its own rate
    mono = audio.mean(axis=0)
    key, key_correlation = _key(mono, rate)
    unclear = TempoReport(None, (), (), key, 0.0, key_correlation, _note(UNCLEAR_TEMPO, key))

    # 3. Onset envelopes and chroma at the analysis rate, if there is room for MIN_BEATS at the fastest tempo
    if len(mono) < MIN_BEATS * 60.0 / MAX_BPM * rate:
        return unclear
    features = _features(resample(mono, rate, ANALYSIS_RATE))

    # 4. Beats at the likely tempo, kept if they sit on a steady grid and the envelope repeats at that beat
    beats = _track_beats(features, hint_bpm)
    if len(beats) < MIN_BEATS:
        return unclear
    beats, bpm, jitter = _fit_grid(beats)
    clarity = _clarity(features.onsets, bpm)
    if len(beats) < MIN_BEATS or jitter > MAX_JITTER or clarity < MIN_CLARITY or not MIN_BPM <= bpm <= MAX_BPM:
        return replace(unclear, clarity=clarity)

    # 5. Bars: the phase whose beats carry the most accent, bass and change of harmony
    phase = _bar_phase(features, beats)
    return TempoReport(
        bpm=bpm,
        beats=tuple(beats.tolist()),
        downbeats=tuple(beats[phase::BEATS_PER_BAR].tolist()),
        key=key,
        clarity=clarity,
        key_correlation=key_correlation,
        note=_note(None, key),
    )


def warm_up() -> None:
    """Run a measurement on four seconds of clicks, so the first track does not wait for librosa's start.

    librosa's beat tracker is compiled by numba on first use: about 3 s on 2 cores when numba's cache (beside
    librosa's files) is already written, 20 to 55 s the very first time. Call it once at start-up, off the
    request path.
    """
    rate = ANALYSIS_RATE
    clicks = np.zeros((1, 4 * rate), np.float32)
    for start in range(0, clicks.shape[1], rate // 2):  # 120 BPM
        clicks[0, start : start + 64] = np.hanning(64)
    measure_tempo(clicks, rate)


def check_bpm(value: object, name: str = "bpm") -> float:
    """``value`` as a float tempo in ``MIN_BPM``..``MAX_BPM``; refuses text, booleans, NaN and values outside."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InvalidInputError(
            f"{name} must be a number of beats per minute from {MIN_BPM} to {MAX_BPM}, got {quoted(value)}."
        )
    if not MIN_BPM <= value <= MAX_BPM:  # NaN fails this too; compared before float() so huge ints cannot overflow
        raise InvalidInputError(f"{name} must be from {MIN_BPM} to {MAX_BPM} beats per minute, got {quoted(value)}.")
    return float(value)


def at_tempo(report: TempoReport, bpm: float) -> TempoReport:
    """``report`` with its beats and bars re-counted at half or double its tempo, whichever is nearest ``bpm``.

    Doubling puts a beat midway between each pair; halving keeps every other beat, starting on a downbeat.
    Bars stay four beats, so after doubling every tracked downbeat is still one, with one more between.
    """
    if report.bpm is None:
        return report
    factor = octave_factor(report.bpm, bpm)
    if factor == 1.0:
        return report
    beats, first = np.asarray(report.beats), report.downbeats[0]
    if factor == 2.0:
        beats = np.insert(beats, np.arange(1, len(beats)), (beats[:-1] + beats[1:]) / 2)
    else:
        beats = beats[int(np.argmin(np.abs(beats - first))) % 2 :: 2]
    phase = int(np.argmin(np.abs(beats - first))) % BEATS_PER_BAR
    downbeats = beats[phase::BEATS_PER_BAR]
    return replace(report, bpm=report.bpm * factor, beats=tuple(beats.tolist()), downbeats=tuple(downbeats.tolist()))


def octave_factor(measured: float, target: float) -> float:
    """0.5, 1 or 2: the factor that brings ``measured`` nearest ``target`` (ratios compared on a log scale)."""
    return min((0.5, 1.0, 2.0), key=lambda factor: abs(np.log(measured * factor / target)))


@dataclass(frozen=True)
class _Features:
    """What the beat and bar steps read, one value per onset frame at ``ANALYSIS_RATE`` / ``HOP_LENGTH``."""

    onsets: np.ndarray  # flux of mel magnitudes over all bands up to MEL_FMAX
    low_onsets: np.ndarray  # the same over the bands below LOW_BAND_HZ: kick and bass
    chroma: np.ndarray  # [12, frames] pitch-class energy, each frame scaled to a largest value of 1


def _features(mono: np.ndarray) -> _Features:
    """Onset envelopes and chroma of a waveform at ``ANALYSIS_RATE``, all from one STFT."""
    import librosa

    power = np.abs(librosa.stft(mono, n_fft=N_FFT, hop_length=HOP_LENGTH)) ** 2
    magnitude = np.sqrt(librosa.feature.melspectrogram(S=power, sr=ANALYSIS_RATE, n_mels=N_MELS, fmax=MEL_FMAX))
    low = librosa.mel_frequencies(N_MELS, fmax=MEL_FMAX) < LOW_BAND_HZ
    return _Features(
        onsets=librosa.onset.onset_strength(S=magnitude, sr=ANALYSIS_RATE, hop_length=HOP_LENGTH, center=False),
        low_onsets=librosa.onset.onset_strength(
            S=magnitude[low], sr=ANALYSIS_RATE, hop_length=HOP_LENGTH, center=False
        ),
        chroma=librosa.feature.chroma_stft(S=power, sr=ANALYSIS_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH, tuning=0.0),
    )


def _track_beats(features: _Features, hint_bpm: float | None) -> np.ndarray:
    """Beat times in seconds, tracked at librosa's tempo estimate (or its octave nearest ``hint_bpm``)."""
    import librosa

    if not features.onsets.any():
        return np.zeros(0)
    # The estimate is only a start for the tracker (the fit sets the tempo), so it runs on the envelope at half
    # the frame rate: its 8 s autocorrelation window then costs a quarter (52 ms down to 13 on 2 cores).
    pooled = features.onsets[: len(features.onsets) // 2 * 2].reshape(-1, 2).max(axis=1)
    bpm = float(librosa.feature.tempo(onset_envelope=pooled, sr=ANALYSIS_RATE, hop_length=2 * HOP_LENGTH)[0])
    if hint_bpm is not None:
        bpm *= octave_factor(bpm, hint_bpm)
    while bpm > MAX_BPM:
        bpm /= 2
    while bpm < MIN_BPM:
        bpm *= 2
    _, frames = librosa.beat.beat_track(
        onset_envelope=features.onsets, sr=ANALYSIS_RATE, hop_length=HOP_LENGTH, bpm=bpm, units="frames"
    )
    return _refine(features.onsets, frames) * HOP_LENGTH / ANALYSIS_RATE


def _refine(envelope: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Beat frames moved to the vertex of a parabola through the onset envelope around each (between frames)."""
    frames = np.asarray(frames, dtype=int)
    frames = frames[(frames >= 1) & (frames < len(envelope) - 1)]
    left, centre, right = envelope[frames - 1], envelope[frames], envelope[frames + 1]
    curvature = left - 2 * centre + right
    peaked = (centre >= left) & (centre >= right) & (curvature < 0)
    return frames + np.where(peaked, 0.5 * (left - right) / np.where(peaked, curvature, -1.0), 0.0)


def _fit_grid(beats: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The beats on a steady grid, the grid's tempo and their RMS distance from it as a fraction of a beat.

    The grid is the least-squares line of beat time against beat number; beats further than ``OUTLIER`` of a
    beat from it (the tracker places one at the very end of a track whatever is there) are dropped and the line
    refitted. Returns no beats when fewer than ``MIN_INLIERS`` of them fit, or the fit has not settled after
    three rounds.
    """
    index = np.arange(len(beats))
    for _ in range(3):
        slope, intercept = np.polyfit(index, beats, 1)
        residual = (beats - (slope * index + intercept)) / slope
        keep = np.abs(residual) <= OUTLIER
        if keep.all():
            return beats, 60.0 / float(slope), float(np.sqrt(np.mean(residual**2)))
        if keep.sum() < max(2, MIN_INLIERS * len(keep)):
            break
        beats, index = beats[keep], index[keep]
    return np.zeros(0), 60.0 / float(slope), float(np.sqrt(np.mean(residual**2)))


def _clarity(envelope: np.ndarray, bpm: float) -> float:
    """Autocorrelation of the onset envelope, less its running mean, one or two beats apart (the larger, best of
    three frames each): a take heard in half time repeats every two of the beats it was asked for."""
    from scipy.ndimage import uniform_filter1d

    detrended = envelope - uniform_filter1d(envelope, round(TREND_SECONDS * ANALYSIS_RATE / HOP_LENGTH), mode="nearest")
    power = float(detrended @ detrended)
    beat = 60.0 / bpm * ANALYSIS_RATE / HOP_LENGTH
    lags = [round(beats * beat) + shift for beats in (1, 2) for shift in (-1, 0, 1)]
    if power <= 0 or max(lags) >= len(detrended):
        return 0.0
    return max(float(detrended[:-lag] @ detrended[lag:]) / power for lag in lags)


def _at_beats(envelope: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """The largest value of a per-frame feature within one frame of each beat."""
    frames = np.round(beats * ANALYSIS_RATE / HOP_LENGTH).astype(int)
    padded = np.pad(envelope, 1)
    return np.max([padded[frames], padded[frames + 1], padded[frames + 2]], axis=0)


def _bar_phase(features: _Features, beats: np.ndarray) -> int:
    """Which of the first four beats is a downbeat: the phase whose beats score highest on accent, kick and bass,
    and harmonic change, each feature scaled by its mean so that none dominates by its units."""
    frames = np.round(beats * ANALYSIS_RATE / HOP_LENGTH).astype(int)
    change = np.zeros(len(beats))
    for i in range(1, len(beats) - 1):
        before = features.chroma[:, frames[i - 1] : frames[i]].mean(axis=1)
        after = features.chroma[:, frames[i] : frames[i + 1]].mean(axis=1)
        change[i] = 1.0 - before @ after / max(1e-9, float(np.linalg.norm(before) * np.linalg.norm(after)))
    scores = np.zeros(BEATS_PER_BAR)
    for feature in (_at_beats(features.onsets, beats), _at_beats(features.low_onsets, beats), change):
        if feature.mean() > 0:
            feature = feature / feature.mean()
            scores += [feature[phase::BEATS_PER_BAR].mean() for phase in range(BEATS_PER_BAR)]
    return int(np.argmax(scores))


def _key(mono: np.ndarray, rate: int) -> tuple[str | None, float]:
    """The Krumhansl-Schmuckler key of the track's chroma energy (its first 30 s, the melody chroma's window)
    and its correlation; no key below ``MIN_KEY_CORRELATION``."""
    from ..melody import estimate_key, pitch_profile

    profile = pitch_profile(mono, rate)
    if not profile.any():
        return None, 0.0
    key, correlation = estimate_key(profile)
    return (key if correlation >= MIN_KEY_CORRELATION else None), max(0.0, correlation)


def _note(tempo: str | None, key: str | None) -> str | None:
    """What could not be told, in words; None when tempo and key were both found."""
    parts = ([f"tempo: {tempo}"] if tempo else []) + ([] if key else ["key: no clear key"])
    return "; ".join(parts) or None


def check_sample_rate(rate: object) -> int:
    """``rate`` as a positive whole number of samples per second; refuses anything else."""
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise InvalidInputError(f"rate must be a positive whole number of samples per second, got {quoted(rate)}.")
    return int(rate)
