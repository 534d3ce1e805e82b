"""The melody a model should hear from an upload: drums and bass taken out with Demucs, once per file.

MusicGen-Melody was trained on the chroma of vocals plus "other": audiocraft's ``ChromaStemConditioner`` runs
htdemucs on every melody and keeps those two stems, and transformers' ``MusicgenMelodyFeatureExtractor`` does the
same when given Demucs stems (``stem_indices`` [3, 2]). Drums and bass dominate a full mix's chroma and carry no
tune, so without this a song's one-hot chroma follows the bass line and the kick. ``MelodySeparator.prepare``:

1. keeps a clean monophonic hum as it is (one pitch class leads each sounding frame, next to nothing below
   ``LOW_HZ``): vocals plus other would be the hum itself, so Demucs would only cost time and add its errors;
2. separates anything else with the Demucs model the stems export uses, run cheaper (``MELODY_SEPARATION``: the
   fewest whole segments, int8 linear layers; the export keeps its own settings), and sums every stem but drums
   and bass (vocals and other for htdemucs);
3. caches the result by the upload's SHA-256 and the Demucs model, so takes, extends and replays of one upload
   run Demucs once;
4. uses the whole upload, with a note saying why and how to fix it, when Demucs cannot be loaded or when
   taking out drums and bass leaves next to nothing (a drum loop, a bass riff).

Demucs is given the mono 32 kHz signal the model reads (``load_audio``'s output: trimmed, at most 30 s), not the
file's stereo: the cache key, the trim and the 30 s cut are then exactly the melody's, and the stereo image would
mostly help Demucs tell centre-panned vocals from wide instruments, a line that does not matter here because
vocals and other are summed. Drums and bass are told from the rest by timbre and rhythm, which mono keeps; and
the separation costs the same, since a mono track is played to both of Demucs' ears anyway.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from .audio.arrays import resample
from .audio.stems import MELODY_SEPARATION, STEMS_MODEL_ENV, SeparationSettings, StemSeparator
from .audio.uploads import TARGET_PEAK_DBFS, LoadedAudio
from .config import ServerConfig
from .errors import GenerationCancelled, ModelLoadError
from .melody import sounding_frames
from .model.chroma import ChromaExtractor

LEFT_OUT = ("drums", "bass")  # the stems MusicGen-Melody was trained without; every other stem is the melody
SEPARATING = "Separating the melody"  # what progress says while Demucs runs
CACHE_ENTRIES = 16  # 30 s of mono float32 at 32 kHz is 3.8 MB, so at most about 61 MB
SETTING_ENV = "MOODTAPE_MELODY_SEPARATION"
# A clean hum, as measured on the synthetic hums and mixes of tests/test_melody_stems.py: hums from A2 up put no
# power below LOW_HZ and 0.51-0.78 of a frame's chroma in one pitch class (median over sounding frames; reverberant
# to pure), while the mixes whose chroma separation changes put 0.53-0.63 below LOW_HZ and at most 0.34 in one class.
LOW_HZ = 90.0  # kick drums and a bass's lowest octave (from E1, 41 Hz) sit below this; a hum from A2 (110 Hz) does not
HUM_MAX_LOW_SHARE = 0.05  # a clean hum has less than this share of its power below LOW_HZ
HUM_MIN_FOCUS = 0.5  # and its loudest pitch class holds at least this share of a typical frame's chroma
MIN_MELODY_SHARE = 0.01  # melody stems with less of the separated power than this hold no melody to follow

# Why a melody was or was not separated, as the recipe records it
SEPARATED = "separated"
CLEAN_HUM = "clean hum"
TURNED_OFF = "turned off"
NOT_ASKED = "not asked"
UNAVAILABLE = "unavailable"
NOTHING_LEFT = "nothing left"

MelodyProgress = Callable[[str, float], None]  # (what is happening, fraction done 0..1)


@dataclass(frozen=True, eq=False)
class PreparedMelody:
    """The samples a melody model should be given for one upload, and how they were made."""

    samples: np.ndarray  # mono float32 at sample_rate, read-only; same length as the upload's samples
    sample_rate: int
    separated: bool  # True: drums and bass were taken out with Demucs
    stems_model: str | None  # the Demucs model that separated it; None when not separated
    stems: tuple[str, ...]  # the stems summed (("other", "vocals") for htdemucs); () when not separated
    reason: str  # SEPARATED, CLEAN_HUM, TURNED_OFF, NOT_ASKED, UNAVAILABLE or NOTHING_LEFT
    notes: tuple[str, ...] = ()  # for the person: why it was not separated, and how to fix it
    cache_hit: bool = False  # True when Demucs did not run for this request

    def record(self) -> dict[str, Any]:
        """The recipe's melody fields for this separation; ``prepare(separate=..., stems_model=...)`` reads them."""
        return {
            "separated": self.separated,
            "stems_model": self.stems_model,
            "stems": list(self.stems),
            "separation": self.reason,
        }


