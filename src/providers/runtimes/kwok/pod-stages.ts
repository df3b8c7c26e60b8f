// How kwok moves a simulated cluster's pods through their lifecycle, with the events a kubelet
// emits on the way. kwok's own "fast" pod-ready stage makes a Pending pod Running in one step and
// says nothing; tooling that follows a rollout (upstream's integration test waits for a `Started`
// WorkloadEvent) expects the kubelet's `Pulled`, `Created` and `Started` events after the
// scheduler's `Scheduled`. kwok sends at most one event per stage, so the one step becomes three:
//
//   pod-pulled   Pending, no container statuses     → Pulled;  containers waiting (ContainerCreating)
//   pod-created  Pending, statuses but no pod IP    → Created; pod and host IPs assigned
//   pod-started  Pending, pod IP, not Ready         → Started; Running and Ready
//
// The stage file the binaries build (kwok's node stages and its pod-ready/complete/delete stages)
// is rewritten per cluster: its pod-ready stage is replaced by these three, the rest is kept.
import { parseAllDocuments, stringify } from 'yaml';

const NOT_DELETED = { key: '.metadata.deletionTimestamp', operator: 'DoesNotExist' };
const PENDING = { key: '.status.phase', operator: 'In', values: ['Pending'] };

function podStage(name: string, matchExpressions: object[], event: { reason: string; message: string }, statusTemplate: string): object {
  return {
    apiVersion: 'kwok.x-k8s.io/v1alpha1',
    kind: 'Stage',
    metadata: { name },
    spec: {
      resourceRef: { apiGroup: 'v1', kind: 'Pod' },
      selector: { matchExpressions: [NOT_DELETED, PENDING, ...matchExpressions] },
      next: { event: { type: 'Normal', ...event }, statusTemplate },
    },
  };
}

const WAITING = `
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: false
  restartCount: 0
  started: false
  state:
    waiting:
      reason: ContainerCreating
{{ end }}
phase: Pending
`;

const ADDRESSED = `
{{ $hostIPs := NodeIPsWith .spec.nodeName }}
{{ with $hostIPs }}
hostIP: {{ index . 0 | Quote }}
hostIPs:
{{ range . }}
- ip: {{ . | Quote }}
{{ end }}
{{ end }}
{{ $podIPs := PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
{{ with $podIPs }}
podIP: {{ index . 0 | Quote }}
podIPs:
{{ range . }}
- ip: {{ . | Quote }}
{{ end }}
{{ end }}
startTime: {{ Now | Quote }}
`;

const RUNNING = `
{{ $now := Now }}
conditions:
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Initialized
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: Ready
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: ContainersReady
{{ range .spec.readinessGates }}
- lastTransitionTime: {{ $now | Quote }}
  status: "True"
  type: {{ .conditionType | Quote }}
{{ end }}
containerStatuses:
{{ range .spec.containers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: true
  restartCount: 0
  started: true
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
initContainerStatuses:
{{ range .spec.initContainers }}
- image: {{ .image | Quote }}
  name: {{ .name | Quote }}
  ready: true
  restartCount: 0
  {{ if eq .restartPolicy "Always" }}
  started: true
  state:
    running:
      startedAt: {{ $now | Quote }}
  {{ else }}
  state:
    terminated:
      exitCode: 0
      finishedAt: {{ $now | Quote }}
      reason: Completed
      startedAt: {{ $now | Quote }}
  {{ end }}
{{ end }}
phase: Running
`;

/** The three pod stages that replace kwok's silent pod-ready stage. */
export const POD_LIFECYCLE_STAGES: readonly object[] = [
  podStage(
    'pod-pulled',
    [{ key: '.status.containerStatuses', operator: 'DoesNotExist' }],
    { reason: 'Pulled', message: 'Container image already present on machine (simulated by kwok)' },
    WAITING,
  ),
  podStage(
    'pod-created',
    [
      { key: '.status.containerStatuses', operator: 'Exists' },
      { key: '.status.podIP', operator: 'DoesNotExist' },
    ],
    { reason: 'Created', message: 'Created container (simulated by kwok)' },
    ADDRESSED,
  ),
  podStage(
    'pod-started',
    [
      { key: '.status.podIP', operator: 'Exists' },
      { key: '.status.conditions.[] | select( .type == "Ready" ) | .status', operator: 'NotIn', values: ['True'] },
    ],
    { reason: 'Started', message: 'Started container (simulated by kwok)' },
    RUNNING,
  ),
];

/** kwok's stage file with its pod-ready stage replaced by the kubelet-like pod stages above. */
export function withPodLifecycleEvents(builtStages: string): string {
  const kept = parseAllDocuments(builtStages)
    .map((d) => d.toJS() as { kind?: string; metadata?: { name?: string } } | null)
    .filter((s): s is { kind?: string; metadata?: { name?: string } } => s !== null && !(s.kind === 'Stage' && s.metadata?.name === 'pod-ready'));
  return [...kept, ...POD_LIFECYCLE_STAGES].map((s) => `---\n${stringify(s, { lineWidth: 0 })}`).join('');
}
