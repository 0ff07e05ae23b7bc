'use strict';
// warren interop scenarios 01..15, 17, 18 (http.js: the management HTTP API) and 19 on
// (19: streams.js; 19r only when named) with amqplib (promise API).
// stdout: exactly one line per scenario; everything else goes to stderr.

const amqp = require('amqplib');
const crypto = require('node:crypto');
const assert = require('node:assert/strict');

const URL_ARG = process.argv[2] || 'amqp://guest:guest@127.0.0.1:5682/%2f';
const ONLY = process.argv.slice(3); // optional scenario numbers to run
const TIMEOUT_MS = 20000;
const P = 'interop.node.';
const RUN_ID = `${process.pid}.${Date.now() % 100000}`;

const log = (...a) => console.error('[node]', ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Every connection opened by the current scenario, so a timeout can tear them down.
let openConns = [];

function withQuery(url, extra) {
  const u = new URL(url);
  for (const [k, v] of Object.entries(extra)) u.searchParams.set(k, String(v));
  return u.toString();
}

async function connect(extra = {}) {
  const conn = await amqp.connect(withQuery(URL_ARG, extra));
  conn.on('error', (e) => log('connection error:', e.message));
  openConns.push(conn);
  return conn;
}

async function channel(conn, confirm = false) {
  const ch = confirm ? await conn.createConfirmChannel() : await conn.createChannel();
  ch.on('error', (e) => log('channel error:', e.message));
  return ch;
}

async function closeAll() {
  const conns = openConns;
  openConns = [];
  for (const c of conns) {
    try {
      await Promise.race([c.close(), sleep(2000)]);
    } catch (_e) {
      /* already closed */
    }
    try {
      c.connection.stream.destroy();
    } catch (_e) {
      /* ignore */
    }
  }
}

// Resolves when pred() becomes true, polling; rejects after ms.
async function waitFor(pred, ms, what) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
    await sleep(10);
  }
}

// Drain a queue with basic.get, returning bodies as strings.
async function drain(ch, q) {
  const out = [];
  for (let i = 0; i < 1000; i++) {
    const m = await ch.get(q, { noAck: true });
    if (m === false) break;
    out.push(m.content.toString());
  }
  return out.sort();
}

const scenarios = {};

// 01 connect
scenarios['01'] = async () => {
  const conn = await connect({ heartbeat: 10, frameMax: 65536 });
  const c = conn.connection;
  assert.equal(c.heartbeat, 10, `negotiated heartbeat ${c.heartbeat}`);
  assert.equal(c.frameMax, 65536, `negotiated frameMax ${c.frameMax}`);
  log('01 server properties:', JSON.stringify(c.serverProperties));
  const ch = await channel(conn);
  await ch.close();
  await conn.close();
};

// 02 declare / publish / get
scenarios['02'] = async () => {
  const conn = await connect();
  const ch = await channel(conn);
  const q = `${P}02.q`;
  const ok = await ch.assertQueue(q, { exclusive: true });
  assert.equal(ok.queue, q);
  assert.equal(ok.messageCount, 0);
  ch.sendToQueue(q, Buffer.from('hello 02'));
  ch.sendToQueue(q, Buffer.from('second 02'));
  const m = await ch.get(q, { noAck: false });
  assert.ok(m, 'first get returned empty');
  assert.equal(m.content.toString(), 'hello 02');
  assert.equal(m.fields.routingKey, q);
  assert.equal(m.fields.exchange, '');
  assert.equal(m.fields.redelivered, false);
  assert.equal(m.fields.messageCount, 1, `message_count ${m.fields.messageCount}`);
  ch.ack(m);
  const m2 = await ch.get(q, { noAck: true });
  assert.ok(m2, 'second get returned empty');
  assert.equal(m2.content.toString(), 'second 02');
  assert.equal(m2.fields.messageCount, 0);
  const m3 = await ch.get(q);
  assert.equal(m3, false, 'expected get-empty');
  const del = await ch.deleteQueue(q);
  assert.equal(del.messageCount, 0);
  await conn.close();
};

// 03 consume with manual ack
scenarios['03'] = async () => {
  const conn = await connect();
  const ch = await channel(conn);
  const q = `${P}03.q`;
  await ch.assertQueue(q, { exclusive: true });
  for (let i = 0; i < 10; i++) ch.sendToQueue(q, Buffer.from(`m${i}`));
  const got = [];
  const { consumerTag } = await ch.consume(
    q,
    (msg) => {
      if (msg === null) return;
      got.push(msg.content.toString());
      ch.ack(msg);
    },
    { noAck: false },
  );
  await waitFor(() => got.length >= 10, 10000, '10 deliveries');
  await sleep(100);
  assert.deepEqual(
    got,
    Array.from({ length: 10 }, (_, i) => `m${i}`),
  );
  await ch.cancel(consumerTag);
  const chk = await ch.checkQueue(q);
  assert.equal(chk.messageCount, 0, `passive declare shows ${chk.messageCount}`);
  assert.equal(chk.consumerCount, 0);
  await conn.close();
};

