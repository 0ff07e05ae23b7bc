// Live line charts in SVG. Each series keeps a fixed ring of points, so a chart that
// refreshes every 5 s for hours holds the same memory as after its first minute.

import { h, fmt } from './dom.js';

const NS = 'http://www.w3.org/2000/svg';
const COLOURS = ['var(--c1)', 'var(--c2)', 'var(--c3)', 'var(--c4)', 'var(--c5)', 'var(--c6)'];
const W = 600;
const H = 160;

function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return el;
}

/**
 * lineChart({ title, series: ['published', 'delivered'], capacity: 120, format: fmt.rate, test })
 * -> { el, push(timestampMs, [v1, v2…]), load(samples) } where samples is
 * [[timestampMs, [v1, v2…]], …] oldest first (history the API kept).
 */
export function lineChart({ title, series, capacity = 120, format = fmt.rate, test }) {
  const times = new Float64Array(capacity);
  const values = series.map(() => new Float64Array(capacity));
  let count = 0;
  let head = 0; // next slot to write

  const lines = series.map((_, i) => svg('polyline', { class: 'line', stroke: COLOURS[i % COLOURS.length] }));
  const plot = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': title || 'chart' });
  plot.append(svg('line', { class: 'axis', x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5 }), ...lines);
  const currents = series.map(() => h('strong'));
  const legend = h('div', { class: 'legend' }, series.map((name, i) => h('span', null,
    h('span', { class: 'swatch', style: { background: COLOURS[i % COLOURS.length] } }), `${name} `, currents[i])));
  const top = h('span');
  const span = h('span');
  const el = h('figure', { class: 'chart', dataset: { test } },
    title && h('figcaption', { class: 'muted' }, title),
    h('div', { class: 'scale' }, top, span), plot, legend);

  function draw() {
    let max = 0;
    for (const v of values) for (let i = 0; i < count; i += 1) max = Math.max(max, v[i]);
    const ceiling = niceCeiling(max);
    const first = (head - count + capacity) % capacity;
    const t0 = times[first];
    const t1 = times[(head - 1 + capacity) % capacity];
    const spanMs = Math.max(t1 - t0, 1);
    values.forEach((v, s) => {
      const pts = [];
      for (let i = 0; i < count; i += 1) {
        const slot = (first + i) % capacity;
        const x = count === 1 ? W : ((times[slot] - t0) / spanMs) * W;
        const y = H - (ceiling ? (v[slot] / ceiling) * (H - 4) : 0) - 1;
        pts.push(`${x.toFixed(1)},${y.toFixed(1)}`);
      }
      lines[s].setAttribute('points', pts.join(' '));
      currents[s].textContent = count ? format(v[(head - 1 + capacity) % capacity]) : '–';
    });
    top.textContent = `max ${format(ceiling)}`;
    span.textContent = count > 1 ? `last ${fmt.duration(t1 - t0)}` : '';
  }

  function add(t, vals) {
    // A sample no newer than the last one (a repeated poll) replaces nothing.
    if (count && t <= times[(head - 1 + capacity) % capacity]) return;
    times[head] = t;
    vals.forEach((v, i) => { if (i < values.length) values[i][head] = Number(v) || 0; });
    head = (head + 1) % capacity;
    count = Math.min(count + 1, capacity);
  }

  return {
    el,
    push(t, vals) { add(t, vals); draw(); },
    load(samples) {
      count = 0;
      head = 0;
      for (const [t, vals] of samples.slice(-capacity)) add(t, vals);
      draw();
    },
  };
}

/** The smallest 1, 2 or 5 × 10^k at or above v. */
function niceCeiling(v) {
  if (v <= 0) return 0;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
