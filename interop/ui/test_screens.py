"""A screenshot of every page, with objects and traffic present, into $UI_SCREENSHOTS.

Objects are named "screens-*". A publisher and a consumer run in a thread while the
screenshots are taken, so rates, charts and the consumer lists have something to show;
one message is published unroutable, so the diagnostics page has an entry. Every page
the header links to is shot, then one page of each kind of object (a queue, an exchange,
a connection, a channel, a user, a vhost), then the overview at 420 px wide.
"""

import json
import threading
import urllib.parse

import pytest

from conftest import (HEIGHT, NARROW, WIDTH, js_errors, quote, refresh_now, set_viewport, site_pages,
                      wait_until)

VHOST = "screens-vh"


def shot_name(hash_):
    """'#/queues/%2F/screens-orders' -> 'queues-screens-orders' (readable file names)."""
    parts = [urllib.parse.unquote(p) for p in hash_.lstrip("#/").split("/") if p]
    parts = [p for p in parts if p != "/"] or ["overview"]
    return "-".join(p.replace("/", "_") for p in parts)


class Traffic(threading.Thread):
    """Publishes to screens-events every 50 ms and consumes screens-orders with acks."""

    def __init__(self, warren):
        super().__init__(daemon=True)
        self.warren = warren
        self.stop = threading.Event()
        self.error = None

    def run(self):
        try:
            pub = self.warren.pika(client_properties={"connection_name": "screens-publisher"})
            sub = self.warren.pika(client_properties={"connection_name": "screens-consumer"})
            pch = pub.channel()
            pch.confirm_delivery()
            sch = sub.channel()
            sch.basic_qos(prefetch_count=10)
            sch.basic_consume("screens-orders", lambda ch, m, p, b: ch.basic_ack(m.delivery_tag))
            n = 0
            while not self.stop.is_set():
                body = json.dumps({"order": n, "item": "book", "qty": n % 5 + 1}).encode()
                key = ["order.created", "order.paid", "invoice.sent"][n % 3]
                pch.basic_publish("screens-events", key, body)
                n += 1
                sub.process_data_events(time_limit=0.05)
            sub.close()
            pub.close()
        except Exception as e:  # reported by the test, not lost in the thread
            self.error = e


