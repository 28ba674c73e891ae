// The call list: a page of calls from the server (filters, search and paging are done
// there), updated live from the feed's `row` events; durations of live calls tick.

import {
  ApiError, debounce, fill, fmtDuration, fmtTime, getJSON, h, query, sentimentCell, sourceName,
  statusBadge,
} from './util.js';

const PAGE = 50;
const LIVE = new Set(['STARTED', 'TRANSCRIBING']);

const COLUMNS = [
  ['Call ID', 'id'],
  ['Source', 'source'],
  ['Started', 'started'],
  ['Caller number', 'caller'],
  ['Agent', 'agent'],
  ['Status', 'status'],
  ['Duration', 'duration'],
  ['Caller sentiment', 'caller-sent'],
  ['Agent sentiment', 'agent-sent'],
  ['Categories', 'categories'],
  ['Abusive', 'abusive'],
];

export function callListView({ main, feed, params }) {
  const filters = {
    search: params.get('search') || '',
    status: params.get('status') || '',
    flagged: params.get('flagged') === '1',
  };
  const tokens = [null]; // the NextToken that starts each page seen so far
  let page = 0;
  let skew = 0; // server clock minus ours
  let refetchTimer = null;
  let controller = null;
  const rows = new Map(); // call id -> {row, tr}

  const search = h('input', {
    type: 'search', id: 'call-search', value: filters.search, placeholder: 'Call id, number, agent, category',
    'aria-label': 'Search calls',
  });
  const status = h(
    'select',
    { id: 'call-status', 'aria-label': 'Status' },
    ['', 'STARTED', 'TRANSCRIBING', 'ENDED', 'ERRORED'].map((v) => h('option', { value: v, selected: v === filters.status }, v || 'Any status')),
  );
  const flagged = h('input', { type: 'checkbox', id: 'call-flagged', checked: filters.flagged });
  const newer = h('button', { type: 'button', id: 'page-newer', disabled: true }, '← Newer');
  const older = h('button', { type: 'button', id: 'page-older', disabled: true }, 'Older →');
  const pageLabel = h('span', { class: 'muted', id: 'page-label' });
  const total = h('span', { class: 'muted', id: 'call-total' });
  const tbody = h('tbody');
  const table = h(
    'table',
    { class: 'calls', id: 'calls-table' },
    h('caption', { class: 'visually-hidden' }, 'Calls, newest first'),
    h('thead', {}, h('tr', {}, COLUMNS.map(([label, key]) => h('th', { scope: 'col', class: `col-${key}` }, label)))),
    tbody,
  );
  const message = h('p', { class: 'muted pad', id: 'calls-message', role: 'status' });

  fill(
    main,
    h('div', { class: 'toolbar' },
      h('h1', {}, 'Calls'), total,
      h('span', { class: 'spacer' }),
      search, status,
      h('label', { class: 'check' }, flagged, ' Abusive only')),
    h('div', { class: 'table-wrap' }, table),
    message,
    h('div', { class: 'pager' }, newer, pageLabel, older),
  );

  function cells(row) {
    const caller = row.Sentiment?.CALLER || {};
    const agent = row.Sentiment?.AGENT || {};
    const abusive = (row.Flags || []).includes('ABUSIVE_CALLER');
    return [
      h('a', { href: `#/calls/${encodeURIComponent(row.CallId)}`, class: 'call-link mono' }, row.CallId),
      row.Node
        ? h('span', { title: `Analysed on cluster node ${row.Node}` }, sourceName(row.Source), h('span', { class: 'muted small node' }, ` · ${row.Node}`))
        : sourceName(row.Source),
      h('time', { datetime: new Date(row.StartedAt).toISOString() }, fmtTime(row.StartedAt)),
      row.CustomerPhoneNumber || '–',
      row.AgentId || '–',
      statusBadge(row.Status),
      h('span', { class: 'duration', dataset: { live: LIVE.has(row.Status) ? '1' : '' } }, fmtDuration(duration(row))),
      sentimentCell(caller.Overall, caller.Trend),
      sentimentCell(agent.Overall, agent.Trend),
      (row.Categories || []).map((c) => h('span', { class: 'chip' }, c)),
      abusive ? h('span', { class: 'badge flag', title: 'Abusive caller' }, '⚠ Abusive') : '',
    ];
  }

  function duration(row) {
    if (!LIVE.has(row.Status)) return row.DurationSeconds;
    const elapsed = (Date.now() + skew - row.StartedAt) / 1000;
    return Math.max(row.DurationSeconds || 0, elapsed);
  }

  function renderRow(row, tr = h('tr')) {
    tr.dataset.callId = row.CallId;
    tr.className = (row.Flags || []).includes('ABUSIVE_CALLER') ? 'flagged' : '';
    fill(tr, cells(row).map((content, i) => h('td', { class: `col-${COLUMNS[i][1]}`, 'data-label': COLUMNS[i][0] }, content)));
    return tr;
  }

  function mayBelong(row) {
    // whether a call not shown could be on this first page (the server has the last word)
    if (filters.status && row.Status !== filters.status) return false;
    if (filters.flagged && !(row.Flags || []).length) return false;
    if (filters.search) {
      const needle = filters.search.toLowerCase();
      const fields = [row.CallId, row.CustomerPhoneNumber, row.SystemPhoneNumber, row.AgentId,
        row.ContactId, ...(row.Categories || [])];
      if (!fields.some((f) => f && String(f).toLowerCase().includes(needle))) return false;
    }
    if (rows.size < PAGE) return true;
    const oldest = Math.min(...[...rows.values()].map((r) => r.row.StartedAt));
    return row.StartedAt >= oldest;
  }

  function hashFor() {
    return `#/calls${query({ search: filters.search, status: filters.status, flagged: filters.flagged })}`;
  }

  async function load() {
    if (controller) controller.abort();
    controller = new AbortController();
    const started = performance.now();
    message.textContent = 'Loading…';
    let body;
    try {
      body = await getJSON(
        `api/calls${query({ limit: PAGE, next: tokens[page], ...filters })}`,
        { signal: controller.signal },
      );
    } catch (err) {
      if (err.name === 'AbortError') return;
      message.textContent = err instanceof ApiError ? `Cannot list calls: ${err.message}` : String(err);
      return;
    }
    skew = body.ServerTime ? body.ServerTime - Date.now() : 0;
    rows.clear();
    const trs = body.Calls.map((row) => {
      const tr = renderRow(row);
      rows.set(row.CallId, { row, tr });
      return tr;
    });
    tbody.replaceChildren(...trs);
    tokens[page + 1] = body.NextToken || null;
    newer.disabled = page === 0;
    older.disabled = !body.NextToken;
    pageLabel.textContent = `Page ${page + 1}`;
    total.textContent = `${body.Total.toLocaleString()} calls stored`;
    message.textContent = body.Calls.length ? '' : 'No calls match.';
    table.dataset.loaded = String(body.Calls.length);
    performance.mark('calls-rendered');
    table.dataset.renderMs = String(Math.round(performance.now() - started));
  }

  function applyFilters() {
    filters.search = search.value.trim();
    filters.status = status.value;
    filters.flagged = flagged.checked;
    history.replaceState(null, '', hashFor());
    tokens.length = 1;
    page = 0;
    load();
  }

  search.addEventListener('input', debounce(applyFilters, 300));
  search.addEventListener('keydown', (e) => { if (e.key === 'Enter') applyFilters(); });
  status.addEventListener('change', applyFilters);
  flagged.addEventListener('change', applyFilters);
  newer.addEventListener('click', () => { page = Math.max(0, page - 1); load(); });
  older.addEventListener('click', () => { if (tokens[page + 1]) { page += 1; load(); } });

  const stopRows = feed.on('row', (row) => {
    const known = rows.get(row.CallId);
    if (known) {
      known.row = row;
      renderRow(row, known.tr);
    } else if (page === 0 && mayBelong(row)) {
      // a new call (or one that now matches): the server decides where it belongs
      clearTimeout(refetchTimer);
      refetchTimer = setTimeout(load, 400);
    }
  });

  const ticker = setInterval(() => {
    for (const { row, tr } of rows.values()) {
      if (!LIVE.has(row.Status)) continue;
      const cell = tr.querySelector('.duration');
      if (cell) cell.textContent = fmtDuration(duration(row));
    }
  }, 1000);

  load();
  main.focus({ preventScroll: true });

  return {
    dispose() {
      stopRows();
      clearInterval(ticker);
      clearTimeout(refetchTimer);
      if (controller) controller.abort();
    },
  };
}
