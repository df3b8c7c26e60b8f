// Small shared pieces: the status badge and the graph drawing (laid out by dagre).
import dagre from '@dagrejs/dagre';
import { useMemo } from 'preact/hooks';
import { TONE_SYMBOL, toneOf } from './status.js';

export function Badge({ status, detail }: { status: string; detail?: string | undefined }) {
  const tone = toneOf(status);
  return (
    <span class={`badge tone-${tone}`} title={detail ?? status} data-status={status}>
      <span aria-hidden="true">{TONE_SYMBOL[tone]}</span> {status}
      {detail ? <span class="sr-only"> ({detail})</span> : null}
    </span>
  );
}

export interface DrawNode {
  key: string;
  title: string;
  subtitle: string;
  status: string;
  detail?: string | undefined;
  href: string;
  emphasis?: boolean;
}

export interface DrawEdge {
  from: string;
  to: string;
  label: string;
}

const W = 210;
const H = 64;

/** A directed graph as SVG: dagre places nodes and routes edges; every node is a focusable link. */
export function GraphCanvas({ nodes, edges, label }: { nodes: DrawNode[]; edges: DrawEdge[]; label: string }) {
  const layout = useMemo(() => {
    const g = new dagre.graphlib.Graph({ multigraph: true });
    g.setGraph({ rankdir: 'LR', nodesep: 24, ranksep: 70, marginx: 16, marginy: 16 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const n of nodes) g.setNode(n.key, { width: W, height: H });
    edges.forEach((e, i) => {
      if (g.hasNode(e.from) && g.hasNode(e.to)) g.setEdge(e.from, e.to, { label: e.label }, String(i));
    });
    dagre.layout(g);
    const info = g.graph();
    return {
      width: Math.max(200, info.width ?? 0),
      height: Math.max(100, info.height ?? 0),
      nodes: nodes.map((n) => ({ n, p: g.node(n.key)! })),
      edges: g.edges().map((e) => ({ e, points: g.edge(e).points ?? [] })),
    };
  }, [nodes, edges]);
  return (
    <div class="graph-wrap">
      <svg class="graph" role="group" aria-label={label} width={layout.width} height={layout.height} viewBox={`0 0 ${layout.width} ${layout.height}`}>
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" class="arrowhead" />
          </marker>
        </defs>
        {layout.edges.map(({ e, points }) => (
          <path key={`${e.v}>${e.w}>${e.name}`} class="edge" marker-end="url(#arrow)" d={points.map((p, i) => `${i ? 'L' : 'M'}${p.x},${p.y}`).join(' ')} />
        ))}
        {layout.nodes.map(({ n, p }) => {
          const tone = toneOf(n.status);
          return (
            <a key={n.key} href={n.href} class={`node tone-${tone}${n.emphasis ? ' root' : ''}`} data-key={n.key} data-status={n.status}
              aria-label={`${n.subtitle} ${n.title}: ${n.status}${n.detail ? ` (${n.detail})` : ''}`}>
              <rect x={p.x - W / 2} y={p.y - H / 2} width={W} height={H} rx="8" />
              <text x={p.x - W / 2 + 10} y={p.y - H / 2 + 18} class="node-kind">{n.subtitle}</text>
              <text x={p.x - W / 2 + 10} y={p.y - H / 2 + 36} class="node-name">{n.title.length > 26 ? `${n.title.slice(0, 25)}…` : n.title}</text>
              <text x={p.x - W / 2 + 10} y={p.y - H / 2 + 54} class="node-status">{`${TONE_SYMBOL[tone]} ${n.status}`}</text>
              <title>{`${n.subtitle} ${n.title}: ${n.status}${n.detail ? ` (${n.detail})` : ''}`}</title>
            </a>
          );
        })}
      </svg>
    </div>
  );
}
