"""Fixtures for warren's browser tests (pytest + Selenium 4 + Debian's headless Chromium).

Run them with interop/ui/run.sh (after interop/ui/setup.sh). One warren and one browser
serve the whole session; each test names what it creates with its own prefix
(e.g. "ui-login-") so tests do not see each other's objects by accident.

Fixtures
  warren (session)   a warren started for the session from target/release/warren
                     (WARREN_BIN overrides; WARREN_UI_DIR passes through, so a debug
                     build can serve the assets from disk) with --port 0, a free
                     --management-port, --prometheus-port 0, --bind 127.0.0.1, a fresh
                     --data-dir and --stats-interval 1000; stopped (by PID) at the end.
                     .amqp_url, .http_url, .amqp_port, .http_port
                     .api(method, path, body=None, user=("guest", "guest"), query=None)
                         -> (status, JSON or text or None); path as the API spells it
                         ("/api/queues/%2F/q"; quote(name) from this file encodes a name)
                     .pika(user=("guest", "guest"), vhost="/") -> pika.BlockingConnection
                     .wait_api(path, predicate, timeout=15) -> the JSON once predicate(json)
  browser (session)  a Chromium driven by Selenium, 1280x800, logged in as guest.
  page(hash)         (the fixture reloads the UI first, so each test starts clean)
                     goes to "#/..." ("queues", "#/queues/%2F/q", ...) and waits until
                     the page has rendered (the shell's ready mark, see READY below);
                     returns the driver.
  wait_for(css, text=None, timeout=10, visible=True)
                     the first element matching css (whose text contains `text`), once
                     there; fails the test with what was there instead.
  wait_gone(css, text=None, timeout=10)
  refresh(times=1)   runs the shown page's live refresh now, `times` times, each to its
                     end (rather than waiting 5 s for it): then assert what it shows.
  accept_alert(driver)  accepts the confirm() a click opened, once it is open.
  js_errors(driver)  uncaught exceptions and console.error lines since the last call.
  site_pages(driver, base_url)  every list page (header links and their sub-pages).
  shot(name, full=False)  saves a PNG of the window (full=True: of the whole page) to
                     $UI_SCREENSHOTS/name.png (default target/ui-screenshots/); the path.
  new_browser()      (factory) another Chromium, NOT logged in, closed after the test:
                     for tests of the login itself, dark mode, or a second user.
  ui_login(driver, user, password)  fills and submits the login form (no waiting).

Ready mark: the shell (js/app.js) sets `document.body.dataset.ready` to "0" when a route
starts rendering and to "1" once the page's first live refresh has drawn it (also when it
shows the login form, so a page counts as ready only when `#main > .page` exists too:
IS_READY below). The overview is the route "" (`page("")`, `#/`). Page load
times (test_pages_perf.py) are measured from navigation start to that mark, recorded by a
MutationObserver installed before any page script runs (READY_RECORDER).
"""

import base64
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse

import pytest
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCREENSHOTS = os.environ.get("UI_SCREENSHOTS") or os.path.join(ROOT, "target", "ui-screenshots")
WIDTH, HEIGHT = 1280, 800
NARROW = 420

# Ready: the mark is "1" and a page (not the login form) is in <main>. The shell sets
# the mark to "1" also when it shows the login form, and to "0" when a route starts.
IS_READY = ("document.body && document.body.dataset.ready === '1' "
            "&& !!document.querySelector('#main > .page')")
READY_JS = f"return !!({IS_READY})"
# Installed into every document before its scripts: records performance.now() (time
# since navigation start) the first time a page is ready, as window.__warrenReadyAt.
READY_RECORDER = """
(() => {
  const seen = () => {
    if (window.__warrenReadyAt === undefined && (%s)) {
      window.__warrenReadyAt = performance.now();
    }
  };
  new MutationObserver(seen).observe(document, {subtree: true, childList: true,
    attributes: true, attributeFilter: ['data-ready']});
})();
""" % IS_READY


