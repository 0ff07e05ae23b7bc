// One message as the UI shows it, wherever it comes from: a queue's "Get messages"
// (POST .../get), the browse panel (GET .../browse) and the tracer. renderMessage(msg)
// takes the API's message object (exchange, routing_key, redelivered, properties with
// headers, payload, payload_bytes, payload_encoding) and returns a detached element.
// It only reads what it is given: it never calls the API, and every value goes in as
// text (h() never uses innerHTML), so a hostile payload or header cannot inject markup.

import { h, fill, kv, fmt, href, decodePayload } from './dom.js';

/** AMQP basic properties in the order RabbitMQ's UI lists them, with their labels. */
const PROPERTIES = [
  ['content_type', 'Content type'],
  ['content_encoding', 'Content encoding'],
  ['delivery_mode', 'Delivery mode'],
  ['priority', 'Priority'],
  ['correlation_id', 'Correlation id'],
  ['reply_to', 'Reply to'],
  ['expiration', 'Expiration'],
  ['message_id', 'Message id'],
  ['timestamp', 'Timestamp'],
  ['type', 'Type'],
  ['user_id', 'User id'],
  ['app_id', 'App id'],
  ['cluster_id', 'Cluster id'],
];

/** Headers drawn elsewhere on the card (x-death as a history). */
const OWN_HEADERS = new Set(['x-death']);

/** AMQP timestamps are seconds since the epoch. */
function seconds(t) {
  const n = Number(t);
  if (!Number.isFinite(n)) return String(t);
  return `${new Date(n * 1000).toLocaleString()} (${n})`;
}

function propertyValue(key, v) {
  if (key === 'delivery_mode') return v === 2 ? '2 (persistent)' : `${v} (transient)`;
  if (key === 'timestamp') return seconds(v);
  if (key === 'expiration') return `${v} ms`;
  return typeof v === 'string' ? v : JSON.stringify(v);
}

