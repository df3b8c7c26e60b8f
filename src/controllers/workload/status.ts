// A WorkloadInstance's Status (spec §5.2: Reconciling | Healthy | Unhealthy | Down | Error),
// derived on the server from what the control plane last applied and what its watches see.
// The rules are written out in docs/workloads.md ("Status"); keep the two in step.
import type { KubeObject } from '../../providers/kube/client.js';

export type WorkloadStatus = 'Reconciling' | 'Healthy' | 'Unhealthy' | 'Down' | 'Error';

/** Where the instance's reconciler is: still working (or waiting), failed to apply, or applied. */
export type Phase = 'reconciling' | 'error' | 'applied';

/** One resource the instance applied, with the live object when the watches have seen it. */
export interface AppliedResource {
  apiVersion: string;
  kind: string;
  /** Undefined when not seen (yet) on the cluster. */
  live: KubeObject | undefined;
}

/** A Warning (or Failed) Kubernetes event about one of the instance's objects. */
export interface WarningEvent {
  involvedUid: string;
  /** The event's reason, e.g. FailedScheduling. */
  reason?: string;
  /** The event's message, for the status reason a user reads. */
  message?: string;
  /** When it last happened (ms since the epoch). */
  at: number;
}

export interface StatusInput {
  phase: Phase;
  resources: readonly AppliedResource[];
  /** Pods and ReplicaSets labelled with the instance. */
  pods: readonly KubeObject[];
  replicaSets: readonly KubeObject[];
  warnings: readonly WarningEvent[];
  /** False while a watch this instance needs has not finished its first list. */
  synced: boolean;
  now: number;
  /** Warning events count for this long (default 60 s). */
  warningWindowMs?: number;
  /** A running pod may take this long to become ready before it counts as failing (default 30 s). */
  startupGraceMs?: number;
}

export interface StatusResult {
  status: WorkloadStatus;
  /** Why, in a few words (logs and tests). */
  detail: string;
  /**
   * Why the status is Down or Unhealthy, in one line a user can act on (written to the
   * instance's StatusReason, shown by `tptctl get workloads`): the workloads concerned and the
   * newest warning about them, e.g. `Deployment wordpress: no ready replicas (FailedScheduling:
   * 0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims)`.
   */
  reason?: string;
  /** When the status may change without any new observation (a warning leaving the window). */
  recheckAt?: number;
}

export const DEFAULT_WARNING_WINDOW_MS = 60_000;
export const DEFAULT_STARTUP_GRACE_MS = 30_000;

/** Kinds that run pods and report ready replicas. */
const REPLICATED = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet']);

/** Container waiting reasons that mean the container cannot start (not merely "starting"). */
const FAILING_WAIT_REASONS = new Set([
  'CrashLoopBackOff',
  'ErrImagePull',
  'ImagePullBackOff',
  'InvalidImageName',
  'CreateContainerConfigError',
  'CreateContainerError',
  'RunContainerError',
  'PreCreateHookError',
  'PostStartHookError',
]);

/**
 * Warnings that report a repair the cluster already made (the API server's service IP and port
 * allocation repair loops): they say nothing about the workload's health.
 */
const SELF_REPAIRED_REASONS = new Set(['ClusterIPNotAllocated', 'PortNotAllocated', 'ClusterIPAlreadyAllocated', 'PortAlreadyAllocated']);

type WorkloadState = 'ok' | 'starting' | 'degraded' | 'down';

interface Obj {
  metadata?: { uid?: string; generation?: number; ownerReferences?: Array<{ uid?: string; controller?: boolean }> };
  spec?: Record<string, unknown>;
  status?: Record<string, unknown>;
}

function num(v: unknown, fallback = 0): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
}

function conditions(o: Obj): Array<{ type?: string; status?: string; reason?: string }> {
  const c = o.status?.['conditions'];
  return Array.isArray(c) ? (c as Array<{ type?: string; status?: string; reason?: string }>) : [];
}

