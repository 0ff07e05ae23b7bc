#!/usr/bin/env python3
"""The interop scenarios 01..15, 17 and 19 on (see interop/README.md) with pika's BlockingConnection,
18 (the management HTTP API with requests, http_api.py) when WARREN_INTEROP_HTTP_URL is
set, and `tls` (amqps, EXTERNAL) when WARREN_INTEROP_TLS_URL is set.

Usage: scenarios.py URL            run 01..15, 17, 18, 19 on and tls, one line each on stdout
       ONLY=19r scenarios.py URL   19r (19's stream after a restart) runs only when named
       scenarios.py URL --one NN   run one scenario in this process (used internally)

Each scenario runs in its own child process with a hard timeout, so a hanging
broker gives FAIL and never a stall. Diagnostics go to stderr.
"""
import datetime
import decimal
import os
import random
import subprocess
import sys
import time

import pika
from pika import exceptions as pexc

SCENARIO_TIMEOUT = float(os.environ.get("INTEROP_SCENARIO_TIMEOUT", "20"))
P = "interop.python."


class NA(Exception):
    """The library cannot express this scenario."""


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def params(url, **kw):
    p = pika.URLParameters(url)
    p.socket_timeout = 10
    p.blocked_connection_timeout = 10
    p.connection_attempts = 1
    for k, v in kw.items():
        setattr(p, k, v)
    return p


def connect(url, **kw):
    return pika.BlockingConnection(params(url, **kw))


def count(ch, queue):
    return ch.queue_declare(queue=queue, passive=True).method.message_count


def wait_until(conn, pred, timeout):
    end = time.time() + timeout
    while not pred() and time.time() < end:
        conn.process_data_events(time_limit=0.05)
    return pred()


# --------------------------------------------------------------------------

def s01(url):
    conn = connect(url, heartbeat=10, frame_max=65536)
    try:
        neg = conn._impl.params  # pika stores the negotiated values here
        check(neg.heartbeat == 10, "negotiated heartbeat %r, expected 10" % neg.heartbeat)
        check(neg.frame_max == 65536, "negotiated frame_max %r, expected 65536" % neg.frame_max)
        check(neg.channel_max > 0, "negotiated channel_max %r" % neg.channel_max)
        ch = conn.channel()
        check(ch.is_open, "channel not open")
        ch.close()
    finally:
        conn.close()
    check(conn.is_closed, "connection not closed")


def s02(url):
    q = P + "02"
    conn = connect(url)
    try:
        ch = conn.channel()
        ch.queue_declare(queue=q, exclusive=True)
        ch.basic_publish(exchange="", routing_key=q, body=b"hello 02",
                         properties=pika.BasicProperties(content_type="text/plain"))
        end = time.time() + 5
        m = (None, None, None)
        while time.time() < end:
            m = ch.basic_get(queue=q, auto_ack=True)
            if m[0] is not None:
                break
            time.sleep(0.02)
        method, props, body = m
        check(method is not None, "basic.get returned empty")
        check(body == b"hello 02", "body %r" % body)
        check(method.routing_key == q, "routing key %r" % method.routing_key)
        check(method.exchange == "", "exchange %r" % method.exchange)
        check(method.message_count == 0, "message_count %r" % method.message_count)
        check(method.redelivered is False, "redelivered %r" % method.redelivered)
        check(props.content_type == "text/plain", "content_type %r" % props.content_type)
        method, _, _ = ch.basic_get(queue=q, auto_ack=True)
        check(method is None, "second basic.get not empty")
        ch.queue_delete(queue=q)
    finally:
        conn.close()


def s03(url):
    q = P + "03"
    conn = connect(url)
    try:
        ch = conn.channel()
        ch.queue_declare(queue=q, exclusive=True)
        for i in range(10):
            ch.basic_publish(exchange="", routing_key=q, body=("m%d" % i).encode())
        got = []
        for method, props, body in ch.consume(queue=q, auto_ack=False, inactivity_timeout=5):
            check(method is not None, "timed out after %d messages" % len(got))
            got.append(body)
            ch.basic_ack(method.delivery_tag)
            if len(got) == 10:
                break
        ch.cancel()
        check(got == [("m%d" % i).encode() for i in range(10)], "order/content %r" % got)
        check(count(ch, q) == 0, "queue not empty afterwards")
        ch.queue_delete(queue=q)
    finally:
        conn.close()


