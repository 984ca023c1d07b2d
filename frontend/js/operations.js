// The Operations view: what the local stack's functions report (their EMF metric lines), queue
// depths, imports in flight and the last cleanup runs, plotted with small SVG charts drawn here.
// Its data comes from the local stack only (/operations.json on the front end's own server); a
// deployed front end has none, and the view stays hidden there.

import { h } from './dom.js';

const DATA_URL = 'operations.json';
const REFRESH_MS = 1000;
const SVG = 'http://www.w3.org/2000/svg';
const WIDTH = 480;
const HEIGHT = 160;
const PAD = { left: 40, right: 8, top: 8, bottom: 22 };

function svg(tag, attributes = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

function chart(label, testId) {
  return svg('svg', {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', 'aria-label': label, 'data-testid': testId, class: 'ops-chart',
  });
}

function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((step) => step * power).find((candidate) => candidate >= value);
}

function axes(plot, max, unit) {
  const bottom = HEIGHT - PAD.bottom;
  plot.append(
    svg('line', { x1: PAD.left, y1: bottom, x2: WIDTH - PAD.right, y2: bottom, class: 'ops-axis' }),
    svg('line', { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: bottom, class: 'ops-axis' }),
    svg('text', { x: PAD.left - 4, y: PAD.top + 8, 'text-anchor': 'end', class: 'ops-tick' }, `${max}${unit}`),
    svg('text', { x: PAD.left - 4, y: bottom, 'text-anchor': 'end', class: 'ops-tick' }, '0'),
  );
}

