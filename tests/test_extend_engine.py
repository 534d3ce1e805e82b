"""Extend: the engine continues the end of given audio and returns exactly the new seconds asked for."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generation.errors import InvalidInputError
from generation.model.engine import MusicGenEngine
from generation.model.spec import EngineSpec
from generation.model.types import AudioPrompt, Melody
from generation.settings import GenerationSettings
from tests.audio_factory import hum, tone
from tests.batching import run_together

RATE = 32_000
HOP = 640  # samples per codec frame at 32 kHz


def settings(prompt="rainy night piano", duration=1.5, seed=4, **more) -> GenerationSettings:
    return GenerationSettings(prompt=prompt, duration=duration, seed=seed, **more)


def clip(seconds: float, seed: int = 0, rate: int = RATE) -> AudioPrompt:
    """A few notes with a little noise: something with a shape to continue."""
    notes = hum(("A3", "C#4", "E4", "A4"), note_seconds=seconds / 4, rate=rate)[: round(seconds * rate)]
    noise = np.random.default_rng(seed).normal(0.0, 0.05, notes.shape).astype(np.float32)
    return AudioPrompt((notes + noise)[None], rate)


def make_it_listen(model) -> None:
    """Let a tiny random MusicGen hear audio prompts: its codec tells clips apart, its decoder heeds its past.

    The codec's random encoder puts out a large constant with small changes on top, so every sound lands on the
    same codebook entries: removing the constant and scaling the rest to the codebooks' size (a norm of about
    20) spreads different sounds over different entries. The decoder's token embeddings (std 0.02) and its
    diffuse random self-attention are weak beside the fixture's amplified text conditioning, so earlier codes
    barely move the logits; stronger embeddings (x30) and self-attention values (x10, as conditioning's
    cross-attention is amplified) let them. Decoding audio from codes is untouched.
    """
    codec = model.audio_encoder
    conv = codec.encoder.layers[-1].conv
    with torch.no_grad():
        noise = torch.from_numpy(np.random.default_rng(0).normal(0.0, 0.3, RATE).astype(np.float32))
        conv.bias.sub_(codec.encoder(noise[None, None]).mean(dim=(0, 2)))
        conv.parametrizations.weight.original0.mul_(1000.0)
        conv.bias.mul_(1000.0)
        for embedding in model.decoder.model.decoder.embed_tokens:
            embedding.weight.mul_(30.0)
        for layer in model.decoder.model.decoder.layers:
            layer.self_attn.v_proj.weight.mul_(10.0)
            layer.self_attn.out_proj.weight.mul_(10.0)


@pytest.fixture(scope="module")
def listening_engine(tiny_model_dir):
    """The tiny text model, made to hear the difference between two audio prompts."""
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    model = MusicgenForConditionalGeneration.from_pretrained(tiny_model_dir).eval()
    make_it_listen(model)
    return MusicGenEngine.from_model(
        model, AutoProcessor.from_pretrained(tiny_model_dir), EngineSpec(model_id=str(tiny_model_dir))
    )


def test_an_extend_returns_exactly_the_new_seconds_and_records_its_prompt(engine):
    result = engine.generate(settings(duration=1.5), audio_prompt=clip(3.0))
    assert result.audio.shape == (1, round(1.5 * RATE))
    assert result.codes.shape == (4, 75), "codes of the new audio only"
    assert result.prompt_seconds == 3.0
    assert np.isfinite(result.audio).all() and result.audio.std() > 1e-4
    assert result.notes == ()


def join(original: np.ndarray, result, crossfade: int = 3 * HOP) -> np.ndarray:
    """The studio's join: the original samples, faded into the codec's lead-in over its end, then the new audio."""
    fade = np.linspace(0.0, 1.0, crossfade, dtype=np.float32)
    end = original[:, -crossfade:] * (1 - fade) + result.lead_in[:, -crossfade:] * fade
    return np.concatenate([original[:, :-crossfade], end, result.audio], axis=-1)


def test_the_original_joins_the_new_audio_through_the_lead_in_without_a_jump(engine):
    original = clip(2.0).samples
    result = engine.generate(settings(duration=2.0), audio_prompt=AudioPrompt(original, RATE))
    assert result.lead_in.shape == (1, 5 * HOP), "the codec's decoding of the given audio's last 0.1 s"
    track = join(original, result)
    assert track.shape == (1, 4 * RATE)
    np.testing.assert_array_equal(track[:, : 2 * RATE - 3 * HOP], original[:, : 2 * RATE - 3 * HOP])
    jumps = np.abs(np.diff(track[0, 2 * RATE - 2 * HOP :]))
    typical = np.percentile(np.abs(np.diff(result.audio[0])), 99.9)
    assert jumps[2 * HOP - 4 : 2 * HOP + 4].max() <= typical, "the lead-in and the new audio meet without a seam"


def test_an_extend_of_an_odd_duration_still_covers_every_sample(engine):
    result = engine.generate(settings(duration=1.53), audio_prompt=clip(1.0))
    assert result.audio.shape == (1, round(1.53 * RATE))


def test_the_same_extend_gives_the_same_audio_bit_for_bit(engine):
    first = engine.generate(settings(), audio_prompt=clip(2.0))
    again = engine.generate(settings(), audio_prompt=clip(2.0))
    np.testing.assert_array_equal(first.audio, again.audio)
    np.testing.assert_array_equal(first.codes, again.codes)


def test_different_audio_prompts_with_one_seed_give_different_continuations(listening_engine):
    first = listening_engine.generate(settings(), audio_prompt=clip(2.0, seed=1))
    other = AudioPrompt(tone(330.0, 2.0, RATE)[None], RATE)
    second = listening_engine.generate(settings(), audio_prompt=other)
    assert (first.codes != second.codes).mean() > 0.05  # about 0.15; another seed changes about 0.85
    assert not np.array_equal(first.audio, second.audio)


def test_only_the_end_of_long_audio_is_continued_and_a_note_says_so(short_window_engine):
    assert short_window_engine.spec.prompt_seconds == pytest.approx(4 / 3)
    tail = clip(2.0).samples
    early = [np.random.default_rng(seed).normal(0.0, 0.3, (1, 2 * RATE)).astype(np.float32) for seed in (1, 2)]
    results = [
        short_window_engine.generate(
            settings(duration=1.0), audio_prompt=AudioPrompt(np.concatenate([e, tail], 1), RATE)
        )
        for e in early
    ]
    np.testing.assert_array_equal(results[0].codes, results[1].codes)
    assert results[0].prompt_seconds == 66 * HOP / RATE  # 1.33 s in whole codec frames
    assert any("last 1.3 s of the 4.0 s" in note for note in results[0].notes)


def test_stereo_audio_at_another_rate_is_downmixed_and_resampled(listening_engine):
    mono = clip(2.0, rate=44_100)
    stereo = AudioPrompt(np.repeat(mono.samples, 2, axis=0), 44_100)
    from_mono = listening_engine.generate(settings(), audio_prompt=mono)
    from_stereo = listening_engine.generate(settings(), audio_prompt=stereo)
    assert from_mono.audio.shape == (1, round(1.5 * RATE))
    np.testing.assert_array_equal(from_mono.codes, from_stereo.codes)


def test_an_extend_may_have_no_text_prompt(engine):
    result = engine.generate(settings(prompt=""), audio_prompt=clip(1.0))
    assert result.audio.shape == (1, round(1.5 * RATE))


@pytest.mark.parametrize(
    ("samples", "rate", "message"),
    [
        (np.zeros((1, 100), np.float32), RATE, "at least one codec frame"),
        (np.full((1, RATE), np.nan, np.float32), RATE, "NaN"),
        (np.zeros(RATE, np.float32), RATE, r"\[channels, samples\]"),
        (np.zeros((1, RATE), np.float32), 0, "sample rate"),
    ],
)
def test_unusable_audio_to_extend_is_refused_clearly(engine, samples, rate, message):
    with pytest.raises(InvalidInputError, match=message):
        engine.generate(settings(), audio_prompt=AudioPrompt(samples, rate))


def test_streamed_pieces_of_an_extend_are_the_new_audio(engine):
    pieces: list[np.ndarray] = []
    result = engine.generate(settings(duration=3.0), audio_prompt=clip(2.0), on_audio=pieces.append)
    assert pieces[0].shape[-1] == 15 * HOP, "the first piece comes after 0.3 s of new codes"
    np.testing.assert_allclose(np.concatenate(pieces, axis=-1), result.audio, atol=1e-5)


def test_extends_with_audio_of_one_length_batch_and_each_matches_its_run_alone(listening_engine):
    prompts = [clip(2.0, seed=1), AudioPrompt(tone(330.0, 2.0, RATE)[None], RATE)]
    requests = [settings(seed=1), settings("epic metal guitar", seed=2)]
    together = run_together(listening_engine, requests, prompts)
    assert [r.batch_size for r in together] == [2, 2]
    for request, prompt, batched in zip(requests, prompts, together, strict=True):
        alone = listening_engine.generate(request, audio_prompt=prompt)
        assert alone.batch_size == 1
        np.testing.assert_array_equal(alone.codes, batched.codes)
        np.testing.assert_array_equal(alone.audio, batched.audio)


def test_extends_with_audio_of_different_lengths_do_not_batch(engine):
    results = run_together(engine, [settings(), settings()], [clip(1.0), clip(2.0)])
    assert [r.batch_size for r in results] == [1, 1]


def test_the_melody_model_extends_audio_with_and_without_a_hum(melody_engine):
    rising = Melody(hum(("A3", "C#4", "E4"), note_seconds=0.6, rate=RATE), RATE)
    falling = Melody(hum(("G4", "D4", "B3"), note_seconds=0.6, rate=RATE), RATE)
    plain = melody_engine.generate(settings(), audio_prompt=clip(2.0))
    with_rising = melody_engine.generate(settings(), melody=rising, audio_prompt=clip(2.0))
    with_falling = melody_engine.generate(settings(), melody=falling, audio_prompt=clip(2.0))
    for result in (plain, with_rising, with_falling):
        assert result.audio.shape == (1, round(1.5 * RATE)) and result.codes.shape == (4, 75)
    assert (with_rising.codes != with_falling.codes).mean() > 0.01, "the hum still steers the new audio"
    again = melody_engine.generate(settings(), melody=rising, audio_prompt=clip(2.0))
    np.testing.assert_array_equal(with_rising.audio, again.audio)


def test_an_extend_longer_than_a_window_continues_window_by_window(short_window_engine):
    steps: list[tuple[int, int]] = []
    pieces: list[np.ndarray] = []
    request = settings(duration=3.0)
    result = short_window_engine.generate(
        request, audio_prompt=clip(3.0), on_progress=lambda d, t: steps.append((d, t)), on_audio=pieces.append
    )
    assert result.audio.shape == (1, 3 * RATE) and result.codes.shape == (4, 150)
    # the first window holds 66 prompt frames and 34 new ones, then 50, 50 and 16 new frames
    assert result.windows == 4
    assert steps[-1] == (150 + 4 * 3, 150 + 4 * 3)
    np.testing.assert_allclose(np.concatenate(pieces, axis=-1), result.audio, atol=1e-5)
    again = short_window_engine.generate(request, audio_prompt=clip(3.0))
    np.testing.assert_array_equal(result.audio, again.audio)


def test_a_long_extend_of_the_melody_model_follows_its_hum(tiny_melody_model_dir):
    engine = MusicGenEngine(
        EngineSpec(model_id=str(tiny_melody_model_dir), family="melody", window_seconds=2.0, extend_stride=1.0)
    )
    melody = Melody(hum(("A3", "C#4", "E4"), note_seconds=0.6, rate=RATE), RATE)
    result = engine.generate(settings(duration=2.5), melody=melody, audio_prompt=clip(2.0))
    assert result.audio.shape == (1, round(2.5 * RATE)) and result.windows == 3


@pytest.fixture(scope="module")
def stereo_model(tiny_model_dir):
    """The tiny text model in the stereo checkpoints' form: 8 codebooks, left and right interleaved."""
    from transformers import MusicgenConfig, MusicgenForConditionalGeneration

    config = MusicgenConfig.from_pretrained(tiny_model_dir)
    config.decoder.num_codebooks, config.decoder.audio_channels = 8, 2
    torch.manual_seed(0)
    model = MusicgenForConditionalGeneration(config).eval()
    with torch.no_grad():  # a fresh codec's codebooks are all zero
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.copy_(5.0 * torch.randn(layer.codebook.embed.shape))
    generation = model.generation_config
    generation.decoder_start_token_id = generation.pad_token_id = generation.bos_token_id = 64
    return model


