// How objects look on the terminal: table columns derived from the kind
// declarations (plus a few per-kind extras), instance status, describe
// output, and redaction of encrypted fields.
import { stringify as toYaml } from 'yaml';
import type { Kind } from '../kinds/declare.js';
import { GENERATION_FIELDS, MODEL_FIELDS, RECONCILIATION_FIELDS } from '../kinds/declare.js';
import { conditionsOf, isStale } from '../reconcile/conditions.js';
import type { AnyObject } from '../client/types.js';
import { age } from './output.js';

export const REDACTED = '[redacted]';

/** `KubernetesRuntimeInstanceID` → `KUBERNETES RUNTIME INSTANCE`; `AccountID` → `ACCOUNT ID`. */
export function header(field: string, isRef = false): string {
  const base = isRef ? field.replace(/I[Dd]$/, '') : field;
  return base
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
    .replace(/([a-z\d])([A-Z])/g, '$1 $2')
    .toUpperCase();
}

/** kebab-case of a kind or config kind: `AwsEksKubernetesRuntime` → `aws-eks-kubernetes-runtime`. */
export function kebab(name: string): string {
  return name
    .replace(/([A-Z]+)([A-Z][a-z])/g, '$1-$2')
    .replace(/([a-z\d])([A-Z])/g, '$1-$2')
    .toLowerCase();
}

/**
 * Instance status. Server-side status arrives with the workload controllers;
 * until then: the instance's own `Status` when the server sets it, else
 * Reconciling until the object is reconciled and Healthy after.
 */
export function instanceStatus(obj: AnyObject): string {
  if (obj.DeletionScheduled) return 'Deleting';
  const status = obj['Status'];
  // A Down or Unhealthy workload says why (its StatusReason), so `get workloads` answers "why not Healthy?".
  const reason = obj['StatusReason'];
  if (typeof status === 'string' && status !== '' && typeof reason === 'string' && reason !== '') return `${status}: ${reason}`;
  if (typeof status === 'string' && status !== '') return status;
  if (obj.CreationFailed) return 'Error';
  return obj.Reconciled ? 'Healthy' : 'Reconciling';
}

/**
 * Instance fields shown after STATUS in the table of a defined-instance noun (`get
 * observability-stacks`): where the instance can be reached.
 */
export const PAIR_COLUMNS: Readonly<Record<string, readonly string[]>> = {
  ObservabilityStackInstance: ['PrometheusURL', 'LogsURL'],
};

/** Extra columns worth a place in `get` tables; references and AGE are derived for every kind. */
const EXTRA_COLUMNS: Readonly<Record<string, readonly string[]>> = {
  KubernetesRuntimeDefinition: ['InfraProvider', 'InfraProviderAccountName', 'HighAvailability'],
  KubernetesRuntimeInstance: ['Location', 'DefaultRuntime'],
  AwsAccount: ['AccountID', 'DefaultAccount', 'DefaultRegion'],
  AwsEksKubernetesRuntimeInstance: ['Region'],
  AwsRelationalDatabaseDefinition: ['Engine', 'EngineVersion', 'MachineSize'],
  DomainNameDefinition: ['Domain', 'Zone'],
  GatewayDefinition: ['SubDomain', 'ServiceName'],
  HelmWorkloadDefinition: ['Repo', 'Chart', 'ChartVersion'],
  ObservabilityStackInstance: ['MetricsEnabled', 'LoggingEnabled', 'PrometheusURL', 'LogsURL'],
  MetricsInstance: ['PrometheusURL'],
  LoggingInstance: ['LogsURL'],
  HelmWorkloadInstance: ['ReleaseNamespace'],
  ControlPlaneInstance: ['Namespace', 'Genesis'],
  AttachedObjectReference: ['ObjectType', 'ObjectID', 'AttachedObjectType', 'AttachedObjectID'],
};

export interface Column {
  header: string;
  field?: string;
  /** For reference columns: the kind whose name is shown. */
  ref?: string;
}

/** NAME, the required references (definition first), extra columns, STATUS for instances, AGE. */
export function columnsFor(kind: Kind): Column[] {
  const cols: Column[] = [];
  if (kind.allFields['Name']) cols.push({ header: 'NAME', field: 'Name' });
  const refs = Object.entries(kind.fields)
    .filter(([, s]) => s.type === 'id' && s.required && s.ref)
    .sort(([, a], [, b]) => Number(b.ref!.endsWith('Definition')) - Number(a.ref!.endsWith('Definition')));
  for (const [field, spec] of refs) cols.push({ header: header(field, true), field, ref: spec.ref! });
  for (const field of EXTRA_COLUMNS[kind.name] ?? []) cols.push({ header: header(field), field });
  if (kind.base === 'instance') cols.push({ header: 'STATUS' });
  cols.push({ header: 'AGE' });
  return cols;
}

