// What the dashboard's endpoints answer (src/dashboard/routes.ts), shared with the page
// (web/dashboard). Type declarations only: the page's bundle imports nothing else from src/.

export interface GraphNode {
  /** `<Kind>:<id>` */
  key: string;
  kind: string;
  /** The kind's /v0/<plural> path segment. */
  plural: string;
  id: number;
  name: string;
  /** In words: the object's Status, or where its reconciliation stands. */
  status: string;
  /** root, dependency (the root needs it), dependent (it needs the root), or attached (belongs to a node). */
  role: 'root' | 'dependency' | 'dependent' | 'attached';
  /** For a KubernetesRuntimeInstance, and for apps: the runtime they run on (for reachability). */
  runtimeId?: number;
}

export interface GraphEdge {
  /** The referring node's key. */
  from: string;
  /** The referred node's key. */
  to: string;
  /** The reference field of the referring kind. */
  field: string;
}

export interface DeleteStep {
  key: string;
  kind: string;
  plural: string;
  id: number;
  name: string;
  why: string;
}

export interface ObjectGraph {
  root: string;
  nodes: GraphNode[];
  edges: GraphEdge[];
  /** What deleting the root deletes, in the order it is deleted. */
  deletePlan: DeleteStep[];
}

export interface Reachability {
  id: number;
  reachable: boolean;
  /** Why not, in words (never credentials). */
  error?: string;
  checkedAt: string;
}

export interface AppRow {
  kind: string;
  plural: string;
  id: number;
  name: string;
  status: string;
  runtimeId: number | null;
  createdAt: string;
}

export interface RuntimeRow {
  kind: string;
  id: number;
  name: string;
  status: string;
  provider: string;
  location: string;
  defaultRuntime: boolean;
  /** null until probed (the probe runs while a page is connected). */
  reachable: boolean | null;
  reachError?: string;
  eks: Array<{ kind: string; id: number; name: string; status: string }>;
}

export interface AppsAnswer {
  apps: AppRow[];
  /** Absent when only some apps were asked for (?ids=). */
  runtimes?: RuntimeRow[];
  reachability: Reachability[];
}

export interface TopologyAnswer {
  controlPlane: { version: string };
  runtimes: Array<RuntimeRow & { apps: AppRow[] }>;
  /** Apps whose runtime is not (or no longer) there. */
  unplaced: AppRow[];
}

export type Fields = Record<string, unknown>;

export interface ObjectDetail {
  kind: string;
  plural: string;
  id: number;
  status: string;
  /** The object's fields, encrypted ones and Secret values replaced by "(hidden)". */
  object: Fields;
  /** Controller events, newest first. */
  events: Fields[];
  /** Kubernetes events about the workload's resources, newest first. */
  workloadEvents: Fields[];
  /** WorkloadResourceInstances with their live state (RuntimeDefinition). */
  resources: Fields[];
}

/** One object change on the event stream (`event: change`). */
export interface ChangeEvent {
  kind: string;
  id: number;
  op: 'C' | 'U' | 'D';
}

/** GET /dashboard/session */
export interface SessionAnswer {
  token: string | null;
  proxied: boolean;
  controlPlane?: string;
  version?: string;
}

/** The header the proxy wants on writes. */
export const SESSION_HEADER = 'x-threeport-session';
