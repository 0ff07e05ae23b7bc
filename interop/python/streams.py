"""Scenario 19 (a stream queue over AMQP 0-9-1) and 19r (the same stream after the
broker restarted on its data directory), with pika. See interop/README.md.

19 leaves the stream `<prefix>19` behind with 110 entries, bodies m0..m109; 19r reads it
back from the first entry and from offset 50, then deletes it. Offsets are compared as
the broker gives them: increasing, each delivery's x-stream-offset header the entry's
(RabbitMQ's offsets may skip numbers between chunks; warren's are consecutive).
"""
import time

ENTRIES = 110


def read(conn, queue, offset, n, check):
    """n deliveries from `offset` as (x-stream-offset, body), each acked; then checks
    that nothing more comes for a moment."""
    ch = conn.channel()
    ch.basic_qos(prefetch_count=min(n, 100))
    got = []

    def on_message(c, method, props, body):
        check(not method.redelivered, "a stream delivery marked redelivered")
        headers = props.headers or {}
        check("x-stream-offset" in headers, "no x-stream-offset header")
        got.append((headers["x-stream-offset"], body))
        c.basic_ack(method.delivery_tag)

    ch.basic_consume(queue, on_message, arguments={"x-stream-offset": offset})
    end = time.time() + 10
    while len(got) < n and time.time() < end:
        conn.process_data_events(time_limit=0.05)
    conn.process_data_events(time_limit=0.2)
    ch.close()
    check(len(got) == n, "from %r: %d deliveries, expected %d" % (offset, len(got), n))
    offsets = [o for o, _ in got]
    check(offsets == sorted(set(offsets)), "offsets not increasing: %r" % offsets[:20])
    return got


def check_log(got, count, check):
    bodies = [b for _, b in got]
    want = [b"m%d" % i for i in range(count)]
    check(bodies == want, "bodies %r..., expected m0..m%d" % (bodies[:5], count - 1))


def suffix_from(got, offset):
    return [(o, b) for o, b in got if o >= offset]


def scenario(url, connect, check, prefix):
    q = prefix + "19"
    conn = connect(url)
    try:
        ch = conn.channel()
        ch.queue_delete(q)  # a stream an earlier run left
        ok = ch.queue_declare(q, durable=True, arguments={"x-queue-type": "stream"})
        check(ok.method.message_count == 0, "declare-ok counts %d" % ok.method.message_count)
        ch.confirm_delivery()  # each publish below returns once confirmed
        for i in range(100):
            ch.basic_publish("", q, b"m%d" % i)
        first = read(conn, q, "first", 100, check)
        check_log(first, 100, check)
        from50 = read(conn, q, 50, len(suffix_from(first, 50)), check)
        check(from50 == suffix_from(first, 50), "from offset 50: %r" % from50[:3])
        # next: only what is published after the consumer started.
        nch = conn.channel()
        nch.basic_qos(prefetch_count=10)
        got = []

        def on_message(c, method, props, body):
            got.append(((props.headers or {}).get("x-stream-offset"), body))
            c.basic_ack(method.delivery_tag)
        nch.basic_consume(q, on_message, arguments={"x-stream-offset": "next"})
        for i in range(100, ENTRIES):
            ch.basic_publish("", q, b"m%d" % i)
        end = time.time() + 10
        while len(got) < ENTRIES - 100 and time.time() < end:
            conn.process_data_events(time_limit=0.05)
        check([b for _, b in got] == [b"m%d" % i for i in range(100, ENTRIES)],
              "from next: %r" % got[:3])
        check(all(o is not None and o > first[-1][0] for o, _ in got),
              "from next: offsets %r" % [o for o, _ in got])
    finally:
        conn.close()


def after_restart(url, connect, check, prefix):
    q = prefix + "19"
    conn = connect(url)
    try:
        first = read(conn, q, "first", ENTRIES, check)
        check_log(first, ENTRIES, check)
        from50 = read(conn, q, 50, len(suffix_from(first, 50)), check)
        check(from50 == suffix_from(first, 50), "from offset 50: %r" % from50[:3])
        conn.channel().queue_delete(q)
    finally:
        conn.close()
