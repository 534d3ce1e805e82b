"""Style presets: the shipped files, the {mood} template, merging with a request, and loading user folders."""

from __future__ import annotations

import builtins
import json
import logging
import pathlib
import re
from dataclasses import FrozenInstanceError

import pytest

from generation.errors import InvalidInputError
from generation.presets import (
    BUILTIN_DIR,
    Preset,
    PresetSettings,
    PresetTags,
    load_presets,
    resolve,
)
from generation.settings import GenerationSettings

REQUIRED_STYLES = {
    "lofi-hip-hop",
    "cinematic-orchestral",
    "synthwave",
    "jazz-trio",
    "deep-house",
    "ambient-drone",
    "acoustic-folk",
    "boom-bap",
    "indie-rock",
    "classical-piano",
    "reggaeton",
    "drum-and-bass",
    "funk",
    "trap",
    "chiptune",
    "epic-metal",
}
SHIPPED = load_presets(extra_dir="")  # "" = no user folder, whatever the environment says
SHIPPED_IDS = SHIPPED.ids()
DEFAULTS = GenerationSettings()

GOOD_TOML = """\
id = "{id}"
name = "{name}"
description = "A test preset."
family = "text"
prompt = "Test groove, {{mood}}, warm bass, 100 BPM"

[tags]
genre = "test"
energy = "medium"
instruments = ["bass"]
bpm = 100

[settings]
duration = 5
"""
TAGS_TABLE = '[tags]\ngenre = "test"\nenergy = "medium"\ninstruments = ["bass"]\nbpm = 100\n'


def write_preset(folder: pathlib.Path, preset_id: str, text: str | None = None, name: str = "Test preset") -> None:
    body = text if text is not None else GOOD_TOML.format(id=preset_id, name=name)
    (folder / f"{preset_id}.toml").write_text(body, encoding="utf-8")


def make_preset(prompt: str = "Test groove, {mood}, warm bass, 100 BPM", **settings: float) -> Preset:
    return Preset(
        id="test",
        name="Test",
        description="A test preset.",
        family="either",
        prompt=prompt,
        tags=PresetTags(genre="test", energy="low", instruments=("bass",), bpm=100),
        settings=PresetSettings(**settings),
    )


def assert_clean_prompt(prompt: str) -> None:
    assert prompt, "prompt is empty"
    assert "  " not in prompt, f"double space in {prompt!r}"
    assert prompt[0].isalnum() and prompt[-1].isalnum(), f"punctuation at an end of {prompt!r}"
    assert not re.search(r"\s[,;.]|[,;.]\s*[,;.]", prompt), f"dangling separator in {prompt!r}"
    assert "{" not in prompt and "}" not in prompt, f"unfilled slot in {prompt!r}"


# Shipped presets


def test_at_least_sixteen_presets_ship_with_unique_ids_equal_to_file_stems():
    files = sorted(BUILTIN_DIR.glob("*.toml"))
    assert len(files) >= 16
    assert SHIPPED.problems == ()
    assert SHIPPED_IDS == sorted(path.stem for path in files)
    assert len(set(SHIPPED_IDS)) == len(SHIPPED_IDS)
    for preset in SHIPPED.all():
        assert preset.source is not None and preset.source.stem == preset.id


def test_every_required_style_ships():
    assert REQUIRED_STYLES <= set(SHIPPED_IDS)


@pytest.mark.parametrize("preset_id", SHIPPED_IDS)
@pytest.mark.parametrize("mood", ["", "rainy sunday morning", "  late night,  city lights.  "])
def test_every_shipped_preset_resolves_to_a_clean_prompt_with_and_without_mood(preset_id, mood):
    preset = SHIPPED.get(preset_id)
    settings = resolve(preset, mood)
    assert isinstance(settings, GenerationSettings)
    assert_clean_prompt(settings.prompt)
    assert settings.prompt == preset.render_prompt(mood)
    if mood.strip():
        assert " ".join(mood.split()).strip(" ,.") in settings.prompt
    else:
        assert settings.prompt == preset.render_prompt(None)