// A line per series over time: series = [{name, className, points: [[t, value], ...]}].
function lines(plot, series, { unit = '', from, to }) {
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.points.map(([, v]) => v))));
  axes(plot, max, unit);
  const x = (t) => PAD.left + ((t - from) / Math.max(1, to - from)) * (WIDTH - PAD.left - PAD.right);
  const y = (v) => HEIGHT - PAD.bottom - (v / max) * (HEIGHT - PAD.top - PAD.bottom);
  series.forEach((s, index) => {
    if (!s.points.length) return;
    const d = s.points.map(([t, v], i) => `${i ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    plot.append(svg('path', { d, class: `ops-line ${s.className}`, 'data-series': s.name }));
    plot.append(svg('text', { x: PAD.left + 6 + index * 130, y: HEIGHT - 6, class: `ops-legend ${s.className}` }, s.name));
  });
}

// Horizontal bars: rows = [{label, values: [{name, className, value}]}].
function bars(plot, rows, { unit = '' } = {}) {
  const max = niceMax(Math.max(0, ...rows.flatMap((r) => r.values.map((v) => v.value))));
  const rowHeight = Math.max(12, Math.min(36, (HEIGHT - PAD.top - PAD.bottom) / Math.max(1, rows.length)));
  plot.setAttribute('viewBox', `0 0 ${WIDTH} ${Math.max(HEIGHT, PAD.top + PAD.bottom + rows.length * rowHeight)}`);
  const left = 150;
  rows.forEach((row, index) => {
    const top = PAD.top + index * rowHeight;
    // Long routes keep their end (the full label is in the chart's text alternative and data-label).
    const shown = row.label.length > 20 ? `\u2026${row.label.slice(-19)}` : row.label;
    plot.append(svg('text', { x: left - 6, y: top + rowHeight / 2 + 4, 'text-anchor': 'end', class: 'ops-tick' }, shown));
    const band = (rowHeight - 4) / row.values.length;
    row.values.forEach((v, i) => {
      const width = (v.value / max) * (WIDTH - left - 130);
      plot.append(svg('rect', {
        x: left, y: top + i * band, width: Math.max(1, width).toFixed(1), height: Math.max(2, band - 1).toFixed(1),
        class: `ops-bar ${v.className}`, 'data-label': row.label, 'data-series': v.name, 'data-value': v.value,
      }));
      if (i === row.values.length - 1 || row.values.length === 1) {
        const text = row.values.map((item) => `${round(item.value)}${unit}`).join(' / ');
        plot.append(svg('text', { x: left + width + 4, y: top + i * band + band / 2 + 4, class: 'ops-tick' }, text));
      }
    });
  });
}

function round(value) {
  return value >= 100 ? Math.round(value) : Math.round(value * 10) / 10;
}

function empty(plot, message) {
  plot.append(svg('text', { x: WIDTH / 2, y: HEIGHT / 2, 'text-anchor': 'middle', class: 'ops-empty' }, message));
}

function figure(title, plot, note) {
  return h('figure', { className: 'ops-figure' }, h('figcaption', { text: title }), plot, note ? h('p', { className: 'ops-note', text: note }) : null);
}

export function render(data) {
  const now = data.now;
  const rps = data.requests_per_second;
  const total = rps.reduce((sum, point) => sum + point.count, 0);
  const requests = chart(`Requests per second over the last ${rps.length} seconds: ${total} requests, peak ${Math.max(0, ...rps.map((p) => p.count))} per second`, 'ops-requests');
  requests.dataset.total = String(total);
  lines(requests, [{ name: 'requests/s', className: 'ops-s1', points: rps.map((p) => [p.at, p.count]) }],
    { from: now - rps.length + 1, to: now });

  const routes = data.latency_by_route;
  const latency = chart(`Latency by route, milliseconds: ${routes.map((r) => `${r.route} p50 ${round(r.p50)}, p95 ${round(r.p95)}, p99 ${round(r.p99)}`).join('; ') || 'no requests yet'}`, 'ops-latency');
  if (routes.length) {
    bars(latency, routes.map((r) => ({
      label: r.route,
      values: [{ name: 'p50', className: 'ops-s1', value: r.p50 }, { name: 'p95', className: 'ops-s2', value: r.p95 },
        { name: 'p99', className: 'ops-s3', value: r.p99 }],
    })), { unit: ' ms' });
  } else empty(latency, 'No requests yet');

  const problems = Object.entries(data.problems_by_type);
  const errors = chart(`Errors by problem type: ${problems.map(([type, count]) => `${type} ${count}`).join(', ') || 'none'}`, 'ops-errors');
  if (problems.length) {
    bars(errors, problems.map(([type, count]) => ({ label: type, values: [{ name: 'count', className: 'ops-s3', value: count }] })));
  } else empty(errors, 'No errors');

  const depths = data.queue_depths;
  const last = depths[depths.length - 1] || {};
  const queueNames = Object.keys(last).filter((name) => name !== 'at');
  const queues = chart(`Queue depths now: ${queueNames.map((name) => `${name} ${last[name]}`).join(', ') || 'not sampled yet'}`, 'ops-queues');
  lines(queues, queueNames.map((name, index) => ({
    name, className: `ops-s${index + 1}`, points: depths.map((d) => [d.at / 1000, d[name]]),
  })), { from: now - 120, to: now });

  const imports = data.imports_in_flight;
  const importList = h('ul', { className: 'ops-imports', 'data-testid': 'ops-imports' },
    imports.length ? imports.map((item) => {
      const done = item.rows_imported + item.rows_failed;
      const label = `Import ${item.id} (${item.format}, ${item.status})`;
      return h('li', {},
        h('span', { text: `${label}: ${done} of ${item.rows_total ?? '?'} rows` }),
        h('progress', { max: item.rows_total || 1, value: item.rows_total ? done : 0, 'aria-label': label }));
    }) : h('li', { className: 'empty', text: 'No imports in flight' }));

  const runs = data.cleanup_runs;
  const cleanup = chart(`Last cleanup runs: ${runs.map((run) => `${new Date(run.at).toLocaleTimeString()} deleted ${sumDeleted(run)}, lag ${round(run.lag_seconds ?? 0)} s`).join('; ') || 'none yet'}`, 'ops-cleanup');
  if (runs.length) {
    bars(cleanup, runs.map((run) => ({
      label: new Date(run.at).toLocaleTimeString(),
      values: [{ name: 'deleted', className: 'ops-s1', value: sumDeleted(run) }],
    })));
  } else empty(cleanup, 'No cleanup run yet');

  return [
    figure('Requests per second', requests, `${total} requests in the last ${rps.length} s`),
    figure('Latency by route (p50 / p95 / p99)', latency),
    figure('Errors by problem type', errors),
    figure('Queue and dead-letter queue depth', queues),
    h('figure', { className: 'ops-figure' }, h('figcaption', { text: 'Imports in flight' }), importList),
    figure('Last cleanup runs (records deleted)', cleanup),
    h('figure', { className: 'ops-figure' }, h('figcaption', { text: 'Codes the user pool would have e-mailed' }), codeList(data.codes ?? [])),
  ];
}

// The local stack sends no e-mail: sign-up and password-reset codes are shown here (and in its log).
function codeList(codes) {
  return h('ul', { className: 'ops-codes', 'data-testid': 'ops-codes' },
    codes.length ? codes.map((sent) => h('li', {},
      h('span', { text: `${sent.purpose} for ${sent.email}: ` }), h('code', { text: sent.code })))
      : h('li', { className: 'empty', text: 'No codes sent yet' }));
}

function sumDeleted(run) {
  return Object.values(run.deleted || {}).reduce((sum, count) => sum + count, 0);
}

export function createOperations({ container }) {
  let timer = null;
  const grid = h('div', { className: 'ops-grid', 'data-testid': 'ops-grid' });
  const updated = h('p', { className: 'ops-updated', 'aria-live': 'off' });
  container.append(
    h('section', { className: 'panel ops-panel', 'aria-labelledby': 'operations-heading' },
      h('div', { className: 'panel-header' }, h('h2', { id: 'operations-heading', tabindex: '-1', text: 'Operations' })),
      h('p', { className: 'ops-note', text: 'What the local stack\u2019s functions report, updated every second.' }),
      updated, grid),
  );

  async function refresh() {
    try {
      const response = await fetch(DATA_URL, { cache: 'no-store' });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      grid.replaceChildren(...render(await response.json()));
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      updated.textContent = `Could not read the operations data (${error.message}); retrying.`;
    }
  }

  return {
    // Whether this front end is served by the local stack (which serves the operations data).
    async available() {
      try {
        return (await fetch(DATA_URL, { cache: 'no-store' })).ok;
      } catch {
        return false;
      }
    },
    activate() {
      if (timer) return;
      refresh();
      timer = setInterval(refresh, REFRESH_MS);
    },
    deactivate() {
      clearInterval(timer);
      timer = null;
    },
  };
}
