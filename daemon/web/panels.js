// The run page's panels drawn from data: a task's details, the cycles with their Codex
// reviews and findings, and the cost ledger.

import { el, usd, clock } from './render.js';

export function taskDetail(t) {
  const checks = (t.checks ?? []).map((c) => el('li', { class: c.passed ? 'ok' : 'bad' },
    `${c.passed ? '✓' : '✗'} `, el('code', {}, c.command), ` — ${c.how} in ${c.secs.toFixed(1)}s`));
  return el('div', { class: 'task-detail', 'data-task': t.id },
    el('h3', {}, t.id, ' ', el('span', { class: `pill st-${t.status}` }, t.status.replace('_', ' '))),
    el('p', { class: 'ttl' }, t.title),
    el('dl', {},
      el('dt', {}, 'attempts'), el('dd', {}, String(t.attempts)),
      el('dt', {}, 'cost'), el('dd', {}, usd(t.cost_usd)),
      el('dt', {}, 'model'), el('dd', {}, [t.agent, t.model, t.effort].filter(Boolean).join(' · ') || 'the run\'s'),
      el('dt', {}, 'depends on'), el('dd', {}, t.depends_on.join(', ') || 'nothing'),
      t.files.length ? [el('dt', {}, 'files'), el('dd', { class: 'mono' }, t.files.join(', '))] : null),
    t.progress ? el('p', { class: 'progress-note' }, `latest: ${t.progress}`) : null,
    el('h4', {}, 'Brief'), el('p', { class: 'brief' }, t.description || '—'),
    t.acceptance_criteria.length ? [el('h4', {}, 'Acceptance'), el('ul', {}, t.acceptance_criteria.map((a) => el('li', {}, a)))] : null,
    t.verify?.length ? [el('h4', {}, 'Checks'), checks.length ? el('ul', { class: 'checks' }, checks)
      : el('ul', { class: 'checks' }, t.verify.map((v) => el('li', {}, el('code', {}, v), ' — not run yet')))] : null,
    t.failure ? [el('h4', {}, 'Why it came back'), el('pre', { class: 'failure' }, t.failure)] : null,
    t.result ? [el('h4', {}, 'Result'), el('p', {}, t.result)] : null);
}

export function cycles(data) {
  if (!data.reviews.length && !data.findings.length) return el('p', { class: 'muted' }, 'No Codex review yet.');
  const reviewRows = data.reviews.map((r) => el('tr', {},
    el('td', {}, `#${r.id}`), el('td', {}, r.kind), el('td', {}, String(r.cycle)),
    el('td', {}, el('span', { class: `pill st-${r.outcome}` }, r.outcome)),
    el('td', {}, clock(r.at)), el('td', { class: 'summary' }, r.summary.split('\n')[0])));
  const findingRows = data.findings.map((f) => {
    const state = f.status === 'open' ? (f.raised > 1 ? 'recurring' : 'open') : 'fixed';
    return el('tr', { 'data-finding': f.id },
      el('td', {}, f.id), el('td', {}, f.priority), el('td', {}, el('span', { class: `pill st-${state}` }, state)),
      el('td', { title: f.body }, f.title), el('td', { class: 'mono' }, f.location ?? ''),
      el('td', {}, `reviews #${f.first_review}–#${f.last_review} (${f.raised}×)`));
  });
  const count = (s) => data.findings.filter((f) => (s === 'fixed' ? f.status !== 'open' : f.status === 'open')).length;
  return el('div', {},
    el('table', { class: 'reviews' }, el('thead', {}, el('tr', {}, ['review', 'kind', 'cycle', 'outcome', 'at', 'summary'].map((h) => el('th', {}, h)))),
      el('tbody', {}, reviewRows)),
    el('p', {}, `Findings: ${count('open')} open, ${count('fixed')} fixed`),
    findingRows.length ? el('table', { class: 'findings' }, el('thead', {}, el('tr', {}, ['id', 'priority', 'state', 'title', 'where', 'raised'].map((h) => el('th', {}, h)))),
      el('tbody', {}, findingRows)) : null);
}

export function costs(ledger) {
  if (!ledger.rows.length) return el('p', { class: 'muted' }, 'Nothing spent yet.');
  const scope = (r) => (r.scope === 'cycle' && r.key === '0' ? 'before cycle 1' : r.key ? `${r.scope} ${r.key}` : r.scope);
  return el('table', { class: 'cost' },
    el('thead', {}, el('tr', {}, ['scope', 'model', 'sessions', 'cost', 'in', 'out'].map((h) => el('th', {}, h)))),
    el('tbody', {}, ledger.rows.map((r) => el('tr', { class: `scope-${r.scope}` },
      el('td', {}, scope(r)), el('td', {}, r.model ?? 'unknown'), el('td', { class: 'num' }, String(r.sessions)),
      el('td', { class: 'num' }, usd(r.cost_usd)), el('td', { class: 'num' }, String(r.input_tokens)),
      el('td', { class: 'num' }, String(r.output_tokens))))));
}
