// Exchanges: the list (paged, sorted and filtered by the server), the form to add one,
// and the exchange page (#/exchanges/:vhost/:name; the default exchange is
// "amq.default" in the address, as in RabbitMQ's UI and API): details, live rates,
// bindings from and to it, publish, delete.

import * as api from '../api.js';
import { h, fill, fmt, kv, href, rate, act, toast } from '../dom.js';
import { serverTable } from '../table.js';
import { lineChart } from '../chart.js';
import { form, field, input, argumentsEditor } from '../form.js';
import { featureTags, FEATURE_FIELDS } from '../features.js';
import { exchangeBindings } from '../bindings.js';
import { publishPanel } from '../publish.js';
import { vhostSelect } from '../vhosts.js';
import { valueText } from '../message.js';
import * as tracer from './tracer.js';

const BUILTIN_TYPES = ['direct', 'fanout', 'topic', 'headers'];

/** The label RabbitMQ's UI gives the nameless default exchange. */
export const displayName = (name) => (name === '' ? '(AMQP default)' : name);
/** The exchange's address segment: the default exchange is "amq.default". */
const segment = (name) => (name === '' ? 'amq.default' : name);

function list(view) {
  const columns = [
    { key: 'vhost', title: 'Vhost' },
    { key: 'name', title: 'Name', fields: ['name', 'vhost'], render: (x) => h('a', { href: href('exchanges', x.vhost, segment(x.name)) }, displayName(x.name)) },
    { key: 'type', title: 'Type' },
    { key: 'features', title: 'Features', sort: false, fields: FEATURE_FIELDS, render: featureTags },
    { key: 'message_stats.publish_in_details.rate', title: 'Rate in', num: true, render: (x) => fmt.rate(rate(x.message_stats, 'publish_in')) },
    { key: 'message_stats.publish_out_details.rate', title: 'Rate out', num: true, render: (x) => fmt.rate(rate(x.message_stats, 'publish_out')) },
  ].filter((c) => !(api.session.vhost && c.key === 'vhost'));
  const t = serverTable({
    path: () => (api.session.vhost ? api.path`/exchanges/${api.session.vhost}` : '/exchanges'),
    columns,
    test: 'exchanges-table',
    rowKey: (x) => `${x.vhost}/${x.name}`,
    defaultSort: 'name',
    empty: 'No exchanges.',
  });
  view.el.append(h('h1', null, 'Exchanges'), t.el, addExchange(view));
  view.every(t.refresh);
}

function addExchange(view) {
  const type = input('type', { options: BUILTIN_TYPES, value: 'direct', test: 'exchange-type' });
  // Any other type the broker declares it accepts (GET /api/overview's exchange_types).
  api.get('/overview', { columns: 'exchange_types' }).then((o) => {
    const names = (o?.exchange_types || []).filter((t) => t.enabled !== false).map((t) => t.name);
    if (names.length) type.replaceChildren(...names.map((n) => h('option', { value: n, selected: n === 'direct' }, n)));
  }).catch(() => {});
  return h('section', { class: 'panel' }, h('h2', null, 'Add an exchange'), form({
    test: 'add-exchange',
    submit: 'Add exchange',
    fields: [
      h('div', { class: 'row' },
        field('Virtual host', vhostSelect('exchange-vhost')),
        field('Name', input('name', { required: true, test: 'exchange-name' })),
        field('Type', type),
        field('Durability', input('durable', { options: [['true', 'Durable'], ['false', 'Transient']], test: 'exchange-durable' })),
        field('Auto delete', input('auto_delete', { options: [['false', 'No'], ['true', 'Yes']], test: 'exchange-auto-delete' })),
        field('Internal', input('internal', { options: [['false', 'No'], ['true', 'Yes']], test: 'exchange-internal' }))),
      field('Arguments', argumentsEditor('arguments', [{ key: 'alternate-exchange', label: 'Alternate exchange' }])),
    ],
    async onSubmit(v) {
      await api.put(api.path`/exchanges/${v.vhost}/${v.name}`, {
        type: v.type, durable: v.durable === 'true', auto_delete: v.auto_delete === 'true',
        internal: v.internal === 'true', arguments: v.arguments,
      });
      view.refresh();
      return `Exchange '${v.name}' added.`;
    },
  }));
}