function condition(o: Obj, type: string): { status?: string; reason?: string } | undefined {
  return conditions(o).find((c) => c.type === type);
}

function ownerUid(o: Obj): string | undefined {
  const refs = o.metadata?.ownerReferences ?? [];
  return (refs.find((r) => r.controller) ?? refs[0])?.uid;
}

export function podReady(pod: Obj): boolean {
  return condition(pod, 'Ready')?.status === 'True';
}

/** Time fields as milliseconds since the epoch (NaN when absent). */
function timeOf(v: unknown): number {
  return typeof v === 'string' ? Date.parse(v) : NaN;
}

/**
 * A pod that is not becoming ready by itself: unschedulable, failed, crashing or restarting, or
 * running without being ready for longer than the start-up grace. `recheck` learns when a
 * running, not yet ready pod leaves its grace.
 */
export function podFailing(pod: Obj, now: number, graceMs: number, recheck?: (at: number) => void): boolean {
  if (podReady(pod)) return false;
  const phase = pod.status?.['phase'];
  if (phase === 'Failed') return true;
  const scheduled = condition(pod, 'PodScheduled');
  if (scheduled?.status === 'False') return true;
  const statuses = [
    ...((pod.status?.['containerStatuses'] as unknown[]) ?? []),
    ...((pod.status?.['initContainerStatuses'] as unknown[]) ?? []),
  ] as Array<{ state?: { waiting?: { reason?: string }; terminated?: { exitCode?: number } }; restartCount?: number }>;
  for (const s of statuses) {
    if (s.state?.waiting?.reason && FAILING_WAIT_REASONS.has(s.state.waiting.reason)) return true;
    if (s.state?.terminated && num(s.state.terminated.exitCode) !== 0) return true;
    if (num(s.restartCount) > 0) return true;
  }
  if (phase === 'Succeeded') return true;
  if (phase !== 'Running') return false;
  const since = Math.max(timeOf(pod.status?.['startTime']), timeOf((condition(pod, 'Ready') as { lastTransitionTime?: string } | undefined)?.lastTransitionTime));
  if (!Number.isFinite(since) || now - since >= graceMs) return true;
  recheck?.(since + graceMs);
  return false;
}

/** Desired and ready replicas, and whether the controller has caught up with its spec. */
function replicas(kind: string, o: Obj): { desired: number; ready: number; settled: boolean } {
  const status = o.status ?? {};
  const observed = num(status['observedGeneration'], -1);
  const generation = num(o.metadata?.generation, 0);
  const caughtUp = observed >= generation;
  if (kind === 'DaemonSet') {
    const desired = num(status['desiredNumberScheduled']);
    const updated = num(status['updatedNumberScheduled']);
    return { desired, ready: num(status['numberReady']), settled: caughtUp && updated >= desired };
  }
  const desired = num(o.spec?.['replicas'], 1);
  const ready = num(status['readyReplicas']);
  if (kind === 'ReplicaSet') return { desired, ready, settled: caughtUp };
  const updated = num(status['updatedReplicas']);
  // Extra old-revision pods still running mean a rollout is in progress.
  const extra = kind === 'Deployment' && num(status['replicas']) > desired;
  return { desired, ready, settled: caughtUp && updated >= desired && !extra };
}

function workloadState(kind: string, o: Obj, pods: readonly Obj[], now: number, graceMs: number, recheck: (at: number) => void): WorkloadState {
  const { desired, ready, settled } = replicas(kind, o);
  if (kind === 'DaemonSet' && desired === 0) return num(o.status?.['observedGeneration'], -1) >= 0 ? 'ok' : 'starting';
  if (desired === 0) return settled ? 'ok' : 'starting';
  if (ready >= desired && settled) return 'ok';
  const failing =
    pods.some((p) => podFailing(p, now, graceMs, recheck)) ||
    condition(o, 'ReplicaFailure')?.status === 'True' ||
    (condition(o, 'Progressing')?.status === 'False' && condition(o, 'Progressing')?.reason === 'ProgressDeadlineExceeded');
  if (ready === 0) return failing ? 'down' : 'starting';
  return failing ? 'degraded' : 'starting';
}

