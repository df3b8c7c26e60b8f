// The App graph, Topology and Object detail views, the delete dialog and the not-found page.
import { useEffect, useRef, useState } from 'preact/hooks';
import type { DeleteStep, Fields, ObjectDetail, ObjectGraph, TopologyAnswer } from '../../../src/dashboard/api-types.js';
import { deleteObject, exists } from './api.js';
import { Badge, GraphCanvas, type DrawEdge, type DrawNode } from './components.js';
import { withReachability } from './status.js';

const ROLE_WORDS: Record<string, string> = { root: 'this app', dependency: 'needed by the app', dependent: 'depends on the app', attached: 'belongs to the app' };

export function GraphView({ graph, reach }: { graph: ObjectGraph; reach: Map<number, boolean> }) {
  const [confirming, setConfirming] = useState(false);
  const root = graph.nodes.find((n) => n.key === graph.root)!;
  const nodes: DrawNode[] = graph.nodes.map((n) => {
    const view = withReachability(n.status, n.runtimeId === undefined ? undefined : reach.get(n.runtimeId));
    return { key: n.key, title: n.name || `#${n.id}`, subtitle: n.kind, status: view.status, detail: view.detail, href: `#/object/${n.kind}/${n.id}`, emphasis: n.role === 'root' };
  });
  const edges: DrawEdge[] = graph.edges.map((e) => ({ from: e.from, to: e.to, label: e.field }));
  const isApp = root.kind === 'WorkloadInstance' || root.kind === 'HelmWorkloadInstance';
  return (
    <section aria-labelledby="graph-title">
      <div class="toolbar">
        <h1 id="graph-title">{root.name} <span class="muted">{root.kind} {root.id}</span></h1>
        <Badge status={nodes.find((n) => n.key === root.key)!.status} detail={nodes.find((n) => n.key === root.key)!.detail} />
        <a href={`#/object/${root.kind}/${root.id}`}>Details</a>
        {isApp ? <button type="button" class="danger" onClick={() => setConfirming(true)}>Delete app…</button> : null}
      </div>
      <p class="muted">Arrows point from an object to what it refers to. {graph.nodes.length} objects.</p>
      <GraphCanvas nodes={nodes} edges={edges} label={`Dependency graph of ${root.name}`} />
      <ul class="legend">
        {graph.nodes.map((n) => (
          <li key={n.key}>
            <a href={`#/object/${n.kind}/${n.id}`}>{n.kind} {n.name || `#${n.id}`}</a> — {ROLE_WORDS[n.role]}; <Badge status={nodes.find((d) => d.key === n.key)!.status} />
          </li>
        ))}
      </ul>
      {confirming ? <DeleteDialog plan={graph.deletePlan} onClose={() => setConfirming(false)} /> : null}
    </section>
  );
}

/** Confirms, then deletes the plan's objects one after another, waiting for each to be gone. */
function DeleteDialog({ plan, onClose }: { plan: DeleteStep[]; onClose: () => void }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [progress, setProgress] = useState<Record<string, string>>({});
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<string | undefined>();
  useEffect(() => {
    dialog.current?.showModal();
  }, []);
  const run = async () => {
    setRunning(true);
    setError(undefined);
    try {
      for (const step of plan) {
        setProgress((p) => ({ ...p, [step.key]: 'deleting…' }));
        await deleteObject(step.plural, step.id);
        const deadline = Date.now() + 180_000;
        while (await exists(step.plural, step.id)) {
          if (Date.now() > deadline) throw new Error(`${step.kind} ${step.name} is still there after 3 minutes; see its events`);
          await new Promise((r) => setTimeout(r, 500));
        }
        setProgress((p) => ({ ...p, [step.key]: 'deleted' }));
      }
      location.hash = '#/apps';
    } catch (err) {
      setError((err as Error).message);
      setRunning(false);
    }
  };
  return (
    <dialog ref={dialog} class="confirm" aria-labelledby="delete-title" onClose={onClose}>
      <h2 id="delete-title">Delete {plan[plan.length - 1]?.name}?</h2>
      <p>These objects are deleted, in this order:</p>
      <ol class="plan">
        {plan.map((s) => (
          <li key={s.key} data-key={s.key}>
            <strong>{s.kind} {s.name || `#${s.id}`}</strong> <span class="muted">— {s.why}</span> {progress[s.key] ? <em>{progress[s.key]}</em> : null}
          </li>
        ))}
      </ol>
      {error ? <p role="alert" class="error">{error}</p> : null}
      <div class="actions">
        <button type="button" onClick={() => dialog.current?.close()} disabled={running}>Cancel</button>
        <button type="button" class="danger" onClick={() => void run()} disabled={running}>
          Delete {plan.length} {plan.length === 1 ? 'object' : 'objects'}
        </button>
      </div>
    </dialog>
  );
}

