// The dashboard's routes on `threeport server`: the page and its bundle under /dashboard/, and
// the few read endpoints it needs, each answering one view in one call:
//   GET /dashboard/api/apps                 every WorkloadInstance and HelmWorkloadInstance (?ids=1,2 for some)
//   GET /dashboard/api/graph/:kind/:id      the object's dependency graph and delete plan (src/dashboard/graph.ts)
//   GET /dashboard/api/topology             runtimes, their EKS stacks, the apps on each
//   GET /dashboard/api/objects/:kind/:id    fields (secrets never), events, workload events, resources
//   GET /dashboard/api/events               server-sent events (src/dashboard/change-feed.ts)
//   GET /dashboard/session                  {token:null}: served directly there is no proxy token
// Writes go through the ordinary v0 API.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { KIND_BY_NAME, kindNamed, type Kind } from '../kinds/index.js';
import type { JsonObject } from '../kinds/validate.js';
import { NotFoundError } from '../errors.js';
import type { ObjectStore } from '../store/object-store.js';
import { objectJson } from '../store/object-store.js';
import { splitManifest } from '../kinds/manifest.js';
import { VERSION } from '../version.js';
import { parseId } from '../api/kind-routes.js';
import { APP_KINDS, REFERENCES, objectGraph, statusOf } from './graph.js';
import { ChangeFeed } from './change-feed.js';
import { RuntimeProbe } from './runtime-probe.js';
import type { AppRow, AppsAnswer, ObjectDetail, RuntimeRow, TopologyAnswer } from './api-types.js';

const KRI = kindNamed('KubernetesRuntimeInstance');
const KRD = kindNamed('KubernetesRuntimeDefinition');
const EKS = kindNamed('AwsEksKubernetesRuntimeInstance');
const EVENT = kindNamed('Event');
const REF = kindNamed('AttachedObjectReference');
const WORKLOAD_EVENT = kindNamed('WorkloadEvent');
const WRI = kindNamed('WorkloadResourceInstance');
const JSON_TYPE = 'application/json; charset=utf-8';

/** Where `npm run build` puts the bundle (scripts/build-dashboard.mjs): dist/dashboard. */
export const BUNDLE_DIR = fileURLToPath(new URL('../../dashboard/', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
};

/** The runtime reference of each app kind, from the declarations. */
const RUNTIME_FIELD = new Map(APP_KINDS.map((k) => [k.name, REFERENCES.find((r) => r.from === k && r.to === KRI)!.field]));

function kindParam(raw: unknown): Kind {
  const kind = KIND_BY_NAME.get(String(raw));
  if (!kind) throw new NotFoundError(`no object kind ${JSON.stringify(String(raw))}`);
  return kind;
}

const HIDDEN = '(hidden)';

/** A Kubernetes object with a Secret's values hidden. */
function redactKube(o: unknown): unknown {
  if (!o || typeof o !== 'object') return o;
  const obj = o as Record<string, unknown>;
  if (obj['kind'] !== 'Secret') return o;
  const out: Record<string, unknown> = { ...obj };
  for (const key of ['data', 'stringData']) {
    const v = obj[key];
    if (v && typeof v === 'object') out[key] = Object.fromEntries(Object.keys(v).map((k) => [k, HIDDEN]));
  }
  return out;
}

/**
 * The object's fields as the detail view may show them: encrypted and transient fields never
 * (only that they are set), and Secret values inside manifests and live objects hidden.
 */
export function redact(kind: Kind, o: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [name, value] of Object.entries(o)) {
    const spec = kind.allFields[name];
    if (spec?.encrypted || spec?.transient) {
      out[name] = value === undefined || value === null || value === '' ? value : HIDDEN;
    } else if (name === 'JSONDefinition' || name === 'RuntimeDefinition') {
      out[name] = redactKube(value) as never;
    } else if (name === 'YAMLDocument' && typeof value === 'string') {
      try {
        const docs = splitManifest(value) as unknown[];
        out[name] = docs.some((d) => (d as { kind?: string })?.kind === 'Secret')
          ? `(${docs.length} documents; shown without their Secrets' values)\n${JSON.stringify(docs.map(redactKube), null, 2)}`
          : value;
      } catch {
        out[name] = HIDDEN;
      }
    } else {
      out[name] = value;
    }
  }
  return out;
}

