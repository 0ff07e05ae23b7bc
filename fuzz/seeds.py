#!/usr/bin/env python3
"""Writes the seed corpus of the parser targets (fuzz/corpus/{frames,properties,table}).

The seeds are what real clients send: a lapin-like handshake and session (declare, bind,
publish with properties, consume, ack, get, nack, tx, confirm, close), property lists and
field tables such as client properties, queue arguments and x-death headers. Re-run it
after changing it; the fuzzers then grow their own corpus from these."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def short(s):
    b = s.encode() if isinstance(s, str) else s
    return bytes([len(b)]) + b


def long(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack(">I", len(b)) + b


def value(v):
    if isinstance(v, bool):
        return b"t" + bytes([v])
    if isinstance(v, int):
        return b"l" + struct.pack(">q", v) if abs(v) >= 2**31 else b"I" + struct.pack(">i", v)
    if isinstance(v, float):
        return b"d" + struct.pack(">d", v)
    if isinstance(v, (str, bytes)):
        return b"S" + long(v)
    if isinstance(v, list):
        return b"A" + long(b"".join(value(x) for x in v))
    if isinstance(v, dict):
        return b"F" + table(v)
    if v is None:
        return b"V"
    raise TypeError(v)


def table(d):
    return long(b"".join(short(k) + value(v) for k, v in d.items()))


def frame(kind, ch, payload):
    return struct.pack(">BHI", kind, ch, len(payload)) + payload + b"\xce"


def method(ch, cls, mid, args=b""):
    return frame(1, ch, struct.pack(">HH", cls, mid) + args)


def props(content_type=None, headers=None, delivery_mode=None, priority=None,
          correlation_id=None, reply_to=None, expiration=None, message_id=None,
          timestamp=None, type_=None, user_id=None, app_id=None):
    flags, out = 0, b""
    for bit, v, enc in [
        (15, content_type, short), (13, headers, table), (12, delivery_mode, lambda x: bytes([x])),
        (11, priority, lambda x: bytes([x])), (10, correlation_id, short), (9, reply_to, short),
        (8, expiration, short), (7, message_id, short), (6, timestamp, lambda x: struct.pack(">Q", x)),
        (5, type_, short), (4, user_id, short), (3, app_id, short),
    ]:
        if v is not None:
            flags |= 1 << bit
            out += enc(v)
    return struct.pack(">H", flags) + out


CLIENT_PROPERTIES = {
    "product": "lapin",
    "version": "4.12.0",
    "platform": "rust",
    "information": "https://github.com/amqp-rs/lapin",
    "capabilities": {
        "publisher_confirms": True,
        "exchange_exchange_bindings": True,
        "basic.nack": True,
        "consumer_cancel_notify": True,
        "connection.blocked": True,
        "authentication_failure_close": True,
    },
    "connection_name": "fuzz-seed",
}

QUEUE_ARGS = {
    "x-message-ttl": 60000,
    "x-max-length": 10,
    "x-overflow": "reject-publish",
    "x-dead-letter-exchange": "dlx",
    "x-dead-letter-routing-key": "dead",
    "x-max-priority": 5,
    "x-queue-type": "classic",
}

X_DEATH = {
    "x-death": [{"count": 1, "reason": "expired", "queue": "q0", "exchange": "",
                 "routing-keys": ["q0"], "time": 1700000000}],
    "x-first-death-reason": "expired",
    "CC": ["q1", "q2"],
}


def handshake():
    start_ok = table(CLIENT_PROPERTIES) + short("PLAIN") + long(b"\0guest\0guest") + short("en_US")
    return (b"AMQP\x00\x00\x09\x01" + method(0, 10, 11, start_ok)
            + method(0, 10, 31, struct.pack(">HIH", 2047, 131072, 60))
            + method(0, 10, 40, short("/") + short("") + b"\x00")
            + method(1, 20, 10, short("")))


def publish(ch, exchange, key, body, p):
    return (method(ch, 60, 40, struct.pack(">H", 0) + short(exchange) + short(key) + b"\x00")
            + frame(2, ch, struct.pack(">HHQ", 60, 0, len(body)) + p)
            + (frame(3, ch, body) if body else b""))


def sessions():
    hs = handshake()
    declare = method(1, 50, 10, b"\0\0" + short("q0") + b"\x02" + table(QUEUE_ARGS))
    xdecl = method(1, 40, 10, b"\0\0" + short("x0") + short("headers") + b"\x02"
                   + table({"alternate-exchange": "amq.fanout"}))
    bind = method(1, 50, 20, b"\0\0" + short("q0") + short("x0") + short("") + b"\x00"
                  + table({"x-match": "any", "k": 1}))
    pub = publish(1, "x0", "", b"hello", props("text/plain", {"k": 1}, 2, 1, "c1",
                                               "amq.rabbitmq.reply-to", "1000", "m1", 1700000000,
                                               "t", "guest", "app"))
    qos = method(1, 60, 10, struct.pack(">IHB", 0, 10, 0))
    consume = method(1, 60, 20, b"\0\0" + short("q0") + short("c0") + b"\x00" + table({"x-priority": 1}))
    ack = method(1, 60, 80, struct.pack(">QB", 1, 0))
    get = method(1, 60, 70, b"\0\0" + short("q0") + b"\x00")
    nack = method(1, 60, 120, struct.pack(">QB", 2, 3))
    reject = method(1, 60, 90, struct.pack(">QB", 3, 1))
    cancel = method(1, 60, 30, short("c0") + b"\x00")
    tx = method(1, 90, 10) + pub + method(1, 90, 20) + method(1, 90, 30)
    confirm = method(1, 85, 10, b"\x00") + pub
    closing = (method(1, 20, 40, struct.pack(">H", 200) + short("bye") + struct.pack(">HH", 0, 0))
               + method(0, 10, 50, struct.pack(">H", 200) + short("bye") + struct.pack(">HH", 0, 0)))
    big = publish(1, "", "q0", b"x" * 300, props(delivery_mode=1))
    return {
        "handshake": hs,
        "declare_bind_publish": hs + xdecl + declare + bind + pub,
        "consume_ack": hs + qos + consume + pub + ack + cancel,
        "get_nack_reject": hs + get + nack + reject + method(1, 60, 110, b"\x01"),
        "tx": hs + tx,
        "confirm": hs + confirm,
        "close": hs + closing,
        "heartbeat_big_body": hs + frame(8, 0, b"") + big,
        "delete": hs + method(1, 50, 30, b"\0\0" + short("q0") + b"\x00")
        + method(1, 50, 40, b"\0\0" + short("q0") + b"\x00")
        + method(1, 40, 20, b"\0\0" + short("x0") + b"\x00"),
    }


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def main():
    # The frames target reads one knob byte first (frame_max and chunk size).
    for name, data in sessions().items():
        write("frames", name, b"\x02" + data)
    write("frames", "pre_tune", b"\x01" + handshake())
    write("properties", "empty", struct.pack(">H", 0))
    write("properties", "all", props("application/json", X_DEATH, 2, 9, "corr", "amq.rabbitmq.reply-to",
                                     "60000", "id-1", 1700000000, "kind", "guest", "app"))
    write("properties", "headers", props(headers={"a": [1, 2.5, None, b"x", {"n": True}]}))
    write("properties", "expiration", props(expiration="0", delivery_mode=1))
    write("table", "client_properties", table(CLIENT_PROPERTIES))
    write("table", "queue_args", table(QUEUE_ARGS))
    write("table", "x_death", table(X_DEATH))
    write("table", "nested", table({"a": {"b": {"c": [[[{"d": None}]]]}}}))
    write("table", "empty", table({}))


if __name__ == "__main__":
    main()
