"""The README stays the front door: short, its example runs, its commands are the ones CI runs."""

from __future__ import annotations

import re

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
MAX_README_CHARACTERS = 12_000  # a few screens, as audiocraft's (8,360) and whisper's (7,835)
SPACE_KEYS = (
    "title",
    "emoji",
    "colorFrom",
    "colorTo",
    "sdk",
    "sdk_version",
    "app_file",
    "python_version",
    "suggested_hardware",
    "models",
    "preload_from_hub",
    "short_description",
    "license",
    "hf_oauth",
)


def code_blocks(language: str, text: str = README) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def test_the_readme_is_a_few_screens_long():
    assert len(README) <= MAX_README_CHARACTERS, f"README.md is {len(README)} characters; move detail into docs/"


def test_the_readme_starts_with_the_space_front_matter():
    front_matter = README.split("---\n")[1]
    keys = [line.split(":")[0] for line in front_matter.splitlines() if re.match(r"^[a-z_A-Z]+:", line)]
    assert README.startswith("---\n")
    assert tuple(keys) == SPACE_KEYS
    assert "app_file: app.py" in front_matter
    assert "hf_oauth: true" in front_matter  # Hugging Face sign-in: whose library a request reads


def test_the_readme_keeps_the_two_quick_start_commands():
    quick_start = code_blocks("bash")[0]
    assert "pip install torch==2.13.0 -r requirements.txt && python app.py" in quick_start
    assert "bash scripts/test.sh" in quick_start


def test_the_readme_example_is_one_that_runs_against_a_live_server():
    """docs/api.md's examples run against a live server (tests/test_docs.py); the README's is the first of them."""
    example = next(block for block in code_blocks("python") if "gradio_client" in block)
    api_page = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert example == next(block for block in code_blocks("python", api_page) if "gradio_client" in block)


def test_ci_runs_the_readme_test_command():
    quick_start = code_blocks("bash")[0]
    test_command = next(line for line in quick_start.splitlines() if line.startswith("bash "))
    assert test_command in (ROOT / ".ci" / "run").read_text()
