// Admin: users (tags, password, permissions, topic permissions), vhosts (with their
// permissions and limits), policies and operator policies, and limits. Each part is
// offered only when the user's tags allow it (administrator; policymaker for
// policies), as the API would refuse it anyway.

import * as api from '../api.js';
import { h, fill, fmt, kv, link, act, rate } from '../dom.js';
import { serverTable, table } from '../table.js';
import { form, field, input, argumentsEditor } from '../form.js';
import { vhostSelect } from '../vhosts.js';

const TAGS = ['administrator', 'monitoring', 'policymaker', 'management', 'impersonator'];
const VHOST_LIMITS = ['max-connections', 'max-queues'];
const USER_LIMITS = ['max-connections', 'max-channels'];
/** Policy keys a developer reaches for, with their value types. */
const POLICY_KEYS = [
  { key: 'message-ttl', label: 'Message TTL', type: 'number', value: '60000' },
  { key: 'expires', label: 'Auto expire', type: 'number', value: '1800000' },
  { key: 'max-length', label: 'Max length', type: 'number', value: '1000' },
  { key: 'max-length-bytes', label: 'Max length bytes', type: 'number' },
  { key: 'overflow', label: 'Overflow', value: 'reject-publish' },
  { key: 'dead-letter-exchange', label: 'Dead letter exchange' },
  { key: 'dead-letter-routing-key', label: 'Dead letter routing key' },
  { key: 'queue-mode', label: 'Lazy mode', value: 'lazy' },
  { key: 'delivery-limit', label: 'Delivery limit', type: 'number', value: '10' },
  { key: 'alternate-exchange', label: 'Alternate exchange' },
];
const SECTIONS = [
  ['users', 'Users', 'administrator'],
  ['vhosts', 'Virtual hosts', 'administrator'],
  ['policies', 'Policies', 'policymaker'],
  ['limits', 'Limits', 'administrator'],
];

function subnav(current) {
  return h('nav', { class: 'subnav row', 'aria-label': 'Admin sections' }, SECTIONS.filter(([, , tag]) => api.session.has(tag)).map(([s, label]) =>
    h('a', { href: `#/admin/${s}`, 'aria-current': s === current ? 'page' : null, dataset: { test: `admin-${s}` } }, label)));
}

/** The page's frame: the sub-nav, and a note instead of the content without the tag. */
function frame(view, current, tag, title) {
  view.el.append(h('h1', null, title), subnav(current));
  if (api.session.has(tag)) return true;
  view.el.append(h('p', { class: 'muted' }, `This needs the ${tag} tag.`));
  return false;
}

/** A row's button that runs `fn` after a confirm, then refreshes the page. */
function rowButton(view, label, test, question, fn) {
  const b = h('button', { type: 'button', class: 'secondary', dataset: { test } }, label);
  b.addEventListener('click', () => {
    if (question && !confirm(question)) return;
    act(b, async () => { await fn(); await view.refresh(); }, `${label}: done.`);
  });
  return b;
}

function tagsField(value = '') {
  const el = input('tags', { value, test: 'user-tags', placeholder: 'administrator, monitoring' });
  const quick = h('div', { class: 'helpers row' }, h('span', { class: 'muted' }, 'Add:'), TAGS.map((t) =>
    h('button', { type: 'button', class: 'secondary', onclick: () => {
      const tags = el.value.split(',').map((x) => x.trim()).filter(Boolean);
      if (!tags.includes(t)) tags.push(t);
      el.value = tags.join(', ');
    } }, t)));
  return [field('Tags', el, 'Comma-separated'), quick];
}

// ---- Users