const APPS_PER_RUNTIME = 40;

export function TopologyView({ topo, reach }: { topo: TopologyAnswer; reach: Map<number, boolean> }) {
  const nodes: DrawNode[] = [{ key: 'cp', title: 'this control plane', subtitle: `Threeport ${topo.controlPlane.version}`, status: 'Healthy', href: '#/topology', emphasis: true }];
  const edges: DrawEdge[] = [];
  for (const r of topo.runtimes) {
    const reachable = reach.get(r.id) ?? r.reachable ?? undefined;
    const rv = withReachability(r.status, reachable ?? undefined);
    const key = `KubernetesRuntimeInstance:${r.id}`;
    nodes.push({ key, title: r.name, subtitle: `runtime · ${r.provider || 'unknown'}${r.defaultRuntime ? ' · default' : ''}`, status: rv.status, detail: rv.detail, href: `#/object/KubernetesRuntimeInstance/${r.id}` });
    edges.push({ from: 'cp', to: key, label: 'manages' });
    for (const e of r.eks) {
      nodes.push({ key: `${e.kind}:${e.id}`, title: e.name, subtitle: 'EKS stack', status: e.status, href: `#/object/${e.kind}/${e.id}` });
      edges.push({ from: key, to: `${e.kind}:${e.id}`, label: 'built by' });
    }
    for (const a of r.apps.slice(0, APPS_PER_RUNTIME)) {
      const av = withReachability(a.status, reachable ?? undefined);
      nodes.push({ key: `${a.kind}:${a.id}`, title: a.name, subtitle: a.kind === 'HelmWorkloadInstance' ? 'Helm workload' : 'Workload', status: av.status, detail: av.detail, href: `#/graph/${a.kind}/${a.id}` });
      edges.push({ from: key, to: `${a.kind}:${a.id}`, label: 'runs' });
    }
    if (r.apps.length > APPS_PER_RUNTIME) {
      nodes.push({ key: `${key}:more`, title: `${r.apps.length - APPS_PER_RUNTIME} more apps`, subtitle: 'see Apps', status: 'Stored', href: '#/apps' });
      edges.push({ from: key, to: `${key}:more`, label: 'runs' });
    }
  }
  return (
    <section aria-labelledby="topo-title">
      <div class="toolbar"><h1 id="topo-title">Topology</h1><span class="muted">{topo.runtimes.length} runtimes, {topo.runtimes.reduce((n, r) => n + r.apps.length, 0)} apps</span></div>
      <GraphCanvas nodes={nodes} edges={edges} label="Control plane, runtimes and the apps on each" />
    </section>
  );
}

function value(v: unknown): string {
  if (v === null || v === undefined) return '';
  return typeof v === 'object' ? JSON.stringify(v, null, 2) : String(v);
}

