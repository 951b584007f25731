// The runs page: every run of every project (filtered by project and status), the account's
// usage windows as bars, and the escalations waiting for the user.

import { get } from './api.js';
import { el, fill, usd, ago, base, pill, clock } from './render.js';

function windowBar(name, w) {
  const pct = Math.min(100, Math.max(0, w.utilization_percent));
  const level = pct >= 90 ? 'high' : pct >= 70 ? 'mid' : 'low';
  return el('div', { class: 'window' },
    el('span', { class: 'wname' }, name),
    el('span', { class: 'bar' }, el('span', { class: `fill ${level}`, style: { width: `${pct}%` } })),
    el('span', { class: 'wpct' }, `${Math.round(pct)}%`),
    el('span', { class: 'muted' }, w.resets_at ? `resets ${clock(w.resets_at)}` : ''));
}

function usageBlock(u) {
  const rows = [];
  if (u.five_hour) rows.push(windowBar('5-hour', u.five_hour));
  if (u.seven_day) rows.push(windowBar('7-day', u.seven_day));
  for (const [k, w] of Object.entries(u.others ?? {})) rows.push(windowBar(k.replaceAll('_', ' '), w));
  if (u.limit_hit) rows.push(el('div', { class: 'warn' }, `limit hit — work waits for the reset`));
  if (!rows.length) rows.push(el('div', { class: 'muted' }, 'no usage figures yet (they come with the first session)'));
  return el('section', { class: 'card usage' }, el('h2', {}, 'Usage windows'), rows);
}

function progress(p) {
  const pct = p.tasks ? (100 * p.merged) / p.tasks : 0;
  return el('span', { class: 'prog', title: `${p.merged} of ${p.tasks} merged` },
    el('span', { class: 'bar' }, el('span', { class: 'fill low', style: { width: `${pct}%` } })),
    ` ${p.merged}/${p.tasks}`);
}

function escalationsBlock(list) {
  if (!list.length) return null;
  return el('section', { class: 'card attention' }, el('h2', {}, 'Waiting for you'),
    list.map((e) => el('div', { class: 'esc-line' },
      el('a', { href: `/ui/runs/${encodeURIComponent(e.run_id)}` }, `#${e.id} ${base(e.project)}`),
      ' ', el('span', {}, e.question.split('\n')[0]))));
}

export function runsPage(main, crumbs) {
  crumbs.replaceChildren(el('span', {}, 'runs'));
  const filters = { project: '', status: '' };
  const heading = el('h2', {});
  const list = el('div', {});
  const waiting = el('div', { class: 'slot' });
  const windows = el('div', { class: 'slot' });
  let timer = null, last = -Infinity;

  async function refresh() {
    const [runs, usage, escalations] = await Promise.all([
      get('/runs'), get('/usage').catch(() => ({})), get('/escalations').catch(() => ({ escalations: [] })),
    ]);
    draw(runs.runs, usage, escalations.escalations);
  }

  // The filters are built once and only their options follow the runs, so a refresh never
  // closes a list the user has open.
  const selects = {};
  function select(name, values) {
    const s = selects[name] ??= el('select', {
      'data-filter': name, onchange: (e) => { filters[name] = e.target.value; refresh(); },
    });
    const key = values.join('\n');
    if (s.dataset.values !== key) {
      s.dataset.values = key;
      fill(s, el('option', { value: '' }, `every ${name}`),
        values.map((v) => el('option', { value: v }, name === 'project' ? base(v) : v)));
      s.value = filters[name];
    }
    return s;
  }

  const runsCard = el('section', { class: 'card' },
    el('div', { class: 'row' }, heading, select('project', []), select('status', [])), list);

  function draw(runs, usage, escalations) {
    const projects = [...new Set(runs.map((r) => r.project))].sort();
    const statuses = [...new Set(runs.map((r) => r.status))].sort();
    const shown = runs.filter((r) => (!filters.project || r.project === filters.project)
      && (!filters.status || r.status === filters.status));
    const table = el('table', { class: 'runs' },
      el('thead', {}, el('tr', {}, ['run', 'project', 'feature', 'status', 'phase', 'progress', 'cost', 'branch', 'age']
        .map((h) => el('th', {}, h)))),
      el('tbody', {}, shown.map((r) => el('tr', { 'data-run': r.id },
        el('td', {}, el('a', { href: `/ui/runs/${encodeURIComponent(r.id)}` }, r.id)),
        el('td', { title: r.project }, base(r.project)),
        el('td', { class: 'feature', title: r.feature }, r.feature.split('\n')[0]),
        el('td', {}, pill(r.status)),
        el('td', {}, r.phase),
        el('td', {}, progress(r.progress)),
        el('td', { class: 'num' }, usd(r.progress.cost_usd)),
        el('td', { class: 'mono' }, r.branch),
        el('td', { title: r.created_at }, ago(r.created_at))))));
    heading.textContent = `Runs (${shown.length})`;
    select('project', projects);
    select('status', statuses);
    const none = runs.length ? 'No run matches these filters.' : 'No runs yet: start one with `orchestrate start`.';
    fill(list, shown.length ? table : el('p', { class: 'muted' }, none));
    fill(waiting, escalationsBlock(escalations));
    fill(windows, usageBlock(usage));
    // The runs card stays in place: only what is inside it changes.
    if (!runsCard.isConnected) fill(main, waiting, windows, runsCard);
  }

  let loaded = false;
  const load = () => refresh().then(() => {
    if (!loaded) performance.mark('orchestrator:ready');
    loaded = true;
  });
  load().catch((e) => main.replaceChildren(el('p', { class: 'error' }, e.message)));
  return {
    loaded: () => loaded,
    refresh: () => load().catch(() => {}),
    // A burst of events is one read; a flood, one read every quarter second.
    event: () => {
      if (timer) return;
      const wait = Math.max(30, 250 - (performance.now() - last));
      timer = setTimeout(() => {
        refresh().catch(() => {}).finally(() => { timer = null; last = performance.now(); });
      }, wait);
    },
  };
}
