// Server-sent events from /ui/api/events: call rows, alerts and (for one call) its
// transcript segments. EventSource reconnects by itself and resumes after the last id.

import { query } from './util.js';

export const EVENT_TYPES = [
  'row',
  'CallAnalyticsStarted',
  'TranscriptSegment',
  'CategoryMatched',
  'CallAlert',
  'AgentUpdated',
  'CallSummary',
  'CallAnalyticsEnded',
];

export class LiveFeed {
  /** Follow the bus (`call`: one call's events too; `cursor`: resume after it). */
  constructor({ call = null, cursor = null, onStatus = null } = {}) {
    this.handlers = new Map();
    this.onStatus = onStatus;
    this.source = new EventSource(`api/events${query({ call, cursor })}`);
    this.source.addEventListener('open', () => this.status('live'));
    this.source.addEventListener('error', () => {
      this.status(this.source.readyState === EventSource.CLOSED ? 'offline' : 'reconnecting');
    });
    for (const type of EVENT_TYPES) {
      this.source.addEventListener(type, (message) => this.dispatch(type, message));
    }
  }

  status(text) {
    if (this.onStatus) this.onStatus(text);
  }

  dispatch(type, message) {
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      return;
    }
    const cursor = Number(message.lastEventId) || null;
    for (const handler of this.handlers.get(type) || []) handler(data, cursor);
    for (const handler of this.handlers.get('*') || []) handler(type, data, cursor);
  }

  /** Call handler(data, cursor) for each event of `type` ('*': handler(type, data, cursor));
   * returns a function that stops it. */
  on(type, handler) {
    if (!this.handlers.has(type)) this.handlers.set(type, []);
    this.handlers.get(type).push(handler);
    return () => {
      const list = this.handlers.get(type) || [];
      const at = list.indexOf(handler);
      if (at >= 0) list.splice(at, 1);
    };
  }

  close() {
    this.source.close();
    this.handlers.clear();
  }
}
