// The single page: routing by location.hash, the session, the app-wide live feed
// (call rows for the list, alerts for the toasts).

import { callDetailView } from './call.js';
import { callListView } from './calls.js';
import { LiveFeed } from './live.js';
import { streamDetailView, streamListView } from './streams.js';
import { fill, getJSON, h, post } from './util.js';

const main = document.getElementById('main');
const liveStatus = document.getElementById('live-status');
const toasts = document.getElementById('toasts');
let current = null;
let session = null;
const seenAlerts = new Set();

function setStatus(text) {
  liveStatus.textContent = text;
  liveStatus.dataset.state = text;
}

/** A hash like #/calls/abc?x=1 as {parts: ['calls', 'abc'], params}. */
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [path, search = ''] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  return { parts, params: new URLSearchParams(search) };
}

function route() {
  if (current && current.dispose) current.dispose();
  current = null;
  const { parts, params } = parseHash();
  const section = parts[0] || 'calls';
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (link.dataset.nav === section) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  fill(main);
  const context = { main, feed, params, session };
  if (section === 'calls' && parts[1]) current = callDetailView(context, parts[1]);
  else if (section === 'calls') current = callListView(context);
  else if (section === 'streams' && parts[1]) current = streamDetailView(context, parts[1]);
  else if (section === 'streams') current = streamListView(context);
  else fill(main, h('p', { class: 'pad' }, 'Nothing here. ', h('a', { href: '#/calls' }, 'Back to the calls')));
}

function alertText(alert) {
  if (alert.AlertType === 'ABUSIVE_CALLER') return 'Abusive caller';
  return `Category alert: ${alert.Category || ''}`;
}

function showAlert(alert, cursor) {
  const key = cursor || `${alert.CallId}/${alert.AlertType}/${alert.Category || ''}`;
  if (seenAlerts.has(key)) return;
  seenAlerts.add(key);
  const terms = (alert.Evidence || []).map((e) => e.Term).filter(Boolean);
  const toast = h(
    'div',
    { class: 'toast', role: 'alert' },
    h('strong', {}, alertText(alert)),
    ' on call ',
    h('a', { href: `#/calls/${encodeURIComponent(alert.CallId)}` }, alert.CallId),
    terms.length ? h('span', { class: 'evidence' }, ` — “${terms.join('”, “')}”`) : null,
    h('button', { type: 'button', class: 'quiet close', 'aria-label': 'Dismiss alert', onclick: () => toast.remove() }, '×'),
  );
  toasts.prepend(toast);
  while (toasts.children.length > 4) toasts.lastElementChild.remove();
}

async function loadSession() {
  session = await getJSON('api/session');
  const who = document.getElementById('who');
  const logout = document.getElementById('logout');
  if (session.SignedIn) {
    who.textContent = session.AccessKey;
    logout.hidden = false;
    logout.addEventListener('click', async () => {
      const answer = await post('logout', session.Csrf);
      location.assign(answer.Location || 'login');
    });
  }
}

let feed = null;

loadSession()
  .then(() => {
    feed = new LiveFeed({ onStatus: setStatus });
    feed.on('CallAlert', showAlert);
    window.addEventListener('hashchange', route);
    route();
  })
  .catch((err) => {
    if (err.status !== 401) fill(main, h('p', { class: 'pad error' }, `Cannot load the UI: ${err.message}`));
  });
