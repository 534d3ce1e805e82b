"""MIDI on the page in a real browser: a .mid as the melody, the result's notes downloaded as MIDI, and a
recording or the track turned into a .mid and a piano roll under "Notes as MIDI".

Uses ``tests/test_browser.py``'s Chromium, live server and page helpers (skipped without a Chromium on PATH).
"""

from __future__ import annotations

import io
import re

import mido
import pytest
from playwright.sync_api import expect

from generation.midi.midi_file import midi_bytes
from generation.midi.notes import Note, NoteTrack, parse_note
from tests.audio_factory import hum, write_audio
from tests.test_browser import WAIT_MS, browser, page, set_duration, wait_for_result  # noqa: F401 - fixtures and helpers

pytestmark = pytest.mark.slow
TUNE = ("C4", "E4", "G4", "C5", "G4", "E4")
SUNG = ("C4", "E4", "G4", "F#4", "E4", "C4")  # the hum transcribed on the page


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
    wait_for_result(page, timeout_ms=3 * WAIT_MS)  # a shared machine can take minutes for 2 s

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

    # the track itself, turned into notes under "Notes as MIDI": with no recording given, the player's track
    page.get_by_text("Notes as MIDI: transcribe this track or a recording").click()
    page.locator("#transcribe").click()
    # the tiny random model's track is noise: the refusal names the track's own file, so the track was sent
    toast = page.locator("[data-testid=toast-body]")
    expect(toast).to_contain_text(re.compile(r"No notes heard in 'moodtape_.*_seed\d+\.wav'"), timeout=WAIT_MS)
    expect(toast).not_to_contain_text("Traceback")


def test_nothing_to_transcribe_is_named_then_a_hum_becomes_a_midi_file_and_a_piano_roll(page, tmp_path):  # noqa: F811
    page.get_by_text("Notes as MIDI: transcribe this track or a recording").click()
    page.locator("#transcribe").click()  # no track made yet and no recording given
    toast = page.locator("[data-testid=toast-body]")
    expect(toast).to_contain_text("Nothing to transcribe")
    expect(toast).not_to_contain_text("Traceback")
    page.locator("[data-testid=toast-close]").first.click()

    sung = write_audio(tmp_path / "my-hum", hum(SUNG, note_seconds=0.5, rate=32_000), 32_000, "wav_16")
    page.locator("#transcribe-recording input[type=file]").set_input_files(sung)
    expect(page.locator("#transcribe-recording #duration")).to_have_text("0:03")  # the upload is in and decoded
    page.locator("#transcribe").click()

    expect(page.locator("#transcribe-notes textarea")).to_have_value(
        re.compile(r"melody \(6 notes\): C4 0\.0"), timeout=WAIT_MS  # the first call compiles pYIN's numba code
    )
    roll = page.locator("#piano-roll img")
    expect(roll).to_be_visible()
    assert roll.evaluate("img => img.complete && img.naturalWidth > 0"), "the piano roll did not load"
    link = page.locator("#transcribe-midi a[download$='.mid']")
    expect(link).to_have_count(1)
    response = page.request.get(link.get_attribute("href"))
    assert response.ok
    song = mido.MidiFile(file=io.BytesIO(response.body()))
    assert [m.name for t in song.tracks for m in t if m.type == "track_name"] == ["my-hum", "melody"]
    assert [m.note for m in song.tracks[1] if m.type == "note_on" and m.velocity] == [parse_note(n) for n in SUNG]
