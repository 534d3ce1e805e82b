"""The chroma we compute is the chroma MusicGen-Melody expects, and hums are described correctly."""

from __future__ import annotations

import importlib
import json
import math
import shutil
import types

import numpy as np
import pytest
import torch

from generation.audio.uploads import load_audio
from generation.errors import InvalidInputError, ModelLoadError
from generation.melody import (
    MAJOR_PROFILE,
    PITCH_CLASSES,
    describe_pitch,
    estimate_key,
    picture_and_description,
    pitch_profile,
)
from generation.model.chroma import ChromaExtractor
from tests.audio_factory import C_MAJOR_SCALE, hum, tone, write_audio
from tests.tiny_melody_model import PREPROCESSOR_CONFIG

RATE = 32_000  # MusicGen-Melody's rate


@pytest.fixture(scope="module")
def extractor():
    return ChromaExtractor()


def _notes(chroma: torch.Tensor) -> list[str]:
    """Pitch class of every frame of a one-hot chroma [1, frames, 12]."""
    return [PITCH_CLASSES[i] for i in chroma[0].argmax(-1).tolist()]


def _runs(names: list[str], min_frames: int = 3) -> list[str]:
    """Collapse repeated names into one, ignoring runs shorter than ``min_frames`` (note transitions)."""
    runs = []
    for name in names:
        if runs and runs[-1][0] == name:
            runs[-1][1] += 1
        else:
            runs.append([name, 1])
    kept = [name for name, count in runs if count >= min_frames]
    return [name for i, name in enumerate(kept) if i == 0 or kept[i - 1] != name]


