// The header's search box and the search results page. Both ask /api/search (warren's
// addition: queues, exchanges, connections and users by name, across every vhost the
// user sees). The box shows a dropdown of results grouped by kind as the user types
// (debounced; an answer that comes back after a newer question is dropped), moved
// through with the arrow keys; Enter opens the selected result, or the full results
// page (#/search?q=...) when none is selected; Escape closes it.

import * as api from './api.js';
import { h, fill, href, fmt } from './dom.js';
import { hashParams } from './table.js';

/** Typing pauses this long before the box asks the API. */
const DEBOUNCE_MS = 200;
/** Results of each kind in the dropdown, and on the full page. */
const DROPDOWN_LIMIT = 8;
const PAGE_LIMIT = 100;

/** Each kind of result: its title, its page, and how one is described. */
const KINDS = [
  {
    key: 'queues', title: 'Queues',
    link: (q) => href('queues', q.vhost, q.name),
    detail: (q) => `${q.vhost} · ${fmt.num(q.messages)} msg · ${fmt.num(q.consumers)} consumers`,
    columns: [['Vhost', (q) => q.vhost], ['Messages', (q) => fmt.num(q.messages)], ['Consumers', (q) => fmt.num(q.consumers)]],
  },
  {
    key: 'exchanges', title: 'Exchanges',
    link: (x) => href('exchanges', x.vhost, x.name),
    detail: (x) => `${x.vhost} · ${x.type}`,
    columns: [['Vhost', (x) => x.vhost], ['Type', (x) => x.type]],
  },
  {
    key: 'connections', title: 'Connections',
    link: (c) => href('connections', c.name),
    detail: (c) => [c.user, c.vhost, c.client].filter(Boolean).join(' · '),
    columns: [['User', (c) => c.user], ['Vhost', (c) => c.vhost], ['Client', (c) => c.client || '']],
  },
  {
    key: 'users', title: 'Users',
    link: (u) => href('admin', 'users', u.name),
    detail: (u) => (u.tags || []).join(', '),
    columns: [['Tags', (u) => (u.tags || []).join(', ')]],
  },
];

/** The API's answer for `q`. */
function ask(q, limit, signal) {
  return api.get('/search', { q, limit }, { signal });
}

