// The live connection: one EventSource on /dashboard/api/events. The browser reconnects by itself
// and sends Last-Event-ID; when the stream fails hard (the proxy answered 502 while the control
// plane was down) a new EventSource is opened with the last ID in the query, so the server can
// still replay what was missed. `reset` (and the first `hello`) mean: reload what you show.
import type { ChangeEvent, Reachability } from '../../../src/dashboard/api-types.js';

export type LiveState = 'connecting' | 'live' | 'reconnecting';

export interface LiveHandlers {
  change(c: ChangeEvent): void;
  reload(): void;
  runtime(r: Reachability): void;
  state(s: LiveState): void;
}

export function connectLive(h: LiveHandlers): () => void {
  let source: EventSource | undefined;
  let lastId = '';
  let retry: ReturnType<typeof setTimeout> | undefined;
  let delay = 1_000;
  let closed = false;

  const open = () => {
    h.state(lastId ? 'reconnecting' : 'connecting');
    const es = new EventSource(`/dashboard/api/events${lastId ? `?lastEventId=${encodeURIComponent(lastId)}` : ''}`);
    source = es;
    const track = (e: MessageEvent) => {
      if (e.lastEventId) lastId = e.lastEventId;
    };
    es.addEventListener('open', () => {
      delay = 1_000;
      h.state('live');
    });
    es.addEventListener('hello', (e) => {
      track(e as MessageEvent);
      h.reload();
    });
    es.addEventListener('reset', (e) => {
      track(e as MessageEvent);
      h.reload();
    });
    es.addEventListener('change', (e) => {
      track(e as MessageEvent);
      h.change(JSON.parse((e as MessageEvent).data as string) as ChangeEvent);
    });
    es.addEventListener('runtime', (e) => h.runtime(JSON.parse((e as MessageEvent).data as string) as Reachability));
    es.addEventListener('error', () => {
      if (closed) return;
      h.state('reconnecting');
      if (es.readyState === EventSource.CLOSED) {
        // The browser gave up (a non-stream answer, e.g. the proxy's 502): find out what is wrong
        // (the page's load shows the banner), and try again ourselves, with backoff.
        h.reload();
        retry = setTimeout(open, delay);
        delay = Math.min(10_000, delay * 2);
      }
    });
  };
  open();
  return () => {
    closed = true;
    clearTimeout(retry);
    source?.close();
  };
}