def _numpy_power_spectrogram(waveform: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """A plain STFT: reflect padding, periodic Hann window, |X|^2 divided by the window's energy."""
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    padded = np.pad(waveform.astype(np.float64), n_fft // 2, mode="reflect")
    count = 1 + (len(padded) - n_fft) // hop
    frames = np.stack([padded[i * hop : i * hop + n_fft] for i in range(count)])
    return (np.abs(np.fft.rfft(frames * window, axis=1)) ** 2 / np.sum(window**2)).T


def _bip_bip(bip_seconds: float = 0.125, seconds: float = 0.5) -> np.ndarray:
    """transformers' integration-test signal: 440 Hz, on for the second half of every 0.25 s."""
    t = np.arange(int(seconds * RATE)) / RATE
    return np.cos(2 * math.pi * 440 * t) * ((t % (2 * bip_seconds)) / (2 * bip_seconds) >= 0.5)


# -- Same features as transformers --------------------------------------------------------------------------------


def test_matches_the_transformers_extractor_integration_test(extractor):
    # transformers' own expected output: a 0.5 s and a 1 s "bip bip" at 440 Hz, padded to a batch of 8 frames.
    expected = torch.zeros([2, 8, 12])
    expected[0, :6, 9] = 1
    expected[0, 6:, 0] = 1
    expected[1, :, 9] = 1

    features = extractor([_bip_bip(seconds=0.5), _bip_bip(seconds=1.0)], RATE)

    assert features.shape == (2, 8, 12)
    assert torch.equal(features, expected)


def test_spectrogram_matches_a_numpy_stft_with_torchaudio_window_normalisation(extractor):
    waveform = hum(("A3", "E4"), note_seconds=0.6, rate=RATE)
    ours = extractor.spectrogram(torch.from_numpy(waveform)[None])[0].double().numpy()
    reference = _numpy_power_spectrogram(waveform, extractor.n_fft, extractor.hop_length)
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, rtol=1e-3, atol=1e-6 * reference.max())


def test_window_normalisation_keeps_white_noise_power_per_bin_equal_to_its_variance(extractor):
    # normalized=True divides by sqrt(sum(window ** 2)), so E|X_k|^2 equals the noise variance.
    variance = 0.04
    noise = np.random.default_rng(0).normal(0.0, math.sqrt(variance), 4 * RATE).astype(np.float32)
    spec = extractor.spectrogram(torch.from_numpy(noise)[None])[0]
    assert spec[1:-1, 2:-2].mean().item() == pytest.approx(variance, rel=0.02)


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_matches_transformers_pipeline_run_on_a_numpy_spectrogram(monkeypatch, padding_side):
    """transformers' real extractor code, with torchaudio's Spectrogram swapped for the numpy STFT above."""
    module = importlib.import_module("transformers.models.musicgen_melody.feature_extraction_musicgen_melody")

    class NumpySpectrogram:
        def __init__(self, n_fft, win_length, hop_length, power, center, pad, normalized):
            assert (win_length, power, center, pad, normalized) == (n_fft, 2, True, 0, True)
            self.n_fft, self.hop = n_fft, hop_length

        def __call__(self, waveform):
            specs = [_numpy_power_spectrogram(w, self.n_fft, self.hop) for w in waveform.numpy()]
            return torch.from_numpy(np.stack(specs)).float()

    fake = types.SimpleNamespace(transforms=types.SimpleNamespace(Spectrogram=NumpySpectrogram))
    monkeypatch.setattr(module, "torchaudio", fake, raising=False)
    theirs = module.MusicgenMelodyFeatureExtractor(padding_side=padding_side)
    batch = [
        hum(C_MAJOR_SCALE, note_seconds=0.5, rate=RATE),
        hum(("F#3", "B3", "D4"), note_seconds=0.7, rate=RATE, seed=1),
        tone(523.25, 0.3, RATE),  # shorter than n_fft: padded on both sides
        hum(("G3", "D4") * 16, note_seconds=1.0, rate=RATE, seed=2),  # 32 s: cut to 30 s
    ]

    expected = theirs(batch, sampling_rate=RATE, return_tensors="pt").input_features
    ours = ChromaExtractor(padding_side=padding_side)(batch, RATE)

    assert ours.shape == expected.shape == (4, 235, 12)
    assert ours.dtype == expected.dtype == torch.float32
    assert torch.equal(ours, expected)


# -- Hand-checked pitches ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("hz", "name"), [(440.0, "A"), (261.63, "C"), (196.0, "G"), (369.99, "F#")])
def test_a_pure_tone_lands_on_its_pitch_class_in_almost_every_frame(extractor, hz, name):
    names = _notes(extractor(tone(hz, 3.0, RATE), RATE))
    assert names.count(name) >= 0.95 * len(names)


def test_a_tone_sequence_c_e_g_gives_c_e_g_in_time_order(extractor):
    chroma = extractor(hum(("C4", "E4", "G4"), note_seconds=1.0, rate=RATE), RATE)
    assert _runs(_notes(chroma)) == ["C", "E", "G"]


def test_a_hummed_scale_is_heard_note_by_note(extractor):
    chroma = extractor(hum(C_MAJOR_SCALE, note_seconds=0.8, rate=RATE), RATE)
    assert _runs(_notes(chroma)) == ["C", "D", "E", "F", "G", "A", "B", "C"]


def test_audio_at_another_rate_is_resampled_first(extractor):
    at_44k = extractor(tone(440.0, 2.0, 44_100), 44_100)
    at_32k = extractor(tone(440.0, 2.0, RATE), RATE)
    assert at_44k.shape == at_32k.shape
    assert _notes(at_44k).count("A") >= 0.95 * at_44k.shape[1]


@pytest.mark.parametrize(("seconds", "frames"), [(30.0, 235), (40.0, 235), (10.0, 79), (0.3, 5)])
def test_chroma_shape_follows_the_extractor(extractor, seconds, frames):
    chroma = extractor(tone(440.0, seconds, RATE), RATE)
    assert chroma.shape == (1, frames, 12) and chroma.dtype == torch.float32
    assert extractor.num_frames(round(seconds * RATE)) == frames
    assert torch.equal(chroma.sum(-1), torch.ones(1, frames))  # one-hot


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed")
def test_a_hum_recorded_in_the_browser_keeps_its_notes(tmp_path, extractor):
    path = write_audio(tmp_path / "take", hum(("A3", "C#4", "E4"), note_seconds=0.8, rate=48_000), 48_000, "webm")
    audio = load_audio(path, extractor.sampling_rate, max_seconds=30.0)
    assert _runs(_notes(extractor(audio.samples, audio.sample_rate))) == ["A", "C#", "E"]


def test_bad_waveforms_are_refused(extractor):
    with pytest.raises(InvalidInputError, match="empty"):
        extractor(np.zeros(0, np.float32), RATE)
    with pytest.raises(InvalidInputError, match="NaN"):
        extractor(np.full(RATE, np.nan, np.float32), RATE)
    with pytest.raises(InvalidInputError, match="shape"):
        extractor(np.zeros((1, 2, RATE), np.float32), RATE)


# -- Settings from a checkpoint ------------------------------------------------------------------------------------


def test_defaults_are_facebook_musicgen_melody_settings(extractor):
    assert ChromaExtractor.from_pretrained(PREPROCESSOR_CONFIG) == extractor
    assert (extractor.sampling_rate, extractor.n_fft, extractor.hop_length) == (32_000, 16_384, 4_096)
    assert (extractor.num_chroma, extractor.chunk_length, extractor.chroma_length) == (12, 30, 235)


def test_settings_are_read_from_a_checkpoint_folder(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(dict(PREPROCESSOR_CONFIG, hop_length=2048)))
    (tmp_path / "config.json").write_text(json.dumps({"chroma_length": 470}))
    loaded = ChromaExtractor.from_pretrained(tmp_path)
    assert (loaded.hop_length, loaded.chroma_length) == (2048, 470)


def test_settings_are_read_from_a_transformers_5_processor_config(tmp_path):
    settings = {"feature_extractor": dict(PREPROCESSOR_CONFIG, chunk_length=10), "processor_class": "X"}
    (tmp_path / "processor_config.json").write_text(json.dumps(settings))
    assert ChromaExtractor.from_pretrained(tmp_path).chunk_length == 10


def test_checkpoints_without_melody_settings_are_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="not a MusicGen-Melody checkpoint"):
        ChromaExtractor.from_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="EncodecFeatureExtractor"):
        ChromaExtractor.from_pretrained({"feature_extractor_type": "EncodecFeatureExtractor"})
    with pytest.raises(ModelLoadError, match="not found"):
        ChromaExtractor.from_pretrained(tmp_path / "missing")
    with pytest.raises(ModelLoadError, match="hop_length"):
        ChromaExtractor.from_pretrained({"hop_length": 0})


