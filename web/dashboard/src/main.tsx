// The dashboard page: hash routes, one data load per view, live updates from the event stream,
// and a banner while the control plane does not answer (the load is retried until it does).
import { render } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import type { AppRow, AppsAnswer, ChangeEvent, ObjectDetail, ObjectGraph, RuntimeRow, SessionAnswer, TopologyAnswer } from '../../../src/dashboard/api-types.js';
import { NotFound, Unreachable, getJson, getSession, onReachability } from './api.js';
import { AppsView } from './apps.js';
import { connectLive, type LiveState } from './live.js';
import { DetailView, GraphView, NotFoundView, TopologyView } from './views.js';

type Route = { view: 'apps' } | { view: 'topology' } | { view: 'graph' | 'object'; kind: string; id: string };

function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/');
  if ((parts[0] === 'graph' || parts[0] === 'object') && parts[1] && parts[2]) return { view: parts[0], kind: parts[1], id: parts[2] };
  if (parts[0] === 'topology') return { view: 'topology' };
  return { view: 'apps' };
}

const APP_KINDS = new Set(['WorkloadInstance', 'HelmWorkloadInstance']);

interface Data {
  apps?: AppRow[];
  runtimes?: Map<number, RuntimeRow>;
  graph?: ObjectGraph;
  detail?: ObjectDetail;
  topo?: TopologyAnswer;
  notFound?: string;
}

