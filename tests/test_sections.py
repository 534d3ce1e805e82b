"""Compose's sections: read from JSON, refused with a clear message, their seeds and exact sample bounds."""

from __future__ import annotations

import json

import pytest

from generation.editing.sections import (
    MAX_SECTIONS,
    Section,
    parse_sections,
    section_bounds,
    section_seed,
    total_seconds,
)
from generation.errors import InvalidInputError
from generation.settings import MAX_SEED


def test_sections_in_seconds_and_bars():
    text = json.dumps(
        [
            {"prompt": "soft piano intro", "seconds": 4.5},
            {"prompt": "  the   band comes in ", "bars": 4, "preset": "lofi"},
        ]
    )
    intro, verse = parse_sections(text, bpm=120.0)
    assert intro == Section("soft piano intro", 4.5)
    assert verse == Section("the band comes in", 8.0, bars=4, preset="lofi")
    assert total_seconds((intro, verse)) == 12.5


def test_a_parsed_list_is_read_as_its_json_would_be():
    sections = [{"prompt": "intro", "seconds": 2}, {"preset": "lofi", "seconds": 3}]
    assert parse_sections(sections) == parse_sections(json.dumps(sections))
    assert parse_sections(sections)[1].label(1) == "2: lofi"


def test_bounds_tile_the_song_exactly_at_any_rate():
    sections = parse_sections([{"prompt": "x", "bars": b} for b in (3, 5, 7, 2)], bpm=131.0)
    for rate in (32_000, 44_100, 48_000):
        bounds = section_bounds(sections, rate)
        assert bounds[0] == 0 and bounds[-1] == round(total_seconds(sections) * rate)
        for section, start, end in zip(sections, bounds, bounds[1:], strict=False):
            assert abs((end - start) - section.seconds * rate) < 1


def test_section_seeds_follow_the_request_seed_and_wrap():
    assert [section_seed(7, k) for k in range(3)] == [7, 8, 9]
    assert section_seed(MAX_SEED, 1) == 0


@pytest.mark.parametrize(
    ("value", "bpm", "words"),
    [
        ("", None, "sections is empty"),
        ("   ", None, "sections is empty"),
        ("[]", None, "empty list"),
        (json.dumps([{"prompt": "x", "seconds": 2}] * (MAX_SECTIONS + 1)), None, "holds 13 sections; at most 12"),
        ("[{'prompt': 'x'}]", None, "not valid JSON"),
        ('{"prompt": "x", "seconds": 2}', None, "must be a list"),
        ('["intro"]', None, "section 1 must be an object"),
        ('[{"prompt": "x", "seconds": 2}, {"seconds": 3}]', None, "section 2 has no prompt"),
        ('[{"prompt": "  ", "seconds": 3}]', None, "section 1 has no prompt"),
        ('[{"prompt": 5, "seconds": 3}]', None, "prompt must be text"),
        ('[{"prompt": "x", "bars": 4}]', None, "bars need a tempo: give bpm"),
        ('[{"prompt": "x", "seconds": 31}]', None, "section 1 is 31 s; a section lasts 1 to 30 s"),
        ('[{"prompt": "x", "bars": 16}]', 120.0, "16 bars at 120 BPM (32.00 s)"),
        ('[{"prompt": "x", "seconds": 0.5}]', None, "lasts 1 to 30 s"),
        ('[{"prompt": "x", "seconds": "ten"}]', None, "seconds must be a number of seconds, got 'ten'"),
        ('[{"prompt": "x", "seconds": NaN}]', None, "seconds must be a number"),
        ('[{"prompt": "x", "seconds": true}]', None, "seconds must be a number"),
        ('[{"prompt": "x", "bars": 2.5}]', 120.0, "whole number of bars, 1 or more, got 2.5"),
        ('[{"prompt": "x", "bars": 0}]', 120.0, "1 or more"),
        ('[{"prompt": "x"}]', None, 'needs "seconds" or "bars" (one of them), got neither'),
        ('[{"prompt": "x", "seconds": 2, "bars": 1}]', 120.0, "got both"),
        ('[{"prompt": "x", "secs": 2}]', None, "unknown field(s) ['secs']"),
        ('[{"prompt": "x", "seconds": 2, "preset": 3}]', None, "preset must be a preset's id"),
    ],
)
def test_bad_sections_are_refused_naming_the_fault(value, bpm, words):
    with pytest.raises(InvalidInputError) as caught:
        parse_sections(value, bpm=bpm)
    assert words in str(caught.value)


def test_missing_sections_are_refused():
    with pytest.raises(InvalidInputError, match="sections is missing"):
        parse_sections(None)
    with pytest.raises(InvalidInputError, match="must be a list"):
        parse_sections(12)