@pytest.mark.parametrize("preset_id", SHIPPED_IDS)
def test_every_shipped_preset_is_a_full_description_not_a_genre_word(preset_id):
    preset = SHIPPED.get(preset_id)
    prompt = preset.render_prompt("")
    assert len(prompt.split()) >= 15, f"{preset_id}: describe genre, instruments, production and mood"
    assert f"{preset.tags.bpm} BPM" in prompt, f"{preset_id}: the prompt should name the tagged tempo"
    assert 1.0 <= resolve(preset, "").duration <= 30.0


# The {mood} template


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Lo-fi beat, {mood}, vinyl crackle, 80 BPM", "Lo-fi beat, vinyl crackle, 80 BPM"),
        ("{mood}, lo-fi beat, 80 BPM", "lo-fi beat, 80 BPM"),
        ("Lo-fi beat, 80 BPM, {mood} atmosphere", "Lo-fi beat, 80 BPM"),
        ("Lo-fi beat; {mood}; vinyl crackle", "Lo-fi beat; vinyl crackle"),
        ("Lo-fi beat. {mood} feeling. Vinyl crackle", "Lo-fi beat. Vinyl crackle"),
    ],
)
def test_empty_mood_drops_the_slot_clause_without_dangling_separators(template, expected):
    assert make_preset(template).render_prompt("") == expected
    assert make_preset(template).render_prompt("   ") == expected


def test_mood_text_fills_the_slot_trimmed_of_edge_punctuation_and_extra_spaces():
    preset = make_preset("Lo-fi beat, {mood} atmosphere, 80 BPM")
    assert preset.render_prompt("  rainy \n night!  ") == "Lo-fi beat, rainy night atmosphere, 80 BPM"


def test_mood_text_with_braces_is_inserted_literally():
    assert make_preset().render_prompt("{mood} {x}") == "Test groove, {mood} {x}, warm bass, 100 BPM"


@pytest.mark.parametrize(
    "template",
    ["Lo-fi beat, vinyl crackle", "{mood}, {mood}, lo-fi", "Lo-fi, {Mood}, {mood}", "{mood}", "Lo-fi, {mood}, {bpm}"],
)
def test_template_without_exactly_one_usable_mood_slot_is_refused(template):
    with pytest.raises(InvalidInputError, match="prompt"):
        make_preset(template)


# Merging with a request


def test_explicit_request_values_win_over_the_preset():
    preset = make_preset(duration=20, temperature=0.8, top_k=100, top_p=0.5, guidance_scale=5)
    settings = resolve(preset, "calm", duration=7, seed=42, temperature=1.2, top_k=50, top_p=0.9, guidance_scale=2)
    assert (settings.duration, settings.seed, settings.temperature) == (7.0, 42, 1.2)
    assert (settings.top_k, settings.top_p, settings.guidance_scale) == (50, 0.9, 2.0)


def test_values_not_given_come_from_the_preset_then_the_defaults():
    preset = make_preset(duration=20, temperature=0.8)
    settings = resolve(preset, "calm", top_k=None, guidance_scale=None)
    assert (settings.duration, settings.temperature) == (20.0, 0.8)
    assert (settings.top_k, settings.top_p, settings.guidance_scale) == (
        DEFAULTS.top_k,
        DEFAULTS.top_p,
        DEFAULTS.guidance_scale,
    )
    assert settings.seed is None


def test_no_preset_uses_the_mood_text_as_the_prompt_and_the_defaults():
    settings = resolve(None, "sad piano, slow", duration=5)
    assert settings.prompt == "sad piano, slow"
    assert settings.duration == 5.0
    assert settings.top_k == DEFAULTS.top_k and settings.temperature == DEFAULTS.temperature


def test_an_invalid_explicit_value_is_refused_by_the_settings_rules():
    with pytest.raises(InvalidInputError, match="duration"):
        resolve(SHIPPED.get("lofi-hip-hop"), "calm", duration=450)


def test_settings_dict_holds_only_the_values_the_preset_sets():
    assert make_preset(duration=12, top_p=0.9).settings_dict() == {"duration": 12.0, "top_p": 0.9}
    assert make_preset().settings_dict() == {}