// 04 fanout to three queues
scenarios['04'] = async () => {
  const conn = await connect();
  const ch = await channel(conn, true);
  const ex = `${P}04.fanout`;
  await ch.assertExchange(ex, 'fanout', { durable: false, autoDelete: false });
  const qs = [1, 2, 3].map((i) => `${P}04.q${i}`);
  for (const q of qs) {
    await ch.assertQueue(q, { exclusive: true });
    await ch.bindQueue(q, ex, 'ignored');
  }
  ch.publish(ex, 'whatever', Buffer.from('fan 04'));
  await ch.waitForConfirms();
  for (const q of qs) {
    const m = await ch.get(q, { noAck: true });
    assert.ok(m, `queue ${q} empty`);
    assert.equal(m.content.toString(), 'fan 04');
    assert.equal(m.fields.exchange, ex);
    assert.equal(m.fields.routingKey, 'whatever');
    assert.equal(await ch.get(q), false, `queue ${q} has more than one`);
  }
  await ch.deleteExchange(ex);
  await conn.close();
};

// 05 topic routing
scenarios['05'] = async () => {
  const conn = await connect();
  const ch = await channel(conn, true);
  const ex = `${P}05.topic`;
  await ch.assertExchange(ex, 'topic', { durable: false });
  const bindings = { q1: 'a.*', q2: 'a.#', q3: '#.z', q4: '*.b.*' };
  for (const [name, pat] of Object.entries(bindings)) {
    await ch.assertQueue(`${P}05.${name}`, { exclusive: true });
    await ch.bindQueue(`${P}05.${name}`, ex, pat);
  }
  const keys = ['a.b', 'a.b.c', 'x.y.z', 'a', 'q.b.r', 'z', 'a.z', 'b.a', 'a.b.z'];
  for (const k of keys) ch.publish(ex, k, Buffer.from(k));
  await ch.waitForConfirms();
  const expected = {
    q1: ['a.b', 'a.z'],
    q2: ['a', 'a.b', 'a.b.c', 'a.b.z', 'a.z'],
    q3: ['a.b.z', 'a.z', 'x.y.z', 'z'],
    q4: ['a.b.c', 'a.b.z', 'q.b.r'],
  };
  for (const name of Object.keys(bindings)) {
    const got = await drain(ch, `${P}05.${name}`);
    assert.deepEqual(got, expected[name].slice().sort(), `${name} (${bindings[name]}) got ${got}`);
  }
  await ch.deleteExchange(ex);
  await conn.close();
};