# -- Words and pictures --------------------------------------------------------------------------------------------


def test_describe_pitch_names_the_note_of_a_tone():
    text = describe_pitch(tone(440.0, 2.0, RATE), RATE)
    assert text.startswith("Mostly A;")


def test_a_hummed_c_major_scale_is_estimated_as_c_major():
    samples = hum(C_MAJOR_SCALE, note_seconds=0.5, rate=RATE)
    assert estimate_key(pitch_profile(samples, RATE))[0] == "C major"
    assert "likely C major" in describe_pitch(samples, RATE)


def test_an_a_major_arpeggio_is_described_by_its_notes_and_key():
    samples = hum(("A3", "C#4", "E4", "A4", "E4", "C#4", "A3"), note_seconds=0.5, rate=RATE)
    text = describe_pitch(samples, RATE)
    assert text.startswith("Mostly A, ") and "C#" in text and "E" in text
    assert text.endswith("likely A major.")


def test_describe_pitch_reads_the_model_chroma_too(extractor):
    chroma = extractor(hum(C_MAJOR_SCALE, note_seconds=0.5, rate=RATE), RATE)
    assert "likely C major" in describe_pitch(chroma)


def test_key_estimate_of_a_key_profile_is_that_key():
    key, r = estimate_key(np.roll(MAJOR_PROFILE, 2))
    assert key == "D major" and r == pytest.approx(1.0)


def test_silence_is_described_as_silent():
    assert "silent" in describe_pitch(np.zeros(RATE, np.float32), RATE)


def test_chroma_picture_is_an_rgb_image_for_gradio():
    image, _ = picture_and_description(hum(C_MAJOR_SCALE, note_seconds=0.4, rate=RATE), RATE)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[0] >= 200 and image.shape[1] >= 400
    assert image.std() > 10  # not a blank canvas


# -- The model takes it --------------------------------------------------------------------------------------------


def test_tiny_melody_model_accepts_the_chroma_and_follows_the_melody(tmp_path, extractor):
    from transformers import AutoTokenizer, MusicgenMelodyForConditionalGeneration

    from tests.tiny_melody_model import build_melody_model

    folder = build_melody_model(tmp_path / "melody")
    model = MusicgenMelodyForConditionalGeneration.from_pretrained(folder).eval()
    inputs = AutoTokenizer.from_pretrained(folder)(["calm piano"], return_tensors="pt")
    chroma = ChromaExtractor.from_pretrained(folder)

    def generate(notes):
        torch.manual_seed(0)
        features = chroma(hum(notes, note_seconds=1.0, rate=RATE), RATE)
        return model.generate(**inputs, input_features=features, max_new_tokens=25)

    a_tone, same_again, a_chord = generate(("A4",)), generate(("A4",)), generate(("C4", "E4", "G4"))

    assert a_tone.ndim == 3 and a_tone.shape[:2] == (1, 1)
    assert torch.equal(a_tone, same_again)
    assert not torch.equal(a_tone, a_chord)
