// The queue page's "Get messages" panel: RabbitMQ's POST /api/queues/{vhost}/{name}/get
// with its four ack modes, count, encoding and truncate. Unlike Browse it consumes: a
// requeued message comes back marked redelivered (and maybe elsewhere in the queue), so
// the panel says so and points to Browse.

import * as api from './api.js';
import { h, fill, fmt } from './dom.js';
import { form, field, input } from './form.js';
import { messageCard } from './browse.js';

/** RabbitMQ's ack modes with its UI's labels. */
export const ACK_MODES = [
  ['ack_requeue_true', 'Nack message requeue true'],
  ['ack_requeue_false', 'Automatic ack'],
  ['reject_requeue_true', 'Reject requeue true'],
  ['reject_requeue_false', 'Reject requeue false'],
];

/** getPanel(view, vhost, name) -> section. */
export function getPanel(view, vhost, name) {
  const out = h('div', { class: 'messages', dataset: { test: 'get-messages' } });
  const count = input('count', { type: 'number', value: '1', test: 'get-count' });
  count.min = '1';
  const truncate = input('truncate', { type: 'number', value: '50000', test: 'get-truncate' });
  truncate.min = '1';
  const el = form({
    test: 'get',
    submit: 'Get message(s)',
    reset: false,
    fields: h('div', { class: 'row' },
      field('Ack mode', input('ackmode', { options: ACK_MODES, value: 'ack_requeue_true', test: 'get-ackmode' })),
      field('Encoding', input('encoding', { options: [['auto', 'Auto string / base64'], ['base64', 'base64']], test: 'get-encoding' })),
      field('Messages', count),
      field('Truncate (bytes)', truncate)),
    async onSubmit(v) {
      const messages = await api.post(api.path`/queues/${vhost}/${name}/get`, {
        count: v.count ?? 1, ackmode: v.ackmode, encoding: v.encoding, truncate: v.truncate,
      });
      fill(out, messages.length
        ? messages.map((m, i) => messageCard(m, vhost, true, `Message ${i + 1}`))
        : h('p', { class: 'muted', dataset: { test: 'get-empty' } }, 'Queue is empty.'));
      view.refresh();
      return messages.length ? `${fmt.num(messages.length)} message${messages.length === 1 ? '' : 's'} got.` : null;
    },
  });
  return h('section', { class: 'panel', dataset: { test: 'get-panel' } },
    h('h2', null, 'Get messages'),
    h('p', { class: 'warn' }, 'Getting messages takes them from the queue: requeued ones come back marked redelivered. To look without changing the queue, use Browse.'),
    el, out);
}
