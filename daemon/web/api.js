// The daemon's dashboard API: JSON under /ui/api (the session cookie goes by itself; changes
// carry the session's CSRF token) and the live event stream.

let csrf = null;

async function failure(r) {
  let body = {};
  try { body = await r.json(); } catch { /* not JSON */ }
  const e = new Error(body.message || `${r.status} ${r.statusText}`);
  e.status = r.status;
  e.hint = body.hint;
  return e;
}

// fetch, with "the daemon is down" said as such.
async function call(path, init) {
  try {
    return await fetch(`/ui/api${path}`, { credentials: 'same-origin', ...init });
  } catch {
    throw new Error('orchestratord is not answering; this page reconnects by itself when it is back');
  }
}

export async function get(path) {
  const r = await call(path);
  if (!r.ok) throw await failure(r);
  return r.json();
}

export async function post(path, body) {
  if (!csrf) csrf = (await get('/session')).csrf;
  const r = await call(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
    body: JSON.stringify(body ?? {}),
  });
  if (!r.ok) throw await failure(r);
  return r.json();
}

// Every run's events as they are committed. `onState` hears 'live' on each (re)connection —
// the moment to catch up — 'lagged' when events were missed, and 'down' while disconnected;
// the browser reconnects by itself.
export function live(onEvent, onState) {
  const es = new EventSource('/ui/api/stream');
  es.addEventListener('hello', () => onState('live'));
  es.addEventListener('lagged', () => onState('lagged'));
  es.addEventListener('run', (m) => onEvent(JSON.parse(m.data)));
  es.onerror = () => onState('down');
  return es;
}