function users(view) {
  if (!frame(view, 'users', 'administrator', 'Users')) return;
  const t = serverTable({
    path: () => '/users',
    test: 'users-table',
    defaultSort: 'name',
    columns: [
      { key: 'name', title: 'Name', render: (u) => link(u.name, 'admin', 'users', u.name) },
      { key: 'tags', title: 'Tags', render: (u) => [].concat(u.tags || []).map((x) => h('span', { class: 'tag' }, x)) },
      { key: 'password_hash', title: 'Password', sort: false, render: (u) => (u.password_hash ? 'set' : h('span', { class: 'muted' }, 'none')) },
    ],
  });
  view.el.append(t.el, h('section', { class: 'panel' }, h('h2', null, 'Add a user'), form({
    test: 'add-user',
    submit: 'Add user',
    fields: [h('div', { class: 'row' },
      field('Username', input('name', { required: true, test: 'user-name' })),
      field('Password', input('password', { type: 'password', test: 'user-password' }))), ...tagsField()],
    async onSubmit(v) {
      await api.put(api.path`/users/${v.name}`, { password: v.password, tags: v.tags });
      view.refresh();
      return `User '${v.name}' added.`;
    },
  })));
  view.every(t.refresh);
}

function permissionsTable(view, rows, { byUser }) {
  return table({
    test: 'permissions-table',
    rowKey: (p) => (byUser ? p.vhost : p.user),
    rows,
    empty: 'No permissions.',
    columns: [
      byUser ? { key: 'vhost', title: 'Vhost', render: (p) => link(p.vhost, 'admin', 'vhosts', p.vhost) }
        : { key: 'user', title: 'User', render: (p) => link(p.user, 'admin', 'users', p.user) },
      { key: 'configure', title: 'Configure', render: (p) => h('code', null, p.configure) },
      { key: 'write', title: 'Write', render: (p) => h('code', null, p.write) },
      { key: 'read', title: 'Read', render: (p) => h('code', null, p.read) },
      { key: 'clear', title: '', render: (p) => rowButton(view, 'Clear', 'clear-permission', `Clear ${p.user}'s permissions in ${p.vhost}?`,
        () => api.del(api.path`/permissions/${p.vhost}/${p.user}`)) },
    ],
  });
}

function user(view, { name }) {
  if (!frame(view, 'users', 'administrator', `User ${name}`)) return;
  const facts = h('div', { dataset: { test: 'user-facts' } });
  const perms = h('div');
  const topics = h('div');
  let current = null;
  const tagsForm = form({
    test: 'edit-tags', submit: 'Save tags', reset: false,
    fields: tagsField(),
    async onSubmit(v) {
      // Without the hash the PUT would leave the user with no password.
      await api.put(api.path`/users/${name}`, { tags: v.tags, password_hash: current.password_hash, hashing_algorithm: current.hashing_algorithm });
      view.refresh();
      return 'Tags saved.';
    },
  });
  const del = h('button', { type: 'button', class: 'danger', dataset: { test: 'delete-user' } }, 'Delete user');
  del.addEventListener('click', () => {
    if (!confirm(`Delete user ${name}?`)) return;
    act(del, async () => { await api.del(api.path`/users/${name}`); location.hash = '#/admin/users'; }, `User '${name}' deleted.`);
  });
  view.el.append(
    h('div', { class: 'cols' },
      h('section', { class: 'panel' }, h('h2', null, 'Details'), facts, tagsForm),
      h('section', { class: 'panel' }, h('h2', null, 'Change password'), form({
        test: 'change-password', submit: 'Change password',
        fields: [field('New password', input('password', { type: 'password', required: true, test: 'new-password' }))],
        async onSubmit(v) {
          await api.put(api.path`/users/${name}`, { password: v.password, tags: (current?.tags || []).join(',') });
          return 'Password changed.';
        },
      }), h('h2', null, 'Delete'), del)),
    h('section', { class: 'panel' }, h('h2', null, 'Permissions'), perms, form({
      test: 'set-permission', submit: 'Set permission', inline: true,
      fields: [field('Virtual host', vhostSelect('permission-vhost')),
        field('Configure', input('configure', { value: '.*', test: 'permission-configure' })),
        field('Write', input('write', { value: '.*', test: 'permission-write' })),
        field('Read', input('read', { value: '.*', test: 'permission-read' }))],
      async onSubmit(v) {
        await api.put(api.path`/permissions/${v.vhost}/${name}`, { configure: v.configure, write: v.write, read: v.read });
        view.refresh();
        return `Permission in '${v.vhost}' set.`;
      },
    })),
    h('section', { class: 'panel' }, h('h2', null, 'Topic permissions'), topics, form({
      test: 'set-topic-permission', submit: 'Set topic permission', inline: true,
      fields: [field('Virtual host', vhostSelect('topic-vhost')),
        field('Exchange', input('exchange', { value: 'amq.topic', test: 'topic-exchange' })),
        field('Write', input('write', { value: '.*', test: 'topic-write' })),
        field('Read', input('read', { value: '.*', test: 'topic-read' }))],
      async onSubmit(v) {
        await api.put(api.path`/topic-permissions/${v.vhost}/${name}`, { exchange: v.exchange, write: v.write, read: v.read });
        view.refresh();
        return 'Topic permission set.';
      },
    })));
  let first = true;
  view.every(async () => {
    current = await api.get(api.path`/users/${name}`);
    const tags = [].concat(current.tags || []);
    fill(facts, kv([['Name', current.name], ['Tags', tags.join(', ') || 'none'], ['Password', current.password_hash ? 'set' : 'none (cannot log in with a password)']]));
    if (first) { tagsForm.querySelector('[name=tags]').value = tags.join(', '); first = false; }
    fill(perms, permissionsTable(view, await api.get(api.path`/users/${name}/permissions`), { byUser: true }));
    fill(topics, table({
      test: 'topic-permissions-table', rowKey: (p) => `${p.vhost}/${p.exchange}`, empty: 'No topic permissions.',
      rows: await api.get(api.path`/users/${name}/topic-permissions`),
      columns: [
        { key: 'vhost', title: 'Vhost' }, { key: 'exchange', title: 'Exchange' },
        { key: 'write', title: 'Write', render: (p) => h('code', null, p.write) },
        { key: 'read', title: 'Read', render: (p) => h('code', null, p.read) },
        { key: 'clear', title: '', render: (p) => rowButton(view, 'Clear', 'clear-topic-permission', `Clear ${name}'s topic permissions in ${p.vhost}?`,
          () => api.del(api.path`/topic-permissions/${p.vhost}/${name}`)) },
      ],
    }));
  });
}

