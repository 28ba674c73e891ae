// Small helpers shared by the views: DOM building (text only, never HTML strings),
// formatting, and JSON requests to the UI's API.

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Build an element: h('a', {href: '#', class: 'x', onclick: fn}, 'text', child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** Build an SVG element with attributes. */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

function toLogin() {
  const next = location.pathname + location.hash;
  location.assign(`login?next=${encodeURIComponent(next)}`);
}

/** GET a UI endpoint's JSON; a 401 goes to the login form. */
export async function getJSON(path, { signal } = {}) {
  const response = await fetch(path, {
    credentials: 'same-origin',
    headers: { Accept: 'application/json' },
    signal,
  });
  if (response.status === 401) {
    toLogin();
    throw new ApiError(401, 'NotAuthorized', 'Sign in first.');
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, body && body.Error, body && body.Message);
  }
  return body;
}

/** POST to a UI endpoint with the session's CSRF token. */
export async function post(path, csrf) {
  const response = await fetch(path, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'X-CSRF-Token': csrf || '', Accept: 'application/json' },
  });
  if (!response.ok) throw new ApiError(response.status, 'PostFailed', `HTTP ${response.status}`);
  return response.json();
}

/** A query string from an object, leaving out empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== '' && value !== false) {
      q.set(key, value === true ? '1' : String(value));
    }
  }
  const text = q.toString();
  return text ? `?${text}` : '';
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** Epoch ms as local "YYYY-MM-DD HH:MM:SS". */
export function fmtTime(ms, { millis = false } = {}) {
  if (ms === null || ms === undefined) return '–';
  const d = new Date(ms);
  const base = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} `
    + `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return millis ? `${base}.${pad(d.getMilliseconds(), 3)}` : base;
}

/** Epoch ms as UTC ISO 8601 with milliseconds (what `callstream get-audio` takes). */
export function isoUtc(ms) {
  return new Date(ms).toISOString();
}

/** Seconds as m:ss or h:mm:ss. */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return '–';
  const total = Math.max(0, Math.floor(seconds));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  return hours ? `${hours}:${pad(minutes)}:${pad(secs)}` : `${minutes}:${pad(secs)}`;
}

/** Seconds into a call as mm:ss. */
export function clock(seconds) {
  const total = Math.max(0, Math.floor(seconds || 0));
  return `${pad(Math.floor(total / 60))}:${pad(total % 60)}`;
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

/** LCA's weighted sentiment (-5..5) as a class name. */
export function sentimentClass(value) {
  if (value === null || value === undefined) return 'sent-none';
  if (value >= 1) return 'sent-pos';
  if (value <= -1) return 'sent-neg';
  return 'sent-neu';
}

const ARROWS = { UP: ['↑', 'improving'], DOWN: ['↓', 'worsening'], FLAT: ['→', 'steady'] };

/** A sentiment value with its trend arrow. */
export function sentimentCell(value, trend) {
  const known = value !== null && value !== undefined;
  const shown = known ? Number(value).toFixed(1) : '–';
  const arrow = known ? ARROWS[trend] : null;
  return h(
    'span',
    { class: `sentiment ${sentimentClass(value)}`, title: arrow ? `trend: ${arrow[1]}` : 'no trend yet' },
    shown,
    arrow ? h('span', { class: `trend trend-${trend.toLowerCase()}`, 'aria-label': arrow[1] }, arrow[0]) : null,
  );
}

export function statusBadge(status) {
  return h('span', { class: `badge status-${String(status || '').toLowerCase()}` }, status || '–');
}

const SOURCES = { CONNECT: 'Connect', VOICE_CONNECTOR: 'Voice connector', STREAM: 'Stream', FILE: 'File' };

export function sourceName(source) {
  return SOURCES[source] || source || '–';
}

/** Run fn at most once per `ms`, the last call winning. */
export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/** Copy text to the clipboard (with a fallback for plain-http pages). */
export async function copyText(text, fallbackEl) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return true;
  }
  if (fallbackEl) {
    const range = document.createRange();
    range.selectNodeContents(fallbackEl);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }
  return false;
}
