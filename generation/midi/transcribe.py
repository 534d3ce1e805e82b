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
- **Drums** (``transcribe_drums``): a drum rises and dies away within about 100 ms; a note that starts with it
  goes on sounding. So each hit is a rise (the loudest of the next 4 frames over the quietest of the 3 before)
  that has fallen to ``DECAY_SHARE`` of its peak 70-128 ms later, timed at the first frame of its attack. Below
  400 Hz this is judged frequency bin by bin, so a kick struck over a held bass note is seen in the bins the bass
  leaves free and the bass note itself is not; above 4 kHz band by band, where pitched parts have little. Each
  drum has its own curve and peaks, each standing ``DRUM_MIN_PROMINENCE`` times above its band's quiet level and
  a share of the drum's typical hit: the kick below 150 Hz (not just a snare's body at 150-400 Hz reaching
  down), the snare at 4-8 kHz (its noise as strong there as above 8 kHz: ``SNARE_TILT``), the hi-hat above
  8 kHz (a hat struck with a snare only where the top band is brighter than the snare's own). With fewer than
  ``MIN_UPPER_HITS`` snares and hats no full kit plays, and what rose below 150 Hz may be a bass or piano's low
  note: then a kick counts only where the whole band below 150 Hz, not just some of its bins, dies away to
  ``LONE_KICK_DECAY`` of its peak, and at least ``MIN_LONE_KICKS`` do. A kick-only loop is heard (kick F1 1.0
  at 84-128 BPM); a hum, piano chords and a bass line give none; kicks over a held bass line with no snare or
  hat are not heard (the bass keeps the band up).
- **A mix** (``transcribe_audio``): with Demucs stems, each part from its stem; without them, from
  band-limited parts of the mix: below ``BASS_TOP_HZ`` for the bass and the chords, above ``LEAD_BOTTOM_HZ``
  for the lead, the whole mix for the drums (on the benchmark's six mixes, three patterns at 84-128 BPM: snare F1
  0.94-1.0, hi-hat 0.89-1.0, kick 0.69-0.95; the kick shares its band with the bass, and a kick struck with a
  snare while a bass note rings adds too little to that band to be seen: most of the kicks the dance mix misses).

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
KICK_BAND, SNARE_BAND, HAT_BAND = 0, 4, 5  # 20-150 Hz, 4-8 kHz, 8-11 kHz: where each drum is looked for
BEFORE_FRAMES, PEAK_FRAMES = 3, 4  # a rise: the loudest of the 4 frames from t over the quietest of the 3 before
LATER_FRAMES = (6, 11)  # 70-128 ms on: a hit has died away by then (even with a hat every 16th at 128 BPM)
DECAY_SHARE = 0.4  # ... to this share of its peak or less: a held bass note keeps 0.7 or more, a kick under 0.1
DRUM_WAIT_FRAMES = 4  # 46 ms: peaks closer than this are one hit
DRUM_MIN_PROMINENCE = 3.0  # a hit rises by this many times its band's quiet level (the 25th percentile)
DRUM_MIN_SHARE = 0.2  # ... and by at least this share of the drum's typical hit (the 90th percentile)
KICK_MIN_SHARE = 0.35  # the kick's band also holds the bass: a kick needs a larger share of a typical kick
KICK_OVER_BODY = 0.25  # a kick rises below 150 Hz by at least this share of its rise at 150-400 Hz (a snare: 0.1)
SNARE_TILT = 1.3  # a snare's noise rises at 4-8 kHz at least this many times its rise above 8 kHz (a hat's: 0.8)
HAT_OVER_SNARE = 1.3  # a hat struck with a snare shows as a top band this much brighter than the snare's own
ONSET_SHARE = 0.5  # a hit starts at the first frame its band rises by this share of its steepest rise
PLATEAU_SHARE, PLATEAU_FRAMES = 0.3, 8  # a kick's curve at this share of its peak or more, up to 93 ms before it:
# the same hit (the kick's attack is looked for from there; see _kick_attack_window)
MIN_UPPER_HITS = 4  # fewer snares and hats than this: no full kit is playing, so a kick must stand alone:
MIN_LONE_KICKS = 4  # ... at least this many kicks, each after which the whole band below 150 Hz (not bin by bin)
LONE_KICK_DECAY = 0.1  # ... has died to this share of its peak: a kick's to under 0.1, a held bass note's 0.7
BAND_FLOOR = 1e-4  # a band's quiet level is taken as at least this share of the whole's (-40 dB), so a nearly
# empty band does not turn faint spill from another band into a hit
SILENCE_FLOOR = 3e-6  # ... and at least this share of the loudest frame's (-55 dB), so a kit that leaves silence
# between hits (a kick-only loop) does not turn a kick's faint spill above 4 kHz (-60 dB) into snares and hats
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

    # 1. Power per frequency bin and per band; each band's quiet level
    audio = _mono(samples, rate, CHORD_RATE)
    audio = np.concatenate([np.zeros(round(DRUM_PAD_SECONDS * CHORD_RATE), np.float32), audio])
    power = np.abs(librosa.stft(audio, n_fft=DRUM_FFT, hop_length=DRUM_HOP)) ** 2
    hz = librosa.fft_frequencies(sr=CHORD_RATE, n_fft=DRUM_FFT)
    masks = [(hz >= lo) & (hz < hi) for lo, hi in zip(DRUM_BANDS[:-1], DRUM_BANDS[1:], strict=True)]
    bands = np.stack([power[m].sum(axis=0) for m in masks])
    whole = float(np.median(bands.sum(axis=0)))
    if whole <= 0 and not bands.any():
        return ()
    loudest = float(bands.sum(axis=0).max())
    quiet = np.maximum(np.percentile(bands, 25, axis=1), max(BAND_FLOOR * whole, SILENCE_FLOOR * loudest)) + 1e-20

    # 2. What rose and died away: bin by bin below 400 Hz (a bass or piano note holds its own bins), band by band
    # above (nothing else there starts and stops that fast)
    low = _decayed_rise(power[masks[0] | masks[1]])
    kick_bins = int(masks[0].sum())
    body, below = low[kick_bins:].sum(axis=0), low[:kick_bins].sum(axis=0)
    rise = _decayed_rise(bands)

    # 3. Each drum's curve and its peaks: the kick low and heavier than a snare's body; the snare's noise as strong
    # at 4-8 kHz as above; the hat's top band
    kick = np.where(below >= KICK_OVER_BODY * body, below, 0.0)
    kicks = _hits(kick, DRUM_MIN_PROMINENCE * max(float(np.median(below)), 1e-3 * quiet[KICK_BAND]), KICK_MIN_SHARE)
    snare = np.where(rise[SNARE_BAND] >= SNARE_TILT * rise[HAT_BAND], rise[SNARE_BAND] / quiet[SNARE_BAND], 0.0)
    snares = _hits(snare, DRUM_MIN_PROMINENCE, DRUM_MIN_SHARE)
    hat = rise[HAT_BAND] / quiet[HAT_BAND]
    with_snare = np.array([len(snares) > 0 and np.abs(snares - f).min() <= DRUM_WAIT_FRAMES for f in range(len(hat))])
    hats = _hits(hat, DRUM_MIN_PROMINENCE, DRUM_MIN_SHARE, typical_of=~with_snare)
    if len(snares) and len(hats):  # a hat under a snare only where the top band is brighter than the snare's own
        tilt = float(np.median(rise[HAT_BAND, snares] / np.maximum(rise[SNARE_BAND, snares], 1e-20)))
        hats = hats[~with_snare[hats] | (rise[HAT_BAND, hats] > HAT_OVER_SNARE * tilt * rise[SNARE_BAND, hats])]
    if len(snares) + len(hats) < MIN_UPPER_HITS:  # no snare or hat: a kick alone, or a bass or piano's low notes
        band_died = _decayed_rise(bands[KICK_BAND : KICK_BAND + 1], LONE_KICK_DECAY)[0]  # the whole band, not bins
        kicks = kicks[band_died[kicks] > 0]
        snares = hats = np.array([], dtype=int)
        if len(kicks) < MIN_LONE_KICKS:
            return ()

    # 4. Each hit at the frame its band rose most (a rise's window starts up to 3 frames early)
    flux = np.maximum(np.diff(power, axis=1, prepend=power[:, :1]), 0.0)
    hits = []
    for key, frames, curve, bins in (
        (KICK, kicks, kick, masks[KICK_BAND]),
        (SNARE, snares, snare, masks[SNARE_BAND]),
        (HIHAT, hats, hat, masks[HAT_BAND]),
    ):
        typical = float(np.percentile(curve[frames], 90)) if len(frames) else 1.0
        for peak in frames:
            f = _kick_attack_window(flux[bins], curve, peak) if key == KICK else peak
            rose = flux[bins, f : f + PEAK_FRAMES + 1].sum(axis=0)
            first = int(np.argmax(rose >= ONSET_SHARE * rose.max()))  # the attack's start, not its steepest frame
            start = max(0.0, (f + first) * DRUM_HOP / CHORD_RATE - DRUM_PAD_SECONDS)
            velocity = int(np.clip(40 + 87 * curve[peak] / max(typical, 1e-20), 1, 127))
            hits.append(Note(key, start, start + DRUM_NOTE_SECONDS, velocity))
    return tuple(sorted(hits, key=lambda n: (n.start, n.pitch)))


def _kick_attack_window(flux: np.ndarray, curve: np.ndarray, peak: int) -> int:
    """Where to look for a kick's attack: a kick struck with a bass note is seen for as long as the bass note's
    partials beat in its bins, and the highest point of that plateau can come 50-90 ms after the kick. So the
    window starts where the kick band rose most (``flux``: bins by frames) since the plateau began: the first
    frame before ``peak`` from which ``curve`` stays at ``PLATEAU_SHARE`` of the peak, at most
    ``PLATEAU_FRAMES`` back; a rise's window starts up to ``BEFORE_FRAMES`` early, as at the peak."""
    start = peak
    while start > max(0, peak - PLATEAU_FRAMES) and curve[start - 1] >= PLATEAU_SHARE * curve[peak]:
        start -= 1
    steepest = start + int(np.argmax(flux[:, start : peak + PEAK_FRAMES + 1].sum(axis=0)))
    return max(start, steepest - BEFORE_FRAMES)


def _decayed_rise(power: np.ndarray, share: float = DECAY_SHARE) -> np.ndarray:
    """Per row and frame: how far the row rose into the next frames, where it dies away soon after (to ``share``
    of its peak 70-128 ms on), else 0."""
    from numpy.lib.stride_tricks import sliding_window_view as windows

    first, last = LATER_FRAMES
    n = power.shape[1]
    padded = np.pad(power, ((0, 0), (BEFORE_FRAMES, last)), mode="edge")
    before = windows(padded, BEFORE_FRAMES, axis=1)[:, :n].min(axis=2)
    peak = windows(padded[:, BEFORE_FRAMES:], PEAK_FRAMES, axis=1)[:, :n].max(axis=2)
    later = windows(padded[:, BEFORE_FRAMES + first :], last - first, axis=1)[:, :n].min(axis=2)
    return np.where(later <= share * peak, np.maximum(peak - before, 0.0), 0.0)


def _hits(curve: np.ndarray, floor: float, share: float, typical_of: np.ndarray | None = None) -> np.ndarray:
    """Frames where ``curve`` peaks above ``floor`` and above ``share`` of its typical peak (the 90th percentile,
    of the peaks where ``typical_of`` holds when given); peaks closer than ``DRUM_WAIT_FRAMES`` are one hit."""
    from scipy.ndimage import maximum_filter1d

    top = (curve == maximum_filter1d(curve, 2 * DRUM_WAIT_FRAMES + 1)) & (curve > floor) & (curve > 0)
    kept: list[int] = []
    for f in np.flatnonzero(top):  # a rise is flat for a few frames: keep the first
        if not kept or f - kept[-1] > DRUM_WAIT_FRAMES:
            kept.append(int(f))
    peaks = np.array(kept, dtype=int)
    if not len(peaks):
        return peaks
    pool = peaks[typical_of[peaks]] if typical_of is not None and typical_of[peaks].any() else peaks
    return peaks[curve[peaks] >= share * float(np.percentile(curve[pool], 90))]


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
