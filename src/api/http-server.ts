// The HTTP(S) API server: the v0 routes, the envelope on every response
// (errors included), OpenAPI and Swagger UI (built on first use), and mutual TLS.
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import type { Logger } from 'pino';
import { KINDS, KIND_BY_PLURAL } from '../kinds/index.js';
import { InputError, isThreeportError } from '../errors.js';
import { MAX_ERROR_MESSAGE, clip } from '../kinds/input-limits.js';
import type { ObjectStore } from '../store/object-store.js';
import { VERSION } from '../version.js';
import { errorEnvelope } from './envelope.js';
import { JSON_TYPE, KIND_ROUTE_PLURAL, registerKindRoutes, type ServerCheck } from './kind-routes.js';
import { localRepoProblem } from './local-chart-root.js';
import { registerCustomRoutes } from './custom-routes.js';
import { registerDocsRoutes } from './docs-routes.js';

export interface TlsMaterial {
  ca: string;
  cert: string;
  key: string;
}

export interface ApiServerOptions {
  store: ObjectStore;
  logger: Logger;
  /** Mutual TLS; without it the server speaks plain HTTP (`--no-auth`). */
  tls?: TlsMaterial;
  bodyLimitBytes?: number;
  /** Extra routes served beside the API (e.g. /metrics). */
  extend?: (app: FastifyInstance) => void;
  ready?: () => boolean;
  /** GET /readyz?verbose adds this (which replica, what it owns). */
  readyDetail?: () => string;
  /** The one directory under which HelmWorkloadDefinition.Repo may name a local chart (none when unset). */
  helmChartDir?: string;
}

export const DEFAULT_BODY_LIMIT = 8 * 1024 * 1024;

/** The object type named in an error envelope: the kind the path is about, when there is one. */
function typeForUrl(url: string): string {
  const segment = url.split('?')[0]!.split('/')[2] ?? '';
  return KIND_BY_PLURAL.get(segment)?.name ?? '';
}