def s04(url):
    x = P + "04.fanout"
    qs = [P + "04.q%d" % i for i in range(3)]
    conn = connect(url)
    try:
        ch = conn.channel()
        ch.exchange_declare(exchange=x, exchange_type="fanout", auto_delete=False)
        for q in qs:
            ch.queue_declare(queue=q, exclusive=True)
            ch.queue_bind(queue=q, exchange=x, routing_key="ignored.%s" % q)
        ch.confirm_delivery()
        ch.basic_publish(exchange=x, routing_key="anything", body=b"fan")
        for q in qs:
            method, _, body = ch.basic_get(queue=q, auto_ack=True)
            check(method is not None, "%s got nothing" % q)
            check(body == b"fan", "%s body %r" % (q, body))
            check(method.exchange == x and method.routing_key == "anything",
                  "%s exchange/key %r/%r" % (q, method.exchange, method.routing_key))
            check(ch.basic_get(queue=q, auto_ack=True)[0] is None, "%s got more than one" % q)
        for q in qs:
            ch.queue_delete(queue=q)
        ch.exchange_delete(exchange=x)
    finally:
        conn.close()


def drain(ch, q):
    out = set()
    while True:
        method, _, body = ch.basic_get(queue=q, auto_ack=True)
        if method is None:
            return out
        out.add(body.decode())


def s05(url):
    x = P + "05.topic"
    binds = {"A": "a.*", "B": "a.#", "C": "#.z", "D": "*.b.*"}
    keys = ["a.b", "a.b.c", "x.y.z", "a", "q.b.r", "a.z", "z", "b", "a.b.z", "x.b.y.z"]
    expect = {
        "A": {"a.b", "a.z"},
        "B": {"a.b", "a.b.c", "a", "a.z", "a.b.z"},
        "C": {"x.y.z", "a.z", "z", "a.b.z", "x.b.y.z"},
        "D": {"a.b.c", "q.b.r", "a.b.z"},
    }
    conn = connect(url)
    try:
        ch = conn.channel()
        ch.exchange_declare(exchange=x, exchange_type="topic")
        for name, pattern in binds.items():
            q = P + "05." + name
            ch.queue_declare(queue=q, exclusive=True)
            ch.queue_bind(queue=q, exchange=x, routing_key=pattern)
        ch.confirm_delivery()
        for k in keys:
            ch.basic_publish(exchange=x, routing_key=k, body=k.encode())
        for name in binds:
            got = drain(ch, P + "05." + name)
            check(got == expect[name], "queue %s (%s) got %s, expected %s"
                  % (name, binds[name], sorted(got), sorted(expect[name])))
        for name in binds:
            ch.queue_delete(queue=P + "05." + name)
        ch.exchange_delete(exchange=x)
    finally:
        conn.close()


def s06(url):
    x = P + "06.headers"
    qall, qany = P + "06.all", P + "06.any"
    msgs = {
        "m1": {"a": "1", "b": "2"},
        "m2": {"a": "1"},
        "m3": {"a": "1", "b": "3"},
        "m4": {"c": "1"},
        "m5": {"a": "1", "b": "2", "c": "3"},
        "m6": {"b": "2"},
        "m7": None,
        "m8": {"a": "2", "b": "1"},
    }
    expect_all = {"m1", "m5"}
    expect_any = {"m1", "m2", "m3", "m5", "m6"}
    conn = connect(url)
    try:
        ch = conn.channel()
        ch.exchange_declare(exchange=x, exchange_type="headers")
        ch.queue_declare(queue=qall, exclusive=True)
        ch.queue_declare(queue=qany, exclusive=True)
        ch.queue_bind(queue=qall, exchange=x, arguments={"x-match": "all", "a": "1", "b": "2"})
        ch.queue_bind(queue=qany, exchange=x, arguments={"x-match": "any", "a": "1", "b": "2"})
        ch.confirm_delivery()
        for name, h in msgs.items():
            ch.basic_publish(exchange=x, routing_key="", body=name.encode(),
                             properties=pika.BasicProperties(headers=h))
        got_all, got_any = drain(ch, qall), drain(ch, qany)
        check(got_all == expect_all, "x-match all got %s, expected %s" % (sorted(got_all), sorted(expect_all)))
        check(got_any == expect_any, "x-match any got %s, expected %s" % (sorted(got_any), sorted(expect_any)))
        ch.queue_delete(queue=qall)
        ch.queue_delete(queue=qany)
        ch.exchange_delete(exchange=x)
    finally:
        conn.close()


def s07(url):
    q = P + "07"
    conn = connect(url)
    try:
        ch = conn.channel()
        ch.queue_declare(queue=q, exclusive=True)
        ch.confirm_delivery()
        acked = 0
        for i in range(1000):
            try:
                # with confirms on, basic_publish waits for basic.ack and raises on nack
                ch.basic_publish(exchange="", routing_key=q, body=b"c%d" % i)
                acked += 1
            except pexc.NackError:
                raise Fail("message %d nacked" % i)
        check(acked == 1000, "acked %d" % acked)
        check(count(ch, q) == 1000, "queue has %d" % count(ch, q))
        ch.queue_delete(queue=q)
    finally:
        conn.close()


