// The queue page (#/queues/:vhost/:name; the route is listed by pages/queues.js): details,
// live charts of its lengths and rates (accumulated here from each 5 s refresh into a
// fixed ring), the browse panel, get, consumers, bindings, publish, purge and delete.
// One GET /api/queues/{vhost}/{name} per refresh feeds everything but the bindings.

import * as api from '../api.js';
import { h, fill, fmt, kv, href, rate, act, toast } from '../dom.js';
import { table } from '../table.js';
import { lineChart } from '../chart.js';
import { featureTags } from '../features.js';
import { queueBindings } from '../bindings.js';
import { publishPanel } from '../publish.js';
import { browsePanel } from '../browse.js';
import { getPanel } from '../getmessages.js';
import { valueText } from '../message.js';
import { unchanged } from '../live.js';
import * as tracer from './tracer.js';

const RATES = [['publish', 'publish'], ['deliver_get', 'deliver / get'], ['ack', 'ack'], ['redeliver', 'redeliver']];

function argumentsText(args) {
  const entries = Object.entries(args || {});
  return entries.length ? h('span', { class: 'mono' }, entries.map(([k, v]) => `${k}: ${valueText(v)}`).join(', ')) : 'none';
}

function details(q) {
  const owner = q.owner_pid_details?.name;
  const policyDef = q.effective_policy_definition && Object.keys(q.effective_policy_definition).length ? q.effective_policy_definition : null;
  return kv([
    ['Type', q.type],
    ['Features', h('span', { dataset: { test: 'queue-features' } }, featureTags(q))],
    ['State', h('span', { class: `state-${q.state}` }, q.state)],
    ['Durable', fmt.bool(q.durable)],
    ['Auto delete', fmt.bool(q.auto_delete)],
    ['Exclusive', q.exclusive ? (owner ? ['owned by ', h('a', { href: href('connections', owner), dataset: { test: 'queue-owner' } }, owner)] : 'yes') : 'no'],
    ['Arguments', h('span', { dataset: { test: 'queue-arguments' } }, argumentsText(q.arguments))],
    ['Policy', q.policy || 'none'],
    policyDef && ['Effective policy', h('span', { class: 'mono' }, valueText(policyDef))],
    q.operator_policy && ['Operator policy', q.operator_policy],
    ['Consumers', fmt.num(q.consumers)],
    ['Consumer utilisation', q.consumers ? `${Math.round((q.consumer_utilisation ?? 0) * 100)}%` : '–'],
    q.single_active_consumer_tag && ['Single active consumer', q.single_active_consumer_tag],
    q.idle_since && ['Idle since', q.idle_since],
    ['Memory', fmt.bytes(q.memory)],
  ]);
}

function stat(label, value, test) {
  return h('div', { class: 'stat' }, h('div', { class: 'label' }, label), h('div', { class: 'value', dataset: { test } }, value));
}

function figures(q) {
  const ms = q.message_stats;
  return h('div', null,
    h('div', { class: 'grid' },
      stat('Ready', fmt.num(q.messages_ready), 'queue-ready'),
      stat('Unacked', fmt.num(q.messages_unacknowledged), 'queue-unacked'),
      stat('Total', fmt.num(q.messages), 'queue-total'),
      stat('Bytes', fmt.bytes(q.message_bytes), 'queue-bytes')),
    h('div', { style: { marginTop: '.6em' } },
      kv(RATES.map(([k, label]) => [label, `${fmt.rate(rate(ms, k))} (${fmt.num(ms?.[k] ?? 0)} in all)`]))));
}

function consumerRows(q) {
  return (q.consumer_details || []).map((c) => ({ ...c, name: c.consumer_tag }));
}

const CONSUMER_COLUMNS = [
  { key: 'channel', title: 'Channel', render: (c) => (c.channel_details?.name ? h('a', { href: href('channels', c.channel_details.name) }, c.channel_details.name) : `channel ${c.channel_details?.number ?? '?'}`) },
  { key: 'consumer_tag', title: 'Consumer tag', render: (c) => h('span', { class: 'mono' }, c.consumer_tag) },
  { key: 'ack_required', title: 'Ack required', render: (c) => fmt.bool(c.ack_required) },
  { key: 'exclusive', title: 'Exclusive', render: (c) => fmt.bool(c.exclusive) },
  { key: 'prefetch_count', title: 'Prefetch', num: true, render: (c) => (c.prefetch_count ? fmt.num(c.prefetch_count) : h('span', { class: c.ack_required ? 'warn' : 'muted', title: 'no prefetch limit' }, 'unlimited')) },
  { key: 'active', title: 'Active', render: (c) => fmt.bool(c.active) },
  { key: 'arguments', title: 'Arguments', render: (c) => argumentsText(c.arguments) },
];