// ---- Vhosts

function vhosts(view) {
  if (!frame(view, 'vhosts', 'administrator', 'Virtual hosts')) return;
  const t = serverTable({
    path: () => '/vhosts', test: 'vhosts-table', defaultSort: 'name',
    columns: [
      { key: 'name', title: 'Name', render: (v) => link(v.name, 'admin', 'vhosts', v.name) },
      { key: 'description', title: 'Description' },
      { key: 'messages_ready', title: 'Ready', num: true },
      { key: 'messages_unacknowledged', title: 'Unacked', num: true },
      { key: 'messages', title: 'Total', num: true },
      { key: 'message_stats.publish_details.rate', title: 'Publish', num: true, fields: ['message_stats.publish_details.rate'], render: (v) => fmt.rate(rate(v.message_stats, 'publish')) },
      { key: 'message_stats.deliver_get_details.rate', title: 'Deliver', num: true, fields: ['message_stats.deliver_get_details.rate'], render: (v) => fmt.rate(rate(v.message_stats, 'deliver_get')) },
    ],
  });
  view.el.append(t.el, h('section', { class: 'panel' }, h('h2', null, 'Add a virtual host'), form({
    test: 'add-vhost', submit: 'Add virtual host', inline: true,
    fields: [field('Name', input('name', { required: true, test: 'vhost-name' })),
      field('Description', input('description', { test: 'vhost-description' })),
      field('Tags', input('tags', { test: 'vhost-tags' }))],
    async onSubmit(v) {
      await api.put(api.path`/vhosts/${v.name}`, { description: v.description, tags: v.tags });
      view.refresh();
      return `Virtual host '${v.name}' added.`;
    },
  })));
  view.every(t.refresh);
}

