// The overview: totals, live charts of message rates and queued messages (opened with
// the last ten minutes from the API's history, then one point per refresh), the node's
// facts (memory, disk, alarms, listeners, version) and the queues holding the most
// messages, so a message is two clicks away.

import * as api from '../api.js';
import { h, fill, fmt, kv, link } from '../dom.js';
import { lineChart } from '../chart.js';
import { table } from '../table.js';

/** The reference UI's names for the message rates, and the counters behind them. */
const RATES = [
  ['Publish', ['publish']],
  ['Publisher confirm', ['confirm']],
  ['Deliver / get', ['deliver_get']],
  ['Consumer ack', ['ack']],
  ['Redelivered', ['redeliver']],
  ['Unroutable (return, drop)', ['return_unroutable', 'drop_unroutable']],
];
const LENGTHS = [['Ready', 'messages_ready'], ['Unacked', 'messages_unacknowledged'], ['Total', 'messages']];
const TOTALS = [
  ['Connections', 'object_totals.connections', 'connections'],
  ['Channels', 'object_totals.channels', 'channels'],
  ['Exchanges', 'object_totals.exchanges', 'exchanges'],
  ['Queues', 'object_totals.queues', 'queues'],
  ['Consumers', 'object_totals.consumers', null],
  ['Ready', 'queue_totals.messages_ready', 'queues'],
  ['Unacked', 'queue_totals.messages_unacknowledged', 'queues'],
];
const HISTORY = { msg_rates_age: 600, msg_rates_incr: 5, lengths_age: 600, lengths_incr: 5 };
const CAPACITY = 130; // ten minutes of 5-second points, and a few more

const at = (o, path) => path.split('.').reduce((x, k) => (x == null ? undefined : x[k]), o);

/** [[t, values]] oldest first: rates between consecutive history samples. */
function rateHistory(ms) {
  const series = RATES.map(([, keys]) => keys.map((k) => ms?.[`${k}_details`]?.samples || []));
  const base = series[0][0];
  if (!base || base.length < 2) return [];
  const out = [];
  for (let i = base.length - 1; i > 0; i -= 1) {
    const dt = (base[i - 1].timestamp - base[i].timestamp) / 1000;
    if (dt <= 0) continue;
    out.push([base[i - 1].timestamp, series.map((keys) => keys.reduce((sum, s) =>
      sum + (s[i - 1] && s[i] ? Math.max(0, s[i - 1].sample - s[i].sample) / dt : 0), 0))]);
  }
  return out;
}

function lengthHistory(qt) {
  const base = qt?.messages_ready_details?.samples || [];
  return base.map((s, i) => [s.timestamp, LENGTHS.map(([, k]) => qt[`${k}_details`]?.samples?.[i]?.sample ?? 0)]).reverse();
}

