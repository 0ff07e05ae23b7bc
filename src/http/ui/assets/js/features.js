// The compact "Features" cell of the exchange and queue lists and pages, as RabbitMQ's UI
// draws it: D (durable), AD (auto delete), I (internal), Excl (exclusive), and one short
// tag per known argument (TTL, DLX, Lim...), each with the full name and value as its
// title. Pure: builds nodes from an object the API returned.

import { h, fmt } from './dom.js';
import { valueText } from './message.js';

/** Argument -> short tag, in the order they are shown. */
const ARGUMENT_TAGS = [
  ['x-queue-type', null],
  ['x-message-ttl', 'TTL'],
  ['x-expires', 'Exp'],
  ['x-max-length', 'Lim'],
  ['x-max-length-bytes', 'Lim B'],
  ['x-overflow', 'Ovfl'],
  ['x-dead-letter-exchange', 'DLX'],
  ['x-dead-letter-routing-key', 'DLK'],
  ['x-max-priority', 'Pri'],
  ['x-single-active-consumer', 'SAC'],
  ['x-queue-mode', 'Lazy'],
  ['x-delivery-limit', 'DLim'],
  ['alternate-exchange', 'AE'],
];

function tag(text, title, test) {
  return h('abbr', { class: 'tag', title, dataset: { test: test || null } }, text);
}

/** A time argument in milliseconds, short: 500ms, 1m 0s, 2h 0m. */
function millis(v) {
  const n = Number(v);
  return Number.isFinite(n) && n < 1000 ? `${n}ms` : fmt.duration(n);
}

/** Nodes for a queue's or exchange's features: featureTags(q). */
export function featureTags(obj) {
  const out = [];
  if (obj.durable) out.push(tag('D', 'durable'));
  if (obj.auto_delete) out.push(tag('AD', 'auto delete'));
  if (obj.internal) out.push(tag('I', 'internal'));
  if (obj.exclusive) out.push(tag('Excl', 'exclusive'));
  const args = obj.arguments || {};
  const known = new Set();
  for (const [key, short] of ARGUMENT_TAGS) {
    known.add(key);
    if (!(key in args) || short === null) continue;
    const v = args[key];
    // The default exchange's name is empty: a DLX of "" still needs something to show.
    const shown = key === 'x-message-ttl' || key === 'x-expires' ? millis(v) : (v === '' ? '(default)' : valueText(v));
    out.push(tag(key === 'x-queue-mode' ? short : `${short} ${shown}`, `${key}: ${valueText(v)}`, `feature-${key}`));
  }
  const others = Object.keys(args).filter((k) => !known.has(k));
  if (others.length) out.push(tag('Args', others.map((k) => `${k}: ${valueText(args[k])}`).join('\n')));
  if (obj.policy) out.push(h('span', { class: 'tag policy', title: 'policy' }, obj.policy));
  return out;
}

/** The API columns featureTags reads, for a list's `columns` parameter. */
export const FEATURE_FIELDS = ['durable', 'auto_delete', 'internal', 'exclusive', 'arguments', 'policy'];
