// Waiting inside a reconcile.
//
// For another Threeport object: declare a watch (src/controllers/graph.ts) and return
// `untilWoken(ctx, pollMs)`. The engine wakes the object when the watched one changes, so the
// requeue is only a backstop for a missed notification; without the change feed (no LISTEN)
// it is the poll it used to be.
import type { ReconcileContext } from './types.js';
import { WATCH_BACKSTOP_MS } from './watches.js';

export function untilWoken(ctx: Pick<ReconcileContext, 'watching'>, pollMs: number): { requeueAfterMs: number } {
  return { requeueAfterMs: ctx.watching ? WATCH_BACKSTOP_MS : pollMs };
}
