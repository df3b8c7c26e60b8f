// The benchmark's reconciler, loaded into `threeport server --role controllers`
// child processes through THREEPORT_TEST_RECONCILERS: it does no I/O, so the
// figures measure the engine (lease, read, commit outcome and event).
// Progress goes to the parent over the IPC channel: with BENCH_REPORT_SETTLED=1
// each committed outcome, stamped with the wall clock at sub-millisecond
// precision; otherwise the running count of reconciled items.
import { performance } from 'node:perf_hooks';
import type { Reconciler, Settlement } from '../src/reconcile/types.js';

export const reconcilers: Reconciler[] = [
  {
    kind: 'ControlPlaneDefinition',
    async created() {},
    async updated() {},
  },
];

const ipc = typeof process.send === 'function';
const perItem = ipc && process.env['BENCH_REPORT_SETTLED'] === '1';
let reconciled = 0;
let reported = 0;

// Without per-item reports, the running count of reconciled items goes to the parent every 20 ms,
// so that the parent need not poll the database (which would load the machine it measures).
if (ipc && !perItem) {
  setInterval(() => {
    if (reconciled !== reported) {
      reported = reconciled;
      process.send!({ reconciled });
    }
  }, 20).unref();
}

export function onSettled(s: Settlement): void {
  if (s.outcome === 'reconciled') reconciled++;
  if (perItem) process.send!({ id: s.id, outcome: s.outcome, at: performance.timeOrigin + performance.now() });
}