def test_a_stereo_model_makes_and_extends_stereo_audio(stereo_model, tiny_model_dir):
    from transformers import AutoProcessor
    from transformers.generation.stopping_criteria import StoppingCriteriaList

    from generation.model.codes import undelay
    from generation.model.decoding import decode_whole

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    engine = MusicGenEngine.from_model(stereo_model, processor, EngineSpec(model_id="tiny-stereo"))
    fresh = engine.generate(settings(duration=1.0))
    assert fresh.audio.shape == (2, RATE) and fresh.codes.shape == (8, 50)
    extended = engine.generate(settings(duration=1.0), audio_prompt=AudioPrompt(clip(1.0).samples.repeat(2, 0), RATE))
    assert extended.audio.shape == (2, RATE) and extended.lead_in.shape == (2, 5 * HOP)
    # the engine's reading of the codes (8 rows, delays shared by left and right) is what transformers decodes
    watcher = _LastIds()
    with torch.inference_mode():
        shipped = stereo_model.generate(
            **processor(text=["rainy night"], return_tensors="pt"),
            max_new_tokens=50 + 3,
            do_sample=False,
            stopping_criteria=StoppingCriteriaList([watcher]),
        )
    ours = decode_whole(stereo_model.audio_encoder, undelay(watcher.ids, 50, channels=2, rows_per_request=8), 2)
    np.testing.assert_array_equal(ours, shipped[0].numpy()[:, : ours.shape[-1]])


class _LastIds:
    def __call__(self, input_ids, scores, **kwargs):
        self.ids = input_ids.clone()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool)
