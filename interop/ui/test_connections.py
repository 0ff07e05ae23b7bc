"""Connections and channels: a pika connection appears with its client product, its page
shows its properties and channels, and "Close connection" closes it: the client sees
CONNECTION_FORCED (320) with the reason typed in the UI."""

import pika
import pytest

from conftest import quote, wait_until


def test_connection_shows_its_client_and_closes_from_the_ui(warren, page, wait_for, shot):
    conn = warren.pika(client_properties={"connection_name": "ui-core-conn"})
    ch = conn.channel()
    ch.basic_qos(prefetch_count=0)
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_consume(q, lambda *a: None)
    name = warren.wait_api("/api/connections", lambda cs: any(
        c.get("client_properties", {}).get("connection_name") == "ui-core-conn" for c in cs))
    name = next(c["name"] for c in name if c.get("client_properties", {}).get("connection_name") == "ui-core-conn")
    d = page("connections")
    row = wait_for(f'[data-test="connections-table"] tr[data-name="{name}"]')
    assert "Pika Python Client Library" in row.text
    shot("connections")
    # Its channels on the channels list, with prefetch 0 shown as unlimited.
    page("channels")
    chan = wait_for('[data-test="channels-table"] tr', text=name)
    assert "unlimited" in chan.text
    shot("channels")
    # The channel's page lists its consumer with its ack mode and prefetch.
    page(f"channels/{quote(name + ' (1)')}")
    consumer = wait_for('[data-test="consumers-table"] tbody tr', text=q)
    assert "manual" in consumer.text and "unlimited" in consumer.text
    shot("channel")
    page(f"connections/{quote(name)}")
    props = wait_for('[data-test="client-properties"]')
    assert "Pika Python Client Library" in props.text
    assert "publisher_confirms" in wait_for('[data-test="capabilities"]').text
    wait_for('[data-test="connection-channels-table"] tbody tr', text=name)
    shot("connection")
    reason = wait_for('[data-test="close-reason"]')
    reason.clear()
    reason.send_keys("ui-core says goodbye")
    d.execute_script("window.confirm = () => true")
    wait_for('[data-test="close-connection"]').click()
    wait_until(lambda: d.execute_script("return location.hash") == "#/connections", what="back on the list")
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as closed:
        conn.process_data_events(time_limit=5)
        conn.process_data_events(time_limit=5)
    assert closed.value.reply_code == 320
    assert "ui-core says goodbye" in closed.value.reply_text
    assert "CONNECTION_FORCED" in closed.value.reply_text
