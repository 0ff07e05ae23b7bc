// Developer diagnostics: what goes wrong in development (unroutable publishes, consumers
// without prefetch, queues growing with nobody consuming, connection churn, channel
// leaks, poison messages), each with links to the objects concerned and a one-line hint,
// from GET /api/diagnostics. Also the header's badge: the count, linking here.

import * as api from '../api.js';
import { h, fill, fmt, href } from '../dom.js';
import { REFRESH_MS } from '../app.js';

/** Each kind as the page names it, and what it checks (shown under "What is checked"). */
const KINDS = {
  unroutable: ['Unroutable messages', 'Messages published that no binding routed to a queue: per exchange, routing key and connection.'],
  consumer_no_prefetch: ['Consumer without prefetch', 'A manual-ack consumer with no prefetch limit whose unacked messages keep growing: it is sent the whole queue.'],
  queue_growing_without_consumer: ['Queue growing, no consumer', 'Ready messages keep growing in a queue nobody consumes from.'],
  connection_churn: ['Connection churn', 'Connections that live less than a second, many in a row, from one host, user and client: a connection per message.'],
  channel_leak: ['Channel leak', 'A connection whose channel count keeps growing past 100: channels opened and never closed.'],
  poison_message: ['Poison message', 'A message delivered and sent back 10 times or more: a consumer fails on it and requeues it.'],
};

const kindLabel = (kind) => KINDS[kind]?.[0] || kind;

/** The API path of the findings the session's vhost selection shows. */
function findingsPath() {
  return api.session.vhost ? api.path`/diagnostics/${api.session.vhost}` : '/diagnostics';
}

/** A stable key for one finding, so a refresh updates its entry instead of adding one. */
function keyOf(f) {
  const names = (f.objects || []).map((o) => `${o.type}:${o.name}`).join('|');
  return `${f.kind}|${f.vhost}|${names}`;
}

/** A link to an object's page, or its name alone when it has none (a closed connection). */
function objectLink(o) {
  const label = `${o.type} '${o.name}'`;
  if (o.closed) return h('span', { class: 'muted' }, `${label} (closed)`);
  switch (o.type) {
    case 'exchange':
      // The default exchange has no name; its page is amq.default, as in RabbitMQ's UI.
      return h('a', { href: href('exchanges', o.vhost, o.name || 'amq.default') }, o.name ? label : 'the default exchange');
    case 'queue':
      return h('a', { href: href('queues', o.vhost, o.name) }, label);
    case 'connection':
      return h('a', { href: href('connections', o.name) }, label);
    case 'channel':
      return h('a', { href: href('channels', o.name) }, label);
    case 'consumer':
      return o.channel ? h('a', { href: href('channels', o.channel) }, label) : h('span', null, label);
    default:
      return h('span', null, label);
  }
}

/** One finding's entry (built once, then updated in place by `update`). */
function entry(f) {
  const parts = {
    severity: h('span', { class: 'tag', dataset: { test: 'diagnostic-severity' } }),
    kind: h('strong'),
    since: h('span', { class: 'muted' }),
    summary: h('p', { class: 'summary', dataset: { test: 'diagnostic-summary' } }),
    hint: h('p', { class: 'hint', dataset: { test: 'diagnostic-hint' } }),
    objects: h('ul', { class: 'objects', 'aria-label': 'Objects concerned' }),
  };
  const el = h('li', { class: 'panel diagnostic', dataset: { test: 'diagnostic', kind: f.kind, name: keyOf(f) } },
    h('div', { class: 'row' }, parts.severity, parts.kind, h('span', { class: 'spacer' }), parts.since),
    parts.summary, parts.hint, parts.objects);
  return { el, parts, shown: '' };
}

function update(item, f) {
  // Redraw only what changed: a summary carries the counts, so it is the usual change.
  const shown = JSON.stringify([f.severity, f.summary, f.hint, f.objects, f.since]);
  if (shown === item.shown) return;
  item.shown = shown;
  const { parts } = item;
  fill(parts.severity, f.severity);
  parts.severity.className = `tag ${f.severity === 'warning' ? 'warn' : 'muted'}`;
  fill(parts.kind, kindLabel(f.kind));
  fill(parts.since, `since ${fmt.time(f.since)}`);
  fill(parts.summary, f.summary);
  fill(parts.hint, h('span', { class: 'muted' }, 'Hint: '), f.hint);
  fill(parts.objects, (f.objects || []).map((o) => h('li', null, objectLink(o))));
}