export async function buildApiServer(options: ApiServerOptions): Promise<FastifyInstance> {
  const serverOptions: FastifyServerOptions & { https?: unknown } = {
    loggerInstance: options.logger,
    disableRequestLogging: true,
    bodyLimit: options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT,
    // On SIGTERM a request that already reached us (on a kept-alive connection too) gets its normal
    // reply; new connections are refused once the listener is closed.
    return503OnClosing: false,
    // Our own request IDs: the one a client may read in a 500 and find in the server log.
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    routerOptions: { ignoreTrailingSlash: true },
  };
  if (options.tls) {
    // A client without a certificate signed by our CA fails the TLS handshake: no handler ever sees it.
    serverOptions.https = {
      ca: options.tls.ca,
      cert: options.tls.cert,
      key: options.tls.key,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
    };
  }
  const app = Fastify(serverOptions as FastifyServerOptions) as unknown as FastifyInstance;

  // Our own JSON parser, so an empty or malformed body gets the envelope and a precise message.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = body as string;
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      done(new InputError(`malformed JSON in request body: ${(err as Error).message}`), undefined);
    }
  });
  app.addContentTypeParser('*', { parseAs: 'string' }, (req, body, done) => {
    if ((body as string).length === 0) return done(null, undefined);
    done(new InputError(`unsupported content type ${JSON.stringify(req.headers['content-type'])}: send application/json`), undefined);
  });

  // We do not decode compressed bodies: one declared compressed would otherwise be read as plain text.
  app.addHook('onRequest', async (req) => {
    const encoding = req.headers['content-encoding'];
    if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
      throw Object.assign(new Error(`unsupported Content-Encoding ${JSON.stringify(clip(encoding, 100))}: send the body uncompressed`), {
        statusCode: 415,
      });
    }
  });

  app.setErrorHandler((err, req, reply) => {
    const type = typeForUrl(req.url);
    if (isThreeportError(err)) {
      return reply.code(err.status).type(JSON_TYPE).send(errorEnvelope(type, err.status, clip(err.message, MAX_ERROR_MESSAGE)));
    }
    const fastifyError = err as { statusCode?: number; code?: string; message: string };
    if (fastifyError.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      const limit = options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT;
      return reply
        .code(413)
        .type(JSON_TYPE)
        .send(errorEnvelope(type, 413, `request body is larger than the limit of ${limit} bytes`));
    }
    if (fastifyError.statusCode && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
      return reply
        .code(fastifyError.statusCode)
        .type(JSON_TYPE)
        .send(errorEnvelope(type, fastifyError.statusCode, clip(fastifyError.message, MAX_ERROR_MESSAGE)));
    }
    // The cause (a PostgreSQL error, a bug) goes to the log only; the client gets the request ID to quote.
    req.log.error({ err, reqId: req.id, method: req.method, url: req.url.split('?')[0] }, 'request failed');
    return reply
      .code(500)
      .header('x-request-id', req.id)
      .type(JSON_TYPE)
      .send(errorEnvelope(type, 500, `internal server error (request ID ${req.id}); the server log has the details`));
  });
  // Every route's path pattern and methods, so that a known path with another method gets 405.
  // A kind route's plural segment matches only the plural of a routed kind (set below).
  let routedPlurals: ReadonlySet<string> = new Set();
  const routes: Array<{ pattern: RegExp; methods: Set<string> }> = [];
  app.addHook('onRoute', (route) => {
    const source = route.url
      .replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
      .replace(KIND_ROUTE_PLURAL, '(?<plural>[^/]+)')
      .replace(/:[A-Za-z]+/g, '[^/]+');
    const pattern = new RegExp(`^${source}/?$`);
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).map(String);
    const known = routes.find((r) => r.pattern.source === pattern.source);
    if (known) for (const m of methods) known.methods.add(m);
    else routes.push({ pattern, methods: new Set(methods) });
  });
  const matches = (pattern: RegExp, path: string): boolean => {
    const m = pattern.exec(path);
    return m !== null && (m.groups?.['plural'] === undefined || routedPlurals.has(m.groups['plural']));
  };
  const notFound = (req: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const path = req.url.split('?')[0]!;
    const allowed = new Set(routes.filter((r) => matches(r.pattern, path)).flatMap((r) => [...r.methods]));
    if (allowed.size > 0 && !allowed.has(req.method)) {
      return reply
        .code(405)
        .header('allow', [...allowed].sort().join(', '))
        .type(JSON_TYPE)
        .send(errorEnvelope(typeForUrl(req.url), 405, `method ${req.method} is not allowed on ${path}; allowed: ${[...allowed].sort().join(', ')}`));
    }
    return reply.code(404).type(JSON_TYPE).send(errorEnvelope(typeForUrl(req.url), 404, `no route for ${req.method} ${path}`));
  };
  app.setNotFoundHandler(notFound);

  app.get('/version', async (_req, reply) => reply.type(JSON_TYPE).send(JSON.stringify({ Version: VERSION })));
  app.get('/readyz', async (req, reply) => {
    const ready = options.ready?.() ?? true;
    // ?verbose (as Kubernetes' own /readyz): which replica this is and what it owns.
    const verbose = 'verbose' in ((req.query as Record<string, unknown> | undefined) ?? {}) && options.readyDetail;
    const body = (ready ? 'OK' : 'not ready') + (verbose ? `\n${options.readyDetail!()}\n` : '');
    return reply.code(ready ? 200 : 503).type('text/plain').send(body);
  });

  registerDocsRoutes(app);

  const serverChecks: Record<string, ServerCheck> = {
    HelmWorkloadDefinition: (fields) => localRepoProblem(fields['Repo'], options.helmChartDir),
  };
  routedPlurals = registerKindRoutes(app, KINDS.filter((k) => !k.noRoutes), options.store, serverChecks, notFound);
  registerCustomRoutes(app, options.store);
  options.extend?.(app);
  return app;
}