@pytest.fixture(scope="module")
def scene(warren):
    api = warren.api
    created = []

    def put(path, body):
        status, reply = api("PUT", path, body)
        assert status in (201, 204), (path, status, reply)
        created.append(path)

    put(f"/api/vhosts/{VHOST}", {"description": "screenshots", "tags": "dev"})
    put(f"/api/permissions/{VHOST}/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    put("/api/users/screens-dev", {"password": "screens-pw", "tags": "management"})
    put("/api/permissions/%2F/screens-dev", {"configure": "^screens-", "write": ".*", "read": ".*"})
    put("/api/exchanges/%2F/screens-events", {"type": "topic", "durable": True})
    put("/api/exchanges/%2F/screens-dlx", {"type": "fanout", "durable": True})
    put("/api/queues/%2F/screens-orders", {"durable": True})
    put("/api/queues/%2F/screens-invoices", {"durable": True, "arguments": {
        "x-message-ttl": 60000, "x-max-length": 1000, "x-dead-letter-exchange": "screens-dlx"}})
    put("/api/queues/%2F/screens-dead", {"durable": True})
    put(f"/api/queues/{VHOST}/screens-other", {"durable": False})
    put("/api/policies/%2F/screens-ttl", {"pattern": "^screens-dead$", "apply-to": "queues",
                                          "definition": {"message-ttl": 3600000}})
    put(f"/api/vhost-limits/{VHOST}/max-queues", {"value": 100})
    for source, dest, key in [("screens-events", "screens-orders", "order.*"),
                              ("screens-events", "screens-invoices", "invoice.#"),
                              ("screens-dlx", "screens-dead", "")]:
        status, reply = api("POST", f"/api/bindings/%2F/e/{source}/q/{dest}",
                            {"routing_key": key})
        assert status == 201, (status, reply)
    # Messages that stay: JSON, text, and binary with headers, for the message views.
    conn = warren.pika()
    ch = conn.channel()
    import pika
    ch.basic_publish("screens-events", "invoice.sent", json.dumps(
        {"invoice": 17, "lines": [{"item": "book", "price": 12.5}]}).encode(),
        pika.BasicProperties(content_type="application/json", message_id="inv-17",
                             headers={"x-source": "billing", "attempt": 1}))
    ch.basic_publish("", "screens-dead", b"plain text message")
    ch.basic_publish("", "screens-dead", bytes(range(40)))
    # Unroutable: no binding matches this key, so the diagnostics page has something.
    ch.basic_publish("screens-events", "nobody.listens", b"lost")
    conn.close()

    traffic = Traffic(warren)
    traffic.start()
    # The rates are there once the collector saw the traffic twice.
    warren.wait_api("/api/overview", lambda o: o.get("message_stats", {}).get(
        "publish_details", {}).get("rate", 0) > 0, timeout=20)
    yield traffic
    traffic.stop.set()
    traffic.join(10)
    for path in reversed(created):
        if "/bindings/" not in path:
            api("DELETE", path)


def detail_pages(warren):
    """(hash, screenshot name) of one page of each kind of object."""
    pages = [("#/queues/%2F/screens-orders", "queue"),
             ("#/queues/%2F/screens-invoices", "queue-with-arguments"),
             ("#/exchanges/%2F/screens-events", "exchange"),
             ("#/admin/users/screens-dev", "user"),
             (f"#/admin/vhosts/{VHOST}", "vhost")]
    status, conns = warren.api("GET", "/api/connections")
    assert status == 200, conns
    publisher = [c["name"] for c in conns
                 if c.get("client_properties", {}).get("connection_name") == "screens-publisher"]
    assert publisher, "the publisher's connection is not listed"
    pages.append(("#/connections/" + quote(publisher[0]), "connection"))
    status, chans = warren.api("GET", "/api/channels")
    assert status == 200, chans
    mine = [c["name"] for c in chans
            if c.get("connection_details", {}).get("name") == publisher[0]]
    assert mine, "the publisher's channel is not listed"
    pages.append(("#/channels/" + quote(mine[0]), "channel"))
    return pages


def problem(browser, page, h):
    """Shows h; what is wrong with it (the shell's "Not found", a page error), or None."""
    page(h)
    heading = browser.execute_script(
        "const h1 = document.querySelector('#main h1'); return h1 ? h1.textContent : ''")
    if heading == "Not found":
        return f"{h}: no page"
    errors = [e.text for e in browser.find_elements("css selector", '[data-test="page-error"]')
              if e.is_displayed()]
    return f"{h}: {errors}" if errors else None


@pytest.fixture(scope="module")
def pages(warren, browser, scene):
    """(hash, screenshot name) of every page: the header's links, one page of each kind
    of object, and the search results."""
    nav = site_pages(browser, warren.http_url)
    assert nav, "the header links to no page"
    found = [(h, shot_name(h)) for h in nav]
    found += [(h, name) for h, name in detail_pages(warren) if h not in nav]
    found.append(("#/search?q=screens", "search"))
    return found


# Object pages whose charts fill from their own 5 s refreshes (the overview's come with
# history from the server): shot after two, so the charts have a line to show.
CHARTED = {"queue", "exchange"}


def live_refreshes(browser, n):
    count = "return Number(document.body.dataset.refreshed || 0)"
    start = browser.execute_script(count)
    wait_until(lambda: browser.execute_script(count) >= start + n, 5 * n + 5,
               f"{n} live refreshes")


def test_every_page_screenshot(browser, page, shot, scene, pages):
    problems = []
    js_errors(browser)  # what came before is not these pages'
    for h, name in pages:
        problems.append(problem(browser, page, h))
        errors = js_errors(browser)
        if errors:
            problems.append(f"{h}: script errors {errors}")
        if name in CHARTED:
            live_refreshes(browser, 2)
        # Toasts of earlier tests' actions are not part of this page.
        browser.execute_script("document.getElementById('toasts')?.replaceChildren()")
        shot(name)
        shot(name + "-full", full=True)
    assert scene.error is None, scene.error
    bad = [p for p in problems if p]
    assert not bad, "\n".join(bad)


# Form controls without a name a screen reader can read: no <label for>, no wrapping
# <label>, no aria-label / aria-labelledby / title.
UNLABELLED = """
return [...document.querySelectorAll('input, select, textarea')]
  .filter(el => el.type !== 'hidden' && el.type !== 'submit' && el.type !== 'button'
    && el.offsetParent !== null)
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
    && !el.getAttribute('aria-labelledby') && !el.title)
  .map(el => el.outerHTML.slice(0, 120));
"""


def test_every_input_has_a_label(browser, page, pages):
    missing = {}
    for h, _ in pages:
        page(h)
        found = browser.execute_script(UNLABELLED)
        if found:
            missing[h] = found
    assert not missing, "\n".join(f"{h}: {found}" for h, found in missing.items())


# Elements outside charts' SVG (a chart keeps a bounded history of points) and outside
# the overview's table of the queues holding messages: its rows are the queues that hold
# messages at that moment, which the traffic thread changes from one refresh to the next
# (screens-orders comes and goes as its consumer acks). That table is held to its page
# size instead (TOP_QUEUES_ROWS).
ELEMENTS = ("return document.querySelectorAll("
            "'body *:not(svg *):not([data-test=top-queues-table] tbody *)').length")
TOP_QUEUES_ROWS = ("const t = document.querySelector('[data-test=top-queues-table] tbody');"
                   "return t ? t.rows.length : 0")


def test_pages_do_not_grow_per_refresh(browser, page, pages):
    """Live refresh updates in place: the page's element count is steady across
    refreshes (after two, so lazily built parts are there)."""
    grew = {}
    for h, _ in pages:
        if problem(browser, page, h):
            continue  # test_every_page_screenshot reports it
        refresh_now(browser, 2)
        first = browser.execute_script(ELEMENTS)
        refresh_now(browser, 4)
        second = browser.execute_script(ELEMENTS)
        if second > first:
            grew[h] = (first, second)
        rows = browser.execute_script(TOP_QUEUES_ROWS)
        if rows > 5:
            grew[h] = f"{rows} rows in the top queues table (page size 5)"
    assert not grew, f"elements before and after 4 refreshes: {grew}"


def test_overview_narrow(browser, page, shot, scene):
    set_viewport(browser, NARROW, HEIGHT)
    try:
        page("")
        width = browser.execute_script("return document.documentElement.scrollWidth")
        shot("overview-narrow")
        # Readable at 420 px: nothing wider than the window (no sideways scrolling).
        assert width <= NARROW + 1, f"the overview is {width}px wide at {NARROW}px"
    finally:
        set_viewport(browser, WIDTH, HEIGHT)
