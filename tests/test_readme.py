"""The README stays true to the code: its API example runs, its commands and settings exist."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest

from generation.config import ServerConfig
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


@pytest.mark.slow
def test_the_api_examples_for_takes_loops_and_extend_run_against_a_live_server(live_server):
    first, second = [block for block in code_blocks("python") if "gradio_client" in block][:2]
    namespace: dict = {}
    exec(first.replace("http://127.0.0.1:7860/", live_server.url), namespace)  # noqa: S102 - our own README
    exec(second, namespace)  # noqa: S102 - the same client, as a reader would run it
    assert namespace["recipe"]["tempo"]["loop"]["bars"] == 4
    assert len(namespace["recipe"]["takes"]) == 2
    assert Path(namespace["longer"]).is_file()


def test_ci_runs_the_readme_test_command():
    quick_start = code_blocks("bash")[0]
    test_command = next(line for line in quick_start.splitlines() if line.startswith("bash "))
    assert test_command in (ROOT / ".ci" / "run").read_text()


def settings_table() -> dict[str, str]:
    """The README's settings table: variable -> default cell."""
    rows = re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", README, flags=re.M)
    return {name: default.strip() for name, default in rows}


def readme_default(value: object) -> str:
    """How the README writes a default."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{int(value)}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, Path) and value.is_relative_to(tempfile.gettempdir()):
        return f"`<temp>/{value.relative_to(tempfile.gettempdir())}`"
    return f"`{value}`"


def test_the_settings_table_lists_every_server_setting_with_its_default():
    table = settings_table()
    documented = {env: readme_default(default) for env, default, _why in ServerConfig.settings()}
    assert table == documented


def test_only_the_config_module_reads_settings_from_the_environment():
    sources = [*ROOT.glob("generation/**/*.py"), *ROOT.glob("*.py")]
    readers = [path.relative_to(ROOT) for path in sources if re.search(r"os\.environ|os\.getenv", path.read_text())]
    assert readers == [Path("generation/config.py")]
