// The registry of every object kind the v0 API serves.
import type { Kind } from './declare.js';
import * as aws from './aws.js';
import * as controlPlane from './control-plane.js';
import * as events from './events.js';
import * as gateway from './gateway.js';
import * as helmWorkload from './helm-workload.js';
import * as kubernetesRuntime from './kubernetes-runtime.js';
import * as observability from './observability.js';
import * as platform from './platform.js';
import * as secret from './secret.js';
import * as terraform from './terraform.js';
import * as workload from './workload.js';

export * from './declare.js';

function kindsOf(mod: Record<string, unknown>): Kind[] {
  return Object.values(mod).filter((v): v is Kind => typeof v === 'object' && v !== null && 'allFields' in v);
}

export const KINDS: readonly Kind[] = [
  workload,
  kubernetesRuntime,
  aws,
  gateway,
  helmWorkload,
  secret,
  terraform,
  observability,
  controlPlane,
  events,
  platform,
].flatMap((m) => kindsOf(m as Record<string, unknown>));

export const KIND_BY_NAME: ReadonlyMap<string, Kind> = new Map(KINDS.map((k) => [k.name, k]));
export const KIND_BY_PLURAL: ReadonlyMap<string, Kind> = new Map(KINDS.map((k) => [k.plural, k]));

export function kindNamed(name: string): Kind {
  const kind = KIND_BY_NAME.get(name);
  if (!kind) throw new Error(`unknown object kind ${JSON.stringify(name)}`);
  return kind;
}

/** Live references that block deleting an object of `target`: (referring kind, field). */
export function blockingReferences(target: Kind): Array<{ kind: Kind; field: string }> {
  return KINDS.flatMap((kind) =>
    Object.entries(kind.allFields)
      .filter(([, s]) => s.type === 'id' && s.ref === target.name && s.blocksDelete)
      .map(([field]) => ({ kind, field })),
  );
}

export { aws, controlPlane, events, gateway, helmWorkload, kubernetesRuntime, observability, platform, secret, terraform, workload };
