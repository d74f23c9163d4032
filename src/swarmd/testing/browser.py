"""A headless chromium for the dashboard's tests and ``bench/api.py``.

:func:`headless_chromium` starts Debian's ``chromium`` through ``chromedriver``
(selenium) with :data:`CHROMIUM_FLAGS` (nothing beyond loopback, no background
traffic) and a fresh profile directory, yields the driver and removes both.
A browser cannot be downloaded here: without the two binaries it raises
:class:`BrowserMissing` saying which packages to install.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from typing import Iterator

from swarmd.errors import SwarmdError

#: Flags for a headless chromium that reaches nothing beyond loopback.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,900")


class BrowserMissing(SwarmdError, RuntimeError):
    """``chromium`` or ``chromedriver`` is not on ``$PATH``."""


@contextmanager
def headless_chromium() -> Iterator:
    """A ``selenium.webdriver.Chrome`` on a headless chromium with a fresh
    ``--user-data-dir`` (removed afterwards, as is the browser).  Raises
    :class:`BrowserMissing` naming the Debian packages when a binary is missing,
    ``ImportError`` without selenium."""
    from selenium import webdriver  # lazy: selenium is a [dev] extra, only browser tests and bench/api.py use it
    from selenium.webdriver.chrome.service import Service  # lazy: as above
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        raise BrowserMissing("chromium and chromium-driver are not installed; scripts/bootstrap.sh installs them "
                             "(apt-get install chromium chromium-driver)")
    profile = tempfile.mkdtemp(prefix="swarmd-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    try:
        drv = webdriver.Chrome(options=options, service=Service(driver))
        try:
            yield drv
        finally:
            drv.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
