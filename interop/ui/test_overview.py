"""The overview: the published count and rate move while a pika publisher runs, both
charts are drawn (opened from the API's history), the node's facts are shown, and the
fullest queue is one click away. Objects are named "ui-core-overview-*"."""

import threading

from conftest import wait_until

Q = "ui-core-overview-q"


def number(el):
    return int(el.text.replace(",", "") or 0)


def test_overview_numbers_move_while_a_publisher_runs(warren, page, wait_for, shot):
    conn = warren.pika()
    ch = conn.channel()
    ch.queue_declare(Q)
    stop = threading.Event()

    def publish():
        c = warren.pika()
        chan = c.channel()
        while not stop.is_set():
            chan.basic_publish("", Q, b'{"from": "ui-core"}')
            c.sleep(0.02)
        c.close()

    t = threading.Thread(target=publish, daemon=True)
    t.start()
    try:
        d = page("")
        count = wait_for('[data-test="published-count"]')
        first = number(count)
        # The page refreshes by itself every 5 s: the count grows and a rate shows.
        wait_until(lambda: number(d.find_element("css selector", '[data-test="published-count"]')) > first,
                   timeout=20, what="the published count to grow")
        wait_until(lambda: d.find_element("css selector", '[data-test="publish-rate"]').text not in ("0/s", "–"),
                   timeout=20, what="a publish rate")
        # Both charts are there, each with its lines and legend.
        for test in ("chart-rates", "chart-lengths"):
            chart = wait_for(f'[data-test="{test}"]')
            assert chart.find_elements("css selector", "svg polyline")
        assert "Publish" in d.find_element("css selector", '[data-test="chart-rates"]').text
        assert "Ready" in d.find_element("css selector", '[data-test="chart-lengths"]').text
        # Node facts: memory against its limit, disk, listeners with the AMQP port, uptime.
        facts = wait_for('[data-test="node-facts"]')
        assert f":{warren.amqp_port}" in d.find_element("css selector", '[data-test="node-listeners"]').text
        assert "Memory" in wait_for('[data-test="node-memory"]').text
        assert "Queue memory budget" in wait_for('[data-test="node-queue-memory"]').text
        assert "free" in wait_for('[data-test="node-disk"]').text
        assert "warren" in facts.text and "3.10.8" in facts.text
        # The fullest queue links to its page (where its messages are).
        row = wait_for(f'[data-test="top-queues-table"] tr[data-name="//{Q}"]', timeout=20)
        assert row.find_element("css selector", "a").get_attribute("href").endswith(f"#/queues/%2F/{Q}")
        assert number(wait_for('[data-test="total-queues"]')) >= 1
        shot("overview")
    finally:
        stop.set()
        t.join(10)
        ch.queue_delete(Q)
        conn.close()
