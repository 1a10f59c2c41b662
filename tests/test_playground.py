"""The playground page in real headless Chromium (Debian's chromium and chromium-driver, driven
by Selenium) against the real server: voices fill the picker, speech plays while it streams,
server errors are shown. It also takes a screenshot: build/playground.png (docs/http.md's
docs/playground.png is copied by hand from test_playground_live.py's, which shows both modes)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from harness.browser import chromium
from harness.servers import REPO, ServerProcess

pytestmark = [pytest.mark.model, pytest.mark.tools("chromium", "chromedriver")]

TIMEOUT_S = 120
# Under build/, not docs/: a test run never rewrites a tracked file.
SCREENSHOT = REPO / "build" / "playground.png"
LONG_TEXT = ("The weather is lovely today. We walked along the river after lunch. "
             "Then we sat on a bench and watched the boats go by. Later the wind picked up. "
             "We went home before the rain started, and made a pot of tea.")


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    driver = chromium(TIMEOUT_S, window_size=(900, 640))
    yield driver
    driver.quit()


def _open(browser: webdriver.Chrome, server: ServerProcess) -> None:
    browser.get(f"{server.http_url}/")
    WebDriverWait(browser, TIMEOUT_S).until(
        lambda b: len(Select(b.find_element(By.ID, "voice")).options) > 0)


def test_voice_picker_lists_every_voice_with_language_and_gender(
        browser: webdriver.Chrome, http_server: ServerProcess) -> None:
    _open(browser, http_server)
    picker = Select(browser.find_element(By.ID, "voice"))
    labels = [option.text for option in picker.options]
    assert len(labels) == 54
    assert "af_bella (en-US, female)" in labels
    assert "bm_george (en-GB, male)" in labels
    assert picker.first_selected_option.get_attribute("value") == "af_bella"


def test_speak_plays_before_the_response_has_finished(
        browser: webdriver.Chrome, http_server: ServerProcess) -> None:
    _open(browser, http_server)
    text = browser.find_element(By.ID, "text")
    text.clear()
    text.send_keys(LONG_TEXT)
    browser.find_element(By.ID, "speak").click()
    # Sample, from the page, the player's clock and whether the response is still arriving.
    samples: list[tuple[bool, float]] = []
    seen_open = False
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        is_open, played_s = browser.execute_script(
            "return [window.playground.open, document.getElementById('player').currentTime];")
        samples.append((is_open, played_s))
        seen_open = seen_open or is_open
        if seen_open and not is_open:
            break  # the response has finished
        time.sleep(0.1)
    playing_while_open = [played_s for is_open, played_s in samples if is_open and played_s > 0]
    assert len(playing_while_open) >= 2, samples
    assert playing_while_open[-1] > playing_while_open[0] + 0.5, samples  # it advanced
    link = WebDriverWait(browser, TIMEOUT_S).until(
        lambda b: b.find_element(By.ID, "download") if b.find_element(
            By.ID, "download").is_displayed() else False)
    assert link.get_attribute("download") == "speech.mp3"
    assert browser.find_element(By.ID, "error").text == ""
    SCREENSHOT.parent.mkdir(exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))


def test_a_server_error_is_shown_to_the_person(
        browser: webdriver.Chrome, http_server: ServerProcess) -> None:
    _open(browser, http_server)
    browser.find_element(By.ID, "text").clear()
    browser.find_element(By.ID, "speak").click()
    error = WebDriverWait(browser, TIMEOUT_S).until(
        lambda b: b.find_element(By.ID, "error").text or False)
    assert "text is empty" in error
    assert browser.find_element(By.ID, "error").is_displayed()


def test_the_language_follows_the_voice_and_can_be_changed(
        browser: webdriver.Chrome, http_server: ServerProcess) -> None:
    _open(browser, http_server)
    language = Select(browser.find_element(By.ID, "language"))
    assert len(language.options) == 9
    assert language.first_selected_option.get_attribute("value") == "en-US"
    Select(browser.find_element(By.ID, "voice")).select_by_value("ff_siwis")
    assert language.first_selected_option.get_attribute("value") == "fr-FR"
    language.select_by_value("en-GB")
    assert language.first_selected_option.get_attribute("value") == "en-GB"
