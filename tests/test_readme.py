"""The README stays true to the code: its API example runs, its commands and settings exist."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


@pytest.mark.slow
def test_the_api_example_runs_against_a_live_server(live_server):
    example = next(block for block in code_blocks("python") if "gradio_client" in block)
    namespace: dict = {}
    exec(example.replace("http://127.0.0.1:7860/", live_server.url), namespace)  # noqa: S102 - our own README
    assert namespace["recipe"]["settings"]["duration"] == 8.0
    assert len(namespace["styles"]) >= 16


def test_ci_runs_the_readme_test_command():
    quick_start = code_blocks("bash")[0]
    test_command = next(line for line in quick_start.splitlines() if line.startswith("bash "))
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_every_environment_setting_the_code_reads_is_documented():
    sources = [*ROOT.glob("generation/*.py"), ROOT / "app.py"]
    names = set()
    for path in sources:
        text = path.read_text(encoding="utf-8")
        names |= set(re.findall(r'os\.environ\.get\("([A-Z_]+)"', text))
        names |= set(re.findall(r'^[A-Z_]*ENV[A-Z_]* = "([A-Z_]+)"', text, flags=re.M))
    assert names, "the scan found the settings"
    missing = sorted(name for name in names if f"`{name}`" not in README)
    assert not missing, f"README's settings table lacks {missing}"
