// Small SVG charts drawn by hand: sentiment over a call, a stream's fragment timeline.

import { fmtTime, h, s } from './util.js';

const W = 320;
const H = 96;
const PAD = { left: 26, right: 6, top: 8, bottom: 16 };

/** Sentiment (-5..5) of one channel's turns over the call (0..end seconds). */
export function sentimentChart({ title, channel, points, end, onPick }) {
  const x = (t) => PAD.left + (Math.min(t, end) / end) * (W - PAD.left - PAD.right);
  const y = (v) => PAD.top + ((5 - Math.max(-5, Math.min(5, v))) / 10) * (H - PAD.top - PAD.bottom);
  const svg = s('svg', {
    viewBox: `0 0 ${W} ${H}`,
    class: `chart sentiment-chart chart-${channel.toLowerCase()}`,
    role: 'img',
    'aria-label': `${title} sentiment over time: ${points.length} turns`,
  });
  svg.append(
    s('rect', { x: PAD.left, y: PAD.top, width: W - PAD.left - PAD.right, height: (H - PAD.top - PAD.bottom) / 2, class: 'band-pos' }),
    s('rect', { x: PAD.left, y: y(0), width: W - PAD.left - PAD.right, height: (H - PAD.top - PAD.bottom) / 2, class: 'band-neg' }),
    s('line', { x1: PAD.left, x2: W - PAD.right, y1: y(0), y2: y(0), class: 'zero' }),
  );
  for (const v of [5, 0, -5]) {
    svg.append(s('text', { x: PAD.left - 4, y: y(v) + 3, class: 'axis', 'text-anchor': 'end' }, String(v)));
  }
  svg.append(s('text', { x: W - PAD.right, y: H - 3, class: 'axis', 'text-anchor': 'end' }, `${Math.round(end)} s`));
  svg.append(s('text', { x: PAD.left, y: H - 3, class: 'axis' }, '0'));
  if (points.length > 1) {
    svg.append(s('polyline', { class: 'line', points: points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(' ') }));
  }
  for (const p of points) {
    const dot = s('circle', {
      cx: x(p.t).toFixed(1), cy: y(p.v).toFixed(1), r: 3.5,
      class: `dot ${p.v >= 1 ? 'pos' : p.v <= -1 ? 'neg' : 'neu'}`,
    }, s('title', {}, `${Math.round(p.t)} s: ${p.v.toFixed(1)}`));
    if (onPick) dot.addEventListener('click', () => onPick(p));
    svg.append(dot);
  }
  const mean = points.length ? points.reduce((a, p) => a + p.v, 0) / points.length : null;
  return h('figure', { class: 'chart-box' },
    h('figcaption', {}, `${title}`, mean === null ? ' – no turns yet' : ` · mean ${mean.toFixed(1)}`),
    svg);
}

const TW = 1000;
const TH = 64;

/** The fragments of a stream over [start, end]: covered spans, gaps, a selection.
 * Returns {el, setSelection(a, b)}; dragging calls onSelect(a, b) in epoch ms. */
export function fragmentTimeline({ start, end, spans, gaps, onSelect }) {
  const span = Math.max(1, end - start);
  const x = (ms) => ((Math.max(start, Math.min(end, ms)) - start) / span) * TW;
  const toMs = (px) => start + (px / TW) * span;
  const svg = s('svg', {
    viewBox: `0 0 ${TW} ${TH}`, preserveAspectRatio: 'none', class: 'chart timeline', id: 'timeline',
    role: 'img', 'aria-label': `Fragment timeline: ${spans.length} covered spans, ${gaps.length} gaps`,
  });
  svg.append(s('rect', { x: 0, y: 0, width: TW, height: TH - 18, class: 'track' }));
  for (const [a, b, count, bytes] of spans) {
    svg.append(s('rect', { x: x(a), y: 6, width: Math.max(1, x(b) - x(a)), height: TH - 30, class: 'span' },
      s('title', {}, `${fmtTime(a, { millis: true })} – ${fmtTime(b, { millis: true })}: ${count} fragments, ${bytes} bytes`)));
  }
  for (const [a, b] of gaps) {
    svg.append(s('rect', { x: x(a), y: 2, width: Math.max(2, x(b) - x(a)), height: TH - 22, class: 'gap' },
      s('title', {}, `gap of ${((b - a) / 1000).toFixed(1)} s at ${fmtTime(a, { millis: true })}`)));
  }
  const ticks = 5;
  for (let i = 0; i <= ticks; i += 1) {
    const t = start + (span * i) / ticks;
    const anchor = i === 0 ? 'start' : i === ticks ? 'end' : 'middle';
    svg.append(s('line', { x1: x(t), x2: x(t), y1: TH - 18, y2: TH - 14, class: 'tick' }));
    svg.append(s('text', { x: x(t), y: TH - 3, class: 'axis', 'text-anchor': anchor }, fmtTime(t).slice(11)));
  }
  const selection = s('rect', { x: 0, y: 0, width: 0, height: TH - 18, class: 'selection' });
  svg.append(selection);

  function setSelection(a, b) {
    const left = x(Math.min(a, b));
    selection.setAttribute('x', String(left));
    selection.setAttribute('width', String(Math.max(1, x(Math.max(a, b)) - left)));
  }

  let dragFrom = null;
  const px = (event) => {
    const box = svg.getBoundingClientRect();
    return ((event.clientX - box.left) / box.width) * TW;
  };
  svg.addEventListener('pointerdown', (event) => {
    dragFrom = toMs(px(event));
    svg.setPointerCapture(event.pointerId);
  });
  svg.addEventListener('pointermove', (event) => {
    if (dragFrom !== null) setSelection(dragFrom, toMs(px(event)));
  });
  svg.addEventListener('pointerup', (event) => {
    if (dragFrom === null) return;
    const to = toMs(px(event));
    const [a, b] = [Math.min(dragFrom, to), Math.max(dragFrom, to)];
    dragFrom = null;
    if (b - a > span / 500 && onSelect) onSelect(Math.round(a), Math.round(b));
  });
  return { el: svg, setSelection };
}