class Splitter(Protocol):
    """What ``MelodySeparator`` needs of a stem separator: ``StemSeparator``'s model name and ``separate``."""

    @property
    def model_id(self) -> str: ...

    def separate(
        self,
        audio: np.ndarray,
        sample_rate: int,
        *,
        on_progress: Callable[[float], None] | None = None,
        cancel: threading.Event | None = None,
        settings: SeparationSettings = ...,
    ) -> dict[str, np.ndarray]: ...


class MelodySeparator:
    """Demucs for melody inputs: separates each upload once, keeps the result for later requests.

    Shares its ``StemSeparator`` (and so its loaded weights) with the stems export, but runs it with cheaper
    ``settings`` (``MELODY_SEPARATION``: only the chroma's argmax per frame is kept, not the stems' sound).
    Thread-safe: a request whose result is cached never waits for another request's separation.
    """

    def __init__(
        self,
        separator: Splitter | None = None,
        *,
        enabled: bool | None = None,
        config: ServerConfig | None = None,
        cache_entries: int = CACHE_ENTRIES,
        extractor: ChromaExtractor | None = None,
        settings: SeparationSettings = MELODY_SEPARATION,
    ):
        self.config = config or getattr(separator, "config", None) or ServerConfig.from_env()
        self.separator = separator or StemSeparator(config=self.config)
        self.enabled = self.config.melody_separation if enabled is None else enabled
        self.cache_entries = cache_entries
        self.extractor = extractor or ChromaExtractor()
        self.settings = settings  # how Demucs runs for melodies; the stems export keeps its own
        self._cache: OrderedDict[tuple[str, str], PreparedMelody] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._separate_lock = threading.Lock()  # one upload at a time: Demucs runs one at a time anyway

    @property
    def stems_model(self) -> str:
        return self.separator.model_id

    def prepare(
        self,
        loaded: LoadedAudio,
        *,
        separate: bool | None = None,
        stems_model: str | None = None,
        on_progress: MelodyProgress | None = None,
        cancel: threading.Event | None = None,
    ) -> PreparedMelody:
        """The samples the model should hear for ``loaded``: vocals plus other, or the upload as it is.

        ``separate`` None decides by the server setting and the clean-hum rule; True or False does what a replayed
        recipe did (``PreparedMelody.record``), and ``stems_model`` is the model it was separated with. Raises
        ``GenerationCancelled`` when ``cancel`` is set while Demucs runs.
        """
        # 1. Decide whether to separate
        if not self.enabled:
            note = None
            if separate:
                note = (
                    f"This server does not separate melodies ({SETTING_ENV}=0), but the recipe's melody had its drums "
                    "and bass taken out, so this track may differ from the original."
                )
            return _as_is(loaded, TURNED_OFF, note)
        if separate is False:
            return _as_is(loaded, NOT_ASKED)
        if separate is None and is_clean_hum(loaded.samples, loaded.sample_rate, self.extractor):
            return _as_is(
                loaded, CLEAN_HUM, "The melody is a clean hum (one note at a time, no drums or bass): followed as is."
            )

        # 2. Separate once per upload and Demucs model
        prepared = self._cached(loaded) or self._separate_once(loaded, on_progress, cancel)
        if stems_model is not None and prepared.separated and stems_model != prepared.stems_model:
            note = (
                f"The recipe's melody was separated with the Demucs model {stems_model!r}, this server uses "
                f"{prepared.stems_model!r} ({STEMS_MODEL_ENV}), so this track may differ from the original."
            )
            prepared = replace(prepared, notes=(*prepared.notes, note))
        return prepared

    def clear(self) -> None:
        """Forget every cached separation."""
        with self._cache_lock:
            self._cache.clear()

    def _key(self, loaded: LoadedAudio) -> tuple[str, str]:
        return loaded.digest, self.separator.model_id

    def _cached(self, loaded: LoadedAudio) -> PreparedMelody | None:
        key = self._key(loaded)
        with self._cache_lock:
            prepared = self._cache.get(key)
            if prepared is None:
                return None
            self._cache.move_to_end(key)
        return replace(prepared, cache_hit=True)

    def _separate_once(
        self, loaded: LoadedAudio, on_progress: MelodyProgress | None, cancel: threading.Event | None
    ) -> PreparedMelody:
        # Wait for another upload's separation without blocking cancel, then look again: it may have been this one.
        while not self._separate_lock.acquire(timeout=0.1):
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled("Melody separation was cancelled.")
        try:
            prepared = self._cached(loaded)
            if prepared is not None:
                return prepared
            prepared = self._separate(loaded, on_progress, cancel)
            if prepared.reason != UNAVAILABLE:  # the weights may be there next time
                with self._cache_lock:
                    self._cache[self._key(loaded)] = prepared
                    while len(self._cache) > self.cache_entries:
                        self._cache.popitem(last=False)
            return prepared
        finally:
            self._separate_lock.release()

    def _separate(
        self, loaded: LoadedAudio, on_progress: MelodyProgress | None, cancel: threading.Event | None
    ) -> PreparedMelody:
        if on_progress is not None:
            on_progress(SEPARATING, 0.0)  # before loading Demucs, which takes a moment the first time
        report = (lambda done: on_progress(SEPARATING, done)) if on_progress is not None else None
        try:
            stems = self.separator.separate(
                loaded.samples[None], loaded.sample_rate, on_progress=report, cancel=cancel, settings=self.settings
            )
        except ModelLoadError as e:
            return _as_is(
                loaded,
                UNAVAILABLE,
                f"The melody was read with its drums and bass, so the track may follow the bass rather than the "
                f"tune. {e} Or set {SETTING_ENV}=0 to stop trying.",
            )
        kept = tuple(name for name in stems if name not in LEFT_OUT)
        melody = np.sum([stems[name][0] for name in kept], axis=0, dtype=np.float32)
        rest = np.sum([stems[name][0] for name in stems if name in LEFT_OUT], axis=0, dtype=np.float32)
        if _power(melody) <= MIN_MELODY_SHARE * (_power(melody) + _power(rest)):  # also when both are silent
            return _as_is(
                loaded,
                NOTHING_LEFT,
                "Taking out drums and bass left next to nothing (under 1% of the sound), so the whole upload was "
                "followed as the melody.",
            )
        peak = float(np.max(np.abs(melody)))
        melody = (melody * np.float32(10 ** (TARGET_PEAK_DBFS / 20) / peak)).astype(np.float32)  # as load_audio
        melody.setflags(write=False)  # shared by every request that hits the cache
        return PreparedMelody(
            samples=melody,
            sample_rate=loaded.sample_rate,
            separated=True,
            stems_model=self.separator.model_id,
            stems=kept,
            reason=SEPARATED,
        )


