"""Request settings: defaults, normalisation, and messages that name the bad value."""

from __future__ import annotations

import math

import pytest

from generation.errors import InvalidInputError
from generation.settings import GenerationSettings, normalise_seed


def test_defaults_are_musicgens_own():
    s = GenerationSettings(prompt="x")
    assert (s.duration, s.temperature, s.top_k, s.top_p, s.guidance_scale) == (10.0, 1.0, 250, 0.0, 3.0)
    assert s.seed is None


def test_prompt_whitespace_is_collapsed():
    assert GenerationSettings(prompt="  rainy \n night\t piano ").prompt == "rainy night piano"


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("duration", 0.5, ["duration", "at least 1", "0.5"]),
        ("duration", 301, ["duration", "at most 300", "301"]),
        ("duration", math.nan, ["duration", "nan"]),
        ("duration", "ten", ["duration", "number", "'ten'"]),
        ("temperature", 0, ["temperature", "above 0"]),
        ("temperature", -1, ["temperature"]),
        ("top_k", 2.5, ["top_k", "whole number"]),
        ("top_k", 5000, ["top_k", "2048"]),
        ("top_p", 1.5, ["top_p", "at most 1"]),
        ("guidance_scale", 0.5, ["guidance_scale", "at least 1"]),
        ("guidance_scale", math.inf, ["guidance_scale"]),
        ("seed", -2, ["seed", "random"]),
        ("seed", True, ["seed", "whole number"]),
    ],
)
def test_out_of_range_values_are_refused_with_the_value_named(field, value, words):
    with pytest.raises(InvalidInputError) as info:
        GenerationSettings(prompt="x", **{field: value})
    for word in words:
        assert word in str(info.value)


def test_turning_off_both_top_k_and_top_p_is_refused():
    with pytest.raises(InvalidInputError, match="nothing to sample"):
        GenerationSettings(prompt="x", top_k=0, top_p=0)


def test_overlong_prompt_is_refused_with_its_length():
    with pytest.raises(InvalidInputError, match="2500 characters"):
        GenerationSettings(prompt="a" * 2500)


def test_non_text_prompt_is_refused():
    with pytest.raises(InvalidInputError, match="prompt must be text"):
        GenerationSettings(prompt=42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, None), ("", None), (" ", None), (-1, None), ("-1", None), (7, 7), (7.0, 7), ("12", 12)]
)
def test_seed_inputs_from_ui_and_api_are_normalised(raw, expected):
    assert normalise_seed(raw) == expected


@pytest.mark.parametrize("raw", ["abc", 1.5, math.inf, "1e400"])
def test_nonsense_seed_is_refused(raw):
    with pytest.raises(InvalidInputError, match="seed"):
        normalise_seed(raw)


def test_random_seed_is_drawn_once_and_kept():
    s = GenerationSettings(prompt="x").with_seed()
    assert isinstance(s.seed, int) and 0 <= s.seed <= 2**31 - 1
    assert s.with_seed() is s


def test_settings_round_trip_through_a_dict_and_refuse_unknown_names():
    s = GenerationSettings(prompt="x", seed=3, duration=4)
    assert GenerationSettings.from_dict(s.to_dict()) == s
    with pytest.raises(InvalidInputError, match="bpm"):
        GenerationSettings.from_dict({"prompt": "x", "bpm": 120})
