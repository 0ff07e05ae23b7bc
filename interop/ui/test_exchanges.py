"""The exchanges pages in a real browser: add an exchange and a queue from the UI, bind
them on the exchange page, publish from the UI (routed, then unroutable), find the
message in the queue through the API, unbind and delete. Screenshots of the list and
the exchange page."""

import json

from conftest import accept_alert, quote, wait_until
from ui_forms import choose, click, fill, helper, press

PREFIX = "ui-ex-"


def test_add_bind_publish_delete(warren, browser, page, wait_for, wait_gone, shot):
    exchange, queue = PREFIX + "orders", PREFIX + "orders-q"

    # Add the exchange from the list page.
    page("exchanges")
    form = wait_for('[data-test="add-exchange"]')
    fill(form, "exchange-name", exchange)
    choose(form, "exchange-type", "topic")
    # The alternate-exchange helper adds a row for that argument.
    helper(browser, form, "alternate-exchange", "amq.fanout")
    press(browser, form, "add-exchange-submit")
    row = wait_for(f'[data-test="exchanges-table"] tr[data-name="//{exchange}"]')
    status, x = warren.api("GET", f"/api/exchanges/%2F/{quote(exchange)}")
    assert status == 200, x
    assert (x["type"], x["durable"], x["arguments"]) == ("topic", True, {"alternate-exchange": "amq.fanout"})
    assert "AE amq.fanout" in row.text and "D" in row.text
    shot("exchanges")

    # And a queue from the queues page.
    page("queues")
    form = wait_for('[data-test="add-queue"]')
    fill(form, "queue-name", queue)
    press(browser, form, "add-queue-submit")
    wait_for(f'[data-test="queues-table"] tr[data-name="//{queue}"]')

    # Bind them on the exchange page.
    page(f"exchanges/%2F/{quote(exchange)}")
    wait_for('[data-test="exchange-details"]', "topic")
    form = wait_for('[data-test="add-binding"]')
    choose(form, "bind-dest-type", "q")
    fill(form, "bind-other", queue)
    fill(form, "bind-routing-key", "order.*")
    press(browser, form, "add-binding-submit")
    row = wait_for(f'[data-test="bindings-from"] tr[data-name="{queue}"]')
    assert "order.*" in row.text
    status, bindings = warren.api("GET", f"/api/exchanges/%2F/{quote(exchange)}/bindings/source")
    assert [(b["destination"], b["routing_key"]) for b in bindings] == [(queue, "order.*")]

    # Publish: routed, then a key no binding matches.
    panel = wait_for('[data-test="publish-panel"]')
    fill(panel, "publish-routing-key", "order.created")
    fill(panel, "publish-payload", json.dumps({"order": 1}))
    press(browser, panel, "publish-submit")
    wait_for('[data-test="publish-result"][data-routed="true"]')
    got = warren.wait_api(f"/api/queues/%2F/{quote(queue)}", lambda q: q["messages"] == 1)
    assert got["messages_ready"] == 1
    status, messages = warren.api("POST", f"/api/queues/%2F/{quote(queue)}/get",
                                  {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
    assert status == 200 and json.loads(messages[0]["payload"]) == {"order": 1}
    assert (messages[0]["exchange"], messages[0]["routing_key"]) == (exchange, "order.created")

    fill(panel, "publish-routing-key", "invoice.created")
    press(browser, panel, "publish-submit")
    result = wait_for('[data-test="publish-result"][data-routed="false"]')
    assert "not routed" in result.text
    browser.execute_script("window.scrollTo(0, 0)")
    shot("exchange-page")

    # Unbind, then delete the exchange (if unused: it is now).
    click(browser, wait_for(f'[data-test="bindings-from"] tr[data-name="{queue}"] [data-test="unbind"]'))
    wait_gone(f'[data-test="bindings-from"] tr[data-name="{queue}"]')
    assert warren.api("GET", f"/api/exchanges/%2F/{quote(exchange)}/bindings/source")[1] == []
    press(browser, browser, "delete-if-unused")
    press(browser, browser, "delete-exchange")
    accept_alert(browser)
    wait_until(lambda: browser.execute_script("return location.hash") == "#/exchanges", what="back to the list")
    assert warren.api("GET", f"/api/exchanges/%2F/{quote(exchange)}")[0] == 404
    assert warren.api("DELETE", f"/api/queues/%2F/{quote(queue)}")[0] == 204


def test_default_exchange_page(page, wait_for):
    page("exchanges")
    link = wait_for('[data-test="exchanges-table"] tr[data-name="//"] a', "(AMQP default)")
    assert link.get_attribute("href").endswith("#/exchanges/%2F/amq.default")
    page("exchanges/%2F/amq.default")
    wait_for("h1", "(AMQP default)")
    wait_for('[data-test="exchange-details"]', "direct")
    wait_for(".panel", "cannot be deleted")
