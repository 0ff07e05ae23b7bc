// Interop scenarios 01..15 and 17 for the RabbitMQ Java client (Debian librabbitmq-client-java).
// Usage: java -cp ... Interop AMQP_URL
// Prints exactly one line per scenario on stdout: "NN pass", "NN FAIL reason" or "NN n/a reason".

import com.rabbitmq.client.*;

import java.io.IOException;
import java.math.BigDecimal;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.AtomicInteger;

public class Interop {
    static final String P = "interop.java.";
    static final long SCENARIO_TIMEOUT_S = 20;
    static String url;

    /** Failure with a short reason. */
    static class Fail extends Exception {
        Fail(String m) { super(m); }
    }

    static void check(boolean cond, String msg) throws Fail {
        if (!cond) throw new Fail(msg);
    }

    interface Scenario {
        void run(Ctx ctx) throws Exception;
    }

    /** Per-scenario context: tracks connections so a timed-out scenario can be torn down. */
    static class Ctx {
        final List<Connection> conns = new CopyOnWriteArrayList<>();

        Connection connect() throws Exception {
            return connect(url);
        }

        Connection connect(String uri) throws Exception {
            ConnectionFactory f = new ConnectionFactory();
            f.setUri(uri);
            f.setAutomaticRecoveryEnabled(false);
            f.setTopologyRecoveryEnabled(false);
            f.setRequestedHeartbeat(10);
            f.setRequestedFrameMax(65536);
            f.setConnectionTimeout(10000);
            f.setHandshakeTimeout(10000);
            f.setShutdownTimeout(2000);
            f.setChannelRpcTimeout(15000);
            Connection c = f.newConnection("interop-java");
            conns.add(c);
            return c;
        }

        void closeAll() {
            for (Connection c : conns) {
                try {
                    if (c.isOpen()) c.close(2000);
                } catch (Exception e) {
                    c.abort(1000);
                }
            }
        }

        void abortAll() {
            for (Connection c : conns) c.abort(1000);
        }
    }

    static byte[] b(String s) {
        return s.getBytes(java.nio.charset.StandardCharsets.UTF_8);
    }

    static String s(byte[] x) {
        return new String(x, java.nio.charset.StandardCharsets.UTF_8);
    }

    static int count(Channel ch, String q) throws IOException {
        return ch.queueDeclarePassive(q).getMessageCount();
    }

    /** Declare a fresh exclusive queue (delete leftovers first). Not auto-delete: RabbitMQ deletes an
     *  auto-delete queue as soon as its last consumer is cancelled. Exclusive: gone with the connection. */
    static String freshQueue(Channel ch, String name) throws IOException {
        ch.queueDelete(name);
        ch.queueDeclare(name, false, true, false, null);
        return name;
    }

