// The queue page's Browse panel: pages through a queue's ready messages without
// consuming them (GET /api/queues/{vhost}/{name}/browse?from=&count=, and &search=TEXT
// &search_limit=N to search the first N by payload and header text). Browsing never
// changes the queue, so it loads by itself when the queue has ready messages; it does
// not reload on the page's 5 s refresh (a message being read must not vanish), only
// when asked or when the queue goes from empty to non-empty.

import * as api from './api.js';
import { h, fill, fmt } from './dom.js';
import { field, input } from './form.js';
import { renderMessage } from './message.js';

const PREVIEW_CHARS = 120;

function preview(msg) {
  const text = msg.payload_encoding === 'base64' ? '(binary)' : String(msg.payload ?? '');
  return text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS)}…` : text;
}

/** One message as a collapsible card: position, routing key and a payload preview. */
export function messageCard(msg, vhost, open, title) {
  return h('details', { class: 'message-card', open, dataset: { test: 'message-card', position: msg.position ?? null } },
    h('summary', null,
      h('span', { class: 'tag' }, title),
      h('span', { class: 'mono' }, msg.routing_key ?? ''), ' ',
      msg.redelivered ? h('span', { class: 'tag warn' }, 'redelivered') : null,
      h('span', { class: 'muted preview' }, preview(msg))),
    renderMessage(msg, { vhost }));
}

/**
 * browsePanel(vhost, name) -> { el, update(queue) }: update() is called with the queue's
 * JSON on every page refresh (for the ready count and the first automatic load).
 */
export function browsePanel(vhost, name) {
  const state = { from: 0, count: 20, search: '', limit: 1000, loaded: false, failed: false, shown: 0, after: 0 };
  const from = input('from', { type: 'number', value: '0', test: 'browse-from' });
  from.min = '0';
  const count = input('count', { options: ['10', '20', '50', '100'], value: '20', test: 'browse-count' });
  const search = input('search', { type: 'search', placeholder: 'text in payload or headers', test: 'browse-search' });
  const limit = input('search_limit', { type: 'number', value: '1000', test: 'browse-search-limit' });
  limit.min = '1';
  const status = h('p', { class: 'muted', role: 'status', dataset: { test: 'browse-status' } });
  const list = h('div', { class: 'messages', dataset: { test: 'browse-messages' } });
  const ready = h('span', { dataset: { test: 'browse-ready' } }, '–');
  const prev = h('button', { type: 'button', class: 'secondary', dataset: { test: 'browse-prev' }, onclick: () => go(Math.max(0, state.from - state.count)) }, '‹ Previous');
  // Searching, the next page starts after the last match; browsing, after the page.
  const next = h('button', { type: 'button', class: 'secondary', dataset: { test: 'browse-next' }, onclick: () => go(state.after) }, 'Next ›');

  async function load() {
    state.count = Number(count.value) || 20;
    const params = { from: state.from, count: state.count };
    if (state.search) Object.assign(params, { search: state.search, search_limit: state.limit });
    fill(status, 'Loading…');
    let answer;
    try {
      answer = await api.get(api.path`/queues/${vhost}/${name}/browse`, params);
    } catch (e) {
      // No automatic retry every 5 s after a refusal: the Browse button retries.
      state.failed = true;
      state.shown = 0;
      fill(list);
      fill(status, h('span', { class: 'error' }, `Cannot browse: ${e.message}`));
      return;
    }
    state.loaded = true;
    state.failed = false;
    const messages = answer.messages || [];
    state.shown = messages.length;
    fill(list, messages.map((m, i) => messageCard(m, vhost, i === 0, `#${fmt.num(m.position)}`)));
    const total = answer.messages_ready ?? 0;
    fill(ready, fmt.num(total));
    if (state.search) {
      fill(status, `${fmt.num(messages.length)} match${messages.length === 1 ? '' : 'es'} for '${state.search}' in the first ${fmt.num(answer.scanned ?? state.limit)} messages scanned (from position ${fmt.num(state.from)}).`);
    } else if (!messages.length) {
      fill(status, total ? `No message at position ${fmt.num(state.from)}: the queue has ${fmt.num(total)} ready.` : 'The queue has no ready messages.');
    } else {
      const first = messages[0].position ?? state.from;
      fill(status, `Positions ${fmt.num(first)}–${fmt.num(first + messages.length - 1)} of ${fmt.num(total)} ready messages.`);
    }
    const lastShown = messages.length ? (messages[messages.length - 1].position ?? state.from + messages.length - 1) : state.from;
    state.after = state.search ? lastShown + 1 : state.from + state.count;
    prev.disabled = state.from <= 0;
    next.disabled = state.search ? messages.length < state.count : state.from + messages.length >= total;
  }

  function go(position) {
    state.from = position;
    from.value = String(position);
    return load();
  }

  const controls = h('form', {
    class: 'inline', dataset: { test: 'browse-form' },
    onsubmit: (e) => {
      e.preventDefault();
      state.search = search.value.trim();
      state.limit = Number(limit.value) || 1000;
      go(Math.max(0, Number(from.value) || 0));
    },
  },
  field('From position', from),
  field('Messages', count),
  field('Search', search),
  field('Search the first', limit),
  h('div', { class: 'field' }, h('button', { type: 'submit', dataset: { test: 'browse-submit' } }, 'Browse')),
  h('div', { class: 'field' }, h('button', { type: 'button', class: 'secondary', dataset: { test: 'browse-head' }, onclick: () => { search.value = ''; state.search = ''; go(0); } }, 'From the head')));

  const el = h('section', { class: 'panel', id: 'browse', dataset: { test: 'browse-panel' } },
    h('h2', null, 'Browse messages ', h('span', { class: 'muted' }, '(', ready, ' ready)')),
    h('p', { class: 'muted', dataset: { test: 'browse-note' } },
      'Browsing never changes the queue: nothing is consumed, requeued or marked redelivered, and consumers see the messages as before.'),
    controls, status, list, h('div', { class: 'row' }, prev, next));

  return {
    el,
    update(q) {
      fill(ready, fmt.num(q.messages_ready));
      // Load by itself when there is something to see and nothing shown yet.
      if (q.messages_ready > 0 && state.shown === 0 && !state.search && !state.failed) load();
      else if (!state.loaded && !q.messages_ready) fill(status, 'The queue has no ready messages.');
    },
  };
}
