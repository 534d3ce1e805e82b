"""The library on the page: whose it is, which of its files a visitor may fetch, and the Library tab.

The owner of a request comes from one rule (``OwnerRule``): on a Hugging Face Space the signed-in user's name
(``gr.OAuthProfile``; an anonymous visitor has none and keeps the per-tab history only), elsewhere one local
owner. ``build_app`` takes another rule for tests (a request header, say), as Gradio's own stand-in for sign-in
calls the hub.

Gradio serves any file under ``allowed_paths`` to whoever asks for its path (``/gradio_api/file=<path>``). The
library's folder is allowed, so its owner's player and downloads work; ``LibraryFileGuard`` stands in front of
Gradio and answers 403 for a file in the library's folder unless the request's owner owns it, whatever path
(``..``, an id of someone else's) is sent. The copies Gradio hands out from its cache are named by a keyed
hash of their contents, which no one guesses.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
from starlette.requests import Request as StarletteRequest
from starlette.responses import PlainTextResponse

from generation.config import ServerConfig
from generation.editing.compose import ComposeRequest
from generation.editing.sections import SECTION_COLUMNS
from generation.errors import MoodtapeError
from generation.library import KEYS, LOCAL_OWNER, SIGN_IN, Entry, Library, Search, embedded_recipe, library_status
from generation.studio import Studio

if TYPE_CHECKING:
    from page import ComposeArea

log = logging.getLogger("moodtape.library")

OwnerRule = Callable[[Any], "str | None"]  # a request (Gradio's or Starlette's) -> its owner, or None: no library
TABLE_COLUMNS = ["created", "prompt", "seconds", "bpm", "key", "model", "id"]


def local_owner(request: Any) -> str:
    """Everyone who reaches a local server is its one user."""
    return LOCAL_OWNER


def hugging_face_owner(request: Any) -> str | None:
    """The signed-in Hugging Face user's name (their ``gr.OAuthProfile``), or None for an anonymous visitor."""
    underlying = getattr(request, "request", None) or request
    scope = getattr(underlying, "scope", None)
    session = scope.get("session", {}) if isinstance(scope, dict) else getattr(underlying, "session", None) or {}
    info = session.get("oauth_info") if hasattr(session, "get") else None
    if not info or info.get("expires_at", math.inf) < time.time() or not info.get("userinfo"):
        return None
    return gr.OAuthProfile(info["userinfo"]).username


def owner_rule_for(config: ServerConfig) -> OwnerRule:
    """Hugging Face sign-in on a Space, one local owner elsewhere."""
    return hugging_face_owner if config.space_id else local_owner


def request_owner(rule: OwnerRule, request: Any = None) -> str | None:
    """The owner of ``request`` (default: the request Gradio is handling now) by ``rule``."""
    if request is None:
        from gradio.context import LocalContext

        request = LocalContext.request.get(None)
    return rule(request) if request is not None else None