/** A header's value as text: strings as they are, the rest as compact JSON. */
export function valueText(v) {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

function exchangeLink(name, vhost) {
  const label = name === '' ? '(AMQP default)' : name;
  if (vhost === undefined || name === undefined) return label ?? '';
  return h('a', { href: href('exchanges', vhost, name === '' ? 'amq.default' : name) }, label);
}

/** "3 times, in 2 queues": what x-death's counts add up to. */
function deathCount(deaths) {
  const n = deaths.reduce((sum, d) => sum + (Number(d.count) || 0), 0);
  const queues = new Set(deaths.map((d) => d.queue)).size;
  return `${fmt.num(n)} time${n === 1 ? '' : 's'}${queues > 1 ? `, in ${queues} queues` : ''}`;
}

/** x-death entries, oldest first (the broker keeps the most recent one first). */
function deathHistory(deaths, vhost) {
  const rows = [...deaths].reverse();
  return h('div', { class: 'table-wrap' }, h('table', { class: 'compact', dataset: { test: 'x-death' } },
    h('caption', { class: 'muted' }, 'Dead-letter history (x-death), oldest first'),
    h('thead', null, h('tr', null, ['#', 'Queue', 'Reason', 'Count', 'Exchange', 'Routing keys', 'Last time'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', null, rows.map((d, i) => h('tr', null,
      h('td', null, String(i + 1)),
      h('td', null, d.queue !== undefined && vhost !== undefined ? h('a', { href: href('queues', vhost, d.queue) }, d.queue) : valueText(d.queue ?? '')),
      h('td', null, valueText(d.reason ?? '')),
      h('td', { class: 'num' }, fmt.num(d.count)),
      h('td', null, exchangeLink(d.exchange, vhost)),
      h('td', null, Array.isArray(d['routing-keys']) ? d['routing-keys'].join(', ') : valueText(d['routing-keys'] ?? '')),
      h('td', null, d.time !== undefined ? seconds(d.time) : ''))))));
}

function headersTable(headers) {
  const keys = Object.keys(headers).filter((k) => !OWN_HEADERS.has(k));
  if (!keys.length) return null;
  return h('div', { class: 'table-wrap' }, h('table', { class: 'compact', dataset: { test: 'message-headers' } },
    h('caption', { class: 'muted' }, 'Headers'),
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Name'), h('th', { scope: 'col' }, 'Value'))),
    h('tbody', null, keys.sort().map((k) => h('tr', { dataset: { name: k } }, h('td', { class: 'mono' }, k), h('td', { class: 'mono' }, valueText(headers[k])))))));
}

/** The payload with a switch between its readable form (pretty JSON or text), hex
 *  and base64, and a note when the API truncated it. */
function payloadView(msg) {
  const decoded = decodePayload(msg.payload, msg.payload_encoding);
  const readable = decoded.json ?? decoded.text;
  const views = [
    ['auto', decoded.json !== null ? 'JSON' : 'Text', () => readable],
    ['hex', 'Hex', () => decoded.hex()],
    ['base64', 'Base64', () => decoded.base64()],
  ].filter(([k]) => k !== 'auto' || readable !== null);
  const pre = h('pre', { class: 'payload', dataset: { test: 'payload' } });
  const buttons = views.map(([key, label, show]) => h('button', {
    type: 'button', class: 'secondary', 'aria-pressed': 'false', dataset: { test: `payload-${key}` },
    onclick: (e) => select(e.currentTarget, show),
  }, label));
  function select(button, show) {
    buttons.forEach((b) => b.setAttribute('aria-pressed', String(b === button)));
    pre.dataset.view = button.dataset.test.slice('payload-'.length);
    fill(pre, show());
  }
  select(buttons[0], views[0][2]);
  const total = Number(msg.payload_bytes ?? decoded.bytes.length);
  const truncated = total > decoded.bytes.length;
  return h('div', { class: 'payload-box' },
    h('div', { class: 'row' },
      h('strong', null, 'Payload'),
      h('span', { class: 'muted' }, `${fmt.num(total)} bytes${decoded.json !== null ? ', JSON' : ''}${readable === null ? ', binary' : ''}`),
      h('span', { class: 'spacer' }),
      h('span', { class: 'switch', role: 'group', 'aria-label': 'Show payload as' }, buttons)),
    truncated && h('p', { class: 'warn', dataset: { test: 'payload-truncated' } },
      `Truncated: showing the first ${fmt.num(decoded.bytes.length)} of ${fmt.num(total)} bytes.`),
    pre);
}

/**
 * renderMessage(msg, { vhost, title }) -> element. `vhost` turns exchange and
 * queue names into links; `title` heads the card (e.g. "Message 1", "Position 42").
 */
export function renderMessage(msg, { vhost, title } = {}) {
  const props = msg.properties || {};
  const headers = props.headers && typeof props.headers === 'object' && !Array.isArray(props.headers) ? props.headers : {};
  const deaths = Array.isArray(headers['x-death']) ? headers['x-death'] : [];
  const deliveryCount = headers['x-delivery-count'];
  const summary = [
    msg.position !== undefined && ['Position', fmt.num(msg.position)],
    ['Exchange', exchangeLink(msg.exchange, vhost)],
    ['Routing key', msg.routing_key ?? ''],
    msg.routed_queues && ['Routed to', msg.routed_queues.length ? msg.routed_queues.join(', ') : 'unroutable'],
    msg.redelivered !== undefined && ['Redelivered', h('span', { class: msg.redelivered ? 'warn' : null, dataset: { test: 'redelivered' } }, fmt.bool(msg.redelivered))],
    deliveryCount !== undefined && ['Delivery count', h('span', { class: Number(deliveryCount) > 1 ? 'warn' : null, dataset: { test: 'delivery-count' } }, valueText(deliveryCount))],
    deaths.length && ['Dead-lettered', deathCount(deaths)],
    msg.message_count !== undefined && ['Left in queue', fmt.num(msg.message_count)],
  ];
  const properties = PROPERTIES.filter(([k]) => props[k] !== undefined && props[k] !== null).map(([k, label]) => [label, propertyValue(k, props[k])]);
  return h('article', { class: 'message panel', dataset: { test: 'message' } },
    title && h('h3', null, title),
    h('div', { class: 'cols' },
      kv(summary),
      properties.length ? kv(properties) : h('p', { class: 'muted' }, 'No properties.')),
    deaths.length ? deathHistory(deaths, vhost) : null,
    headersTable(headers),
    payloadView(msg));
}
