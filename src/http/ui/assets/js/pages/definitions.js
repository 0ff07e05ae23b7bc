// Definitions: download the broker's (or one vhost's) definitions as a JSON file named
// as RabbitMQ's UI names it, and upload a file (RabbitMQ's import) with the outcome.

import * as api from '../api.js';
import { h, fill, toast } from '../dom.js';
import { field } from '../form.js';

/** rabbit_HOST_YYYY-M-D.json, as RabbitMQ's UI names the download. */
function filename(node) {
  const host = (node || '').split('@')[1] || location.hostname || 'localhost';
  const d = new Date();
  return `rabbit_${host}_${d.getFullYear()}-${d.getMonth() + 1}-${d.getDate()}.json`;
}

function scopeSelect(id, test) {
  const s = h('select', { id, dataset: { test } }, h('option', { value: '' }, 'All virtual hosts'));
  api.get('/vhosts', { columns: 'name' }).then((vs) => s.append(...vs.map((v) => h('option', { value: v.name }, v.name)))).catch(() => {});
  return s;
}

const where = (vhost) => (vhost ? api.path`/definitions/${vhost}` : '/definitions');

function render(view) {
  view.el.append(h('h1', null, 'Definitions'));
  if (!api.session.has('administrator')) {
    view.el.append(h('p', { class: 'muted' }, 'Exporting and importing definitions needs the administrator tag.'));
    return;
  }
  let url = null;
  view.onDispose(() => { if (url) URL.revokeObjectURL(url); });
  const dlScope = scopeSelect('definitions-scope', 'definitions-vhost');
  const saved = h('a', { class: 'button secondary', hidden: true, dataset: { test: 'definitions-link' } }, 'Save again');
  const summary = h('p', { class: 'muted', dataset: { test: 'download-summary' } });
  const download = h('button', { type: 'button', dataset: { test: 'download-definitions' } }, 'Download');
  download.addEventListener('click', async () => {
    download.disabled = true;
    try {
      const [defs, overview] = await Promise.all([api.get(where(dlScope.value)), api.get('/overview', { columns: 'node' }).catch(() => ({}))]);
      if (url) URL.revokeObjectURL(url);
      url = URL.createObjectURL(new Blob([JSON.stringify(defs, null, 2)], { type: 'application/json' }));
      saved.href = url;
      saved.download = filename(overview.node);
      saved.hidden = false;
      fill(summary, `${saved.download}: ${(defs.queues || []).length} queues, ${(defs.exchanges || []).length} exchanges, ${(defs.bindings || []).length} bindings, ${(defs.users || []).length} users, ${(defs.policies || []).length} policies.`);
      saved.click();
    } catch (e) {
      toast(e.message, 'error');
    } finally {
      download.disabled = false;
    }
  });

  const file = h('input', { type: 'file', accept: '.json,application/json', dataset: { test: 'definitions-file' } });
  const upScope = scopeSelect('definitions-upload-scope', 'upload-vhost');
  const outcome = h('p', { role: 'status', dataset: { test: 'upload-result' } });
  const upload = h('button', { type: 'button', dataset: { test: 'upload-definitions' } }, 'Upload');
  upload.addEventListener('click', async () => {
    const f = file.files?.[0];
    if (!f) { fill(outcome, h('span', { class: 'error' }, 'Choose a file first.')); return; }
    upload.disabled = true;
    fill(outcome, 'Uploading…');
    try {
      const text = await f.text();
      await api.request('POST', where(upScope.value), text, { headers: { 'content-type': 'application/json' } });
      fill(outcome, h('span', { class: 'ok' }, `Imported ${f.name} into ${upScope.value ? `virtual host '${upScope.value}'` : 'the broker'}.`));
    } catch (e) {
      fill(outcome, h('span', { class: 'error' }, `Import refused: ${e.message}`));
    } finally {
      upload.disabled = false;
    }
  });

  view.el.append(
    h('section', { class: 'panel' }, h('h2', null, 'Export'),
      h('p', { class: 'muted' }, 'Users, virtual hosts, permissions, policies, queues, exchanges and bindings, in RabbitMQ\'s format.'),
      h('div', { class: 'row' }, field('Scope', dlScope), download, saved), summary),
    h('section', { class: 'panel' }, h('h2', null, 'Import'),
      h('p', { class: 'muted' }, 'Adds and updates what the file defines; nothing is deleted.'),
      h('div', { class: 'row' }, field('Definitions file', file), field('Into', upScope), upload), outcome));
}

export const routes = [{ path: 'definitions', nav: 'definitions', navLabel: 'Definitions', title: 'Definitions', render }];
