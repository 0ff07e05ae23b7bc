"""Page load times with 10,000 queues and 1,000 connections (reported, not asserted),
and the size of the queue list's live poll (asserted: it fetches only the shown rows).

A warren of its own (so the other tests' screenshots do not show 10,000 queues): the
queues come in one definitions import into vhost "ui-perf"; the connections are plain
sockets that did the AMQP handshake and opened one channel, held open by this process
(no client library, no thread per connection). Each page is loaded 5 times from
about:blank (a full load: HTML, CSS, modules, API calls); its time runs from navigation
start to the page's ready mark (see conftest.py); the median goes into a table printed
and written to $UI_SCREENSHOTS/load-times.txt.
"""

import os
import socket
import statistics
import struct
import time
import urllib.parse

import pytest

from conftest import (SCREENSHOTS, Warren, make_driver, quit_driver, quote, site_pages,
                      ui_login, wait_ready, wait_until)

QUEUES = 10_000
CONNECTIONS = 1_000
LOADS = 5
VHOST = "ui-perf"


# ------------------------------------------------------------- raw AMQP connections

def _frame(kind, channel, payload):
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def _method(class_id, method_id, args):
    return _frame(1, 0 if class_id == 10 else 1, struct.pack(">HH", class_id, method_id) + args)


def _shortstr(s):
    b = s.encode()
    return bytes([len(b)]) + b


def _longstr(b):
    return struct.pack(">I", len(b)) + b


def _read_method(sock, buf):
    """The next method frame's (class, method, args); buf keeps what was read ahead."""
    while True:
        if len(buf) >= 7:
            kind, _, size = struct.unpack(">BHI", buf[:7])
            if len(buf) >= 8 + size:
                payload = bytes(buf[7:7 + size])
                del buf[:8 + size]
                if kind == 1:
                    cls, meth = struct.unpack(">HH", payload[:4])
                    return cls, meth, payload[4:]
                continue  # heartbeats and anything else: not expected, skipped
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the broker closed the connection during the handshake")
        buf.extend(chunk)


