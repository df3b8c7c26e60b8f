// GET /swagger/doc.json (the OpenAPI document) and the Swagger UI under /swagger/, built on the
// first request. The document and the UI's plugins (@fastify/swagger, @fastify/swagger-ui with
// @fastify/static and yaml) were a fifth of an API replica's start-up CPU and memory, for pages
// that a person opens now and then. The UI runs in its own Fastify instance that never listens:
// plugins cannot be added to a server once it listens, so the outer route forwards to it.
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { buildOpenApi } from './openapi.js';
import { JSON_TYPE } from './kind-routes.js';

/** Headers the inner instance sets that the outer reply must not copy (it frames the body itself). */
const FRAMING = new Set(['content-length', 'transfer-encoding', 'connection', 'keep-alive', 'date']);

export function registerDocsRoutes(app: FastifyInstance): void {
  let document: string | undefined;
  const openapi = (): string => (document ??= JSON.stringify(buildOpenApi()));
  let ui: Promise<FastifyInstance> | undefined;
  const loadUi = (): Promise<FastifyInstance> =>
    (ui ??= (async () => {
      const inner = Fastify({ logger: false, routerOptions: { ignoreTrailingSlash: true } });
      const { default: swagger } = await import('@fastify/swagger');
      const { default: swaggerUi } = await import('@fastify/swagger-ui');
      await inner.register(swagger, { mode: 'static', specification: { document: JSON.parse(openapi()) as never } });
      await inner.register(swaggerUi, { routePrefix: '/swagger', uiConfig: { url: '/swagger/doc.json' } as never });
      await inner.ready();
      return inner;
    })().catch((err: unknown) => {
      ui = undefined; // the next request tries again
      throw err;
    }));

  app.get('/swagger/doc.json', async (_req, reply) => reply.type(JSON_TYPE).send(openapi()));
  const forward = async (req: FastifyRequest, reply: FastifyReply) => {
    const inner = await loadUi();
    const res = await inner.inject({ method: req.method as 'GET', url: req.url, headers: req.headers as Record<string, string> });
    for (const [name, value] of Object.entries(res.headers)) if (!FRAMING.has(name) && value !== undefined) reply.header(name, value);
    return reply.code(res.statusCode).send(res.rawPayload);
  };
  app.get('/swagger', forward);
  app.get('/swagger/*', forward);
}
