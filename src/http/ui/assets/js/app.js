// The shell: login, header (nav, search, vhost, badges), hash routing and the live
// refresh. Pages are modules under pages/ that export `routes`; each route's
// render(view, params) draws into view.el and registers its refreshes with view.every().

import * as api from './api.js';
import { h, fill, toast } from './dom.js';
import { mountSearch } from './search.js';
import { diagnosticsBadge } from './pages/diagnostics.js';
import * as overview from './pages/overview.js';
import * as connections from './pages/connections.js';
import * as channels from './pages/channels.js';
import * as exchanges from './pages/exchanges.js';
import * as queues from './pages/queues.js';
import * as admin from './pages/admin.js';
import * as definitions from './pages/definitions.js';
import * as tracer from './pages/tracer.js';
import * as diagnostics from './pages/diagnostics.js';
import * as search from './search.js';

const MODULES = [overview, connections, channels, exchanges, queues, admin, definitions, tracer, diagnostics, search];

/** RabbitMQ's UI refreshes every 5 s; so does this one. */
export const REFRESH_MS = 5000;

const routes = MODULES.flatMap((m) => m.routes || []).map((r) => ({
  ...r,
  parts: r.path.split('/').filter(Boolean),
}));

const $ = (id) => document.getElementById(id);
let current = null; // the view shown: { el, refreshers, disposers, timer }

function match(hashPath) {
  const segs = hashPath.split('/').filter(Boolean);
  for (const r of routes) {
    if (r.parts.length !== segs.length) continue;
    const params = {};
    const ok = r.parts.every((p, i) => {
      if (p.startsWith(':')) {
        try { params[p.slice(1)] = decodeURIComponent(segs[i]); } catch { return false; }
        return true;
      }
      return p === segs[i];
    });
    if (ok) return { route: r, params };
  }
  return null;
}

function dispose() {
  if (!current) return;
  clearInterval(current.timer);
  current.disposed = true;
  current.disposers.forEach((fn) => { try { fn(); } catch { /* already gone */ } });
  current = null;
}

async function runRefreshers(view) {
  if (view.disposed || view.running) return;
  view.running = true;
  try {
    await Promise.all(view.refreshers.map(async (fn) => {
      try {
        await fn();
      } catch (e) {
        if (e.name === 'AbortError' || view.disposed) return;
        if (e.status === 401) return;
        view.error(e);
      }
    }));
  } finally {
    view.running = false;
    // Counts the refreshes that ran to the end: browser tests wait on it (interop/ui).
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  }
}

async function render() {
  dispose();
  document.body.dataset.ready = '0';
  const main = $('main');
  const [hashPath] = (location.hash.slice(1) || '/').split('?');
  const found = match(hashPath);
  const nav = found?.route.nav || '';
  for (const a of $('nav').children) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const el = h('div', { class: 'page' });
  fill(main, el);
  if (!found) {
    fill(el, h('h1', null, 'Not found'), h('p', null, 'No page at this address. ', h('a', { href: '#/' }, 'Overview')));
    document.body.dataset.ready = '1';
    return;
  }
  const errorBox = h('p', { class: 'error', role: 'alert', dataset: { test: 'page-error' } });
  const view = {
    el,
    params: found.params,
    refreshers: [],
    disposers: [],
    disposed: false,
    every(fn) { this.refreshers.push(fn); },
    onDispose(fn) { this.disposers.push(fn); },
    error(e) {
      // A page whose object is gone (deleted elsewhere) says so instead of going blank.
      fill(errorBox, e.status === 404 ? 'Not found: it may have been deleted.' : `Error: ${e.message}`);
      if (!errorBox.isConnected) el.prepend(errorBox);
    },
    /** Runs the refreshers now (after an action changed something). */
    refresh() { return runRefreshers(this); },
  };
  current = view;
  document.title = `warren: ${typeof found.route.title === 'function' ? found.route.title(found.params) : found.route.title}`;
  try {
    await found.route.render(view, found.params);
    await runRefreshers(view);
  } catch (e) {
    view.error(e);
  }
  if (view.disposed) return;
  // Errors shown by a refresh stay until the next successful one.
  view.refreshers.push(async () => { errorBox.remove(); });
  view.timer = setInterval(() => { if (!document.hidden) runRefreshers(view); }, REFRESH_MS);
  document.body.dataset.ready = '1';
}

// A tab brought back to the front refreshes at once rather than at the next tick.
document.addEventListener('visibilitychange', () => {
  if (!document.hidden && current) runRefreshers(current);
});

async function loadVhosts() {
  const select = $('vhost');
  let vhosts = [];
  try { vhosts = await api.get('/vhosts', { columns: 'name' }); } catch { vhosts = []; }
  const names = vhosts.map((v) => v.name);
  if (api.session.vhost && !names.includes(api.session.vhost)) api.session.setVhost('');
  fill(select, h('option', { value: '' }, 'All vhosts'), names.map((n) => h('option', { value: n, selected: n === api.session.vhost }, n)));
}

function buildHeader() {
  fill($('nav'), routes.filter((r) => r.nav && r.navLabel).map((r) => h('a', { href: `#/${r.path}`, dataset: { nav: r.nav, test: `nav-${r.nav}` } }, r.navLabel)));
  fill($('who'), api.session.user || '');
  fill($('badges'), diagnosticsBadge());
}

async function start() {
  $('login').hidden = true;
  $('top').hidden = false;
  buildHeader();
  await loadVhosts();
  await render();
}

function showLogin(message) {
  dispose();
  api.forget();
  $('top').hidden = true;
  fill($('main'));
  $('login').hidden = false;
  fill($('login-error'), message || '');
  document.body.dataset.ready = '1';
  $('login-user').focus();
}

/** Checks the credentials with /api/whoami and keeps the user's name and tags. */
async function whoami() {
  const me = await api.get('/whoami');
  api.session.user = me.name;
  api.session.tags = Array.isArray(me.tags) ? me.tags : String(me.tags || '').split(',').filter(Boolean);
}

$('login').addEventListener('submit', async (e) => {
  e.preventDefault();
  const user = $('login-user').value;
  api.setCredentials(user, $('login-pass').value);
  try {
    await whoami();
    $('login-pass').value = '';
    await start();
  } catch (err) {
    showLogin(err.message || 'Login failed');
  }
});

$('logout').addEventListener('click', () => showLogin(''));
$('vhost').addEventListener('change', () => { api.session.setVhost($('vhost').value); render(); });
api.onUnauthorised((body) => {
  if (!$('login').hidden) return;
  showLogin(body?.reason || 'Login failed');
  toast('Signed out: the credentials were refused.', 'error');
});
window.addEventListener('hashchange', () => { if (api.loggedIn() && $('login').hidden) render(); });
mountSearch($('search'));

(async () => {
  if (!api.loggedIn()) { showLogin(''); return; }
  try {
    await whoami();
    await start();
  } catch (err) {
    showLogin(err.status === 401 ? err.message : `Cannot reach the API: ${err.message}`);
  }
})();
