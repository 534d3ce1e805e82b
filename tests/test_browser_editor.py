"""Editing a song in a real browser: headless Chromium (through Playwright) against ``python app.py``.

Mark a section of a result with two numbers and replace it, then hear its candidates side by side; compose a song
from the table of sections and play it. The browser,
the page's checks (no failed request, no console error) and the helpers are ``tests/test_browser.py``'s.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.test_browser import RATE, WAIT_MS, app_page, browser, fetch_wav, set_slider, wait_for_result  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture
def page(request, live_server):
    with app_page(request.getfixturevalue("browser"), live_server) as page:
        yield page


def test_mark_a_section_of_the_result_and_replace_it(page: Page):
    page.locator("#prompt textarea").fill("slow ambient pads")
    set_slider(page, "duration", 3)
    page.locator("#generate").click()
    wait_for_result(page)

    page.locator("#replace-start input").fill("0.5")
    page.locator("#replace-end input").fill("2")
    set_slider(page, "replace-candidates", 2)
    page.locator("#replace").click()
    summary = page.locator("#summary")
    expect(summary).to_contain_text("Replaced 0.50 s to 2.00 s", timeout=WAIT_MS)
    wait_for_result(page)
    # The two candidates play side by side, the best first; the other can be kept instead
    expect(page.locator("#take-1")).to_be_visible()
    expect(page.locator("#take-2")).to_be_visible()
    expect(page.locator("#take-3")).to_be_hidden()
    with fetch_wav(page, page.locator("#player a[download]")) as wav:
        assert wav.frames == 3 * RATE  # exactly the original's length
    page.locator("#pick-take-2").click()
    expect(page.locator("#downloads a[download$='.wav']")).to_have_count(1)
    expect(summary).to_contain_text("Replaced 0.50 s to 2.00 s")


def test_compose_three_sections_from_the_table_and_play_the_song(page: Page):
    page.get_by_text("Compose a song in sections").click()
    page.locator("#remove-section").click()  # the form's four sections, less the outro
    expect(page.locator("#sections .virtual-row")).to_have_count(3)
    for row in range(3):  # each section one second long
        cell = page.locator(f"#sections [data-testid=cell-{row}-2]")
        cell.dblclick()
        expect(cell.locator("textarea")).to_be_focused()  # in edit mode before selecting (a busy page lags)
        page.keyboard.press("Control+A")
        page.keyboard.type("1")
        expect(cell.locator("textarea")).to_have_value("1")  # the old value replaced, not typed into
        page.keyboard.press("Enter")
    page.locator("#compose").click()
    summary = page.locator("#summary")
    expect(summary).to_contain_text("Sections: 1. soft intro, a few instruments 0.0-1.0 s", timeout=WAIT_MS)
    expect(summary).to_contain_text("3. chorus, full band, bright and catchy 2.0-3.0 s")
    wait_for_result(page)
    with fetch_wav(page, page.locator("#player a[download]")) as wav:
        assert wav.frames == 3 * RATE  # exactly the sum of the sections
    expect(page.locator("#player #duration")).to_have_text("0:03")
    page.locator("#player [data-testid=waveform-controls] button[aria-label='Play']").click()
    expect(page.locator("#player #time")).not_to_have_text("0:00", timeout=WAIT_MS)  # it plays