def s08(url):
    q = P + "08"
    conn = connect(url)
    try:
        ch = conn.channel()
        ch.queue_declare(queue=q, exclusive=True)
        ch.tx_select()
        ch.basic_publish(exchange="", routing_key=q, body=b"t1")
        ch.basic_publish(exchange="", routing_key=q, body=b"t2")
        check(count(ch, q) == 0, "uncommitted messages visible")
        ch.tx_commit()
        check(count(ch, q) == 2, "after commit %d" % count(ch, q))
        ch.basic_publish(exchange="", routing_key=q, body=b"t3")
        ch.tx_rollback()
        check(count(ch, q) == 2, "after rollback %d" % count(ch, q))
        ch.queue_delete(queue=q)
    finally:
        conn.close()


def s09(url):
    q = P + "09"
    conn = connect(url)
    try:
        ch = conn.channel()
        ch.queue_declare(queue=q, exclusive=True)
        ch.basic_publish(exchange="", routing_key=q, body=b"again")
        seen = []
        for method, props, body in ch.consume(queue=q, auto_ack=False, inactivity_timeout=5):
            check(method is not None, "timed out after %d deliveries" % len(seen))
            check(body == b"again", "body %r" % body)
            seen.append(method.redelivered)
            if len(seen) == 1:
                ch.basic_reject(method.delivery_tag, requeue=True)
            elif len(seen) == 2:
                ch.basic_nack(method.delivery_tag, multiple=False, requeue=True)
            else:
                ch.basic_ack(method.delivery_tag)
                break
        ch.cancel()
        check(seen == [False, True, True], "redelivered flags %r" % seen)
        check(count(ch, q) == 0, "queue not empty")
        ch.queue_delete(queue=q)
    finally:
        conn.close()


def s10(url):
    x = P + "10.direct"
    conn = connect(url)
    try:
        ch = conn.channel()
        ch.exchange_declare(exchange=x, exchange_type="direct")
        returned = []
        ch.add_on_return_callback(lambda c, m, p, b: returned.append((m, b)))
        ch.basic_publish(exchange=x, routing_key="no.binding", body=b"bounce", mandatory=True)
        wait_until(conn, lambda: returned, 5)
        check(returned, "no basic.return")
        m, b = returned[0]
        check(m.reply_code == 312, "reply code %r" % m.reply_code)
        check(m.reply_text == "NO_ROUTE", "reply text %r" % m.reply_text)
        check(b == b"bounce", "body %r" % b)
        check(m.exchange == x and m.routing_key == "no.binding", "exchange/key %r/%r"
              % (m.exchange, m.routing_key))
        ch.exchange_delete(exchange=x)
    finally:
        conn.close()


def s11(url):
    q = P + "11.missing"
    conn = connect(url)
    try:
        ch = conn.channel()
        try:
            ch.queue_declare(queue=q, passive=True)
            raise Fail("passive declare of a missing queue succeeded")
        except pexc.ChannelClosedByBroker as e:
            check(e.reply_code == 404, "reply code %r" % e.reply_code)
            check(e.reply_text.startswith("NOT_FOUND - no queue '"), "reply text %r" % e.reply_text)
        check(ch.is_closed, "channel still open")
        check(conn.is_open, "connection closed")
        ch2 = conn.channel()
        q2 = P + "11.ok"
        ch2.queue_declare(queue=q2, exclusive=True)
        ch2.basic_publish(exchange="", routing_key=q2, body=b"after")
        method, _, body = ch2.basic_get(queue=q2, auto_ack=True)
        check(method is not None and body == b"after", "new channel unusable")
        ch2.queue_delete(queue=q2)
    finally:
        conn.close()


def s12(url):
    q = P + "12"
    body = random.Random(12).randbytes(10 * 1024 * 1024)
    conn = connect(url)
    try:
        ch = conn.channel()
        ch.queue_declare(queue=q, exclusive=True)
        ch.confirm_delivery()
        ch.basic_publish(exchange="", routing_key=q, body=body)
        method, _, got = ch.basic_get(queue=q, auto_ack=True)
        check(method is not None, "basic.get empty")
        check(len(got) == len(body), "length %d, expected %d" % (len(got), len(body)))
        check(got == body, "body differs")
        ch.queue_delete(queue=q)
    finally:
        conn.close()


