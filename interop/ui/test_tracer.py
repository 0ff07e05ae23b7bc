"""The message tracer page: a trace started from the UI on an exchange shows the
messages pika publishes, routed (with links to their queues) and unroutable (marked),
and stops from its page.

Objects made here are named "ui-tracer-*" and deleted afterwards.
"""

import pika
import pytest

from conftest import js_errors, quote

EXCHANGE = "ui-tracer-orders"
QUEUE = "ui-tracer-q"
CSS = "css selector"


@pytest.fixture
def topology(warren):
    assert warren.api("PUT", f"/api/exchanges/%2F/{EXCHANGE}", {"type": "direct"})[0] in (201, 204)
    assert warren.api("PUT", f"/api/queues/%2F/{QUEUE}", {})[0] in (201, 204)
    assert warren.api("POST", f"/api/bindings/%2F/e/{EXCHANGE}/q/{QUEUE}",
                      {"routing_key": "new"})[0] == 201
    yield
    warren.api("DELETE", f"/api/exchanges/%2F/{EXCHANGE}")
    warren.api("DELETE", f"/api/queues/%2F/{QUEUE}")


def test_an_exchange_trace_shows_routed_and_unroutable_messages(warren, page, wait_for, browser, shot, topology):
    # The "Trace" link of an exchange page leads here with the form filled in.
    page(f"tracer?vhost={quote('/')}&exchange={EXCHANGE}")
    form = wait_for('[data-test="tracer-form"]')
    assert form.find_element(CSS, '[data-test="tracer-name"]').get_attribute("value") == EXCHANGE
    assert form.find_element(CSS, '[data-test="tracer-kind"]').get_attribute("value") == "exchange"
    most = form.find_element(CSS, '[data-test="tracer-max"]')
    most.clear()
    most.send_keys("10")
    form.find_element(CSS, '[data-test="tracer-form-submit"]').click()
    wait_for('[data-test="trace-status"]', "capturing")
    trace_url = browser.execute_script("return location.hash")
    assert trace_url.startswith("#/tracer/%2F/trace-")

    conn = warren.pika()
    try:
        ch = conn.channel()
        ch.basic_publish(EXCHANGE, "new", b'{"order": 1, "items": ["tea"]}',
                         pika.BasicProperties(content_type="application/json",
                                              headers={"tenant": "acme"}))
        ch.basic_publish(EXCHANGE, "nobody", b"lost")
    finally:
        conn.close()

    routed = wait_for('[data-test="trace-event"][data-routing-key="new"]')
    assert routed.get_attribute("data-unroutable") == "false"
    to = routed.find_element(CSS, '[data-test="routed-to"]')
    assert to.text == QUEUE
    assert to.get_attribute("href").endswith(f"#/queues/%2F/{QUEUE}")
    # JSON payloads are shown pretty-printed.
    payload = routed.find_element(CSS, '[data-test="payload"]').text
    assert '"order": 1' in payload and '\n' in payload
    # Opened, an event shows the message as the queue page does: headers, hex...
    routed.find_element(CSS, '[data-test="trace-details"] > summary').click()
    header = wait_for('[data-test="trace-event"][data-routing-key="new"] [data-test="message-headers"] tr[data-name="tenant"]')
    assert "acme" in header.text
    lost = wait_for('[data-test="trace-event"][data-routing-key="nobody"]')
    assert lost.get_attribute("data-unroutable") == "true"
    assert lost.find_element(CSS, '[data-test="unroutable"]').text == "unroutable"
    assert "lost" in lost.find_element(CSS, '[data-test="payload"]').text
    wait_for('[data-test="trace-captured"]', "2 of at most 10")
    shot("tracer-trace", full=True)

    # The list of traces links to it.
    page("tracer")
    trace_id = trace_url.rsplit("/", 1)[1]
    row = wait_for(f'[data-test="traces-table"] tr[data-name="{trace_id}"]')
    assert EXCHANGE in row.text
    shot("tracer")

    # Stop and delete: gone from the API, the events stay on the page.
    page(trace_url)
    wait_for('[data-test="trace-event"][data-routing-key="nobody"]')
    wait_for('[data-test="trace-stop"]').click()
    wait_for('[data-test="trace-status"]', "deleted")
    assert warren.api("GET", f"/api/tracer/%2F/{trace_id}")[0] == 404
    assert browser.find_elements(CSS, '[data-test="trace-event"]')
    assert not js_errors(browser)