async function listApps(store: ObjectStore, ids?: number[]): Promise<AppRow[]> {
  const parts = APP_KINDS.map(
    (k) => `SELECT '${k.name}' AS kind, t.id, t.created_at,
        jsonb_build_object('Name', t.data->'Name', 'Status', t.data->'Status', 'Reconciled', t.data->'Reconciled',
          'CreationFailed', t.data->'CreationFailed', 'DeletionScheduled', t.data->'DeletionScheduled') AS s,
        (t.data->>'${RUNTIME_FIELD.get(k.name)}')::bigint AS runtime_id
      FROM ${k.table} t WHERE t.deleted_at IS NULL${ids ? ' AND t.id = ANY($1::bigint[])' : ''}`,
  );
  const res = await store.db.query(`${parts.join(' UNION ALL ')} ORDER BY id`, ids ? [ids] : []);
  return (res.rows as Array<{ kind: string; id: number; created_at: Date; s: JsonObject; runtime_id: number | null }>).map((r) => ({
    kind: r.kind,
    plural: kindNamed(r.kind).plural,
    id: r.id,
    name: String(r.s['Name'] ?? ''),
    status: statusOf(kindNamed(r.kind), r.s),
    runtimeId: r.runtime_id,
    createdAt: r.created_at.toISOString(),
  }));
}

async function listRuntimes(store: ObjectStore, probe: RuntimeProbe): Promise<RuntimeRow[]> {
  const [runtimes, definitions, eks] = await Promise.all([store.find(KRI, {}), store.find(KRD, {}), store.find(EKS, {})]);
  const defs = new Map(definitions.map((d) => [Number(d['ID']), d]));
  return runtimes.map((r) => {
    const id = Number(r['ID']);
    const def = defs.get(Number(r['KubernetesRuntimeDefinitionID']));
    const stack = eks.filter((e) => Number(e['KubernetesRuntimeInstanceID']) === id);
    const reach = probe.get(id);
    return {
      kind: KRI.name,
      id,
      name: String(r['Name'] ?? ''),
      status: statusOf(KRI, r),
      provider: String(def?.['InfraProvider'] ?? ''),
      location: String(r['Location'] ?? ''),
      defaultRuntime: r['DefaultRuntime'] === true,
      reachable: reach ? reach.reachable : null,
      ...(reach?.error ? { reachError: reach.error } : {}),
      eks: stack.map((e) => ({ kind: EKS.name, id: Number(e['ID']), name: String(e['Name'] ?? ''), status: statusOf(EKS, e) })),
    };
  });
}

function readBundle(log: Logger): Map<string, { type: string; body: Buffer }> {
  const files = new Map<string, { type: string; body: Buffer }>();
  if (!existsSync(BUNDLE_DIR)) {
    log.warn({ dir: BUNDLE_DIR }, 'the dashboard bundle is missing: run `npm run build`');
    return files;
  }
  const walk = (dir: string, prefix: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(dir, entry.name), `${prefix}${entry.name}/`);
      else files.set(`${prefix}${entry.name}`, { type: CONTENT_TYPES[extname(entry.name)] ?? 'application/octet-stream', body: readFileSync(join(dir, entry.name)) });
    }
  };
  walk(BUNDLE_DIR, '');
  return files;
}

export interface Dashboard {
  feed: ChangeFeed;
  probe: RuntimeProbe;
  close(): Promise<void>;
}