def s13(url):
    server_q = P + "13.rpc"
    requester = connect(url)
    responder = connect(url)
    try:
        rch = responder.channel()
        rch.queue_declare(queue=server_q, exclusive=True)
        served = []

        def on_request(c, m, props, body):
            served.append(props.reply_to)
            c.basic_publish(exchange="", routing_key=props.reply_to, body=b"reply:" + body,
                            properties=pika.BasicProperties(correlation_id=props.correlation_id))
            c.basic_ack(m.delivery_tag)

        rch.basic_consume(queue=server_q, on_message_callback=on_request, auto_ack=False)

        qch = requester.channel()
        replies = []
        qch.basic_consume(queue="amq.rabbitmq.reply-to", auto_ack=True,
                          on_message_callback=lambda c, m, p, b: replies.append((p, b)))
        qch.basic_publish(exchange="", routing_key=server_q, body=b"ping",
                          properties=pika.BasicProperties(reply_to="amq.rabbitmq.reply-to",
                                                          correlation_id="corr-13"))
        end = time.time() + 10
        while not replies and time.time() < end:
            responder.process_data_events(time_limit=0.02)
            requester.process_data_events(time_limit=0.02)
        check(served, "responder got no request")
        check(served[0].startswith("amq.rabbitmq.reply-to."), "reply_to seen by server %r" % served[0])
        check(replies, "no reply")
        p, b = replies[0]
        check(b == b"reply:ping", "reply body %r" % b)
        check(p.correlation_id == "corr-13", "correlation_id %r" % p.correlation_id)
        rch.queue_delete(queue=server_q)
    finally:
        requester.close()
        responder.close()


def s14(url):
    q = P + "14"
    conn = connect(url)
    try:
        ch = conn.channel()
        ch.queue_declare(queue=q, exclusive=True)
        ch.basic_qos(prefetch_count=5)
        for i in range(20):
            ch.basic_publish(exchange="", routing_key=q, body=b"p%d" % i)
        got = []
        ch.basic_consume(queue=q, auto_ack=False,
                         on_message_callback=lambda c, m, p, b: got.append((m.delivery_tag, b)))
        wait_until(conn, lambda: len(got) >= 5, 5)
        conn.process_data_events(time_limit=0.5)
        check(len(got) == 5, "first window: %d deliveries" % len(got))
        check([b for _, b in got] == [b"p%d" % i for i in range(5)], "first window order")
        ch.basic_ack(got[-1][0], multiple=True)
        wait_until(conn, lambda: len(got) >= 10, 5)
        conn.process_data_events(time_limit=0.5)
        check(len(got) == 10, "after ack: %d deliveries in total" % len(got))
        check([b for _, b in got[5:]] == [b"p%d" % i for i in range(5, 10)], "second window order")
        ch.basic_ack(got[-1][0], multiple=True)
        ch.queue_delete(queue=q)
    finally:
        conn.close()


def same(a, b, path="headers"):
    """Equal values of the same Python types, recursively."""
    if isinstance(a, int) and not isinstance(a, bool):
        # pika decodes signed 64-bit values as its int subclass `long`
        check(isinstance(b, int) and not isinstance(b, bool),
              "%s: type %s, expected an integer (%r)" % (path, type(b).__name__, b))
    elif type(a) is not type(b):
        raise Fail("%s: type %s, expected %s (%r vs %r)" % (path, type(b).__name__,
                                                            type(a).__name__, b, a))
    if isinstance(a, dict):
        check(set(a) == set(b), "%s: keys %s, expected %s" % (path, sorted(b), sorted(a)))
        for k in a:
            same(a[k], b[k], path + "." + k)
    elif isinstance(a, list):
        check(len(a) == len(b), "%s: length %d, expected %d" % (path, len(b), len(a)))
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, "%s[%d]" % (path, i))
    else:
        check(a == b, "%s: %r, expected %r" % (path, b, a))


