#!/usr/bin/env python3
"""Error table for an AMQP 0-9-1 broker, checked against a real broker.

Usage: errors.py URL [--record FILE.md] [--only SUBSTRING]

Every row provokes one error (or one notable non-error) with raw AMQP frames
(encoded/decoded with pika's spec and frame modules, so nothing hides what the
broker really sends) and compares what comes back with what RabbitMQ 3.x
answers: reply code, reply text (prefix), which method failed (class, method)
and whether the channel or the whole connection was closed.

Prints one line per row: `ok <name>: <code> <text>` or
`MISMATCH <name>: <code> <text> (<details>)`. Exit status 0 only when every
row matches. --record writes the observed table as Markdown.
"""
import os
import select
import socket
import sys
import time
import urllib.parse

from pika import frame as pframe
from pika import spec

P = "interop.python.err."
TIMEOUT = 5.0


def Q(name):
    return P + name


class Outcome:
    """What the broker did after an action.

    closes: 'channel' | 'connection' | 'none' (a normal reply) | 'eof'
    (socket closed without a close method) | 'timeout' | 'bytes' (raw bytes).
    """

    def __init__(self, closes, code=0, text="", cls=0, meth=0):
        self.closes, self.code, self.text, self.cls, self.meth = closes, code, text, cls, meth

    def method_name(self):
        if not self.cls:
            return ""
        m = spec.methods.get((self.cls << 16) | self.meth)
        return m.NAME if m else "%d.%d" % (self.cls, self.meth)

    def __repr__(self):
        return "%s %s %r %s" % (self.closes, self.code, self.text, self.method_name())


class Closed(Exception):
    def __init__(self, outcome):
        Exception.__init__(self, repr(outcome))
        self.outcome = outcome


def parse_url(url):
    u = urllib.parse.urlparse(url)
    vhost = urllib.parse.unquote(u.path[1:]) if len(u.path) > 1 else "/"
    return (u.hostname or "127.0.0.1", u.port or 5672,
            urllib.parse.unquote(u.username or "guest"),
            urllib.parse.unquote(u.password or "guest"), vhost)


