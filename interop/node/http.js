'use strict';
// Scenario 18: the management HTTP API as Node programs call it, with the built-in fetch
// (no management client is common in this ecosystem): declare a queue (PUT), see it
// listed with its arguments, publish through amqplib with confirms, watch the count
// reach 3, get the messages back through the API, find a connection by its
// client-provided name, close it with DELETE and X-Reason, and see amqplib's 'close'
// event carry 320 and that reason. run.js registers it.

const amqp = require('amqplib');
const assert = require('node:assert/strict');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

module.exports = function scenario18({ api, amqpUrl, prefix, runId, track }) {
  const auth = `Basic ${Buffer.from('guest:guest').toString('base64')}`;
  const call = async (method, path, body, headers = {}) => {
    const res = await fetch(api + path, {
      method,
      headers: { authorization: auth, 'content-type': 'application/json', ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(10000),
    });
    const text = await res.text();
    return { status: res.status, json: () => JSON.parse(text), text };
  };
  return async () => {
    const q = `${prefix}18.${runId}`;
    const qpath = `/api/queues/%2F/${encodeURIComponent(q)}`;
    let r = await call('PUT', qpath, { durable: false, auto_delete: false, arguments: { 'x-max-length': 10 } });
    assert.ok([201, 204].includes(r.status), `PUT queue: ${r.status} ${r.text}`);
    try {
      r = await call('GET', '/api/queues/%2F?columns=name,arguments');
      const listed = r.json().filter((x) => x.name === q);
      assert.deepEqual(listed.map((x) => x.arguments), [{ 'x-max-length': 10 }], 'listed with its arguments');

      const conn = await amqp.connect(amqpUrl);
      track(conn);
      const ch = await conn.createConfirmChannel();
      for (let i = 0; i < 3; i++) ch.sendToQueue(q, Buffer.from(`m${i}`));
      await ch.waitForConfirms();
      await conn.close();
      // The count is a statistic: RabbitMQ refreshes it every 5 s.
      let messages;
      for (const end = Date.now() + 15000; Date.now() < end; await sleep(250)) {
        messages = (await call('GET', qpath)).json().messages;
        if (messages === 3) break;
      }
      assert.equal(messages, 3, 'messages counted by the API');

      r = await call('POST', `${qpath}/get`, { count: 3, ackmode: 'ack_requeue_false', encoding: 'auto' });
      assert.equal(r.status, 200, `POST get: ${r.text}`);
      assert.deepEqual(r.json().map((m) => `${m.payload}/${m.payload_encoding}`), ['m0/string', 'm1/string', 'm2/string']);

      const name = `${prefix}18-victim.${runId}`;
      const victim = await amqp.connect(amqpUrl, { clientProperties: { connection_name: name } });
      track(victim);
      const closed = new Promise((resolve) => victim.on('close', resolve));
      victim.on('error', () => {});
      let found = null;
      for (const end = Date.now() + 15000; !found && Date.now() < end; await sleep(250)) {
        const c = (await call('GET', '/api/connections')).json()
          .find((x) => x.client_properties && x.client_properties.connection_name === name);
        if (c) found = c.name;
      }
      assert.ok(found, `connection ${name} not listed`);
      r = await call('DELETE', `/api/connections/${encodeURIComponent(found)}`, undefined, { 'X-Reason': 'closed by interop 18' });
      assert.equal(r.status, 204, `DELETE connection: ${r.text}`);
      const err = await Promise.race([closed, sleep(10000).then(() => 'no close')]);
      assert.ok(err && err.code === 320, `closed with ${err && err.message}`);
      assert.match(err.message, /CONNECTION_FORCED - closed by interop 18/);
    } finally {
      await call('DELETE', qpath);
    }
  };
};
