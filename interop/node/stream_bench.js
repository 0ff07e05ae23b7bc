'use strict';
// Stream throughput with amqplib, the same script against warren and RabbitMQ:
// append = publish N messages (100-byte bodies) to a stream with publisher confirms
// (a window of 5,000 unconfirmed), until the last confirm; replay = consume the whole
// stream from `first` (prefetch 1,000, acks every 500, multiple) until the last delivery.
// Runs each ROUNDS times on a fresh stream and prints msg/s for each run and the medians.
//
// Usage: node stream_bench.js AMQP_URL [N] [ROUNDS] [QUEUE_PREFIX]

const amqp = require('amqplib');

const url = process.argv[2] || 'amqp://guest:guest@127.0.0.1:5672/%2f';
const N = Number(process.argv[3] || 100000);
const ROUNDS = Number(process.argv[4] || 3);
const PREFIX = process.argv[5] || 'stream-bench.';
const WINDOW = 5000;
const body = Buffer.alloc(100, 'x');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function append(conn, q) {
  const ch = await conn.createConfirmChannel();
  let confirmed = 0;
  const start = process.hrtime.bigint();
  await new Promise((resolve, reject) => {
    let sent = 0;
    const pump = () => {
      while (sent < N && sent - confirmed < WINDOW) {
        sent += 1;
        ch.sendToQueue(q, body, {}, (err) => {
          if (err) return reject(new Error('nacked'));
          confirmed += 1;
          if (confirmed === N) resolve();
          else if (sent < N && sent - confirmed < WINDOW / 2) setImmediate(pump);
        });
      }
    };
    pump();
  });
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  await ch.close();
  return N / secs;
}

async function replay(conn, q) {
  const ch = await conn.createChannel();
  await ch.prefetch(1000);
  let got = 0;
  const start = process.hrtime.bigint();
  await new Promise((resolve) => {
    ch.consume(q, (m) => {
      got += 1;
      if (got % 500 === 0 || got === N) ch.ack(m, true);
      if (got === N) resolve();
    }, { arguments: { 'x-stream-offset': 'first' } });
  });
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  await ch.close();
  return N / secs;
}

(async () => {
  const conn = await amqp.connect(url);
  const appends = [];
  const replays = [];
  for (let r = 0; r < ROUNDS; r++) {
    const q = `${PREFIX}${process.pid}.${r}`;
    const ch = await conn.createChannel();
    await ch.assertQueue(q, { durable: true, arguments: { 'x-queue-type': 'stream' } });
    appends.push(await append(conn, q));
    replays.push(await replay(conn, q));
    await ch.deleteQueue(q);
    await ch.close();
    console.log(`run ${r + 1}: append ${appends[r].toFixed(0)} msg/s, replay ${replays[r].toFixed(0)} msg/s`);
  }
  console.log(`median: append ${median(appends).toFixed(0)} msg/s, replay ${median(replays).toFixed(0)} msg/s`);
  await conn.close();
})().catch((e) => { console.error(e); process.exit(1); });