function meter(label, used, limit, test, { over = false } = {}) {
  const pct = limit ? Math.min(100, (used / limit) * 100) : 0;
  return h('div', { class: 'meter', dataset: { test } },
    h('div', { class: 'row' }, h('span', null, label), h('span', { class: 'spacer' }),
      h('span', { class: over ? 'error' : 'muted' }, `${fmt.bytes(used)} of ${fmt.bytes(limit)}`)),
    h('div', { class: `bar${over ? ' over' : ''}`, role: 'meter', 'aria-label': label, 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': Math.round(pct) },
      h('span', { style: { width: `${pct}%` } })));
}

function render(view) {
  const totals = new Map();
  const grid = h('div', { class: 'grid', dataset: { test: 'overview-totals' } }, TOTALS.map(([label, key, page]) => {
    const value = h('div', { class: 'value', dataset: { test: `total-${key.split('.')[1]}` } }, '–');
    totals.set(key, value);
    return h('div', { class: 'stat' }, h('div', { class: 'label' }, page ? h('a', { href: `#/${page}` }, label) : label), value);
  }));
  const published = h('strong', { dataset: { test: 'published-count' } }, '–');
  const publishRate = h('strong', { dataset: { test: 'publish-rate' } }, '–');
  const rates = lineChart({ title: 'Message rates', series: RATES.map(([n]) => n), capacity: CAPACITY, format: fmt.rate, test: 'chart-rates' });
  const lengths = lineChart({ title: 'Queued messages', series: LENGTHS.map(([n]) => n), capacity: CAPACITY, format: fmt.num, test: 'chart-lengths' });
  const alarms = h('div', { dataset: { test: 'alarms' } });
  const node = h('div', { dataset: { test: 'node-facts' } });
  const top = h('div', { dataset: { test: 'top-queues' } });
  view.el.append(
    h('h1', null, 'Overview'), alarms, grid,
    h('p', { class: 'muted' }, 'Published since start: ', published, ' · publishing now: ', publishRate),
    h('div', { class: 'cols' }, h('section', { class: 'panel' }, rates.el), h('section', { class: 'panel' }, lengths.el)),
    h('div', { class: 'cols' },
      h('section', { class: 'panel' }, h('h2', null, 'Queues with the most messages'), top),
      h('section', { class: 'panel' }, h('h2', null, 'Node'), node)),
  );

  let loaded = false;
  view.every(async () => {
    const o = await api.get('/overview', loaded ? undefined : HISTORY);
    for (const [key, el] of totals) fill(el, fmt.num(at(o, key) ?? 0));
    fill(published, fmt.num(o.message_stats?.publish ?? 0));
    fill(publishRate, fmt.rate(o.message_stats?.publish_details?.rate ?? 0));
    if (!loaded) {
      rates.load(rateHistory(o.message_stats));
      lengths.load(lengthHistory(o.queue_totals));
      loaded = true;
    }
    const now = Date.now();
    rates.push(now, RATES.map(([, keys]) => keys.reduce((s, k) => s + (o.message_stats?.[`${k}_details`]?.rate ?? 0), 0)));
    lengths.push(now, LENGTHS.map(([, k]) => o.queue_totals?.[k] ?? 0));
    await nodeFacts(o);
  });

  async function nodeFacts(o) {
    const facts = [
      ['Version', `warren ${o.product_version} (speaks RabbitMQ ${o.rabbitmq_version})`],
      ['Cluster', o.cluster_name],
    ];
    if (!api.session.has('monitoring')) {
      fill(node, kv(facts), h('p', { class: 'muted' }, 'Node figures need the monitoring tag.'));
      fill(alarms);
      return;
    }
    const [n] = await api.get('/nodes');
    const memAlarm = !!n.mem_alarm;
    const diskAlarm = !!n.disk_free_alarm;
    fill(alarms, (memAlarm || diskAlarm) ? h('div', { class: 'panel alarm', role: 'alert', dataset: { test: 'alarm' } },
      h('strong', null, 'Publishers are blocked: '),
      [memAlarm && 'memory alarm (memory use is above its limit)', diskAlarm && 'disk alarm (free disk space is below its limit)'].filter(Boolean).join('; ')) : null);
    const listeners = (o.listeners || []).map((l) => `${l.protocol} ${l.ip_address}:${l.port}`);
    fill(node,
      meter('Memory', n.mem_used, n.mem_limit, 'node-memory', { over: memAlarm }),
      n.queue_memory_limit !== undefined ? meter('Queue memory budget', n.queue_memory_used, n.queue_memory_limit, 'node-queue-memory') : null,
      h('div', { class: 'meter', dataset: { test: 'node-disk' } },
        h('div', { class: 'row' }, h('span', null, 'Disk free'), h('span', { class: 'spacer' }),
          h('span', { class: diskAlarm ? 'error' : 'muted' }, n.storage === 'memory'
            ? 'not used: everything is in memory'
            : `${fmt.bytes(n.disk_free)} free, limit ${fmt.bytes(n.disk_free_limit)}`))),
      kv([
        ['Node', n.name],
        ...facts,
        ['Uptime', h('span', { dataset: { test: 'node-uptime' } }, fmt.duration(n.uptime))],
        ['Memory alarm', h('span', { class: memAlarm ? 'error' : 'ok' }, memAlarm ? 'ON' : 'off')],
        ['Disk alarm', h('span', { class: diskAlarm ? 'error' : 'ok' }, diskAlarm ? 'ON' : 'off')],
        ['Listeners', h('span', { dataset: { test: 'node-listeners' } }, listeners.join(', '))],
        ['File descriptors', `${fmt.num(n.fd_used)} of ${fmt.num(n.fd_total)}`],
        ['Sockets', `${fmt.num(n.sockets_used)} of ${fmt.num(n.sockets_total)}`],
        ['Worker threads', fmt.num(n.processors)],
        ['Data directory', n.db_dir],
      ]));
  }

  view.every(async () => {
    const params = { page: 1, page_size: 5, sort: 'messages', sort_reverse: 'true', columns: 'name,vhost,messages,messages_ready,messages_unacknowledged,consumers' };
    const qs = await api.get(api.session.vhost ? api.path`/queues/${api.session.vhost}` : '/queues', params);
    fill(top, table({
      test: 'top-queues-table',
      rowKey: (q) => `${q.vhost}/${q.name}`,
      empty: 'No queues yet.',
      rows: (qs.items || []).filter((q) => q.messages > 0),
      columns: [
        { key: 'name', title: 'Queue', render: (q) => link(q.name, 'queues', q.vhost, q.name) },
        { key: 'vhost', title: 'Vhost' },
        { key: 'messages_ready', title: 'Ready', num: true },
        { key: 'messages_unacknowledged', title: 'Unacked', num: true },
        { key: 'consumers', title: 'Consumers', num: true },
      ],
    }));
  });
}

export const routes = [{ path: '', nav: 'overview', navLabel: 'Overview', title: 'Overview', render }];
