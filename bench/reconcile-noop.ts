// The benchmark's reconciler, loaded into `threeport server --role controllers`
// child processes through THREEPORT_TEST_RECONCILERS: it does no I/O, so the
// figures measure the engine (lease, read, commit outcome and event).
// With BENCH_REPORT_SETTLED=1 each committed outcome is reported to the parent
// over the IPC channel, stamped with the wall clock at sub-millisecond precision.
import { performance } from 'node:perf_hooks';
import type { Reconciler, Settlement } from '../src/reconcile/types.js';

export const reconcilers: Reconciler[] = [
  {
    kind: 'ControlPlaneDefinition',
    async created() {},
    async updated() {},
  },
];

const report = process.env['BENCH_REPORT_SETTLED'] === '1' && typeof process.send === 'function';

export function onSettled(s: Settlement): void {
  if (report) process.send!({ id: s.id, outcome: s.outcome, at: performance.timeOrigin + performance.now() });
}