function render(view) {
  const status = h('p', { class: 'muted', role: 'status', dataset: { test: 'diagnostics-status' } });
  const list = h('ul', { class: 'diagnostics', dataset: { test: 'diagnostics-list' } });
  const explain = h('details', { class: 'panel' },
    h('summary', null, 'What is checked'),
    h('dl', { class: 'kv' }, Object.values(KINDS).map(([label, text]) => [h('dt', null, label), h('dd', null, text)])),
    h('p', { class: 'muted' }, 'Growth is judged over the statistics samples (every 5 s by default); a finding goes away once its cause is gone.'));
  view.el.append(h('h1', null, 'Diagnostics'), status, list, explain);
  const items = new Map(); // key -> entry
  view.every(async () => {
    const findings = await api.get(findingsPath());
    const seen = new Set();
    findings.forEach((f, i) => {
      const key = keyOf(f);
      seen.add(key);
      let item = items.get(key);
      if (!item) {
        item = entry(f);
        items.set(key, item);
      }
      update(item, f);
      // Keep the API's order (warnings first, newest first) without moving nodes that
      // are already in place (a focused link stays focused).
      if (list.children[i] !== item.el) list.insertBefore(item.el, list.children[i] || null);
    });
    for (const [key, item] of items) {
      if (!seen.has(key)) {
        item.el.remove();
        items.delete(key);
      }
    }
    const where = api.session.vhost ? ` in vhost '${api.session.vhost}'` : '';
    fill(status, findings.length
      ? `${findings.length} finding${findings.length === 1 ? '' : 's'}${where}.`
      : h('span', { dataset: { test: 'diagnostics-empty' } }, `Nothing to report${where}.`));
    setBadge(findings.length, findings.some((f) => f.severity === 'warning'), !api.session.vhost);
  });
}

export const routes = [{
  path: 'diagnostics', nav: 'diagnostics', navLabel: 'Diagnostics', title: 'Diagnostics', render,
}];

// ---- the header's badge ----

let badge = null;

/** Shows `count` on the badge; `all`: the count covers every vhost the user sees (the
 *  badge's own poll counts those), so a page filtered by vhost does not overwrite it. */
function setBadge(count, warning, all = true) {
  if (!badge || !all) return;
  fill(badge, fmt.num(count));
  badge.className = `badge${count ? '' : ' zero'}${count && !warning ? ' info' : ''}`;
  const text = `${count} diagnostic${count === 1 ? '' : 's'}`;
  badge.title = text;
  badge.setAttribute('aria-label', text);
}

/** The header's count of diagnostics, linking to this page; it refreshes itself while it
 *  is in the document, signed in and the tab visible. */
export function diagnosticsBadge() {
  const el = h('a', { href: '#/diagnostics', class: 'badge zero', dataset: { test: 'diagnostics-badge' } }, '0');
  badge = el;
  const poll = async () => {
    if (badge !== el) {
      // A new header (signed in again) has its own badge.
      clearInterval(timer);
      document.removeEventListener('visibilitychange', poll);
      return;
    }
    // The diagnostics page showing every vhost counts for the badge itself.
    const pageCounts = location.hash.startsWith('#/diagnostics') && !api.session.vhost;
    if (document.hidden || !api.loggedIn() || pageCounts) return;
    try {
      const findings = await api.get('/diagnostics');
      setBadge(findings.length, findings.some((f) => f.severity === 'warning'));
    } catch { /* the shell reports a refused login; the badge waits for the next poll */ }
  };
  const timer = setInterval(poll, REFRESH_MS);
  // A tab brought back to the front counts at once, as the shell refreshes the page.
  document.addEventListener('visibilitychange', poll);
  // The first count once the header is in place.
  setTimeout(poll, 0);
  return el;
}
