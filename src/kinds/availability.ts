// The rule "no hollow kinds": a kind the API accepts either reconciles for real or is refused with
// a clear error. A kind declared `unavailable` still accepts objects that ask for nothing
// (`Reconciled: true`, e.g. the genesis control plane that tptctl up registers), so upstream
// clients that register existing things keep working; a write that would wait for a controller
// that does not exist is a 400 instead of an object stuck in Reconciling forever.
import { InputError } from '../errors.js';
import type { Kind } from './declare.js';
import type { WriteMode } from './validate.js';

/**
 * Throws the 400 for a write that would queue a reconcile of an unavailable kind. `served` names
 * kinds that this deployment reconciles anyway: the test reconcilers of THREEPORT_TEST_RECONCILERS,
 * which the engine's own tests run on kinds no built-in controller serves.
 */
export function refuseUnavailableWrite(
  kind: Kind,
  fields: Readonly<Record<string, unknown>>,
  mode: WriteMode,
  served: ReadonlySet<string> = NONE,
): void {
  if (!kind.unavailable || served.has(kind.name)) return;
  // A create (or PUT, which replaces the object) asks for a reconcile unless it says Reconciled: true;
  // a PATCH asks for one only by setting Reconciled to false.
  const asks = mode === 'patch' ? fields['Reconciled'] === false : fields['Reconciled'] !== true;
  if (!asks) return;
  throw new InputError(`${kind.name} is not available on this control plane: ${kind.unavailable}`);
}

const NONE: ReadonlySet<string> = new Set();

/**
 * Whether a DELETE of this object waits for a controller to clean up (spec §1.7 two-phase delete).
 * A registered object of an unavailable kind (Reconciled: true, nothing ever done for it) goes at
 * once, since no controller exists to confirm it, unless `served` says this deployment reconciles
 * the kind anyway.
 */
export function deletesInTwoPhases(kind: Kind, object: Readonly<Record<string, unknown>>, served: ReadonlySet<string> = NONE): boolean {
  if (!kind.reconciled) return false;
  if (!kind.unavailable || served.has(kind.name)) return true;
  return object['Reconciled'] !== true;
}
