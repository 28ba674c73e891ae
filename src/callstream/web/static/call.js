// One call: header, alerts, live transcript by channel (partials replaced by finals,
// auto-scroll until the reader scrolls up), sentiment charts, the recording player
// (clicking a line seeks to it) and downloads.

import { sentimentChart } from './chart.js';
import { LiveFeed } from './live.js';
import {
  clock, fill, fmtDuration, fmtTime, getJSON, h, sentimentCell, sentimentClass, sourceName,
  statusBadge,
} from './util.js';

const LIVE = new Set(['STARTED', 'TRANSCRIBING']);
const STICK_PX = 40;

export function callDetailView({ main }, callId) {
  const base = `api/calls/${encodeURIComponent(callId)}`;
  const segments = new Map(); // SegmentId -> segment
  const items = new Map(); // SegmentId -> <li>
  const alerts = [];
  const categories = new Map(); // name -> [{BeginOffsetMillis, EndOffsetMillis}]
  const phrases = new Map(); // SegmentId -> [phrase] (from the export)
  const flaggedSegments = new Map(); // SegmentId -> [term]
  let row = null;
  let detail = null;
  let feed = null;
  let stick = true;
  let skew = 0;
  let chartTimer = null;
  let disposed = false;
  let streamChannels = {};
  let channelsAskedAt = 0;

  const header = h('section', { class: 'call-head', 'aria-label': 'Call' });
  const alertBox = h('section', { class: 'alert-box', id: 'call-alerts', 'aria-label': 'Alerts', 'aria-live': 'polite' });
  const list = h('ol', { class: 'transcript', id: 'transcript', 'aria-label': 'Transcript' });
  const transcriptBox = h('div', { class: 'transcript-box', id: 'transcript-box', tabindex: '0', 'aria-label': 'Transcript, scrollable' }, list);
  const jump = h('button', { type: 'button', class: 'jump', id: 'jump-live', hidden: true }, '↓ Follow live');
  const emptyNote = h('p', { class: 'muted', id: 'transcript-empty' }, 'No speech yet.');
  const player = h('div', { class: 'player', id: 'player' });
  const charts = h('div', { class: 'charts', id: 'charts' });
  const downloads = h('div', { class: 'downloads', id: 'downloads' });
  const summary = h('div', { class: 'summary', id: 'summary' });
  const streams = h('div', { class: 'streams-of-call', id: 'call-streams' });

  fill(
    main,
    h('p', { class: 'crumbs' }, h('a', { href: '#/calls' }, '← Calls')),
    header,
    alertBox,
    h('div', { class: 'call-grid' },
      h('section', { class: 'panel transcript-panel', 'aria-label': 'Live transcript' },
        h('h2', {}, 'Transcript'), emptyNote, transcriptBox, jump),
      h('aside', { class: 'side' },
        h('section', { class: 'panel', 'aria-label': 'Recording' }, h('h2', {}, 'Recording'), player, downloads),
        h('section', { class: 'panel', 'aria-label': 'Sentiment over time' }, h('h2', {}, 'Sentiment'), charts),
        h('section', { class: 'panel', 'aria-label': 'Summary' }, h('h2', {}, 'Summary'), summary, streams))),
  );

  transcriptBox.addEventListener('scroll', () => {
    stick = transcriptBox.scrollTop + transcriptBox.clientHeight >= transcriptBox.scrollHeight - STICK_PX;
    if (stick) jump.hidden = true;
  });
  jump.addEventListener('click', () => {
    stick = true;
    jump.hidden = true;
    transcriptBox.scrollTop = transcriptBox.scrollHeight;
  });

  // --- header --------------------------------------------------------------------------
  function duration() {
    if (!row) return 0;
    if (!LIVE.has(row.Status)) return row.DurationSeconds;
    return Math.max(row.DurationSeconds || 0, (Date.now() + skew - row.StartedAt) / 1000);
  }

  function renderHeader() {
    if (!row) return;
    const caller = row.Sentiment?.CALLER || {};
    const agent = row.Sentiment?.AGENT || {};
    const fact = (label, value, id) => h('div', { class: 'fact' }, h('dt', {}, label), h('dd', { id }, value));
    fill(
      header,
      h('h1', {}, 'Call ', h('span', { class: 'mono', id: 'call-id' }, row.CallId), ' ', statusBadge(row.Status)),
      h('dl', { class: 'facts' },
        fact('Source', sourceName(row.Source)),
        fact('Started', fmtTime(row.StartedAt)),
        fact('Duration', fmtDuration(duration()), 'call-duration'),
        fact('Caller number', row.CustomerPhoneNumber || '–'),
        fact('System number', row.SystemPhoneNumber || '–'),
        fact('Agent', row.AgentId || '–'),
        fact('Caller sentiment', sentimentCell(caller.Overall, caller.Trend)),
        fact('Agent sentiment', sentimentCell(agent.Overall, agent.Trend)),
        fact('Categories', (row.Categories || []).length ? row.Categories.map((c) => h('span', { class: 'chip' }, c)) : '–'),
        fact('Flags', (row.Flags || []).length ? row.Flags.map((f) => h('span', { class: 'badge flag' }, f)) : '–'),
        row.SecondsBehindLive > 1 ? fact('Behind live', `${row.SecondsBehindLive.toFixed(1)} s`) : null),
    );
  }

  // --- alerts --------------------------------------------------------------------------
  function addAlert(alert) {
    // one entry per abusive caller or category; later evidence joins the first alert
    const key = `${alert.AlertType}/${alert.Category || ''}`;
    let known = alerts.find((a) => a.key === key);
    if (!known) {
      known = { key, alert: { ...alert, Evidence: [] } };
      alerts.push(known);
    }
    const have = new Set(known.alert.Evidence.map((e) => `${e.SegmentId}/${e.Term}`));
    for (const evidence of alert.Evidence || []) {
      if (have.has(`${evidence.SegmentId}/${evidence.Term}`)) continue;
      have.add(`${evidence.SegmentId}/${evidence.Term}`);
      known.alert.Evidence.push(evidence);
      if (!evidence.SegmentId) continue;
      const terms = flaggedSegments.get(evidence.SegmentId) || [];
      if (evidence.Term) terms.push(evidence.Term);
      flaggedSegments.set(evidence.SegmentId, terms);
      refreshSegment(evidence.SegmentId);
    }
    renderAlerts();
  }

  function renderAlerts() {
    fill(alertBox, alerts.map(({ alert }) => h(
      'div',
      { class: 'alert-pill', role: 'alert' },
      h('strong', {}, alert.AlertType === 'ABUSIVE_CALLER' ? '⚠ Abusive caller' : `Category alert: ${alert.Category}`),
      (alert.Evidence || []).map((e) => h(
        'button',
        { type: 'button', class: 'evidence', title: 'Go to this line', onclick: () => focusSegment(e.SegmentId, e.StartTime) },
        `${clock(e.StartTime)} “${e.Term || 'evidence'}”`,
      )),
    )));
  }

  // --- transcript ----------------------------------------------------------------------
  function categoriesOf(segment) {
    const found = [];
    const start = Number(segment.StartTime) * 1000;
    const end = Number(segment.EndTime) * 1000;
    for (const [name, ranges] of categories) {
      if (ranges.some((r) => r.BeginOffsetMillis < end && r.EndOffsetMillis > start)) found.push(name);
    }
    return found;
  }

  function highlighted(text, terms, kind) {
    // text with each occurrence of the terms wrapped in <mark>, as DOM nodes
    const wanted = terms.filter(Boolean).map((t) => t.toLowerCase());
    if (!wanted.length) return [text];
    const lower = text.toLowerCase();
    const spans = [];
    for (const term of wanted) {
      let at = lower.indexOf(term);
      while (at >= 0) {
        spans.push([at, at + term.length]);
        at = lower.indexOf(term, at + term.length);
      }
    }
    spans.sort((a, b) => a[0] - b[0]);
    const out = [];
    let pos = 0;
    for (const [a, b] of spans) {
      if (a < pos) continue;
      out.push(text.slice(pos, a), h('mark', { class: kind }, text.slice(a, b)));
      pos = b;
    }
    out.push(text.slice(pos));
    return out;
  }

  function renderSegment(segment, li) {
    const role = segment.Channel === 'AGENT' ? 'agent' : 'caller';
    const abusiveTerms = flaggedSegments.get(segment.SegmentId);
    const flags = segment.Flags || [];
    const abusive = Boolean(abusiveTerms) || flags.includes('ABUSIVE_CALLER');
    const cats = categoriesOf(segment);
    const issues = (segment.Issues || []).map((i) => (typeof i === 'string' ? i : i.Type || JSON.stringify(i)));
    li.className = ['seg', role, segment.IsPartial ? 'partial' : 'final', abusive ? 'abusive' : '', cats.length ? 'categorized' : '']
      .filter(Boolean).join(' ');
    li.dataset.sid = segment.SegmentId;
    li.dataset.start = String(segment.StartTime);
    li.tabIndex = 0;
    li.setAttribute('role', 'button');
    li.setAttribute('aria-label', `${segment.Channel} at ${clock(segment.StartTime)}: ${segment.Transcript}. Play from here.`);
    const terms = [...(abusiveTerms || []), ...(phrases.get(segment.SegmentId) || [])];
    const weighted = segment.SentimentWeighted;
    fill(
      li,
      h('div', { class: 'seg-meta' },
        h('span', { class: 'who' }, segment.Channel),
        h('span', { class: 'at mono' }, clock(segment.StartTime)),
        segment.IsPartial
          ? h('span', { class: 'badge partial-badge' }, 'partial')
          : h('span', { class: `sentiment ${sentimentClass(weighted)}`, title: `sentiment ${segment.Sentiment || ''}` },
            segment.Sentiment ? `${segment.Sentiment.toLowerCase()}${weighted !== null && weighted !== undefined ? ` ${Number(weighted).toFixed(1)}` : ''}` : ''),
        issues.map((i) => h('span', { class: 'badge flag' }, i)),
        abusive ? h('span', { class: 'badge flag' }, 'abusive') : null,
        cats.map((c) => h('span', { class: 'chip' }, c))),
      h('p', { class: 'text' }, highlighted(segment.Transcript || '…', terms, abusive ? 'abuse' : 'category')),
    );
    return li;
  }

  function refreshSegment(sid) {
    const segment = segments.get(sid);
    const li = items.get(sid);
    if (segment && li) renderSegment(segment, li);
  }

  function upsertSegment(segment) {
    const old = segments.get(segment.SegmentId);
    if (old && !old.IsPartial && segment.IsPartial) return; // a late partial after its final
    if (!segment.IsPartial && !segment.Transcript) {
      // an empty final: the partial was noise
      segments.delete(segment.SegmentId);
      const gone = items.get(segment.SegmentId);
      if (gone) gone.remove();
      items.delete(segment.SegmentId);
      return;
    }
    segments.set(segment.SegmentId, segment);
    let li = items.get(segment.SegmentId);
    const fresh = !li;
    if (fresh) {
      li = h('li');
      items.set(segment.SegmentId, li);
    }
    renderSegment(segment, li);
    if (fresh) {
      // keep time order (by start, then caller before agent)
      const key = (s) => [Number(s.StartTime), s.Channel === 'AGENT' ? 1 : 0];
      const mine = key(segment);
      let before = null;
      for (const other of list.children) {
        const k = key(segments.get(other.dataset.sid) || { StartTime: Infinity });
        if (k[0] > mine[0] || (k[0] === mine[0] && k[1] > mine[1])) {
          before = other;
          break;
        }
      }
      list.insertBefore(li, before);
    }
    emptyNote.hidden = segments.size > 0;
    if (stick) transcriptBox.scrollTop = transcriptBox.scrollHeight;
    else jump.hidden = false;
    scheduleCharts();
  }

  function focusSegment(sid, startTime) {
    const li = items.get(sid);
    if (li) {
      stick = false;
      li.scrollIntoView({ block: 'center' });
      li.focus({ preventScroll: true });
    }
    seek(startTime);
  }

  function seek(seconds) {
    const audio = player.querySelector('audio');
    if (!audio || seconds === undefined || seconds === null) return;
    audio.currentTime = Math.max(0, Number(seconds));
    audio.play().catch(() => {}); // a browser may refuse autoplay; the seek stands
  }

  list.addEventListener('click', (event) => {
    const li = event.target.closest('li.seg');
    if (li) seek(Number(li.dataset.start));
  });
  list.addEventListener('keydown', (event) => {
    const li = event.target.closest('li.seg');
    if (!li) return;
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      seek(Number(li.dataset.start));
    } else if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      const next = event.key === 'ArrowDown' ? li.nextElementSibling : li.previousElementSibling;
      if (next) next.focus();
    }
  });

  // --- charts --------------------------------------------------------------------------
  function scheduleCharts() {
    clearTimeout(chartTimer);
    chartTimer = setTimeout(renderCharts, 250);
  }

  function renderCharts() {
    const finals = [...segments.values()].filter((s) => !s.IsPartial);
    const end = Math.max(duration(), ...finals.map((s) => Number(s.EndTime)), 1);
    fill(charts, ['CALLER', 'AGENT'].map((channel) => {
      const points = finals
        .filter((s) => s.Channel === channel)
        .map((s) => ({ t: (Number(s.StartTime) + Number(s.EndTime)) / 2, v: Number(s.SentimentWeighted ?? 0), sid: s.SegmentId }))
        .sort((a, b) => a.t - b.t);
      return sentimentChart({ title: channel === 'CALLER' ? 'Caller' : 'Agent', channel, points, end, onPick: (p) => focusSegment(p.sid, segments.get(p.sid)?.StartTime) });
    }));
  }

  // --- recording, downloads, summary ---------------------------------------------------
  function renderPlayer() {
    if (detail && detail.HasRecording) {
      if (!player.querySelector('audio')) {
        fill(player, h('audio', { controls: true, preload: 'metadata', src: `${base}/recording.wav`, id: 'recording', 'aria-label': 'Call recording (caller left, agent right)' }),
          h('p', { class: 'muted small' }, 'Stereo: caller left, agent right. Click a line to play from it.'));
      }
    } else {
      const where = row?.Node ? `The recording is on cluster node ${row.Node}, which analysed this call.` : null;
      fill(player, h('p', { class: 'muted' }, where || (LIVE.has(row?.Status) ? 'The recording is ready when the call ends.' : 'No recording.')));
    }
    const ended = Boolean(detail && detail.Call);
    fill(
      downloads,
      detail && detail.HasRecording ? h('a', { href: `${base}/recording.wav?download=1`, download: `${callId}.wav`, class: 'button' }, 'WAV') : null,
      ended ? h('a', { href: `${base}/call.json`, download: `${callId}.json`, class: 'button' }, 'JSON') : null,
      h('a', { href: `${base}/transcript.txt`, download: `${callId}-transcript.txt`, class: 'button' }, 'Transcript'),
    );
  }

  function renderSummary() {
    const call = detail && detail.Call;
    const sum = call && call.Summary;
    const highlights = (sum && sum.Highlights) || [];
    const talk = sum && sum.TalkTimeSeconds;
    const waiting = LIVE.has(row?.Status) ? 'The summary follows the call.' : 'No summary.';
    fill(
      summary,
      highlights.length
        ? h('ol', { class: 'highlights' }, highlights.map((x) => h('li', {},
          h('button', { type: 'button', class: 'quiet at mono', title: 'Go to this line', onclick: () => focusSegment(x.SegmentId, x.StartTime) }, clock(x.StartTime)),
          h('strong', {}, ` ${x.Channel}: `), x.Transcript)))
        : h('p', { class: 'muted' }, (sum && sum.Text) || row?.Summary || waiting),
      talk
        ? h('p', { class: 'muted small', id: 'talk-time' },
          `Talk time: caller ${fmtDuration(talk.CALLER || 0)}, agent ${fmtDuration(talk.AGENT || 0)}`
          + (sum.NonTalkTimeSeconds !== undefined ? ` · silence ${fmtDuration(sum.NonTalkTimeSeconds)}` : ''))
        : null,
    );
  }

  function renderStreams(channels = streamChannels) {
    streamChannels = channels || {};
    const arns = new Map();
    for (const [role, info] of Object.entries(channels || {})) {
      if (info && info.StreamARN) arns.set(info.StreamARN, [...(arns.get(info.StreamARN) || []), role]);
    }
    if (!arns.size) return;
    fill(streams, h('h3', {}, 'Streams'), h('ul', { class: 'plain' }, [...arns].map(([arn, roles]) => {
      const name = arn.split('/')[1] || arn;
      const start = row ? row.StartedAt - 2000 : null;
      const end = row ? (row.EndedAt || row.StartedAt + duration() * 1000) + 4000 : null;
      const range = start ? `?start=${Math.round(start)}&end=${Math.round(end)}` : '';
      return h('li', {}, h('a', { href: `#/streams/${encodeURIComponent(name)}${range}` }, name), ` (${roles.join(', ').toLowerCase()})`);
    })));
  }

  async function refreshChannels(force = false) {
    // a voice-connector call's second leg is found once its stream holds audio
    if (!row || row.Source !== 'VOICE_CONNECTOR' || Object.keys(streamChannels).length > 1) return;
    if (!force && Date.now() - channelsAskedAt < 5000) return;
    channelsAskedAt = Date.now();
    try {
      const again = await getJSON(`${base}/transcript`);
      if (!disposed) renderStreams(again.Channels);
    } catch {
      // the next row update tries again
    }
  }

  function applyExport() {
    const call = detail && detail.Call;
    if (!call) return;
    for (const cat of call.Categories || []) {
      if (!cat.SegmentId || !cat.Phrase) continue;
      const known = phrases.get(cat.SegmentId) || [];
      if (!known.includes(cat.Phrase)) phrases.set(cat.SegmentId, [...known, cat.Phrase]);
    }
    for (const flag of call.Flags || []) {
      if (flag.Type === 'ABUSIVE_CALLER') addAlert({ AlertType: 'ABUSIVE_CALLER', SegmentIds: flag.SegmentIds, Evidence: flag.Evidence });
    }
    for (const segment of call.Segments || []) {
      const mine = segments.get(segment.SegmentId);
      if (mine) segments.set(segment.SegmentId, { ...mine, Flags: segment.Flags });
      refreshSegment(segment.SegmentId);
    }
  }

  async function loadDetail() {
    detail = await getJSON(base);
    skew = detail.ServerTime ? detail.ServerTime - Date.now() : 0;
    row = detail.CallSummary;
    renderHeader();
    renderPlayer();
    renderSummary();
    applyExport();
    renderStreams();
  }

  async function start() {
    try {
      await loadDetail();
      const transcript = await getJSON(`${base}/transcript`);
      if (disposed) return;
      for (const [name, ranges] of Object.entries(transcript.Categories || {})) categories.set(name, ranges);
      for (const alert of transcript.Alerts || []) addAlert(alert);
      for (const segment of transcript.Segments || []) upsertSegment(segment);
      applyExport();
      renderStreams(transcript.Channels);
      channelsAskedAt = Date.now();
      renderCharts();
      feed = new LiveFeed({ call: callId, cursor: transcript.Cursor });
      feed.on('TranscriptSegment', upsertSegment);
      feed.on('CallAlert', addAlert);
      feed.on('CategoryMatched', (event) => {
        for (const name of event.MatchedCategories || []) {
          const ranges = event.MatchedDetails?.[name]?.TimestampRanges || [];
          categories.set(name, [...(categories.get(name) || []), ...ranges]);
        }
        for (const sid of segments.keys()) refreshSegment(sid);
      });
      feed.on('row', (fresh) => {
        row = fresh;
        renderHeader();
        renderStreams();
        refreshChannels();
      });
      feed.on('CallAnalyticsEnded', () => loadDetail().then(() => {
        renderCharts();
        refreshChannels(true);
      }));
      feed.on('CallSummary', () => loadDetail());
    } catch (err) {
      if (err.status === 404) fill(main, h('p', { class: 'pad' }, `No call ${callId}. `, h('a', { href: '#/calls' }, 'Back to the calls')));
      else if (err.status !== 401) fill(main, h('p', { class: 'pad error' }, `Cannot load the call: ${err.message}`));
    }
  }

  const ticker = setInterval(() => {
    if (row && LIVE.has(row.Status)) {
      const cell = document.getElementById('call-duration');
      if (cell) cell.textContent = fmtDuration(duration());
    }
  }, 1000);

  start();
  main.focus({ preventScroll: true });

  return {
    dispose() {
      disposed = true;
      clearInterval(ticker);
      clearTimeout(chartTimer);
      if (feed) feed.close();
      const audio = player.querySelector('audio');
      if (audio) audio.pause();
    },
  };
}
