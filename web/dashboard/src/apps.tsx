// The Apps view: every WorkloadInstance and HelmWorkloadInstance, counts by status, a filter, and
// a virtualised table (only the rows in view are in the DOM), so 1,000 apps stay quick.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import type { AppRow, RuntimeRow } from '../../../src/dashboard/api-types.js';
import { Badge } from './components.js';
import { age, withReachability } from './status.js';

const ROW = 36;

export function AppsView({ apps, runtimes, reach }: { apps: AppRow[]; runtimes: Map<number, RuntimeRow>; reach: Map<number, boolean> }) {
  const [filter, setFilter] = useState('');
  const [statusFilter, setStatusFilter] = useState<string | undefined>();
  const [scrollTop, setScrollTop] = useState(0);
  const [height, setHeight] = useState(600);
  const box = useRef<HTMLDivElement>(null);
  const now = Date.now();

  const shown = useMemo(() => {
    const rows = apps.map((a) => {
      const view = withReachability(a.status, a.runtimeId === null ? undefined : reach.get(a.runtimeId));
      return { a, ...view, runtime: a.runtimeId === null ? '' : (runtimes.get(a.runtimeId)?.name ?? `#${a.runtimeId}`) };
    });
    const q = filter.trim().toLowerCase();
    return {
      all: rows,
      rows: rows.filter(
        (r) => (!statusFilter || r.status === statusFilter) && (!q || r.a.name.toLowerCase().includes(q) || r.runtime.toLowerCase().includes(q) || r.status.toLowerCase().includes(q)),
      ),
    };
  }, [apps, runtimes, reach, filter, statusFilter]);
  const counts = useMemo(() => {
    const m = new Map<string, number>();
    for (const r of shown.all) m.set(r.status, (m.get(r.status) ?? 0) + 1);
    return [...m.entries()].sort((a, b) => b[1] - a[1]);
  }, [shown.all]);

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const measure = () => setHeight(el.clientHeight);
    measure();
    window.addEventListener('resize', measure);
    return () => window.removeEventListener('resize', measure);
  }, []);

  const first = Math.max(0, Math.floor(scrollTop / ROW) - 5);
  const last = Math.min(shown.rows.length, Math.ceil((scrollTop + height) / ROW) + 5);

  // Up/Down move between rows; the scroller follows the focus.
  const onKey = (e: KeyboardEvent) => {
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    const at = Number((document.activeElement as HTMLElement | null)?.dataset['index'] ?? -1);
    const next = Math.max(0, Math.min(shown.rows.length - 1, at + (e.key === 'ArrowDown' ? 1 : -1)));
    e.preventDefault();
    const el = box.current!;
    if (next * ROW < el.scrollTop) el.scrollTop = next * ROW;
    if ((next + 1) * ROW > el.scrollTop + el.clientHeight) el.scrollTop = (next + 1) * ROW - el.clientHeight;
    setScrollTop(el.scrollTop);
    requestAnimationFrame(() => (el.querySelector(`[data-index="${next}"]`) as HTMLElement | null)?.focus());
  };

  return (
    <section aria-labelledby="apps-title">
      <div class="toolbar">
        <h1 id="apps-title">Apps <span class="muted">({apps.length})</span></h1>
        <div class="counts" role="group" aria-label="Counts by status (select to filter)">
          {counts.map(([s, n]) => (
            <button type="button" key={s} class={`count${statusFilter === s ? ' active' : ''}`} aria-pressed={statusFilter === s}
              onClick={() => setStatusFilter(statusFilter === s ? undefined : s)}>
              <Badge status={s} /> <strong>{n}</strong>
            </button>
          ))}
        </div>
        <label class="filter">
          <span class="sr-only">Filter apps</span>
          <input type="search" placeholder="Filter by name, runtime or status" value={filter} onInput={(e) => setFilter((e.target as HTMLInputElement).value)} />
        </label>
      </div>
      <div class="table-head" role="row">
        <span>Name</span><span>Kind</span><span>Status</span><span>Runtime</span><span>Age</span>
      </div>
      <div class="table-body" ref={box} role="list" aria-label={`${shown.rows.length} apps`} onScroll={(e) => setScrollTop((e.target as HTMLElement).scrollTop)} onKeyDown={onKey}>
        {shown.rows.length === 0 ? <p class="empty">{apps.length === 0 ? 'No apps yet. Create one with tptctl create workload.' : 'No app matches the filter.'}</p> : null}
        <div style={{ height: `${shown.rows.length * ROW}px`, position: 'relative' }}>
          {shown.rows.slice(first, last).map((r, i) => (
            <a role="listitem" class="row" key={`${r.a.kind}:${r.a.id}`} data-index={first + i} data-app={r.a.name} data-status={r.status}
              href={`#/graph/${r.a.kind}/${r.a.id}`} style={{ top: `${(first + i) * ROW}px` }}>
              <span class="name">{r.a.name}</span>
              <span>{r.a.kind === 'HelmWorkloadInstance' ? 'Helm workload' : 'Workload'}</span>
              <span><Badge status={r.status} detail={r.detail} /></span>
              <span>{r.runtime}</span>
              <span title={r.a.createdAt}>{age(r.a.createdAt, now)}</span>
            </a>
          ))}
        </div>
      </div>
    </section>
  );
}
