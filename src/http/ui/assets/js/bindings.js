// The bindings panels of the exchange page (bindings from it and to it) and of the queue
// page (bindings to it): lists with links to the other end, a form to add one (routing
// key and arguments) and an Unbind button that removes a binding by its properties_key
// (DELETE /api/bindings/{vhost}/e/{source}/{q|e}/{destination}/{props}). Lists redraw
// only when what the API answers changed, so a refresh never steals keyboard focus.

import * as api from './api.js';
import { h, fill, href, act } from './dom.js';
import { table } from './table.js';
import { form, field, input, argumentsEditor } from './form.js';
import { valueText } from './message.js';
import { unchanged } from './live.js';

const exchangeHref = (vhost, name) => href('exchanges', vhost, name === '' ? 'amq.default' : name);

function endLink(vhost, type, name) {
  if (type === 'queue') return h('a', { href: href('queues', vhost, name) }, name);
  return h('a', { href: exchangeHref(vhost, name) }, name === '' ? '(AMQP default)' : name);
}

function argsText(args) {
  const keys = Object.keys(args || {});
  return keys.length ? h('span', { class: 'mono' }, keys.map((k) => `${k}: ${valueText(args[k])}`).join(', ')) : '';
}

async function unbind(button, b) {
  const kind = b.destination_type === 'queue' ? 'q' : 'e';
  await act(button, () => api.del(api.path`/bindings/${b.vhost}/e/${b.source}/${kind}/${b.destination}/${b.properties_key}`),
    `Binding removed (${b.source || '(AMQP default)'} → ${b.destination}).`);
}

/**
 * A live list of bindings: bindingList({ view, path, other: 'source'|'destination',
 * test }) -> element; registers its refresh with view.every.
 */
function bindingList({ view, path, other, test }) {
  const box = h('div', { dataset: { test: `${test}-box` } });
  const same = unchanged();
  const columns = [
    other === 'source'
      ? { key: 'source', title: 'From', render: (b) => (b.source === '' ? h('span', { class: 'muted' }, '(Default exchange binding)') : endLink(b.vhost, 'exchange', b.source)) }
      : { key: 'destination', title: 'To', render: (b) => [endLink(b.vhost, b.destination_type, b.destination), ' ', h('span', { class: 'tag' }, b.destination_type)] },
    { key: 'routing_key', title: 'Routing key', render: (b) => h('span', { class: 'mono' }, b.routing_key) },
    { key: 'arguments', title: 'Arguments', render: (b) => argsText(b.arguments) },
    {
      key: 'unbind', title: '', render: (b) => (b.source === '' ? '' : h('button', {
        type: 'button', class: 'secondary', dataset: { test: 'unbind' },
        'aria-label': `Unbind ${b.source} → ${b.destination} (${b.routing_key})`,
        onclick: async (e) => { await unbind(e.currentTarget, b); view.refresh(); },
      }, 'Unbind')),
    },
  ];
  view.every(async () => {
    const rows = await api.get(path);
    if (same(rows)) return;
    fill(box, table({ columns, rows, test, rowKey: (b) => b[other], empty: 'No bindings.' }));
  });
  return box;
}

function bindForm({ view, vhost, fixed, fixedKind }) {
  // fixedKind 'exchange': this exchange is the source, the user picks the destination.
  // fixedKind 'queue': this queue is the destination, the user picks the source exchange.
  const fromExchange = fixedKind === 'exchange';
  const fields = [
    h('div', { class: 'row' },
      fromExchange && field('To', input('dest_type', { options: [['q', 'Queue'], ['e', 'Exchange']], test: 'bind-dest-type' })),
      field(fromExchange ? 'Destination name' : 'From exchange', input('other', { required: true, test: 'bind-other' })),
      field('Routing key', input('routing_key', { test: 'bind-routing-key' }))),
    field('Arguments', argumentsEditor('arguments', [
      { key: 'x-match', label: 'x-match (headers)', value: 'all' },
    ])),
  ];
  return form({
    test: 'add-binding',
    submit: 'Bind',
    fields,
    async onSubmit(v) {
      const [source, kind, dest] = fromExchange ? [fixed, v.dest_type, v.other] : [v.other, 'q', fixed];
      await api.post(api.path`/bindings/${vhost}/e/${source}/${kind}/${dest}`, { routing_key: v.routing_key, arguments: v.arguments });
      view.refresh();
      return `Bound ${source} → ${dest}${v.routing_key ? ` with '${v.routing_key}'` : ''}.`;
    },
  });
}

/** The exchange page's bindings: from it, to it, and the form to add one from it. */
export function exchangeBindings(view, vhost, name) {
  const isDefault = name === '';
  const base = api.path`/exchanges/${vhost}/${isDefault ? 'amq.default' : name}`;
  if (isDefault) {
    return h('section', { class: 'panel' }, h('h2', null, 'Bindings'),
      h('p', { class: 'muted' }, 'The default exchange is implicitly bound to every queue, with the queue\'s name as routing key; it cannot be bound explicitly.'));
  }
  return h('section', { class: 'panel', dataset: { test: 'exchange-bindings' } },
    h('h2', null, 'Bindings from this exchange'),
    bindingList({ view, path: `${base}/bindings/source`, other: 'destination', test: 'bindings-from' }),
    h('h2', null, 'Bindings to this exchange'),
    bindingList({ view, path: `${base}/bindings/destination`, other: 'source', test: 'bindings-to' }),
    h('h3', null, 'Add a binding from this exchange'),
    bindForm({ view, vhost, fixed: name, fixedKind: 'exchange' }));
}

/** The queue page's bindings: every binding to it and the form to add one. */
export function queueBindings(view, vhost, name) {
  return h('section', { class: 'panel', dataset: { test: 'queue-bindings' } },
    h('h2', null, 'Bindings'),
    bindingList({ view, path: api.path`/queues/${vhost}/${name}/bindings`, other: 'source', test: 'bindings-to' }),
    h('h3', null, 'Add a binding to this queue'),
    bindForm({ view, vhost, fixed: name, fixedKind: 'queue' }));
}