// 06 headers routing
scenarios['06'] = async () => {
  const conn = await connect();
  const ch = await channel(conn, true);
  const ex = `${P}06.headers`;
  await ch.assertExchange(ex, 'headers', { durable: false });
  const qAll = `${P}06.all`;
  const qAny = `${P}06.any`;
  const qAllEmpty = `${P}06.allempty`;
  await ch.assertQueue(qAll, { exclusive: true });
  await ch.assertQueue(qAny, { exclusive: true });
  await ch.assertQueue(qAllEmpty, { exclusive: true });
  await ch.bindQueue(qAll, ex, '', { 'x-match': 'all', format: 'pdf', type: 'report' });
  await ch.bindQueue(qAny, ex, '', { 'x-match': 'any', format: 'pdf', type: 'report' });
  // x-match all with no other keys matches every message
  await ch.bindQueue(qAllEmpty, ex, '', { 'x-match': 'all' });
  const msgs = {
    m1: { format: 'pdf', type: 'report' },
    m2: { format: 'pdf', type: 'log' },
    m3: { format: 'zip', type: 'log' },
    m4: { format: 'pdf' },
    m5: { format: 'pdf', type: 'report', extra: 1 },
    m6: undefined,
    m7: { type: 'report' },
  };
  for (const [body, headers] of Object.entries(msgs)) {
    ch.publish(ex, 'rk', Buffer.from(body), headers ? { headers } : {});
  }
  await ch.waitForConfirms();
  assert.deepEqual(await drain(ch, qAll), ['m1', 'm5'], 'x-match all');
  assert.deepEqual(await drain(ch, qAny), ['m1', 'm2', 'm4', 'm5', 'm7'], 'x-match any');
  assert.deepEqual(await drain(ch, qAllEmpty), ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7'], 'x-match all (no keys)');
  await ch.deleteExchange(ex);
  await conn.close();
};

// 07 publisher confirms
scenarios['07'] = async () => {
  const conn = await connect();
  const ch = await channel(conn, true);
  const q = `${P}07.q`;
  await ch.assertQueue(q, { exclusive: true });
  let acks = 0;
  let nacks = 0;
  let acked = 0; // via callbacks
  let multiples = 0;
  ch.on('ack', (f) => {
    acks++;
    if (f.multiple) multiples++;
  });
  ch.on('nack', () => nacks++);
  const N = 1000;
  for (let i = 0; i < N; i++) {
    ch.sendToQueue(q, Buffer.from(`c${i}`), {}, (err) => {
      if (err) nacks++;
      else acked++;
    });
  }
  await ch.waitForConfirms();
  assert.equal(nacks, 0, `${nacks} nacks`);
  assert.equal(acked, N, `${acked} of ${N} confirmed`);
  log(`07 ${acks} basic.ack frames (${multiples} with multiple=true) for ${N} messages`);
  const chk = await ch.checkQueue(q);
  assert.equal(chk.messageCount, N);
  await conn.close();
};

// 08 transactions
// amqplib has no public tx API; it does expose Channel#rpc (used by all of its own
// API methods) and ships the tx method definitions in lib/defs.js, so the real
// tx.select/commit/rollback frames are sent through the library's own machinery.
const path = require('node:path');
const defs = require(path.join(path.dirname(require.resolve('amqplib')), 'lib', 'defs.js'));
scenarios['08'] = async () => {
  const conn = await connect();
  const ch = await channel(conn);
  const obs = await channel(conn); // non-transactional observer
  const q = `${P}08.q`;
  await ch.assertQueue(q, { exclusive: true });
  const count = async () => (await obs.checkQueue(q)).messageCount;
  await ch.rpc(defs.TxSelect, {}, defs.TxSelectOk);
  ch.sendToQueue(q, Buffer.from('t1'));
  ch.sendToQueue(q, Buffer.from('t2'));
  assert.equal(await count(), 0, 'messages visible before commit');
  await ch.rpc(defs.TxCommit, {}, defs.TxCommitOk);
  assert.equal(await count(), 2, 'after commit');
  ch.sendToQueue(q, Buffer.from('t3'));
  await ch.rpc(defs.TxRollback, {}, defs.TxRollbackOk);
  assert.equal(await count(), 2, 'after rollback');
  assert.deepEqual(await drain(obs, q), ['t1', 't2']);
  await conn.close();
};

// 09 reject / nack with requeue
scenarios['09'] = async () => {
  const conn = await connect();
  const ch = await channel(conn);
  const q = `${P}09.q`;
  await ch.assertQueue(q, { exclusive: true });
  ch.sendToQueue(q, Buffer.from('requeue me'));
  const seen = [];
  await ch.consume(
    q,
    (msg) => {
      if (msg === null) return;
      seen.push({ body: msg.content.toString(), redelivered: msg.fields.redelivered });
      if (seen.length === 1) ch.reject(msg, true);
      else if (seen.length === 2) ch.nack(msg, false, true);
      else ch.ack(msg);
    },
    { noAck: false },
  );
  await waitFor(() => seen.length >= 3, 10000, '3 deliveries');
  await sleep(300);
  assert.equal(seen.length, 3, `${seen.length} deliveries`);
  assert.deepEqual(seen, [
    { body: 'requeue me', redelivered: false },
    { body: 'requeue me', redelivered: true },
    { body: 'requeue me', redelivered: true },
  ]);
  const chk = await ch.checkQueue(q);
  assert.equal(chk.messageCount, 0);
  await conn.close();
};

// 10 mandatory unroutable
scenarios['10'] = async () => {
  const conn = await connect();
  const ch = await channel(conn);
  const ex = `${P}10.direct`;
  await ch.assertExchange(ex, 'direct', { durable: false });
  let returned = null;
  ch.on('return', (m) => {
    returned = m;
  });
  const body = Buffer.from('nobody wants me');
  ch.publish(ex, 'no.such.key', body, { mandatory: true, messageId: 'r10' });
  await waitFor(() => returned !== null, 10000, 'basic.return');
  assert.equal(returned.fields.replyCode, 312);
  assert.equal(returned.fields.replyText, 'NO_ROUTE');
  assert.equal(returned.fields.exchange, ex);
  assert.equal(returned.fields.routingKey, 'no.such.key');
  assert.ok(returned.content.equals(body), 'returned body differs');
  assert.equal(returned.properties.messageId, 'r10');
  await ch.deleteExchange(ex);
  await conn.close();
};

// 11 passive declare of a missing queue
scenarios['11'] = async () => {
  const conn = await connect();
  const ch = await channel(conn);
  let closed = false;
  ch.on('close', () => {
    closed = true;
  });
  const missing = `${P}11.missing.${RUN_ID}`;
  let err = null;
  try {
    await ch.checkQueue(missing);
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'passive declare of a missing queue succeeded');
  log('11 error:', err.message);
  assert.equal(err.code, 404, `code ${err.code}`);
  assert.ok(err.message.includes(`NOT_FOUND - no queue '${missing}'`), `message: ${err.message}`);
  await waitFor(() => closed, 5000, 'channel close');
  const ch2 = await channel(conn);
  const q = `${P}11.q`;
  await ch2.assertQueue(q, { exclusive: true });
  ch2.sendToQueue(q, Buffer.from('after 404'));
  const m = await ch2.get(q, { noAck: true });
  assert.ok(m && m.content.toString() === 'after 404', 'new channel could not use queue');
  await conn.close();
};

// 12 10 MiB message
scenarios['12'] = async () => {
  const conn = await connect();
  const ch = await channel(conn);
  const q = `${P}12.q`;
  await ch.assertQueue(q, { exclusive: true });
  const body = crypto.randomBytes(10 * 1024 * 1024);
  ch.sendToQueue(q, body);
  let m = false;
  for (let i = 0; i < 200 && m === false; i++) {
    m = await ch.get(q, { noAck: true });
    if (m === false) await sleep(50);
  }
  assert.ok(m, 'big message never arrived');
  assert.equal(m.content.length, body.length);
  assert.ok(m.content.equals(body), 'body differs');
  await conn.close();
};

// 13 RPC over direct reply-to
scenarios['13'] = async () => {
  const reqConn = await connect();
  const srvConn = await connect();
  const srvCh = await channel(srvConn);
  const reqCh = await channel(reqConn);
  const sq = `${P}13.rpc`;
  await srvCh.assertQueue(sq, { exclusive: true });
  let seenReplyTo = null;
  await srvCh.consume(
    sq,
    (msg) => {
      if (msg === null) return;
      seenReplyTo = msg.properties.replyTo;
      srvCh.publish('', msg.properties.replyTo, Buffer.from(`reply to ${msg.content.toString()}`), {
        correlationId: msg.properties.correlationId,
      });
      srvCh.ack(msg);
    },
    { noAck: false },
  );
  let reply = null;
  await reqCh.consume(
    'amq.rabbitmq.reply-to',
    (msg) => {
      if (msg !== null) reply = msg;
    },
    { noAck: true },
  );
  const corr = `corr-${RUN_ID}`;
  reqCh.sendToQueue(sq, Buffer.from('ping'), { replyTo: 'amq.rabbitmq.reply-to', correlationId: corr });
  await waitFor(() => reply !== null, 10000, 'rpc reply');
  log('13 responder saw reply_to =', seenReplyTo);
  assert.ok(seenReplyTo.startsWith('amq.rabbitmq.reply-to.'), `reply_to ${seenReplyTo}`);
  assert.equal(reply.properties.correlationId, corr);
  assert.equal(reply.content.toString(), 'reply to ping');
  await reqConn.close();
  await srvConn.close();
};

// 14 prefetch
scenarios['14'] = async () => {
  const conn = await connect();
  const ch = await channel(conn);
  const q = `${P}14.q`;
  await ch.assertQueue(q, { exclusive: true });
  await ch.prefetch(5);
  for (let i = 0; i < 20; i++) ch.sendToQueue(q, Buffer.from(`p${i}`));
  const got = [];
  await ch.consume(
    q,
    (msg) => {
      if (msg !== null) got.push(msg);
    },
    { noAck: false },
  );
  await waitFor(() => got.length >= 5, 10000, '5 deliveries');
  await sleep(500);
  assert.equal(got.length, 5, `${got.length} unacked deliveries with prefetch 5`);
  ch.ack(got[4], true);
  await waitFor(() => got.length >= 10, 10000, 'next 5 deliveries');
  await sleep(500);
  assert.equal(got.length, 10, `${got.length} deliveries after acking 5`);
  assert.deepEqual(
    got.map((m) => m.content.toString()),
    Array.from({ length: 10 }, (_, i) => `p${i}`),
  );
  await conn.close();
};

// 15 properties and headers round-trip
scenarios['15'] = async () => {
  const conn = await connect();
  const ch = await channel(conn);
  const q = `${P}15.q`;
  await ch.assertQueue(q, { exclusive: true });
  const headers = {
    str: 'hello ✓',
    empty: '',
    i8: { '!': 'int8', value: -100 },
    u8: { '!': 'uint8', value: 200 },
    i16: { '!': 'int16', value: -30000 },
    u16: { '!': 'uint16', value: 60000 },
    i32: { '!': 'int32', value: -2000000000 },
    u32: { '!': 'uint32', value: 4000000000 },
    i64: { '!': 'int64', value: -1234567890123 },
    boolT: true,
    boolF: false,
    flt: { '!': 'float', value: 1.5 },
    dbl: { '!': 'double', value: 3.141592653589793 },
    dec: { '!': 'decimal', value: { places: 2, digits: 12345 } },
    ts: { '!': 'timestamp', value: 1700000000 },
    table: { inner: 'x', n: 42, deeper: { z: true } },
    array: ['a', 1, true, null, { k: 'v' }, [1, 2]],
    nul: null,
    bytes: Buffer.from([0, 1, 2, 254, 255]),
  };
  const props = {
    contentType: 'application/octet-stream',
    contentEncoding: 'identity',
    headers,
    deliveryMode: 2,
    priority: 7,
    correlationId: 'corr-15',
    replyTo: 'reply.queue.15',
    expiration: '600000',
    messageId: 'msg-15',
    timestamp: 1700000001,
    type: 'interop.type',
    userId: 'guest',
    appId: 'interop.node',
    // clusterId: amqplib hard-codes it to undefined on publish
  };
  const body = Buffer.from('properties 15');
  ch.sendToQueue(q, body, props);
  const m = await ch.get(q, { noAck: true });
  assert.ok(m, 'message not found');
  assert.ok(m.content.equals(body));
  const p = m.properties;
  for (const k of Object.keys(props)) {
    if (k === 'headers') continue;
    assert.deepEqual(p[k], props[k], `property ${k}: ${JSON.stringify(p[k])}`);
  }
  assert.equal(p.clusterId, undefined);
  const expectedHeaders = {
    str: 'hello ✓',
    empty: '',
    i8: -100,
    u8: 200,
    i16: -30000,
    u16: 60000,
    i32: -2000000000,
    u32: 4000000000,
    i64: -1234567890123,
    boolT: true,
    boolF: false,
    flt: 1.5,
    dbl: 3.141592653589793,
    dec: { '!': 'decimal', value: { places: 2, digits: 12345 } },
    ts: { '!': 'timestamp', value: 1700000000 },
    table: { inner: 'x', n: 42, deeper: { z: true } },
    array: ['a', 1, true, null, { k: 'v' }, [1, 2]],
    nul: null,
    bytes: Buffer.from([0, 1, 2, 254, 255]),
  };
  const gotH = { ...p.headers };
  for (const k of Object.keys(gotH)) if (Buffer.isBuffer(gotH[k])) gotH[k] = Buffer.from(gotH[k]);
  assert.deepEqual(Object.keys(gotH).sort(), Object.keys(expectedHeaders).sort(), 'header keys');
  for (const k of Object.keys(expectedHeaders)) {
    assert.deepEqual(gotH[k], expectedHeaders[k], `header ${k}: ${JSON.stringify(gotH[k])}`);
  }
  await conn.close();
};

// tls: amqps, the server's certificate verified against the CA; PLAIN without a client
// certificate, then EXTERNAL with one (CN=guest). Needs WARREN_INTEROP_TLS_* (run.sh).
scenarios.tls = async () => {
  const fs = require('node:fs');
  const env = process.env;
  const ca = [fs.readFileSync(env.WARREN_INTEROP_TLS_CA)];
  const q = `${P}tls`;
  const plain = await amqp.connect(env.WARREN_INTEROP_TLS_URL, {
    ca,
    credentials: amqp.credentials.plain('guest', 'guest'),
  });
  openConns.push(plain);
  const ch = await channel(plain);
  await ch.assertQueue(q, { autoDelete: false });
  ch.sendToQueue(q, Buffer.from('over TLS'));
  await ch.close(); // after the publish on the same channel; a connection close could overtake it
  await plain.close();
  const external = await amqp.connect(env.WARREN_INTEROP_TLS_URL, {
    ca,
    cert: fs.readFileSync(env.WARREN_INTEROP_TLS_CERT),
    key: fs.readFileSync(env.WARREN_INTEROP_TLS_KEY),
    credentials: amqp.credentials.external(),
  });
  openConns.push(external);
  const ch2 = await channel(external);
  let m = false;
  for (let i = 0; i < 100 && m === false; i++) {
    m = await ch2.get(q, { noAck: true });
    if (m === false) await sleep(10);
  }
  assert.ok(m !== false, 'no message over EXTERNAL');
  assert.equal(m.content.toString(), 'over TLS');
  await ch2.deleteQueue(q);
  await external.close();
};

// 17 a non-guest user on its own vhost (interop/definitions.json creates them;
// INTEROP_USER, INTEROP_PASS and INTEROP_VHOST name others, e.g. on a shared reference),
// then the same user refused on "/" with 530 at connection.open.
const USER = process.env.INTEROP_USER || 'interop';
const PASSWORD = process.env.INTEROP_PASS || 'interop-pw';
const VHOST = process.env.INTEROP_VHOST || 'interop-vh';

function asUser(vhost) {
  const u = new URL(URL_ARG);
  u.username = encodeURIComponent(USER);
  u.password = encodeURIComponent(PASSWORD);
  u.pathname = `/${encodeURIComponent(vhost)}`;
  return u.toString();
}

scenarios['17'] = async () => {
  const q = `${P}17.${RUN_ID}`;
  const conn = await amqp.connect(asUser(VHOST));
  conn.on('error', (e) => log('connection error:', e.message));
  openConns.push(conn);
  const ch = await channel(conn);
  await ch.assertQueue(q, { exclusive: true });
  ch.sendToQueue(q, Buffer.from('own vhost'));
  const got = [];
  await ch.consume(q, (m) => {
    got.push(m.content.toString());
    ch.ack(m);
  });
  await waitFor(() => got.length > 0, 10000, 'a delivery');
  assert.deepEqual(got, ['own vhost']);
  await conn.close();
  // amqplib rejects connect() when connection.open is answered by connection.close, and
  // drops the close's code and text on this path: its message names the close only.
  let refused = null;
  try {
    const c = await amqp.connect(asUser('/'));
    openConns.push(c);
  } catch (e) {
    refused = e;
  }
  assert.ok(refused, 'connection.open on / accepted');
  assert.match(refused.message, /^Expected ConnectionOpenOk; got <ConnectionClose channel:0>/);
};

// 22 the event exchange (warren --event-exchange, RabbitMQ's rabbitmq_event_exchange): a
// queue bound to amq.rabbitmq.event with `queue.*` hears queue.created and queue.deleted
// of a queue declared and deleted, its name in the `name` header.
scenarios['22'] = async () => {
  const q = `${P}22.${RUN_ID}`;
  const conn = await connect();
  const check = await channel(conn);
  try {
    await check.checkExchange('amq.rabbitmq.event');
  } catch (e) {
    throw new Error(`no amq.rabbitmq.event (${e.message}): is the event exchange on?`);
  }
  const ch = await channel(conn);
  const { queue: events } = await ch.assertQueue('', { exclusive: true });
  await ch.bindQueue(events, 'amq.rabbitmq.event', 'queue.*');
  const got = [];
  await ch.consume(
    events,
    (m) => {
      const headers = m.properties.headers || {};
      // On a shared broker other queues come and go too: only ours count.
      if (String(headers.name) === q) {
        got.push([m.fields.routingKey, m.content.length, String(headers.vhost)]);
      }
    },
    { noAck: true },
  );
  const other = await channel(conn);
  await other.assertQueue(q);
  await other.deleteQueue(q);
  await waitFor(() => got.length >= 2, 10000, 'queue.created and queue.deleted');
  assert.deepEqual(got, [
    ['queue.created', 0, '/'],
    ['queue.deleted', 0, '/'],
  ]);
};

scenarios['18'] = require('./http.js')({
  api: (process.env.WARREN_INTEROP_HTTP_URL || '').replace(/\/+$/, ''),
  amqpUrl: URL_ARG,
  prefix: P,
  runId: RUN_ID,
  track: (c) => openConns.push(c),
});

// 20 the delayed-message exchange: x-delay 300 comes after an undelayed message
scenarios['20'] = async () => {
  const conn = await connect();
  const ch = await channel(conn);
  const x = `${P}20.x`;
  const q = `${P}20.q.${RUN_ID}`;
  await ch.assertExchange(x, 'x-delayed-message', { arguments: { 'x-delayed-type': 'direct' } });
  await ch.assertQueue(q, { exclusive: true });
  await ch.bindQueue(q, x, 'k');
  const got = [];
  await ch.consume(q, (m) => {
    got.push({ body: m.content.toString(), at: Date.now(), delay: (m.properties.headers || {})['x-delay'] });
  }, { noAck: true });
  const sent = Date.now();
  ch.publish(x, 'k', Buffer.from('later'), { headers: { 'x-delay': 300 } });
  ch.publish(x, 'k', Buffer.from('now'));
  await waitFor(() => got.length === 2, 10000, 'two deliveries');
  assert.deepEqual(got.map((g) => g.body), ['now', 'later']);
  assert.ok(got[0].at - sent < 300, `the undelayed one took ${got[0].at - sent} ms`);
  assert.ok(got[1].at - sent >= 300, `the delayed one came after ${got[1].at - sent} ms`);
  assert.equal(got[1].delay, -300, `x-delay on delivery ${got[1].delay}`);
  await ch.deleteExchange(x);
  await conn.close();
};

// 21 the plugin exchange types: x-consistent-hash (weights 1 and 3, 400 distinct keys,
// each queue gets some, the same key goes to the same queue again), x-random (every
// queue gets some), x-recent-history (5 published, a queue bound later gets all 5).
async function drainAll(ch, q) {
  const out = [];
  for (;;) {
    const m = await ch.get(q, { noAck: true });
    if (m === false) return out;
    out.push(m.content.toString());
  }
}

async function waitCount(ch, queues, n, what) {
  const end = Date.now() + 10000;
  for (;;) {
    let total = 0;
    for (const q of queues) total += (await ch.checkQueue(q)).messageCount;
    if (total === n) return;
    if (Date.now() > end) throw new Error(`${what}: ${total} of ${n} routed`);
    await sleep(10);
  }
}

scenarios['21'] = async () => {
  const conn = await connect();
  openConns.push(conn);
  const ch = await channel(conn);
  const x = `${P}21.hash.${RUN_ID}`;
  const [qa, qb] = [`${x}.a`, `${x}.b`];
  await ch.assertExchange(x, 'x-consistent-hash', { durable: false });
  await ch.assertQueue(qa, { exclusive: true });
  await ch.assertQueue(qb, { exclusive: true });
  await ch.bindQueue(qa, x, '1');
  await ch.bindQueue(qb, x, '3');
  const place = async () => {
    for (let i = 0; i < 400; i++) ch.publish(x, `key-${i}`, Buffer.from(String(i)));
    await waitCount(ch, [qa, qb], 400, 'consistent-hash');
    return { a: (await drainAll(ch, qa)).sort(), b: (await drainAll(ch, qb)).sort() };
  };
  const first = await place();
  assert.ok(first.a.length > 0 && first.b.length > 0, `a queue got nothing: ${first.a.length} / ${first.b.length}`);
  assert.ok(first.b.length > first.a.length, `weight 3 got ${first.b.length}, weight 1 got ${first.a.length}`);
  assert.deepEqual(await place(), first, 'the same keys went to other queues');
  await ch.deleteExchange(x);

  const xr = `${P}21.random.${RUN_ID}`;
  const [q1, q2] = [`${xr}.1`, `${xr}.2`];
  await ch.assertExchange(xr, 'x-random', { durable: false });
  for (const q of [q1, q2]) {
    await ch.assertQueue(q, { exclusive: true });
    await ch.bindQueue(q, xr, '');
  }
  for (let i = 0; i < 100; i++) ch.publish(xr, 'k', Buffer.from(String(i)));
  await waitCount(ch, [q1, q2], 100, 'random');
  const [n1, n2] = [(await ch.checkQueue(q1)).messageCount, (await ch.checkQueue(q2)).messageCount];
  assert.ok(n1 > 0 && n2 > 0, `random: ${n1} / ${n2}`);
  await ch.deleteExchange(xr);

  const xh = `${P}21.recent.${RUN_ID}`;
  const qh = `${xh}.q`;
  await ch.assertExchange(xh, 'x-recent-history', { durable: false });
  for (let i = 0; i < 5; i++) ch.publish(xh, 'k', Buffer.from(`h${i}`));
  await ch.assertQueue(qh, { exclusive: true });
  await ch.bindQueue(qh, xh, '');
  await waitCount(ch, [qh], 5, 'history');
  assert.deepEqual(await drainAll(ch, qh), ['h0', 'h1', 'h2', 'h3', 'h4']);
  await ch.deleteExchange(xh);
  await conn.close();
};

// 23 CC and BCC: one publish with CC [k2] and BCC [k3] reaches the queues bound with k1,
// k2 and k3 once each; BCC is removed, CC stays.
scenarios['23'] = async () => {
  const conn = await connect();
  const ch = await channel(conn, true);
  const x = `${P}23.${RUN_ID}`;
  const keys = ['k1', 'k2', 'k3'];
  await ch.assertExchange(x, 'direct', { autoDelete: true, durable: false });
  for (const k of keys) {
    const q = `${x}.${k}`;
    await ch.assertQueue(q, { exclusive: true });
    await ch.bindQueue(q, x, k);
  }
  ch.publish(x, 'k1', Buffer.from('cc'), { headers: { CC: ['k2'], BCC: ['k3'], n: 'one' } });
  await ch.waitForConfirms();
  for (const k of keys) {
    const q = `${x}.${k}`;
    const m = await ch.get(q, { noAck: true });
    assert.ok(m, `${q}: nothing`);
    assert.equal(m.content.toString(), 'cc');
    assert.equal(m.fields.routingKey, 'k1');
    assert.deepEqual(m.properties.headers, { CC: ['k2'], n: 'one' }, `${q} headers`);
    assert.equal(m.fields.messageCount, 0, `${q}: more than one copy`);
  }
  await conn.close();
};

// 24 a quorum queue with x-delivery-limit 2: x-delivery-count 0, 1, 2, then the third nack
// with requeue dead-letters it with reason delivery_limit.
scenarios['24'] = async () => {
  const conn = await connect();
  const ch = await channel(conn, true);
  const q = `${P}24.${RUN_ID}`;
  const dlx = `${q}.dlx`;
  const dlq = `${q}.dead`;
  await ch.assertExchange(dlx, 'fanout', { autoDelete: true, durable: false });
  await ch.assertQueue(dlq, { exclusive: true });
  await ch.bindQueue(dlq, dlx, '');
  await ch.assertQueue(q, {
    durable: true,
    arguments: { 'x-queue-type': 'quorum', 'x-delivery-limit': 2, 'x-dead-letter-exchange': dlx },
  });
  try {
    ch.sendToQueue(q, Buffer.from('poison'), { persistent: true });
    await ch.waitForConfirms();
    const getOne = async (queue, noAck) => {
      const end = Date.now() + 5000;
      for (;;) {
        const m = await ch.get(queue, { noAck });
        if (m || Date.now() > end) return m;
        await sleep(10);
      }
    };
    for (let n = 0; n < 3; n++) {
      const m = await getOne(q, false);
      assert.ok(m, `delivery ${n} missing`);
      assert.equal(Number(m.properties.headers['x-delivery-count']), n, `delivery ${n} count`);
      assert.equal(m.fields.redelivered, n > 0);
      ch.nack(m, false, true);
    }
    const dead = await getOne(dlq, true);
    assert.ok(dead, 'not dead-lettered');
    assert.equal(dead.content.toString(), 'poison');
    const h = dead.properties.headers;
    const death = h['x-death'][0];
    assert.equal(death.reason, 'delivery_limit');
    assert.equal(death.queue, q);
    assert.equal(Number(death.count), 1);
    assert.deepEqual(death['routing-keys'], [q]);
    assert.equal(h['x-first-death-reason'], 'delivery_limit');
    assert.ok(!('x-delivery-count' in h), 'x-delivery-count travelled');
    const ok = await ch.checkQueue(q);
    assert.equal(ok.messageCount, 0, 'still in the quorum queue');
  } finally {
    await ch.deleteQueue(q);
  }
  await conn.close();
};

// 25 localhost and [::1] (when the machine has IPv6) reach the broker; server_properties.
function hasIpv6() {
  const { execFileSync } = require('node:child_process');
  try {
    // A synchronous probe: can this machine bind ::1?
    execFileSync(process.execPath, ['-e',
      "const s=require('net').createServer();s.on('error',()=>process.exit(1));s.listen(0,'::1',()=>s.close())"],
    { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch (_e) {
    return false;
  }
}

scenarios['25'] = async () => {
  const hosts = ['localhost', ...(hasIpv6() ? ['[::1]'] : [])];
  for (const host of hosts) {
    const u = new URL(URL_ARG);
    u.hostname = host;
    let conn;
    try {
      conn = await amqp.connect(u.toString());
    } catch (e) {
      throw new Error(`no connection to ${host}:${u.port} (${e.message})`);
    }
    conn.on('error', (e) => log('connection error:', e.message));
    openConns.push(conn);
    const props = conn.connection.serverProperties;
    for (const key of ['product', 'version', 'platform']) {
      assert.ok(typeof props[key] === 'string' && props[key].length > 0,
        `${host}: server property ${key} is ${JSON.stringify(props[key])}`);
    }
    assert.equal(props.capabilities && props.capabilities.publisher_confirms, true,
      `${host}: capabilities ${JSON.stringify(props.capabilities)}`);
    const ch = await channel(conn);
    await ch.assertQueue('', { exclusive: true });
    await conn.close();
  }
};

const streams = require('./streams.js')({ connect, channel, waitFor, prefix: P });
scenarios['19'] = streams.scenario19;
// 19r reads 19's stream after interop/run.sh restarted the broker: run only when named.
scenarios['19r'] = streams.scenario19r;
const ON_REQUEST = ['19r'];

const NA = {};
if (!process.env.WARREN_INTEROP_TLS_URL) NA.tls = 'no amqps URL (WARREN_INTEROP_TLS_URL)';
if (!process.env.WARREN_INTEROP_HTTP_URL) NA['18'] = 'no management API URL (WARREN_INTEROP_HTTP_URL)';

function shortReason(e) {
  let s = e && e.message ? e.message : String(e);
  s = s.replace(/\s+/g, ' ').trim();
  return s.length > 200 ? `${s.slice(0, 200)}...` : s;
}

async function runOne(num) {
  if (NA[num]) return `${num} n/a ${NA[num]}`;
  let timer;
  try {
    await Promise.race([
      scenarios[num](),
      new Promise((_, rej) => {
        timer = setTimeout(() => rej(new Error(`timeout after ${TIMEOUT_MS / 1000}s`)), TIMEOUT_MS);
      }),
    ]);
    return `${num} pass`;
  } catch (e) {
    log(`${num} failed:`, e && e.stack ? e.stack : e);
    return `${num} FAIL ${shortReason(e)}`;
  } finally {
    clearTimeout(timer);
    await closeAll();
  }
}

process.on('unhandledRejection', (e) => log('unhandled rejection:', e && e.message ? e.message : e));
process.on('uncaughtException', (e) => log('uncaught exception:', e && e.stack ? e.stack : e));

(async () => {
  const nums = [...Object.keys(scenarios).filter((k) => /^\d\d$/.test(k)).sort(), 'tls'];
  for (const n of nums.concat(ON_REQUEST.filter((n) => ONLY.includes(n)))) {
    if (ONLY.length && !ONLY.includes(n)) continue;
    const line = await runOne(n);
    process.stdout.write(`${line}\n`);
  }
  process.exit(0);
})();