def s15(url):
    q = P + "15"
    # Field types pika can send: S longstr, x byte array, t bool, l int64 (pika sends
    # every Python int as 'l'), D decimal, T timestamp, F table, A array, V void.
    # pika has no encoder for float/double or narrower ints.
    headers = {
        "str": "h\u00e9llo",
        "empty": "",
        "bytes": b"\x00\x01\xfe\xff",
        "true": True,
        "false": False,
        "int": 42,
        "neg": -7,
        "i64max": 2 ** 63 - 1,
        "i64min": -2 ** 63,
        "dec": decimal.Decimal("3.14"),
        "decint": decimal.Decimal("12"),
        "ts": datetime.datetime(2020, 5, 17, 12, 34, 56, tzinfo=datetime.timezone.utc),
        "void": None,
        "table": {"inner": "v", "n": 1, "deeper": {"x": [1, "two", None]}},
        "array": [1, "two", True, None, b"\x07", decimal.Decimal("0.5"),
                  {"k": "v"}, [3, 4]],
        "emptytable": {},
        "emptyarray": [],
    }
    props = pika.BasicProperties(
        content_type="application/octet-stream",
        content_encoding="identity",
        headers=headers,
        delivery_mode=2,
        priority=7,
        correlation_id="corr-15",
        reply_to="interop.python.15.reply",
        expiration="600000",
        message_id="msg-15",
        timestamp=1589718896,
        type="interop.type",
        user_id="guest",
        app_id="interop.python",
        cluster_id="cluster-15",
    )
    conn = connect(url)
    try:
        ch = conn.channel()
        ch.queue_declare(queue=q, exclusive=True)
        ch.confirm_delivery()
        ch.basic_publish(exchange="", routing_key=q, body=b"props", properties=props)
        method, got, body = ch.basic_get(queue=q, auto_ack=True)
        check(method is not None, "basic.get empty")
        check(body == b"props", "body %r" % body)
        for name in ("content_type", "content_encoding", "delivery_mode", "priority",
                     "correlation_id", "reply_to", "expiration", "message_id", "timestamp",
                     "type", "user_id", "app_id", "cluster_id"):
            same(getattr(props, name), getattr(got, name), name)
        same(headers, got.headers)
        ch.queue_delete(queue=q)
    finally:
        conn.close()


def stls(url):
    """amqps: the server's certificate verified against the CA; PLAIN without a client
    certificate, then EXTERNAL with one (CN=guest)."""
    import ssl

    env = os.environ
    tls_url = env.get("WARREN_INTEROP_TLS_URL")
    if not tls_url:
        raise NA("no amqps URL (WARREN_INTEROP_TLS_URL)")
    ctx = ssl.create_default_context(cafile=env["WARREN_INTEROP_TLS_CA"])
    q = P + "tls"
    conn = connect(tls_url, ssl_options=pika.SSLOptions(ctx, "127.0.0.1"),
                   credentials=pika.PlainCredentials("guest", "guest"))
    ch = conn.channel()
    ch.queue_declare(queue=q, auto_delete=False)
    ch.basic_publish(exchange="", routing_key=q, body=b"over TLS")
    conn.close()

    ctx = ssl.create_default_context(cafile=env["WARREN_INTEROP_TLS_CA"])
    ctx.load_cert_chain(env["WARREN_INTEROP_TLS_CERT"], env["WARREN_INTEROP_TLS_KEY"])
    conn = connect(tls_url, ssl_options=pika.SSLOptions(ctx, "127.0.0.1"),
                   credentials=pika.credentials.ExternalCredentials())
    ch = conn.channel()
    method, _, body = ch.basic_get(queue=q, auto_ack=True)
    check(method is not None and body == b"over TLS", "got %r over EXTERNAL" % (body,))
    ch.queue_delete(queue=q)
    conn.close()


# Scenario 17: a non-guest user on its own vhost (interop/definitions.json creates them;
# INTEROP_USER, INTEROP_PASS and INTEROP_VHOST name others, e.g. on a shared reference).
USER = os.environ.get("INTEROP_USER", "interop")
PASSWORD = os.environ.get("INTEROP_PASS", "interop-pw")
VHOST = os.environ.get("INTEROP_VHOST", "interop-vh")


def as_user(url, vhost):
    """URL with the scenario user's credentials and `vhost`, on URL's host and port."""
    from urllib.parse import quote, urlsplit
    u = urlsplit(url)
    hostport = u.netloc.rsplit("@", 1)[-1]
    return "%s://%s:%s@%s/%s" % (u.scheme, quote(USER, safe=""), quote(PASSWORD, safe=""),
                                 hostport, quote(vhost, safe=""))


def s17(url):
    q = P + "17"
    conn = connect(as_user(url, VHOST))
    try:
        ch = conn.channel()
        ch.queue_declare(queue=q, exclusive=True)
        ch.basic_publish(exchange="", routing_key=q, body=b"own vhost")
        got = []

        def on_message(c, method, props, body):
            got.append(body)
            c.basic_ack(method.delivery_tag)
        ch.basic_consume(queue=q, on_message_callback=on_message)
        check(wait_until(conn, lambda: got, 10), "no delivery")
        check(got == [b"own vhost"], "got %r" % got)
    finally:
        conn.close()
    # The same user has no permissions on "/": connection.open is refused with 530.
    expected = "NOT_ALLOWED - access to vhost '/' refused for user '%s'" % USER
    try:
        connect(as_user(url, "/")).close()
        raise Fail("connection.open on / accepted")
    except pexc.ConnectionClosedByBroker as e:
        check((e.reply_code, e.reply_text) == (530, expected),
              "refused with %r %r" % (e.reply_code, e.reply_text))
    except pexc.AMQPConnectionError as e:
        # pika reports a close during the handshake as ProbableAccessDeniedError, with
        # the broker's close inside: 'ConnectionClosedByBroker: (530) "NOT_ALLOWED ..."'.
        text = str(e)
        check("(530)" in text and expected in text, "refused with %s" % text)


