"""Browse a queue's messages in the UI without changing them.

Publish numbered messages with pika, open the queue's page, see them in the Browse panel
(positions from the head, then the next page, then a search by header text), and check
through AMQP afterwards that nothing changed: every message is still there, in order,
with redelivered=false, and the queue's statistics counted no get or redelivery.
Objects made here are named "ui-browse-*" and deleted afterwards.
"""

import pika
import pytest

from conftest import quote, wait_until

QUEUE = "ui-browse-q"
CARD = '[data-test="browse-messages"] [data-test="message-card"]'


@pytest.fixture
def queue(warren):
    status, body = warren.api("PUT", f"/api/queues/%2F/{QUEUE}", {})
    assert status in (201, 204), (status, body)
    yield QUEUE
    warren.api("DELETE", f"/api/queues/%2F/{QUEUE}")


def publish(warren, count):
    conn = warren.pika()
    try:
        ch = conn.channel()
        ch.confirm_delivery()
        for n in range(count):
            colour = "crimson" if n == 27 else "grey"
            ch.basic_publish("", QUEUE, f'{{"order": {n}, "note": "message {n}"}}'.encode(),
                             pika.BasicProperties(content_type="application/json",
                                                  headers={"colour": colour, "n": n}))
    finally:
        conn.close()


def positions(browser):
    """The positions shown, read in one go (the panel redraws while it loads)."""
    return browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((c) => Number(c.dataset.position))",
        CARD)


def test_browse_in_the_ui_leaves_the_queue_unchanged(warren, browser, page, wait_for, shot, queue):
    publish(warren, 30)
    warren.wait_api(f"/api/queues/%2F/{queue}", lambda q: q.get("messages_ready") == 30)
    page(f"queues/%2F/{quote(queue)}")
    panel = wait_for('[data-test="browse-panel"]')
    wait_until(lambda: positions(browser) == list(range(20)), timeout=15,
               what="the first 20 messages in the browse panel")
    first = browser.find_elements("css selector", CARD)[0]
    assert '"order": 0' in first.text or '"order":0' in first.text.replace(" ", "")
    assert first.find_element("css selector", '[data-test="redelivered"]').text == "no"
    browser.execute_script("arguments[0].scrollIntoView()", panel)
    shot("queue-browse")

    panel.find_element("css selector", '[data-test="browse-next"]').click()
    wait_until(lambda: positions(browser) == list(range(20, 30)), what="positions 20 to 29")

    search = panel.find_element("css selector", '[data-test="browse-search"]')
    search.clear()
    search.send_keys("CRIMSON")
    panel.find_element("css selector", '[data-test="browse-submit"]').click()
    wait_until(lambda: positions(browser) == [27], what="the one message whose header says crimson")
    wait_for('[data-test="browse-status"]', "1 match")

    # Nothing changed: a consumer gets all 30, in order, none redelivered.
    conn = warren.pika()
    try:
        ch = conn.channel()
        got = []
        for _ in range(30):
            method, props, body = ch.basic_get(QUEUE, auto_ack=True)
            assert method is not None, f"only {len(got)} messages left"
            got.append((props.headers["n"], method.redelivered))
        assert got == [(n, False) for n in range(30)]
    finally:
        conn.close()
    stats = warren.api("GET", f"/api/queues/%2F/{queue}")[1].get("message_stats", {})
    assert stats.get("redeliver", 0) == 0, stats
