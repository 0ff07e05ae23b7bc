// Lists. `serverTable` pages, sorts and filters on the server (RabbitMQ's page,
// page_size, name, use_regex, sort, sort_reverse and columns parameters), so a list of
// 10,000 queues costs one page per refresh; its state lives in the location hash
// (`#/queues?page=2&sort=messages`) so the view can be linked. `table` draws rows the
// page already has.

import { get, ApiError } from './api.js';
import { h, fill, fmt } from './dom.js';

const SIZES = [20, 50, 100, 500];

/** The hash's query parameters, and a way to change them without re-rendering the page. */
export function hashParams() {
  const i = location.hash.indexOf('?');
  return new URLSearchParams(i < 0 ? '' : location.hash.slice(i + 1));
}

export function setHashParams(params) {
  const base = location.hash.split('?')[0] || '#/';
  const q = params.toString();
  history.replaceState(null, '', q ? `${base}?${q}` : base);
}

function cell(col, row) {
  const v = col.render ? col.render(row) : dig(row, col.key);
  const content = v === undefined || v === null ? '' : (col.num && typeof v === 'number' ? fmt.num(v) : v);
  return h('td', { class: col.num ? 'num' : null }, content);
}

/** A dotted path into an object: dig(q, 'message_stats.publish_details.rate'). */
export function dig(obj, key) {
  return String(key).split('.').reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

/**
 * A list paged by the server.
 * - path(): the API path (e.g. `/queues` or `/queues/%2F`), re-read on each refresh;
 * - columns: [{ key, title, sort (a sort key, default key; false = not sortable),
 *   fields (the API columns it needs, default [key]), num, render(row) }];
 * - test: data-test of the table; rowKey(row): a row's data-name;
 * - filter: show the name filter; pageSize: default rows per page; prefix: hash
 *   parameter prefix when a page has two tables.
 * Returns { el, refresh } ; refresh() fetches only the page shown.
 */
export function serverTable({ path, columns, test, rowKey = (r) => r.name, filter = true, pageSize = 50, prefix = '', empty = 'Nothing here yet.', defaultSort = '' }) {
  const params = hashParams();
  const key = (k) => prefix + k;
  const state = {
    page: Number(params.get(key('page'))) || 1,
    size: Number(params.get(key('size'))) || pageSize,
    name: params.get(key('name')) || '',
    regex: params.get(key('regex')) === '1',
    sort: params.get(key('sort')) ?? defaultSort,
    reverse: params.get(key('reverse')) === '1',
  };
  const save = () => {
    const p = hashParams();
    const put = (k, v, dflt) => (v === dflt ? p.delete(key(k)) : p.set(key(k), String(v)));
    put('page', state.page, 1);
    put('size', state.size, pageSize);
    put('name', state.name, '');
    put('regex', state.regex ? '1' : '0', '0');
    put('sort', state.sort, defaultSort);
    put('reverse', state.reverse ? '1' : '0', '0');
    setHashParams(p);
  };

  const headRow = h('tr', null, columns.map((col) => {
    const sortKey = col.sort === false ? null : (col.sort || col.key);
    const th = h('th', { class: col.num ? 'num' : null, scope: 'col' });
    if (!sortKey) return fill(th, col.title);
    th.append(h('button', {
      class: 'sort', type: 'button', title: `Sort by ${col.title}`,
      onclick: () => {
        if (state.sort === sortKey) state.reverse = !state.reverse;
        else { state.sort = sortKey; state.reverse = !!col.num; }
        state.page = 1;
        save();
        refresh();
      },
    }, col.title));
    th.dataset.sortKey = sortKey;
    return th;
  }));
  const tbody = h('tbody');
  const status = h('span', { class: 'muted', dataset: { test: `${test}-count` } });
  const pageLabel = h('span', { class: 'muted' });
  const prev = h('button', { type: 'button', class: 'secondary', onclick: () => { state.page -= 1; save(); refresh(); } }, '‹ Prev');
  const next = h('button', { type: 'button', class: 'secondary', onclick: () => { state.page += 1; save(); refresh(); } }, 'Next ›');
  const sizeId = `${test}-size`;
  const size = h('select', { id: sizeId, onchange: () => { state.size = Number(size.value); state.page = 1; save(); refresh(); } },
    SIZES.map((s) => h('option', { value: s, selected: s === state.size }, s)));
  const filterId = `${test}-filter`;
  let timer = 0;
  const name = h('input', {
    id: filterId, type: 'search', value: state.name, placeholder: 'Filter by name', dataset: { test: `${test}-filter` },
    oninput: () => {
      clearTimeout(timer);
      timer = setTimeout(() => { state.name = name.value; state.page = 1; save(); refresh(); }, 250);
    },
  });
  const regex = h('input', { id: `${test}-regex`, type: 'checkbox', checked: state.regex, onchange: () => { state.regex = regex.checked; state.page = 1; save(); refresh(); } });
  const tools = h('div', { class: 'table-tools' },
    filter && [h('label', { for: filterId, class: 'sr' }, 'Filter by name'), name,
      h('label', { for: `${test}-regex` }, regex, ' regex')],
    h('span', { class: 'spacer' }),
    status,
    h('div', { class: 'pager' }, prev, pageLabel, next,
      h('label', { for: sizeId, class: 'sr' }, 'Rows per page'), size));
  const tableEl = h('table', { dataset: { test } }, h('thead', null, headRow), tbody);
  const el = h('div', { class: 'server-table' }, tools, h('div', { class: 'table-wrap' }, tableEl));

  const wanted = [...new Set(columns.flatMap((c) => c.fields || [c.key]).concat(['name']))].join(',');
  let inFlight = null;

  async function refresh() {
    // One request at a time: a slow answer is not overtaken by an older one.
    if (inFlight) inFlight.abort();
    const ctrl = new AbortController();
    inFlight = ctrl;
    let answer;
    try {
      answer = await get(path(), {
        page: state.page, page_size: state.size, name: state.name || undefined,
        use_regex: state.regex ? 'true' : undefined, sort: state.sort || undefined,
        sort_reverse: state.reverse ? 'true' : undefined, columns: wanted,
      }, { signal: ctrl.signal });
    } catch (e) {
      if (e.name === 'AbortError') return;
      if (e instanceof ApiError && e.status === 400 && state.page > 1) {
        // The page went out of range (objects deleted): back to the first.
        state.page = 1;
        save();
        return refresh();
      }
      throw e;
    } finally {
      if (inFlight === ctrl) inFlight = null;
    }
    const items = answer.items || [];
    fill(tbody, items.length
      ? items.map((row) => h('tr', { dataset: { name: rowKey(row) } }, columns.map((c) => cell(c, row))))
      : h('tr', null, h('td', { colspan: columns.length, class: 'empty' }, state.name ? 'No match.' : empty)));
    for (const th of headRow.children) {
      if (!th.dataset.sortKey) continue;
      if (th.dataset.sortKey === state.sort) th.setAttribute('aria-sort', state.reverse ? 'descending' : 'ascending');
      else th.removeAttribute('aria-sort');
    }
    const pages = answer.page_count || 1;
    fill(status, state.name
      ? `${fmt.num(answer.filtered_count)} of ${fmt.num(answer.total_count)}`
      : `${fmt.num(answer.total_count)} in all`);
    fill(pageLabel, `page ${answer.page || 1} of ${pages}`);
    prev.disabled = state.page <= 1;
    next.disabled = state.page >= pages;
  }

  return { el, refresh };
}

/** A table of rows the caller already has (a queue's consumers, an exchange's bindings). */
export function table({ columns, rows, test, rowKey = (r) => r.name, empty = 'None.' }) {
  return h('div', { class: 'table-wrap' }, h('table', { dataset: { test } },
    h('thead', null, h('tr', null, columns.map((c) => h('th', { class: c.num ? 'num' : null, scope: 'col' }, c.title)))),
    h('tbody', null, rows.length
      ? rows.map((row) => h('tr', { dataset: { name: rowKey(row) } }, columns.map((c) => cell(c, row))))
      : h('tr', null, h('td', { colspan: columns.length, class: 'empty' }, empty)))));
}