function dangerPanel(view, vhost, name) {
  const purge = h('button', {
    type: 'button', class: 'danger', dataset: { test: 'purge-queue' },
    onclick: async () => {
      if (!window.confirm(`Purge every ready message of '${name}'?`)) return;
      await act(purge, () => api.del(api.path`/queues/${vhost}/${name}/contents`), `Queue '${name}' purged.`);
      view.refresh();
    },
  }, 'Purge messages');
  const ifUnused = h('input', { type: 'checkbox', id: 'queue-if-unused', dataset: { test: 'delete-if-unused' } });
  const ifEmpty = h('input', { type: 'checkbox', id: 'queue-if-empty', dataset: { test: 'delete-if-empty' } });
  const remove = h('button', {
    type: 'button', class: 'danger', dataset: { test: 'delete-queue' },
    onclick: async () => {
      if (!window.confirm(`Delete queue '${name}'?`)) return;
      const q = new URLSearchParams();
      if (ifUnused.checked) q.set('if-unused', 'true');
      if (ifEmpty.checked) q.set('if-empty', 'true');
      const qs = q.toString();
      const done = await act(remove, async () => { await api.del(api.path`/queues/${vhost}/${name}` + (qs ? `?${qs}` : '')); return true; });
      if (done) {
        toast(`Queue '${name}' deleted.`);
        location.hash = '#/queues';
      }
    },
  }, 'Delete queue');
  return h('section', { class: 'panel' },
    h('h2', null, 'Purge and delete'),
    h('div', { class: 'row' }, purge, h('span', { class: 'muted' }, 'removes the ready messages; unacknowledged ones stay with their consumers.')),
    h('div', { class: 'row' },
      h('label', { for: 'queue-if-unused' }, ifUnused, ' only if unused (no consumers)'),
      h('label', { for: 'queue-if-empty' }, ifEmpty, ' only if empty'),
      remove));
}

export function queuePage(view, { vhost, name }) {
  const info = h('div', { dataset: { test: 'queue-details' } });
  const numbers = h('div', { dataset: { test: 'queue-figures' } });
  const lengths = lineChart({ title: 'Queued messages', series: ['ready', 'unacked', 'total'], capacity: 120, format: fmt.num, test: 'queue-lengths' });
  const rates = lineChart({ title: 'Message rates', series: RATES.map(([, label]) => label), capacity: 120, test: 'queue-rates' });
  const consumers = h('div');
  const consumerCount = h('span', { class: 'muted' });
  const sameConsumers = unchanged();
  const browse = browsePanel(vhost, name);
  view.el.append(
    h('h1', null, h('span', { class: 'kind' }, 'Queue'), name, ' ', h('span', { class: 'muted' }, `in ${vhost}`)),
    h('div', { class: 'row' },
      h('a', { href: '#/queues' }, '‹ All queues'),
      tracer.traceLink ? tracer.traceLink(vhost, 'queue', name) : null),
    h('div', { class: 'cols' },
      h('section', { class: 'panel' }, h('h2', null, 'Details'), info),
      h('section', { class: 'panel' }, h('h2', null, 'Messages'), numbers)),
    h('div', { class: 'cols' }, h('section', { class: 'panel' }, lengths.el), h('section', { class: 'panel' }, rates.el)),
    browse.el,
    h('section', { class: 'panel', dataset: { test: 'consumers-panel' } }, h('h2', null, 'Consumers ', consumerCount), consumers),
    queueBindings(view, vhost, name),
    publishPanel({ vhost, exchange: '', routingKey: name, fixedKey: true }),
    getPanel(view, vhost, name),
    dangerPanel(view, vhost, name));
  view.every(async () => {
    const q = await api.get(api.path`/queues/${vhost}/${name}`);
    fill(info, details(q));
    fill(numbers, figures(q));
    const now = Date.now();
    lengths.push(now, [q.messages_ready, q.messages_unacknowledged, q.messages]);
    rates.push(now, RATES.map(([k]) => rate(q.message_stats, k)));
    const rows = consumerRows(q);
    fill(consumerCount, `(${fmt.num(rows.length)})`);
    if (!sameConsumers(rows)) {
      fill(consumers, table({ columns: CONSUMER_COLUMNS, rows, test: 'consumers-table', empty: 'No consumers.' }));
    }
    browse.update(q);
  });
}