class Conn:
    def __init__(self, url):
        self.host, self.port, self.user, self.password, self.vhost = parse_url(url)
        self.sock = None
        self.buf = b""
        self.frame_max = 131072
        self.channel_max = 2047

    # ---- transport
    def tcp(self):
        self.sock = socket.create_connection((self.host, self.port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def raw(self, data):
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def send(self, ch, method):
        self.raw(pframe.Method(ch, method).marshal())

    def send_content(self, ch, body, props=None, body_frame_size=None):
        props = props or spec.BasicProperties()
        self.raw(pframe.Header(ch, len(body), props).marshal())
        step = body_frame_size or (self.frame_max - 8)
        for i in range(0, len(body), step):
            self.raw(pframe.Body(ch, body[i:i + step]).marshal())

    def publish(self, ch, exchange, rk, body=b"x", props=None, mandatory=False, immediate=False):
        self.send(ch, spec.Basic.Publish(exchange=exchange, routing_key=rk,
                                         mandatory=mandatory, immediate=immediate))
        self.send_content(ch, body, props)

    def read_bytes(self, timeout=TIMEOUT):
        """Everything the peer sends until it closes or goes quiet."""
        end = time.time() + timeout
        data = b""
        while time.time() < end:
            r, _, _ = select.select([self.sock], [], [], min(0.5, end - time.time()))
            if not r:
                if data:
                    break
                continue
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                return data, True
            data += chunk
        return data, False

    def recv(self, timeout=TIMEOUT):
        """Next frame, 'EOF' or None on timeout. Heartbeats are skipped."""
        end = time.time() + timeout
        while True:
            if self.buf:
                n, fr = pframe.decode_frame(self.buf)
                if fr is not None:
                    self.buf = self.buf[n:]
                    if isinstance(fr, pframe.Heartbeat):
                        continue
                    return fr
            left = end - time.time()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return None
            try:
                chunk = self.sock.recv(65536)
            except OSError:
                return "RST"
            if not chunk:
                return "EOF"
            self.buf += chunk

    # ---- handshake
    def handshake(self, password=None, vhost=None, channel_max=None, frame_max=None,
                  mechanism="PLAIN", auth_close_cap=True, do_open=True):
        """Returns None when open, or the Outcome that ended the handshake."""
        self.tcp()
        self.raw(b"AMQP\x00\x00\x09\x01")
        fr = self.recv()
        if not isinstance(fr, pframe.Method) or not isinstance(fr.method, spec.Connection.Start):
            return Outcome("eof", text="no connection.start: %r" % (fr,))
        caps = {"publisher_confirms": True, "exchange_exchange_bindings": True,
                "basic.nack": True, "consumer_cancel_notify": True,
                "connection.blocked": True, "per_consumer_qos": True}
        if auth_close_cap:
            caps["authentication_failure_close"] = True
        pw = self.password if password is None else password
        self.send(0, spec.Connection.StartOk(
            client_properties={"product": "warren-interop-errors", "capabilities": caps},
            mechanism=mechanism, response="\0%s\0%s" % (self.user, pw), locale="en_US"))
        fr = self.recv()
        out = self._close_outcome(fr)
        if out:
            return out
        if not isinstance(fr.method, spec.Connection.Tune):
            return Outcome("eof", text="no connection.tune: %r" % (fr,))
        t = fr.method
        self.channel_max = t.channel_max if channel_max is None else channel_max
        self.frame_max = t.frame_max if frame_max is None else frame_max
        self.send(0, spec.Connection.TuneOk(channel_max=self.channel_max,
                                            frame_max=self.frame_max, heartbeat=0))
        if not do_open:
            return None
        self.send(0, spec.Connection.Open(virtual_host=self.vhost if vhost is None else vhost))
        fr = self.recv()
        out = self._close_outcome(fr)
        if out:
            return out
        if not isinstance(fr.method, spec.Connection.OpenOk):
            return Outcome("eof", text="no connection.open-ok: %r" % (fr,))
        return None

    def _close_outcome(self, fr):
        if fr is None:
            return Outcome("timeout")
        if isinstance(fr, str):
            return Outcome("eof", 0, "socket reset, no close method" if fr == "RST"
                           else "socket closed, no close method")
        if isinstance(fr, pframe.Method):
            m = fr.method
            if isinstance(m, spec.Connection.Close):
                self.send(0, spec.Connection.CloseOk())
                return Outcome("connection", m.reply_code, m.reply_text, m.class_id, m.method_id)
            if isinstance(m, spec.Channel.Close):
                self.send(fr.channel_number, spec.Channel.CloseOk())
                return Outcome("channel", m.reply_code, m.reply_text, m.class_id, m.method_id)
        return None

    # ---- request/reply
    def wait(self, ch, timeout=TIMEOUT):
        """Waits for the next reply on channel ch (ignores deliveries, returns,
        acks and content). Returns Outcome (closes='none' carries the reply
        method's name in text)."""
        end = time.time() + timeout
        while True:
            fr = self.recv(max(0.01, end - time.time()))
            out = self._close_outcome(fr)
            if out:
                return out
            if not isinstance(fr, pframe.Method):
                continue
            m = fr.method
            if fr.channel_number != ch:
                continue
            if isinstance(m, (spec.Basic.Deliver, spec.Basic.Return, spec.Basic.Ack,
                              spec.Basic.Nack, spec.Basic.Cancel)):
                continue
            return Outcome("none", 0, m.NAME, m.INDEX >> 16, m.INDEX & 0xFFFF)

    def do(self, ch, method):
        """Sends a synchronous method and returns the outcome."""
        self.send(ch, method)
        return self.wait(ch)

    def sync(self, ch):
        """After asynchronous methods: a harmless synchronous request tells
        whether the channel survived."""
        self.send(ch, spec.Exchange.Declare(exchange="amq.direct", type="direct", passive=True))
        return self.wait(ch)

    def ok(self, ch, method):
        out = self.do(ch, method)
        if out.closes != "none":
            raise Closed(out)
        return out

    def open_channel(self, ch):
        return self.ok(ch, spec.Channel.Open())

    def close(self):
        if self.sock:
            try:
                self.send(0, spec.Connection.Close(reply_code=200, reply_text="bye",
                                                   class_id=0, method_id=0))
                self.recv(1.0)
            except Exception:
                pass
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


class Env:
    def __init__(self, url):
        self.url = url
        self.conns = []

    def conn(self, ch=1, **kw):
        c = Conn(self.url)
        self.conns.append(c)
        out = c.handshake(**kw)
        if out:
            raise Closed(out)
        if ch:
            c.open_channel(ch)
        return c

    def raw_conn(self, **kw):
        """Returns (conn, outcome-of-handshake)."""
        c = Conn(self.url)
        self.conns.append(c)
        return c, c.handshake(**kw)

    def close_all(self):
        for c in self.conns:
            c.close()
        self.conns = []


# --------------------------------------------------------------------------
# Cases. Each returns an Outcome.

def declare_q(c, ch, name, **kw):
    c.ok(ch, spec.Queue.Declare(queue=name, **kw))


def declare_x(c, ch, name, typ="direct", **kw):
    c.ok(ch, spec.Exchange.Declare(exchange=name, type=typ, **kw))


def case_passive_missing_queue(e):
    c = e.conn()
    return c.do(1, spec.Queue.Declare(queue=Q("missing"), passive=True))


def case_passive_missing_exchange(e):
    c = e.conn()
    return c.do(1, spec.Exchange.Declare(exchange=Q("missing"), passive=True))


def case_publish_missing_exchange(e):
    c = e.conn()
    c.publish(1, Q("missing"), "k")
    return c.sync(1)


def case_declare_reserved_exchange(e):
    c = e.conn()
    return c.do(1, spec.Exchange.Declare(exchange="amq.foo", type="direct"))


def case_declare_amq_direct(e):
    c = e.conn()
    return c.do(1, spec.Exchange.Declare(exchange="amq.direct", type="direct", durable=True))


def case_declare_amq_direct_nondurable(e):
    c = e.conn()
    return c.do(1, spec.Exchange.Declare(exchange="amq.direct", type="direct", durable=False))


def case_declare_reserved_exchange2(e):
    c = e.conn()
    return c.do(1, spec.Exchange.Declare(exchange="amq.foo.bar", type="topic", durable=True))


def case_declare_default_exchange(e):
    c = e.conn()
    return c.do(1, spec.Exchange.Declare(exchange="", type="direct", durable=True))


def case_passive_amq_exchange(e):
    c = e.conn()
    return c.do(1, spec.Exchange.Declare(exchange="amq.topic", type="direct", passive=True))


def case_redeclare_exchange_type(e):
    c = e.conn()
    declare_x(c, 1, Q("x.type"), "direct")
    return c.do(1, spec.Exchange.Declare(exchange=Q("x.type"), type="fanout"))


def case_redeclare_exchange_durable(e):
    c = e.conn()
    declare_x(c, 1, Q("x.durable"), "direct")
    return c.do(1, spec.Exchange.Declare(exchange=Q("x.durable"), type="direct", durable=True))


def case_redeclare_exchange_autodelete(e):
    c = e.conn()
    declare_x(c, 1, Q("x.ad"), "direct")
    return c.do(1, spec.Exchange.Declare(exchange=Q("x.ad"), type="direct", auto_delete=True))


def case_redeclare_exchange_internal(e):
    c = e.conn()
    declare_x(c, 1, Q("x.int"), "direct")
    return c.do(1, spec.Exchange.Declare(exchange=Q("x.int"), type="direct", internal=True))


def case_redeclare_exchange_args(e):
    c = e.conn()
    declare_x(c, 1, Q("x.args"), "direct")
    return c.do(1, spec.Exchange.Declare(exchange=Q("x.args"), type="direct",
                                         arguments={"alternate-exchange": "amq.fanout"}))


def case_unknown_exchange_type(e):
    c = e.conn()
    return c.do(1, spec.Exchange.Declare(exchange=Q("x.badtype"), type="foo"))


def case_ch_header_and_property(e):
    c = e.conn()
    return c.do(1, spec.Exchange.Declare(exchange=Q("x.ch"), type="x-consistent-hash",
                                         arguments={"hash-header": "h",
                                                    "hash-property": "message_id"}))


def case_ch_unsupported_property(e):
    c = e.conn()
    return c.do(1, spec.Exchange.Declare(exchange=Q("x.ch"), type="x-consistent-hash",
                                         arguments={"hash-property": "app_id"}))


def case_ch_key_not_integer(e):
    c = e.conn()
    declare_x(c, 1, Q("x.ch"), "x-consistent-hash")
    declare_q(c, 1, Q("q.ch"))
    return c.do(1, spec.Queue.Bind(queue=Q("q.ch"), exchange=Q("x.ch"), routing_key="abc"))


def case_ch_key_zero(e):
    c = e.conn()
    declare_x(c, 1, Q("x.ch"), "x-consistent-hash")
    declare_q(c, 1, Q("q.ch"))
    return c.do(1, spec.Queue.Bind(queue=Q("q.ch"), exchange=Q("x.ch"), routing_key="0"))


def case_rh_length_zero(e):
    c = e.conn()
    return c.do(1, spec.Exchange.Declare(exchange=Q("x.rh"), type="x-recent-history",
                                         arguments={"x-recent-history-length": 0}))


def case_rh_length_string(e):
    c = e.conn()
    return c.do(1, spec.Exchange.Declare(exchange=Q("x.rh"), type="x-recent-history",
                                         arguments={"x-recent-history-length": "abc"}))


def case_redeclare_queue_durable(e):
    c = e.conn()
    declare_q(c, 1, Q("q.durable"))
    return c.do(1, spec.Queue.Declare(queue=Q("q.durable"), durable=True))


def case_redeclare_queue_exclusive(e):
    c = e.conn()
    declare_q(c, 1, Q("q.excl"))
    return c.do(1, spec.Queue.Declare(queue=Q("q.excl"), exclusive=True))


def case_redeclare_queue_exclusive_rev(e):
    c = e.conn()
    declare_q(c, 1, Q("q.excl2"), exclusive=True)
    return c.do(1, spec.Queue.Declare(queue=Q("q.excl2"), exclusive=False))


def case_redeclare_queue_autodelete(e):
    c = e.conn()
    declare_q(c, 1, Q("q.ad"))
    return c.do(1, spec.Queue.Declare(queue=Q("q.ad"), auto_delete=True))


def case_redeclare_queue_args(e):
    c = e.conn()
    declare_q(c, 1, Q("q.args"), arguments={"x-max-length": 10})
    return c.do(1, spec.Queue.Declare(queue=Q("q.args"), arguments={"x-max-length": 20}))


def case_redeclare_queue_args_missing(e):
    c = e.conn()
    declare_q(c, 1, Q("q.args2"), arguments={"x-max-length": 10})
    return c.do(1, spec.Queue.Declare(queue=Q("q.args2")))


def case_redeclare_queue_args_added(e):
    c = e.conn()
    declare_q(c, 1, Q("q.args3"))
    return c.do(1, spec.Queue.Declare(queue=Q("q.args3"), arguments={"x-max-length": 10}))


def case_queue_bad_arg_type(e):
    c = e.conn()
    return c.do(1, spec.Queue.Declare(queue=Q("q.badarg"), arguments={"x-max-length": "ten"}))


def case_queue_negative_arg(e):
    c = e.conn()
    return c.do(1, spec.Queue.Declare(queue=Q("q.negarg"), arguments={"x-max-length": -1}))


def case_queue_bad_ttl(e):
    c = e.conn()
    return c.do(1, spec.Queue.Declare(queue=Q("q.badttl"), arguments={"x-message-ttl": -5}))


def case_passive_queue_other_args(e):
    c = e.conn()
    declare_q(c, 1, Q("q.passargs"), arguments={"x-max-length": 10})
    return c.do(1, spec.Queue.Declare(queue=Q("q.passargs"), passive=True, durable=True))


def _excl_pair(e):
    c1 = e.conn()
    declare_q(c1, 1, Q("q.locked"), exclusive=True)
    c2 = e.conn()
    return c1, c2


def case_exclusive_other_declare(e):
    _, c2 = _excl_pair(e)
    return c2.do(1, spec.Queue.Declare(queue=Q("q.locked"), exclusive=True))


def case_exclusive_other_declare_passive(e):
    _, c2 = _excl_pair(e)
    return c2.do(1, spec.Queue.Declare(queue=Q("q.locked"), passive=True))


def case_exclusive_other_consume(e):
    _, c2 = _excl_pair(e)
    return c2.do(1, spec.Basic.Consume(queue=Q("q.locked"), consumer_tag="t"))


def case_exclusive_other_get(e):
    _, c2 = _excl_pair(e)
    return c2.do(1, spec.Basic.Get(queue=Q("q.locked")))


def case_exclusive_other_delete(e):
    _, c2 = _excl_pair(e)
    return c2.do(1, spec.Queue.Delete(queue=Q("q.locked")))


def case_exclusive_other_bind(e):
    _, c2 = _excl_pair(e)
    return c2.do(1, spec.Queue.Bind(queue=Q("q.locked"), exchange="amq.direct", routing_key="k"))


def case_exclusive_other_unbind(e):
    _, c2 = _excl_pair(e)
    return c2.do(1, spec.Queue.Unbind(queue=Q("q.locked"), exchange="amq.direct", routing_key="k"))


def case_exclusive_other_purge(e):
    _, c2 = _excl_pair(e)
    return c2.do(1, spec.Queue.Purge(queue=Q("q.locked")))


def case_exclusive_other_publish(e):
    _, c2 = _excl_pair(e)
    c2.publish(1, "", Q("q.locked"))
    return c2.sync(1)


def case_duplicate_consumer_tag(e):
    c = e.conn()
    declare_q(c, 1, Q("q.dupctag"), auto_delete=True)
    c.ok(1, spec.Basic.Consume(queue=Q("q.dupctag"), consumer_tag="ctag"))
    return c.do(1, spec.Basic.Consume(queue=Q("q.dupctag"), consumer_tag="ctag"))


def case_exclusive_consume_existing(e):
    c = e.conn()
    declare_q(c, 1, Q("q.xcons1"), auto_delete=True)
    c.ok(1, spec.Basic.Consume(queue=Q("q.xcons1"), consumer_tag="a"))
    return c.do(1, spec.Basic.Consume(queue=Q("q.xcons1"), consumer_tag="b", exclusive=True))


def case_consume_exclusive_existing(e):
    c = e.conn()
    declare_q(c, 1, Q("q.xcons2"), auto_delete=True)
    c.ok(1, spec.Basic.Consume(queue=Q("q.xcons2"), consumer_tag="a", exclusive=True))
    return c.do(1, spec.Basic.Consume(queue=Q("q.xcons2"), consumer_tag="b"))


def case_consume_missing_queue(e):
    c = e.conn()
    return c.do(1, spec.Basic.Consume(queue=Q("missing"), consumer_tag="t"))


def case_cancel_unknown_tag(e):
    c = e.conn()
    return c.do(1, spec.Basic.Cancel(consumer_tag="nosuchtag"))


def _one_unacked(e, qname):
    c = e.conn()
    declare_q(c, 1, qname, auto_delete=False)
    c.ok(1, spec.Queue.Purge(queue=qname))
    c.publish(1, "", qname, b"m")
    out = c.ok(1, spec.Basic.Get(queue=qname, no_ack=False))
    if out.text != "Basic.GetOk":
        raise Closed(Outcome("none", 0, "setup: expected Basic.GetOk, got " + out.text))
    return c


def case_ack_unknown_tag(e):
    c = e.conn()
    c.send(1, spec.Basic.Ack(delivery_tag=5))
    return c.sync(1)


def case_ack_twice(e):
    c = _one_unacked(e, Q("q.acktwice"))
    c.send(1, spec.Basic.Ack(delivery_tag=1))
    c.send(1, spec.Basic.Ack(delivery_tag=1))
    return c.sync(1)


def case_ack_zero_single(e):
    c = e.conn()
    c.send(1, spec.Basic.Ack(delivery_tag=0, multiple=False))
    return c.sync(1)


def case_ack_zero_multiple(e):
    c = e.conn()
    c.send(1, spec.Basic.Ack(delivery_tag=0, multiple=True))
    return c.sync(1)


def case_ack_multiple_unknown(e):
    c = _one_unacked(e, Q("q.ackmulti"))
    c.send(1, spec.Basic.Ack(delivery_tag=7, multiple=True))
    return c.sync(1)


def case_reject_unknown_tag(e):
    c = e.conn()
    c.send(1, spec.Basic.Reject(delivery_tag=3, requeue=True))
    return c.sync(1)


def case_nack_unknown_tag(e):
    c = e.conn()
    c.send(1, spec.Basic.Nack(delivery_tag=4, multiple=False, requeue=True))
    return c.sync(1)


def case_ack_on_noack_delivery(e):
    c = e.conn()
    qname = Q("q.noackget")
    declare_q(c, 1, qname)
    c.ok(1, spec.Queue.Purge(queue=qname))
    c.publish(1, "", qname, b"m")
    c.ok(1, spec.Basic.Get(queue=qname, no_ack=True))
    c.send(1, spec.Basic.Ack(delivery_tag=1))
    return c.sync(1)


def _stream(e, qos=True):
    """A connection with a stream declared on channel 1 (and prefetch 10 unless not qos)."""
    c = e.conn()
    declare_q(c, 1, Q("s.stream"), durable=True, arguments={"x-queue-type": "stream"})
    if qos:
        c.ok(1, spec.Basic.Qos(prefetch_count=10))
    return c


def case_stream_consume_without_prefetch(e):
    c = _stream(e, qos=False)
    return c.do(1, spec.Basic.Consume(queue=Q("s.stream"), consumer_tag="t"))


def case_stream_consume_no_ack(e):
    c = _stream(e)
    return c.do(1, spec.Basic.Consume(queue=Q("s.stream"), consumer_tag="t", no_ack=True))


def case_stream_get(e):
    c = _stream(e)
    return c.do(1, spec.Basic.Get(queue=Q("s.stream")))


def case_stream_purge(e):
    c = _stream(e)
    return c.do(1, spec.Queue.Purge(queue=Q("s.stream")))


def case_stream_bad_offset(e):
    c = _stream(e)
    return c.do(1, spec.Basic.Consume(queue=Q("s.stream"), consumer_tag="t",
                                      arguments={"x-stream-offset": "soon"}))


def case_stream_bad_max_age(e):
    c = e.conn()
    return c.do(1, spec.Queue.Declare(queue=Q("s.age"), durable=True, arguments={
        "x-queue-type": "stream", "x-max-age": "7d"}))


def case_delete_if_unused(e):
    c = e.conn()
    declare_q(c, 1, Q("q.inuse"))
    c.ok(1, spec.Basic.Consume(queue=Q("q.inuse"), consumer_tag="t"))
    return c.do(1, spec.Queue.Delete(queue=Q("q.inuse"), if_unused=True))


def case_delete_if_empty(e):
    c = e.conn()
    declare_q(c, 1, Q("q.notempty"))
    c.publish(1, "", Q("q.notempty"), b"m")
    c.sync(1)
    return c.do(1, spec.Queue.Delete(queue=Q("q.notempty"), if_empty=True))


def case_delete_missing_queue(e):
    c = e.conn()
    return c.do(1, spec.Queue.Delete(queue=Q("missing")))


def case_purge_missing_queue(e):
    c = e.conn()
    return c.do(1, spec.Queue.Purge(queue=Q("missing")))


def case_bind_missing_exchange(e):
    c = e.conn()
    declare_q(c, 1, Q("q.bind1"), auto_delete=True)
    return c.do(1, spec.Queue.Bind(queue=Q("q.bind1"), exchange=Q("missing"), routing_key="k"))


def case_bind_missing_queue(e):
    c = e.conn()
    return c.do(1, spec.Queue.Bind(queue=Q("missing"), exchange="amq.direct", routing_key="k"))


def case_bind_missing_both(e):
    c = e.conn()
    return c.do(1, spec.Queue.Bind(queue=Q("missing"), exchange=Q("missingx"), routing_key="k"))


def case_bind_default_exchange(e):
    c = e.conn()
    declare_q(c, 1, Q("q.binddef"), auto_delete=True)
    return c.do(1, spec.Queue.Bind(queue=Q("q.binddef"), exchange="", routing_key="k"))


def case_unbind_default_exchange(e):
    c = e.conn()
    declare_q(c, 1, Q("q.unbinddef"), auto_delete=True)
    return c.do(1, spec.Queue.Unbind(queue=Q("q.unbinddef"), exchange="", routing_key="k"))


def case_unbind_nonexistent(e):
    c = e.conn()
    declare_q(c, 1, Q("q.unbind"), auto_delete=True)
    return c.do(1, spec.Queue.Unbind(queue=Q("q.unbind"), exchange="amq.direct", routing_key="nokey"))


def case_unbind_missing_queue(e):
    c = e.conn()
    return c.do(1, spec.Queue.Unbind(queue=Q("missing"), exchange="amq.direct", routing_key="k"))


def case_unbind_missing_exchange(e):
    c = e.conn()
    declare_q(c, 1, Q("q.unbind2"), auto_delete=True)
    return c.do(1, spec.Queue.Unbind(queue=Q("q.unbind2"), exchange=Q("missing"), routing_key="k"))


def case_exchange_delete_missing(e):
    c = e.conn()
    return c.do(1, spec.Exchange.Delete(exchange=Q("missing")))


def case_exchange_delete_if_unused(e):
    c = e.conn()
    declare_x(c, 1, Q("x.inuse"), "direct")
    declare_q(c, 1, Q("q.xinuse"), auto_delete=True)
    c.ok(1, spec.Queue.Bind(queue=Q("q.xinuse"), exchange=Q("x.inuse"), routing_key="k"))
    return c.do(1, spec.Exchange.Delete(exchange=Q("x.inuse"), if_unused=True))


def case_exchange_delete_default(e):
    c = e.conn()
    return c.do(1, spec.Exchange.Delete(exchange=""))


def case_exchange_delete_amq_direct(e):
    c = e.conn()
    return c.do(1, spec.Exchange.Delete(exchange="amq.direct"))


def case_exchange_bind_missing_dest(e):
    c = e.conn()
    return c.do(1, spec.Exchange.Bind(destination=Q("missing"), source="amq.direct", routing_key="k"))


def case_exchange_bind_missing_source(e):
    c = e.conn()
    declare_x(c, 1, Q("x.e2e"), "fanout", auto_delete=False)
    return c.do(1, spec.Exchange.Bind(destination=Q("x.e2e"), source=Q("missing"), routing_key="k"))


def case_publish_internal(e):
    c = e.conn()
    declare_x(c, 1, Q("x.internal"), "fanout", internal=True)
    c.publish(1, Q("x.internal"), "k")
    return c.sync(1)


def case_publish_default_exchange_missing_queue(e):
    c = e.conn()
    c.publish(1, "", Q("missing"), mandatory=False)
    return c.sync(1)


def case_get_missing_queue(e):
    c = e.conn()
    return c.do(1, spec.Basic.Get(queue=Q("missing")))


def case_headers_bad_xmatch(e):
    c = e.conn()
    declare_x(c, 1, Q("x.headers"), "headers")
    declare_q(c, 1, Q("q.headers"), auto_delete=True)
    return c.do(1, spec.Queue.Bind(queue=Q("q.headers"), exchange=Q("x.headers"), routing_key="",
                                   arguments={"x-match": "foo", "a": "1"}))


def case_headers_xmatch_wrong_type(e):
    c = e.conn()
    declare_x(c, 1, Q("x.headers"), "headers")
    declare_q(c, 1, Q("q.headers"), auto_delete=True)
    return c.do(1, spec.Queue.Bind(queue=Q("q.headers"), exchange=Q("x.headers"), routing_key="",
                                   arguments={"x-match": 1}))


def case_consume_priority_wrong_type(e):
    c = e.conn()
    declare_q(c, 1, Q("q.cargs"), auto_delete=True)
    return c.do(1, spec.Basic.Consume(queue=Q("q.cargs"), arguments={"x-priority": "high"}))


def case_consume_cancel_on_failover_wrong_type(e):
    c = e.conn()
    declare_q(c, 1, Q("q.cargs"), auto_delete=True)
    return c.do(1, spec.Basic.Consume(queue=Q("q.cargs"),
                                      arguments={"x-cancel-on-ha-failover": "yes"}))


def case_alternate_exchange_wrong_type(e):
    c = e.conn()
    return c.do(1, spec.Exchange.Declare(exchange=Q("x.aetype"), type="direct",
                                         arguments={"alternate-exchange": 5}))


def case_unknown_exchange_type_made_up(e):
    c = e.conn()
    return c.do(1, spec.Exchange.Declare(exchange=Q("x.badtype"), type="interop-bogus"))


def case_reply_to_declare_passive(e):
    c = e.conn()
    return c.do(1, spec.Queue.Declare(queue="amq.rabbitmq.reply-to", passive=True))


def case_reply_to_declare(e):
    c = e.conn()
    return c.do(1, spec.Queue.Declare(queue="amq.rabbitmq.reply-to", durable=True))


def case_publish_amq_default(e):
    c = e.conn()
    c.publish(1, "amq.default", Q("missing"))
    return c.sync(1)


def case_passive_amq_default(e):
    c = e.conn()
    return c.do(1, spec.Exchange.Declare(exchange="amq.default", passive=True))


def case_delete_amq_default(e):
    c = e.conn()
    return c.do(1, spec.Exchange.Delete(exchange="amq.default"))


def case_bind_amq_default(e):
    c = e.conn()
    declare_q(c, 1, Q("q.cargs"), auto_delete=True)
    return c.do(1, spec.Queue.Bind(queue=Q("q.cargs"), exchange="amq.default", routing_key="k"))


def case_passive_empty_name_after_declare(e):
    c = e.conn()
    declare_q(c, 1, Q("q.cargs"), auto_delete=True)
    return c.do(1, spec.Queue.Declare(queue="", passive=True))


def case_access_request(e):
    c = e.conn()
    return c.do(1, spec.Access.Request(realm="/data", active=True, read=True))


def case_ttl_too_large(e):
    c = e.conn()
    return c.do(1, spec.Queue.Declare(queue=Q("q.bigttl"),
                                      arguments={"x-message-ttl": 315360000001}))


def case_declare_name_with_newline(e):
    c = e.conn()
    declare_q(c, 1, P + "q.new\nline", auto_delete=True)
    return c.do(1, spec.Queue.Declare(queue=Q("q.newline"), passive=True))


def case_queue_amq_prefix(e):
    c = e.conn()
    return c.do(1, spec.Queue.Declare(queue="amq.foo"))


def case_queue_amq_prefix_passive(e):
    c = e.conn()
    return c.do(1, spec.Queue.Declare(queue="amq.foo", passive=True))


def case_qos_prefetch_size(e):
    c = e.conn()
    return c.do(1, spec.Basic.Qos(prefetch_size=1000, prefetch_count=0))


def case_publish_immediate(e):
    c = e.conn()
    declare_q(c, 1, Q("q.imm"), auto_delete=True)
    c.publish(1, "", Q("q.imm"), immediate=True)
    return c.sync(1)


def case_recover_no_requeue(e):
    c = e.conn()
    return c.do(1, spec.Basic.Recover(requeue=False))


def case_recover_requeue(e):
    c = e.conn()
    return c.do(1, spec.Basic.Recover(requeue=True))


def case_channel_flow_false(e):
    c = e.conn()
    return c.do(1, spec.Channel.Flow(active=False))


def case_tx_commit_without_select(e):
    c = e.conn()
    return c.do(1, spec.Tx.Commit())


def case_tx_rollback_without_select(e):
    c = e.conn()
    return c.do(1, spec.Tx.Rollback())


def case_confirm_after_tx(e):
    c = e.conn()
    c.ok(1, spec.Tx.Select())
    return c.do(1, spec.Confirm.Select())


def case_tx_after_confirm(e):
    c = e.conn()
    c.ok(1, spec.Confirm.Select())
    return c.do(1, spec.Tx.Select())


def case_publish_wrong_user_id(e):
    c = e.conn()
    c.publish(1, "amq.direct", "nokey", props=spec.BasicProperties(user_id="bob"))
    return c.sync(1)


def case_publish_bad_expiration(e):
    c = e.conn()
    c.publish(1, "amq.direct", "nokey", props=spec.BasicProperties(expiration="abc"))
    return c.sync(1)


def case_publish_negative_expiration(e):
    c = e.conn()
    c.publish(1, "amq.direct", "nokey", props=spec.BasicProperties(expiration="-1"))
    return c.sync(1)


def case_publish_cc(headers, exchange="amq.direct"):
    def case(e):
        c = e.conn()
        c.publish(1, exchange, "nokey", props=spec.BasicProperties(headers=headers))
        return c.sync(1)
    return case


def case_reply_to_no_consumer(e):
    c = e.conn()
    c.publish(1, "amq.direct", "nokey", props=spec.BasicProperties(reply_to="amq.rabbitmq.reply-to"))
    return c.sync(1)


def case_reply_to_consume_with_ack(e):
    c = e.conn()
    return c.do(1, spec.Basic.Consume(queue="amq.rabbitmq.reply-to", no_ack=False))


def case_reply_to_bogus_target(e):
    c = e.conn()
    c.publish(1, "", "amq.rabbitmq.reply-to.bogus")
    return c.sync(1)


def case_missing_vhost(e):
    _, out = e.raw_conn(vhost="interop.python.novhost")
    return out


def case_wrong_password(e):
    _, out = e.raw_conn(password="wrong-password")
    return out


def case_wrong_password_nocap(e):
    _, out = e.raw_conn(password="wrong-password", auth_close_cap=False)
    return out


def case_unknown_mechanism(e):
    _, out = e.raw_conn(mechanism="FOO")
    return out


def case_channel_above_max(e):
    c, out = e.raw_conn(channel_max=10)
    if out:
        return out
    return c.do(11, spec.Channel.Open())


def case_channel_above_server_max(e):
    c, out = e.raw_conn()
    if out:
        return out
    return c.do(65535, spec.Channel.Open())


def case_channel_count_above_max(e):
    c, out = e.raw_conn(channel_max=2)
    if out:
        return out
    c.open_channel(1)
    c.open_channel(2)
    return c.do(3, spec.Channel.Open())


def case_channel_open_twice(e):
    c = e.conn()
    return c.do(1, spec.Channel.Open())


def case_method_on_closed_channel(e):
    c = e.conn(ch=0)
    return c.do(3, spec.Queue.Declare(queue=Q("never")))


def case_channel0_non_connection_method(e):
    c = e.conn(ch=0)
    return c.do(0, spec.Queue.Declare(queue=Q("never")))


def case_tune_frame_max_too_small(e):
    c, out = e.raw_conn(frame_max=1024, do_open=False)
    if out:
        return out
    c.send(0, spec.Connection.Open(virtual_host=c.vhost))
    return c.wait(0)


def case_frame_too_large(e):
    c, out = e.raw_conn(frame_max=4096)
    if out:
        return out
    c.open_channel(1)
    c.send(1, spec.Basic.Publish(exchange="amq.direct", routing_key="nokey"))
    body = b"z" * 5000
    c.raw(pframe.Header(1, len(body), spec.BasicProperties()).marshal())
    c.raw(pframe.Body(1, body).marshal())
    return c.wait(1)


def case_body_larger_than_header(e):
    c = e.conn()
    c.send(1, spec.Basic.Publish(exchange="amq.direct", routing_key="nokey"))
    c.raw(pframe.Header(1, 3, spec.BasicProperties()).marshal())
    c.raw(pframe.Body(1, b"abcdef").marshal())
    return c.sync(1)


def case_header_without_method(e):
    c = e.conn()
    c.raw(pframe.Header(1, 3, spec.BasicProperties()).marshal())
    return c.sync(1)


def case_method_during_content(e):
    c = e.conn()
    c.send(1, spec.Basic.Publish(exchange="amq.direct", routing_key="nokey"))
    c.raw(pframe.Header(1, 10, spec.BasicProperties()).marshal())
    c.raw(pframe.Body(1, b"abc").marshal())
    return c.sync(1)


def case_bad_frame_end(e):
    c = e.conn()
    f = bytearray(pframe.Method(1, spec.Basic.Qos(prefetch_count=1)).marshal())
    f[-1] = 0x00
    c.raw(bytes(f))
    return c.wait(1)


def case_unknown_frame_type(e):
    c = e.conn()
    c.raw(b"\x09\x00\x01\x00\x00\x00\x00\xce")
    return c.wait(1)


def case_unknown_method(e):
    c = e.conn()
    c.raw(b"\x01\x00\x01\x00\x00\x00\x04\x00\x3c\x00\x63\xce")  # basic.99
    return c.wait(1)


def case_unknown_class(e):
    c = e.conn()
    c.raw(b"\x01\x00\x01\x00\x00\x00\x04\x00\x63\x00\x0a\xce")  # class 99
    return c.wait(1)


def case_heartbeat_on_channel(e):
    c = e.conn()
    c.raw(b"\x08\x00\x01\x00\x00\x00\x00\xce")
    return c.wait(1)


def _raw_header(e, hdr):
    c = Conn(e.url)
    e.conns.append(c)
    c.tcp()
    c.raw(hdr)
    data, closed = c.read_bytes(3.0)
    return Outcome("bytes", 0, "%r%s" % (data, ", then closed" if closed else ", still open"))


def case_bad_header_http(e):
    return _raw_header(e, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


def case_bad_header_version(e):
    return _raw_header(e, b"AMQP\x00\x00\x09\x02")


def case_bad_header_amqp10(e):
    return _raw_header(e, b"AMQP\x00\x01\x00\x00")


def case_header_amqp091_legacy(e):
    """0-9-1 with the old (1,1,0,9) form: what comes back?"""
    c = Conn(e.url)
    e.conns.append(c)
    c.tcp()
    c.raw(b"AMQP\x01\x01\x00\x09")
    fr = c.recv(3.0)
    if isinstance(fr, pframe.Method):
        return Outcome("none", 0, fr.method.NAME)
    data, closed = c.read_bytes(1.0)
    return Outcome("bytes", 0, "%r%s" % (c.buf + data, ", then closed" if closed else ", still open"))


def case_bad_header_short(e):
    c = Conn(e.url)
    e.conns.append(c)
    c.tcp()
    c.raw(b"AMQ")
    data, closed = c.read_bytes(4.0)
    return Outcome("bytes", 0, "%r%s" % (data, ", then closed" if closed else ", still open"))


# --------------------------------------------------------------------------
# The table: name, function, expected (closes, code, text prefix, failing method).
# Expected values are what RabbitMQ 3.x answered (see ERRORS.md).

Ch, Co, No, By = "channel", "connection", "none", "bytes"
QN = "queue '" + P
XN = "exchange '" + P
VH = "' in vhost '/'"
LOCKED = ("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '" + P + "%s' in vhost '/'."
          " It could be originally declared on another connection or the exclusive property"
          " value does not match that of the original declaration.")

ROWS = [
    # (name, fn, closes, code, exact text or prefix, class.method that failed)
    ("passive declare missing queue", case_passive_missing_queue,
     Ch, 404, "NOT_FOUND - no " + QN + "missing" + VH, "Queue.Declare"),
    ("passive declare missing exchange", case_passive_missing_exchange,
     Ch, 404, "NOT_FOUND - no " + XN + "missing" + VH, "Exchange.Declare"),
    ("publish to missing exchange", case_publish_missing_exchange,
     Ch, 404, "NOT_FOUND - no " + XN + "missing" + VH, "Basic.Publish"),
    ("publish via default exchange to missing queue (no error)", case_publish_default_exchange_missing_queue,
     No, 0, "Exchange.DeclareOk", ""),
    ("declare exchange amq.foo (reserved)", case_declare_reserved_exchange,
     Ch, 403, "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved prefix 'amq.*'", "Exchange.Declare"),
    ("declare exchange amq.direct, equivalent (no error)", case_declare_amq_direct,
     No, 0, "Exchange.DeclareOk", ""),
    ("declare exchange amq.direct non-durable (inequivalent)", case_declare_amq_direct_nondurable,
     Ch, 406, "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'amq.direct" + VH + ": received 'false' but current is 'true'", "Exchange.Declare"),
    ("declare exchange amq.foo type topic (reserved)", case_declare_reserved_exchange2,
     Ch, 403, "ACCESS_REFUSED - exchange name 'amq.foo.bar' contains reserved prefix 'amq.*'", "Exchange.Declare"),
    ("declare default exchange ''", case_declare_default_exchange,
     Ch, 403, "ACCESS_REFUSED - operation not permitted on the default exchange", "Exchange.Declare"),
    ("passive declare amq.topic with other type (no error)", case_passive_amq_exchange,
     No, 0, "Exchange.DeclareOk", ""),
    ("redeclare exchange with different type", case_redeclare_exchange_type,
     Ch, 406, "PRECONDITION_FAILED - inequivalent arg 'type' for " + XN + "x.type" + VH + ": received 'fanout' but current is 'direct'", "Exchange.Declare"),
    ("redeclare exchange with different durable", case_redeclare_exchange_durable,
     Ch, 406, "PRECONDITION_FAILED - inequivalent arg 'durable' for " + XN + "x.durable" + VH + ": received 'true' but current is 'false'", "Exchange.Declare"),
    ("redeclare exchange with different auto_delete", case_redeclare_exchange_autodelete,
     Ch, 406, "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for " + XN + "x.ad" + VH + ": received 'true' but current is 'false'", "Exchange.Declare"),
    ("redeclare exchange with different internal", case_redeclare_exchange_internal,
     Ch, 406, "PRECONDITION_FAILED - inequivalent arg 'internal' for " + XN + "x.int" + VH + ": received 'true' but current is 'false'", "Exchange.Declare"),
    ("redeclare exchange with different arguments", case_redeclare_exchange_args,
     Ch, 406, "PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for " + XN + "x.args" + VH + ": received the value 'amq.fanout' of type 'longstr' but current is none", "Exchange.Declare"),
    ("unknown exchange type", case_unknown_exchange_type,
     Co, 503, "COMMAND_INVALID - invalid exchange type 'foo'", "Exchange.Declare"),
    ("consistent-hash: hash-header and hash-property", case_ch_header_and_property,
     Ch, 406, "PRECONDITION_FAILED - hash-header and hash-property are mutually exclusive", "Exchange.Declare"),
    ("consistent-hash: unsupported hash-property", case_ch_unsupported_property,
     Ch, 406, "PRECONDITION_FAILED - Unsupported property: app_id", "Exchange.Declare"),
    ("consistent-hash: binding key not an integer", case_ch_key_not_integer,
     Ch, 406, "PRECONDITION_FAILED - The binding key must be an integer: <<\"abc\">>", "Queue.Bind"),
    ("consistent-hash: binding key 0", case_ch_key_zero,
     Ch, 406, "PRECONDITION_FAILED - The binding key must be greater than 0", "Queue.Bind"),
    ("recent-history: length 0", case_rh_length_zero,
     Ch, 406, "PRECONDITION_FAILED - Invalid argument 0, 'x-recent-history-length' must be a positive integer", "Exchange.Declare"),
    ("recent-history: length a string", case_rh_length_string,
     Ch, 406, "PRECONDITION_FAILED - Invalid argument <<\"abc\">>, 'x-recent-history-length' must be a positive integer", "Exchange.Declare"),
    ("redeclare queue with different durable", case_redeclare_queue_durable,
     Ch, 406, "PRECONDITION_FAILED - inequivalent arg 'durable' for " + QN + "q.durable" + VH + ": received 'true' but current is 'false'", "Queue.Declare"),
    ("redeclare queue non-exclusive as exclusive", case_redeclare_queue_exclusive,
     Ch, 405, LOCKED % "q.excl", "Queue.Declare"),
    ("redeclare own exclusive queue as non-exclusive", case_redeclare_queue_exclusive_rev,
     Ch, 405, LOCKED % "q.excl2", "Queue.Declare"),
    ("redeclare queue with different auto_delete", case_redeclare_queue_autodelete,
     Ch, 406, "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for " + QN + "q.ad" + VH + ": received 'true' but current is 'false'", "Queue.Declare"),
    ("redeclare queue with different x-max-length", case_redeclare_queue_args,
     Ch, 406, "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for " + QN + "q.args" + VH + ": received '20' but current is '10'", "Queue.Declare"),
    ("redeclare queue without its x-max-length", case_redeclare_queue_args_missing,
     Ch, 406, "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for " + QN + "q.args2" + VH + ": received none but current is the value '10' of type 'signedint'", "Queue.Declare"),
    ("redeclare queue adding x-max-length", case_redeclare_queue_args_added,
     Ch, 406, "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for " + QN + "q.args3" + VH + ": received the value '10' of type 'signedint' but current is none", "Queue.Declare"),
    ("queue x-max-length of wrong type", case_queue_bad_arg_type,
     Ch, 406, "PRECONDITION_FAILED - invalid arg 'x-max-length' for " + QN + "q.badarg" + VH + ': "expected integer, got longstr"', "Queue.Declare"),
    ("queue x-max-length negative", case_queue_negative_arg,
     Ch, 406, "PRECONDITION_FAILED - invalid arg 'x-max-length' for " + QN + "q.negarg" + VH + ": {value_negative,-1}", "Queue.Declare"),
    ("queue x-message-ttl negative", case_queue_bad_ttl,
     Ch, 406, "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for " + QN + "q.badttl" + VH + ": {value_negative,-5}", "Queue.Declare"),
    ("passive queue declare ignores other flags/args (no error)", case_passive_queue_other_args,
     No, 0, "Queue.DeclareOk", ""),
    ("exclusive queue of another connection: declare", case_exclusive_other_declare,
     Ch, 405, LOCKED % "q.locked", "Queue.Declare"),
    ("exclusive queue of another connection: passive declare", case_exclusive_other_declare_passive,
     Ch, 405, LOCKED % "q.locked", "Queue.Declare"),
    ("exclusive queue of another connection: consume", case_exclusive_other_consume,
     Ch, 405, LOCKED % "q.locked", "Basic.Consume"),
    ("exclusive queue of another connection: get", case_exclusive_other_get,
     Ch, 405, LOCKED % "q.locked", "Basic.Get"),
    ("exclusive queue of another connection: delete", case_exclusive_other_delete,
     Ch, 405, LOCKED % "q.locked", "Queue.Delete"),
    ("exclusive queue of another connection: bind", case_exclusive_other_bind,
     Ch, 405, LOCKED % "q.locked", "Queue.Bind"),
    ("exclusive queue of another connection: unbind (no error)", case_exclusive_other_unbind,
     No, 0, "Queue.UnbindOk", ""),
    ("exclusive queue of another connection: purge", case_exclusive_other_purge,
     Ch, 405, LOCKED % "q.locked", "Queue.Purge"),
    ("exclusive queue of another connection: publish (no error)", case_exclusive_other_publish,
     No, 0, "Exchange.DeclareOk", ""),
    ("basic.consume with duplicate consumer tag", case_duplicate_consumer_tag,
     Co, 530, "NOT_ALLOWED - attempt to reuse consumer tag 'ctag'", "Basic.Consume"),
    ("exclusive consume when another consumer exists", case_exclusive_consume_existing,
     Ch, 403, "ACCESS_REFUSED - queue '" + P + "q.xcons1" + VH + " in exclusive use", "Basic.Consume"),
    ("consume when an exclusive consumer exists", case_consume_exclusive_existing,
     Ch, 403, "ACCESS_REFUSED - queue '" + P + "q.xcons2" + VH + " in exclusive use", "Basic.Consume"),
    ("basic.consume on missing queue", case_consume_missing_queue,
     Ch, 404, "NOT_FOUND - no " + QN + "missing" + VH, "Basic.Consume"),
    ("basic.cancel unknown consumer tag (no error)", case_cancel_unknown_tag,
     No, 0, "Basic.CancelOk", ""),
    ("ack unknown delivery tag", case_ack_unknown_tag,
     Ch, 406, "PRECONDITION_FAILED - unknown delivery tag 5", "Basic.Ack"),
    ("ack twice", case_ack_twice,
     Ch, 406, "PRECONDITION_FAILED - unknown delivery tag 1", "Basic.Ack"),
    ("ack tag 0 multiple=false", case_ack_zero_single,
     Ch, 406, "PRECONDITION_FAILED - unknown delivery tag 0", "Basic.Ack"),
    ("ack tag 0 multiple=true, nothing outstanding (no error)", case_ack_zero_multiple,
     No, 0, "Exchange.DeclareOk", ""),
    ("ack multiple=true above outstanding tags", case_ack_multiple_unknown,
     Ch, 406, "PRECONDITION_FAILED - unknown delivery tag 7", "Basic.Ack"),
    ("reject unknown delivery tag", case_reject_unknown_tag,
     Ch, 406, "PRECONDITION_FAILED - unknown delivery tag 3", "Basic.Reject"),
    ("nack unknown delivery tag", case_nack_unknown_tag,
     Ch, 406, "PRECONDITION_FAILED - unknown delivery tag 4", "Basic.Nack"),
    ("ack a no-ack delivery", case_ack_on_noack_delivery,
     Ch, 406, "PRECONDITION_FAILED - unknown delivery tag 1", "Basic.Ack"),
    ("queue.delete if-unused with a consumer", case_delete_if_unused,
     Ch, 406, "PRECONDITION_FAILED - queue '" + P + "q.inuse" + VH + " in use", "Queue.Delete"),
    ("queue.delete if-empty on non-empty queue", case_delete_if_empty,
     Ch, 406, "PRECONDITION_FAILED - queue '" + P + "q.notempty" + VH + " not empty", "Queue.Delete"),
    ("queue.delete missing queue (no error)", case_delete_missing_queue,
     No, 0, "Queue.DeleteOk", ""),
    ("queue.purge missing queue", case_purge_missing_queue,
     Ch, 404, "NOT_FOUND - no " + QN + "missing" + VH, "Queue.Purge"),
    ("queue.bind to missing exchange", case_bind_missing_exchange,
     Ch, 404, "NOT_FOUND - no " + XN + "missing" + VH, "Queue.Bind"),
    ("queue.bind missing queue", case_bind_missing_queue,
     Ch, 404, "NOT_FOUND - no " + QN + "missing" + VH, "Queue.Bind"),
    ("queue.bind missing queue and exchange", case_bind_missing_both,
     Ch, 404, "NOT_FOUND - no " + XN + "missingx" + VH, "Queue.Bind"),
    ("queue.bind on the default exchange", case_bind_default_exchange,
     Ch, 403, "ACCESS_REFUSED - operation not permitted on the default exchange", "Queue.Bind"),
    ("queue.unbind from the default exchange", case_unbind_default_exchange,
     Ch, 403, "ACCESS_REFUSED - operation not permitted on the default exchange", "Queue.Unbind"),
    ("queue.unbind nonexistent binding (no error)", case_unbind_nonexistent,
     No, 0, "Queue.UnbindOk", ""),
    ("queue.unbind missing queue", case_unbind_missing_queue,
     No, 0, "Queue.UnbindOk", ""),
    ("queue.unbind missing exchange", case_unbind_missing_exchange,
     No, 0, "Queue.UnbindOk", ""),
    ("exchange.delete missing exchange (no error)", case_exchange_delete_missing,
     No, 0, "Exchange.DeleteOk", ""),
    ("exchange.delete if-unused with bindings", case_exchange_delete_if_unused,
     Ch, 406, "PRECONDITION_FAILED - " + XN + "x.inuse" + VH + " in use", "Exchange.Delete"),
    ("exchange.delete default exchange", case_exchange_delete_default,
     Ch, 403, "ACCESS_REFUSED - operation not permitted on the default exchange", "Exchange.Delete"),
    ("exchange.delete amq.direct", case_exchange_delete_amq_direct,
     Ch, 403, "ACCESS_REFUSED - deletion of system exchange 'amq.direct" + VH + " not allowed", "Exchange.Delete"),
    ("exchange.bind missing destination", case_exchange_bind_missing_dest,
     Ch, 404, "NOT_FOUND - no " + XN + "missing" + VH, "Exchange.Bind"),
    ("exchange.bind missing source", case_exchange_bind_missing_source,
     Ch, 404, "NOT_FOUND - no " + XN + "missing" + VH, "Exchange.Bind"),
    ("publish to an internal exchange", case_publish_internal,
     Ch, 403, "ACCESS_REFUSED - cannot publish to internal " + XN + "x.internal" + VH, "Basic.Publish"),
    ("basic.get on missing queue", case_get_missing_queue,
     Ch, 404, "NOT_FOUND - no " + QN + "missing" + VH, "Basic.Get"),
    ("headers binding with invalid x-match", case_headers_bad_xmatch,
     Ch, 406, "PRECONDITION_FAILED - Invalid x-match field value <<\"foo\">>; expected all, any, all-with-x, or any-with-x", "Queue.Bind"),
    ("headers binding with x-match of type signedint", case_headers_xmatch_wrong_type,
     Ch, 406, "PRECONDITION_FAILED - Invalid x-match field type signedint (value 1); expected longstr", "Queue.Bind"),
    ("basic.consume x-priority of type longstr", case_consume_priority_wrong_type,
     Ch, 406, "PRECONDITION_FAILED - invalid arg 'x-priority' for " + QN + "q.cargs" + VH + ": \"expected integer, got longstr\"", "Basic.Consume"),
    ("basic.consume x-cancel-on-ha-failover of type longstr", case_consume_cancel_on_failover_wrong_type,
     Ch, 406, "PRECONDITION_FAILED - invalid arg 'x-cancel-on-ha-failover' for " + QN + "q.cargs" + VH + ": {unacceptable_type,longstr}", "Basic.Consume"),
    ("exchange alternate-exchange of type signedint", case_alternate_exchange_wrong_type,
     Ch, 406, "PRECONDITION_FAILED - invalid type 'signedint' for arg 'alternate-exchange' in " + XN + "x.aetype" + VH, "Exchange.Declare"),
    ("made-up exchange type (no Erlang atom)", case_unknown_exchange_type_made_up,
     Co, 503, "COMMAND_INVALID - unknown exchange type 'interop-bogus'", "Exchange.Declare"),
    ("passive declare amq.rabbitmq.reply-to (no error)", case_reply_to_declare_passive,
     No, 0, "Queue.DeclareOk", ""),
    ("declare amq.rabbitmq.reply-to (no error)", case_reply_to_declare,
     No, 0, "Queue.DeclareOk", ""),
    ("publish to amq.default (no alias over AMQP)", case_publish_amq_default,
     Ch, 404, "NOT_FOUND - no exchange 'amq.default" + VH, "Basic.Publish"),
    ("passive declare amq.default", case_passive_amq_default,
     Ch, 404, "NOT_FOUND - no exchange 'amq.default" + VH, "Exchange.Declare"),
    ("exchange.delete amq.default", case_delete_amq_default,
     Ch, 403, "ACCESS_REFUSED - deletion of system exchange 'amq.default" + VH + " not allowed", "Exchange.Delete"),
    ("queue.bind to amq.default", case_bind_amq_default,
     Ch, 404, "NOT_FOUND - no exchange 'amq.default" + VH, "Queue.Bind"),
    ("passive declare of '' after a declare", case_passive_empty_name_after_declare,
     Ch, 404, "NOT_FOUND - no queue ''" + VH[1:], "Queue.Declare"),
    ("access.request (no error)", case_access_request,
     No, 0, "Access.RequestOk", ""),
    ("queue x-message-ttl above ten years", case_ttl_too_large,
     Ch, 406, "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for " + QN + "q.bigttl" + VH + ": {value_too_large,315360000001}", "Queue.Declare"),
    ("queue.declare 'a\\nb' then passive 'ab': CR/LF stripped (no error)", case_declare_name_with_newline,
     No, 0, "Queue.DeclareOk", ""),
    ("queue.declare name starting with amq.", case_queue_amq_prefix,
     Ch, 403, "ACCESS_REFUSED - queue name 'amq.foo' contains reserved prefix 'amq.*'", "Queue.Declare"),
    ("queue.declare passive name starting with amq. (missing)", case_queue_amq_prefix_passive,
     Ch, 404, "NOT_FOUND - no queue 'amq.foo" + VH, "Queue.Declare"),
    ("basic.qos prefetch_size != 0", case_qos_prefetch_size,
     Co, 540, "NOT_IMPLEMENTED - prefetch_size!=0 (1000)", "Basic.Qos"),
    ("basic.publish immediate=true", case_publish_immediate,
     Co, 540, "NOT_IMPLEMENTED - immediate=true", "Basic.Publish"),
    ("basic.recover requeue=false", case_recover_no_requeue,
     Co, 540, "NOT_IMPLEMENTED - requeue=false", "Basic.Recover"),
    ("basic.recover requeue=true (no error)", case_recover_requeue,
     No, 0, "Basic.RecoverOk", ""),
    ("channel.flow active=false", case_channel_flow_false,
     Co, 540, "NOT_IMPLEMENTED - active=false", "Channel.Flow"),
    ("tx.commit without tx.select", case_tx_commit_without_select,
     Ch, 406, "PRECONDITION_FAILED - channel is not transactional", "Tx.Commit"),
    ("tx.rollback without tx.select", case_tx_rollback_without_select,
     Ch, 406, "PRECONDITION_FAILED - channel is not transactional", "Tx.Rollback"),
    ("confirm.select on a tx channel", case_confirm_after_tx,
     Ch, 406, "PRECONDITION_FAILED - cannot switch from tx to confirm mode", "Confirm.Select"),
    ("tx.select on a confirm channel", case_tx_after_confirm,
     Ch, 406, "PRECONDITION_FAILED - cannot switch from confirm to tx mode", "Tx.Select"),
    ("publish with user_id other than the login", case_publish_wrong_user_id,
     Ch, 406, "PRECONDITION_FAILED - user_id property set to 'bob' but authenticated user was 'guest'", "Basic.Publish"),
    ("publish with expiration 'abc'", case_publish_bad_expiration,
     Ch, 406, "PRECONDITION_FAILED - invalid expiration 'abc': no_integer", "Basic.Publish"),
    ("publish with expiration '-1'", case_publish_negative_expiration,
     Ch, 406, "PRECONDITION_FAILED - invalid expiration '-1': {value_negative,-1}", "Basic.Publish"),
    ("publish with CC as a string", case_publish_cc({"CC": "k"}),
     Ch, 406, 'PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,"CC",longstr}', "Basic.Publish"),
    ("publish with BCC as an int", case_publish_cc({"BCC": 5}),
     Ch, 406, 'PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,"BCC",signedint}', "Basic.Publish"),
    ("publish with BCC as a 64-bit int", case_publish_cc({"BCC": 1 << 40}),
     Ch, 406, 'PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,"BCC",long}', "Basic.Publish"),
    ("publish with CC as a table", case_publish_cc({"CC": {"k": "v"}}),
     Ch, 406, 'PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,"CC",table}', "Basic.Publish"),
    ("publish with CC as an array of ints (no error)", case_publish_cc({"CC": [1, 2]}),
     No, 0, "Exchange.DeclareOk", ""),
    ("publish with a bad CC to a missing exchange", case_publish_cc({"CC": "k"}, P + "missing"),
     Ch, 404, "NOT_FOUND - no exchange '%smissing' in vhost '/'" % P, "Basic.Publish"),
    ("publish reply_to=amq.rabbitmq.reply-to without consuming it", case_reply_to_no_consumer,
     Ch, 406, "PRECONDITION_FAILED - fast reply consumer does not exist", "Basic.Publish"),
    ("consume amq.rabbitmq.reply-to with no_ack=false", case_reply_to_consume_with_ack,
     Ch, 406, "PRECONDITION_FAILED - reply consumer cannot acknowledge", "Basic.Consume"),
    ("publish to a bogus amq.rabbitmq.reply-to.* key (no error)", case_reply_to_bogus_target,
     No, 0, "Exchange.DeclareOk", ""),
    ("connection.open to a missing vhost", case_missing_vhost,
     Co, 530, "NOT_ALLOWED - vhost interop.python.novhost not found", "Connection.Open"),
    ("wrong password (client has authentication_failure_close)", case_wrong_password,
     Co, 403, "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.", ""),
    ("wrong password (client without authentication_failure_close)", case_wrong_password_nocap,
     "eof", 0, "socket reset, no close method", ""),
    ("unknown SASL mechanism", case_unknown_mechanism,
     "eof", 0, "socket reset, no close method", ""),
    ("more open channels than negotiated channel_max (2)", case_channel_count_above_max,
     Co, 530, "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)", ""),
    ("channel id 11 above negotiated channel_max 10 (no error)", case_channel_above_max,
     No, 0, "Channel.OpenOk", ""),
    ("channel id 65535, channel_max 2047 (no error)", case_channel_above_server_max,
     No, 0, "Channel.OpenOk", ""),
    ("channel.open on an already open channel", case_channel_open_twice,
     Co, 504, "CHANNEL_ERROR - second 'channel.open' seen", "Channel.Open"),
    ("method on a channel that is not open", case_method_on_closed_channel,
     Co, 504, "CHANNEL_ERROR - expected 'channel.open'", "Queue.Declare"),
    ("non-connection method on channel 0", case_channel0_non_connection_method,
     Co, 504, "CHANNEL_ERROR - unexpected method in connection state running", "Queue.Declare"),
    ("tune-ok frame_max below 4096", case_tune_frame_max_too_small,
     "eof", 0, "socket reset, no close method", ""),
    ("frame bigger than frame_max", case_frame_too_large,
     Co, 501, "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,5000,4088}", ""),
    ("content body longer than header's body size", case_body_larger_than_header,
     Co, 505, "UNEXPECTED_FRAME - expected content body, got non content body frame instead", ""),
    ("content header without a method", case_header_without_method,
     Co, 505, "UNEXPECTED_FRAME - expected method frame, got non method frame instead", ""),
    ("method frame while content expected", case_method_during_content,
     Co, 505, "UNEXPECTED_FRAME - expected content body, got non content body frame instead", ""),
    ("frame-end octet not 0xCE", case_bad_frame_end,
     Co, 501, "FRAME_ERROR - type 1, all octets = <<0,60,0,10,0,0,0,0,0,1,0>>: {invalid_frame_end_marker,0}", ""),
    ("unknown frame type 9", case_unknown_frame_type,
     Co, 501, "FRAME_ERROR - type 9, all octets = <<>>: unknown_frame", ""),
    ("unknown method basic.99", case_unknown_method,
     "eof", 0, "socket reset, no close method", ""),
    ("unknown class 99", case_unknown_class,
     "eof", 0, "socket reset, no close method", ""),
    ("heartbeat frame on channel 1", case_heartbeat_on_channel,
     Co, 505, "UNEXPECTED_FRAME - type 8, all octets = <<>>", ""),
    ("bad protocol header: HTTP request", case_bad_header_http,
     By, 0, "b'AMQP\\x00\\x00\\t\\x01', then closed", ""),
    ("bad protocol header: AMQP 0-9-2", case_bad_header_version,
     By, 0, "b'AMQP\\x00\\x00\\t\\x01', then closed", ""),
    ("bad protocol header: AMQP 1.0", case_bad_header_amqp10,
     By, 0, "b'AMQP\\x00\\x00\\t\\x01', then closed", ""),
    ("protocol header AMQP 1-1-0-9 (legacy 0-9)", case_header_amqp091_legacy,
     No, 0, "Connection.Start", ""),
    ("truncated protocol header 'AMQ'", case_bad_header_short,
     By, 0, "b'', still open", ""),
    ("stream: consume without a prefetch", case_stream_consume_without_prefetch,
     Ch, 406, "PRECONDITION_FAILED - consumer prefetch count is not set for '" + QN + "s.stream" + VH + "'", "Basic.Consume"),
    ("stream: consume with no-ack", case_stream_consume_no_ack,
     Co, 540, "NOT_IMPLEMENTED - automatic acknowledgement not supported by stream queues " + QN + "s.stream" + VH, "Basic.Consume"),
    ("stream: basic.get", case_stream_get,
     Co, 540, "NOT_IMPLEMENTED - basic.get not supported by stream queues " + QN + "s.stream" + VH, "Basic.Get"),
    ("stream: queue.purge", case_stream_purge,
     Co, 540, "NOT_IMPLEMENTED - queue.purge not supported by stream queues " + QN + "s.stream" + VH, "Queue.Purge"),
    ("stream: x-stream-offset it cannot read", case_stream_bad_offset,
     Co, 541, "INTERNAL_ERROR", ""),
    ("stream: x-max-age with an unknown unit", case_stream_bad_max_age,
     Ch, 406, "PRECONDITION_FAILED - invalid arg 'x-max-age' for " + QN + "s.age" + VH + ": invalid_max_age", "Queue.Declare"),
]


def cleanup(url):
    """Deletes everything this script may have left behind."""
    e = Env(url)
    try:
        c = e.conn()
        names = [r for r in ("x.type", "x.durable", "x.ad", "x.int", "x.args", "x.badtype",
                             "x.inuse", "x.internal", "x.headers", "x.e2e", "x.ch", "x.rh",
                             "x.aetype")]
        for n in names:
            out = c.do(1, spec.Exchange.Delete(exchange=Q(n)))
            if out.closes != "none":
                c = e.conn()
        for n in ("q.durable", "q.excl", "q.ad", "q.args", "q.args2", "q.args3", "q.badarg",
                  "q.negarg", "q.badttl", "q.passargs", "q.acktwice", "q.ackmulti",
                  "q.noackget", "q.inuse", "q.notempty", "q.bind1", "q.binddef",
                  "q.unbinddef", "q.unbind", "q.unbind2", "q.xinuse", "q.headers", "q.imm",
                  "q.dupctag", "q.xcons1", "q.xcons2", "q.ch", "q.cargs", "q.bigttl",
                  "q.newline", "s.stream"):
            out = c.do(1, spec.Queue.Delete(queue=Q(n)))
            if out.closes != "none":
                c = e.conn()
    except Exception as ex:  # cleanup is best effort
        print("cleanup: %r" % ex, file=sys.stderr)
    finally:
        e.close_all()


def check(row, out):
    name, fn, closes, code, text, meth = row
    problems = []
    if out.closes != closes:
        problems.append("closes %s, expected %s" % (out.closes, closes))
    if out.code != code:
        problems.append("code %s, expected %s" % (out.code, code))
    if not out.text.startswith(text):
        problems.append("text %r, expected prefix %r" % (out.text, text))
    if meth and closes in (Ch, Co) and out.method_name() != meth:
        problems.append("failing method %s, expected %s" % (out.method_name(), meth))
    return problems


def md_escape(s):
    return s.replace("|", "\\|")


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    url = argv[1]
    record = None
    only = None
    if "--record" in argv:
        record = argv[argv.index("--record") + 1]
    if "--only" in argv:
        only = argv[argv.index("--only") + 1]
    cleanup(url)
    results = []
    bad = 0
    for row in ROWS:
        name, fn = row[0], row[1]
        if only and only not in name:
            continue
        e = Env(url)
        try:
            out = fn(e)
        except Closed as ex:
            out = ex.outcome
            out.text = "(setup failed) " + out.text
        except Exception as ex:
            out = Outcome("error", 0, "%s: %s" % (type(ex).__name__, ex))
        finally:
            e.close_all()
        if out is None:
            out = Outcome("none", 0, "(no error)")
        problems = check(row, out)
        line = "%s %s: %s %s" % ("ok" if not problems else "MISMATCH", name, out.code, out.text)
        if problems:
            bad += 1
            line += "  [" + "; ".join(problems) + "]"
        print(line, flush=True)
        results.append((name, out))
    cleanup(url)
    if record:
        with open(record, "w") as f:
            f.write(RECORD_HEAD)
            f.write("| case | code | exact reply text | closes | failing method (class-id.method-id) |\n")
            f.write("| --- | --- | --- | --- | --- |\n")
            for name, out in results:
                if out.closes in (Ch, Co):
                    m = "%s (%d.%d)" % (out.method_name(), out.cls, out.meth) if out.cls else "0.0"
                    f.write("| %s | %d | `%s` | %s | %s |\n" % (md_escape(name), out.code,
                                                             md_escape(out.text), out.closes, m))
                elif out.closes == "none":
                    f.write("| %s | - | (no error: reply %s) | none | - |\n" % (md_escape(name), out.text))
                elif out.closes == "bytes":
                    f.write("| %s | - | server sent %s | socket | - |\n" % (md_escape(name), md_escape(out.text)))
                else:
                    f.write("| %s | - | %s %s | %s | - |\n" % (md_escape(name), out.closes,
                                                              md_escape(out.text), out.closes))
            f.write(RECORD_TAIL)
    print("%d passed, %d failed" % (len(results) - bad, bad))
    return 0 if bad == 0 else 1


RECORD_HEAD = """# AMQP error table (observed on the reference RabbitMQ 3.x)

Generated by `python3 interop/python/errors.py URL --record interop/python/ERRORS.md`
against the reference RabbitMQ. Every row was provoked with raw frames (pika's
encoder), so the text is exactly what the broker put in channel.close /
connection.close. Names: `P` = `interop.python.err.`; vhost `/`.

- closes = channel: the broker sent channel.close (the connection survives; the
  client answers channel.close-ok).
- closes = connection: the broker sent connection.close on channel 0.
- closes = none: no error, the normal reply is given (for asynchronous methods
  such as basic.publish/ack the next synchronous request on the channel
  succeeded; the reply shown is that request's, exchange.declare passive of amq.direct).
- failing method: the class-id/method-id the broker put in the close method.

"""

RECORD_TAIL = """
Notes (RabbitMQ 3.10.8, also checked by hand with timings):
- Reply texts always start with the reply-code's name and " - " (e.g. `NOT_FOUND - `).
  Queue and exchange names are quoted with single quotes, followed by ` in vhost '/'`.
- Channel errors: 403, 404, 405, 406 (channel.close, connection survives).
  Connection errors: 501, 503, 504, 505, 530, 540 (connection.close on channel 0).
  Exception: 530 NOT_ALLOWED for a reused consumer tag is a connection error.
- "failing method 0.0" = class-id 0 and method-id 0 in the close method
  (frame-level errors, login failure, channel_max reached).
- inequivalent-arg text: when both sides have the argument with the same type the
  text is `received '20' but current is '10'`; when one side lacks it or the types
  differ: `received the value '10' of type 'signedint' but current is none` /
  `received none but current is the value '10' of type 'signedint'`.
  For flags: `received 'true' but current is 'false'`.
- wrong password: with the client capability authentication_failure_close=true the
  broker sends connection.close 403 at once (class 0, method 0); without it, and for
  an unknown SASL mechanism, the broker sends nothing and resets the socket after ~3 s.
- connection.tune-ok with frame_max < 4096: no close method, socket reset after ~3 s
  (whether or not connection.open follows).
- channel_max limits the NUMBER of open channels, not the channel id: with
  channel_max 2, opening a 3rd channel gives 530 (connection.close, class/method 0);
  channel ids 11 (channel_max 10) or 65535 are accepted.
- frame_max 4096 negotiated: the largest accepted frame payload is 4088 (= frame_max - 8);
  a body frame of 5000 gives 501 `{frame_too_large,5000,4088}`.
- A body frame longer than the size left in the content header gives no error by
  itself; the broker keeps waiting for content, and the next method frame gets
  505 `expected content body, got non content body frame instead` (failing method
  = the publish).
- Unknown class or method id: no close method, immediate socket reset.
- Bad protocol header (HTTP, AMQP 0-9-2, AMQP 1.0): the broker writes the 8 bytes
  `AMQP 0 0 9 1` and closes the socket at once. The legacy header `AMQP 1 1 0 9`
  is accepted (connection.start follows). A truncated header ("AMQ") or no header:
  nothing is sent, the socket is closed after 10 s (handshake timeout).
- Publishing to a missing queue through the default exchange is not an error
  (message dropped, or basic.return 312 if mandatory).
- The plugin exchange types (rows `consistent-hash: ...`, `recent-history: ...`) need
  rabbitmq_consistent_hash_exchange and rabbitmq_recent_history_exchange enabled on the
  reference. A non-string `hash-header` or `hash-property` makes RabbitMQ 3.10.8 crash
  (541 `INTERNAL_ERROR`, connection closed); warren refuses it on the channel with 406
  `PRECONDITION_FAILED - Invalid argument 5, 'hash-header' must be a string` instead.
- An exchange type that does not exist: `unknown exchange type 'T'` when T is no atom
  in the Erlang node (any made-up name), `invalid exchange type 'T'` when it is one
  (e.g. '', 'foo', 'test'); 503, connection close, either way.
- A mandatory unroutable publish inside a transaction: nothing at publish time; the
  basic.return (with its content) goes out at tx.commit, just before commit-ok; none
  after tx.rollback.
- queue.declare of `amq.rabbitmq.reply-to`, passive or not, whatever the flags:
  declare-ok with message_count 0 and consumer_count 1.
- Heartbeat negotiated, client silent after connection.open: the broker sends
  heartbeats every interval/2 and resets the socket (no close method) 3 intervals
  after tune-ok (it looks once per interval, gives up after 2 silent looks).
"""


if __name__ == "__main__":
    sys.exit(main(sys.argv))
