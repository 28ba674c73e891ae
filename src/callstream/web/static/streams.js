// The stream browser: streams with retention, encryption key and tags; one stream's
// fragment timeline with its gaps, a time range to play or download, and the
// `callstream get-audio` command for that range.

import { fragmentTimeline } from './chart.js';
import {
  copyText, debounce, fill, fmtBytes, fmtTime, getJSON, h, isoUtc, query,
} from './util.js';

const PRODUCERS = { CONNECT: 'Amazon Connect contact', VOICE_CONNECTOR: 'Voice connector leg (Chime)', PUTMEDIA: 'PutMedia client' };
const GAP_MS = 250;

export function streamListView({ main, params }) {
  let prefix = params.get('prefix') || '';
  const pages = [null];
  let page = 0;
  const input = h('input', { type: 'search', id: 'stream-prefix', value: prefix, placeholder: 'Name starts with…', 'aria-label': 'Stream name prefix' });
  const tbody = h('tbody');
  const message = h('p', { class: 'muted pad', role: 'status', id: 'streams-message' });
  const newer = h('button', { type: 'button', disabled: true }, '← Previous');
  const more = h('button', { type: 'button', disabled: true, id: 'streams-next' }, 'Next →');
  fill(
    main,
    h('div', { class: 'toolbar' }, h('h1', {}, 'Streams'), h('span', { class: 'spacer' }), input),
    h('div', { class: 'table-wrap' }, h('table', { class: 'streams', id: 'streams-table' },
      h('thead', {}, h('tr', {}, ['Name', 'Created', 'Retention', 'Encryption key', 'Size', 'Producer', 'Last fragment', 'Status', 'Tags'].map((c) => h('th', { scope: 'col' }, c)))),
      tbody)),
    message,
    h('div', { class: 'pager' }, newer, more),
  );

  let generation = 0;

  async function summarize(pending, mine) {
    // sizes and producers, a few streams at a time (each one counts its fragments)
    const worker = async () => {
      while (pending.length && mine === generation) {
        const item = pending.shift();
        try {
          const sum = await getJSON(`api/streams/${encodeURIComponent(item.name)}/summary`);
          item.size.textContent = `${fmtBytes(sum.Bytes)}${sum.Truncated ? '+' : ''} (${sum.Count}${sum.Truncated ? '+' : ''} fragments)`;
          item.producer.textContent = sum.Producer ? PRODUCERS[sum.Producer] || sum.Producer : '–';
          item.last.textContent = sum.Last ? fmtTime(sum.Last.ProducerTimestamp) : '–';
        } catch {
          item.size.textContent = '?';
          item.producer.textContent = '?';
          item.last.textContent = '?';
        }
      }
    };
    await Promise.all([worker(), worker(), worker()]);
  }

  async function load() {
    generation += 1;
    message.textContent = 'Loading…';
    let body;
    try {
      body = await getJSON(`api/streams${query({ prefix, next: pages[page], limit: 100 })}`);
    } catch (err) {
      message.textContent = `Cannot list streams: ${err.message}`;
      return;
    }
    const pending = [];
    tbody.replaceChildren(...body.Streams.map((st) => {
      const size = h('td', { 'data-label': 'Size', class: 'size' }, '…');
      const producer = h('td', { 'data-label': 'Producer', class: 'producer' }, '…');
      const last = h('td', { 'data-label': 'Last fragment', class: 'last' }, '…');
      pending.push({ name: st.StreamName, size, producer, last });
      return h('tr', { dataset: { stream: st.StreamName } },
        h('td', { 'data-label': 'Name' }, h('a', { href: `#/streams/${encodeURIComponent(st.StreamName)}`, class: 'mono' }, st.StreamName)),
        h('td', { 'data-label': 'Created' }, fmtTime(st.CreationTime * 1000)),
        h('td', { 'data-label': 'Retention' }, st.DataRetentionInHours ? `${st.DataRetentionInHours} h` : 'none (live only)'),
        h('td', { 'data-label': 'Encryption key', class: 'mono small' }, st.KmsKeyId || '–'),
        size, producer, last,
        h('td', { 'data-label': 'Status' }, st.Status),
        h('td', { 'data-label': 'Tags' }, Object.entries(st.Tags || {}).map(([k, v]) => h('span', { class: 'chip' }, `${k}=${v}`))),
      );
    }));
    summarize(pending, generation);
    pages[page + 1] = body.Next || null;
    newer.disabled = page === 0;
    more.disabled = !body.Next;
    message.textContent = body.Streams.length ? '' : 'No streams.';
  }

  input.addEventListener('input', debounce(() => {
    prefix = input.value.trim();
    history.replaceState(null, '', `#/streams${query({ prefix })}`);
    pages.length = 1;
    page = 0;
    load();
  }, 300));
  newer.addEventListener('click', () => { page = Math.max(0, page - 1); load(); });
  more.addEventListener('click', () => { page += 1; load(); });
  load();
  main.focus({ preventScroll: true });
  return { dispose() { generation += 1; } };
}