/** A resource's live state in words, from its RuntimeDefinition (the object as the cluster last showed it). */
function liveState(rd: unknown): string {
  if (!rd || typeof rd !== 'object') return 'not observed yet';
  const status = (rd as { status?: Record<string, unknown> }).status;
  if (!status) return 'present';
  if (typeof status['phase'] === 'string') return status['phase'];
  if (status['replicas'] !== undefined || status['readyReplicas'] !== undefined) return `${Number(status['readyReplicas'] ?? 0)}/${Number(status['replicas'] ?? 0)} ready`;
  const conditions = status['conditions'];
  if (Array.isArray(conditions)) return conditions.map((c: { type?: string; status?: string }) => `${c.type}=${c.status}`).join(', ');
  return 'present';
}

export function DetailView({ detail }: { detail: ObjectDetail }) {
  const o = detail.object;
  const timeline = [
    ...detail.events.map((e: Fields) => ({ at: String(e['LastObservedTime'] ?? e['EventTime'] ?? ''), type: String(e['Type'] ?? 'Normal'), reason: String(e['Reason'] ?? ''), text: String(e['Note'] ?? ''), source: `controller${e['Count'] && Number(e['Count']) > 1 ? ` ×${String(e['Count'])}` : ''}` })),
    ...detail.workloadEvents.map((e: Fields) => ({ at: String(e['Timestamp'] ?? ''), type: String(e['Type'] ?? 'Normal'), reason: String(e['Reason'] ?? ''), text: String(e['Message'] ?? ''), source: 'Kubernetes' })),
  ].sort((a, b) => b.at.localeCompare(a.at));
  const isApp = detail.kind === 'WorkloadInstance' || detail.kind === 'HelmWorkloadInstance';
  return (
    <section aria-labelledby="detail-title">
      <div class="toolbar">
        <h1 id="detail-title">{String(o['Name'] ?? `#${detail.id}`)} <span class="muted">{detail.kind} {detail.id}</span></h1>
        <Badge status={detail.status} />
        {isApp ? <a href={`#/graph/${detail.kind}/${detail.id}`}>Graph</a> : null}
      </div>
      <h2>Fields</h2>
      <dl class="fields">
        {Object.entries(o).map(([k, v]) => (
          <div key={k}><dt>{k}</dt><dd><pre>{value(v)}</pre></dd></div>
        ))}
      </dl>
      {detail.resources.length > 0 ? (
        <>
          <h2>Kubernetes resources</h2>
          <table class="resources">
            <thead><tr><th scope="col">Kind</th><th scope="col">Name</th><th scope="col">Live state</th><th scope="col">Last operation</th></tr></thead>
            <tbody>
              {detail.resources.map((r) => {
                const def = (r['JSONDefinition'] ?? {}) as { kind?: string; metadata?: { name?: string; namespace?: string } };
                return (
                  <tr key={String(r['ID'])}>
                    <td>{def.kind}</td>
                    <td>{def.metadata?.namespace ? `${def.metadata.namespace}/` : ''}{def.metadata?.name}</td>
                    <td>{r['ScheduledForDeletion'] ? 'being deleted' : liveState(r['RuntimeDefinition'])}</td>
                    <td>{String(r['LastOperation'] ?? '')}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </>
      ) : null}
      <h2>Events</h2>
      {timeline.length === 0 ? <p class="muted">No events.</p> : (
        <ol class="timeline">
          {timeline.map((t, i) => (
            <li key={i} class={t.type === 'Warning' ? 'warning' : ''}>
              <time dateTime={t.at}>{t.at.replace('T', ' ').replace(/\.\d+Z$|Z$/, ' UTC')}</time>
              <span class="etype">{t.type === 'Warning' ? '⚠ Warning' : 'Normal'}</span> <strong>{t.reason}</strong> <span class="muted">({t.source})</span>
              <div>{t.text}</div>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

export function NotFoundView({ what }: { what: string }) {
  return (
    <section class="notfound" aria-labelledby="nf-title">
      <h1 id="nf-title">Not found</h1>
      <p>{what}</p>
      <p><a href="#/apps">Back to the apps</a></p>
    </section>
  );
}
