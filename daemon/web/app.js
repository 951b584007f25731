// The dashboard's entry: picks the page from the path, keeps one live connection to the
// daemon's event stream, and hands each event to the page on show. After a reconnection (a
// daemon restart) the page reads everything again, so it never shows a stale state.

import { live } from './api.js';
import { runsPage } from './runs.js';
import { runPage } from './run.js';

const main = document.getElementById('main');
const conn = document.getElementById('conn');
const crumbs = document.getElementById('crumbs');

function page() {
  const m = location.pathname.match(/^\/ui\/runs\/([^/]+)$/);
  return m ? runPage(main, crumbs, decodeURIComponent(m[1])) : runsPage(main, crumbs);
}

const shown = page();
let connected = false;

live((event) => shown.event(event), (state) => {
  conn.dataset.state = state;
  conn.textContent = { live: 'live', lagged: 'catching up', down: 'reconnecting…' }[state];
  // A reconnection, or a first load that failed: read everything again.
  if (state === 'live' && (connected || !shown.loaded())) shown.refresh();
  if (state === 'lagged') shown.refresh();
  if (state === 'live') connected = true;
});
