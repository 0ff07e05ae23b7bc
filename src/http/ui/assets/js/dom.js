// Building and formatting DOM without a framework. Text always goes in as text nodes
// (never innerHTML), so message payloads, names and headers can't inject markup.

/** h('a', {href: '#/x', class: 'y', onclick: fn, dataset: {test: 'z'}}, 'text', child…) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'class') el.className = v;
    else if (k === 'style' && typeof v === 'object') Object.assign(el.style, v);
    else if (k === 'value' || k === 'checked' || k === 'selected') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** The hash link of an object's page: href('queues', vhost, name) -> "#/queues/%2F/q". */
export function href(...segments) {
  return `#/${segments.map((s) => encodeURIComponent(s)).join('/')}`;
}

export function link(text, ...segments) {
  return h('a', { href: href(...segments) }, text);
}

/** A definition list from [label, value] pairs (values may be nodes). */
export function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v ?? '')]));
}

export const fmt = {
  num(n) {
    if (n === undefined || n === null || Number.isNaN(n)) return '–';
    return Number(n).toLocaleString('en-US');
  },
  rate(r) {
    if (r === undefined || r === null) return '–';
    const v = Number(r);
    if (v === 0) return '0/s';
    if (v >= 100) return `${Math.round(v).toLocaleString('en-US')}/s`;
    return `${v.toFixed(v >= 10 ? 1 : 2)}/s`;
  },
  bytes(n) {
    if (n === undefined || n === null) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let v = Number(n);
    let i = 0;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
    return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)} ${units[i]}`;
  },
  duration(ms) {
    if (ms === undefined || ms === null) return '–';
    let s = Math.floor(ms / 1000);
    const d = Math.floor(s / 86400); s -= d * 86400;
    const hr = Math.floor(s / 3600); s -= hr * 3600;
    const m = Math.floor(s / 60); s -= m * 60;
    if (d) return `${d}d ${hr}h`;
    if (hr) return `${hr}h ${m}m`;
    if (m) return `${m}m ${s}s`;
    return `${s}s`;
  },
  time(ms) {
    if (!ms) return '–';
    return new Date(ms).toLocaleString();
  },
  bool(b) { return b ? 'yes' : 'no'; },
};

/** A rate from a RabbitMQ stats object: rate(q.message_stats, 'publish'). */
export function rate(stats, key) {
  return stats?.[`${key}_details`]?.rate ?? 0;
}

/** Bytes as base64, in chunks (a spread of a large array overflows the call stack). */
export function toBase64(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

/** A short note in the corner; errors stay longer. */
export function toast(message, kind = 'ok') {
  const box = document.getElementById('toasts');
  const t = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status', dataset: { test: `toast-${kind}` } }, message);
  box.append(t);
  // Never more than a handful on screen.
  while (box.children.length > 5) box.firstChild.remove();
  setTimeout(() => t.remove(), kind === 'error' ? 9000 : 4000);
}

/** Runs an action from a button: disables it meanwhile, shows the outcome as a toast. */
export async function act(button, fn, done) {
  if (button) button.disabled = true;
  try {
    const result = await fn();
    if (done) toast(done);
    return result;
  } catch (e) {
    toast(e.message || String(e), 'error');
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

/** Payload bytes as the UI shows them: pretty JSON when it is JSON, else text; and as
 *  hex or base64 on request. `payload` and `encoding` as the API gives them. */
export function decodePayload(payload, encoding) {
  let bytes;
  if (encoding === 'base64') {
    const bin = atob(payload || '');
    bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } else {
    bytes = new TextEncoder().encode(payload || '');
  }
  let text = null;
  try { text = new TextDecoder('utf-8', { fatal: true }).decode(bytes); } catch { text = null; }
  let json = null;
  if (text !== null && /^\s*[[{"\d-tfn]/.test(text)) {
    try { json = JSON.stringify(JSON.parse(text), null, 2); } catch { json = null; }
  }
  return {
    bytes,
    text,
    json,
    hex() { return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' '); },
    base64() { return toBase64(bytes); },
  };
}
