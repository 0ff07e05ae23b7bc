// Forms: labelled fields, a submit that reports through toasts, and the arguments
// editor (RabbitMQ's x-arguments with typed values and one-click helpers).

import { h, toast } from './dom.js';

let ids = 0;
const nextId = (base) => `${base}-${(ids += 1)}`;

/** A labelled field: field('Name', input('name', {required: true}), 'hint'). */
export function field(label, control, hint) {
  if (!control.id) control.id = nextId(control.name || 'f');
  return h('div', { class: 'field' }, h('label', { for: control.id }, label), control, hint && h('span', { class: 'hint' }, hint));
}

/** An input (or a select when `options` is given: [[value, label], …] or [value, …]). */
export function input(name, { type = 'text', value, placeholder, required, options, test, rows } = {}) {
  if (options) {
    return h('select', { name, dataset: { test: test || name } }, options.map((o) => {
      const [v, label] = Array.isArray(o) ? o : [o, o];
      return h('option', { value: v, selected: v === value }, label);
    }));
  }
  if (type === 'textarea') return h('textarea', { name, placeholder, required, rows, dataset: { test: test || name } }, value ?? '');
  if (type === 'checkbox') return h('input', { name, type, checked: !!value, dataset: { test: test || name } });
  return h('input', { name, type, value: value ?? '', placeholder, required, dataset: { test: test || name } });
}

/** The named controls' values: numbers for type=number, booleans for checkboxes, and
 *  `.value()` for composite controls (the arguments editor). */
export function values(formEl) {
  const out = {};
  for (const el of formEl.querySelectorAll('[name], [data-composite]')) {
    if (el.dataset.composite) out[el.dataset.composite] = el.value();
    else if (el.type === 'checkbox') out[el.name] = el.checked;
    else if (el.type === 'number') out[el.name] = el.value === '' ? undefined : Number(el.value);
    else out[el.name] = el.value;
  }
  return out;
}

/**
 * form({ test, fields: [node…], submit: 'Add', onSubmit: async (values, formEl) => message,
 *        inline }) — runs onSubmit with the values; its returned text is shown as a toast,
 * an error is shown as an error toast and leaves the form as it was.
 */
export function form({ test, fields, submit, onSubmit, inline = false, reset = true }) {
  const button = h('button', { type: 'submit', dataset: { test: `${test}-submit` } }, submit);
  const el = h('form', { class: inline ? 'inline' : null, dataset: { test } }, fields, h('div', { class: 'field' }, button));
  el.addEventListener('submit', async (e) => {
    e.preventDefault();
    button.disabled = true;
    try {
      const message = await onSubmit(values(el), el);
      if (message) toast(message);
      if (reset) {
        el.reset();
        el.querySelectorAll('[data-composite]').forEach((c) => c.clear?.());
      }
    } catch (err) {
      toast(err.message || String(err), 'error');
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

const TYPES = [['string', 'String'], ['number', 'Number'], ['boolean', 'Boolean'], ['list', 'List (JSON)']];

/**
 * The arguments editor: rows of key, value and type, plus helper buttons that add a
 * known argument: argumentsEditor('arguments', [{ key: 'x-message-ttl', label: 'Message
 * TTL', type: 'number', value?: '60000' }]). Its `.value()` is the arguments object.
 */
export function argumentsEditor(name, helpers = []) {
  const rows = h('div');
  const el = h('div', { class: 'args', dataset: { test: `${name}-editor` } });
  el.dataset.composite = name;
  const addRow = (key = '', value = '', type = 'string') => {
    const k = h('input', { 'aria-label': 'Argument name', value: key, placeholder: 'x-argument', dataset: { test: 'arg-key' } });
    const v = h('input', { 'aria-label': 'Argument value', value, placeholder: 'value', dataset: { test: 'arg-value' } });
    const t = h('select', { 'aria-label': 'Argument type', dataset: { test: 'arg-type' } }, TYPES.map(([tv, tl]) => h('option', { value: tv, selected: tv === type }, tl)));
    const row = h('div', { class: 'arg' }, k, v, t, h('button', { type: 'button', class: 'secondary', 'aria-label': 'Remove argument', onclick: () => row.remove() }, '×'));
    rows.append(row);
    return row;
  };
  el.value = () => {
    const out = {};
    for (const row of rows.children) {
      const [k, v, t] = row.querySelectorAll('input, select');
      if (!k.value.trim()) continue;
      out[k.value.trim()] = typed(v.value, t.value);
    }
    return out;
  };
  el.append(
    // Node.append would turn a null into the text "null": an empty text node instead.
    helpers.length ? h('div', { class: 'helpers' }, h('span', { class: 'muted' }, 'Add:'),
      helpers.map((a) => h('button', { type: 'button', class: 'secondary', title: a.key, onclick: () => addRow(a.key, a.value ?? '', a.type || 'string').querySelector('[data-test=arg-value]').focus() }, a.label))) : '',
    rows,
    h('button', { type: 'button', class: 'secondary', onclick: () => addRow().querySelector('input').focus() }, '+ argument'),
  );
  el.clear = () => rows.replaceChildren();
  return el;
}

function typed(value, type) {
  switch (type) {
    case 'number': {
      const n = Number(value);
      if (value.trim() === '' || Number.isNaN(n)) throw new Error(`'${value}' is not a number`);
      return n;
    }
    case 'boolean': return value.trim() === 'true';
    case 'list': return JSON.parse(value || '[]');
    default: return value;
  }
}
