"""Headless Chromium for the playground tests: Debian's chromium and chromium-driver, driven by
Selenium, both paths given so that Selenium Manager never looks for (or downloads) a browser."""

from __future__ import annotations

import shutil

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def chromium(script_timeout_s: float, window_size: tuple[int, int] = (900, 900)
             ) -> webdriver.Chrome:
    """A headless browser that may play audio without a click (muted)."""
    if shutil.which(CHROMEDRIVER) is None:
        raise RuntimeError("chromium-driver is missing: `make install` installs it "
                           "(APT_PACKAGES)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size={},{}".format(*window_size),
                     "--autoplay-policy=no-user-gesture-required", "--mute-audio"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_script_timeout(script_timeout_s)
    return driver
