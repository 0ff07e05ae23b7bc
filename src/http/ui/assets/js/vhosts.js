// The "Virtual host" select of the add forms (queues, exchanges): every vhost the user
// can see, the header's vhost (or "/") chosen. Filled once when the form is drawn.

import * as api from './api.js';
import { h } from './dom.js';

export function vhostSelect(test) {
  const select = h('select', { name: 'vhost', dataset: { test } });
  api.get('/vhosts', { columns: 'name' }).then((vs) => {
    select.replaceChildren(...vs.map((v) => h('option', { value: v.name, selected: v.name === (api.session.vhost || '/') }, v.name)));
  }).catch(() => {});
  return select;
}