def is_clean_hum(samples: np.ndarray, sample_rate: int, extractor: ChromaExtractor | None = None) -> bool:
    """True for a clean monophonic hum: almost no power below ``LOW_HZ`` and one pitch class leading each frame.

    Only such input is left unseparated: an ideal separator would give it back unchanged (it is all vocals),
    and a real one could only remove part of it.
    """
    low_share, focus = hum_measures(samples, sample_rate, extractor)
    return low_share < HUM_MAX_LOW_SHARE and focus >= HUM_MIN_FOCUS


def hum_measures(
    samples: np.ndarray, sample_rate: int, extractor: ChromaExtractor | None = None
) -> tuple[float, float]:
    """(share of the power below ``LOW_HZ``, median share of a frame's chroma in its loudest pitch class).

    Both over the sounding frames, as the chroma picture counts them.
    """
    import torch

    extractor = extractor or ChromaExtractor()
    normalised, loudness = extractor.chroma_energy(samples, sample_rate)  # each frame's largest value is 1
    sounding = sounding_frames(loudness)
    focus = float(np.median(1.0 / normalised[sounding].sum(axis=1)))
    waveform = resample(np.asarray(samples, dtype=np.float32), sample_rate, extractor.sampling_rate)
    waveform = np.array(waveform[: extractor.n_samples])  # a writable copy for torch
    if len(waveform) < extractor.n_fft:  # padded as the chroma is, so the frames line up
        pad = extractor.n_fft - len(waveform)
        waveform = np.pad(waveform, (pad // 2, pad // 2 + pad % 2))
    power = extractor.spectrogram(torch.from_numpy(waveform)[None])[0].numpy()[:, sounding]
    low_bins = round(LOW_HZ * extractor.n_fft / extractor.sampling_rate)
    low_share = float(power[:low_bins].sum() / max(power.sum(), 1e-20))
    return low_share, focus


def _as_is(loaded: LoadedAudio, reason: str, note: str | None = None) -> PreparedMelody:
    return PreparedMelody(
        samples=loaded.samples,
        sample_rate=loaded.sample_rate,
        separated=False,
        stems_model=None,
        stems=(),
        reason=reason,
        notes=(note,) if note else (),
    )


def _power(samples: np.ndarray) -> float:
    return float(np.mean(np.square(samples, dtype=np.float64)))
