"""Pictures of a result: waveform over a log-frequency spectrogram, one waveform row per stem, a melody's chroma.

Drawn with matplotlib's Agg canvas directly (no pyplot, no global state, safe from
worker threads) and returned as RGB ``uint8`` arrays ``[height, width, 3]``. The
waveform is drawn as a min/max envelope per pixel column and the spectrogram is
computed with numpy, so 30 s of audio takes well under a second.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

WIDTH_PX, DPI = 1000, 100  # picture width in pixels, and the scale that maps inches to pixels
TRACK_HEIGHT_PX = 480  # waveform + spectrogram picture height
STEM_ROW_PX = 110  # height of one stem's row
ENVELOPE_COLUMNS = 1000  # min/max pairs the waveform is reduced to before drawing
FFT_SIZE = 2048  # spectrogram window (64 ms at 32 kHz)
MAX_FRAMES = 1200  # spectrogram columns at most; the hop grows with the audio's length
BANDS = 160  # log-spaced frequency rows of the spectrogram
LOWEST_HZ = 30.0  # bottom of the spectrogram
DYNAMIC_RANGE_DB = 80.0  # the spectrogram shows this many dB below its loudest point
WAVE_COLOUR = "#3b6fb6"
STEM_COLOURS = {  # one colour per stem, also used by tests to find each row
    "drums": "#d1495b",
    "bass": "#edae49",
    "other": "#00798c",
    "vocals": "#6a4c93",
    "guitar": "#30638e",
    "piano": "#66a182",
}
FALLBACK_COLOURS = ("#8d6a9f", "#4c956c", "#c17c74", "#5c80bc")
CHROMA_PICTURE_PX = (800, 300)  # width, height of the chroma picture


def track_picture(audio: np.ndarray, sample_rate: int, title: str = "") -> np.ndarray:
    """Waveform (top) and log-frequency spectrogram in dB (bottom) of ``[channels, samples]`` audio."""
    from matplotlib.figure import Figure

    mono = _mono(audio)
    seconds = mono.size / sample_rate
    figure = Figure(figsize=(WIDTH_PX / DPI, TRACK_HEIGHT_PX / DPI), dpi=DPI)
    wave_axes, spec_axes = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 2]})

    # 1. Waveform: the min/max envelope of every channel
    _draw_envelope(wave_axes, audio, sample_rate, WAVE_COLOUR)
    wave_axes.set_ylabel("level")
    if title:
        wave_axes.set_title(title, fontsize=11)

    # 2. Spectrogram: power in log-spaced bands, in dB below the loudest point
    levels, top_hz = _log_spectrogram(mono, sample_rate)
    spec_axes.imshow(
        levels,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=-DYNAMIC_RANGE_DB,
        vmax=0.0,
        extent=(0.0, seconds, 0.0, 1.0),
        interpolation="nearest",
    )
    ticks = [hz for hz in (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000) if LOWEST_HZ <= hz <= top_hz]
    spec_axes.set_yticks([_band_position(hz, top_hz) for hz in ticks])
    spec_axes.set_yticklabels([f"{hz // 1000}k" if hz >= 1000 else str(hz) for hz in ticks])
    spec_axes.set_ylabel("Hz")
    spec_axes.set_xlabel("time (s)")
    spec_axes.set_xlim(0.0, seconds)
    figure.tight_layout(pad=0.6)
    return _render(figure)


def stems_picture(stems: Mapping[str, np.ndarray], sample_rate: int, title: str = "") -> np.ndarray:
    """One waveform row per stem, top to bottom in the order given, each in its own colour.

    All rows share one vertical scale, so a quiet stem looks quiet next to a loud one.
    """
    from matplotlib.figure import Figure

    if not stems:
        raise ValueError("stems_picture needs at least one stem")
    rows = len(stems)
    figure = Figure(figsize=(WIDTH_PX / DPI, (STEM_ROW_PX * rows + 60) / DPI), dpi=DPI)
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]
    peak = max(float(np.max(np.abs(audio))) for audio in stems.values())
    for index, (axis, (name, audio)) in enumerate(zip(axes, stems.items(), strict=True)):
        _draw_envelope(axis, audio, sample_rate, stem_colour(name, index), peak=peak)
        axis.set_ylabel(name, rotation=0, ha="right", va="center")
        axis.set_yticks([])
    axes[-1].set_xlabel("time (s)")
    if title:
        axes[0].set_title(title, fontsize=11)
    figure.tight_layout(pad=0.6)
    return _render(figure)


def chroma_picture(
    chroma: np.ndarray, sounding: np.ndarray, frame_seconds: float, labels: tuple[str, ...], title: str = ""
) -> np.ndarray:
    """Pitch class against time: ``chroma`` ``[frames, classes]`` (each frame's largest value 1) as colour.

    Frames where ``sounding`` is false stay dark; white dots mark each sounding frame's loudest class,
    the one-hot pitch class the model is given.
    """
    from matplotlib.figure import Figure

    width, height = CHROMA_PICTURE_PX
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI)
    axes = figure.add_subplot()
    times = np.arange(len(chroma)) * frame_seconds
    classes = chroma.shape[1]
    extent = (-frame_seconds / 2, times[-1] + frame_seconds / 2, -0.5, classes - 0.5)
    shown = np.where(sounding[:, None], chroma, 0.0)
    axes.imshow(shown.T, origin="lower", aspect="auto", extent=extent, cmap="magma", vmin=0.0, vmax=1.0)
    axes.scatter(times[sounding], chroma.argmax(axis=1)[sounding], s=8, c="white", label="given to the model")
    axes.set_yticks(range(classes))
    axes.set_yticklabels(labels)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("pitch class")
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    return _render(figure)


def stem_colour(name: str, index: int = 0) -> str:
    """The colour a stem is drawn in."""
    return STEM_COLOURS.get(name, FALLBACK_COLOURS[index % len(FALLBACK_COLOURS)])


def _mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise ValueError(f"audio must be [channels, samples] with some samples, got shape {audio.shape}")
    return audio.mean(axis=0)


def _draw_envelope(axis, audio: np.ndarray, sample_rate: int, colour: str, peak: float | None = None) -> None:
    """Fill between the per-column minimum and maximum of the signal: fast for any length."""
    audio = np.asarray(audio, dtype=np.float32)
    _mono(audio)  # shape check
    samples = audio.shape[-1]
    columns = min(ENVELOPE_COLUMNS, samples)
    edges = np.linspace(0, samples, columns + 1).astype(int)
    starts = edges[:-1]
    low = np.minimum.reduceat(audio.min(axis=0), starts)
    high = np.maximum.reduceat(audio.max(axis=0), starts)
    times = (starts + np.diff(edges) / 2) / sample_rate
    axis.fill_between(times, low, high, color=colour, linewidth=0.6, edgecolor=colour)
    axis.axhline(0.0, color="#999999", linewidth=0.5)
    peak = max(float(np.max(np.abs(audio))) if peak is None else peak, 1e-3)
    axis.set_ylim(-1.05 * peak, 1.05 * peak)
    axis.set_xlim(0.0, samples / sample_rate)
    axis.margins(x=0)


def _log_spectrogram(mono: np.ndarray, sample_rate: int) -> tuple[np.ndarray, float]:
    """Power spectrogram averaged into log-spaced bands, in dB relative to its maximum: [BANDS, frames]."""
    size = min(FFT_SIZE, 1 << int(np.log2(max(mono.size, 64))))
    hop = max(size // 4, -(-mono.size // MAX_FRAMES))
    padded = np.pad(mono, (size // 2, size // 2 + hop))
    frames = np.lib.stride_tricks.sliding_window_view(padded, size)[::hop]
    power = np.abs(np.fft.rfft(frames * np.hanning(size).astype(np.float32), axis=-1)) ** 2  # [frames, bins]
    top_hz = sample_rate / 2
    bin_hz = np.fft.rfftfreq(size, 1 / sample_rate)
    edges = np.geomspace(LOWEST_HZ, top_hz, BANDS + 1)
    # Each band takes the mean power of its bins, or the nearest bin where a band is narrower than one bin
    index = np.clip(np.searchsorted(bin_hz, edges), 1, bin_hz.size - 1)
    cumulative = np.concatenate([np.zeros((power.shape[0], 1)), np.cumsum(power, axis=1)], axis=1)
    counts = np.maximum(index[1:] - index[:-1], 1)
    bands = (cumulative[:, index[:-1] + counts] - cumulative[:, index[:-1]]) / counts
    levels = 10 * np.log10(np.maximum(bands.T, 1e-12))
    return np.maximum(levels - levels.max(), -DYNAMIC_RANGE_DB), top_hz


def _band_position(hz: float, top_hz: float) -> float:
    """Where a frequency sits on the spectrogram's 0..1 vertical axis."""
    return float(np.log(hz / LOWEST_HZ) / np.log(top_hz / LOWEST_HZ))


def _render(figure) -> np.ndarray:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
