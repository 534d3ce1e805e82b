"""A negative prompt replaces the empty text in guidance's unconditional half, per request, for both families."""

from __future__ import annotations

import numpy as np
import pytest

from generation.errors import InvalidInputError
from generation.model.engine import MusicGenEngine
from generation.model.guidance import tokenize
from generation.model.spec import EngineSpec
from generation.model.types import Melody
from generation.settings import MAX_PROMPT_CHARS, GenerationSettings
from tests.audio_factory import hum
from tests.batching import run_together

RATE = 32_000
RISING = ("A3", "C#4", "E4", "A4")
FALLING = ("G4", "D4", "B3", "G3")


def settings(prompt="rainy night mellow piano", seed=3, duration=1.5, **more) -> GenerationSettings:
    return GenerationSettings(prompt=prompt, duration=duration, seed=seed, **more)


def melody(notes) -> Melody:
    return Melody(hum(notes, note_seconds=0.5, rate=RATE), RATE)


def changed(a: np.ndarray, b: np.ndarray) -> float:
    return float((a != b).mean())


def test_the_negative_prompt_is_validated_like_the_prompt():
    assert GenerationSettings(negative_prompt="  loud \n drums ").negative_prompt == "loud drums"
    with pytest.raises(InvalidInputError, match="negative prompt must be text"):
        GenerationSettings(negative_prompt=3)
    with pytest.raises(InvalidInputError, match=f"keep it under {MAX_PROMPT_CHARS}"):
        GenerationSettings(negative_prompt="x" * (MAX_PROMPT_CHARS + 1))
    assert GenerationSettings.from_dict(settings(negative_prompt="drums").to_dict()).negative_prompt == "drums"


@pytest.mark.parametrize("blank", ["", "   ", "\n\t"])
def test_an_empty_negative_prompt_gives_the_audio_of_none_bit_for_bit(engine, blank):
    none = engine.generate(settings())
    empty = engine.generate(settings(negative_prompt=blank))
    np.testing.assert_array_equal(none.codes, empty.codes)
    np.testing.assert_array_equal(none.audio, empty.audio)
    assert empty.notes == ()


def test_a_negative_prompt_changes_the_codes_of_the_text_model(engine):
    none = engine.generate(settings())
    steered = engine.generate(settings(negative_prompt="epic metal guitar drums"))
    assert changed(none.codes, steered.codes) > 0.1
    other = engine.generate(settings(negative_prompt="calm ambient strings"))
    assert changed(steered.codes, other.codes) > 0.1, "what the negative prompt says matters, not only that it is there"
    again = engine.generate(settings(negative_prompt="epic metal guitar drums"))
    np.testing.assert_array_equal(steered.audio, again.audio)


def test_a_negative_prompt_equal_to_the_prompt_cancels_guidance(engine):
    """Guidance samples from uncond + (cond - uncond) * scale: with equal halves that is cond, as with no guidance."""
    cancelled = engine.generate(settings(negative_prompt="rainy night mellow piano"))
    unguided = engine.generate(settings(guidance_scale=1.0))
    guided = engine.generate(settings())
    assert changed(cancelled.codes, unguided.codes) < 0.02  # equal but for the last bits of a batch of 2 against 1
    assert changed(guided.codes, unguided.codes) > 0.1


@pytest.mark.parametrize("family", ["text", "melody"])
def test_the_unconditional_half_holds_the_negative_text_for_its_request_only(engine, melody_engine, family):
    """The one method transformers builds guidance's halves in, with and without the hook, side by side."""
    import torch
    from transformers import GenerationConfig

    from generation.model.guidance import negative_guidance

    chosen = engine if family == "text" else melody_engine
    model, tokenizer = chosen._model, chosen._processor.tokenizer
    inputs, negative = tokenize(tokenizer, ["rainy night", "calm"], ["loud metal drums", ""], 256)
    assert negative is not None

    def build():
        kwargs = {"attention_mask": inputs["attention_mask"].clone()}
        if family == "melody":
            kwargs["input_features"] = melody_engine._processor.features([melody(RISING), melody(FALLING)])
        name = (
            "_prepare_text_encoder_kwargs_for_generation"
            if family == "text"
            else ("_prepare_encoder_hidden_states_kwargs_for_generation")
        )
        with torch.inference_mode():
            return getattr(model, name)(inputs["input_ids"], kwargs, "input_ids", GenerationConfig(guidance_scale=3.0))

    plain = build()
    with negative_guidance(model, negative), torch.inference_mode():
        hooked = build()
        text = model.text_encoder(input_ids=negative.input_ids, attention_mask=negative.attention_mask)[0]
    if family == "text":
        before, after = plain["encoder_outputs"].last_hidden_state, hooked["encoder_outputs"].last_hidden_state
        assert torch.equal(hooked["attention_mask"][2], negative.attention_mask[0])
        assert torch.equal(hooked["attention_mask"][[0, 1, 3]], plain["attention_mask"][[0, 1, 3]])
        assert torch.equal(after[2], text[0])
    else:
        before, after = plain["encoder_hidden_states"], hooked["encoder_hidden_states"]
        tokens = text.shape[1]
        if hasattr(model, "enc_to_dec_proj"):  # none when the text encoder is as wide as the decoder (the tiny one)
            text = model.enc_to_dec_proj(text)
        expected = text[0] * negative.attention_mask[0, :, None]
        assert torch.equal(after[2, -tokens:], expected)
        assert torch.equal(after[2, :-tokens], before[2, :-tokens]), "the negative half keeps the null chroma"
    assert torch.equal(after[[0, 1, 3]], before[[0, 1, 3]]), "both prompts, and the request without a negative"
    assert not torch.equal(after[2], before[2])


