// Channels: the list (paged by the server) and a channel's page with its consumers.
// A consumer without a prefetch limit (prefetch 0, manual ack) is shown as such: its
// unacked count can grow without bound, the diagnostics page's warning.

import * as api from '../api.js';
import { h, fill, fmt, kv, link, rate } from '../dom.js';
import { serverTable, table } from '../table.js';

/** "confirm", "tx" or "" for a channel. */
function mode(c) {
  return [c.confirm && 'confirm', c.transactional && 'tx'].filter(Boolean).join(', ');
}

function prefetch(n) {
  return n ? fmt.num(n) : h('span', { class: 'warn', title: 'No prefetch limit: unacked messages can pile up' }, '0 (unlimited)');
}

/** The channel columns the list and a connection's page share. */
export function channelColumns() {
  return [
    { key: 'name', title: 'Channel', render: (c) => link(c.name, 'channels', c.name) },
    { key: 'connection_details.name', title: 'Connection', fields: ['connection_details'], render: (c) => link(c.connection_details?.name ?? '', 'connections', c.connection_details?.name ?? '') },
    { key: 'user', title: 'User' },
    { key: 'vhost', title: 'Vhost' },
    { key: 'mode', title: 'Mode', sort: false, fields: ['confirm', 'transactional'], render: mode },
    { key: 'state', title: 'State', render: (c) => h('span', { class: `state-${c.state}` }, c.state) },
    { key: 'prefetch_count', title: 'Prefetch', num: true, fields: ['prefetch_count', 'consumer_count'], render: (c) => (c.consumer_count ? prefetch(c.prefetch_count) : fmt.num(c.prefetch_count)) },
    { key: 'messages_unacknowledged', title: 'Unacked', num: true },
    { key: 'consumer_count', title: 'Consumers', num: true },
    { key: 'message_stats.publish_details.rate', title: 'Publish', num: true, fields: ['message_stats.publish_details.rate'], render: (c) => fmt.rate(rate(c.message_stats, 'publish')) },
    { key: 'message_stats.confirm_details.rate', title: 'Confirm', num: true, fields: ['message_stats.confirm_details.rate'], render: (c) => fmt.rate(rate(c.message_stats, 'confirm')) },
    { key: 'message_stats.deliver_get_details.rate', title: 'Deliver', num: true, fields: ['message_stats.deliver_get_details.rate'], render: (c) => fmt.rate(rate(c.message_stats, 'deliver_get')) },
    { key: 'message_stats.ack_details.rate', title: 'Ack', num: true, fields: ['message_stats.ack_details.rate'], render: (c) => fmt.rate(rate(c.message_stats, 'ack')) },
  ];
}

function list(view) {
  const t = serverTable({
    path: () => (api.session.vhost ? api.path`/vhosts/${api.session.vhost}/channels` : '/channels'),
    columns: channelColumns().filter((c) => !(api.session.vhost && c.key === 'vhost')),
    test: 'channels-table', defaultSort: 'name', empty: 'No channels.',
  });
  view.el.append(h('h1', null, 'Channels'), t.el);
  view.every(t.refresh);
}

function one(view, { name }) {
  const facts = h('div', { dataset: { test: 'channel-facts' } });
  const consumers = h('div', { dataset: { test: 'channel-consumers' } });
  view.el.append(h('h1', null, h('span', { class: 'kind' }, 'Channel'), name),
    h('section', { class: 'panel' }, h('h2', null, 'Details'), facts),
    h('section', { class: 'panel' }, h('h2', null, 'Consumers'), consumers));
  view.every(async () => {
    const c = await api.get(api.path`/channels/${name}`);
    const ms = c.message_stats || {};
    fill(facts, kv([
      ['Connection', link(c.connection_details?.name ?? '', 'connections', c.connection_details?.name ?? '')],
      ['User', c.user], ['Vhost', c.vhost], ['State', c.state], ['Mode', mode(c) || 'plain'],
      ['Prefetch (per consumer)', prefetch(c.prefetch_count)], ['Prefetch (global)', fmt.num(c.global_prefetch_count)],
      ['Unacked', h('span', { dataset: { test: 'channel-unacked' } }, fmt.num(c.messages_unacknowledged))],
      ['Unconfirmed', fmt.num(c.messages_unconfirmed)], ['Uncommitted', fmt.num(c.messages_uncommitted)],
      ['Published', `${fmt.num(ms.publish ?? 0)} (${fmt.rate(rate(ms, 'publish'))})`],
      ['Delivered', `${fmt.num(ms.deliver_get ?? 0)} (${fmt.rate(rate(ms, 'deliver_get'))})`],
      ['Acked', `${fmt.num(ms.ack ?? 0)} (${fmt.rate(rate(ms, 'ack'))})`],
      ['Redelivered', fmt.num(ms.redeliver ?? 0)],
      ['Unroutable', `${fmt.num((ms.return_unroutable ?? 0) + (ms.drop_unroutable ?? 0))}`],
    ]));
    const rows = c.consumer_details || [];
    fill(consumers, table({
      test: 'consumers-table',
      rowKey: (x) => x.consumer_tag,
      rows,
      empty: 'No consumers on this channel.',
      columns: [
        { key: 'queue', title: 'Queue', render: (x) => link(x.queue?.name ?? '', 'queues', x.queue?.vhost ?? c.vhost, x.queue?.name ?? '') },
        { key: 'consumer_tag', title: 'Tag' },
        { key: 'ack_required', title: 'Ack', render: (x) => (x.ack_required ? 'manual' : 'auto') },
        { key: 'prefetch_count', title: 'Prefetch', num: true, render: (x) => (x.ack_required ? prefetch(x.prefetch_count) : 'n/a (auto ack)') },
        { key: 'exclusive', title: 'Exclusive', render: (x) => fmt.bool(x.exclusive) },
        { key: 'active', title: 'Active', render: (x) => fmt.bool(x.active !== false) },
      ],
    }));
  });
}

export const routes = [
  { path: 'channels', nav: 'channels', navLabel: 'Channels', title: 'Channels', render: list },
  { path: 'channels/:name', nav: 'channels', title: (p) => `Channel ${p.name}`, render: one },
];
