// Issue 15 items 3-5, issue 16 item 2 (empty strings) and 4 (echo cap): bad input that was a
// 500 (or silently accepted) is a precise 4xx naming the field, and nothing is written. Run on
// both databases.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { BACKENDS, call, startTestApi, type TestApi } from '../harness/api-server.js';
import { MAX_JSON_DEPTH, MAX_NAME_LENGTH } from '../../src/kinds/input-limits.js';

const MANIFEST = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\n';

/** `depth` nested arrays as JSON text (built as text: the value itself would be too deep to stringify). */
const deepJson = (depth: number) => `${'['.repeat(depth)}1${']'.repeat(depth)}`;

/** A raw POST, so that headers and bytes are exactly what the test says. */
function rawPost(api: TestApi, path: string, body: Buffer | string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(`${api.url}${path}`);
    const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

for (const backend of BACKENDS) {
  describe(`bad input on ${backend} database`, () => {
    let api: TestApi;
    let wdId: number;
    let krdId: number;
    before(async () => {
      api = await startTestApi(backend, { bodyLimitBytes: 8 * 1024 * 1024 });
      const wd = await call(api, 'POST', '/v0/workload-definitions', { Name: 'base', YAMLDocument: MANIFEST, Reconciled: true });
      assert.equal(wd.status, 201, wd.text);
      wdId = wd.body.Data![0]!['ID'] as number;
      const krd = await call(api, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'krd', InfraProvider: 'kind' });
      krdId = krd.body.Data![0]!['ID'] as number;
    });
    after(async () => api?.stop());

    /** Every table's live and total rows, and the queue: what "nothing changed" compares. */
    const snapshot = async (): Promise<string> => {
      const tables = await api.server.db.query(`SELECT tablename FROM pg_tables WHERE tablename LIKE 'v0\\_%' OR tablename = 'threeport_reconcile_queue' ORDER BY 1`);
      const counts: string[] = [];
      for (const { tablename } of tables.rows as Array<{ tablename: string }>) {
        const n = await api.server.db.query(`SELECT count(*)::int AS n, coalesce(max(updated_at)::text, '') AS u FROM ${tablename}`).catch(async () =>
          api.server.db.query(`SELECT count(*)::int AS n, '' AS u FROM ${tablename}`),
        );
        const row = n.rows[0] as { n: number; u: string };
        counts.push(`${tablename}=${row.n}@${row.u}`);
      }
      return counts.join(' ');
    };
    const refused = async (method: string, path: string, body: unknown, status: number, message: RegExp) => {
      const before = await snapshot();
      const res = await call(api, method, path, body);
      assert.equal(res.status, status, `${method} ${path} → ${res.status} ${res.text.slice(0, 300)}`);
      assert.equal(res.body.Status.code, status);
      assert.match(res.body.Status.error, message);
      assert.equal(await snapshot(), before, `${method} ${path} changed the store`);
      return res;
    };

    test('JSON nested 10,000 deep in a json field gets 400 naming the field; 64 levels are fine', async () => {
      const body = `{"JSONDefinition": ${deepJson(10_000)}, "WorkloadDefinitionID": ${wdId}}`;
      await refused('POST', '/v0/workload-resource-definitions', body, 400, /field WorkloadResourceDefinition\.JSONDefinition(\[0\])* is nested deeper than 64 levels/);
      await refused('POST', '/v0/workload-resource-definition-sets', `[${body}]`, 400, /item 0: field WorkloadResourceDefinition\.JSONDefinition.* nested deeper than 64/);
      const okBody = `{"JSONDefinition": ${deepJson(MAX_JSON_DEPTH - 1)}, "WorkloadDefinitionID": ${wdId}}`;
      const ok = await call(api, 'POST', '/v0/workload-resource-definitions', okBody);
      assert.equal(ok.status, 201, ok.text.slice(0, 300));
      const wi = await call(api, 'POST', '/v0/helm-workload-definitions', `{"Name":"deep-helm","Repo":"https://charts.example.com","Chart":"c","AdditionalResources":{"a":${deepJson(20_000)}}}`);
      assert.equal(wi.status, 400);
      assert.match(wi.body.Status.error, /field HelmWorkloadDefinition\.AdditionalResources\.a.* nested deeper than 64 levels/);
    });

    test('a YAML document nested 10,000 deep, or an alias bomb, gets 400 naming YAMLDocument', async () => {
      const deepFlow = `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\ndata: ${'['.repeat(10_000)}${']'.repeat(10_000)}\n`;
      await refused('POST', '/v0/workload-definitions', { Name: 'deep-yaml', YAMLDocument: deepFlow }, 400, /^YAMLDocument (document 1 )?is nested too deeply: at most 64 levels/);
      const deepBlock = `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\ndata:\n${Array.from({ length: 3_000 }, (_, i) => `${' '.repeat(i + 1)}k:`).join('\n')} 1\n`;
      await refused('POST', '/v0/workload-definitions', { Name: 'deep-block', YAMLDocument: deepBlock }, 400, /^YAMLDocument (document 1 )?is nested too deeply/);
      const moderate = `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\ndata: ${'['.repeat(100)}${']'.repeat(100)}\n`;
      await refused('POST', '/v0/workload-definitions', { Name: 'moderate', YAMLDocument: moderate }, 400, /^YAMLDocument document 1\.data(\[0\])* is nested deeper than 64 levels/);
      const lol = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
      for (const [i, c] of ['b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'].entries()) {
        const prev = i === 0 ? 'a' : ['b', 'c', 'd', 'e', 'f', 'g', 'h'][i - 1]!;
        lol.push(`${c}: &${c} [${Array(9).fill(`*${prev}`).join(',')}]`);
      }
      const bomb = `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lol\ndata:\n${lol.map((l) => `  ${l}`).join('\n')}\n`;
      await refused('POST', '/v0/workload-definitions', { Name: 'bomb', YAMLDocument: bomb }, 400, /^YAMLDocument document 1 expands too many aliases/);
      await refused('PATCH', `/v0/workload-definitions/${wdId}`, { YAMLDocument: bomb }, 400, /^YAMLDocument document 1 expands too many aliases/);
    });

    test('NUL and lone surrogates in any string, in a body or a query filter, get 400 naming the field', async () => {
      await refused('POST', '/v0/profiles', '{"Name": "a\\u0000b"}', 400, /^field Profile\.Name contains a NUL character/);
      await refused('POST', '/v0/profiles', '{"Name": "a\\ud800b"}', 400, /^field Profile\.Name contains a lone UTF-16 surrogate/);
      await refused('POST', '/v0/helm-workload-definitions', '{"Name": "ok", "Repo": "", "Chart": "c", "ChartVersion": "\\udc00"}', 400, /^field HelmWorkloadDefinition\.ChartVersion contains a lone UTF-16 surrogate/);
      await refused('POST', '/v0/workload-resource-definitions', `{"JSONDefinition": {"data": {"k": "x\\u0000"}}, "WorkloadDefinitionID": ${wdId}}`, 400, /^field WorkloadResourceDefinition\.JSONDefinition\.data\.k contains a NUL/);
      await refused('POST', '/v0/workload-resource-definitions', `{"JSONDefinition": {"a\\u0000": 1}, "WorkloadDefinitionID": ${wdId}}`, 400, /^field WorkloadResourceDefinition\.JSONDefinition has a key that contains a NUL/);
      await refused('POST', '/v0/secret-definitions', '{"Name": "s", "Data": {"k": "\\ud800"}}', 400, /^field SecretDefinition\.Data\.k contains a lone UTF-16 surrogate/);
      await refused('PATCH', `/v0/workload-definitions/${wdId}`, '{"YAMLDocument": "x\\u0000"}', 400, /^field WorkloadDefinition\.YAMLDocument contains a NUL/);
      // A surrogate pair is a real character (emoji), and fine.
      const emoji = await call(api, 'POST', '/v0/profiles', '{"Name": "smile-\\ud83d\\ude00"}');
      assert.equal(emoji.status, 201, emoji.text);
      const nul = await call(api, 'GET', '/v0/profiles?name=a%00b');
      assert.equal(nul.status, 400, nul.text);
      assert.match(nul.body.Status.error, /^query parameter name contains a NUL character/);
      // Invalid UTF-8 in a URL decodes to U+FFFD, which is storable: no lone surrogate can arrive that way.
      assert.equal((await call(api, 'GET', '/v0/profiles?name=%ED%A0%80')).status, 200);
      const joined = await call(api, 'GET', '/v0/events-join-attached-object-references?objectid=1&reason=x%00');
      assert.equal(joined.status, 400, joined.text);
    });

    test(`names longer than ${MAX_NAME_LENGTH} characters get 400; ${MAX_NAME_LENGTH} is fine`, async () => {
      await refused('POST', '/v0/profiles', { Name: 'n'.repeat(3_000) }, 400, new RegExp(`^field Profile\\.Name is 3000 characters long: at most ${MAX_NAME_LENGTH} are allowed$`));
      await refused('PATCH', `/v0/workload-definitions/${wdId}`, { Name: 'n'.repeat(MAX_NAME_LENGTH + 1) }, 400, /Name is 254 characters long/);
      await refused('POST', '/v0/attached-object-references', { ObjectType: 'x'.repeat(3_000), ObjectID: 1, AttachedObjectType: 'v0.Event', AttachedObjectID: 2 }, 400, /ObjectType is 3000 characters long/);
      const max = await call(api, 'POST', '/v0/profiles', { Name: 'm'.repeat(MAX_NAME_LENGTH) });
      assert.equal(max.status, 201, max.text);
    });

    test('prototype keys never satisfy a required field or a check, and are refused everywhere', async () => {
      await refused('POST', '/v0/profiles', '{"__proto__": {"Name": "x"}}', 400, /^Unsupported fields are not allowed : __proto__ \(/);
      await refused('POST', '/v0/workload-definitions', `{"__proto__": {"Name": "x"}, "YAMLDocument": ${JSON.stringify(MANIFEST)}}`, 400, /^Unsupported fields are not allowed : __proto__/);
      await refused(
        'POST',
        '/v0/aws-accounts',
        '{"Name": "acct", "AccountID": "111122223333", "DefaultRegion": "us-east-1", "__proto__": {"RoleArn": "arn:aws:iam::111122223333:role/x"}}',
        400,
        /^Unsupported fields are not allowed : __proto__/,
      );
      await refused(
        'POST',
        '/v0/kubernetes-runtime-instances',
        `{"Name": "rt", "KubernetesRuntimeDefinitionID": ${krdId}, "__proto__": {"Location": "Local"}}`,
        400,
        /^Unsupported fields are not allowed : __proto__/,
      );
      for (const key of ['constructor', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__', 'isPrototypeOf', 'prototype']) {
        await refused('POST', '/v0/profiles', `{"Name": "p-${key}", "${key}": 1}`, 400, new RegExp(`^Unsupported fields are not allowed : ${key} \\(`));
      }
      for (const key of ['__proto__', 'constructor', 'prototype']) {
        await refused(
          'POST',
          '/v0/workload-resource-definitions',
          `{"JSONDefinition": {"metadata": {"${key}": {"x": 1}}}, "WorkloadDefinitionID": ${wdId}}`,
          400,
          new RegExp(`^field WorkloadResourceDefinition\\.JSONDefinition\\.metadata\\.${key}: the key "${key}" is not allowed$`),
        );
      }
      await refused('POST', '/v0/secret-definitions', '{"Name": "s2", "Data": {"__proto__": "x"}}', 400, /Data\.__proto__: the key "__proto__" is not allowed/);
      await refused('POST', '/v0/gateway-definitions', '{"Name": "gw", "HttpPorts": [{"__proto__": {"Port": 80}}]}', 400, /HttpPorts\[0\]: Unsupported fields are not allowed : __proto__/);
      const yamlProto = `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: p\n  __proto__:\n    x: 1\n`;
      await refused('POST', '/v0/workload-definitions', { Name: 'yaml-proto', YAMLDocument: yamlProto }, 400, /YAMLDocument document 1\.metadata\.__proto__: the key "__proto__" is not allowed/);
    });

    test('gateway TLS ports: accepted with a domain name; without one, on a TCP port, or with nowhere to redirect, a 400 naming the field', async () => {
      const dnd = await call(api, 'POST', '/v0/domain-name-definitions', { Name: 'tls-domain', Domain: 'tls.test', Zone: 'Private', AdminEmail: 'a@tls.test' });
      assert.equal(dnd.status, 201, dnd.text);
      const domainId = dnd.body.Data![0]!['ID'] as number;
      await refused('POST', '/v0/gateway-definitions', { Name: 'tls1', HttpPorts: [{ Port: 443, TLSEnabled: true }] }, 400, /^field GatewayDefinition\.HttpPorts\[0\]\.TLSEnabled: TLS needs a host name for its certificate: set DomainNameDefinitionID/);
      await refused('POST', '/v0/gateway-definitions', { Name: 'tls2', DomainNameDefinitionID: domainId, TcpPorts: [{ Port: 22, TLSEnabled: true }] }, 400, /^field GatewayDefinition\.TcpPorts\[0\]\.TLSEnabled: TLS on TCP ports is not supported/);
      await refused('POST', '/v0/gateway-definitions', { Name: 'tls3', DomainNameDefinitionID: domainId, HttpPorts: [{ Port: 80, HTTPSRedirect: true }] }, 400, /^field GatewayDefinition\.HttpPorts\[0\]\.HTTPSRedirect: there is no TLSEnabled HTTP port/);
      const ok = await call(api, 'POST', '/v0/gateway-definitions', {
        Name: 'tls-ok',
        DomainNameDefinitionID: domainId,
        SubDomain: 'www',
        HttpPorts: [{ Port: 80, HTTPSRedirect: true }, { Port: 443, TLSEnabled: true }],
      });
      assert.equal(ok.status, 201, ok.text);
      const id = ok.body.Data![0]!['ID'] as number;
      assert.equal((await call(api, 'DELETE', `/v0/gateway-definitions/${id}`)).status, 200);
    });

    test('a body declared gzip but not gzipped gets 415; identity is fine', async () => {
      const before = await snapshot();
      const body = JSON.stringify({ Name: 'gz' });
      for (const encoding of ['gzip', 'deflate', 'br']) {
        const res = await rawPost(api, '/v0/profiles', body, { 'content-type': 'application/json', 'content-encoding': encoding });
        assert.equal(res.status, 415, res.text);
        assert.match((JSON.parse(res.text) as { Status: { error: string } }).Status.error, new RegExp(`^unsupported Content-Encoding "${encoding}"`));
      }
      assert.equal(await snapshot(), before);
      const plain = await rawPost(api, '/v0/profiles', body, { 'content-type': 'application/json', 'content-encoding': 'identity' });
      assert.equal(plain.status, 201, plain.text);
    });

    test('an error echoes at most 20 unknown keys, however many were sent', async () => {
      const keys: Record<string, number> = { Name: 1 };
      for (let i = 0; i < 200_000; i++) keys[`k${i}`] = i;
      const res = await refused('POST', '/v0/profiles', { ...keys, Name: 'many' }, 400, /^Unsupported fields are not allowed : k0,k1,.*,k19 \(and 199980 more\) \(Profile accepts/);
      assert.ok(res.text.length < 2_000, `error is ${res.text.length} bytes`);
    });

    test('a required string may be "" (as upstream), except Name, which PATCH may not blank', async () => {
      const created = await call(api, 'POST', '/v0/helm-workload-definitions', { Name: 'empty-ok', Repo: '', Chart: '' });
      assert.equal(created.status, 201, created.text);
      const id = created.body.Data![0]!['ID'];
      await refused('POST', '/v0/profiles', { Name: '' }, 400, /^Missing required field\(s\) : Name$/);
      await refused('POST', '/v0/profiles', { Name: '   ' }, 400, /^Missing required field\(s\) : Name$/);
      await refused('PATCH', `/v0/helm-workload-definitions/${id}`, { Name: '' }, 400, /^field HelmWorkloadDefinition\.Name must not be empty$/);
      await refused('PUT', `/v0/helm-workload-definitions/${id}`, { Name: '', Repo: '', Chart: '' }, 400, /^Missing required field\(s\) : Name$/);
      const patched = await call(api, 'PATCH', `/v0/helm-workload-definitions/${id}`, { Chart: '' });
      assert.equal(patched.status, 200, patched.text);
    });
  });
}