/** Wires the header's search input: dropdown, keyboard, and Enter for the full page. */
export function mountSearch(input) {
  const box = h('div', {
    class: 'dropdown', id: 'search-results', role: 'listbox', hidden: true,
    'aria-label': 'Search results', dataset: { test: 'search-results' },
  });
  input.after(box);
  input.setAttribute('role', 'combobox');
  input.setAttribute('aria-autocomplete', 'list');
  input.setAttribute('aria-controls', box.id);
  input.setAttribute('aria-expanded', 'false');

  let timer = null;
  let asked = null; // the AbortController of the question in flight
  let options = []; // the result links shown, in order
  let selected = -1;

  const open = (yes) => {
    box.hidden = !yes;
    input.setAttribute('aria-expanded', String(yes));
    if (!yes) select(-1);
  };
  const select = (i) => {
    options.forEach((o, j) => o.setAttribute('aria-selected', String(j === i)));
    selected = i;
    if (i >= 0) {
      input.setAttribute('aria-activedescendant', options[i].id);
      options[i].scrollIntoView({ block: 'nearest' });
    } else {
      input.removeAttribute('aria-activedescendant');
    }
  };
  const go = (hash) => {
    open(false);
    input.blur();
    location.hash = hash;
  };
  const allResults = (q) => `#/search?q=${encodeURIComponent(q)}`;

  const show = (q, found) => {
    options = [];
    const groups = KINDS.map((kind) => {
      const items = found[kind.key] || [];
      if (!items.length) return null;
      return [
        h('div', { class: 'group', role: 'presentation' }, kind.title),
        items.map((item) => {
          const a = h('a', {
            href: kind.link(item), role: 'option', id: `search-option-${options.length}`,
            'aria-selected': 'false',
            dataset: { test: 'search-result', kind: kind.key, name: item.name, vhost: item.vhost ?? '' },
          }, item.name || '(unnamed)', ' ', h('span', { class: 'muted' }, kind.detail(item)));
          options.push(a);
          return a;
        }),
      ];
    });
    const none = options.length ? null : h('div', { class: 'group', role: 'presentation' }, 'No matches');
    const all = h('a', { href: allResults(q), dataset: { test: 'search-all' } }, `All results for “${q}”`);
    fill(box, none, groups, all);
    selected = -1;
    open(true);
  };

  const run = async () => {
    const q = input.value.trim();
    if (asked) asked.abort();
    if (!q) { open(false); return; }
    asked = new AbortController();
    const mine = asked;
    try {
      const found = await ask(q, DROPDOWN_LIMIT, mine.signal);
      if (mine === asked && input.value.trim() === q) show(q, found);
    } catch (e) {
      if (e.name !== 'AbortError' && mine === asked) {
        fill(box, h('div', { class: 'group error', role: 'presentation' }, e.message || 'Search failed'));
        open(true);
      }
    }
  };

  input.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(run, DEBOUNCE_MS);
  });
  input.addEventListener('focus', () => { if (input.value.trim() && box.childElementCount) open(true); });
  input.addEventListener('keydown', (e) => {
    const n = options.length;
    if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
      e.preventDefault();
      if (box.hidden) { if (input.value.trim()) run(); return; }
      if (!n) return;
      const step = e.key === 'ArrowDown' ? 1 : -1;
      select(selected < 0 ? (step > 0 ? 0 : n - 1) : (selected + step + n) % n);
    } else if (e.key === 'Enter') {
      e.preventDefault();
      clearTimeout(timer);
      if (!box.hidden && selected >= 0) go(options[selected].getAttribute('href'));
      else if (input.value.trim()) go(allResults(input.value.trim()));
    } else if (e.key === 'Escape') {
      if (!box.hidden) { e.preventDefault(); open(false); } else { input.value = ''; }
    }
  });
  // A click on a result is a link; the dropdown closes once focus leaves the search.
  box.addEventListener('mousedown', (e) => e.preventDefault());
  box.addEventListener('click', (e) => { if (e.target.closest('a')) { open(false); input.blur(); } });
  input.addEventListener('blur', () => open(false));
}

/** The full results page: #/search?q=... */
function page(view) {
  const q = hashParams().get('q') || '';
  const field = h('input', { id: 'search-page-q', type: 'search', value: q, dataset: { test: 'search-page-input' } });
  const formEl = h('form', {
    class: 'inline', role: 'search',
    onsubmit: (e) => {
      e.preventDefault();
      location.hash = `#/search?q=${encodeURIComponent(field.value.trim())}`;
    },
  },
  h('div', { class: 'field' }, h('label', { for: 'search-page-q' }, 'Name contains'), field),
  h('button', { type: 'submit' }, 'Search'));
  const summary = h('p', { class: 'muted', dataset: { test: 'search-summary' } });
  const sections = KINDS.map((kind) => {
    const body = h('tbody');
    const section = h('section', { class: 'panel', hidden: true },
      h('h2', null, kind.title),
      h('div', { class: 'table-wrap' }, h('table', { dataset: { test: `search-${kind.key}` } },
        h('thead', null, h('tr', null, h('th', null, 'Name'), kind.columns.map(([t]) => h('th', null, t)))),
        body)));
    return { kind, body, section };
  });
  view.el.append(h('h1', null, 'Search'), formEl, summary, ...sections.map((s) => s.section));
  if (!q) { fill(summary, 'Type part of a name: queues, exchanges, connections and users of every vhost you can see.'); return; }
  view.every(async () => {
    const found = await ask(q, PAGE_LIMIT);
    let total = 0;
    for (const { kind, body, section } of sections) {
      const items = found[kind.key] || [];
      total += items.length;
      section.hidden = !items.length;
      fill(body, items.map((item) => h('tr', { dataset: { name: item.name, vhost: item.vhost ?? '' } },
        h('td', null, h('a', { href: kind.link(item) }, item.name)),
        kind.columns.map(([, cell]) => h('td', null, cell(item))))));
    }
    fill(summary, total ? `Names containing “${q}” (at most ${PAGE_LIMIT} of each kind).` : `Nothing is named like “${q}”.`);
  });
}

export const routes = [{ path: 'search', nav: '', title: 'Search', render: page }];