def test_preset_is_frozen():
    with pytest.raises(FrozenInstanceError):
        make_preset().name = "Other"  # type: ignore[misc]


# Loading files


BAD_FILES = [
    # (file stem, the whole text or (old, new) replacements in GOOD_TOML, field reported)
    ("bad-toml", "id = 'bad-toml\nname = ", ""),
    ("missing-name", [('name = "Test preset"\n', "")], "name"),
    ("wrong-type", [('name = "Test preset"', "name = 5")], "name"),
    ("too-long", [("duration = 5", "duration = 450")], "settings.duration"),
    ("nothing-to-sample", [("duration = 5", "top_k = 0")], "settings"),
    ("not-my-name", [('id = "not-my-name"', 'id = "other-name"')], "id"),
    ("unknown-field", [('family = "text"', 'family = "text"\ncolour = "blue"')], "colour"),
    ("has-seed", [("duration = 5", "seed = 3")], "settings.seed"),
    ("bad-energy", [('energy = "medium"', 'energy = "loud"')], "tags.energy"),
    ("bad-bpm", [("bpm = 100", "bpm = 1000")], "tags.bpm"),
    ("no-slot", [("{mood}, ", "")], "prompt"),
    ("bad-family", [('family = "text"', 'family = "piano"')], "family"),
    ("missing-tags", [(TAGS_TABLE, "")], "tags"),
    ("tags-not-table", [(TAGS_TABLE, ""), ('family = "text"', 'family = "text"\ntags = "rock"')], "tags"),
    ("Upper-Case", [], "id"),
]