def s18(url):
    """The management HTTP API with requests (http_api.py)."""
    api = os.environ.get("WARREN_INTEROP_HTTP_URL")
    if not api:
        raise NA("no management API URL (WARREN_INTEROP_HTTP_URL)")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import http_api
    http_api.scenario(url, api.rstrip("/"), connect, check, P)


def s19(url):
    """A stream queue (streams.py); leaves its stream for 19r."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import streams
    streams.scenario(url, connect, check, P)


def s19r(url):
    """19's stream after a broker restart (run by interop/run.sh only, via ONLY=19r)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import streams
    streams.after_restart(url, connect, check, P)


def s22(url):
    """The event exchange (warren --event-exchange, RabbitMQ's rabbitmq_event_exchange):
    a queue bound to amq.rabbitmq.event with `queue.*` hears queue.created and
    queue.deleted of a queue declared and deleted, its name in the `name` header."""
    q = P + "22"
    conn = connect(url)
    try:
        ch = conn.channel()
        try:
            ch.exchange_declare(exchange="amq.rabbitmq.event", passive=True)
        except pexc.ChannelClosedByBroker as e:
            raise Fail("no amq.rabbitmq.event (%s %s): is the event exchange on?"
                       % (e.reply_code, e.reply_text))
        ch = conn.channel()
        events = ch.queue_declare(queue="", exclusive=True).method.queue
        ch.queue_bind(queue=events, exchange="amq.rabbitmq.event", routing_key="queue.*")
        got = []

        def on_message(c, method, props, body):
            headers = props.headers or {}
            # On a shared broker other queues come and go too: only ours count.
            if headers.get("name") == q:
                got.append((method.routing_key, body, headers.get("vhost")))
        ch.basic_consume(queue=events, on_message_callback=on_message, auto_ack=True)
        other = conn.channel()
        other.queue_declare(queue=q)
        other.queue_delete(queue=q)
        check(wait_until(conn, lambda: len(got) >= 2, 10), "events heard: %r" % got)
        check(got == [("queue.created", b"", "/"), ("queue.deleted", b"", "/")],
              "events heard: %r" % got)
    finally:
        conn.close()


def s21(url):
    """The plugin exchange types: x-consistent-hash (weights 1 and 3, 400 distinct keys,
    each queue gets some, the same key goes to the same queue again), x-random (every
    queue gets some), x-recent-history (5 published, a queue bound later gets all 5)."""
    conn = connect(url)
    try:
        ch = conn.channel()
        x, qa, qb = P + "21.hash", P + "21.hash.a", P + "21.hash.b"
        ch.exchange_delete(exchange=x)
        ch.exchange_declare(exchange=x, exchange_type="x-consistent-hash")
        for q, weight in ((qa, "1"), (qb, "3")):
            ch.queue_declare(queue=q, exclusive=True)
            ch.queue_bind(queue=q, exchange=x, routing_key=weight)

        def place():
            for i in range(400):
                ch.basic_publish(exchange=x, routing_key="key-%d" % i, body=b"%d" % i)
            check(wait_until(conn, lambda: count(ch, qa) + count(ch, qb) == 400, 10),
                  "consistent-hash routed %d of 400" % (count(ch, qa) + count(ch, qb)))
            return {q: set(drain_bodies(ch, q)) for q in (qa, qb)}
        first = place()
        check(first[qa] and first[qb], "a queue got nothing: %d / %d"
              % (len(first[qa]), len(first[qb])))
        check(len(first[qb]) > len(first[qa]), "weight 3 got %d, weight 1 got %d"
              % (len(first[qb]), len(first[qa])))
        check(place() == first, "the same keys went to other queues")
        ch.exchange_delete(exchange=x)

        x, q1, q2 = P + "21.random", P + "21.random.1", P + "21.random.2"
        ch.exchange_delete(exchange=x)
        ch.exchange_declare(exchange=x, exchange_type="x-random")
        for q in (q1, q2):
            ch.queue_declare(queue=q, exclusive=True)
            ch.queue_bind(queue=q, exchange=x, routing_key="")
        for i in range(100):
            ch.basic_publish(exchange=x, routing_key="k", body=b"%d" % i)
        check(wait_until(conn, lambda: count(ch, q1) + count(ch, q2) == 100, 10),
              "random routed %d of 100" % (count(ch, q1) + count(ch, q2)))
        check(count(ch, q1) and count(ch, q2), "random: %d / %d" % (count(ch, q1), count(ch, q2)))
        ch.exchange_delete(exchange=x)

        x, q = P + "21.recent", P + "21.recent.q"
        ch.exchange_delete(exchange=x)
        ch.exchange_declare(exchange=x, exchange_type="x-recent-history")
        for i in range(5):
            ch.basic_publish(exchange=x, routing_key="k", body=b"h%d" % i)
        ch.queue_declare(queue=q, exclusive=True)
        ch.queue_bind(queue=q, exchange=x, routing_key="")
        check(wait_until(conn, lambda: count(ch, q) == 5, 10), "history: %d of 5" % count(ch, q))
        got = drain_bodies(ch, q)
        check(got == [b"h0", b"h1", b"h2", b"h3", b"h4"], "history replayed %r" % got)
        ch.exchange_delete(exchange=x)
    finally:
        conn.close()


