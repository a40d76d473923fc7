"""The kitchen page in a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by Selenium; no driver is ever downloaded), against the
real daemon and the simulated kitchen. Also writes docs/kitchen-page.png, the
README's screenshot, at phone size. Real time, bounded (marked ``hil``)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.broker import free_port
from tests.daemon import wait_for
from tests.web import call, web_config

pytestmark = pytest.mark.hil

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "kitchen-page.png"
PHONE = (390, 844)

webdriver = pytest.importorskip("selenium.webdriver")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):  # scripts/test installs both
    pytest.skip("chromium and chromium-driver are not installed", allow_module_level=True)

from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium'}",
        f"--window-size={PHONE[0]},{PHONE[1]}",
        "--lang=en-US",
    ):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    # An explicit driver path: Selenium Manager is never asked to fetch one.
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(15)
    driver.set_script_timeout(15)
    try:
        yield driver
    finally:
        driver.quit()


def _card(driver: Any, burner: str) -> Any:
    return driver.find_element(By.ID, f"card-kitchen-{burner}")


def _settled(read: Callable[[], Any]) -> Callable[[], Any]:
    """``read``, or None while what it reads is being redrawn (live updates)."""

    def attempt() -> Any:
        try:
            return read()
        except (StaleElementReferenceException, NoSuchElementException):
            return None

    return attempt


def _mode(driver: Any, burner: str) -> str:
    return str(_settled(lambda: _card(driver, burner).get_attribute("data-mode"))())


def test_the_page_shows_the_kitchen_and_shuts_a_burner_off(
    tmp_path: Path, daemons, browser
) -> None:
    config, port = web_config(tmp_path, pulse_s=2.0)
    daemon = daemons(config)
    daemon.wait_reconciled()
    browser.get(f"http://127.0.0.1:{port}/")
    wait_for(lambda: "on" in (browser.find_element(By.ID, "live").get_attribute("class") or ""), 15)
    for burner in ("left", "right"):
        card = _card(browser, burner)
        assert card.get_attribute("data-mode") == "ready"
        assert card.find_element(By.CLASS_NAME, "flame").text == "lit"
        assert card.find_element(By.CLASS_NAME, "circuit").text == "intact"
    assert browser.find_element(By.ID, "all-off").text == "Everything off"

    _card(browser, "left").find_element(By.CLASS_NAME, "shutoff").click()
    wait_for(lambda: _mode(browser, "left") == "cutting", 10, daemon.log)
    wait_for(lambda: _mode(browser, "left") == "ready", 15, daemon.log)
    flame = _settled(lambda: _card(browser, "left").find_element(By.CLASS_NAME, "flame").text)
    wait_for(lambda: flame() == "out", 10)
    assert daemon.status("left")["last_shutoff"]["source"] == "web"
    assert _mode(browser, "right") == "ready"

    # The shutoff's timeline, drawn from its events.
    def timeline() -> Any:
        found = browser.find_elements(By.CSS_SELECTOR, 'svg.timeline[data-burner="kitchen/left"]')
        return found[0].text if found and "restored" in found[0].text else None

    drawn = wait_for(_settled(timeline), 10)
    for step in ("command", "cut sent", "cut confirmed", "flame out", "restored"):
        assert step in drawn
    events = _settled(
        lambda: [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#events li")]
    )
    wait_for(lambda: any("kitchen/left" in line for line in events() or []), 5)

    # A timer from its button; then the page in Chinese.
    _card(browser, "right").find_element(By.CSS_SELECTOR, 'button.timer[data-min="10"]').click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#timers li[data-timer]"), 10)
    browser.find_element(By.ID, "lang").click()
    wait_for(lambda: browser.find_element(By.ID, "all-off").text == "全部关火", 5)
    mode = _settled(lambda: _card(browser, "left").find_element(By.CLASS_NAME, "mode").text)
    wait_for(lambda: mode() == "就绪", 5)
    browser.find_element(By.ID, "lang").click()
    wait_for(lambda: browser.find_element(By.ID, "all-off").text == "Everything off", 5)

    # Phone size (CSS pixels), as a phone shows it.
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": PHONE[0], "height": PHONE[1], "deviceScaleFactor": 2, "mobile": True},
    )
    wait_for(lambda: browser.execute_script("return window.innerWidth") == PHONE[0], 5)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000


def test_another_origin_cannot_unlock_even_with_the_users_cookie(
    tmp_path: Path, daemons, browser
) -> None:
    config, port = web_config(tmp_path)
    daemon = daemons(config)
    daemon.wait_reconciled()
    assert daemon.cli("lock", "left").returncode == 0
    # The person signs in on the page: the browser holds the session cookie.
    browser.get(f"http://127.0.0.1:{port}/?token=kitchen-page-token-for-tests")
    wait_for(lambda: not browser.find_element(By.ID, "signed-in").get_attribute("hidden"), 10)

    # Another site, on another loopback port (another origin), tries to unlock.
    other = free_port()
    html = f"""<script>
    window.result = fetch("http://127.0.0.1:{port}/api/command", {{
      method: "POST", credentials: "include", mode: "no-cors",
      headers: {{"Content-Type": "text/plain"}},
      body: JSON.stringify({{action: "unlock", burner: "left", ts: Date.now() / 1000}})
    }}).then(() => "sent", (e) => "failed: " + e);
    </script>""".encode()

    class Evil(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", other), Evil)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{other}/")
        outcome = browser.execute_async_script(
            "const done = arguments[0]; window.result.then(done);"
        )
        assert outcome == "sent"  # it went out; the daemon refused it
    finally:
        server.shutdown()
    assert daemon.status("left")["mode"] == "locked"
    rejected = [e for e in daemon.events() if e["kind"] in ("unlock", "rejected")]
    assert rejected == []
    # The same request with that Origin, as the API sees it: refused.
    status, reply = call(
        port,
        "POST",
        "/api/command",
        {"action": "unlock", "burner": "left"},
        {"Origin": f"http://127.0.0.1:{other}"},
    )
    assert (status, reply["code"]) == (403, "cross_origin")
