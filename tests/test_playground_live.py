"""The playground's "type and hear it live" mode in real headless Chromium against the real
server: typed text goes over the WebSocket and its audio plays before the typing ends."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from harness.browser import chromium
from harness.servers import REPO, ServerProcess

pytestmark = pytest.mark.model

TIMEOUT_S = 120
TEXT = ("The weather is lovely today. We walked along the river after lunch. "
        "Then we sat on a bench and watched the boats go by.")
WORD_PAUSE_S = 0.25  # a quick typist: the text takes about 7 s
SCREENSHOT = REPO / "build" / "playground-live.png"  # under build/: never a tracked file


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    driver = chromium(TIMEOUT_S)
    yield driver
    driver.quit()


def _live(browser: webdriver.Chrome, expression: str) -> object:
    return browser.execute_script(f"return {expression};")


def test_typed_text_is_heard_before_the_typing_ends(browser: webdriver.Chrome,
                                                   http_server: ServerProcess) -> None:
    browser.get(f"{http_server.http_url}/")
    WebDriverWait(browser, TIMEOUT_S).until(
        lambda b: len(Select(b.find_element(By.ID, "voice")).options) > 0)
    browser.find_element(By.ID, "live-start").click()
    WebDriverWait(browser, TIMEOUT_S).until(lambda b: _live(b, "window.live.open"))
    field = browser.find_element(By.ID, "live-text")
    words = re.findall(r"\S+\s*", TEXT)
    played_while_typing: list[float] = []
    for word in words:
        field.send_keys(word)
        time.sleep(WORD_PAUSE_S)
        # Seconds of audio played so far, on the page's own audio clock.
        played = _live(browser, "window.live.firstAudioAt === null ? 0 : "
                       "window.live.context.currentTime - window.live.firstStart")
        assert isinstance(played, int | float)
        if played > 0:
            played_while_typing.append(played)
    assert played_while_typing, "no audio played while the text was typed"
    assert played_while_typing[-1] > played_while_typing[0]  # and it kept playing
    browser.find_element(By.ID, "live-finish").click()
    status = WebDriverWait(browser, TIMEOUT_S).until(
        lambda b: b.find_element(By.ID, "live-status").text.startswith("Done") and
        b.find_element(By.ID, "live-status").text)
    assert "s of speech" in str(status)
    assert browser.find_element(By.ID, "live-error").text == ""
    SCREENSHOT.parent.mkdir(exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))


def test_a_live_error_is_shown_to_the_person(browser: webdriver.Chrome,
                                            http_server: ServerProcess) -> None:
    browser.get(f"{http_server.http_url}/")
    WebDriverWait(browser, TIMEOUT_S).until(
        lambda b: len(Select(b.find_element(By.ID, "voice")).options) > 0)
    browser.execute_script("document.getElementById('speed').value = '2';"
                           "document.getElementById('voice').add(new Option('nobody', "
                           "'nobody', true, true));")
    browser.find_element(By.ID, "live-start").click()
    error = WebDriverWait(browser, TIMEOUT_S).until(
        lambda b: b.find_element(By.ID, "live-error").text or False)
    assert "unknown voice 'nobody'" in str(error)
