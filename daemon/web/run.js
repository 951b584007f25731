// The run page: its state and the buttons that change it, the escalation waiting (answered
// from here exactly as `orchestrate answer` does), the task graph with a task's details, the
// running workers' live output, the timeline, the cycles with Codex findings, the cost, and
// the log — all kept current by the event stream.

import { get, post } from './api.js';
import { el, fill, usd, clock, base, pill, renderLine } from './render.js';
import { dag } from './dag.js';
import { timeline } from './timeline.js';
import { taskDetail, cycles, costs } from './panels.js';

const ACTIVE = new Set(['queued', 'running', 'paused', 'escalated', 'planned']);
const OUTPUT_LINES = 400;
const LOG_LINES = 500;
// However many events arrive, the page reads the run again at most this often.
const REFRESH_EVERY_MS = 250;

function card(title, ...body) {
  return el('section', { class: 'card' }, el('h2', {}, title), ...body);
}

export function runPage(main, crumbs, id) {
  const path = `/runs/${encodeURIComponent(id)}`;
  const head = el('section', { class: 'card head' });
  const esc = el('section', { class: 'card attention', hidden: true, id: 'escalation' });
  const graphBox = el('div', { class: 'graph', id: 'graph' });
  const detail = el('aside', { class: 'detail', id: 'detail' });
  const graphRow = el('div', { class: 'graph-row' }, graphBox, detail);
  const tabs = el('div', { class: 'tabs', id: 'workers' });
  const output = el('pre', { class: 'output', id: 'output' });
  const timeBox = el('div', { class: 'timeline-box', id: 'timeline' });
  const cycleBox = el('div', { id: 'cycles' });
  const costBox = el('div', { id: 'cost' });
  const log = el('ol', { class: 'log', id: 'log' });
  const toast = el('p', { class: 'error', hidden: true });
  main.replaceChildren(head, toast, esc,
    card('Task graph', el('p', { class: 'muted hint' }, 'Click a task for its brief, attempts and checks; the thick amber edges are the critical path.'), graphRow),
    card('Workers', tabs, output),
    card('Timeline', timeBox),
    card('Cycles and Codex findings', cycleBox),
    card('Cost', costBox),
    card('Log', log));

  let run = null, tasks = [], sessions = [], events = [], selected = null, lastSeq = 0, timer = null;
  let loaded = false;
  let tail = { task: null, session: null, offset: 0, lines: [], busy: false };
  const graph = dag(graphBox, (t) => { selected = t; graph.select(t); drawDetail(); follow(t); });

  function fail(e) {
    toast.hidden = false;
    toast.textContent = e.hint ? `${e.message} — ${e.hint}` : e.message;
  }

  async function act(what, body) {
    toast.hidden = true;
    try { await post(`${path}/${what}`, body); await refresh(); } catch (e) { fail(e); }
  }

  function drawHead() {
    const p = run.progress;
    const active = ACTIVE.has(run.status);
    crumbs.replaceChildren(el('a', { href: '/ui/' }, 'runs'), ' / ', el('span', {}, `${base(run.project)} · ${run.id}`));
    fill(head,
      el('div', { class: 'row' },
        el('h1', { title: run.feature }, run.feature.split('\n')[0]), pill(run.status),
        el('span', { class: 'muted', id: 'phase' }, run.phase),
        el('span', { class: 'spacer' }),
        run.status === 'running' || run.status === 'queued' ? el('button', { id: 'pause', onclick: () => act('pause') }, 'Pause') : null,
        ['paused', 'escalated', 'planned'].includes(run.status) ? el('button', { id: 'resume', onclick: () => act('resume') }, 'Resume') : null,
        active ? el('button', { id: 'cancel', class: 'danger', onclick: () => { if (confirm(`Cancel run ${run.id}? Its branch and work are kept.`)) act('cancel'); } }, 'Cancel') : null),
      run.status_reason ? el('p', { class: 'reason' }, run.status_reason) : null,
      el('p', { class: 'facts' },
        el('span', { class: 'mono' }, run.branch), ' · ',
        el('span', { id: 'counts' }, `${p.merged}/${p.tasks} merged · ${p.in_progress} in progress · ${p.failed} failed`), ' · ',
        `${p.sessions} sessions · ${usd(p.cost_usd)} · cycle ${run.cycle}`,
        run.forecast ? ` · about ${usd(run.forecast.cost_usd)} to go` : ''));
  }

  function drawEscalation(list) {
    const mine = list.filter((e) => e.run_id === run.id);
    esc.hidden = !mine.length;
    if (!mine.length) return esc.replaceChildren();
    const e = mine[mine.length - 1];
    if (esc.dataset.id === String(e.id)) return; // keep what the user is typing
    esc.dataset.id = String(e.id);
    const answer = el('textarea', { id: 'answer', rows: 4, placeholder: 'Your guidance for the run' });
    const setup = el('input', { id: 'answer-setup', placeholder: 'new --setup command (optional)' });
    const gate = el('input', { id: 'answer-gate', placeholder: 'new --gate command (optional)' });
    const send = async (ev) => {
      ev.preventDefault();
      const change = {};
      if (setup.value.trim()) change.setup = setup.value.trim();
      if (gate.value.trim()) change.gate = gate.value.trim();
      toast.hidden = true;
      try {
        await post(`/escalations/${e.id}/answer`, { answer: answer.value, change });
        esc.dataset.id = '';
        await refresh();
      } catch (err) { fail(err); }
    };
    const about = [e.kind.replaceAll('_', ' '), e.task_id ? `task ${e.task_id}` : null].filter(Boolean).join(', ');
    fill(esc, el('h2', {}, `Escalation #${e.id} (${about}) waits for you`),
      el('pre', { class: 'question' }, e.question),
      e.context && !e.question.includes(e.context.trim()) ? [el('h4', {}, 'Evidence'), el('pre', { class: 'evidence' }, e.context)] : null,
      el('p', { class: 'muted' }, 'Answer to go on with your guidance (and, if the environment was the problem, a new setup or gate command); '
        + 'Resume goes on without an answer; Cancel stops the run, keeping its branch.'),
      el('form', { class: 'answer', onsubmit: send }, answer, setup, gate,
        el('button', { type: 'submit', id: 'send-answer' }, 'Answer and continue')));
  }

  // A task's details beside the graph while one is selected; the graph has the width otherwise.
  function drawDetail() {
    const t = tasks.find((x) => x.id === selected);
    graphRow.classList.toggle('with-detail', Boolean(t));
    if (!t) return detail.replaceChildren();
    const close = el('button', { class: 'close', title: 'Close', onclick: () => { selected = null; graph.select(null); drawDetail(); } }, '×');
    detail.replaceChildren(close, taskDetail(t));
  }

  function drawWorkers() {
    const running = tasks.filter((t) => t.status === 'in_progress');
    if (!tail.task && running.length) follow(running[0].id);
    const shown = running.map((t) => t.id);
    if (tail.task && !shown.includes(tail.task)) shown.push(tail.task);
    output.hidden = !tail.task;
    tabs.replaceChildren(...(shown.length ? shown.map((t) => el('button', {
      class: t === tail.task ? 'tab on' : 'tab', 'data-task': t, onclick: () => follow(t),
    }, t)) : [el('span', { class: 'muted' }, 'No worker is running.')]));
  }

  function follow(task) {
    if (tail.task === task) return;
    tail = { task, session: null, offset: 0, lines: [], busy: false };
    output.textContent = '';
    drawWorkers();
    readOutput();
  }

  async function readOutput() {
    if (!tail.task || tail.busy) return;
    tail.busy = true;
    const mine = tail;
    try {
      const out = await get(`${path}/tasks/${encodeURIComponent(mine.task)}/output?after=${mine.offset}`);
      if (mine !== tail) return;
      if (out.session && out.session !== mine.session) {
        // A new session (a retry, or the first once the task started) starts the pane afresh,
        // read from its own beginning.
        const fromStart = mine.offset === 0;
        mine.offset = 0;
        mine.session = out.session;
        mine.lines = [`── task ${mine.task} · session ${out.session} (${out.agent}) ──`];
        if (!fromStart) return;
      }
      for (const l of out.lines) { const r = renderLine(l); if (r) mine.lines.push(r); }
      if (mine.lines.length > OUTPUT_LINES) mine.lines.splice(0, mine.lines.length - OUTPUT_LINES);
      if (!out.session) mine.lines = [`Task ${mine.task} has not had a worker yet.`];
      mine.offset = out.offset;
      const atEnd = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
      output.textContent = mine.lines.join('\n');
      if (atEnd) output.scrollTop = output.scrollHeight;
    } catch { /* the next tick tries again */ } finally { mine.busy = false; }
  }

  // New events into the log, in one DOM change; the page keeps the last LOG_LINES.
  function addEvents(list) {
    const fresh = list.filter((e) => e.seq > lastSeq);
    if (!fresh.length) return;
    lastSeq = fresh[fresh.length - 1].seq;
    events.push(...fresh);
    if (events.length > LOG_LINES) events.splice(0, events.length - LOG_LINES);
    const lines = document.createDocumentFragment();
    for (const e of fresh.slice(-LOG_LINES)) {
      lines.append(el('li', { class: `lvl-${e.level}`, 'data-kind': e.kind }, el('time', {}, clock(e.at)), ' ', e.message));
    }
    log.append(lines);
    for (let extra = log.children.length - LOG_LINES; extra > 0; extra--) log.firstChild.remove();
    log.scrollTop = log.scrollHeight;
  }

  async function refresh() {
    const [r, t, s, rv, c, es, fresh] = await Promise.all([get(path), get(`${path}/tasks`), get(`${path}/sessions`),
      get(`${path}/reviews`), get(`${path}/cost`), get('/escalations').catch(() => ({ escalations: [] })),
      get(`${path}/events?${lastSeq ? `after=${lastSeq}` : 'tail=500'}`)]);
    run = r; tasks = t.tasks; sessions = s.sessions;
    document.title = `${run.status} · ${run.feature.split('\n')[0]} — orchestrator`;
    drawHead();
    drawEscalation(es.escalations);
    graph.update(tasks);
    drawDetail();
    drawWorkers();
    timeline(timeBox, sessions, events, timeBox.clientWidth || 900);
    cycleBox.replaceChildren(cycles(rv));
    costBox.replaceChildren(costs(c));
    addEvents(fresh.events);
    toast.hidden = true;
    if (!loaded) {
      loaded = true;
      // When the page first showed the whole run (read by the browser test's timing).
      performance.mark('orchestrator:ready');
    }
  }

  // A failure (the daemon restarting) leaves the page as it was; the reconnection reads again.
  refresh().catch(fail);
  setInterval(readOutput, 400);
  // What events say exactly is shown at once — a task's new status, the run's — before the
  // next read brings the rest.
  function apply(list) {
    addEvents(list);
    let tasksMoved = false;
    for (const e of list) {
      const t = e.data?.task && e.data?.status ? tasks.find((x) => x.id === e.data.task) : null;
      if (t && t.status !== e.data.status) { t.status = e.data.status; tasksMoved = true; }
      if (run && e.kind === 'status_changed' && e.data?.to) {
        run.status = e.data.to;
        run.status_reason = e.data.reason ?? run.status_reason;
        drawHead();
      }
    }
    if (tasksMoved) { graph.update(tasks); drawWorkers(); }
  }

  // Reads after events: the first soon after a quiet spell, then at most one in flight and one
  // every REFRESH_EVERY_MS, so a flood of events never floods the page.
  let refreshing = false, again = false, lastRefresh = -Infinity, queued = [], flushing = false;
  function schedule() {
    if (refreshing) { again = true; return; }
    if (timer) return;
    const wait = Math.max(30, REFRESH_EVERY_MS - (performance.now() - lastRefresh));
    timer = setTimeout(async () => {
      timer = null;
      refreshing = true;
      try { await refresh(); } catch (e) { fail(e); } finally {
        refreshing = false;
        lastRefresh = performance.now();
        if (again) { again = false; schedule(); }
      }
    }, wait);
  }

  return {
    loaded: () => loaded,
    refresh: () => refresh().catch(fail),
    event(e) {
      if (e.run_id !== id) return;
      queued.push(e);
      if (!flushing) {
        flushing = true;
        requestAnimationFrame(() => { flushing = false; apply(queued.splice(0)); });
      }
      schedule();
    },
  };
}
