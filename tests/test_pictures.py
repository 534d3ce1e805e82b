"""Pictures: a waveform over a spectrogram for a track, one coloured row per stem, drawn fast."""

from __future__ import annotations

import time

import numpy as np
import pytest
from matplotlib.colors import to_rgb

from generation.audio.pictures import STEM_COLOURS, stems_picture, track_picture
from tests.test_loudness import music_like

RATE = 32_000


def rows_showing(image: np.ndarray, colour: str, tolerance: int = 12) -> np.ndarray:
    """Indices of the image rows where a colour is drawn over at least 50 pixels."""
    target = np.array([round(255 * c) for c in to_rgb(colour)])
    close = np.all(np.abs(image.astype(int) - target) <= tolerance, axis=-1)
    return np.nonzero(close.sum(axis=1) >= 50)[0]


def test_the_track_picture_is_an_rgb_image_with_something_drawn():
    image = track_picture(music_like(4.0), RATE, title="rainy night")

    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] >= 300 and image.shape[1] >= 800
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 100  # a spectrogram's many shades, not a blank canvas
    assert (image < 128).mean() > 0.1


def test_the_waveform_sits_above_the_spectrogram():
    image = track_picture(music_like(4.0), RATE)
    height = image.shape[0]

    waveform_rows = rows_showing(image, "#3b6fb6")
    red, blue = image[..., 0].astype(int), image[..., 2].astype(int)
    warm = (red - blue > 40).sum(axis=1)  # magma's reds and oranges; the waveform is blue, the rest grey
    assert waveform_rows.size > 20 and waveform_rows.max() < 0.4 * height
    below = waveform_rows.max() + 1
    assert warm[:below].sum() == 0 and warm[below:].sum() > 10_000


def test_thirty_seconds_draw_in_under_a_second():
    audio = music_like(30.0)
    track_picture(audio[:, :RATE], RATE)  # matplotlib's first use loads fonts

    started = time.perf_counter()
    track_picture(audio, RATE, title="thirty seconds")
    assert time.perf_counter() - started < 1.0


def test_the_stems_picture_has_one_row_per_stem_top_to_bottom_in_each_stems_colour():
    mix = music_like(3.0)
    stems = {"drums": 0.8 * mix, "bass": 0.6 * mix, "other": 0.7 * mix, "vocals": 0.5 * mix}

    image = stems_picture(stems, RATE, title="stems")

    bands = [rows_showing(image, STEM_COLOURS[name]) for name in stems]
    assert all(band.size > 10 for band in bands)
    for upper, lower in zip(bands, bands[1:], strict=False):
        assert upper.max() < lower.min()  # separate panels, in order


def test_stems_share_one_scale_so_a_quiet_stem_looks_quiet():
    mix = music_like(3.0)

    image = stems_picture({"drums": mix, "bass": 0.1 * mix}, RATE)

    assert rows_showing(image, STEM_COLOURS["drums"]).size > 4 * rows_showing(image, STEM_COLOURS["bass"]).size


@pytest.mark.parametrize("samples", [1, 100, RATE // 10])
def test_very_short_and_silent_audio_still_draw(samples):
    silent = np.zeros((2, samples), dtype=np.float32)

    assert track_picture(silent, RATE).shape[2] == 3
    assert stems_picture({"drums": silent, "my-extra-stem": silent}, RATE).shape[2] == 3