function App() {
  const [route, setRoute] = useState<Route>(parseRoute(location.hash));
  const [data, setData] = useState<Data>({});
  const [reach, setReach] = useState<Map<number, boolean>>(new Map());
  const [problem, setProblem] = useState<string | undefined>();
  const [live, setLive] = useState<LiveState>('connecting');
  const [session, setSession] = useState<SessionAnswer | undefined>();
  const routeRef = useRef(route);
  routeRef.current = route;
  const timer = useRef<ReturnType<typeof setTimeout>>();
  const pendingIds = useRef(new Set<number>());
  const retry = useRef<ReturnType<typeof setTimeout>>();

  const mergeReach = (list: AppsAnswer['reachability']) =>
    setReach((m) => {
      const next = new Map(m);
      for (const r of list) next.set(r.id, r.reachable);
      return next;
    });

  const load = useCallback(async () => {
    const r = routeRef.current;
    clearTimeout(retry.current);
    try {
      if (r.view === 'apps') {
        const a = await getJson<AppsAnswer>('/dashboard/api/apps');
        mergeReach(a.reachability);
        setData({ apps: a.apps, runtimes: new Map((a.runtimes ?? []).map((x) => [x.id, x])) });
      } else if (r.view === 'topology') {
        const t = await getJson<TopologyAnswer>('/dashboard/api/topology');
        setData({ topo: t });
      } else if (r.view === 'graph') {
        const g = await getJson<ObjectGraph & AppsAnswer>(`/dashboard/api/graph/${encodeURIComponent(r.kind)}/${encodeURIComponent(r.id)}`);
        mergeReach(g.reachability);
        setData({ graph: g });
      } else {
        setData({ detail: await getJson<ObjectDetail>(`/dashboard/api/objects/${encodeURIComponent(r.kind)}/${encodeURIComponent(r.id)}`) });
      }
    } catch (err) {
      if (err instanceof NotFound) {
        const what = r.view === 'graph' || r.view === 'object' ? `There is no ${r.kind} with ID ${r.id}. ${err.message}` : err.message;
        setData({ notFound: what });
      } else if (err instanceof Unreachable) {
        retry.current = setTimeout(() => void load(), 2_000);
      } else {
        setData({ notFound: (err as Error).message });
      }
    }
  }, []);

  const schedule = useCallback((ms: number) => {
    if (timer.current) return;
    timer.current = setTimeout(() => {
      timer.current = undefined;
      void load();
    }, ms);
  }, [load]);

  // Apps view: refresh only the apps that changed, in one call per burst of changes.
  const refreshApps = useCallback(async () => {
    const ids = [...pendingIds.current];
    pendingIds.current.clear();
    if (ids.length === 0) return;
    try {
      const a = await getJson<AppsAnswer>(`/dashboard/api/apps?ids=${ids.join(',')}`);
      setData((d) => {
        if (!d.apps) return d;
        const byId = new Map(d.apps.map((x) => [x.id, x]));
        for (const id of ids) byId.delete(id);
        for (const x of a.apps) byId.set(x.id, x);
        return { ...d, apps: [...byId.values()].sort((p, q) => p.id - q.id) };
      });
    } catch {
      schedule(1_000);
    }
  }, [schedule]);
  const appsTimer = useRef<ReturnType<typeof setTimeout>>();

  const onChange = useCallback((c: ChangeEvent) => {
    const r = routeRef.current;
    if (r.view === 'apps') {
      if (APP_KINDS.has(c.kind)) {
        pendingIds.current.add(c.id);
        appsTimer.current ??= setTimeout(() => {
          appsTimer.current = undefined;
          void refreshApps();
        }, 100);
      } else if (c.kind === 'KubernetesRuntimeInstance') schedule(500);
    } else if (r.view === 'object' && (c.kind === 'Event' || c.kind === 'WorkloadEvent' || c.kind === 'WorkloadResourceInstance' || (c.kind === r.kind && String(c.id) === r.id))) {
      schedule(300);
    } else if (r.view === 'graph' || r.view === 'topology') {
      if (!['Event', 'AttachedObjectReference', 'WorkloadEvent', 'WorkloadResourceInstance'].includes(c.kind)) schedule(300);
    }
  }, [refreshApps, schedule]);

  useEffect(() => onReachability(setProblem), []);
  useEffect(() => {
    void getSession().then(setSession, () => undefined);
    const onHash = () => {
      const next = parseRoute(location.hash);
      routeRef.current = next;
      setRoute(next);
      setData({});
      void load();
    };
    window.addEventListener('hashchange', onHash);
    // Load at once too: when the stream cannot connect (control plane down) there is no hello.
    void load();
    const stop = connectLive({
      change: onChange,
      reload: () => void load(),
      runtime: (x) => setReach((m) => new Map(m).set(x.id, x.reachable)),
      state: setLive,
    });
    return () => {
      window.removeEventListener('hashchange', onHash);
      stop();
    };
  }, [load, onChange]);

  let body;
  if (data.notFound) body = <NotFoundView what={data.notFound} />;
  else if (route.view === 'apps' && data.apps) body = <AppsView apps={data.apps} runtimes={data.runtimes ?? new Map()} reach={reach} />;
  else if (route.view === 'graph' && data.graph) body = <GraphView graph={data.graph} reach={reach} />;
  else if (route.view === 'topology' && data.topo) body = <TopologyView topo={data.topo} reach={reach} />;
  else if (route.view === 'object' && data.detail) body = <DetailView detail={data.detail} />;
  else body = <p class="muted" aria-busy="true">Loading…</p>;

  return (
    <>
      <a class="skip" href="#main">Skip to content</a>
      <header>
        <strong class="brand">Threeport</strong>
        {session?.controlPlane ? <span class="muted">control plane {session.controlPlane}</span> : null}
        <nav aria-label="Views">
          <a href="#/apps" aria-current={route.view === 'apps' ? 'page' : undefined}>Apps</a>
          <a href="#/topology" aria-current={route.view === 'topology' ? 'page' : undefined}>Topology</a>
        </nav>
        <span class={`live live-${live}`} role="status" aria-live="polite">{live === 'live' ? '● Live' : live === 'connecting' ? '○ Connecting…' : '◐ Reconnecting…'}</span>
      </header>
      {problem ? (
        <div class="banner" role="alert">
          <strong>Control plane unreachable.</strong> {problem.replace(/\.?$/, '.')} Retrying every 2 seconds.{' '}
          <button type="button" onClick={() => void load()}>Retry now</button>
        </div>
      ) : null}
      <main id="main" tabIndex={-1}>{body}</main>
    </>
  );
}

render(<App />, document.getElementById('root')!);
