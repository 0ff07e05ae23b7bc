// Queues: the list (paged, sorted and filtered by the server) and the form to add one.
// The queue page itself (#/queues/:vhost/:name) is built by pages/queue.js; its route is
// listed here so app.js knows one module per nav entry.

import * as api from '../api.js';
import { h, fmt, link, rate } from '../dom.js';
import { serverTable } from '../table.js';
import { form, field, input, argumentsEditor } from '../form.js';
import { featureTags, FEATURE_FIELDS } from '../features.js';
import { vhostSelect } from '../vhosts.js';
import { queuePage } from './queue.js';

/** Arguments a developer reaches for when adding a queue (the type has its own field). */
export const QUEUE_ARGUMENTS = [
  { key: 'x-message-ttl', label: 'Message TTL', type: 'number', value: '60000' },
  { key: 'x-expires', label: 'Auto expire', type: 'number', value: '1800000' },
  { key: 'x-max-length', label: 'Max length', type: 'number' },
  { key: 'x-max-length-bytes', label: 'Max length bytes', type: 'number' },
  { key: 'x-overflow', label: 'Overflow', value: 'reject-publish' },
  { key: 'x-delivery-limit', label: 'Delivery limit (quorum)', type: 'number', value: '5' },
  { key: 'x-dead-letter-exchange', label: 'Dead letter exchange' },
  { key: 'x-dead-letter-routing-key', label: 'Dead letter routing key' },
  { key: 'x-max-priority', label: 'Max priority', type: 'number', value: '10' },
  { key: 'x-single-active-consumer', label: 'Single active consumer', type: 'boolean', value: 'true' },
  { key: 'x-queue-mode', label: 'Lazy mode', value: 'lazy' },
];

function list(view) {
  const columns = [
    { key: 'vhost', title: 'Vhost', fields: ['vhost'] },
    { key: 'name', title: 'Name', fields: ['name', 'vhost'], render: (q) => link(q.name, 'queues', q.vhost, q.name) },
    { key: 'type', title: 'Type' },
    { key: 'features', title: 'Features', sort: false, fields: FEATURE_FIELDS, render: featureTags },
    { key: 'state', title: 'State', render: (q) => h('span', { class: `state-${q.state}` }, q.state) },
    { key: 'consumers', title: 'Consumers', num: true },
    { key: 'messages_ready', title: 'Ready', num: true },
    { key: 'messages_unacknowledged', title: 'Unacked', num: true },
    { key: 'messages', title: 'Total', num: true },
    { key: 'message_stats.publish_details.rate', title: 'In', num: true, fields: ['message_stats.publish_details.rate'], render: (q) => fmt.rate(rate(q.message_stats, 'publish')) },
    { key: 'message_stats.deliver_get_details.rate', title: 'Out', num: true, fields: ['message_stats.deliver_get_details.rate'], render: (q) => fmt.rate(rate(q.message_stats, 'deliver_get')) },
    { key: 'message_stats.ack_details.rate', title: 'Ack', num: true, fields: ['message_stats.ack_details.rate'], render: (q) => fmt.rate(rate(q.message_stats, 'ack')) },
  ].filter((c) => !(api.session.vhost && c.key === 'vhost'));
  const t = serverTable({
    path: () => (api.session.vhost ? api.path`/queues/${api.session.vhost}` : '/queues'),
    columns,
    test: 'queues-table',
    rowKey: (q) => `${q.vhost}/${q.name}`,
    defaultSort: 'name',
    empty: 'No queues yet.',
  });
  view.el.append(h('h1', null, 'Queues'), t.el, addQueue(view));
  view.every(t.refresh);
}

function addQueue(view) {
  return h('section', { class: 'panel' }, h('h2', null, 'Add a queue'), form({
    test: 'add-queue',
    submit: 'Add queue',
    fields: [
      h('div', { class: 'row' },
        field('Virtual host', vhostSelect('queue-vhost')),
        field('Type', input('type', { options: ['classic', 'quorum', 'stream'], value: 'classic', test: 'queue-type' })),
        field('Name', input('name', { required: true, test: 'queue-name' })),
        field('Durability', input('durable', { options: [['true', 'Durable'], ['false', 'Transient']], test: 'queue-durable' })),
        field('Auto delete', input('auto_delete', { options: [['false', 'No'], ['true', 'Yes']], test: 'queue-auto-delete' }))),
      field('Arguments', argumentsEditor('arguments', QUEUE_ARGUMENTS)),
    ],
    async onSubmit(v) {
      await api.put(api.path`/queues/${v.vhost}/${v.name}`, {
        durable: v.durable === 'true', auto_delete: v.auto_delete === 'true',
        arguments: { 'x-queue-type': v.type, ...v.arguments },
      });
      view.refresh();
      return `Queue '${v.name}' added.`;
    },
  }));
}

export const routes = [
  { path: 'queues', nav: 'queues', navLabel: 'Queues', title: 'Queues', render: list },
  { path: 'queues/:vhost/:name', nav: 'queues', title: (p) => `queue ${p.name}`, render: queuePage },
];
