// Connections: the list (paged, sorted and filtered by the server) and a connection's
// page: client properties and capabilities, its channels, and closing it with a reason.

import * as api from '../api.js';
import { h, fill, fmt, kv, link, act, toast } from '../dom.js';
import { serverTable, table } from '../table.js';
import { channelColumns } from './channels.js';

/** "Pika Python Client Library 1.4.4" from client_properties. */
export function client(c) {
  const p = c?.client_properties || {};
  return [p.product, p.version].filter(Boolean).join(' ') || p.platform || '';
}

function list(view) {
  const columns = [
    { key: 'name', title: 'Name', render: (c) => link(c.name, 'connections', c.name) },
    { key: 'user', title: 'User' },
    { key: 'vhost', title: 'Vhost' },
    { key: 'client_properties.product', title: 'Client', fields: ['client_properties'], render: client },
    { key: 'state', title: 'State', render: (c) => h('span', { class: `state-${c.state}` }, c.state) },
    { key: 'ssl', title: 'TLS', render: (c) => (c.ssl ? (c.ssl_protocol || 'yes') : 'no') },
    { key: 'channels', title: 'Channels', num: true },
    { key: 'recv_oct_details.rate', title: 'From client', num: true, render: (c) => `${fmt.bytes(c.recv_oct_details?.rate ?? 0)}/s` },
    { key: 'send_oct_details.rate', title: 'To client', num: true, render: (c) => `${fmt.bytes(c.send_oct_details?.rate ?? 0)}/s` },
  ].filter((c) => !(api.session.vhost && c.key === 'vhost'));
  const t = serverTable({
    path: () => (api.session.vhost ? api.path`/vhosts/${api.session.vhost}/connections` : '/connections'),
    columns, test: 'connections-table', defaultSort: 'name', empty: 'No connections.',
  });
  view.el.append(h('h1', null, 'Connections'), t.el);
  view.every(t.refresh);
}

function one(view, { name }) {
  const title = h('h1', null, h('span', { class: 'kind' }, 'Connection'), name);
  const facts = h('div', { dataset: { test: 'connection-facts' } });
  const props = h('div', { dataset: { test: 'client-properties' } });
  const caps = h('div', { dataset: { test: 'capabilities' } });
  const chans = h('div', { dataset: { test: 'connection-channels' } });
  const reason = h('input', { id: 'close-reason', value: 'Closed from the warren UI', dataset: { test: 'close-reason' } });
  const close = h('button', { type: 'button', class: 'danger', dataset: { test: 'close-connection' } }, 'Close connection');
  close.addEventListener('click', () => act(close, async () => {
    if (!confirm(`Close connection ${name}?`)) return;
    await api.del(api.path`/connections/${name}`, { headers: { 'x-reason': reason.value } });
    toast('Connection closed.');
    location.hash = '#/connections';
  }));
  view.el.append(title,
    h('div', { class: 'cols' },
      h('section', { class: 'panel' }, h('h2', null, 'Details'), facts),
      h('section', { class: 'panel' }, h('h2', null, 'Client properties'), props, h('h2', null, 'Capabilities'), caps)),
    h('section', { class: 'panel' }, h('h2', null, 'Channels'), chans),
    h('section', { class: 'panel' }, h('h2', null, 'Close this connection'),
      h('div', { class: 'row' }, h('label', { for: 'close-reason' }, 'Reason'), reason, close)));
  view.every(async () => {
    const c = await api.get(api.path`/connections/${name}`);
    fill(facts, kv([
      ['User', c.user], ['Vhost', c.vhost], ['Client', client(c)], ['State', h('span', { class: `state-${c.state}` }, c.state)],
      ['Protocol', c.protocol], ['Peer', `${c.peer_host}:${c.peer_port}`], ['Connected', fmt.time(c.connected_at)],
      ['TLS', c.ssl ? [c.ssl_protocol, c.ssl_cipher].filter(Boolean).join(' ') : 'no'], ['Auth mechanism', c.auth_mechanism],
      ['Heartbeat', `${c.timeout}s`], ['Frame max', fmt.bytes(c.frame_max)], ['Channel max', fmt.num(c.channel_max)],
      ['From client', `${fmt.bytes(c.recv_oct)} (${fmt.bytes(c.recv_oct_details?.rate ?? 0)}/s)`],
      ['To client', `${fmt.bytes(c.send_oct)} (${fmt.bytes(c.send_oct_details?.rate ?? 0)}/s)`],
    ]));
    const p = { ...(c.client_properties || {}) };
    const capabilities = p.capabilities || {};
    delete p.capabilities;
    fill(props, kv(Object.entries(p).map(([k, v]) => [k, typeof v === 'object' ? JSON.stringify(v) : String(v)])));
    fill(caps, Object.keys(capabilities).length
      ? Object.entries(capabilities).map(([k, v]) => h('span', { class: 'tag', title: String(v) }, v === true ? k : `${k}: ${v}`))
      : h('span', { class: 'muted' }, 'None announced.'));
  });
  view.every(async () => {
    const rows = await api.get(api.path`/connections/${name}/channels`);
    fill(chans, table({ columns: channelColumns().filter((col) => col.key !== 'connection_details.name'), rows, test: 'connection-channels-table', empty: 'No channels open.' }));
  });
}

export const routes = [
  { path: 'connections', nav: 'connections', navLabel: 'Connections', title: 'Connections', render: list },
  { path: 'connections/:name', nav: 'connections', title: (p) => `Connection ${p.name}`, render: one },
];
