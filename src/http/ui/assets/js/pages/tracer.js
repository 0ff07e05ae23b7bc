// The message tracer: pick an exchange or a queue, watch the messages that pass (routing
// key, routed-to queues or "unroutable", publisher, properties, a payload preview).
// `#/tracer` lists the traces and starts one (pre-filled from `?vhost=&exchange=` or
// `?queue=`, see traceLink); `#/tracer/:vhost/:id` shows one live: it polls
// `?since=` every 1.5 s while the trace captures, fetching only new events, and keeps at
// most KEEP events on the page.

import * as api from '../api.js';
import { h, fill, fmt, href, link, act, decodePayload, toast } from '../dom.js';
import { table, hashParams } from '../table.js';
import { form, field, input } from '../form.js';
import { renderMessage } from '../message.js';
import { vhostSelect } from '../vhosts.js';

/** Events a trace page keeps (oldest dropped first): the page never grows past it. */
const KEEP = 500;
/** How often a live trace is polled for new events. */
const POLL_MS = 1500;

/** A "Trace" link for an exchange or queue page: kind is 'exchange' or 'queue'. */
export function traceLink(vhost, kind, name) {
  const q = new URLSearchParams({ vhost, [kind]: name });
  return h('a', { href: `#/tracer?${q}`, class: 'button secondary', dataset: { test: 'trace-link' }, title: `Watch the messages through this ${kind}` }, 'Trace');
}

const exchangeName = (name) => (name === '' ? '(AMQP default)' : name);

function target(t) {
  return t.queue !== undefined
    ? ['queue', link(t.queue, 'queues', t.vhost, t.queue)]
    : ['exchange', link(exchangeName(t.exchange), 'exchanges', t.vhost, t.exchange === '' ? 'amq.default' : t.exchange)];
}

function stateText(t) {
  return t.active ? `capturing, ${fmt.duration(t.expires_in * 1000)} left` : `stopped: ${t.stop_reason}`;
}

// ---- #/tracer: the traces and the start form ----

function list(view) {
  const traces = h('div', { dataset: { test: 'traces' } });
  view.el.append(h('h1', null, 'Message tracer'),
    h('p', { class: 'muted' }, 'Watch the messages published to an exchange or routed into a queue (and delivered from it), a bounded number of them. A trace costs nothing while none is on.'),
    startForm(),
    h('h2', null, 'Traces'), traces);
  view.every(async () => {
    const all = await api.get('/tracer');
    fill(traces, table({
      test: 'traces-table',
      rowKey: (t) => t.id,
      empty: 'No trace yet.',
      rows: all,
      columns: [
        { key: 'id', title: 'Trace', render: (t) => link(t.id, 'tracer', t.vhost, t.id) },
        { key: 'vhost', title: 'Vhost' },
        { key: 'target', title: 'Of', render: (t) => { const [kind, a] = target(t); return [h('span', { class: 'muted' }, `${kind} `), a]; } },
        { key: 'captured', title: 'Captured', num: true, render: (t) => `${fmt.num(t.captured)} / ${fmt.num(t.max_messages)}` },
        { key: 'active', title: 'State', render: stateText },
      ],
    }));
  });
}

