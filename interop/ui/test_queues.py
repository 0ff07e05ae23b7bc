"""The queue pages in a real browser: add a queue with TTL and dead-letter arguments from
the list's helpers, see them on the queue page, publish from it, get the message back
with reject-requeue (its JSON payload pretty-printed), purge and delete. Screenshots of
the queue page and of a got message."""

import json

from conftest import accept_alert, quote, wait_until
from ui_forms import choose, click, fill, helper, press

PREFIX = "ui-q-"


def test_queue_page(warren, browser, page, wait_for, shot):
    name = PREFIX + "orders"
    page("queues")
    form = wait_for('[data-test="add-queue"]')
    fill(form, "queue-name", name)
    helper(browser, form, "x-message-ttl", "600000")
    helper(browser, form, "x-dead-letter-exchange", PREFIX + "dlx")
    helper(browser, form, "x-dead-letter-routing-key", "dead")
    press(browser, form, "add-queue-submit")
    row = wait_for(f'[data-test="queues-table"] tr[data-name="//{name}"]')
    assert "TTL 10m 0s" in row.text and "DLX" in row.text
    status, q = warren.api("GET", f"/api/queues/%2F/{quote(name)}")
    assert status == 200, q
    assert q["arguments"] == {"x-queue-type": "classic", "x-message-ttl": 600000,
                              "x-dead-letter-exchange": PREFIX + "dlx",
                              "x-dead-letter-routing-key": "dead"}

    # The queue page shows the arguments.
    click(browser, row.find_element("css selector", "a"))
    wait_for("h1", name)
    args = wait_for('[data-test="queue-arguments"]', "x-message-ttl: 600000")
    assert f"x-dead-letter-exchange: {PREFIX}dlx" in args.text
    assert "x-dead-letter-routing-key: dead" in args.text
    features = wait_for('[data-test="queue-features"]')
    assert "TTL" in features.text and "DLX" in features.text and "DLK dead" in features.text

    # Publish from the queue page (the default exchange, the queue's name as key).
    body = {"order": 7, "items": ["a", "b"], "total": 12.5}
    panel = wait_for('[data-test="publish-panel"]')
    fill(panel, "publish-payload", json.dumps(body))
    press(browser, panel, "publish-submit")
    wait_for('[data-test="publish-result"][data-routed="true"]')
    warren.wait_api(f"/api/queues/%2F/{quote(name)}", lambda q: q["messages_ready"] == 1)
    wait_for('[data-test="queue-ready"]', "1", timeout=15)

    # Get it with reject requeue true: shown pretty-printed, and back in the queue.
    get = wait_for('[data-test="get-panel"]')
    choose(get, "get-ackmode", "reject_requeue_true")
    press(browser, get, "get-submit")
    payload = wait_for('[data-test="get-messages"] [data-test="payload"]')
    assert payload.text == json.dumps(body, indent=2)
    assert payload.get_attribute("data-view") == "auto"
    message = wait_for('[data-test="get-messages"] [data-test="message"]')
    assert "Redelivered" in message.text
    browser.execute_script("arguments[0].scrollIntoView()", get)
    shot("queue-get")
    # The same payload as hex, then base64.
    press(browser, get, "payload-hex")
    assert payload.text.startswith("7b 22 6f 72 64 65 72 22")
    q = warren.wait_api(f"/api/queues/%2F/{quote(name)}", lambda q: q["messages_ready"] == 1)
    assert q["messages"] == 1
    status, again = warren.api("POST", f"/api/queues/%2F/{quote(name)}/get",
                               {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
    assert status == 200 and again[0]["redelivered"] is True

    browser.execute_script("window.scrollTo(0, 0)")
    shot("queue-page")

    # Purge, then delete.
    press(browser, browser, "purge-queue")
    accept_alert(browser)
    warren.wait_api(f"/api/queues/%2F/{quote(name)}", lambda q: q["messages"] == 0)
    press(browser, browser, "delete-if-empty")
    press(browser, browser, "delete-queue")
    accept_alert(browser)
    wait_until(lambda: browser.execute_script("return location.hash") == "#/queues", what="back to the list")
    assert warren.api("GET", f"/api/queues/%2F/{quote(name)}")[0] == 404


def test_dead_letter_history(warren, page, wait_for):
    """A message dead-lettered by two queues in turn shows its x-death history oldest
    first, and the browse panel shows it without a click (redelivered still no)."""
    first, second, last = PREFIX + "dl-a", PREFIX + "dl-b", PREFIX + "dl-c"
    chain = [(last, {}), (second, {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": last}),
             (first, {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": second})]
    for q, args in chain:
        assert warren.api("PUT", f"/api/queues/%2F/{quote(q)}", {"arguments": args})[0] == 201
    conn = warren.pika()
    ch = conn.channel()
    ch.basic_publish("", first, b'{"n": 1}')
    for q in (first, second):
        method = None
        while method is None:
            method, _, _ = ch.basic_get(q)
        ch.basic_reject(method.delivery_tag, requeue=False)
    conn.close()
    warren.wait_api(f"/api/queues/%2F/{quote(last)}", lambda q: q["messages_ready"] == 1)

    page(f"queues/%2F/{quote(last)}")
    card = wait_for('[data-test="browse-messages"] [data-test="message"]')
    rows = card.find_elements("css selector", '[data-test="x-death"] tbody tr')
    assert [r.find_elements("css selector", "td")[1].text for r in rows] == [first, second]
    assert all("rejected" in r.text for r in rows)
    assert card.find_element("css selector", '[data-test="redelivered"]').text == "no"
    assert card.find_element("css selector", '[data-test="payload"]').text == '{\n  "n": 1\n}'
    for q, _ in chain:
        warren.api("DELETE", f"/api/queues/%2F/{quote(q)}")
