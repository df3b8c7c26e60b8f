// The OpenAPI document validates, Swagger UI is served, and mutual TLS keeps
// clients without a certificate from our CA away from every handler.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import { KINDS } from '../../src/kinds/index.js';
import { createCa, issueCertificate } from '../../src/crypto/pki.js';
import { startTestApi, type TestApi } from '../harness/api-server.js';

interface Reply {
  status: number;
  body: string;
}

function httpsGet(url: string, tls: { ca: string; cert?: string; key?: string }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ...tls, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('OpenAPI and mutual TLS', () => {
  let api: TestApi;
  let ca: string;
  let client: { cert: string; key: string };

  before(async () => {
    api = await startTestApi('embedded', { auth: true });
    const pki = join(api.dataDir, 'pki');
    ca = readFileSync(join(pki, 'ca.crt'), 'utf8');
    client = { cert: readFileSync(join(pki, 'client.crt'), 'utf8'), key: readFileSync(join(pki, 'client.key'), 'utf8') };
  });
  after(async () => api?.stop());

  test('the server speaks HTTPS and answers a client with a certificate from its CA', async () => {
    assert.match(api.url, /^https:\/\//);
    const res = await httpsGet(`${api.url}/version`, { ca, ...client });
    assert.equal(res.status, 200);
    assert.match(res.body, /"Version":"v/);
  });

  test('a client without a certificate fails the handshake', async () => {
    await assert.rejects(httpsGet(`${api.url}/v0/workload-definitions`, { ca }), (err: NodeJS.ErrnoException) => {
      assert.match(String(err.code ?? err.message), /ECONNRESET|EPROTO|ERR_SSL|certificate|socket hang up/i);
      return true;
    });
  });

  test('a client certificate from another CA is refused', async () => {
    const otherCa = await createCa('Impostor');
    const impostor = await issueCertificate(otherCa, { commonName: 'mallory', usage: 'client' });
    await assert.rejects(httpsGet(`${api.url}/v0/workload-definitions`, { ca, ...impostor }));
  });

  test('plain HTTP to the TLS port gets no API response', async () => {
    const plain = api.url.replace('https://', 'http://');
    const res = await fetch(`${plain}/version`).then(
      (r) => r.status,
      () => 'refused',
    );
    assert.notEqual(res, 200);
  });

  test('/swagger/doc.json is a valid OpenAPI 3.1 document covering every kind', async () => {
    const res = await httpsGet(`${api.url}/swagger/doc.json`, { ca, ...client });
    assert.equal(res.status, 200);
    const doc = JSON.parse(res.body) as { openapi: string; paths: Record<string, unknown>; components: { schemas: Record<string, unknown> } };
    assert.equal(doc.openapi, '3.1.0');
    const validator = new Validator();
    const result = await validator.validate(doc as Record<string, unknown>);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
    for (const kind of KINDS) {
      assert.ok(doc.paths[`/v0/${kind.plural}`], `missing path for ${kind.plural}`);
      assert.ok(doc.paths[`/v0/${kind.plural}/{id}`]);
      assert.ok(doc.components.schemas[kind.name]);
    }
    assert.ok(doc.paths['/v0/workload-resource-definition-sets']);
  });

  test('Swagger UI is served at /swagger/', async () => {
    const res = await httpsGet(`${api.url}/swagger/`, { ca, ...client });
    const page = res.status === 302 ? await httpsGet(`${api.url}/swagger/static/index.html`, { ca, ...client }) : res;
    assert.equal(page.status, 200);
    assert.match(page.body, /swagger/i);
  });
});
