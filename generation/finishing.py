"""One take from generated audio to the finished mix: join an extend, exact tempo and loop, loudness, stems.

The order matters. An extend is joined first, so tempo and loudness see the whole track. The tempo is
measured before anything changes the level. Loudness runs on the whole take before a loop is cut: its
limiter varies over time, and cutting first would leave a step in level at the wrap. A loop is cut at the
output rate, so its length is exact to the sample there (cutting at 32 kHz and resampling would miss by one
sample for about a third of the tempos).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from .audio.arrays import resample
from .audio.loops import LOOP_BARS, cut_loop, loop_start, material_seconds, most_bars, stretch_to_bpm
from .audio.loudness import LoudnessReport, normalise_loudness
from .audio.tempo import TempoReport, check_bpm, measure_tempo
from .editing.keys import Key, land_in_key
from .errors import InvalidInputError, quoted

JOIN_FADE_SECONDS = 0.02  # an extend's crossfade from the given audio into the codec's own version of its end
# Measures a take's tempo and key beside its loudness (see finish_take): two threads serve two requests finishing
# at once, a third would only queue for the same two cores.
_BESIDE = ThreadPoolExecutor(max_workers=2, thread_name_prefix="moodtape-measure")

StemSplitter = Callable[[np.ndarray, int, float], tuple[dict[str, np.ndarray], str | None]]


@dataclass(frozen=True)
class TempoRequest:
    """What a request asks of the tempo: an exact BPM, a loop of whole bars, or neither (measure only)."""

    bpm: float | None = None  # 40..240: the track is stretched to exactly this tempo
    loop: bool = False  # cut into a whole number of bars that repeat without a click (needs a tempo)
    bars: int | None = None  # one of LOOP_BARS; None takes the most that fit the duration

    @classmethod
    def from_request(cls, bpm: object, loop: object, bars: object, preset_bpm: int | None) -> TempoRequest:
        """From UI or API values; a loop with no BPM takes the preset's typical one."""
        if loop is not None and not isinstance(loop, bool):
            raise InvalidInputError(f"loop must be true or false, got {quoted(loop)}.")
        bpm = None if bpm in (None, "", 0) and bpm is not False else bpm
        if bpm is None and loop and preset_bpm is not None:
            bpm = preset_bpm
        if bars in (None, "", 0) and bars is not False:
            bars = None
        elif isinstance(bars, float) and bars.is_integer():
            bars = int(bars)
        if bars is not None and (isinstance(bars, bool) or bars not in LOOP_BARS):
            raise InvalidInputError(f"bars must be one of {', '.join(map(str, LOOP_BARS))}, got {quoted(bars)}.")
        if bpm is not None:
            bpm = check_bpm(bpm)
        if loop and bpm is None:
            raise InvalidInputError("A loop needs a tempo: give bpm (40 to 240), or pick a preset, which has one.")
        if bars is not None and not loop:
            raise InvalidInputError("bars sets a loop's length: set loop to true as well, or leave bars out.")
        return cls(bpm=bpm, loop=bool(loop), bars=bars)

    def prompt_for(self, prompt: str) -> str:
        """The prompt that says the tempo, as AudioCraft Plus does; unchanged without a BPM."""
        if self.bpm is None:
            return prompt
        said = f"{self.bpm:g} bpm"
        if prompt.endswith(said):  # a replayed recipe's prompt says it already
            return prompt
        return f"{prompt}, {said}" if prompt else said

    def bars_for(self, duration: float) -> int:
        """The loop's bars: as asked, or the most that fit ``duration``."""
        assert self.bpm is not None
        return self.bars if self.bars is not None else most_bars(duration, self.bpm)

    def seconds_to_generate(self, duration: float) -> float:
        """Seconds to ask the model for: a loop needs a little more than itself, to cut at a downbeat."""
        if not self.loop:
            return duration
        return max(duration, round(material_seconds(self.bpm, self.bars_for(duration)), 2))


@dataclass(frozen=True)
class FinishedTake:
    """One take ready to write: the mix at ``sample_rate``, its stems, and what was done to it."""

    audio: np.ndarray  # [channels, samples] float32
    sample_rate: int  # the model's rate, or the export rate for a loop (already resampled)
    tempo: TempoReport  # as measured, or at the exact BPM after stretching
    loudness: LoudnessReport
    stems: dict[str, np.ndarray] = field(default_factory=dict)
    tempo_record: dict = field(default_factory=dict)  # for the recipe: measured, asked, speed, loop
    notes: tuple[str, ...] = ()
    key_record: dict | None = None  # for the recipe: the key asked for, measured, the semitones moved, in words