def s20(url):
    """The delayed-message exchange: x-delay 300 comes after an undelayed message."""
    x, q = P + "20.x", P + "20.q"
    conn = connect(url)
    try:
        ch = conn.channel()
        ch.exchange_declare(exchange=x, exchange_type="x-delayed-message",
                            arguments={"x-delayed-type": "direct"})
        ch.queue_declare(queue=q, exclusive=True)
        ch.queue_bind(queue=q, exchange=x, routing_key="k")
        got = []

        def on_message(c, method, props, body):
            got.append((body, time.time(), (props.headers or {}).get("x-delay")))
        ch.basic_consume(queue=q, on_message_callback=on_message, auto_ack=True)
        sent = time.time()
        ch.basic_publish(exchange=x, routing_key="k", body=b"later",
                         properties=pika.BasicProperties(headers={"x-delay": 300}))
        ch.basic_publish(exchange=x, routing_key="k", body=b"now")
        check(wait_until(conn, lambda: len(got) == 2, 10), "got %r" % got)
        check([g[0] for g in got] == [b"now", b"later"], "order %r" % got)
        check(got[0][1] - sent < 0.3, "the undelayed one took %.3fs" % (got[0][1] - sent))
        check(got[1][1] - sent >= 0.3, "the delayed one came after %.3fs" % (got[1][1] - sent))
        check(got[1][2] == -300, "x-delay on delivery %r" % got[1][2])
        ch.exchange_delete(exchange=x)
    finally:
        conn.close()


def drain_bodies(ch, q):
    out = []
    while True:
        method, _, body = ch.basic_get(queue=q, auto_ack=True)
        if method is None:
            return out
        out.append(body)


def s23(url):
    """CC and BCC: one publish with CC [k2] and BCC [k3] reaches the queues bound with
    k1, k2 and k3 once each; BCC is removed, CC stays."""
    x, qs = P + "23", [P + "23." + k for k in ("k1", "k2", "k3")]
    conn = connect(url)
    try:
        ch = conn.channel()
        ch.exchange_declare(exchange=x, exchange_type="direct", auto_delete=True)
        for q, k in zip(qs, ("k1", "k2", "k3")):
            ch.queue_declare(queue=q, exclusive=True)
            ch.queue_bind(queue=q, exchange=x, routing_key=k)
        ch.confirm_delivery()
        ch.basic_publish(exchange=x, routing_key="k1", body=b"cc",
                         properties=pika.BasicProperties(
                             headers={"CC": ["k2"], "BCC": ["k3"], "n": 1}))
        for q in qs:
            m, props, body = ch.basic_get(queue=q, auto_ack=True)
            check(m is not None and body == b"cc", "%s: nothing" % q)
            check(m.routing_key == "k1", "%s: routing key %r" % (q, m.routing_key))
            check(props.headers == {"CC": ["k2"], "n": 1}, "%s: headers %r" % (q, props.headers))
            check(count(ch, q) == 0, "%s: more than one copy" % q)
    finally:
        conn.close()


