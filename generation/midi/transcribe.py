"""Notes from audio: a monophonic line (hum, bass, lead) with pYIN, chords per beat from chroma, drums by band.

No learned model ships with a permissive wheel that installs beside torch 2.13 and numpy 2 (basic-pitch wants an
old tensorflow, torchcrepe and pesto want torchaudio), so this is signal processing with librosa:

- **A line** (``transcribe_line``): librosa's probabilistic YIN gives a pitch and a voicing per 10 ms frame. The
  voiced frames are cut into notes where the pitch moves more than ``SPLIT_SEMITONES`` from the note's pitch so
  far and stays there, and where the level dips by ``DIP_DB`` between two peaks: a repeated note of the same pitch
  is sung as a new attack, which is the only thing that tells it from one long note. Pieces shorter than
  ``JOIN_SECONDS`` (a glide into a note, a wobble) join the note that follows. A note's pitch is the median of
  its frames, rounded, so vibrato and a slightly flat singer land on the intended semitone.
- **Chords** (``transcribe_chords``): chroma averaged between beats (or over half-second steps when there is no
  beat), matched to the 24 major and minor triads; the best path through those matches, where a change of chord
  costs ``CHORD_CHANGE_COST`` and "no chord" scores ``MIN_TRIAD_MATCH``, so a passing note on one beat does not
  rename the chord and noise has none.
- **Drums** (``transcribe_drums``): each of six bands less its running median (what sustains: notes), then
  onsets from the spectral flux of what is left; each onset's rise, less what is still there 140 ms on, is split
  into kick, snare and hi-hat by non-negative least squares against a band template of each (kick below 150 Hz,
  snare a body at 150-400 Hz plus noise up to 8 kHz, hi-hat above 4 kHz), so a kick and a hat struck together
  are both heard. An onset counts only where it stands ``DRUM_MIN_PROMINENCE`` times above its band's usual level.
- **A mix** (``transcribe_audio``): with Demucs stems, each part from its stem; without them, from
  band-limited parts of the mix: below ``BASS_TOP_HZ`` for the bass and the chords, above ``LEAD_BOTTOM_HZ``
  for the lead, the whole mix for the drums.

pYIN's cost grows with the square of its pitch bins (its Viterbi pass is dense), so it runs with quarter-tone
bins over each line's own range: 0.44 CPU seconds per 10 s of hum (``benchmarks/transcription.py``), where
librosa's default tenth-tone bins over 65-1000 Hz took 4.9 s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..audio.arrays import resample
from ..audio.tempo import TempoReport, measure_tempo
from ..errors import InvalidInputError
from .notes import HIHAT, KICK, PITCH_CLASSES, SNARE, Chord, Note, NoteTrack

LINE_RATE = 16_000  # Hz a melody or lead line is analysed at: its fifth harmonic at 1 kHz is well inside
BASS_RATE = 8_000  # Hz a bass line is analysed at: it has nothing to say above 4 kHz
HOP_SECONDS = 0.01  # one pitch frame every 10 ms: onsets are good to about a frame
PITCH_RESOLUTION = 0.25  # semitones per pYIN pitch bin (see the module docstring for the cost)
SPLIT_SEMITONES = 0.7  # a pitch this far from the note so far starts a new note (vibrato is about 0.15 either side)
MIN_SPLIT_SECONDS = 0.04  # ... if it stays that far for this long
DIP_DB = 6.0  # a level dip this deep below both neighbouring peaks is a new attack
DIP_REACH_SECONDS = 0.15  # the peaks are looked for this far either side of the dip
MIN_NOTE_SECONDS = 0.06  # a sound between rests shorter than this is no note
JOIN_SECONDS = 0.1  # a piece of a phrase shorter than this is a glide or a wobble: it joins the next note
SILENT_DB = -40.0  # frames this far below the loudest frame are not part of a note
CHORD_RATE = 22_050  # Hz chords and drums are analysed at
CHORD_FFT = 8_192  # 2.7 Hz bins at 22.05 kHz: semitones apart from C3 (7.8 Hz) up
CHORD_HOP = 2_048  # 93 ms between chroma frames
NO_BEAT_STEP = 0.5  # seconds per chord when the audio has no beat
CHORD_CHANGE_COST = 0.2  # a change of chord must win by this much template match (0..1) to be taken
MIN_TRIAD_MATCH = 0.6  # a step whose chroma matches its triad less than this (cosine) has no chord: noise gives 0.52
MIN_CHORD_SHARE = 0.02  # a beat with less than this share of the loudest beat's chroma energy is "N"
DRUM_FFT, DRUM_HOP = 1_024, 256  # 46 ms windows every 11.6 ms at 22.05 kHz
DRUM_BANDS = (20.0, 150.0, 400.0, 1_500.0, 4_000.0, 8_000.0, 11_025.0)  # Hz edges of the six drum bands
# Share of each drum's onset energy in each band (each column sums to 1): broad shapes, not fitted to one kit
DRUM_TEMPLATES = np.array(
    [
        [0.85, 0.03, 0.00],  # 20-150 Hz: the kick's body
        [0.13, 0.27, 0.00],  # 150-400 Hz: the kick's click, the snare's body
        [0.02, 0.08, 0.01],  # 400-1500 Hz
        [0.00, 0.20, 0.08],  # 1.5-4 kHz: the snare's noise
        [0.00, 0.25, 0.39],  # 4-8 kHz: hats and the snare's sizzle
        [0.00, 0.17, 0.52],  # 8-11 kHz: hats
    ]
)
DRUM_KEYS = (KICK, SNARE, HIHAT)  # the templates' columns
DECAY_FRAMES = 12  # 140 ms: a drum has died away this long after its onset, a note has not
SUSTAIN_FRAMES = 15  # 175 ms: each band's running median over this long is the sustained sound, taken off
DRUM_WAIT_FRAMES = 4  # 46 ms: onsets closer than this are one hit
DRUM_MIN_SHARE = 0.2  # a drum whose part of an onset is below this share of its typical hit is not there
DRUM_FLOOR_DB = -45.0  # onsets this far below the loudest are noise
DRUM_MIN_PROMINENCE = 3.0  # a hit rises (and dies away) in some band by this many times the band's usual level:
# white noise's bumps reach 1.7 times; on the benchmark's mix this keeps kick and hi-hat F1 at 0.69 and 0.73
BAND_FLOOR = 1e-4  # a band's usual level is taken as at least this share of the whole's (-40 dB), so a nearly
# empty band does not turn faint spill from another band into a hit
DRUM_PAD_SECONDS = 0.05  # silence put before the audio, so a hit at 0 s has a rise to be seen
DRUM_NOTE_SECONDS = 0.1  # the length written for a drum hit
BASS_TOP_HZ = 300.0  # the band-limited bass: the mix's harmonic part below this
LEAD_BOTTOM_HZ = 250.0  # the band-limited lead: the mix's harmonic part above this
NOTE_NO_STEMS = (
    "Bass and lead were transcribed from band-limited parts of the mix (Demucs stems were not available), "
    "so they may pick up notes from other instruments."
)


@dataclass(frozen=True)
class LineRange:
    """Where a monophonic line lives: its lowest and highest fundamental, and the rate it is analysed at."""

    low_hz: float
    high_hz: float
    rate: int
    frame_seconds: float  # pYIN's window: at least two periods of the lowest note


HUM = LineRange(70.0, 1_050.0, LINE_RATE, 0.064)  # C#2 to C6: any voice
BASS = LineRange(38.0, 330.0, BASS_RATE, 0.128)  # D#1 to E4


@dataclass(frozen=True)
class Transcription:
    """Everything heard in a piece of audio: its parts as note tracks, its chords, and its tempo and key."""

    tracks: tuple[NoteTrack, ...]  # only the parts where something was heard
    chords: tuple[Chord, ...]
    tempo: TempoReport
    seconds: float  # the audio's length
    notes: tuple[str, ...] = field(default=())  # what the person should know about how it was made

    def track(self, name: str) -> NoteTrack | None:
        return next((t for t in self.tracks if t.name == name), None)

    def describe(self) -> str:
        """The notes in words, a line per part, for a person."""
        from .notes import DRUM_NAMES, describe_notes

        lines = [f"{self.seconds:.1f} s; {self.tempo.describe()}."]
        for track in self.tracks:
            if track.drums:
                counts = {name: sum(n.pitch == key for n in track.notes) for key, name in DRUM_NAMES.items()}
                hits = ", ".join(f"{count} {name}" for name, count in counts.items() if count)
                lines.append(f"drums: {hits}.")
            else:
                lines.append(f"{track.name} ({len(track.notes)} notes): {describe_notes(track.notes)}.")
        named = [c.name for c in self.chords if c.name != "N"]
        if named:
            lines.append("chords: " + " | ".join(_runs(named)) + ".")
        if not self.tracks and not named:
            lines.append("No notes heard: the audio has no clear pitch or beat.")
        return "\n".join([*lines, *self.notes])


# -- A monophonic line -------------------------------------------------------------------------------------------


def transcribe_line(samples: np.ndarray, rate: int, line: LineRange = HUM) -> tuple[Note, ...]:
    """The notes of one monophonic voice (a hum, a bass line, a lead) in mono ``samples`` at ``rate`` Hz."""
    import librosa

    # 1. Pitch and voicing every HOP_SECONDS
    audio = _mono(samples, rate, line.rate)
    hop = round(HOP_SECONDS * line.rate)
    frame = 1 << int(np.ceil(np.log2(line.frame_seconds * line.rate)))
    if len(audio) < frame:
        return ()
    f0, voiced, _ = librosa.pyin(
        audio,
        fmin=line.low_hz,
        fmax=line.high_hz,
        sr=line.rate,
        frame_length=frame,
        hop_length=hop,
        resolution=PITCH_RESOLUTION,
    )
    level = librosa.amplitude_to_db(librosa.feature.rms(y=audio, frame_length=frame // 2, hop_length=hop)[0])
    count = min(len(f0), len(level))
    f0, voiced, level = f0[:count], voiced[:count], level[:count]
    voiced &= np.isfinite(f0) & (level >= level.max() + SILENT_DB)
    pitch = np.where(voiced, 69.0 + 12.0 * np.log2(np.where(voiced, f0, 440.0) / 440.0), np.nan)

    # 2. Voiced runs, cut at pitch changes and level dips, short pieces joined to the next
    seconds = hop / line.rate
    notes: list[Note] = []
    for start, stop in _runs_of(voiced):
        cuts = sorted({start, stop, *_pitch_cuts(pitch, start, stop, seconds), *_dips(level, start, stop, seconds)})
        pieces = _join_short(list(zip(cuts[:-1], cuts[1:], strict=True)), round(JOIN_SECONDS / seconds))
        for a, b in pieces:
            if (b - a) * seconds < MIN_NOTE_SECONDS:
                continue
            velocity = int(np.clip(127 + 2 * (level[a:b].max() - level.max()), 20, 127))
            notes.append(Note(int(np.round(np.median(pitch[a:b]))), a * seconds, b * seconds, velocity))
    return tuple(notes)


def _runs_of(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def _pitch_cuts(pitch: np.ndarray, start: int, stop: int, seconds: float) -> list[int]:
    """Frames where the pitch leaves the current note's pitch (median so far) and stays away.

    A glide into the next note cuts once, where it leaves; the new note's pitch is measured from where the
    pitch settles (moves less than ``SPLIT_SEMITONES`` over ``MIN_SPLIT_SECONDS``).
    """
    hold = max(1, round(MIN_SPLIT_SECONDS / seconds))
    ahead = np.concatenate([pitch[hold:], np.full(hold, np.nan)])
    settled = np.abs(ahead - pitch) < SPLIT_SEMITONES
    cuts, begin, i = [], start, start + 1
    while i < stop:
        reference = np.median(pitch[max(begin, i - 15) : i])
        if abs(pitch[i] - reference) > SPLIT_SEMITONES and i + hold <= stop:
            if (np.abs(pitch[i : i + hold] - reference) > SPLIT_SEMITONES).all():
                cuts.append(i)
                begin = i
                while begin < stop - 1 and not settled[begin]:
                    begin += 1
                i = begin + 1
                continue
        i += 1
    return cuts


def _dips(level: np.ndarray, start: int, stop: int, seconds: float) -> list[int]:
    """Frames of level minima at least DIP_DB below the highest level on each side within DIP_REACH_SECONDS."""
    reach = max(1, round(DIP_REACH_SECONDS / seconds))
    dips = []
    for i in range(start + 1, stop - 1):
        if level[i] > level[i - 1] or level[i] > level[i + 1]:
            continue
        before = level[max(start, i - reach) : i].max()
        after = level[i + 1 : min(stop, i + 1 + reach)].max()
        if min(before, after) - level[i] >= DIP_DB and (not dips or i - dips[-1] > 2):
            dips.append(i)
    return dips


def _join_short(pieces: list[tuple[int, int]], shortest: int) -> list[tuple[int, int]]:
    """Pieces shorter than ``shortest`` frames joined to the piece after them (the last one to the piece before)."""
    joined: list[tuple[int, int]] = []
    carry = None
    for a, b in pieces:
        a = carry if carry is not None else a
        carry = None
        if b - a < shortest:
            carry = a
            continue
        joined.append((a, b))
    if carry is not None and joined:
        joined[-1] = (joined[-1][0], pieces[-1][1])
    elif carry is not None:
        joined.append((carry, pieces[-1][1]))
    return joined


# -- Chords ------------------------------------------------------------------------------------------------------


def transcribe_chords(samples: np.ndarray, rate: int, beats: tuple[float, ...] | np.ndarray = ()) -> tuple[Chord, ...]:
    """A major or minor triad (or "N") per beat, or per ``NO_BEAT_STEP`` when ``beats`` is empty."""
    import librosa

    audio = _mono(samples, rate, CHORD_RATE)
    seconds = len(audio) / CHORD_RATE
    power = np.abs(librosa.stft(audio, n_fft=CHORD_FFT, hop_length=CHORD_HOP)) ** 2
    chroma = librosa.feature.chroma_stft(S=power, sr=CHORD_RATE, n_fft=CHORD_FFT, norm=None, tuning=0.0)
    times = np.arange(chroma.shape[1]) * CHORD_HOP / CHORD_RATE
    edges = _chord_edges(np.asarray(beats, dtype=float), seconds)
    sums = [chroma[:, (times >= a) & (times < b)].mean(axis=1) if ((times >= a) & (times < b)).any() else
            np.zeros(12) for a, b in zip(edges[:-1], edges[1:], strict=True)]  # fmt: skip
    loudest = max((float(s.sum()) for s in sums), default=0.0)
    names = _smoothed_triads(sums, loudest)
    chords = []
    for a, b, best in zip(edges[:-1], edges[1:], names, strict=True):
        if best < 0:
            chords.append(Chord("N", float(a), float(b), ()))
            continue
        root, minor = best % 12, best >= 12
        base = 48 + root
        name = PITCH_CLASSES[root] + ("m" if minor else "")
        chords.append(Chord(name, float(a), float(b), (base, base + (3 if minor else 4), base + 7)))
    return tuple(chords)


def _smoothed_triads(sums: list[np.ndarray], loudest: float) -> list[int]:
    """The triad (0-11 major, 12-23 minor, -1 none) of each step: the best path through the steps' template
    scores, "no chord" scoring ``MIN_TRIAD_MATCH``, where each change costs ``CHORD_CHANGE_COST``, so a passing
    bass note or melody note on one beat does not rename the chord."""
    if loudest <= 0:
        return [-1] * len(sums)
    templates = _triad_templates()
    scores = np.array([templates @ (s / max(np.linalg.norm(s), 1e-12)) for s in sums])  # [steps, 24]
    scores = np.concatenate([scores, np.full((len(sums), 1), MIN_TRIAD_MATCH)], axis=1)  # the last: no chord
    states = scores.shape[1]
    total, back = scores[0].copy(), []
    for row in scores[1:]:
        stay, switch = total, total.max() - CHORD_CHANGE_COST
        back.append(np.where(stay >= switch, np.arange(states), int(total.argmax())))
        total = np.maximum(stay, switch) + row
    path = [int(total.argmax())]
    for pointers in reversed(back):
        path.append(int(pointers[path[-1]]))
    path.reverse()
    return [
        best if best < states - 1 and s.sum() >= MIN_CHORD_SHARE * loudest else -1
        for best, s in zip(path, sums, strict=True)
    ]


def _chord_edges(beats: np.ndarray, seconds: float) -> np.ndarray:
    """Chord boundaries: the beat grid carried on at its own pace to both ends of the audio (a tracker leaves out
    the first and last beats it is unsure of), or a fixed step with no beats."""
    if len(beats) >= 2:
        step = float(np.median(np.diff(beats)))
        before = beats[0] - step * np.arange(int(beats[0] / step), 0, -1)
        after = beats[-1] + step * np.arange(1, int((seconds - beats[-1]) / step) + 1)
        grid = np.concatenate([before, beats, after])
    else:
        grid = np.arange(NO_BEAT_STEP, seconds, NO_BEAT_STEP)
    inside = grid[(grid > 0.05) & (grid < seconds - 0.05)]
    return np.concatenate([[0.0], inside, [seconds]])


def _triad_templates() -> np.ndarray:
    """24 unit vectors: the 12 major triads, then the 12 minor ones; the root weighs a little more."""
    rows = []
    for third in (4, 3):
        for root in range(12):
            row = np.zeros(12)
            row[[root, (root + third) % 12, (root + 7) % 12]] = (1.2, 1.0, 1.0)
            rows.append(row / np.linalg.norm(row))
    return np.array(rows)


def chord_names(chords: tuple[Chord, ...]) -> list[str]:
    """The chord names with repeats folded: ["C", "Am", "F", "G"]."""
    return _runs([c.name for c in chords])


def _runs(names: list[str]) -> list[str]:
    return [name for i, name in enumerate(names) if i == 0 or names[i - 1] != name]


# -- Drums -------------------------------------------------------------------------------------------------------


def transcribe_drums(samples: np.ndarray, rate: int) -> tuple[Note, ...]:
    """Kick, snare and hi-hat hits (General MIDI keys 36, 38, 42) in mono ``samples`` at ``rate`` Hz."""
    import librosa
    from scipy.ndimage import median_filter
    from scipy.optimize import nnls

    # 1. Band energies and a band-wise spectral flux
    audio = _mono(samples, rate, CHORD_RATE)
    audio = np.concatenate([np.zeros(round(DRUM_PAD_SECONDS * CHORD_RATE), np.float32), audio])
    power = np.abs(librosa.stft(audio, n_fft=DRUM_FFT, hop_length=DRUM_HOP)) ** 2
    hz = librosa.fft_frequencies(sr=CHORD_RATE, n_fft=DRUM_FFT)
    edges = zip(DRUM_BANDS[:-1], DRUM_BANDS[1:], strict=True)
    bands = np.stack([power[(hz >= lo) & (hz < hi)].sum(axis=0) for lo, hi in edges])
    transient = np.maximum(bands - median_filter(bands, size=(1, SUSTAIN_FRAMES), mode="nearest"), 0.0)
    compressed = np.log1p(1e3 * transient / max(transient.max(), 1e-12))
    flux = np.maximum(np.diff(compressed, axis=1, prepend=compressed[:, :1]), 0.0).sum(axis=0)
    if not flux.any():
        return ()

    # 2. Onsets, and how much each band rose at each
    frames = librosa.onset.onset_detect(
        onset_envelope=flux, sr=CHORD_RATE, hop_length=DRUM_HOP, units="frames", wait=DRUM_WAIT_FRAMES
    )
    rises = []
    for f in frames:
        before = bands[:, max(0, f - 3) : max(1, f - 1)].min(axis=1)
        later = bands[:, f + DECAY_FRAMES : f + DECAY_FRAMES + 2]
        later = later.mean(axis=1) if later.size else 0.0
        peak = bands[:, f : f + 4].max(axis=1)
        rises.append(np.maximum(peak - np.maximum(before, later), 0.0))  # a note that sustains is no drum
    if not rises:
        return ()
    rises = np.array(rises)
    # each band's usual level (held notes, steady noise), at least BAND_FLOOR of the whole's: a hit stands out of it
    background = np.maximum(np.median(bands, axis=1), BAND_FLOOR * float(np.median(bands.sum(axis=0))))
    loud = rises.sum(axis=1) >= rises.sum(axis=1).max() * 10 ** (DRUM_FLOOR_DB / 10)
    loud &= (rises / np.maximum(background, 1e-20)).max(axis=1) >= DRUM_MIN_PROMINENCE

    # 3. Each onset's rise as kick + snare + hat, each band weighted by how much it usually rises (so a band full
    # of other instruments' notes counts less); a drum is there if its part is a fair share of its usual hit
    scale = np.maximum(np.percentile(rises, 75, axis=0), 1e-12)
    weights = np.array([nnls(DRUM_TEMPLATES / scale[:, None], rise / scale)[0] for rise in rises])
    typical = np.array([np.percentile(w[w > 0], 90) if (w > 0).any() else 0.0 for w in weights.T])
    hits = []
    for f, row, keep in zip(frames, weights, loud, strict=True):
        start = max(0.0, float(librosa.frames_to_time(f, sr=CHORD_RATE, hop_length=DRUM_HOP)) - DRUM_PAD_SECONDS)
        for key, weight, usual in zip(DRUM_KEYS, row, typical, strict=True):
            if keep and usual > 0 and weight >= DRUM_MIN_SHARE * usual:
                velocity = int(np.clip(40 + 87 * weight / usual, 1, 127))
                hits.append(Note(key, start, start + DRUM_NOTE_SECONDS, velocity))
    return tuple(hits)


# -- A whole track -----------------------------------------------------------------------------------------------


def transcribe_audio(
    audio: np.ndarray,
    rate: int,
    *,
    stems: Mapping[str, np.ndarray] | None = None,
    hint_bpm: float | None = None,
    tempo: TempoReport | None = None,
) -> Transcription:
    """Bass, lead, chords and drums of ``[channels, samples]`` (or mono) audio at ``rate`` Hz.

    ``stems`` (Demucs' drums, bass, other and vocals at ``rate``) give each part its own stem; without them the
    parts come from band-limited pieces of the mix (see the module docstring) and the notes say so.
    """
    mono = np.asarray(audio, dtype=np.float32)
    mono = mono.mean(axis=0) if mono.ndim == 2 else mono
    if mono.ndim != 1 or mono.size == 0 or not np.isfinite(mono).all():
        raise InvalidInputError(f"Audio to transcribe must be finite samples, got shape {np.shape(audio)}.")
    tempo = tempo or measure_tempo(mono[None, :], rate, hint_bpm=hint_bpm)
    notes: tuple[str, ...] = ()
    if stems:
        parts = {
            "bass": _stem(stems, ("bass",), mono),
            "lead": _stem(stems, ("vocals", "other", "guitar", "piano"), mono),
            "drums": _stem(stems, ("drums",), mono),
            "harmony": _stem(stems, ("bass", "other", "guitar", "piano"), mono),
        }
    else:
        parts = split_bands(mono, rate)
        notes = (NOTE_NO_STEMS,)
    tracks = [
        NoteTrack("lead", transcribe_line(parts["lead"], rate, HUM), program=81),
        NoteTrack("bass", transcribe_line(parts["bass"], rate, BASS), program=33),
        NoteTrack("drums", transcribe_drums(parts["drums"], rate), drums=True),
    ]
    chords = transcribe_chords(parts["harmony"], rate, tempo.beats)
    return Transcription(
        tracks=tuple(t for t in tracks if t.notes),
        chords=chords,
        tempo=tempo,
        seconds=len(mono) / rate,
        notes=notes,
    )


def transcribe_hum(samples: np.ndarray, rate: int) -> tuple[Note, ...]:
    """The notes of a hum; refuses a recording where no note is heard."""
    notes = transcribe_line(samples, rate, HUM)
    if not notes:
        raise InvalidInputError(
            "No notes heard in the melody: it has no steady pitch. Hum or sing the tune clearly, "
            "or upload a recording of one instrument playing it."
        )
    return notes


def split_bands(mono: np.ndarray, rate: int) -> dict[str, np.ndarray]:
    """A mix's parts without Demucs, by band: "bass" and "harmony" below ``BASS_TOP_HZ``, "lead" above
    ``LEAD_BOTTOM_HZ``, "drums" the whole mix (``transcribe_drums`` keeps only what dies away quickly)."""
    from scipy.signal import butter, sosfiltfilt

    mono = np.asarray(mono, dtype=np.float32)
    low = sosfiltfilt(butter(6, BASS_TOP_HZ, "lowpass", fs=rate, output="sos"), mono).astype(np.float32)
    high = sosfiltfilt(butter(6, LEAD_BOTTOM_HZ, "highpass", fs=rate, output="sos"), mono).astype(np.float32)
    return {"bass": low, "lead": high, "harmony": low, "drums": mono}


def _stem(stems: Mapping[str, np.ndarray], names: tuple[str, ...], like: np.ndarray) -> np.ndarray:
    """The mono sum of the named stems that are there (silence when none is)."""
    found = [np.asarray(stems[n], np.float32) for n in names if n in stems]
    if not found:
        return np.zeros_like(like)
    return sum(s.mean(axis=0) if s.ndim == 2 else s for s in found)


def _mono(samples: np.ndarray, rate: int, to_rate: int) -> np.ndarray:
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=0)
    if samples.ndim != 1 or not np.isfinite(samples).all():
        raise InvalidInputError(f"Audio to transcribe must be finite mono samples, got shape {samples.shape}.")
    return resample(samples, int(rate), to_rate)