function limitRows(view, entries, ownerKey, base) {
  return entries.flatMap((e) => Object.entries(e.value || {}).map(([k, value]) => ({ owner: e[ownerKey], key: k, value })))
    .map((r) => ({ ...r, clear: rowButton(view, 'Clear', 'clear-limit', `Clear ${r.key} of ${r.owner}?`, () => api.del(`${base}/${encodeURIComponent(r.owner)}/${encodeURIComponent(r.key)}`)) }))
    .map((r) => ({ ...r, name: `${r.owner}/${r.key}` }));
}

function limitsTable(rows, ownerTitle, test) {
  return table({ test, rows, empty: 'No limits.', columns: [
    { key: 'owner', title: ownerTitle }, { key: 'key', title: 'Limit' }, { key: 'value', title: 'Value', num: true }, { key: 'clear', title: '' }] });
}

function vhost(view, { name }) {
  if (!frame(view, 'vhosts', 'administrator', `Virtual host ${name}`)) return;
  const facts = h('div', { dataset: { test: 'vhost-facts' } });
  const perms = h('div');
  const limits = h('div');
  const del = h('button', { type: 'button', class: 'danger', dataset: { test: 'delete-vhost' } }, 'Delete virtual host');
  del.addEventListener('click', () => {
    if (!confirm(`Delete virtual host ${name} and everything in it?`)) return;
    act(del, async () => { await api.del(api.path`/vhosts/${name}`); location.hash = '#/admin/vhosts'; }, `Virtual host '${name}' deleted.`);
  });
  view.el.append(h('section', { class: 'panel' }, h('h2', null, 'Details'), facts, del),
    h('section', { class: 'panel' }, h('h2', null, 'Permissions'), perms),
    h('section', { class: 'panel' }, h('h2', null, 'Limits'), limits, limitForm(view, 'vhost', VHOST_LIMITS, name)));
  view.every(async () => {
    const v = await api.get(api.path`/vhosts/${name}`);
    fill(facts, kv([['Name', v.name], ['Description', v.description || ''], ['Tags', [].concat(v.tags || []).join(', ')],
      ['Messages', `${fmt.num(v.messages)} (${fmt.num(v.messages_ready)} ready, ${fmt.num(v.messages_unacknowledged)} unacked)`],
      ['Publish', fmt.rate(rate(v.message_stats, 'publish'))], ['Default queue type', v.default_queue_type]]));
    fill(perms, permissionsTable(view, await api.get(api.path`/vhosts/${name}/permissions`), { byUser: false }));
    const l = await api.get(api.path`/vhost-limits/${name}`);
    fill(limits, limitsTable(limitRows(view, l, 'vhost', '/vhost-limits'), 'Vhost', 'vhost-limits-table'));
  });
}

// ---- Policies