@pytest.mark.parametrize(("stem", "change", "field"), BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_a_broken_file_is_reported_with_file_and_field_while_the_others_load(tmp_path, stem, change, field):
    text = change if isinstance(change, str) else GOOD_TOML.format(id=stem, name="Test preset")
    for old, new in [] if isinstance(change, str) else change:
        assert old in text
        text = text.replace(old, new)
    write_preset(tmp_path, "good-one")
    write_preset(tmp_path, stem, text)

    library = load_presets(extra_dir=tmp_path)

    assert "good-one" in library
    assert REQUIRED_STYLES <= set(library.ids())
    assert len(library.problems) == 1
    problem = library.problems[0]
    assert pathlib.Path(problem.file).name == f"{stem}.toml"
    assert problem.field == field
    assert problem.message
    assert f"{stem}.toml" in str(problem)


def test_broken_files_are_logged_as_warnings(tmp_path, caplog):
    write_preset(tmp_path, "broken", "this is not toml")
    with caplog.at_level(logging.WARNING, logger="generation.presets"):
        load_presets(extra_dir=tmp_path)
    assert any("broken.toml" in record.getMessage() for record in caplog.records)


def test_non_toml_files_in_a_preset_folder_are_ignored(tmp_path):
    (tmp_path / "README.md").write_text("# notes", encoding="utf-8")
    write_preset(tmp_path, "good-one")
    library = load_presets(extra_dir=tmp_path)
    assert "good-one" in library and library.problems == ()


def test_user_folder_is_read_from_the_environment_variable(tmp_path, monkeypatch):
    write_preset(tmp_path, "my-style")
    monkeypatch.setenv("MOODTAPE_PRESETS_DIR", str(tmp_path))
    assert "my-style" in load_presets()


def test_explicit_folder_replaces_the_environment_variable(tmp_path, monkeypatch):
    (tmp_path / "env").mkdir()
    (tmp_path / "arg").mkdir()
    write_preset(tmp_path / "env", "from-env")
    write_preset(tmp_path / "arg", "from-arg")
    monkeypatch.setenv("MOODTAPE_PRESETS_DIR", str(tmp_path / "env"))
    library = load_presets(extra_dir=tmp_path / "arg")
    assert "from-arg" in library and "from-env" not in library


def test_a_missing_user_folder_is_reported_not_raised(tmp_path):
    library = load_presets(extra_dir=tmp_path / "nowhere")
    assert len(library) == len(SHIPPED)
    assert [pathlib.Path(p.file).name for p in library.problems] == ["nowhere"]


def test_user_preset_overrides_the_builtin_with_the_same_id(tmp_path):
    write_preset(tmp_path, "lofi-hip-hop", name="My lo-fi")
    library = load_presets(extra_dir=tmp_path)
    preset = library.get("lofi-hip-hop")
    assert preset.name == "My lo-fi"
    assert preset.source == tmp_path / "lofi-hip-hop.toml"
    assert len(library) == len(SHIPPED)


def test_a_broken_user_override_leaves_the_builtin_in_place(tmp_path):
    write_preset(tmp_path, "lofi-hip-hop", "id = ")
    library = load_presets(extra_dir=tmp_path)
    assert library.get("lofi-hip-hop") == SHIPPED.get("lofi-hip-hop")
    assert len(library.problems) == 1


# Looking presets up


def test_unknown_preset_id_is_refused_with_known_ids_listed():
    with pytest.raises(InvalidInputError) as info:
        SHIPPED.get("lofi-hiphop")
    message = str(info.value)
    assert "'lofi-hiphop'" in message
    assert "Did you mean 'lofi-hip-hop'?" in message
    assert sum(f"'{preset_id}'" in message for preset_id in SHIPPED_IDS) >= 3


@pytest.mark.parametrize(
    "bad_id", ["../etc/passwd", "a/b", "..", "LOFI", "x" * 200, "a\\b", "lofi.toml", "", " lofi", "-lofi", 7]
)
def test_malformed_preset_ids_are_refused_without_touching_the_filesystem(monkeypatch, bad_id):
    def no_filesystem(*args, **kwargs):
        raise AssertionError("a preset lookup touched the filesystem")

    monkeypatch.setattr(builtins, "open", no_filesystem)
    monkeypatch.setattr(pathlib.Path, "open", no_filesystem)
    monkeypatch.setattr(pathlib.Path, "stat", no_filesystem)
    with pytest.raises(InvalidInputError) as info:
        SHIPPED.get(bad_id)
    message = str(info.value)
    assert "lowercase letters, digits and hyphens" in message
    assert len(message) < 300


def test_uppercase_id_gets_a_lowercase_suggestion():
    with pytest.raises(InvalidInputError, match="Did you mean 'lofi'"):
        SHIPPED.get("LOFI")


@pytest.mark.parametrize("no_choice", [None, "", "  ", "none", "None", "NONE"])
def test_find_treats_empty_and_none_as_no_preset(no_choice):
    assert SHIPPED.find(no_choice) is None


def test_find_returns_the_preset_and_refuses_unknown_ids():
    assert SHIPPED.find("synthwave") is SHIPPED.get("synthwave")
    with pytest.raises(InvalidInputError, match="Unknown preset"):
        SHIPPED.find("polka")


def test_no_preset_may_take_the_reserved_id_none():
    with pytest.raises(InvalidInputError, match="reserved"):
        Preset(
            id="none",
            name="None",
            description="x",
            family="text",
            prompt="Beat, {mood}",
            tags=PresetTags(genre="x", energy="low", instruments=("x",), bpm=90),
        )


def test_all_is_sorted_by_display_name():
    names = [preset.name.casefold() for preset in SHIPPED.all()]
    assert names == sorted(names)


def test_choices_are_label_and_id_pairs_for_a_dropdown():
    choices = SHIPPED.choices()
    assert choices[0] == (SHIPPED.all()[0].name, SHIPPED.all()[0].id)
    assert {value for _, value in choices} == set(SHIPPED_IDS)
    with_none = SHIPPED.choices(include_none=True)
    assert with_none[0] == ("No preset", "none") and SHIPPED.find(with_none[0][1]) is None


def test_describe_lists_every_preset_as_json_ready_dicts():
    described = json.loads(json.dumps(SHIPPED.describe()))
    assert [entry["id"] for entry in described] == [preset.id for preset in SHIPPED.all()]
    lofi = next(entry for entry in described if entry["id"] == "lofi-hip-hop")
    assert {"id", "name", "description", "family", "tags", "settings"} <= set(lofi)
    assert lofi["tags"]["bpm"] == 80 and lofi["settings"]["duration"] == 15.0
    assert lofi["family"] in ("text", "melody", "either")