/** `datetime-local` value (local time, seconds) for epoch ms, and back. */
function toLocalInput(ms) {
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fromLocalInput(value) {
  const ms = new Date(value).getTime();
  return Number.isNaN(ms) ? null : ms;
}

export function streamDetailView({ main, params }, name) {
  const base = `api/streams/${encodeURIComponent(name)}`;
  let view = { start: Number(params.get('start')) || null, end: Number(params.get('end')) || null };
  let selected = null; // [start, end] to play
  let timeline = null;
  let data = null;

  const info = h('section', { class: 'panel stream-info', id: 'stream-info', 'aria-label': 'Stream' });
  const startInput = h('input', { type: 'datetime-local', step: '1', id: 'range-start', 'aria-label': 'Range start (local time)' });
  const endInput = h('input', { type: 'datetime-local', step: '1', id: 'range-end', 'aria-label': 'Range end (local time)' });
  const timelineBox = h('div', { class: 'timeline-box', id: 'timeline-box' });
  const stats = h('p', { class: 'muted', id: 'fragment-stats', role: 'status' });
  const selectionBox = h('section', { class: 'panel', id: 'selection', 'aria-label': 'Selected range' });
  const tbody = h('tbody');
  const command = h('code', { id: 'get-audio-command' });

  fill(
    main,
    h('p', { class: 'crumbs' }, h('a', { href: '#/streams' }, '← Streams')),
    h('h1', { class: 'mono break' }, name),
    info,
    h('section', { class: 'panel', 'aria-label': 'Fragments over time' },
      h('h2', {}, 'Fragments'),
      h('div', { class: 'range-controls' },
        h('label', {}, 'From ', startInput),
        h('label', {}, 'to ', endInput),
        h('button', { type: 'button', id: 'range-apply', onclick: applyInputs }, 'Show'),
        h('button', { type: 'button', class: 'quiet', onclick: () => lastMinutes(5) }, 'Last 5 min'),
        h('button', { type: 'button', class: 'quiet', onclick: () => lastMinutes(60) }, 'Last hour'),
        h('button', { type: 'button', class: 'quiet', id: 'range-all', onclick: wholeStream }, 'Whole stream')),
      timelineBox,
      h('p', { class: 'muted small' }, 'Drag across the timeline to select a range; gaps between fragments are red.'),
      stats),
    selectionBox,
    h('section', { class: 'panel', 'aria-label': 'Fragment list' },
      h('h2', {}, 'Fragment list'),
      h('div', { class: 'table-wrap' }, h('table', { class: 'fragments', id: 'fragments-table' },
        h('thead', {}, h('tr', {}, ['Fragment number', 'Producer time', 'Server time', 'Duration', 'Size'].map((c) => h('th', { scope: 'col' }, c)))),
        tbody))),
  );

  function applyInputs() {
    const a = fromLocalInput(startInput.value);
    const b = fromLocalInput(endInput.value);
    if (a !== null && b !== null && b > a) {
      view = { start: a, end: b + 999 };
      load();
    }
  }

  function lastMinutes(minutes) {
    if (!data || !data.Last) return;
    const end = data.Last.ProducerTimestamp + data.Last.DurationMs;
    view = { start: end - minutes * 60000, end };
    load();
  }

  function wholeStream() {
    if (!data || !data.First) return;
    view = { start: data.First.ProducerTimestamp, end: data.Last.ProducerTimestamp + data.Last.DurationMs };
    load();
  }

  function renderInfo(stream) {
    const row = (label, value, wide = false) => h('div', { class: wide ? 'fact wide' : 'fact' }, h('dt', {}, label), h('dd', {}, value));
    fill(info, h('dl', { class: 'facts' },
      row('ARN', h('span', { class: 'mono small break' }, stream.StreamARN), true),
      row('Created', fmtTime(stream.CreationTime * 1000)),
      row('Retention', stream.DataRetentionInHours ? `${stream.DataRetentionInHours} h` : 'none (live only)'),
      row('Encryption key', h('span', { class: 'mono small break' }, stream.KmsKeyId || '–')),
      row('Media type', stream.MediaType || '–'),
      row('Producer', data && data.Producer ? PRODUCERS[data.Producer] || data.Producer : '–'),
      row('Tracks', data && data.Tracks && data.Tracks.length ? data.Tracks.map((t) => h('span', { class: 'chip' }, `${t.Number}: ${t.Name || '?'} (${t.Codec})`)) : '–'),
      row('Stream tags', Object.keys(stream.Tags || {}).length ? Object.entries(stream.Tags).map(([k, v]) => h('span', { class: 'chip' }, `${k}=${v}`)) : '–'),
      row('Producer tags', data && data.Tags && Object.keys(data.Tags).length ? Object.entries(data.Tags).map(([k, v]) => h('span', { class: 'chip mono small' }, `${k}=${v}`)) : '–', true),
    ));
  }

  function endpointUrl() {
    return `${location.protocol}//${location.host}`;
  }

  function renderSelection() {
    if (!selected) {
      fill(selectionBox, h('h2', {}, 'Selected range'), h('p', { class: 'muted' }, 'No audio in this range.'));
      return;
    }
    const [a, b] = selected;
    if (timeline) timeline.setSelection(a, b);
    const range = query({ start: a, end: b });
    const cmd = `callstream get-audio --stream ${name} --endpoint-url ${endpointUrl()} `
      + `--start-timestamp ${isoUtc(a)} --stop-timestamp ${isoUtc(b)} --all-contacts --out ${name}.wav`;
    command.textContent = cmd;
    const copied = h('span', { class: 'muted small', role: 'status' });
    const seconds = ((b - a) / 1000).toFixed(1);
    fill(
      selectionBox,
      h('h2', {}, 'Selected range'),
      h('p', {}, `${fmtTime(a, { millis: true })} → ${fmtTime(b, { millis: true })} (${seconds} s)`),
      h('div', { class: 'player' },
        h('audio', { controls: true, preload: 'none', src: `${base}/audio.wav${range}`, id: 'range-audio', 'aria-label': 'Audio of the selected range' })),
      h('div', { class: 'downloads' },
        h('a', { class: 'button', href: `${base}/audio.wav${query({ start: a, end: b, download: 1 })}`, download: `${name}.wav`, id: 'range-download' }, 'Download WAV')),
      h('p', { class: 'small' }, 'The same audio from the command line:'),
      h('div', { class: 'command' },
        h('pre', {}, command),
        h('button', {
          type: 'button', id: 'copy-command',
          onclick: async () => {
            try {
              copied.textContent = (await copyText(cmd, command)) ? 'Copied.' : 'Selected: press Ctrl+C.';
            } catch {
              copied.textContent = 'Selected: press Ctrl+C.';
            }
          },
        }, 'Copy'),
        copied),
    );
  }

  function renderFragments() {
    const trs = [];
    let prevEnd = null;
    for (const f of data.Fragments) {
      if (prevEnd !== null && f.ProducerTimestamp - prevEnd > GAP_MS) {
        trs.push(h('tr', { class: 'gap-row' }, h('td', { colspan: '5' }, `gap of ${((f.ProducerTimestamp - prevEnd) / 1000).toFixed(1)} s`)));
      }
      prevEnd = f.ProducerTimestamp + f.DurationMs;
      const select = () => { selected = [f.ProducerTimestamp, f.ProducerTimestamp + f.DurationMs]; renderSelection(); };
      trs.push(h('tr', { tabindex: '0', class: 'fragment', onclick: select, onkeydown: (e) => { if (e.key === 'Enter') select(); } },
        h('td', { 'data-label': 'Fragment', class: 'mono small', title: f.FragmentNumber }, `…${f.FragmentNumber.slice(-12)}`),
        h('td', { 'data-label': 'Producer time' }, fmtTime(f.ProducerTimestamp, { millis: true })),
        h('td', { 'data-label': 'Server time' }, fmtTime(f.ServerTimestamp, { millis: true })),
        h('td', { 'data-label': 'Duration' }, `${(f.DurationMs / 1000).toFixed(2)} s`),
        h('td', { 'data-label': 'Size' }, fmtBytes(f.Size))));
    }
    tbody.replaceChildren(...trs);
  }

  async function load() {
    stats.textContent = 'Loading…';
    try {
      data = await getJSON(`${base}/fragments${query({ start: view.start, end: view.end })}`);
    } catch (err) {
      fill(main, h('p', { class: 'pad' }, err.status === 404 ? `No stream ${name}. ` : `Cannot load the stream: ${err.message} `, h('a', { href: '#/streams' }, 'Back to the streams')));
      return;
    }
    renderInfo(data.Stream);
    if (!data.Count && !data.First) {
      fill(timelineBox, h('p', { class: 'muted' }, 'This stream holds no fragments.'));
      stats.textContent = '';
      selected = null;
      renderSelection();
      return;
    }
    view = { start: data.Start, end: data.End };
    history.replaceState(null, '', `#/streams/${encodeURIComponent(name)}${query({ start: view.start, end: view.end })}`);
    startInput.value = toLocalInput(view.start);
    endInput.value = toLocalInput(view.end);
    timeline = fragmentTimeline({
      start: view.start, end: view.end, spans: data.Spans, gaps: data.Gaps,
      onSelect: (a, b) => { selected = [a, b]; renderSelection(); },
    });
    fill(timelineBox, timeline.el);
    const gaps = data.Gaps.length === 1 ? '1 gap' : `${data.Gaps.length} gaps`;
    stats.textContent = `${data.Count} fragments (${fmtBytes(data.Bytes)}) in view, ${gaps}`
      + (data.Truncated ? ' — range cut short, narrow it' : '')
      + (data.Fragments.length < data.Count ? `; the first ${data.Fragments.length} listed below` : '');
    const spans = data.Spans;
    selected = spans.length ? [Math.max(view.start, spans[0][0]), Math.min(view.end, spans[spans.length - 1][1])] : null;
    if (selected && selected[1] - selected[0] > 3600000) selected = [selected[1] - 3600000, selected[1]];
    renderSelection();
    renderFragments();
  }

  load();
  main.focus({ preventScroll: true });
  return { dispose() {} };
}