    /** Drain a queue with basic.get, returning the bodies as strings (in order). */
    static List<String> drain(Channel ch, String q) throws IOException {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < 1000; i++) {
            GetResponse r = ch.basicGet(q, true);
            if (r == null) break;
            out.add(s(r.getBody()));
        }
        return out;
    }

    // ---------------------------------------------------------------- scenarios

    static void s01(Ctx ctx) throws Exception {
        Connection c = ctx.connect();
        check(c.getHeartbeat() == 10, "heartbeat negotiated " + c.getHeartbeat() + ", want 10");
        check(c.getFrameMax() == 65536, "frame_max negotiated " + c.getFrameMax() + ", want 65536");
        check(c.getChannelMax() > 0, "channel_max " + c.getChannelMax());
        Map<String, Object> sp = c.getServerProperties();
        check(sp != null && sp.containsKey("capabilities"), "server properties lack capabilities");
        Channel ch = c.createChannel();
        check(ch.isOpen(), "channel not open");
        ch.close();
        check(!ch.isOpen(), "channel still open after close");
        c.close();
        check(!c.isOpen(), "connection still open after close");
    }

    static void s02(Ctx ctx) throws Exception {
        Connection c = ctx.connect();
        Channel ch = c.createChannel();
        String q = freshQueue(ch, P + "02.q");
        ch.basicPublish("", q, null, b("hello 02"));
        ch.basicPublish("", q, null, b("second 02"));
        GetResponse r = null;
        long end = System.currentTimeMillis() + 5000;
        while (r == null && System.currentTimeMillis() < end) {
            r = ch.basicGet(q, false);
            if (r == null) Thread.sleep(20);
        }
        check(r != null, "basic.get returned empty");
        check(s(r.getBody()).equals("hello 02"), "body mismatch: " + s(r.getBody()));
        check(r.getEnvelope().getRoutingKey().equals(q), "routing key " + r.getEnvelope().getRoutingKey());
        check(r.getEnvelope().getExchange().equals(""), "exchange " + r.getEnvelope().getExchange());
        check(!r.getEnvelope().isRedeliver(), "redelivered set");
        check(r.getMessageCount() == 1, "message_count " + r.getMessageCount() + ", want 1");
        ch.basicAck(r.getEnvelope().getDeliveryTag(), false);
        GetResponse r2 = ch.basicGet(q, true);
        check(r2 != null && s(r2.getBody()).equals("second 02"), "second get mismatch");
        check(r2.getMessageCount() == 0, "second message_count " + r2.getMessageCount());
        GetResponse r3 = ch.basicGet(q, true);
        check(r3 == null, "get-empty expected");
        ch.queueDelete(q);
        c.close();
    }

    static void s03(Ctx ctx) throws Exception {
        Connection c = ctx.connect();
        Channel ch = c.createChannel();
        String q = freshQueue(ch, P + "03.q");
        for (int i = 0; i < 10; i++) ch.basicPublish("", q, null, b("m" + i));
        BlockingQueue<Object[]> got = new LinkedBlockingQueue<>();
        String tag = ch.basicConsume(q, false, new DefaultConsumer(ch) {
            @Override
            public void handleDelivery(String ct, Envelope env, AMQP.BasicProperties props, byte[] body) {
                got.add(new Object[]{env, body});
            }
        });
        for (int i = 0; i < 10; i++) {
            Object[] d = got.poll(5, TimeUnit.SECONDS);
            check(d != null, "only " + i + " of 10 delivered");
            Envelope env = (Envelope) d[0];
            check(s((byte[]) d[1]).equals("m" + i), "out of order: got " + s((byte[]) d[1]) + " want m" + i);
            check(env.getDeliveryTag() == i + 1, "delivery tag " + env.getDeliveryTag() + " want " + (i + 1));
            ch.basicAck(env.getDeliveryTag(), false);
        }
        ch.basicCancel(tag);
        check(got.isEmpty(), "extra deliveries");
        check(count(ch, q) == 0, "queue not empty after acks: " + count(ch, q));
        ch.queueDelete(q);
        c.close();
    }

    static void s04(Ctx ctx) throws Exception {
        Connection c = ctx.connect();
        Channel ch = c.createChannel();
        String x = P + "04.fanout";
        ch.exchangeDelete(x);
        ch.exchangeDeclare(x, BuiltinExchangeType.FANOUT, false, true, null);
        String[] qs = new String[3];
        for (int i = 0; i < 3; i++) {
            qs[i] = freshQueue(ch, P + "04.q" + i);
            ch.queueBind(qs[i], x, "ignored" + i);
        }
        ch.basicPublish(x, "any.key", null, b("fan"));
        Thread.sleep(100);
        for (String q : qs) {
            List<String> got = drain(ch, q);
            check(got.equals(List.of("fan")), q + " got " + got);
        }
        for (String q : qs) ch.queueDelete(q);
        ch.exchangeDelete(x);
        c.close();
    }

    static void s05(Ctx ctx) throws Exception {
        Connection c = ctx.connect();
        Channel ch = c.createChannel();
        String x = P + "05.topic";
        ch.exchangeDelete(x);
        ch.exchangeDeclare(x, BuiltinExchangeType.TOPIC, false, true, null);
        String[] patterns = {"a.*", "a.#", "#.z", "*.b.*"};
        String[] qs = new String[patterns.length];
        for (int i = 0; i < patterns.length; i++) {
            qs[i] = freshQueue(ch, P + "05.q" + i);
            ch.queueBind(qs[i], x, patterns[i]);
        }
        String[] keys = {"a.b", "a.b.c", "x.y.z", "a", "q.b.r", "a.b.z", "b", "a.z", "z", "x.b.y.z"};
        for (String k : keys) ch.basicPublish(x, k, null, b(k));
        Map<String, List<String>> want = new LinkedHashMap<>();
        want.put("a.*", List.of("a.b", "a.z"));
        want.put("a.#", List.of("a.b", "a.b.c", "a", "a.b.z", "a.z"));
        want.put("#.z", List.of("x.y.z", "a.b.z", "a.z", "z", "x.b.y.z"));
        want.put("*.b.*", List.of("a.b.c", "q.b.r", "a.b.z"));
        Thread.sleep(100);
        for (int i = 0; i < patterns.length; i++) {
            List<String> got = drain(ch, qs[i]);
            check(got.equals(want.get(patterns[i])), "binding " + patterns[i] + " got " + got + " want " + want.get(patterns[i]));
        }
        for (String q : qs) ch.queueDelete(q);
        ch.exchangeDelete(x);
        c.close();
    }

    static void s06(Ctx ctx) throws Exception {
        Connection c = ctx.connect();
        Channel ch = c.createChannel();
        String x = P + "06.headers";
        ch.exchangeDelete(x);
        ch.exchangeDeclare(x, BuiltinExchangeType.HEADERS, false, true, null);
        String qAll = freshQueue(ch, P + "06.all");
        String qAny = freshQueue(ch, P + "06.any");
        Map<String, Object> all = new HashMap<>();
        all.put("x-match", "all");
        all.put("color", "red");
        all.put("size", 5);
        ch.queueBind(qAll, x, "", all);
        Map<String, Object> any = new HashMap<>();
        any.put("x-match", "any");
        any.put("color", "red");
        any.put("size", 5);
        ch.queueBind(qAny, x, "", any);
        Object[][] msgs = {
                {"both", Map.of("color", "red", "size", 5)},
                {"both-extra", Map.of("color", "red", "size", 5, "shape", "round")},
                {"color-only", Map.of("color", "red")},
                {"size-only", Map.of("size", 5)},
                {"wrong-values", Map.of("color", "blue", "size", 6)},
                {"size-wrong-type", Map.of("size", "5")},
                {"none", Map.of("other", "x")},
        };
        for (Object[] m : msgs) {
            @SuppressWarnings("unchecked")
            Map<String, Object> h = (Map<String, Object>) m[1];
            ch.basicPublish(x, "", new AMQP.BasicProperties.Builder().headers(h).build(), b((String) m[0]));
        }
        ch.basicPublish(x, "", null, b("no-headers"));
        Thread.sleep(100);
        List<String> gotAll = drain(ch, qAll);
        List<String> gotAny = drain(ch, qAny);
        check(gotAll.equals(List.of("both", "both-extra")), "x-match=all got " + gotAll);
        check(gotAny.equals(List.of("both", "both-extra", "color-only", "size-only")), "x-match=any got " + gotAny);
        ch.queueDelete(qAll);
        ch.queueDelete(qAny);
        ch.exchangeDelete(x);
        c.close();
    }

    static void s07(Ctx ctx) throws Exception {
        Connection c = ctx.connect();
        Channel ch = c.createChannel();
        String q = freshQueue(ch, P + "07.q");
        ch.confirmSelect();
        ConcurrentSkipListSet<Long> outstanding = new ConcurrentSkipListSet<>();
        AtomicInteger acked = new AtomicInteger();
        AtomicInteger nacked = new AtomicInteger();
        CountDownLatch done = new CountDownLatch(1);
        final int N = 1000;
        ch.addConfirmListener(new ConfirmListener() {
            void settle(long tag, boolean multiple, AtomicInteger ctr) {
                if (multiple) {
                    NavigableSet<Long> head = outstanding.headSet(tag, true);
                    ctr.addAndGet(head.size());
                    head.clear();
                } else if (outstanding.remove(tag)) {
                    ctr.incrementAndGet();
                }
                if (acked.get() + nacked.get() >= N) done.countDown();
            }

            public void handleAck(long tag, boolean multiple) { settle(tag, multiple, acked); }

            public void handleNack(long tag, boolean multiple) { settle(tag, multiple, nacked); }
        });
        for (int i = 0; i < N; i++) {
            long seq = ch.getNextPublishSeqNo();
            check(seq == i + 1, "publish seq no " + seq);
            outstanding.add(seq);
            ch.basicPublish("", q, null, b("c" + i));
        }
        boolean ok = ch.waitForConfirms(15000);
        check(done.await(5, TimeUnit.SECONDS), "not all confirms seen: acked=" + acked.get() + " nacked=" + nacked.get());
        check(ok, "waitForConfirms reported a nack");
        check(acked.get() == N && nacked.get() == 0, "acked=" + acked.get() + " nacked=" + nacked.get());
        check(count(ch, q) == N, "queue holds " + count(ch, q) + " want " + N);
        ch.queueDelete(q);
        c.close();
    }

    static void s08(Ctx ctx) throws Exception {
        Connection c = ctx.connect();
        Channel ch = c.createChannel();
        String q = freshQueue(ch, P + "08.q");
        ch.txSelect();
        ch.basicPublish("", q, null, b("t1"));
        ch.basicPublish("", q, null, b("t2"));
        check(count(ch, q) == 0, "uncommitted messages visible: " + count(ch, q));
        ch.txCommit();
        check(count(ch, q) == 2, "after commit queue has " + count(ch, q) + " want 2");
        ch.basicPublish("", q, null, b("t3"));
        ch.txRollback();
        check(count(ch, q) == 2, "after rollback queue has " + count(ch, q) + " want 2");
        ch.txCommit(); // empty commit is fine
        check(count(ch, q) == 2, "after empty commit queue has " + count(ch, q) + " want 2");
        ch.queueDelete(q);
        c.close();
    }

    static void s09(Ctx ctx) throws Exception {
        Connection c = ctx.connect();
        Channel ch = c.createChannel();
        String q = freshQueue(ch, P + "09.q");
        ch.basicPublish("", q, null, b("bounce"));
        BlockingQueue<Object[]> got = new LinkedBlockingQueue<>();
        String tag = ch.basicConsume(q, false, new DefaultConsumer(ch) {
            @Override
            public void handleDelivery(String ct, Envelope env, AMQP.BasicProperties props, byte[] body) {
                got.add(new Object[]{env, body});
            }
        });
        Object[] d1 = got.poll(5, TimeUnit.SECONDS);
        check(d1 != null, "no first delivery");
        Envelope e1 = (Envelope) d1[0];
        check(!e1.isRedeliver(), "first delivery already redelivered");
        check(s((byte[]) d1[1]).equals("bounce"), "first body");
        ch.basicReject(e1.getDeliveryTag(), true);
        Object[] d2 = got.poll(5, TimeUnit.SECONDS);
        check(d2 != null, "no redelivery after reject");
        Envelope e2 = (Envelope) d2[0];
        check(e2.isRedeliver(), "redelivered flag not set after reject");
        check(s((byte[]) d2[1]).equals("bounce"), "second body");
        check(e2.getDeliveryTag() > e1.getDeliveryTag(), "delivery tag did not increase");
        ch.basicNack(e2.getDeliveryTag(), false, true);
        Object[] d3 = got.poll(5, TimeUnit.SECONDS);
        check(d3 != null, "no redelivery after nack");
        Envelope e3 = (Envelope) d3[0];
        check(e3.isRedeliver(), "redelivered flag not set after nack");
        check(s((byte[]) d3[1]).equals("bounce"), "third body");
        ch.basicAck(e3.getDeliveryTag(), false);
        ch.basicCancel(tag);
        Thread.sleep(100);
        check(got.isEmpty(), "unexpected extra delivery");
        check(count(ch, q) == 0, "queue not empty after ack");
        ch.queueDelete(q);
        c.close();
    }

    static void s10(Ctx ctx) throws Exception {
        Connection c = ctx.connect();
        Channel ch = c.createChannel();
        String x = P + "10.direct";
        ch.exchangeDelete(x);
        ch.exchangeDeclare(x, BuiltinExchangeType.DIRECT, false, true, null);
        String q = freshQueue(ch, P + "10.q");
        ch.queueBind(q, x, "bound"); // keep the exchange alive, route nothing for our key
        BlockingQueue<Object[]> returns = new LinkedBlockingQueue<>();
        ch.addReturnListener((code, text, exch, rk, props, body) -> returns.add(new Object[]{code, text, exch, rk, props, body}));
        AMQP.BasicProperties props = new AMQP.BasicProperties.Builder().correlationId("ret-1").build();
        ch.basicPublish(x, "no.such.binding", true, props, b("unroutable body"));
        Object[] r = returns.poll(5, TimeUnit.SECONDS);
        check(r != null, "no basic.return");
        check((Integer) r[0] == 312, "reply code " + r[0]);
        check("NO_ROUTE".equals(r[1]), "reply text '" + r[1] + "'");
        check(x.equals(r[2]), "return exchange " + r[2]);
        check("no.such.binding".equals(r[3]), "return routing key " + r[3]);
        check("ret-1".equals(((AMQP.BasicProperties) r[4]).getCorrelationId()), "return lost properties");
        check(s((byte[]) r[5]).equals("unroutable body"), "return body mismatch");
        // also via the default exchange to a queue that does not exist
        ch.basicPublish("", P + "10.nosuchqueue", true, null, b("b2"));
        Object[] r2 = returns.poll(5, TimeUnit.SECONDS);
        check(r2 != null && (Integer) r2[0] == 312, "no 312 return via default exchange");
        check(count(ch, q) == 0, "message leaked into bound queue");
        check(ch.isOpen(), "channel closed");
        ch.queueDelete(q);
        ch.exchangeDelete(x);
        c.close();
    }

    static void s11(Ctx ctx) throws Exception {
        Connection c = ctx.connect();
        Channel ch = c.createChannel();
        String missing = P + "11.missing";
        ch.queueDelete(missing);
        try {
            ch.queueDeclarePassive(missing);
            throw new Fail("passive declare of missing queue succeeded");
        } catch (IOException e) {
            Throwable cause = e.getCause();
            check(cause instanceof ShutdownSignalException, "unexpected exception " + e);
            ShutdownSignalException sse = (ShutdownSignalException) cause;
            check(!sse.isHardError(), "connection closed instead of channel");
            Method m = sse.getReason();
            check(m instanceof AMQP.Channel.Close, "reason is " + m);
            AMQP.Channel.Close cl = (AMQP.Channel.Close) m;
            check(cl.getReplyCode() == 404, "reply code " + cl.getReplyCode());
            String want = "NOT_FOUND - no queue '" + missing + "'";
            check(cl.getReplyText().startsWith("NOT_FOUND - no queue '"), "reply text '" + cl.getReplyText() + "'");
            check(cl.getReplyText().startsWith(want), "reply text '" + cl.getReplyText() + "'");
            check(cl.getClassId() == 50 && cl.getMethodId() == 10, "class/method " + cl.getClassId() + "/" + cl.getMethodId());
        }
        check(!ch.isOpen(), "channel still open after 404");
        check(c.isOpen(), "connection closed after channel error");
        Channel ch2 = c.createChannel();
        String q = freshQueue(ch2, P + "11.q");
        ch2.basicPublish("", q, null, b("after error"));
        GetResponse r = null;
        for (int i = 0; i < 50 && r == null; i++) {
            r = ch2.basicGet(q, true);
            if (r == null) Thread.sleep(20);
        }
        check(r != null && s(r.getBody()).equals("after error"), "new channel could not use queue");
        ch2.queueDelete(q);
        c.close();
    }

    static void s12(Ctx ctx) throws Exception {
        Connection c = ctx.connect();
        Channel ch = c.createChannel();
        String q = freshQueue(ch, P + "12.q");
        byte[] body = new byte[10 * 1024 * 1024];
        new Random(12345).nextBytes(body);
        ch.basicPublish("", q, null, body);
        GetResponse r = null;
        long end = System.currentTimeMillis() + 10000;
        while (r == null && System.currentTimeMillis() < end) {
            r = ch.basicGet(q, true);
            if (r == null) Thread.sleep(20);
        }
        check(r != null, "large message not received");
        check(r.getBody().length == body.length, "length " + r.getBody().length + " want " + body.length);
        check(Arrays.equals(r.getBody(), body), "body differs");
        // and via a consumer
        ch.basicPublish("", q, null, body);
        BlockingQueue<byte[]> got = new LinkedBlockingQueue<>();
        String tag = ch.basicConsume(q, true, new DefaultConsumer(ch) {
            @Override
            public void handleDelivery(String ct, Envelope env, AMQP.BasicProperties props, byte[] b) {
                got.add(b);
            }
        });
        byte[] g = got.poll(10, TimeUnit.SECONDS);
        check(g != null, "large message not consumed");
        check(Arrays.equals(g, body), "consumed body differs");
        ch.basicCancel(tag);
        ch.queueDelete(q);
        c.close();
    }

    static void s13(Ctx ctx) throws Exception {
        Connection c = ctx.connect();
        Channel server = c.createChannel();
        Channel client = c.createChannel();
        String sq = freshQueue(server, P + "13.rpc");
        BlockingQueue<String> seenReplyTo = new LinkedBlockingQueue<>();
        server.basicConsume(sq, true, new DefaultConsumer(server) {
            @Override
            public void handleDelivery(String ct, Envelope env, AMQP.BasicProperties props, byte[] body) throws IOException {
                seenReplyTo.add(String.valueOf(props.getReplyTo()));
                AMQP.BasicProperties rp = new AMQP.BasicProperties.Builder().correlationId(props.getCorrelationId()).build();
                getChannel().basicPublish("", props.getReplyTo(), rp, b("reply:" + s(body)));
            }
        });
        BlockingQueue<Object[]> replies = new LinkedBlockingQueue<>();
        client.basicConsume("amq.rabbitmq.reply-to", true, new DefaultConsumer(client) {
            @Override
            public void handleDelivery(String ct, Envelope env, AMQP.BasicProperties props, byte[] body) {
                replies.add(new Object[]{props, body});
            }
        });
        for (int i = 0; i < 3; i++) {
            String corr = "corr-" + i;
            AMQP.BasicProperties props = new AMQP.BasicProperties.Builder()
                    .replyTo("amq.rabbitmq.reply-to").correlationId(corr).build();
            client.basicPublish("", sq, props, b("req" + i));
            Object[] r = replies.poll(5, TimeUnit.SECONDS);
            check(r != null, "no reply for request " + i);
            check(corr.equals(((AMQP.BasicProperties) r[0]).getCorrelationId()), "correlation id " + ((AMQP.BasicProperties) r[0]).getCorrelationId());
            check(s((byte[]) r[1]).equals("reply:req" + i), "reply body " + s((byte[]) r[1]));
            String rt = seenReplyTo.poll(1, TimeUnit.SECONDS);
            check(rt != null && rt.startsWith("amq.rabbitmq.reply-to."), "responder saw reply_to " + rt);
        }
        server.queueDelete(sq);
        c.close();
    }

    static void s14(Ctx ctx) throws Exception {
        Connection c = ctx.connect();
        Channel ch = c.createChannel();
        String q = freshQueue(ch, P + "14.q");
        for (int i = 0; i < 20; i++) ch.basicPublish("", q, null, b("p" + i));
        // make sure all 20 are enqueued before consuming
        long end = System.currentTimeMillis() + 5000;
        while (count(ch, q) < 20 && System.currentTimeMillis() < end) Thread.sleep(20);
        check(count(ch, q) == 20, "queue has " + count(ch, q) + " want 20");
        ch.basicQos(5);
        BlockingQueue<Envelope> got = new LinkedBlockingQueue<>();
        List<String> bodies = new CopyOnWriteArrayList<>();
        String tag = ch.basicConsume(q, false, new DefaultConsumer(ch) {
            @Override
            public void handleDelivery(String ct, Envelope env, AMQP.BasicProperties props, byte[] body) {
                bodies.add(s(body));
                got.add(env);
            }
        });
        List<Envelope> first = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            Envelope e = got.poll(5, TimeUnit.SECONDS);
            check(e != null, "only " + i + " of first 5 delivered");
            first.add(e);
        }
        Thread.sleep(500);
        check(got.isEmpty(), "more than 5 unacked deliveries: " + (5 + got.size()));
        ch.basicAck(first.get(4).getDeliveryTag(), true);
        List<Envelope> second = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            Envelope e = got.poll(5, TimeUnit.SECONDS);
            check(e != null, "only " + i + " of second 5 delivered");
            second.add(e);
        }
        Thread.sleep(500);
        check(got.isEmpty(), "more than 5 in second batch: " + (5 + got.size()));
        List<String> want = new ArrayList<>();
        for (int i = 0; i < 10; i++) want.add("p" + i);
        check(bodies.equals(want), "order " + bodies);
        ch.basicCancel(tag);
        ch.queueDelete(q);
        c.close();
    }

    /** Map a header value to a comparable representation that includes the Java type. */
    static Object norm(Object v) {
        if (v == null) return "null";
        if (v instanceof LongString) return "str:" + v.toString();
        if (v instanceof String) return "str:" + v;
        if (v instanceof byte[]) return "bytes:" + Arrays.toString((byte[]) v);
        if (v instanceof Map) {
            TreeMap<String, Object> m = new TreeMap<>();
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) m.put(e.getKey().toString(), norm(e.getValue()));
            return m;
        }
        if (v instanceof List) {
            List<Object> l = new ArrayList<>();
            for (Object o : (List<?>) v) l.add(norm(o));
            return l;
        }
        if (v instanceof Object[]) return norm(Arrays.asList((Object[]) v));
        if (v instanceof BigDecimal) return "decimal:" + ((BigDecimal) v).unscaledValue() + "e-" + ((BigDecimal) v).scale();
        if (v instanceof Date) return "date:" + ((Date) v).getTime();
        return v.getClass().getSimpleName() + ":" + v;
    }

    static void s15(Ctx ctx) throws Exception {
        Connection c = ctx.connect();
        Channel ch = c.createChannel();
        String q = freshQueue(ch, P + "15.q");
        Map<String, Object> nested = new HashMap<>();
        nested.put("inner-str", "deep");
        nested.put("inner-int", 7);
        nested.put("inner-table", Map.of("k", "v"));
        List<Object> array = new ArrayList<>(Arrays.asList("a", 1, true, 2.5d, null, Map.of("x", 1L), List.of("n")));
        Map<String, Object> h = new LinkedHashMap<>();
        h.put("string", "hello \u00e9\u4e16");
        h.put("longstring", com.rabbitmq.client.impl.LongStringHelper.asLongString("as LongString"));
        h.put("empty-string", "");
        h.put("byte", (byte) -5);
        h.put("byte-max", Byte.MAX_VALUE);
        h.put("short", (short) -12345);
        h.put("short-min", Short.MIN_VALUE);
        h.put("int", -123456789);
        h.put("int-max", Integer.MAX_VALUE);
        h.put("long", -1234567890123456789L);
        h.put("long-max", Long.MAX_VALUE);
        h.put("bool-true", true);
        h.put("bool-false", false);
        h.put("float", 3.25f);
        h.put("double", -2.718281828459045d);
        h.put("decimal", new BigDecimal("12345.678"));
        h.put("decimal-neg", new BigDecimal("-0.5"));
        h.put("timestamp", new Date(1700000000000L));
        h.put("table", nested);
        h.put("empty-table", new HashMap<String, Object>());
        h.put("array", array);
        h.put("empty-array", new ArrayList<Object>());
        h.put("void", null);
        h.put("bytes", new byte[]{0, 1, 2, (byte) 0xff, (byte) 0x80, 127});
        h.put("empty-bytes", new byte[0]);
        Date ts = new Date(1700000001000L); // whole seconds: AMQP timestamps have 1 s resolution
        AMQP.BasicProperties props = new AMQP.BasicProperties.Builder()
                .contentType("application/x-interop")
                .contentEncoding("identity")
                .headers(h)
                .deliveryMode(2)
                .priority(7)
                .correlationId("corr-15")
                .replyTo("interop.java.15.reply")
                .expiration("600000")
                .messageId("msg-15")
                .timestamp(ts)
                .type("interop.type")
                .userId("guest")
                .appId("interop-java")
                .clusterId("cluster-15")
                .build();
        byte[] body = b("props body");
        ch.basicPublish("", q, props, body);
        GetResponse r = null;
        for (int i = 0; i < 100 && r == null; i++) {
            r = ch.basicGet(q, true);
            if (r == null) Thread.sleep(20);
        }
        check(r != null, "message not received");
        check(Arrays.equals(r.getBody(), body), "body differs");
        AMQP.BasicProperties p = r.getProps();
        check("application/x-interop".equals(p.getContentType()), "content_type " + p.getContentType());
        check("identity".equals(p.getContentEncoding()), "content_encoding " + p.getContentEncoding());
        check(Integer.valueOf(2).equals(p.getDeliveryMode()), "delivery_mode " + p.getDeliveryMode());
        check(Integer.valueOf(7).equals(p.getPriority()), "priority " + p.getPriority());
        check("corr-15".equals(p.getCorrelationId()), "correlation_id " + p.getCorrelationId());
        check("interop.java.15.reply".equals(p.getReplyTo()), "reply_to " + p.getReplyTo());
        check("600000".equals(p.getExpiration()), "expiration " + p.getExpiration());
        check("msg-15".equals(p.getMessageId()), "message_id " + p.getMessageId());
        check(ts.equals(p.getTimestamp()), "timestamp " + p.getTimestamp());
        check("interop.type".equals(p.getType()), "type " + p.getType());
        check("guest".equals(p.getUserId()), "user_id " + p.getUserId());
        check("interop-java".equals(p.getAppId()), "app_id " + p.getAppId());
        check("cluster-15".equals(p.getClusterId()), "cluster_id " + p.getClusterId());
        check(p.getHeaders() != null, "headers missing");
        Map<String, Object> gotH = p.getHeaders();
        check(gotH.keySet().equals(h.keySet()), "header keys " + new TreeSet<>(gotH.keySet()) + " want " + new TreeSet<>(h.keySet()));
        for (String k : h.keySet()) {
            Object want = norm(h.get(k));
            Object got = norm(gotH.get(k));
            check(want.equals(got), "header " + k + ": got " + got + " want " + want);
        }
        ch.queueDelete(q);
        c.close();
    }

    // 17: a non-guest user on its own vhost (interop/definitions.json creates them;
    // INTEROP_USER, INTEROP_PASS and INTEROP_VHOST name others, e.g. on a shared
    // reference), then the same user refused on "/" with 530 at connection.open.
    static String env(String key, String def) {
        String v = System.getenv(key);
        return v == null || v.isEmpty() ? def : v;
    }

    static final String USER = env("INTEROP_USER", "interop");

    /** url with the scenario user's credentials and the given vhost. */
    static String asUser(String vhost) throws Exception {
        java.net.URI u = new java.net.URI(url);
        String enc = java.nio.charset.StandardCharsets.UTF_8.name();
        String userInfo = java.net.URLEncoder.encode(USER, enc) + ":"
                + java.net.URLEncoder.encode(env("INTEROP_PASS", "interop-pw"), enc);
        return u.getScheme() + "://" + userInfo + "@" + u.getHost() + ":" + u.getPort() + "/"
                + java.net.URLEncoder.encode(vhost, enc);
    }

    static void s17(Ctx ctx) throws Exception {
        Connection c = ctx.connect(asUser(env("INTEROP_VHOST", "interop-vh")));
        Channel ch = c.createChannel();
        String q = freshQueue(ch, P + "17");
        ch.basicPublish("", q, null, b("own vhost"));
        BlockingQueue<String> got = new LinkedBlockingQueue<>();
        ch.basicConsume(q, false, new DefaultConsumer(ch) {
            @Override
            public void handleDelivery(String tag, Envelope env, AMQP.BasicProperties props, byte[] body) throws IOException {
                got.add(s(body));
                getChannel().basicAck(env.getDeliveryTag(), false);
            }
        });
        String body = got.poll(10, TimeUnit.SECONDS);
        check("own vhost".equals(body), "got " + body);
        c.close();
        // The Java client throws an IOException whose cause is the server's connection.close.
        String expected = "NOT_ALLOWED - access to vhost '/' refused for user '" + USER + "'";
        try {
            ctx.connect(asUser("/"));
            throw new Fail("connection.open on / accepted");
        } catch (IOException e) {
            check(e.getCause() instanceof ShutdownSignalException, "refused with " + e);
            Object reason = ((ShutdownSignalException) e.getCause()).getReason();
            check(reason instanceof AMQP.Connection.Close, "refused with " + reason);
            AMQP.Connection.Close close = (AMQP.Connection.Close) reason;
            check(close.getReplyCode() == 530 && expected.equals(close.getReplyText()),
                    "refused with " + close.getReplyCode() + " " + close.getReplyText());
        }
    }

    // ---------------------------------------------------------------- runner

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: Interop AMQP_URL");
            System.exit(2);
        }
        url = args[0];
        Scenario[] all = {Interop::s01, Interop::s02, Interop::s03, Interop::s04, Interop::s05,
                Interop::s06, Interop::s07, Interop::s08, Interop::s09, Interop::s10,
                Interop::s11, Interop::s12, Interop::s13, Interop::s14, Interop::s15, Interop::s17};
        String[] numbers = {"01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13", "14", "15", "17"};
        String only = System.getenv("ONLY"); // optional: comma-separated scenario numbers
        for (int i = 0; i < all.length; i++) {
            String nn = numbers[i];
            if (only != null && !only.isEmpty() && !Arrays.asList(only.split(",")).contains(nn)) continue;
            String result = runOne(all[i]);
            System.out.println(nn + " " + result);
            System.out.flush();
        }
        System.exit(0);
    }

    static String runOne(Scenario sc) {
        Ctx ctx = new Ctx();
        ExecutorService ex = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "scenario");
            t.setDaemon(true);
            return t;
        });
        Future<?> fut = ex.submit(() -> {
            sc.run(ctx);
            return null;
        });
        String result;
        try {
            fut.get(SCENARIO_TIMEOUT_S, TimeUnit.SECONDS);
            result = "pass";
        } catch (TimeoutException e) {
            fut.cancel(true);
            result = "FAIL timeout after " + SCENARIO_TIMEOUT_S + " s";
            ctx.abortAll();
        } catch (ExecutionException e) {
            Throwable t = e.getCause();
            if (t instanceof Fail) {
                result = "FAIL " + t.getMessage();
            } else {
                t.printStackTrace();
                String m = t.toString();
                for (StackTraceElement el : t.getStackTrace()) {
                    if (el.getClassName().startsWith("Interop") && el.getMethodName().matches("s\\d\\d")) {
                        m += " at " + el.getMethodName() + ":" + el.getLineNumber();
                        break;
                    }
                }
                Throwable cause = t.getCause();
                if (cause instanceof ShutdownSignalException) m += " / " + ((ShutdownSignalException) cause).getReason();
                result = "FAIL " + m;
            }
        } catch (InterruptedException e) {
            result = "FAIL interrupted";
        }
        ctx.closeAll();
        ex.shutdownNow();
        return result.replace('\n', ' ').replace('\r', ' ');
    }
}
