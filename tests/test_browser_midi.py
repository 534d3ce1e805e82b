"""MIDI on the page in a real browser: a .mid as the melody, and the result's notes downloaded as MIDI.

Uses ``tests/test_browser.py``'s Chromium, live server and page helpers (skipped without a Chromium on PATH).
"""

from __future__ import annotations

import io

import mido
import pytest
from playwright.sync_api import expect

from generation.midi.midi_file import midi_bytes
from generation.midi.notes import Note, NoteTrack, parse_note
from tests.test_browser import browser, page, set_duration, wait_for_result  # noqa: F401 - fixtures and helpers

pytestmark = pytest.mark.slow
TUNE = ("C4", "E4", "G4", "C5", "G4", "E4")


def test_a_midi_melody_is_followed_and_the_result_downloads_as_midi(page, tmp_path):  # noqa: F811 - the fixture
    tune = tmp_path / "tune.mid"
    played = tuple(Note(parse_note(n), 0.3 * i, 0.3 * i + 0.28) for i, n in enumerate(TUNE))
    tune.write_bytes(midi_bytes([NoteTrack("melody", played)]))
    page.locator("#midi-melody input[type=file]").set_input_files(tune)
    expect(page.locator("#midi-melody")).to_contain_text("tune.mid")
    page.get_by_text("Export: stems, formats, loudness").click()
    page.locator("#formats").get_by_label("midi").check()
    set_duration(page, 2)
    page.locator("#generate").click()
    wait_for_result(page)

    expect(page.locator("#summary")).to_contain_text("6 notes from the track 'melody'")
    expect(page.locator("#melody-picture img")).to_be_visible()
    link = page.locator("#downloads a[download$='.mid']")
    expect(link).to_have_count(1)
    response = page.request.get(link.get_attribute("href"))
    assert response.ok
    song = mido.MidiFile(file=io.BytesIO(response.body()))
    names = [next((m.name for m in t if m.type == "track_name"), "") for t in song.tracks]
    assert names[1] == "melody"
    assert [m.note for m in song.tracks[1] if m.type == "note_on"] == [n.pitch for n in played]