function details(x) {
  const args = Object.entries(x.arguments || {});
  return kv([
    ['Virtual host', x.vhost],
    ['Type', x.type],
    ['Features', h('span', { dataset: { test: 'exchange-features' } }, featureTags(x))],
    ['Durable', fmt.bool(x.durable)],
    ['Auto delete', fmt.bool(x.auto_delete)],
    ['Internal', fmt.bool(x.internal)],
    ['Arguments', args.length ? h('span', { class: 'mono' }, args.map(([k, v]) => `${k}: ${valueText(v)}`).join(', ')) : 'none'],
    ['Policy', x.policy || 'none'],
    ...(x.messages_delayed === undefined ? [] : [['Messages delayed', fmt.num(x.messages_delayed)]]),
    ['Published in', `${fmt.num(x.message_stats?.publish_in ?? 0)} (${fmt.rate(rate(x.message_stats, 'publish_in'))})`],
    ['Routed out', `${fmt.num(x.message_stats?.publish_out ?? 0)} (${fmt.rate(rate(x.message_stats, 'publish_out'))})`],
  ]);
}

function deletePanel(vhost, name) {
  if (name === '' || name.startsWith('amq.')) {
    return h('section', { class: 'panel' }, h('h2', null, 'Delete'),
      h('p', { class: 'muted' }, 'The broker\'s predeclared exchanges (the default one and amq.*) cannot be deleted.'));
  }
  const ifUnused = h('input', { type: 'checkbox', id: 'exchange-if-unused', dataset: { test: 'delete-if-unused' } });
  const button = h('button', {
    type: 'button', class: 'danger', dataset: { test: 'delete-exchange' },
    onclick: async () => {
      if (!window.confirm(`Delete exchange '${name}'?`)) return;
      const done = await act(button, async () => {
        await api.del(api.path`/exchanges/${vhost}/${name}` + (ifUnused.checked ? '?if-unused=true' : ''));
        return true;
      });
      if (done) {
        toast(`Exchange '${name}' deleted.`);
        location.hash = '#/exchanges';
      }
    },
  }, 'Delete this exchange');
  return h('section', { class: 'panel' }, h('h2', null, 'Delete'),
    h('div', { class: 'row' }, h('label', { for: 'exchange-if-unused' }, ifUnused, ' only if unused (no bindings from it)'), button));
}

function page(view, { vhost, name: seg }) {
  const name = seg === 'amq.default' ? '' : seg;
  const info = h('div', { dataset: { test: 'exchange-details' } });
  const chart = lineChart({ title: 'Message rates', series: ['in', 'out'], capacity: 120, test: 'exchange-rates' });
  view.el.append(
    h('h1', null, h('span', { class: 'kind' }, 'Exchange'), displayName(name), ' ',
      h('span', { class: 'muted' }, `in ${vhost}`)),
    h('div', { class: 'row' }, h('a', { href: '#/exchanges' }, '‹ All exchanges'), tracer.traceLink ? tracer.traceLink(vhost, 'exchange', name) : null),
    h('div', { class: 'cols' }, h('section', { class: 'panel' }, h('h2', null, 'Details'), info), h('section', { class: 'panel' }, chart.el)),
    exchangeBindings(view, vhost, name),
    publishPanel({ vhost, exchange: name }),
    deletePanel(vhost, name));
  view.every(async () => {
    const x = await api.get(api.path`/exchanges/${vhost}/${segment(name)}`);
    fill(info, details(x));
    chart.push(Date.now(), [rate(x.message_stats, 'publish_in'), rate(x.message_stats, 'publish_out')]);
  });
}

export const routes = [
  { path: 'exchanges', nav: 'exchanges', navLabel: 'Exchanges', title: 'Exchanges', render: list },
  { path: 'exchanges/:vhost/:name', nav: 'exchanges', title: (p) => `exchange ${p.name}`, render: page },
];