def quote(name):
    """A name as one path segment of the API or a UI hash ("/" is "%2F")."""
    return urllib.parse.quote(name, safe="")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Warren:
    """One warren process; see the module docstring."""

    def __init__(self):
        self.bin = os.environ.get("WARREN_BIN") or os.path.join(ROOT, "target", "release", "warren")
        if not os.access(self.bin, os.X_OK):
            pytest.exit(f"no warren binary at {self.bin} (cargo build --release, or set WARREN_BIN)", 2)
        self.dir = tempfile.mkdtemp(prefix="warren-ui.")
        self.proc = None
        self.session = requests.Session()

    def start(self):
        # --management-port 0 turns the API off, so take a free port; another process
        # may grab it in between: then try again with another.
        for attempt in range(5):
            self.http_port = free_port()
            out = open(os.path.join(self.dir, "warren.out"), "w")
            err = open(os.path.join(self.dir, "warren.err"), "w")
            self.proc = subprocess.Popen(
                [self.bin, "--port", "0", "--management-port", str(self.http_port),
                 "--prometheus-port", "0", "--bind", "127.0.0.1",
                 "--data-dir", os.path.join(self.dir, f"data{attempt}"),
                 "--stats-interval", "1000"],
                stdout=out, stderr=err, stdin=subprocess.DEVNULL)
            out.close()
            err.close()
            if self._wait_ready():
                return
        pytest.exit(f"warren did not start; its output is in {self.dir}", 2)

    def _wait_ready(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with open(os.path.join(self.dir, "warren.out")) as f:
                text = f.read()
            amqp = http = None
            for line in text.splitlines():
                if line.startswith("warren ") and " ready on amqp://" in line:
                    amqp = int(line.split(" ready on amqp://", 1)[1].split()[0].rsplit(":", 1)[1])
                if line.startswith("warren management API on http://"):
                    http = int(line.rsplit(":", 1)[1].strip().rstrip("/"))
            if amqp and http:
                self.amqp_port, self.http_port = amqp, http
                self.amqp_url = f"amqp://guest:guest@127.0.0.1:{amqp}/%2f"
                self.http_url = f"http://127.0.0.1:{http}"
                return True
            if self.proc.poll() is not None:
                return False
            time.sleep(0.05)
        self.stop()
        return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def api(self, method, path, body=None, user=("guest", "guest"), query=None):
        """(status, body): JSON when the body is JSON, else its text, None when empty."""
        r = self.session.request(method, self.http_url + path, params=query, auth=user,
                                 json=body, timeout=60)
        if not r.content:
            return r.status_code, None
        try:
            return r.status_code, r.json()
        except ValueError:
            return r.status_code, r.text

    def wait_api(self, path, predicate, timeout=15, user=("guest", "guest")):
        """Polls GET path until predicate(json) holds (statistics refresh every second)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            status, last = self.api("GET", path, user=user)
            if status == 200 and predicate(last):
                return last
            time.sleep(0.2)
        raise AssertionError(f"GET {path} never satisfied the condition; last: {str(last)[:500]}")

    def pika(self, user=("guest", "guest"), vhost="/", **params):
        import pika
        return pika.BlockingConnection(pika.ConnectionParameters(
            host="127.0.0.1", port=self.amqp_port, virtual_host=vhost,
            credentials=pika.PlainCredentials(*user), **params))


@pytest.fixture(scope="session")
def warren():
    w = Warren()
    w.start()
    yield w
    w.stop()
    shutil.rmtree(w.dir, ignore_errors=True)


def make_driver(width=WIDTH, height=HEIGHT):
    """A headless Chromium; Debian's binaries, never a download (SE_OFFLINE)."""
    os.environ.setdefault("SE_OFFLINE", "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    profile = tempfile.mkdtemp(prefix="warren-ui-chromium.")
    for flag in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--hide-scrollbars",
                 f"--window-size={width},{height}", f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # js_errors() reads it
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    driver = webdriver.Chrome(options=opts, service=service)
    driver._warren_profile = profile
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": READY_RECORDER})
    set_viewport(driver, width, height)
    return driver


def js_errors(driver):
    """The page's uncaught exceptions and console.error lines since the last call (the
    browser log is read once)."""
    return [e["message"] for e in driver.get_log("browser")
            if e.get("level") == "SEVERE" and e.get("source") in ("javascript", "console-api")]


def set_viewport(driver, width, height):
    """The page's viewport exactly width x height (window chrome aside)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})


def quit_driver(driver):
    try:
        driver.quit()
    finally:
        shutil.rmtree(getattr(driver, "_warren_profile", ""), ignore_errors=True)


def wait_until(fn, timeout=10, what="condition", interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def find(driver, css, text=None, visible=True):
    from selenium.common.exceptions import StaleElementReferenceException
    try:
        for el in driver.find_elements("css selector", css):
            if visible and not el.is_displayed():
                continue
            if text is not None and text not in el.text:
                continue
            return el
    except StaleElementReferenceException:
        return None
    return None


def wait_for_in(driver, css, text=None, timeout=10, visible=True):
    try:
        return wait_until(lambda: find(driver, css, text, visible), timeout,
                          f"{css!r}" + (f" containing {text!r}" if text is not None else ""))
    except AssertionError as e:
        found = [el.text[:80] for el in driver.find_elements("css selector", css)][:5]
        raise AssertionError(f"{e}; found {len(found)} {css!r}: {found}; "
                             f"at {driver.current_url}") from None


def wait_ready(driver, timeout=15):
    wait_until(lambda: driver.execute_script(READY_JS), timeout,
               f"the page's ready mark at {driver.current_url}")


def go(driver, base_url, hash_, timeout=15):
    """Shows #/hash_ and waits for its ready mark."""
    target = "#/" + hash_.lstrip("#").lstrip("/")
    current = driver.execute_script("return location.href")
    if not current.startswith(base_url):
        driver.get(base_url + "/" + target)
    elif driver.execute_script("return location.hash") == target:
        driver.refresh()
    else:
        # The shell clears the mark when the route changes; clear it here too, so the
        # old page's mark is never mistaken for the new one's.
        driver.execute_script(
            "if (document.body) delete document.body.dataset.ready; location.hash = arguments[0]",
            target)
    wait_ready(driver, timeout)
    return driver


def accept_alert(driver, timeout=5):
    """Accepts the confirm()/alert() a click opened, once it is open (it opens after
    the click returns); returns its text."""
    from selenium.common.exceptions import NoAlertPresentException

    def opened():
        try:
            return driver.switch_to.alert
        except NoAlertPresentException:
            return None
    alert = wait_until(opened, timeout, "a confirm dialog")
    text = alert.text
    alert.accept()
    return text


def refresh_now(driver, times=1):
    """Runs the shown page's live refresh `times` times, each to its end, instead of
    waiting 5 s: the shell refreshes at once when the tab comes back to the front and
    counts the refreshes that finished in body's data-refreshed."""
    count = "return Number(document.body.dataset.refreshed || 0)"
    for _ in range(times):
        before = driver.execute_script(count)
        driver.execute_script("document.dispatchEvent(new Event('visibilitychange'))")
        wait_until(lambda: driver.execute_script(count) > before, 10,
                   "the page's refresh to finish")


def site_pages(driver, base_url):
    """Every list page: the header's links, and beside each the sibling pages its own
    page links to (admin/users links admin/vhosts, admin/policies, ...), in order."""
    go(driver, base_url, "")
    links = """return [...document.querySelectorAll(arguments[0])]
        .map(a => a.getAttribute('href')).filter(h => !h.includes('?'))"""
    found = []
    for h in driver.execute_script(links, '#nav a[href^="#/"]'):
        if h in found:
            continue
        found.append(h)
        parent = h.rsplit("/", 1)[0] + "/"
        if parent == "#/":
            continue
        go(driver, base_url, h)
        for sub in driver.execute_script(links, f'#main a[href^="{parent}"]'):
            if sub not in found and sub.count("/") == h.count("/"):
                found.append(sub)
    return found


def ui_login(driver, user, password):
    """Fills the shell's login form and submits it."""
    form = wait_for_in(driver, '[data-test="login-form"]')
    name = form.find_element("css selector", '[data-test="login-user"]')
    word = form.find_element("css selector", '[data-test="login-pass"]')
    name.clear()
    name.send_keys(user)
    word.clear()
    word.send_keys(password)
    form.find_element("css selector", '[data-test="login-submit"]').click()


@pytest.fixture(scope="session")
def browser(warren):
    driver = make_driver()
    driver.get(warren.http_url + "/")
    ui_login(driver, "guest", "guest")
    wait_ready(driver)
    yield driver
    quit_driver(driver)


@pytest.fixture
def page(browser, warren):
    # Each test starts from a freshly loaded document: what an earlier test left in the
    # page (a stubbed window.confirm, toasts, a vhost chosen in memory) is gone.
    browser.execute_script("sessionStorage.removeItem('warren.vhost')")
    browser.get(warren.http_url + "/#/")
    wait_ready(browser)
    return lambda hash_, timeout=15: go(browser, warren.http_url, hash_, timeout)


@pytest.fixture
def refresh(browser):
    return lambda times=1: refresh_now(browser, times)


@pytest.fixture
def wait_for(browser):
    return lambda css, text=None, timeout=10, visible=True: wait_for_in(
        browser, css, text, timeout, visible)


@pytest.fixture
def wait_gone(browser):
    def gone(css, text=None, timeout=10):
        wait_until(lambda: find(browser, css, text, visible=False) is None, timeout,
                   f"{css!r} to go")
    return gone


def save_shot(driver, name, full=False):
    """A PNG of the viewport, or with full=True of the whole page (as tall as it is,
    capped at 8,000 px), into SCREENSHOTS."""
    os.makedirs(SCREENSHOTS, exist_ok=True)
    path = os.path.join(SCREENSHOTS, name + ".png")
    if not full:
        driver.save_screenshot(path)
        return path
    width, height = driver.execute_script(
        "return [window.innerWidth, Math.min(8000, document.documentElement.scrollHeight)]")
    png = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
    with open(path, "wb") as f:
        f.write(base64.b64decode(png["data"]))
    return path


@pytest.fixture
def shot(browser):
    return lambda name, full=False: save_shot(browser, name, full)


@pytest.fixture
def new_browser():
    made = []

    def make(width=WIDTH, height=HEIGHT):
        driver = make_driver(width, height)
        made.append(driver)
        return driver
    yield make
    for driver in made:
        quit_driver(driver)


@pytest.fixture(name="ui_login")
def ui_login_fixture():
    return ui_login


def pytest_report_header(config):
    return [f"screenshots: {SCREENSHOTS}"]