def test_a_negative_prompt_changes_the_codes_of_the_melody_model(melody_engine):
    # The tiny melody model reads text weakly (guidance itself moves about 1% of its tokens): 3 s gives it room
    with_hum = melody_engine.generate(settings(duration=3.0), melody=melody(RISING))
    steered = melody_engine.generate(
        settings(negative_prompt="epic metal guitar drums", duration=3.0), melody=melody(RISING)
    )
    assert not np.array_equal(with_hum.codes, steered.codes)
    text_only = melody_engine.generate(settings(duration=3.0))
    text_steered = melody_engine.generate(settings(negative_prompt="epic metal guitar drums", duration=3.0))
    assert not np.array_equal(text_only.codes, text_steered.codes)


def test_the_hum_still_steers_the_melody_model_under_a_negative_prompt(melody_engine):
    steer = settings(negative_prompt="epic metal guitar drums")
    rising = melody_engine.generate(steer, melody=melody(RISING))
    falling = melody_engine.generate(steer, melody=melody(FALLING))
    assert changed(rising.codes, falling.codes) > 0.01


def test_without_guidance_a_negative_prompt_does_nothing_and_a_note_says_so(engine):
    plain = engine.generate(settings(guidance_scale=1.0))
    ignored = engine.generate(settings(guidance_scale=1.0, negative_prompt="epic metal guitar"))
    np.testing.assert_array_equal(plain.audio, ignored.audio)
    assert len(ignored.notes) == 1 and "guidance" in ignored.notes[0] and "negative prompt" in ignored.notes[0]
    assert ignored.settings.negative_prompt == "epic metal guitar", "the recipe keeps what was asked"


def test_a_negative_prompt_longer_than_the_encoder_reads_gets_a_note(engine):
    result = engine.generate(settings(negative_prompt=" ".join(["drums"] * 300)))
    assert any("negative prompt was cut to its first 256 tokens" in note for note in result.notes)


def test_prompts_and_negatives_are_tokenised_to_one_length(engine):
    tokenizer = engine._processor.tokenizer
    inputs, negative = tokenize(tokenizer, ["calm", "jazz trio"], ["", "loud distorted metal guitar drums"], 256)
    assert negative is not None and negative.rows == (1,)
    assert inputs["input_ids"].shape[1] == negative.input_ids.shape[1] > len(tokenizer("jazz trio")["input_ids"])
    alone, none = tokenize(tokenizer, ["calm", "jazz trio"], ["", ""], 256)
    assert none is None
    reference = tokenizer(["calm", "jazz trio"], padding=True, truncation=True, max_length=256, return_tensors="pt")
    assert alone["input_ids"].equal(reference["input_ids"]), "without negatives, exactly the prompts' own call"


def test_each_request_in_a_batch_keeps_its_own_negative_prompt(engine):
    requests = [
        settings("calm strings", seed=1, negative_prompt="loud distorted metal guitar drums choir"),
        settings("jazz trio", seed=2),
        settings("lofi beat rain", seed=3, negative_prompt="bright"),
    ]
    together = run_together(engine, requests)
    assert max(r.batch_size for r in together) == 3
    for request, batched in zip(requests, together, strict=True):
        alone = engine.generate(request)
        np.testing.assert_array_equal(alone.codes, batched.codes)
        np.testing.assert_array_equal(alone.audio, batched.audio)


def test_melody_requests_batch_only_with_prefixes_of_their_length_and_match_their_run_alone(melody_engine):
    """The melody model reads text as a prefix, where padding would be attended like text."""
    requests = [
        settings("calm", seed=1),
        settings("epic metal guitar drums bass choir violin", seed=2),
        settings("calm", seed=4, negative_prompt="epic metal guitar drums bass choir violin"),
        settings("warm", seed=5),
    ]
    together = run_together(melody_engine, requests)
    assert [r.batch_size for r in together] == [2, 2, 2, 2]  # "calm" with "warm"; the two of eight tokens
    for request, batched in zip(requests, together, strict=True):
        alone = melody_engine.generate(request)
        np.testing.assert_array_equal(alone.codes, batched.codes)
        np.testing.assert_array_equal(alone.audio, batched.audio)


def test_the_hook_is_gone_after_generation(engine, melody_engine):
    for chosen in (engine, melody_engine):
        chosen.generate(settings(negative_prompt="drums"))
        assert not [name for name in vars(chosen._model) if name.startswith("_prepare_")]


def test_a_fast_mode_engine_takes_a_negative_prompt(tiny_model_dir):
    fast = MusicGenEngine(EngineSpec(model_id=str(tiny_model_dir), fast=True, device="cpu"))
    none = fast.generate(settings())
    steered = fast.generate(settings(negative_prompt="epic metal guitar drums"))
    assert changed(none.codes, steered.codes) > 0.1
