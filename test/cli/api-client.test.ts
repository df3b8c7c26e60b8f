// Unit tests of the v0 API client's envelope handling, against a small local
// HTTP server that answers like the API (the end-to-end suite runs it against
// the real one over mutual TLS).
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ThreeportClient } from '../../src/client/api-client.js';
import { ApiConnectionError, ApiError, ObjectConflictError, ObjectNotFoundError } from '../../src/client/errors.js';
import { freePort } from '../../src/system.js';
import { aws, gateway, workload } from '../../src/kinds/index.js';

const envelope = (type: string, data: unknown[] | null, code = 200, error = '') =>
  JSON.stringify({ Meta: { Page: 1, Size: data?.length ?? 0, TotalCount: data?.length ?? 0 }, Type: type, Data: data, Status: { code, message: 'x', error } });

describe('ThreeportClient', () => {
  let server: Server;
  let client: ThreeportClient;
  const seen: Array<{ method: string; url: string; body: string }> = [];

  before(async () => {
    server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ method: req.method!, url: req.url!, body });
        res.setHeader('content-type', 'application/json');
        const url = req.url!;
        if (url === '/version') return res.end('{"Version":"v9.9.9"}');
        if (url.startsWith('/v0/workload-instances?name=twice')) return res.end(envelope('WorkloadInstance', [{ ID: 1 }, { ID: 2 }]));
        if (url.startsWith('/v0/workload-instances?name=')) return res.end(envelope('WorkloadInstance', []));
        if (url.startsWith('/v0/gateway-instances?')) return res.end(envelope('GatewayInstance', [{ ID: 7, Name: 'gw' }]));
        if (url === '/v0/workload-instances/404') return res.writeHead(404).end(envelope('WorkloadInstance', null, 404, 'record not found'));
        if (url === '/v0/workload-definitions' && req.method === 'POST') {
          return res.writeHead(409).end(envelope('WorkloadDefinition', null, 409, 'object with provided name already exists'));
        }
        if (url === '/v0/workload-definitions/5') return res.writeHead(400).end(envelope('WorkloadDefinition', null, 400, 'Missing required field(s) : YAMLDocument'));
        if (url === '/v0/workload-definitions/6') return res.writeHead(502).end('bad gateway');
        res.writeHead(500).end(envelope('', null, 500, 'unexpected'));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    client = new ThreeportClient({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
  });
  after(async () => {
    client.close();
    await new Promise((r) => server.close(r));
  });

  it('maps 404 and 409 to their own errors and carries Status.error', async () => {
    await assert.rejects(client.get(workload.WorkloadInstance, 404), (err: Error) => err instanceof ObjectNotFoundError && err.message === 'record not found');
    await assert.rejects(
      client.create(workload.WorkloadDefinition, { Name: 'x', YAMLDocument: 'y' }),
      (err: Error) => err instanceof ObjectConflictError && (err as ApiError).status === 409 && err.message === 'object with provided name already exists',
    );
    await assert.rejects(
      client.patch(workload.WorkloadDefinition, 5, { YAMLDocument: '' }),
      (err: Error) => err instanceof ApiError && !(err instanceof ObjectNotFoundError) && err.message === 'Missing required field(s) : YAMLDocument',
    );
    await assert.rejects(client.get(workload.WorkloadDefinition, 6), (err: Error) => err instanceof ApiError && (err as ApiError).status === 502 && err.message === 'bad gateway');
    assert.equal(seen.find((s) => s.method === 'POST')?.body, '{"Name":"x","YAMLDocument":"y"}');
  });

  it('looks objects up by name, expecting exactly one', async () => {
    await assert.rejects(client.getByName(workload.WorkloadInstance, 'none'), (err: Error) => err instanceof ObjectNotFoundError && err.message === 'no WorkloadInstance named "none"');
    assert.equal(await client.findByName(workload.WorkloadInstance, 'none'), undefined);
    await assert.rejects(client.getByName(workload.WorkloadInstance, 'twice'), /2 WorkloadInstance objects are named "twice"; expected one/);
  });

  it('filters by field name through the kind\'s query keys, quirks included', async () => {
    const found = await client.listAll(gateway.GatewayInstance, { WorkloadInstanceID: 3 });
    assert.equal(found[0]?.ID, 7);
    assert.equal(seen.at(-1)?.url, '/v0/gateway-instances?workloadresourceinstanceid=3&size=-1');
    await assert.rejects(client.listAll(aws.AwsAccount, { SecretAccessKey: 'x' }), /AwsAccount\.SecretAccessKey cannot be used as a filter: it has no query key/);
    assert.equal(await client.version(), 'v9.9.9');
  });

  it('says when the API cannot be reached', async () => {
    const port = await freePort();
    const offline = new ThreeportClient({ baseUrl: `http://127.0.0.1:${port}` });
    await assert.rejects(
      offline.version(),
      (err: Error) => err instanceof ApiConnectionError && err.message === `cannot reach the Threeport API at http://127.0.0.1:${port}: connection refused (is the control plane running?)`,
    );
    offline.close();
    assert.throws(() => new ThreeportClient({ baseUrl: 'https://127.0.0.1:1' }), /an https API \(https:\/\/127\.0\.0\.1:1\) needs the CA certificate and a client certificate and key/);
  });
});