export function cell(value: unknown): string {
  if (value === undefined || value === null || value === '') return '<none>';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** The object with encrypted fields replaced, for output that was not asked for them. */
export function redact(kind: Kind, obj: AnyObject): AnyObject {
  const out: AnyObject = { ...obj };
  for (const field of kind.encryptedFields) {
    if (out[field] !== undefined && out[field] !== null) out[field] = REDACTED;
  }
  return out;
}

export function serialize(data: unknown, format: 'json' | 'yaml'): string {
  return format === 'json' ? `${JSON.stringify(data, null, 2)}\n` : toYaml(data, { lineWidth: 0 });
}

// Generation fields get their own lines (generationLines), not the generic rendering.
const HIDDEN = new Set<string>([...MODEL_FIELDS, ...Object.keys(GENERATION_FIELDS)]);

/** `kubectl describe`-style lines for one object. `names` resolves referenced IDs to names. */
export function describeLines(kind: Kind, obj: AnyObject, refName: (kind: string, id: number) => string | undefined, now = Date.now()): string {
  const rows: Array<[string, string]> = [];
  rows.push(['Kind', kind.name]);
  if (obj['Name'] !== undefined) rows.push(['Name', String(obj['Name'])]);
  rows.push(['ID', String(obj.ID)]);
  if (kind.base === 'instance') rows.push(['Status', instanceStatus(obj)]);
  const blocks: Array<[string, string]> = [];
  const fieldOrder = [...Object.keys(kind.allFields).filter((f) => !(f in RECONCILIATION_FIELDS) && f !== 'Name' && f !== 'Status' && f !== 'StatusReason'), ...Object.keys(RECONCILIATION_FIELDS)];
  for (const field of fieldOrder) {
    if (HIDDEN.has(field)) continue;
    const spec = kind.allFields[field]!;
    const value = obj[field];
    if (value === undefined || value === null) continue;
    if (spec.encrypted) {
      rows.push([field, `${REDACTED} (show it with -f ${field})`]);
      continue;
    }
    if (spec.type === 'id' && typeof value === 'number') {
      const name = spec.ref ? refName(spec.ref, value) : undefined;
      rows.push([field.replace(/I[Dd]$/, ''), name ? `${name} (ID ${value})` : `ID ${value}`]);
      continue;
    }
    if (typeof value === 'string' && value.includes('\n')) {
      blocks.push([field, value]);
      continue;
    }
    if (typeof value === 'object') {
      if (Array.isArray(value) && value.length === 0) continue;
      blocks.push([field, toYaml(value, { lineWidth: 0 })]);
      continue;
    }
    rows.push([field, String(value)]);
  }
  if (kind.reconciled) rows.push(...generationLines(obj));
  rows.push(['Created', `${obj.CreatedAt} (${age(obj.CreatedAt, now)} ago)`]);
  rows.push(['Updated', `${obj.UpdatedAt} (${age(obj.UpdatedAt, now)} ago)`]);
  const width = Math.max(...rows.map(([k]) => k.length)) + 2;
  let text = rows.map(([k, v]) => `${`${k}:`.padEnd(width)}${v}`).join('\n') + '\n';
  for (const [k, v] of blocks) {
    text += `${k}:\n${v.replace(/\n+$/, '').split('\n').map((l) => `  ${l}`).join('\n')}\n`;
  }
  return text;
}

/** Generation, whether the status is stale, and one line per condition. */
function generationLines(obj: AnyObject): Array<[string, string]> {
  const rows: Array<[string, string]> = [];
  const generation = obj['Generation'];
  if (typeof generation === 'number') {
    const observed = obj['ObservedGeneration'];
    const seen = typeof observed === 'number' ? `observed ${observed}` : 'not yet observed';
    rows.push(['Generation', `${generation} (${seen}${isStale(obj) ? '; status is stale: the latest change is not reconciled yet' : ''})`]);
  }
  for (const c of conditionsOf(obj)) {
    const why = [c.Reason, c.Message].filter((t) => t !== '').join(': ');
    rows.push([c.Type, `${c.Status}${why ? ` (${why})` : ''} since ${c.LastTransitionTime}`]);
  }
  return rows;
}