function startForm() {
  const pre = hashParams();
  const kind = pre.has('queue') ? 'queue' : 'exchange';
  const vhosts = vhostSelect('tracer-vhost', pre.get('vhost') || api.session.vhost || '/');
  const kindSelect = input('kind', { options: [['exchange', 'Exchange'], ['queue', 'Queue']], value: kind, test: 'tracer-kind' });
  const names = h('datalist', { id: 'tracer-names' });
  const name = input('name', { value: pre.get(kind) ?? '', placeholder: 'name', test: 'tracer-name' });
  name.setAttribute('list', 'tracer-names');
  name.setAttribute('autocomplete', 'off');
  // The names offered come from the server, filtered by what was typed (one page).
  let timer = 0;
  const suggest = () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const what = kindSelect.value === 'queue' ? 'queues' : 'exchanges';
      try {
        const page = await api.get(api.path`/${what}/${vhosts.value}`, { columns: 'name', page: 1, page_size: 50, name: name.value, sort: 'name' });
        fill(names, (page.items || []).filter((o) => o.name !== '').map((o) => h('option', { value: o.name })));
      } catch { fill(names); }
    }, 200);
  };
  name.addEventListener('input', suggest);
  name.addEventListener('focus', suggest);
  kindSelect.addEventListener('change', () => { name.value = ''; suggest(); });
  vhosts.addEventListener('change', suggest);
  return h('section', { class: 'panel' }, h('h2', null, 'Start a trace'), form({
    test: 'tracer-form',
    submit: 'Start tracing',
    reset: false,
    inline: true,
    fields: [
      field('Virtual host', vhosts),
      field('Watch', kindSelect),
      field('Name', name, 'amq.default: the default exchange'),
      names,
      field('Max messages', input('max_messages', { type: 'number', value: '100', test: 'tracer-max' }), 'up to 10,000'),
      field('Payload preview (bytes)', input('payload_bytes', { type: 'number', value: '256', test: 'tracer-payload-bytes' })),
      field('Lifetime (s)', input('seconds', { type: 'number', value: '600', test: 'tracer-seconds' })),
    ],
    async onSubmit(v) {
      const body = { [v.kind]: v.name, max_messages: v.max_messages, payload_bytes: v.payload_bytes, seconds: v.seconds };
      const t = await api.post(api.path`/tracer/${v.vhost}`, body);
      location.hash = href('tracer', t.vhost, t.id);
      return `Tracing ${v.kind} '${v.name}'.`;
    },
  }));
}

// ---- #/tracer/:vhost/:id: one trace, live ----

function show(view, { vhost, id }) {
  const status = h('span', { dataset: { test: 'trace-status' } });
  const captured = h('span', { dataset: { test: 'trace-captured' } });
  const shown = h('span', { class: 'muted' });
  const events = h('div', { dataset: { test: 'trace-events' }, 'aria-live': 'polite' });
  const of = h('span');
  let since = 0;
  let active = true;
  let busy = false;
  let gone = false;
  const stop = h('button', { type: 'button', class: 'danger', dataset: { test: 'trace-stop' } }, 'Stop and delete');
  stop.addEventListener('click', async () => {
    await act(stop, async () => {
      await api.del(api.path`/tracer/${vhost}/${id}`);
      gone = true;
      active = false;
      fill(status, 'stopped and deleted; the events below stay until you leave the page');
    }, 'Trace deleted.');
    stop.disabled = gone;
  });
  const clear = h('button', { type: 'button', class: 'secondary', onclick: () => { fill(events); count(); } }, 'Clear list');
  view.el.append(
    h('h1', null, h('span', { class: 'kind' }, 'Trace'), id),
    h('section', { class: 'panel' },
      h('dl', { class: 'kv' },
        h('dt', null, 'Of'), h('dd', null, of),
        h('dt', null, 'State'), h('dd', null, status),
        h('dt', null, 'Captured'), h('dd', null, captured)),
      h('div', { class: 'row', style: { marginTop: '.6em' } }, stop, clear, h('a', { href: '#/tracer' }, 'All traces'))),
    h('h2', null, 'Messages ', shown),
    events);

  const count = () => fill(shown, events.children.length ? `(newest first; ${events.children.length} shown)` : '');

  async function poll() {
    if (busy || gone || view.disposed) return;
    busy = true;
    try {
      let more = true;
      // `more`: the server cut the answer short; ask again at once (bounded by KEEP).
      for (let rounds = 0; more && rounds < 5; rounds += 1) {
        const t = await api.get(api.path`/tracer/${vhost}/${id}`, { since });
        if (gone || view.disposed) return;
        if (t.more && t.captured - since > KEEP) {
          // Far behind (a page opened on a full trace): only the newest KEEP are shown.
          since = t.captured - KEEP;
          fill(events);
          continue;
        }
        const [kind, a] = target(t);
        fill(of, h('span', { class: 'muted' }, `${kind} `), a, ` in ${t.vhost}`);
        fill(status, stateText(t));
        fill(captured, `${fmt.num(t.captured)} of at most ${fmt.num(t.max_messages)}`);
        for (const e of t.events) {
          events.prepend(eventCard(t.vhost, e));
          since = e.seq;
        }
        while (events.children.length > KEEP) events.lastChild.remove();
        active = t.active;
        more = t.more;
      }
      count();
    } catch (e) {
      if (e.status === 404) {
        gone = true;
        fill(status, 'gone: deleted, or dropped 10 minutes after it stopped');
        stop.disabled = true;
      }
      throw e;
    } finally {
      busy = false;
    }
  }
  // The shell's 5-second refresh keeps the state current; while the trace captures, a
  // faster poll of its own brings new events in.
  view.every(poll);
  const timer = setInterval(() => {
    if (active && !document.hidden) poll().catch((e) => { if (e.status !== 404) toast(e.message, 'error'); });
  }, POLL_MS);
  view.onDispose(() => clearInterval(timer));
}

