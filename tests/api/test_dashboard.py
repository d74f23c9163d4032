"""The dashboard in a real headless browser (Debian's chromium through chromium-driver and selenium).

It signs in with the token, sees an objective submitted through the API appear
live and its cancellation change its state live (server-sent events), approves a
parked action, and takes the screenshots the README shows (dashboard-*.png) into
``$SWARMD_SCREENSHOTS`` (scripts/dashboard_screenshots.py sets it to docs/), else a temporary
directory: a test run leaves the committed images alone.
Sessions and forms: the cookie is HttpOnly and SameSite=Strict, a form post
without the CSRF field is refused, the cookie opens no ``/api/`` POST.
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from swarmd.agent import approvals
from swarmd.governor.policy import Decision

LABELED = {"action": "classify", "labels": ["feat", "fix"]}


#: Where :func:`test_dashboard_live_objective_and_approval` writes its screenshots, when set.
SCREENSHOTS_ENV = "SWARMD_SCREENSHOTS"


@pytest.fixture
def shots(tmp_path) -> Path:
    """The directory the screenshots go to: ``$SWARMD_SCREENSHOTS``, else the test's temporary one."""
    return Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path)


@pytest.fixture
def browser():
    pytest.importorskip("selenium.webdriver")
    from swarmd.testing.browser import BrowserMissing, headless_chromium
    try:
        with headless_chromium() as drv:
            yield drv
    except BrowserMissing as exc:
        pytest.fail(str(exc), pytrace=False)


def test_dashboard_live_objective_and_approval(idle_swarm, browser, redis_conn, shots):
    from selenium.webdriver.common.by import By
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    swarm = idle_swarm
    # a page being replaced (sign-in's redirect, a row the live stream redraws) leaves stale
    # elements behind: those polls are retried, like an element not there yet
    wait = WebDriverWait(browser, 60, poll_frequency=0.1,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
    browser.get(swarm.url + "/objectives")
    assert browser.current_url.endswith("/login")              # no session: sent to sign in
    browser.find_element(By.ID, "token").send_keys(swarm.token)
    browser.find_element(By.ID, "sign-in").click()
    wait.until(lambda d: d.find_element(By.TAG_NAME, "h1").text == "Overview")
    cookie = browser.get_cookie("swarmd_session")
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and swarm.token not in cookie["value"]

    browser.get(swarm.url + "/objectives")
    wait.until(lambda d: d.find_element(By.ID, "live").text == "live")
    with swarm.client() as api:
        assert api.post("/api/v1/objectives", json={"id": "live1", "input": "fix the parser", **LABELED}
                        ).status_code == 202
        # read inside the wait: the live stream may redraw the row between two reads
        href = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, 'tr[data-id="live1"] a').get_attribute("href"))
        assert href.endswith("/objectives/live1")
        wait.until(lambda d: api.get("/api/v1/objectives/live1").json().get("state") == "queued")
        assert api.post("/api/v1/objectives/live1/cancel").status_code == 200
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, 'tr[data-id="live1"] .state').text == "cancelled")
    browser.save_screenshot(str(shots / "dashboard-objectives.png"))

    ask = Decision("ask", "shell.network", "network access needs approval")
    pipe = redis_conn.pipeline()
    approvals.park(pipe, {"id": "park1", "action": "agent", "input": "download the release notes"}, 0,
                   "run_shell", {"command": "curl https://example.invalid/notes"}, ask,
                   {"workspace": "/var/lib/swarmd/workspaces/park1"})
    pipe.execute()
    browser.get(swarm.url + "/approvals")
    row = browser.find_element(By.CSS_SELECTOR, 'tr[data-id="park1"]')
    assert "shell.network" in row.text and "/var/lib/swarmd/workspaces/park1" in row.text
    browser.save_screenshot(str(shots / "dashboard-approvals.png"))
    row.find_element(By.CSS_SELECTOR, "button.approve").click()
    wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, 'tr[data-id="park1"]'))
    assert approvals.load(redis_conn, "park1")["resolution"]["by"] == "dashboard"

    browser.get(swarm.url + "/")
    assert "cancelled" in browser.find_element(By.ID, "objectives").text
    assert browser.find_elements(By.CSS_SELECTOR, '#tier-health tr[data-key]')       # tier health shown
    browser.save_screenshot(str(shots / "dashboard-overview.png"))
    for path in ("/costs", "/memory", "/traces", "/objectives/live1", "/objectives?state=cancelled"):
        browser.get(swarm.url + path)
        assert "Internal Server Error" not in browser.page_source and browser.find_element(By.TAG_NAME, "h1").text

    session = {"swarmd_session": cookie["value"]}
    with httpx.Client(base_url=swarm.url, cookies=session, timeout=30) as c:
        assert c.get("/api/v1/status").status_code == 200                 # the cookie opens GETs ...
        assert c.post("/objectives/live1/retry", data={"csrf": "forged"}).status_code == 403   # not forms without CSRF
        assert c.post("/api/v1/objectives/live1/retry").status_code == 401                   # nor API POSTs