function policies(view) {
  if (!frame(view, 'policies', 'policymaker', 'Policies')) return;
  const kinds = [['policies', 'Policies', 'policies-table'], ['operator-policies', 'Operator policies', 'operator-policies-table']];
  for (const [kind, title, test] of kinds) {
    const t = serverTable({
      path: () => (api.session.vhost ? `/${kind}/${encodeURIComponent(api.session.vhost)}` : `/${kind}`),
      test, prefix: kind === 'policies' ? '' : 'op-', rowKey: (p) => `${p.vhost}/${p.name}`, defaultSort: 'name', empty: 'None.',
      columns: [
        { key: 'vhost', title: 'Vhost' }, { key: 'name', title: 'Name' },
        { key: 'pattern', title: 'Pattern', render: (p) => h('code', null, p.pattern) },
        { key: 'apply-to', title: 'Apply to' }, { key: 'priority', title: 'Priority', num: true },
        { key: 'definition', title: 'Definition', sort: false, render: (p) => Object.entries(p.definition || {}).map(([k, v]) => h('div', null, h('code', null, `${k}: ${JSON.stringify(v)}`))) },
        { key: 'delete', title: '', sort: false, fields: [], render: (p) => rowButton(view, 'Delete', 'delete-policy', `Delete policy ${p.name}?`,
          () => api.del(`/${kind}/${encodeURIComponent(p.vhost)}/${encodeURIComponent(p.name)}`)) },
      ],
    });
    view.el.append(h('h2', null, title), t.el);
    view.every(t.refresh);
  }
  view.el.append(h('section', { class: 'panel' }, h('h2', null, 'Add or update a policy'), form({
    test: 'add-policy', submit: 'Save policy',
    fields: [
      h('div', { class: 'row' },
        field('Kind', input('kind', { options: [['policies', 'Policy'], ['operator-policies', 'Operator policy']], test: 'policy-kind' })),
        field('Virtual host', vhostSelect('policy-vhost')),
        field('Name', input('name', { required: true, test: 'policy-name' })),
        field('Pattern', input('pattern', { required: true, value: '^', test: 'policy-pattern' }), 'A regular expression on queue or exchange names'),
        field('Apply to', input('apply_to', { options: [['all', 'Exchanges and queues'], ['queues', 'Queues'], ['exchanges', 'Exchanges']], test: 'policy-apply-to' })),
        field('Priority', input('priority', { type: 'number', value: '0', test: 'policy-priority' }))),
      field('Definition', argumentsEditor('definition', POLICY_KEYS)),
    ],
    async onSubmit(v) {
      if (!Object.keys(v.definition).length) throw new Error('A policy needs at least one definition key.');
      await api.put(`/${v.kind}/${encodeURIComponent(v.vhost)}/${encodeURIComponent(v.name)}`, { pattern: v.pattern, 'apply-to': v.apply_to, priority: v.priority ?? 0, definition: v.definition });
      view.refresh();
      return `Policy '${v.name}' saved.`;
    },
  })));
}

// ---- Limits

function limitForm(view, kind, names, fixedOwner) {
  const owner = fixedOwner ? null : (kind === 'vhost' ? vhostSelect('limit-vhost') : input('owner', { required: true, test: 'limit-user' }));
  return form({
    test: `set-${kind}-limit`, submit: 'Set limit', inline: true,
    fields: [owner && field(kind === 'vhost' ? 'Virtual host' : 'User', owner),
      field('Limit', input('limit', { options: names, test: `${kind}-limit-name` })),
      field('Value', input('value', { type: 'number', required: true, value: '100', test: `${kind}-limit-value` }), '-1: no limit')],
    async onSubmit(v) {
      const who = fixedOwner || (kind === 'vhost' ? v.vhost : v.owner);
      await api.put(`/${kind}-limits/${encodeURIComponent(who)}/${encodeURIComponent(v.limit)}`, { value: v.value });
      view.refresh();
      return `Limit ${v.limit} of '${who}' set.`;
    },
  });
}

function limits(view) {
  if (!frame(view, 'limits', 'administrator', 'Limits')) return;
  const vl = h('div');
  const ul = h('div');
  view.el.append(
    h('section', { class: 'panel' }, h('h2', null, 'Virtual host limits'), vl, limitForm(view, 'vhost', VHOST_LIMITS)),
    h('section', { class: 'panel' }, h('h2', null, 'User limits'), ul, limitForm(view, 'user', USER_LIMITS)));
  view.every(async () => {
    fill(vl, limitsTable(limitRows(view, await api.get('/vhost-limits'), 'vhost', '/vhost-limits'), 'Vhost', 'vhost-limits-table'));
    fill(ul, limitsTable(limitRows(view, await api.get('/user-limits'), 'user', '/user-limits'), 'User', 'user-limits-table'));
  });
}

export const routes = [
  { path: 'admin/users', nav: 'admin', navLabel: 'Admin', title: 'Users', render: users },
  { path: 'admin/users/:name', nav: 'admin', title: (p) => `User ${p.name}`, render: user },
  { path: 'admin/vhosts', nav: 'admin', title: 'Virtual hosts', render: vhosts },
  { path: 'admin/vhosts/:name', nav: 'admin', title: (p) => `Virtual host ${p.name}`, render: vhost },
  { path: 'admin/policies', nav: 'admin', title: 'Policies', render: policies },
  { path: 'admin/limits', nav: 'admin', title: 'Limits', render: limits },
];