def amqp_connect(port, vhost, name):
    """A socket past connection.open-ok and channel.open-ok on channel 1."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    buf = bytearray()
    sock.sendall(b"AMQP\x00\x00\x09\x01")
    cls, meth, _ = _read_method(sock, buf)
    assert (cls, meth) == (10, 10), f"expected connection.start, got {cls}.{meth}"
    props = b"".join(_shortstr(k) + b"S" + _longstr(v.encode()) for k, v in [
        ("product", "warren-ui-perf"), ("version", "1.0"), ("connection_name", name)])
    sock.sendall(_method(10, 11, _longstr(props) + _shortstr("PLAIN")
                         + _longstr(b"\0guest\0guest") + _shortstr("en_US")))
    cls, meth, args = _read_method(sock, buf)
    assert (cls, meth) == (10, 30), f"expected connection.tune, got {cls}.{meth}"
    channel_max, frame_max, _ = struct.unpack(">HIH", args[:8])
    sock.sendall(_method(10, 31, struct.pack(">HIH", channel_max, frame_max, 0))
                 + _method(10, 40, _shortstr(vhost) + _shortstr("") + b"\0")
                 + _method(20, 10, _shortstr("")))
    cls, meth, _ = _read_method(sock, buf)
    assert (cls, meth) == (10, 41), f"expected connection.open-ok, got {cls}.{meth}"
    cls, meth, _ = _read_method(sock, buf)
    assert (cls, meth) == (20, 11), f"expected channel.open-ok, got {cls}.{meth}"
    return sock


# ------------------------------------------------------------- the loaded broker

@pytest.fixture(scope="module")
def loaded():
    """(warren, browser, sockets): 10,000 queues, 1,000 connections, guest logged in."""
    w = Warren()
    w.start()
    sockets = []
    driver = None
    try:
        started = time.monotonic()
        defs = {
            "vhosts": [{"name": VHOST}],
            "permissions": [{"user": "guest", "vhost": VHOST, "configure": ".*",
                             "write": ".*", "read": ".*"}],
            "queues": [{"name": f"perf-{i:05d}", "vhost": VHOST, "durable": i % 2 == 0,
                        "auto_delete": False, "arguments": {}} for i in range(QUEUES)],
            "exchanges": [{"name": f"perf-x{i}", "vhost": VHOST, "type": "topic",
                           "durable": True, "auto_delete": False, "internal": False,
                           "arguments": {}} for i in range(20)],
            "bindings": [{"source": f"perf-x{i % 20}", "vhost": VHOST,
                          "destination": f"perf-{i:05d}", "destination_type": "queue",
                          "routing_key": f"k.{i}", "arguments": {}} for i in range(200)],
        }
        status, body = w.api("POST", "/api/definitions", defs)
        assert status in (200, 201, 204), (status, body)
        for i in range(CONNECTIONS):
            sockets.append(amqp_connect(w.amqp_port, VHOST, f"perf-conn-{i:04d}"))
        # A few messages so the queue pages have numbers.
        conn = w.pika(vhost=VHOST)
        ch = conn.channel()
        for i in range(50):
            ch.basic_publish("", "perf-00000", f'{{"n": {i}, "text": "perf message"}}'.encode())
        conn.close()
        w.wait_api("/api/overview", lambda o: o["object_totals"]["connections"] >= CONNECTIONS
                   and o["object_totals"]["queues"] >= QUEUES, timeout=60)
        setup_secs = time.monotonic() - started
        driver = make_driver()
        driver.get(w.http_url + "/")
        ui_login(driver, "guest", "guest")
        wait_ready(driver, timeout=60)
        yield w, driver, sockets, setup_secs
    finally:
        if driver is not None:
            quit_driver(driver)
        for s in sockets:
            s.close()
        w.stop()


def load(driver, url, timeout=60):
    """A full load of url from about:blank: (ms to the ready mark, API requests, API KB),
    or None when the shell has no page there."""
    driver.get("about:blank")
    driver.get(url)
    wait_until(lambda: driver.execute_script("return window.__warrenReadyAt !== undefined"),
               timeout, f"the ready mark of {url}")
    heading = driver.execute_script(
        "const h1 = document.querySelector('#main h1'); return h1 ? h1.textContent : ''")
    if heading == "Not found":
        return None
    ms, n, size = driver.execute_script("""
        const api = performance.getEntriesByType('resource')
          .filter(e => new URL(e.name).pathname.startsWith('/api/'));
        return [window.__warrenReadyAt, api.length,
                api.reduce((s, e) => s + (e.encodedBodySize || 0), 0)];""")
    return ms, n, size / 1024


def test_page_load_times(loaded):
    w, driver, _, setup_secs = loaded
    pages = site_pages(driver, w.http_url)
    assert pages, "the header links to no page"
    # And one page of each kind of object.
    details = [f"#/queues/{quote(VHOST)}/perf-00000", f"#/exchanges/{quote(VHOST)}/perf-x0"]
    for kind in ("connections", "channels"):
        status, listed = w.api("GET", f"/api/{kind}", query={"page": 1, "page_size": 1})
        assert status == 200 and listed["items"], (kind, status, listed)
        details.append(f"#/{kind}/" + quote(listed["items"][0]["name"]))
    details += ["#/admin/users/guest", f"#/admin/vhosts/{quote(VHOST)}"]
    rows, missing = [], []
    for h in pages + [d for d in details if d not in pages]:
        times = []
        for _ in range(LOADS):
            got = load(driver, w.http_url + "/" + h)
            if got is None:
                missing.append(h)
                break
            ms, reqs, kb = got
            times.append(ms)
        if times:
            rows.append((h, f"{statistics.median(times):>9.0f} {min(times):>7.0f} "
                            f"{max(times):>7.0f} {reqs:>9} {kb:>8.1f}"))
        else:
            rows.append((h, f"{'no page':>9}"))
    width = max(len(urllib.parse.unquote(h)) for h, _ in rows) + 1
    lines = [f"warren UI page load times: {QUEUES:,} queues, {CONNECTIONS:,} connections "
             f"(and as many channels), guest, 1280x800 headless Chromium;",
             f"navigation start to the page's ready mark, {LOADS} full loads each "
             f"(setup took {setup_secs:.1f} s)",
             "",
             f"{'page':<{width}} {'median ms':>9} {'min':>7} {'max':>7} {'API calls':>9} {'API KB':>8}"]
    lines += [f"{urllib.parse.unquote(h):<{width}} {cells}" for h, cells in rows]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    os.makedirs(SCREENSHOTS, exist_ok=True)
    with open(os.path.join(SCREENSHOTS, "load-times.txt"), "w") as f:
        f.write(text)
    assert not missing, f"no page at {missing}"


LISTS = [("queues", "queues-table"), ("connections", "connections-table"),
         ("channels", "channels-table")]


@pytest.mark.parametrize("kind,table", LISTS)
def test_list_poll_fetches_only_shown_rows(loaded, kind, table):
    """The 5 s refresh of a long list asks the server for one page, not for everything."""
    w, driver, _, _ = loaded
    driver.get("about:blank")
    driver.get(f"{w.http_url}/#/{kind}")
    wait_ready(driver, timeout=60)
    listing = """return performance.getEntriesByType('resource')
        .filter(e => new RegExp('^/api/' + arguments[0] + '(/[^/]*)?$').test(new URL(e.name).pathname))
        .map(e => [e.name, e.encodedBodySize || 0]);"""
    first = driver.execute_script(listing, kind)
    assert first, f"the {kind} list made no /api/{kind} request"
    # The live refresh: wait for the next request (every 5 s while the page is shown).
    polls = wait_until(lambda: (lambda e: e if len(e) > len(first) else None)(
        driver.execute_script(listing, kind)), 15, f"the {kind} list's 5 s refresh")
    url, size = polls[-1]
    query = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
    assert "page_size" in query, f"the poll asks for every row: {url}"
    page_size = int(query["page_size"][0])
    assert page_size <= 500, f"the poll asks for {page_size} rows: {url}"
    rows = driver.execute_script(
        "return document.querySelectorAll(`[data-test=\"${arguments[0]}\"] tbody tr[data-name]`).length",
        table)
    assert 0 < rows <= page_size, (rows, page_size)
    # Every row of 10,000 queues (1,000 connections) is megabytes of JSON; one page is
    # a small fraction.
    assert size < 400 * 1024, f"the poll downloaded {size} bytes: {url}"
    print(f"\n{kind} list poll: {url} ({size / 1024:.1f} KB, {rows} rows shown)")