class LibraryFileGuard:
    """ASGI middleware: a file inside the library's folder goes only to the owner of its entry; nothing else changes."""

    def __init__(self, app: Any, library: Library, owner_rule: OwnerRule):
        self.app = app
        self.library = library
        self.owner_rule = owner_rule

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and "/file=" in scope.get("path", ""):
            path = scope["path"].split("/file=", 1)[1]
            if self._inside_library(path) and not self._owner_may_fetch(path, StarletteRequest(scope)):
                await PlainTextResponse("File not allowed.", status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _inside_library(self, path: str) -> bool:
        root = str(self.library.root)
        return any(
            seen == root or seen.startswith(root + os.sep) for seen in (os.path.abspath(path), os.path.realpath(path))
        )

    def _owner_may_fetch(self, path: str, request: StarletteRequest) -> bool:
        try:
            owner = self.owner_rule(request)
        except Exception:  # a rule that cannot tell the owner gives no one access
            log.exception("The owner rule failed on a file request")
            return False
        return owner is not None and self.library.owner_of(os.path.realpath(path)) == owner


def guard_kwargs(studio: Studio, owner_rule: OwnerRule) -> dict[str, Any]:
    """``demo.launch`` settings for the library: its folder allowed, behind ``LibraryFileGuard``."""
    library = studio.track_library
    if library is None:
        return {}
    from starlette.middleware import Middleware

    middleware = Middleware(LibraryFileGuard, library=library, owner_rule=owner_rule)
    return {"allowed_paths": [str(library.root)], "app_kwargs": {"middleware": [middleware]}}


# -- The tab -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LibraryTab:
    """The Library tab's parts: search and filters, the list, the chosen entry's player, files and actions."""

    where: gr.Markdown  # whose library, how full, or why there is none
    query: gr.Textbox
    bpm_min: gr.Number
    bpm_max: gr.Number
    key: gr.Dropdown
    model: gr.Dropdown
    search: gr.Button
    table: gr.Dataframe
    shown: gr.State  # the entries listed, as JSON dicts, in the table's order
    chosen: gr.State  # the id of the entry picked in the list
    player: gr.Audio
    downloads: gr.File
    extend: gr.Button
    replace: gr.Button
    use_as_melody: gr.Button
    open_in_compose: gr.Button
    delete: gr.Button
    actions: gr.Row  # the picked entry's buttons

    @property
    def filters(self) -> list[gr.Component]:
        return [self.query, self.bpm_min, self.bpm_max, self.key, self.model]

    @property
    def listing(self) -> list[gr.Component]:
        """What a search updates."""
        return [self.where, self.table, self.shown]


def library_tab(studio: Studio) -> LibraryTab:
    """The tab's widgets (inside a ``gr.Tab``); ``wire_library`` gives them their handlers."""
    where = gr.Markdown(elem_id="library-where")
    with gr.Row(equal_height=True):
        query = gr.Textbox(label="Search", placeholder="words of the prompt, preset or model", scale=3)
        bpm_min = gr.Number(label="BPM from", value=None, minimum=0, maximum=1000, scale=1)
        bpm_max = gr.Number(label="BPM to", value=None, minimum=0, maximum=1000, scale=1)
        key = gr.Dropdown(["any", *KEYS], value="any", label="Key", scale=1)
        model = gr.Dropdown(["any", *studio.models.names], value="any", label="Model", scale=1)
        search = gr.Button("Search", variant="primary", scale=1, elem_id="library-search")
    table = gr.Dataframe(
        headers=TABLE_COLUMNS,
        value=[],
        interactive=False,
        wrap=True,
        label="Your tracks, newest first (pick one to play, download or use it)",
        elem_id="library-table",
    )
    with gr.Row():
        player = gr.Audio(label="Picked track", type="filepath", interactive=False, buttons=["download"], scale=2)
        downloads = gr.File(label="Its files", file_count="multiple", interactive=False, scale=1)
    with gr.Row() as actions:
        extend = gr.Button("Extend", size="sm", elem_id="library-extend")
        replace = gr.Button("Replace a section", size="sm", elem_id="library-replace")
        use_as_melody = gr.Button("Use as melody", size="sm", elem_id="library-melody")
        open_in_compose = gr.Button("Open in compose", size="sm", elem_id="library-compose")
        delete = gr.Button("Delete", size="sm", variant="stop", elem_id="library-delete")
    return LibraryTab(
        where, query, bpm_min, bpm_max, key, model, search, table, gr.State([]), gr.State(None), player, downloads,
        extend, replace, use_as_melody, open_in_compose, delete, actions,
    )  # fmt: skip


def wire_library(
    demo: gr.Blocks,
    studio: Studio,
    owner_rule: OwnerRule,
    tab: LibraryTab,
    *,
    tabs: gr.Tabs,
    create_tab: str,
    player: gr.Audio,
    melody: gr.Component,
    compose: ComposeArea,
    song: list[gr.Component],
    requests: list[Any],
) -> None:
    """The tab's handlers: search (on load, and after each of the page's tracks), pick, delete. Extend and Replace
    put the picked track in the Create tab's ``player`` (whose Extend and Replace buttons edit it), Use as melody
    in ``melody``; Open in compose fills the ``compose`` table and ``song`` (the seed, BPM and key inputs) with
    what makes the track again, so a creator can rework one section and keep the rest."""
    private = {"api_visibility": "private"}

    def search(query: str, bpm_min: Any, bpm_max: Any, key: str, model: str, request: gr.Request) -> tuple:
        owner = request_owner(owner_rule, request)
        library = studio.track_library
        if library is None or owner is None:
            return (SIGN_IN if library is not None else library_status(None, studio.config)), [], []
        try:
            filters = Search.of(query, bpm_min, bpm_max, _any(key), _any(model))
            entries = library.search(owner, filters)
        except MoodtapeError as e:
            raise gr.Error(str(e)) from e
        return _where(library, owner, len(entries)), _rows(entries), [entry.to_dict() for entry in entries]

    def pick(shown: list[dict], event: gr.SelectData) -> tuple:
        row = event.index[0] if isinstance(event.index, (list, tuple)) else event.index
        if not isinstance(row, int) or not 0 <= row < len(shown):
            return None, None, None
        entry = shown[row]
        return entry["id"], entry["files"][0], entry["files"]

    def delete(
        chosen: str | None, query: str, bpm_min: Any, bpm_max: Any, key: str, model: str, request: gr.Request
    ) -> tuple:
        owner = request_owner(owner_rule, request)
        if studio.track_library is None or owner is None or not chosen:
            raise gr.Error("Pick a track in the list first: then it can be deleted.")
        try:
            studio.track_library.delete(owner, chosen)
        except MoodtapeError as e:
            raise gr.Error(str(e)) from e
        gr.Info("Deleted from your library, with its files.")
        return (None, None, None, *search(query, bpm_min, bpm_max, key, model, request))

    def to_create_tab(what: str) -> Callable[[str | None], tuple]:
        def open_in_create_tab(path: str | None) -> tuple:
            if not path:
                raise gr.Error(f"Pick a track in the list first: then it can be {what}.")
            return path, gr.Tabs(selected=create_tab)

        return open_in_create_tab

    def open_in_compose(path: str | None) -> tuple:
        if not path:
            raise gr.Error("Pick a track in the list first: then it can be opened in compose.")
        recipe = embedded_recipe(path)
        if recipe is None:
            raise gr.Error(f"{Path(path).name} carries no recipe, so there is nothing to compose from.")
        song = ComposeRequest.starting_from(recipe)
        rows = [[section.get(column) for column in SECTION_COLUMNS] for section in song.sections]
        return rows, song.seed, song.bpm, song.key, gr.Accordion(open=True), gr.Tabs(selected=create_tab)

    listing = {"fn": search, "inputs": tab.filters, "outputs": tab.listing, **private}
    tab.search.click(**listing)
    tab.query.submit(**listing)
    demo.load(**listing)
    for request in requests:  # a track made on the page shows in the list without a search
        request.then(**listing)
    tab.table.select(pick, tab.shown, [tab.chosen, tab.player, tab.downloads], **private)
    tab.delete.click(
        delete, [tab.chosen, *tab.filters], [tab.chosen, tab.player, tab.downloads, *tab.listing], **private
    )
    for button, what, how in (
        (tab.extend, "extended", "set the seconds to add and press Extend"),
        (tab.replace, "edited", "set the section's start and end and press Replace"),
    ):
        button.click(to_create_tab(what), tab.player, [player, tabs], **private).then(
            partial(gr.Info, f"The track is in the player: {how}."), **private
        )
    tab.use_as_melody.click(to_create_tab("used as a melody"), tab.player, [melody, tabs], **private)
    tab.open_in_compose.click(open_in_compose, tab.player, [compose.table, *song, compose.area, tabs], **private)


def _any(value: str | None) -> str | None:
    return None if value in (None, "", "any") else value


def _where(library: Library, owner: str, found: int) -> str:
    used = library.used_bytes(owner) / (1024 * 1024)
    return f"{found} shown · {used:.1f} MB of your {library.max_mb:g} MB used · kept in `{library.root}`"


def _rows(entries: list[Entry]) -> list[list[Any]]:
    return [
        [e.created[:16].replace("T", " "), e.prompt, e.seconds, e.bpm, e.key or "", e.model or "", e.id]
        for e in entries
    ]
