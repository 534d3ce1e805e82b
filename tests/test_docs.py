"""The pages in docs/ stay true to the code: links resolve, API examples run, the settings table is ServerConfig."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest

from generation.config import ServerConfig
from tests.conftest import ROOT

DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
API_PAGE = (DOCS / "api.md").read_text(encoding="utf-8")
SETTINGS_PAGE = (DOCS / "settings.md").read_text(encoding="utf-8")
DEFAULT_URL = "http://127.0.0.1:7860/"


def code_blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {anchor(heading) for heading in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def test_the_docs_have_a_page_for_each_readers_question():
    names = {page.name for page in PAGES}
    expected = {"usage", "api", "settings", "performance", "deploying", "architecture", "reliability"}
    assert {f"{name}.md" for name in expected} <= names


@pytest.mark.parametrize("page", [ROOT / "README.md", *PAGES, ROOT / "benchmarks" / "results.md"], ids=str)
def test_every_relative_link_points_to_a_file_that_exists(page: Path):
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(target)
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(target)
    assert broken == [], f"{page.relative_to(ROOT)} links to missing files or headings: {broken}"


@pytest.mark.parametrize("page", [ROOT / "README.md", *PAGES], ids=str)
def test_no_page_tells_the_history_by_issue_number(page: Path):
    text = page.read_text(encoding="utf-8")
    mentions = re.findall(r"\bissues?\s+#?\d+|(?<![\w&])#\d+\b", text, flags=re.I)
    assert mentions == [], f"{page.relative_to(ROOT)} mentions {mentions}: say what is, not how it came to be"


def client_examples() -> list[str]:
    return [block for block in code_blocks(API_PAGE, "python") if "client" in block]


@pytest.mark.slow
def test_the_api_page_documents_every_endpoint_and_parameter(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    public = {name: info for name, info in endpoints.items() if not name.startswith("/ui_")}
    assert set(public) >= {"/generate", "/generate_stream", "/extend", "/presets", "/models"}
    for endpoint, info in public.items():
        assert f"## {endpoint}" in API_PAGE, f"docs/api.md has no section for {endpoint}: add one, with an example"
        for parameter in info["parameters"]:
            name = parameter["parameter_name"]
            assert f"`{name}`" in API_PAGE, f"docs/api.md does not mention {endpoint}'s parameter {name!r}"


@pytest.mark.slow
def test_the_api_pages_client_examples_run_against_a_live_server(live_server, monkeypatch):
    monkeypatch.chdir(ROOT)  # the examples name hums under examples/, as a reader in the repository would
    examples = client_examples()
    assert DEFAULT_URL in examples[0]
    namespace: dict = {}
    after: dict[str, dict] = {}  # what each example left behind, by a phrase in it
    for example in examples:
        exec(example.replace(DEFAULT_URL, live_server.url), namespace)  # noqa: S102 - our own docs
        after[example] = dict(namespace)

    def state(phrase: str) -> dict:
        return next(values for example, values in after.items() if phrase in example)

    first = state("rainy night")
    assert first["recipe"]["settings"]["duration"] == 5.0
    assert len(first["styles"]) >= 16
    hum = state("melody=handle_file")
    assert hum["recipe"]["melody"] and hum["melody_picture"]
    export = state("formats=")
    assert {Path(path).suffix for path in export["downloads"]} >= {".wav", ".flac", ".mp3", ".zip", ".json"}
    assert export["recipe"]["export"]["sample_rate"] == 48000
    loops = state("bpm=90")
    assert loops["recipe"]["tempo"]["loop"]["bars"] == 2
    assert len(loops["recipe"]["takes"]) == 2
    assert Path(loops["longer"]).is_file()
    replaced = state('api_name="/replace"')
    assert (replaced["recipe"]["replace"]["start"], replaced["recipe"]["replace"]["end"]) == (1.0, 2.5)
    assert Path(replaced["fixed"]).is_file()
    composed = state('api_name="/compose"')
    assert len(composed["recipe"]["sections"]) == 2 and Path(composed["song"]).is_file()
    stream = state("/generate_stream")
    assert Path(stream["audio"]).is_file() and stream["recipe"]["settings"]["duration"] == 6.0
    models = state('api_name="/models"')
    assert {model["name"] for model in models["models"]} >= {"text", "melody"}
    error = state("AppError")
    assert "duration" in error["message"] and "100000" in error["message"]


def test_the_library_example_runs(tiny_model_dir: Path, monkeypatch):
    monkeypatch.setenv("MUSICGEN_MODEL", str(tiny_model_dir))
    example = next(block for block in code_blocks(API_PAGE, "python") if "MusicGenEngine" in block)
    namespace: dict = {}
    exec(example, namespace)  # noqa: S102 - our own docs
    result = namespace["result"]
    assert result.audio.shape[-1] == 5 * result.sample_rate


def settings_table() -> dict[str, str]:
    """docs/settings.md's table: variable -> default cell."""
    rows = re.findall(r"^\| `([A-Z_]+)` \| ([^|]+) \|", SETTINGS_PAGE, flags=re.M)
    return {name: default.strip() for name, default in rows}


def documented_default(value: object) -> str:
    """How the settings page writes a default."""
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
    documented = {env: documented_default(default) for env, default, _why in ServerConfig.settings()}
    assert table == documented


def test_only_the_config_module_reads_settings_from_the_environment():
    sources = [*ROOT.glob("generation/**/*.py"), *ROOT.glob("*.py")]
    readers = [path.relative_to(ROOT) for path in sources if re.search(r"os\.environ|os\.getenv", path.read_text())]
    assert readers == [Path("generation/config.py")]