def join_extend(original: np.ndarray, lead_in: np.ndarray, new: np.ndarray, rate: int) -> np.ndarray:
    """The given audio, then the new audio, with a short crossfade inside the given audio's last moments.

    ``lead_in`` is the codec's own version of the given audio's end, which the new audio grows out of; the
    crossfade hands over to it in the last ``JOIN_FADE_SECONDS``, so the result is ``original`` sample for
    sample up to there and exactly ``len(original) + len(new)`` samples long. Mono and stereo join as stereo:
    a stereo original keeps both its channels, and mono audio plays in both.
    """
    fade = min(round(JOIN_FADE_SECONDS * rate), original.shape[-1], lead_in.shape[-1])
    channels = max(original.shape[0], new.shape[0])
    original, lead_in, new = (np.repeat(a, channels // a.shape[0], axis=0) for a in (original, lead_in, new))
    head = original.copy()
    if fade:
        # linear: the two are the same audio (the given and the codec's version of it), so their gains add to 1
        head[:, -fade:] = crossfade(original[:, -fade:], lead_in[:, -fade:], equal_power=False)
    return np.concatenate([head, new], axis=-1).astype(np.float32)


def crossfade(outgoing: np.ndarray, incoming: np.ndarray, *, equal_power: bool = True) -> np.ndarray:
    """``outgoing`` handing over to ``incoming`` (both ``[channels, samples]``, one shape) over their length.

    The first sample is ``outgoing``'s own, so it joins what came before without a step. Equal-power gains
    (cosine and sine) keep the level of two unrelated sounds steady; linear ones suit two versions of one sound.
    """
    ramp = np.linspace(0.0, 1.0, outgoing.shape[-1], endpoint=False, dtype=np.float32)
    if equal_power:
        quarter = ramp * np.float32(np.pi / 2)
        return (outgoing * np.cos(quarter) + incoming * np.sin(quarter)).astype(np.float32)
    return (outgoing * (1 - ramp) + incoming * ramp).astype(np.float32)


def finish_take(
    audio: np.ndarray,
    rate: int,
    tempo: TempoRequest,
    *,
    loudness_lufs: float | None,
    out_rate: int | None,
    duration: float,
    split_stems: StemSplitter | None = None,
    key: Key | None = None,
    length: float | None = None,
) -> FinishedTake:
    """Measure the tempo and key, move into the asked key, stretch to the asked BPM, set the loudness, cut a loop
    (or to exactly ``length`` seconds at the output rate), split stems.

    The key moves the whole take, an extend's given audio too, so that it lands in one key.
    """
    notes: list[str] = []
    # 1. Tempo and key, as generated; the smallest move into the key asked for; then the exact BPM asked for. With
    # neither asked for, nothing before the loudness needs the measurement: it runs beside step 2 on another core
    # (a request's cores are free once its audio is made), which takes its 0.26 s off a 10 s take's wait.
    measuring = _BESIDE.submit(measure_tempo, audio, rate, hint_bpm=tempo.bpm)
    waits = key is not None or tempo.bpm is not None
    measured = measuring.result() if waits else None
    landing = land_in_key(audio, rate, key, measured.key) if key is not None else None
    if landing is not None:  # moving the pitch keeps the timing, so the beats measured still hold
        audio, measured = landing.audio, replace(measured, key=landing.result)
    stretched = stretch_to_bpm(audio, rate, measured, tempo.bpm) if tempo.bpm is not None else None
    before_level = stretched.audio if stretched is not None else audio
    if stretched is not None and stretched.note:
        notes.append(f"Tempo: {stretched.note}.")

    # 2. Loudness over the whole take, one gain (true peak kept under -1 dBTP)
    levelled, loudness = normalise_loudness(before_level, rate, loudness_lufs)
    if loudness.note:
        notes.append(loudness.note)
    measured = measuring.result() if measured is None else measured
    record: dict = {"measured_bpm": _rounded(measured.bpm), "key": measured.key, "described": measured.describe()}
    report = measured
    if stretched is not None:
        report = stretched.tempo
        record |= {"bpm": tempo.bpm, "speed": round(stretched.speed, 5), "stretched": stretched.stretched}

    # 3. A loop, or an exact length: resampled to the output rate first, then cut there to the exact sample
    cut = tempo.loop or length is not None
    if cut:
        rate_out = out_rate or rate
        levelled = resample(levelled, rate, rate_out)
        if tempo.loop:
            assert tempo.bpm is not None
            bars = tempo.bars_for(duration)
            start = loop_start(report, levelled.shape[-1] / rate_out, tempo.bpm, bars)
            levelled = cut_loop(levelled, rate_out, tempo.bpm, bars, start)
            record |= {"loop": {"bars": bars, "start_seconds": round(start, 4), "samples": levelled.shape[-1]}}
        else:
            assert length is not None and levelled.shape[-1] >= round(length * rate_out), "too little to cut"
            levelled = levelled[:, : round(length * rate_out)]
        rate = rate_out

    # 4. Stems of the finished mix, at its gain
    stems: dict[str, np.ndarray] = {}
    if split_stems is not None:
        source = levelled if cut else before_level
        gain = 0.0 if cut else loudness.gain_db  # a cut take is cut from the levelled mix already
        stems, stems_note = split_stems(source, rate, gain)
        if stems_note:
            notes.append(stems_note)
    key_record = landing.record() if landing is not None else None
    return FinishedTake(levelled, rate, report, loudness, stems, record, tuple(notes), key_record)


def _rounded(bpm: float | None) -> float | None:
    return None if bpm is None else round(bpm, 2)