export function registerDashboardRoutes(app: FastifyInstance, store: ObjectStore, log: Logger): Dashboard {
  const feed = new ChangeFeed(store.db, log.child({ component: 'dashboard' }));
  const probe = new RuntimeProbe(store, feed, log.child({ component: 'dashboard' }));
  feed.onAudience = (n) => probe.watching(n > 0);
  const bundle = readBundle(log);

  const page = (_req: unknown, reply: import('fastify').FastifyReply) => {
    const index = bundle.get('index.html');
    if (!index) return reply.code(503).type('text/plain').send('the dashboard was not built: run `npm run build`');
    return reply.type(index.type).header('cache-control', 'no-cache').send(index.body);
  };
  app.get('/dashboard/', page); // also /dashboard: the API ignores trailing slashes
  app.get('/dashboard/assets/*', async (req, reply) => {
    const file = bundle.get(`assets/${(req.params as { '*': string })['*']}`);
    if (!file) throw new NotFoundError(`no dashboard asset ${req.url}`);
    // Asset names carry a content hash (esbuild's [hash]), so they may be cached for good.
    return reply.type(file.type).header('cache-control', 'public, max-age=31536000, immutable').send(file.body);
  });
  app.get('/dashboard/session', async (_req, reply) => reply.type(JSON_TYPE).header('cache-control', 'no-store').send({ token: null, proxied: false, version: VERSION }));

  app.get('/dashboard/api/apps', async (req, reply) => {
    const raw = (req.query as Record<string, unknown>)['ids'];
    const ids = raw === undefined ? undefined : String(raw).split(',').filter(Boolean).map(parseId);
    const [apps, runtimes] = await Promise.all([listApps(store, ids), ids ? Promise.resolve(undefined) : listRuntimes(store, probe)]);
    const answer: AppsAnswer = { apps, ...(runtimes ? { runtimes } : {}), reachability: probe.snapshot() };
    return reply.type(JSON_TYPE).send(answer);
  });

  app.get('/dashboard/api/graph/:kind/:id', async (req, reply) => {
    const params = req.params as { kind: string; id: string };
    const graph = await objectGraph(store, kindParam(params.kind), parseId(params.id));
    return reply.type(JSON_TYPE).send({ ...graph, reachability: probe.snapshot() });
  });

  app.get('/dashboard/api/topology', async (_req, reply) => {
    const [apps, runtimes] = await Promise.all([listApps(store), listRuntimes(store, probe)]);
    const answer: TopologyAnswer = {
      controlPlane: { version: VERSION },
      runtimes: runtimes.map((r) => ({ ...r, apps: apps.filter((a) => a.runtimeId === r.id) })),
      unplaced: apps.filter((a) => a.runtimeId === null || !runtimes.some((r) => r.id === a.runtimeId)),
    };
    return reply.type(JSON_TYPE).send(answer);
  });

  app.get('/dashboard/api/objects/:kind/:id', async (req, reply) => {
    const params = req.params as { kind: string; id: string };
    const kind = kindParam(params.kind);
    const id = parseId(params.id);
    const object = await store.getObject(kind, id);
    const events = await store.db.query(
      `SELECT (${objectJson(EVENT, 'e')})::text AS json FROM ${EVENT.table} e JOIN ${REF.table} r
          ON r.deleted_at IS NULL AND (r.data->>'AttachedObjectID')::bigint = e.id
         AND r.data @> jsonb_build_object('ObjectType', $1::text, 'ObjectID', $2::bigint, 'AttachedObjectType', 'v0.Event')
       WHERE e.deleted_at IS NULL ORDER BY coalesce(e.data->>'LastObservedTime', e.data->>'EventTime') DESC LIMIT 200`,
      [`v0.${kind.name}`, id],
    );
    // WorkloadEvents and resources point at the object through a declared reference field.
    const byRef = async (of: Kind): Promise<JsonObject[]> => {
      const ref = REFERENCES.find((r) => r.from === of && r.to === kind && !r.many);
      return ref ? store.find(of, { [ref.field]: id }) : [];
    };
    const [workloadEvents, resources] = await Promise.all([byRef(WORKLOAD_EVENT), byRef(WRI)]);
    const answer: ObjectDetail = {
      kind: kind.name,
      plural: kind.plural,
      id,
      status: statusOf(kind, object),
      object: redact(kind, object),
      events: (events.rows as Array<{ json: string }>).map((r) => JSON.parse(r.json) as JsonObject),
      workloadEvents: workloadEvents.sort((a, b) => String(b['Timestamp']).localeCompare(String(a['Timestamp']))).slice(0, 200),
      resources: resources.map((r) => redact(WRI, r)),
    };
    return reply.type(JSON_TYPE).send(answer);
  });

  app.get('/dashboard/api/events', async (req, reply) => {
    reply.hijack();
    const last = req.headers['last-event-id'];
    await feed.attach(reply.raw, Array.isArray(last) ? last[0] : last ?? ((req.query as Record<string, string>)['lastEventId'] || undefined));
  });

  // Open streams would hold the listener open: end them before the server closes.
  app.addHook('preClose', async () => {
    probe.close();
    await feed.close();
  });
  return {
    feed,
    probe,
    async close() {
      probe.close();
      await feed.close();
    },
  };
}
