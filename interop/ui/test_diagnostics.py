"""The diagnostics page (#/diagnostics, warren's /api/diagnostics) and the header's badge.

Publish to an exchange with no binding for the routing key (pika, publisher confirms so
the broker has handled them): the page lists an "unroutable" finding naming the exchange
and the routing key, linking to the exchange, and the badge counts it. Bind a queue with
that key: the finding goes. Objects made here are named "ui-diag-*" and deleted
afterwards.
"""

import pytest

from conftest import quote

FINDING = '[data-test="diagnostic"][data-kind="unroutable"]'
BADGE = '[data-test="diagnostics-badge"]'
EXCHANGE = "ui-diag-x"
KEY = "ui-diag-nowhere"
QUEUE = "ui-diag-q"


@pytest.fixture
def exchange(warren):
    status, body = warren.api("PUT", f"/api/exchanges/%2F/{EXCHANGE}", {"type": "direct"})
    assert status in (201, 204), (status, body)
    yield EXCHANGE
    warren.api("DELETE", f"/api/queues/%2F/{QUEUE}")
    warren.api("DELETE", f"/api/exchanges/%2F/{EXCHANGE}")


def publish_unroutable(warren, count):
    conn = warren.pika()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        for i in range(count):
            ch.basic_publish(EXCHANGE, KEY, b'{"n": %d}' % i)
    finally:
        conn.close()


def test_an_unroutable_publish_is_named_until_a_binding_routes_it(
        warren, exchange, page, wait_for, wait_gone, shot):
    publish_unroutable(warren, 3)
    page("diagnostics")
    finding = wait_for(FINDING, text=f"'{EXCHANGE}'", timeout=15)
    summary = finding.find_element("css selector", '[data-test="diagnostic-summary"]').text
    assert f"exchange '{EXCHANGE}' with routing key '{KEY}'" in summary, summary
    assert summary.startswith("3 messages"), summary
    hint = finding.find_element("css selector", '[data-test="diagnostic-hint"]').text
    assert f"no queue is bound to exchange '{EXCHANGE}' with routing key '{KEY}'" in hint, hint
    links = {a.get_attribute("href").split("#", 1)[1]: a.text
             for a in finding.find_elements("css selector", "a")}
    assert f"/exchanges/%2F/{EXCHANGE}" in links, links
    # The publisher's connection is named; it is closed by now, so it has no link.
    objects = finding.find_element("css selector", "ul.objects").text
    assert "connection '127.0.0.1:" in objects and "(closed)" in objects, objects
    assert finding.find_element("css selector", '[data-test="diagnostic-severity"]').text == "warning"
    # The page counts for the badge while it shows every vhost.
    badge = wait_for(BADGE)
    assert int(badge.text.replace(",", "")) >= 1, badge.text
    assert badge.get_attribute("href").endswith("#/diagnostics")
    shot("diagnostics-unroutable")

    status, body = warren.api("PUT", f"/api/queues/%2F/{QUEUE}", {})
    assert status in (201, 204), (status, body)
    status, body = warren.api("POST", f"/api/bindings/%2F/e/{EXCHANGE}/q/{QUEUE}",
                              {"routing_key": KEY})
    assert status == 201, (status, body)
    # The page refreshes every 5 s by itself.
    wait_gone(FINDING + f'[data-name*="{EXCHANGE}"]', timeout=15)


def test_the_badge_links_to_the_page(warren, exchange, page, wait_for, browser):
    publish_unroutable(warren, 1)
    page("")
    badge = wait_for(BADGE)
    warren.wait_api("/api/diagnostics", lambda f: any(
        d["kind"] == "unroutable" and d["details"]["exchange"] == EXCHANGE for d in f))
    badge.click()
    wait_for(FINDING, text=f"'{EXCHANGE}'", timeout=15)
    assert browser.execute_script("return location.hash") == "#/diagnostics"
    assert quote("/") == "%2F"