function eventCard(vhost, e) {
  const payload = decodePayload(e.payload, e.payload_encoding);
  const deliver = e.event === 'deliver';
  let where;
  if (deliver) {
    where = h('span', null, 'delivered ', e.consumer_tag ? ['to consumer ', h('code', null, e.consumer_tag)] : 'to a get', e.redelivered ? ' (redelivered)' : '');
  } else if (e.unroutable) {
    where = h('strong', { class: 'error', dataset: { test: 'unroutable' } }, 'unroutable');
  } else {
    where = h('span', null, '→ ', e.routed_to.map((q, i) => [i ? ', ' : '', h('a', { href: href('queues', vhost, q), dataset: { test: 'routed-to' } }, q)]),
      e.routed_count > e.routed_to.length ? ` and ${fmt.num(e.routed_count - e.routed_to.length)} more` : '');
  }
  const from = e.connection
    ? h('span', { class: 'muted' }, 'via ', h('a', { href: href('connections', e.connection) }, e.connection), ` channel ${e.channel}`)
    : h('span', { class: 'muted' }, `via ${e.origin}`);
  const preview = payload.json ?? payload.text ?? payload.base64();
  const cut = e.payload_bytes > payload.bytes.length;
  const shortView = h('pre', { dataset: { test: 'payload' } }, preview, cut ? `\n… (${fmt.bytes(e.payload_bytes)} in all)` : '');
  return h('article', {
    class: 'panel',
    style: { margin: '.5em 0', padding: '.5em .8em', borderLeft: `4px solid var(${e.unroutable ? '--danger' : deliver ? '--c4' : '--ok'})` },
    dataset: { test: 'trace-event', seq: e.seq, routingKey: e.routing_key, unroutable: String(!!e.unroutable), event: e.event },
  },
  h('div', { class: 'row' },
    h('span', { class: 'tag' }, `#${e.seq}`),
    h('span', { class: 'tag' }, e.event),
    h('span', { class: 'muted' }, new Date(e.timestamp).toLocaleTimeString()),
    h('span', null, h('span', { class: 'muted' }, 'exchange '), exchangeName(e.exchange)),
    h('span', null, h('span', { class: 'muted' }, 'key '), h('code', { dataset: { test: 'routing-key' } }, e.routing_key)),
    where, from),
  shortView,
  details(vhost, e, shortView));
}

/** Properties, headers and the payload as hex or base64, drawn (by message.js) only
 *  when opened: a page of 500 events stays light. Open, it replaces the short view. */
function details(vhost, e, shortView) {
  const el = h('details', { dataset: { test: 'trace-details' } }, h('summary', null, 'Properties, headers, hex'));
  el.addEventListener('toggle', () => {
    shortView.hidden = el.open;
    if (!el.open || el.children.length > 1) return;
    if (e.properties_truncated) el.append(h('p', { class: 'muted' }, 'The properties were larger than 16 KiB: not kept.'));
    el.append(renderMessage(e, { vhost }));
  });
  return el;
}

export const routes = [
  { path: 'tracer', nav: 'tracer', navLabel: 'Tracer', title: 'Tracer', render: list },
  { path: 'tracer/:vhost/:id', nav: 'tracer', title: (p) => `Trace ${p.id}`, render: show },
];