def s24(url):
    """A quorum queue with x-delivery-limit 2: deliveries carry x-delivery-count 0, 1, 2;
    the third nack with requeue dead-letters it with reason delivery_limit."""
    q, dlx, dlq = P + "24", P + "24.dlx", P + "24.dead"
    conn = connect(url)
    try:
        ch = conn.channel()
        ch.queue_delete(queue=q)
        ch.exchange_declare(exchange=dlx, exchange_type="fanout", auto_delete=True)
        ch.queue_declare(queue=dlq, exclusive=True)
        ch.queue_bind(queue=dlq, exchange=dlx)
        ch.queue_declare(queue=q, durable=True, arguments={
            "x-queue-type": "quorum", "x-delivery-limit": 2, "x-dead-letter-exchange": dlx})
        ch.confirm_delivery()
        ch.basic_publish(exchange="", routing_key=q, body=b"poison",
                         properties=pika.BasicProperties(delivery_mode=2))
        for n in range(3):
            m = None
            end = time.time() + 5
            while m is None and time.time() < end:
                m, props, _ = ch.basic_get(queue=q)
            check(m is not None, "delivery %d missing" % n)
            got = (props.headers or {}).get("x-delivery-count")
            check(got == n, "delivery %d: x-delivery-count %r" % (n, got))
            check(m.redelivered == (n > 0), "delivery %d: redelivered %r" % (n, m.redelivered))
            ch.basic_nack(m.delivery_tag, requeue=True)
        m = None
        end = time.time() + 5
        while m is None and time.time() < end:
            m, props, body = ch.basic_get(queue=dlq, auto_ack=True)
        check(m is not None and body == b"poison", "not dead-lettered")
        h = props.headers or {}
        death = (h.get("x-death") or [{}])[0]
        check(death.get("reason") == "delivery_limit" and death.get("queue") == q
              and death.get("count") == 1 and death.get("routing-keys") == [q],
              "x-death %r" % death)
        check(h.get("x-first-death-reason") == "delivery_limit", "headers %r" % h)
        check("x-delivery-count" not in h, "x-delivery-count travelled: %r" % h)
        check(count(ch, q) == 0, "still in the quorum queue")
    finally:
        try:
            conn.channel().queue_delete(queue=q)
        finally:
            conn.close()


def has_ipv6():
    import socket
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def s25(url):
    """localhost and [::1] (when the machine has IPv6) reach the broker; connection.start's
    server_properties carry product, version, platform and the capabilities."""
    import urllib.parse
    u = urllib.parse.urlparse(url)
    port = u.port or 5672
    hosts = ["localhost"] + (["[::1]"] if has_ipv6() else [])
    for host in hosts:
        other = u._replace(netloc="%s@%s:%d" % (u.netloc.rpartition("@")[0], host, port))
        try:
            conn = connect(urllib.parse.urlunparse(other))
        except pexc.AMQPConnectionError as e:
            raise Fail("no connection to %s:%d (%s)" % (host, port, short(e)))
        try:
            props = conn._impl.server_properties
            for key in ("product", "version", "platform"):
                value = props.get(key)
                check(isinstance(value, (str, bytes)) and len(value) > 0,
                      "%s: server property %s is %r" % (host, key, value))
            caps = props.get("capabilities") or {}
            check(caps.get("publisher_confirms") is True,
                  "%s: capabilities %r" % (host, caps))
            ch = conn.channel()
            ch.queue_declare(queue="", exclusive=True)
        finally:
            conn.close()


SCENARIOS = ([(n[1:], f) for n, f in sorted(globals().items())
              if len(n) == 3 and n[0] == "s" and n[1:].isdigit()] + [("tls", stls)])
# Run only when asked for by name (ONLY=19r): it needs the restart run.sh makes.
ON_REQUEST = [("19r", s19r)]


def short(e):
    if isinstance(e, Fail):
        s = str(e)
    else:
        detail = str(e) or "; ".join(repr(a) for a in e.args)
        if not detail and e.__cause__ is not None:
            detail = repr(e.__cause__)
        s = "%s: %s" % (type(e).__name__, detail)
    s = " ".join(s.split())
    return s[:200]


def run_one(url, nn):
    fn = dict(SCENARIOS + ON_REQUEST)[nn]
    try:
        fn(url)
        return "%s pass" % nn
    except NA as e:
        return "%s n/a %s" % (nn, short(e))
    except Exception as e:  # any failure is a FAIL line
        return "%s FAIL %s" % (nn, short(e))


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    url = argv[1]
    if "--one" in argv:
        print(run_one(url, argv[argv.index("--one") + 1]), flush=True)
        return 0
    only = os.environ.get("ONLY")
    wanted = set(only.split(",")) if only else None
    print("pika %s, python %s" % (pika.__version__, sys.version.split()[0]), file=sys.stderr)
    on_request = dict(ON_REQUEST)
    for nn, _ in SCENARIOS + ON_REQUEST:
        if (wanted and nn not in wanted) or (not wanted and nn in on_request):
            continue
        t0 = time.time()
        try:
            r = subprocess.run([sys.executable, os.path.abspath(__file__), url, "--one", nn],
                               stdout=subprocess.PIPE, timeout=SCENARIO_TIMEOUT)
            lines = [l for l in r.stdout.decode(errors="replace").splitlines()
                     if l.startswith(nn + " ")]
            line = lines[-1] if lines else "%s FAIL no result (exit status %s)" % (nn, r.returncode)
        except subprocess.TimeoutExpired:
            line = "%s FAIL timeout after %gs" % (nn, SCENARIO_TIMEOUT)
        print("  %s took %.2fs" % (nn, time.time() - t0), file=sys.stderr)
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))