/** The WorkloadInstance fields a status result writes (StatusReason is null unless Down or Unhealthy). */
export function statusFields(result: { status: WorkloadStatus; reason?: string }): { Status: WorkloadStatus; StatusReason: string | null } {
  return { Status: result.status, StatusReason: result.reason ?? null };
}

/** Compares what was written with what would be: one string for Status and StatusReason. */
export function statusKey(status: unknown, reason: unknown): string {
  return `${String(status)}\n${typeof reason === 'string' ? reason : ''}`;
}

/** At most this many characters of a status reason (one line: event messages may span several). */
export const STATUS_REASON_MAX = 300;

function oneLine(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > STATUS_REASON_MAX ? `${flat.slice(0, STATUS_REASON_MAX - 1)}…` : flat;
}

/** The instance's status; see docs/workloads.md for the rules in prose. */
export function deriveStatus(input: StatusInput): StatusResult {
  if (input.phase === 'error') return { status: 'Error', detail: 'the last apply failed' };
  if (input.phase === 'reconciling') return { status: 'Reconciling', detail: 'not applied yet' };
  const window = input.warningWindowMs ?? DEFAULT_WARNING_WINDOW_MS;
  const grace = input.startupGraceMs ?? DEFAULT_STARTUP_GRACE_MS;
  let recheckAt: number | undefined;
  const recheck = (at: number): void => {
    recheckAt = Math.min(recheckAt ?? Infinity, at);
  };
  const withRecheck = (r: StatusResult): StatusResult => (recheckAt !== undefined ? { ...r, recheckAt } : r);

  // Pods by the workload that controls them (directly, or through a Deployment's ReplicaSet).
  const rsOwner = new Map<string, string>();
  for (const rs of input.replicaSets as readonly Obj[]) {
    const uid = rs.metadata?.uid;
    const owner = ownerUid(rs);
    if (uid && owner) rsOwner.set(uid, owner);
  }
  const podsOf = new Map<string, Obj[]>();
  for (const pod of input.pods as readonly Obj[]) {
    let owner = ownerUid(pod);
    if (owner && rsOwner.has(owner)) {
      const direct = owner;
      (podsOf.get(direct) ?? podsOf.set(direct, []).get(direct)!).push(pod);
      owner = rsOwner.get(owner)!;
    }
    if (owner) (podsOf.get(owner) ?? podsOf.set(owner, []).get(owner)!).push(pod);
  }

  const states: Array<{ kind: string; name: string; uid: string | undefined; state: WorkloadState }> = [];
  const unhealthyUids = new Set<string>();
  const existingUids = new Set<string>();
  for (const r of input.resources) {
    const o = r.live as Obj | undefined;
    if (o?.metadata?.uid) existingUids.add(o.metadata.uid);
    const name = String((r.live as { metadata?: { name?: string } } | undefined)?.metadata?.name ?? '');
    if (REPLICATED.has(r.kind)) {
      if (!o) {
        states.push({ kind: r.kind, name, uid: undefined, state: 'starting' });
        continue;
      }
      const state = workloadState(r.kind, o, podsOf.get(o.metadata?.uid ?? '') ?? [], input.now, grace, recheck);
      states.push({ kind: r.kind, name, uid: o.metadata?.uid, state });
      if (state !== 'ok' && o.metadata?.uid) unhealthyUids.add(o.metadata.uid);
    } else if (r.kind === 'Job' && o) {
      const failed = condition(o, 'Failed')?.status === 'True';
      states.push({ kind: r.kind, name, uid: o.metadata?.uid, state: failed ? 'degraded' : 'ok' });
      if (failed && o.metadata?.uid) unhealthyUids.add(o.metadata.uid);
    }
  }
  for (const pod of input.pods as readonly Obj[]) {
    if (pod.metadata?.uid) {
      existingUids.add(pod.metadata.uid);
      if (!podReady(pod)) unhealthyUids.add(pod.metadata.uid);
    }
  }
  for (const rs of input.replicaSets as readonly Obj[]) {
    const uid = rs.metadata?.uid;
    if (!uid) continue;
    existingUids.add(uid);
    if (num(rs.status?.['readyReplicas']) < num(rs.spec?.['replicas'], 1)) unhealthyUids.add(uid);
  }

  // The newest recent warning about a workload, its ReplicaSets or its pods: usually the cause.
  const recent = input.warnings.filter((w) => w.at + window > input.now && !(w.reason && SELF_REPAIRED_REASONS.has(w.reason)));
  const newestWarning = (uids: ReadonlySet<string>): WarningEvent | undefined =>
    recent.filter((w) => uids.has(w.involvedUid)).sort((a, b) => b.at - a.at)[0];
  const related = (uid: string | undefined): Set<string> => {
    const out = new Set<string>(uid ? [uid] : []);
    for (const pod of uid ? (podsOf.get(uid) ?? []) : []) {
      if (pod.metadata?.uid) out.add(pod.metadata.uid);
      const rs = ownerUid(pod);
      if (rs) out.add(rs);
    }
    return out;
  };
  const because = (list: typeof states, what: string): string => {
    const named = list.map((s) => `${s.kind}${s.name ? ` ${s.name}` : ''}`).join(', ');
    const w = newestWarning(new Set(list.flatMap((s) => [...related(s.uid)])));
    return oneLine(`${named}: ${what}${w ? ` (${[w.reason, w.message].filter(Boolean).join(': ')})` : ''}`);
  };

  const down = states.filter((s) => s.state === 'down');
  if (down.length > 0) {
    return withRecheck({ status: 'Down', detail: `${down.map((s) => s.kind).join(', ')} with no ready replicas`, reason: because(down, 'no ready replicas') });
  }
  const degraded = states.filter((s) => s.state === 'degraded');
  if (degraded.length > 0) {
    return withRecheck({ status: 'Unhealthy', detail: `${degraded.map((s) => s.kind).join(', ')} not fully ready`, reason: because(degraded, 'not fully ready') });
  }
  if (!input.synced || states.some((s) => s.state === 'starting')) return withRecheck({ status: 'Reconciling', detail: 'workloads starting' });

  // A warning counts while it is recent and its object still exists and is not (yet) healthy;
  // warnings about objects without readiness (a Service, a PVC) count while recent.
  let current = 0;
  let newest: WarningEvent | undefined;
  for (const w of input.warnings) {
    if (w.at + window <= input.now) continue;
    if (w.reason && SELF_REPAIRED_REASONS.has(w.reason)) continue;
    if (!existingUids.has(w.involvedUid)) continue;
    const readinessKnown = input.pods.some((p) => p.metadata.uid === w.involvedUid) ||
      input.replicaSets.some((p) => p.metadata.uid === w.involvedUid) ||
      input.resources.some((r) => r.live?.metadata.uid === w.involvedUid && (REPLICATED.has(r.kind) || r.kind === 'Job'));
    if (readinessKnown && !unhealthyUids.has(w.involvedUid)) continue;
    current++;
    if (!newest || w.at > newest.at) newest = w;
    recheck(w.at + window);
  }
  if (current > 0) {
    const latest = newest ? `, the newest: ${[newest.reason, newest.message].filter(Boolean).join(': ')}` : '';
    return withRecheck({ status: 'Unhealthy', detail: `${current} recent warning event(s)`, reason: oneLine(`${current} recent warning event(s)${latest}`) });
  }
  return withRecheck({ status: 'Healthy', detail: 'all workloads ready' });
}
