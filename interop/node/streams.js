'use strict';
// Scenario 19 (a stream queue over AMQP 0-9-1) and 19r (the same stream after the broker
// restarted on its data directory) with amqplib. 19 leaves `<prefix>19` with 110
// entries, bodies m0..m109; 19r reads it back from the first entry and from offset 50,
// then deletes it. Offsets are compared as the broker gives them: increasing (RabbitMQ's
// may skip numbers between chunks; warren's are consecutive). run.js registers both.

const assert = require('node:assert/strict');

const ENTRIES = 110;

module.exports = function streams({ connect, channel, waitFor, prefix }) {
  const q = `${prefix}19`;
  const bodies = (from, to) => Array.from({ length: to - from }, (_, i) => `m${from + i}`);

  // n deliveries from `offset` as [x-stream-offset, body], each acked.
  async function read(conn, offset, n) {
    const ch = await channel(conn);
    await ch.prefetch(Math.min(n, 100));
    const got = [];
    await ch.consume(q, (m) => {
      assert.equal(m.fields.redelivered, false, 'a stream delivery marked redelivered');
      const o = m.properties.headers['x-stream-offset'];
      assert.notEqual(o, undefined, 'no x-stream-offset header');
      got.push([Number(o), m.content.toString()]);
      ch.ack(m);
    }, { arguments: { 'x-stream-offset': offset } });
    await waitFor(() => got.length >= n, 10000, `${n} deliveries from ${offset}`);
    await ch.close();
    assert.equal(got.length, n, `from ${offset}: ${got.length} deliveries`);
    const offsets = got.map(([o]) => o);
    assert.ok(offsets.every((o, i) => i === 0 || o > offsets[i - 1]), `offsets not increasing: ${offsets.slice(0, 20)}`);
    return got;
  }
  const suffixFrom = (got, offset) => got.filter(([o]) => o >= offset);

  async function scenario19() {
    const conn = await connect();
    const ch = await channel(conn, true);
    await ch.deleteQueue(q); // a stream an earlier run left
    const ok = await ch.assertQueue(q, { durable: true, arguments: { 'x-queue-type': 'stream' } });
    assert.equal(ok.messageCount, 0);
    for (const b of bodies(0, 100)) ch.sendToQueue(q, Buffer.from(b));
    await ch.waitForConfirms();
    const first = await read(conn, 'first', 100);
    assert.deepEqual(first.map(([, b]) => b), bodies(0, 100));
    const tail = suffixFrom(first, 50);
    assert.deepEqual(await read(conn, 50, tail.length), tail);
    // next: only what is published after the consumer started.
    const nch = await channel(conn);
    await nch.prefetch(10);
    const got = [];
    await nch.consume(q, (m) => {
      got.push([Number(m.properties.headers['x-stream-offset']), m.content.toString()]);
      nch.ack(m);
    }, { arguments: { 'x-stream-offset': 'next' } });
    for (const b of bodies(100, ENTRIES)) ch.sendToQueue(q, Buffer.from(b));
    await ch.waitForConfirms();
    await waitFor(() => got.length >= ENTRIES - 100, 10000, 'deliveries from next');
    assert.deepEqual(got.map(([, b]) => b), bodies(100, ENTRIES));
    const last = first[first.length - 1][0];
    assert.ok(got.every(([o]) => o > last), `from next: offsets ${got.map(([o]) => o)}`);
    await conn.close();
  }

  async function scenario19r() {
    const conn = await connect();
    const first = await read(conn, 'first', ENTRIES);
    assert.deepEqual(first.map(([, b]) => b), bodies(0, ENTRIES));
    const tail = suffixFrom(first, 50);
    assert.deepEqual(await read(conn, 50, tail.length), tail);
    const ch = await channel(conn);
    await ch.deleteQueue(q);
    await conn.close();
  }

  return { scenario19, scenario19r };
};
