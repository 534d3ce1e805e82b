"""Editing a song in a real browser: headless Chromium (through Playwright) against ``python app.py``.

Mark a section of a result with two numbers and replace it, then hear its candidates side by side. The browser,
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

