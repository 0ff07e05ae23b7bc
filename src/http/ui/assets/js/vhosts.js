// The "Virtual host" select of the forms (queues, exchanges, admin, tracer): every vhost
// the user can see, `selected` (by default the header's vhost, or "/") chosen. Filled
// once when the form is drawn; the chosen vhost is an option from the start, so the form
// has a value before the list arrives.

import * as api from './api.js';
import { h } from './dom.js';

export function vhostSelect(test, selected = api.session.vhost || '/') {
  const select = h('select', { name: 'vhost', dataset: { test } }, h('option', { value: selected, selected: true }, selected));
  api.get('/vhosts', { columns: 'name' }).then((vs) => {
    select.replaceChildren(...vs.map((v) => h('option', { value: v.name, selected: v.name === selected }, v.name)));
  }).catch(() => {});
  return select;
}
