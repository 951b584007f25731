// The run's timeline as SVG: one lane per worker slot (sessions packed into the fewest lanes
// that never overlap), one for the planner and the reviewers, and one for what the daemon did
// itself — merges, gates, reviews — as marks on the same clock.

import { clock } from './render.js';

const NS = 'http://www.w3.org/2000/svg';
const LANE = 22, LABEL = 90, PAD = 8;
const MARKS = {
  task_merged: 'merge', merge_conflict: 'bad', merge_failed: 'bad',
  gate_passed: 'gate', gate_failed: 'bad', review_finished: 'review', review_failed: 'bad', escalated: 'bad',
};

function svg(tag, attrs = {}) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function titled(e, text) {
  const t = document.createElementNS(NS, 'title');
  t.textContent = text;
  e.append(t);
  return e;
}

// Sessions into lanes: each goes to the first lane free by its start.
function lanes(sessions, now) {
  const ends = [];
  return sessions.map((s) => {
    const start = Date.parse(s.started_at), end = s.ended_at ? Date.parse(s.ended_at) : now;
    let lane = ends.findIndex((e) => e <= start);
    if (lane < 0) { lane = ends.length; ends.push(0); }
    ends[lane] = end;
    return { s, start, end, lane };
  });
}

export function timeline(container, sessions, events, width) {
  const now = Date.now();
  const workers = lanes(sessions.filter((s) => s.role === 'worker'), now);
  const others = lanes(sessions.filter((s) => s.role !== 'worker'), now);
  const marks = events.filter((e) => MARKS[e.kind]);
  const times = [...workers, ...others].flatMap((x) => [x.start, x.end]).concat(marks.map((e) => Date.parse(e.at)));
  if (!times.length) {
    container.replaceChildren(document.createTextNode('No session has started yet.'));
    return;
  }
  const t0 = Math.min(...times), t1 = Math.max(...times, t0 + 1000);
  const workerLanes = Math.max(0, ...workers.map((w) => w.lane + 1));
  const otherLanes = Math.max(0, ...others.map((w) => w.lane + 1));
  const rows = workerLanes + otherLanes + 1;
  const w = Math.max(400, width), plot = w - LABEL - PAD * 2;
  const x = (t) => LABEL + PAD + ((t - t0) / (t1 - t0)) * plot;
  const root = svg('svg', { class: 'timeline', width: w, height: rows * LANE + 24, viewBox: `0 0 ${w} ${rows * LANE + 24}` });
  const label = (row, text) => {
    const l = svg('text', { x: 4, y: row * LANE + 15, class: 'lane-label' });
    l.textContent = text;
    root.append(l);
  };
  const bar = (row, item, cls, text) => {
    const r = svg('rect', {
      x: x(item.start), y: row * LANE + 3, height: LANE - 6, rx: 3,
      width: Math.max(2, x(item.end) - x(item.start)), class: cls,
    });
    root.append(titled(r, text));
  };
  for (let i = 0; i < workerLanes; i++) label(i, `worker ${i + 1}`);
  for (const it of workers) {
    bar(it.lane, it, `span worker${it.s.ended_at ? '' : ' live'}`,
      `${it.s.task ?? it.s.session} · ${it.s.agent}${it.s.model ? ` ${it.s.model}` : ''} · ${clock(it.s.started_at)}–${it.s.ended_at ? clock(it.s.ended_at) : 'now'} · $${it.s.cost_usd.toFixed(4)}`);
  }
  for (let i = 0; i < otherLanes; i++) label(workerLanes + i, i ? `planning ${i + 1}` : 'plan/review');
  for (const it of others) {
    bar(workerLanes + it.lane, it, `span ${it.s.role}${it.s.ended_at ? '' : ' live'}`,
      `${it.s.role} · ${it.s.agent} · ${clock(it.s.started_at)}–${it.s.ended_at ? clock(it.s.ended_at) : 'now'}`);
  }
  const daemonRow = workerLanes + otherLanes;
  label(daemonRow, 'daemon');
  for (const e of marks) {
    const m = svg('rect', { x: x(Date.parse(e.at)) - 2, y: daemonRow * LANE + 3, width: 4, height: LANE - 6, class: `mark ${MARKS[e.kind]}` });
    root.append(titled(m, `${clock(e.at)} ${e.message}`));
  }
  const axis = svg('text', { x: LABEL + PAD, y: rows * LANE + 16, class: 'axis' });
  axis.textContent = clock(new Date(t0).toISOString());
  const axisEnd = svg('text', { x: w - PAD, y: rows * LANE + 16, class: 'axis end' });
  axisEnd.textContent = clock(new Date(t1).toISOString());
  root.append(axis, axisEnd);
  container.replaceChildren(root);
}
