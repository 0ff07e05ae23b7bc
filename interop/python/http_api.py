"""Scenario 18: the management HTTP API as Python users call it, with `requests`:
declare a queue (PUT), see it listed, publish through AMQP (pika), watch the count
reach 3 in the API, get the messages back through the API (ack mode, encoding), find a
named connection and close it through the API (DELETE with X-Reason), and see pika
report 320 CONNECTION_FORCED with that reason. Called by scenarios.py."""
import time
from urllib.parse import quote

import requests
from pika import exceptions as pexc


def scenario(url, api, connect, check, prefix):
    s = requests.Session()
    s.auth = ("guest", "guest")
    q = prefix + "18"
    qpath = "%s/api/queues/%%2F/%s" % (api, quote(q, safe=""))

    r = s.put(qpath, json={"durable": False, "auto_delete": False,
                           "arguments": {"x-max-length": 10}}, timeout=10)
    check(r.status_code in (201, 204), "PUT queue: %s %s" % (r.status_code, r.text))
    try:
        r = s.get(api + "/api/queues/%2F", params={"columns": "name,arguments"}, timeout=10)
        check(r.status_code == 200, "GET queues: %s" % r.status_code)
        listed = [x for x in r.json() if x["name"] == q]
        check(listed and listed[0]["arguments"] == {"x-max-length": 10},
              "queue not listed with its arguments: %r" % listed)

        conn = connect(url)
        ch = conn.channel()
        ch.confirm_delivery()
        for i in range(3):
            ch.basic_publish(exchange="", routing_key=q, body=b"m%d" % i)
        conn.close()
        # The count is a statistic: RabbitMQ refreshes it every 5 s.
        deadline = time.time() + 15
        messages = None
        while time.time() < deadline:
            messages = s.get(qpath, timeout=10).json().get("messages")
            if messages == 3:
                break
            time.sleep(0.25)
        check(messages == 3, "the API counts %r messages, not 3" % messages)

        r = s.post(qpath + "/get", json={"count": 3, "ackmode": "ack_requeue_false",
                                         "encoding": "auto", "truncate": 50000}, timeout=10)
        check(r.status_code == 200, "POST get: %s %s" % (r.status_code, r.text))
        got = [(m["payload"], m["payload_encoding"], m["routing_key"]) for m in r.json()]
        check(got == [("m%d" % i, "string", q) for i in range(3)], "got %r" % got)

        # A connection the API can name: its client-provided name is in the listing.
        name = prefix + "18-victim"
        victim = connect(url, client_properties={"connection_name": name})
        found = None
        deadline = time.time() + 15
        while found is None and time.time() < deadline:
            for c in s.get(api + "/api/connections", timeout=10).json():
                if (c.get("client_properties") or {}).get("connection_name") == name:
                    found = c["name"]
            if found is None:
                time.sleep(0.25)
        check(found is not None, "connection %s not listed" % name)
        r = s.delete(api + "/api/connections/" + quote(found, safe=""),
                     headers={"X-Reason": "closed by interop 18"}, timeout=10)
        check(r.status_code == 204, "DELETE connection: %s %s" % (r.status_code, r.text))
        try:
            deadline = time.time() + 10
            while time.time() < deadline:
                victim.process_data_events(time_limit=0.1)
            raise AssertionError("pika saw no close")
        except pexc.ConnectionClosedByBroker as e:
            check((e.reply_code, e.reply_text) == (320, "CONNECTION_FORCED - closed by interop 18"),
                  "closed with %r %r" % (e.reply_code, e.reply_text))
    finally:
        s.delete(qpath, timeout=10)
    r = s.get(qpath, timeout=10)
    check(r.status_code == 404, "queue still there after DELETE: %s" % r.status_code)
