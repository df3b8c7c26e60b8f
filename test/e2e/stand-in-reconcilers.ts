// Loaded into the `threeport server` that the tptctl end-to-end tests start
// (through THREEPORT_TEST_RECONCILERS, passed on by `tptctl up`): a reconciler
// that does nothing for every reconciled kind. It stands in for the domain
// controllers that do not exist yet, so that the controller runtime marks
// objects reconciled and completes two-phase deletions as the real ones will,
// and the tests can follow `tptctl delete` to the end.
import { KINDS } from '../../src/kinds/index.js';
import type { Reconciler } from '../../src/reconcile/types.js';

export const reconcilers: Reconciler[] = KINDS.filter((k) => k.reconciled).map((k) => ({ kind: k.name }));
