// The v0 REST API contract (spec §2), run against both databases: the
// embedded PostgreSQL and a real PostgreSQL 15 server started for the test.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BACKENDS, call, startTestApi, type TestApi } from '../harness/api-server.js';

const MANIFEST = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\n';
const manifest = (name: string) => `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n`;

for (const backend of BACKENDS) {
  describe(`v0 API on ${backend} database`, () => {
    let api: TestApi;
    let runtimeId: number;

    before(async () => {
      api = await startTestApi(backend, { bodyLimitBytes: 64 * 1024 });
      const def = await call(api, 'POST', '/v0/kubernetes-runtime-definitions', {
        Name: 'local-def',
        InfraProvider: 'kind',
      });
      assert.equal(def.status, 201, def.text);
      const inst = await call(api, 'POST', '/v0/kubernetes-runtime-instances', {
        Name: 'local',
        Location: 'Local',
        DefaultRuntime: true,
        KubernetesRuntimeDefinitionID: def.body.Data![0]!['ID'],
        Reconciled: true,
      });
      assert.equal(inst.status, 201, inst.text);
      runtimeId = inst.body.Data![0]!['ID'] as number;
    });
    after(async () => api?.stop());

    const rowCount = async (table: string): Promise<number> => {
      const res = await api.server.db.query(`SELECT count(*)::int AS n FROM ${table}`);
      return (res.rows[0] as { n: number }).n;
    };
    const queueRow = async (kind: string, id: number) => {
      const res = await api.server.db.query(
        'SELECT operation, generation FROM threeport_reconcile_queue WHERE kind = $1 AND object_id = $2',
        [kind, id],
      );
      return res.rows[0] as { operation: string; generation: number } | undefined;
    };
    const createDefinition = async (name: string) => {
      const res = await call(api, 'POST', '/v0/workload-definitions', { Name: name, YAMLDocument: MANIFEST });
      assert.equal(res.status, 201, res.text);
      return res.body.Data![0]! as { ID: number } & Record<string, unknown>;
    };

    test('global routes: /version, /<plural>/versions, /readyz', async () => {
      const version = await call(api, 'GET', '/version');
      assert.equal(version.status, 200);
      assert.match(String((version.body as unknown as { Version: string }).Version), /^v\d+\.\d+\.\d+/);
      const versions = await call(api, 'GET', '/workload-instances/versions');
      assert.deepEqual(versions.body, { API: 'WorkloadInstance', Versions: ['v0'] });
      const ready = await fetch(`${api.url}/readyz`);
      assert.equal(ready.status, 200);
      assert.equal(await ready.text(), 'OK');
    });

    test('POST creates with 201, the envelope and model fields, and applies defaults', async () => {
      const res = await call(api, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'eks-def', InfraProvider: 'eks' });
      assert.equal(res.status, 201);
      assert.deepEqual(res.body.Meta, { Page: 1, Size: 1, TotalCount: 1 });
      assert.equal(res.body.Type, 'KubernetesRuntimeDefinition');
      assert.deepEqual(res.body.Status, { code: 201, message: 'Created', error: '' });
      const obj = res.body.Data![0]!;
      assert.equal(typeof obj['ID'], 'number');
      assert.ok(!Number.isNaN(Date.parse(String(obj['CreatedAt']))));
      assert.equal(obj['NodeSize'], 'Medium');
      assert.equal(obj['NodeProfile'], 'Balanced');
      assert.equal(obj['NodeMaximum'], 250);
      assert.equal(obj['HighAvailability'], false);
      assert.equal(obj['Reconciled'], false);
    });

    test('GET by id, 404 for a missing id, 400 for an invalid id', async () => {
      const def = await createDefinition('get-me');
      const got = await call(api, 'GET', `/v0/workload-definitions/${def.ID}`);
      assert.equal(got.status, 200);
      assert.equal(got.body.Data![0]!['Name'], 'get-me');
      const missing = await call(api, 'GET', '/v0/workload-definitions/999999999');
      assert.equal(missing.status, 404);
      assert.deepEqual(missing.body.Status, { code: 404, message: 'Not Found', error: 'record not found' });
      assert.equal(missing.body.Data, null);
      assert.deepEqual(missing.body.Meta, { Page: 0, Size: 0, TotalCount: 0 });
      for (const bad of ['abc', '-1', '0', '1.5', '99999999999999999999']) {
        const res = await call(api, 'GET', `/v0/workload-definitions/${bad}`);
        assert.equal(res.status, 400, bad);
        assert.match(res.body.Status.error, /invalid object ID .* must be a positive integer/);
      }
    });

    test('400s for bad payloads, each changing nothing', async () => {
      const before = await rowCount('v0_workload_definitions');
      const cases: Array<[unknown, RegExp]> = [
        ['', /^JSON payload is empty$/],
        [{}, /^JSON payload is empty$/],
        ['{"Name": "x",', /^malformed JSON in request body/],
        ['[1,2]', /must be an object of WorkloadDefinition fields, got array/],
        [{ Name: 'x', YAMLDocument: MANIFEST, Bogus: 1 }, /^Unsupported fields are not allowed : Bogus/],
        [{ ID: 5, Name: 'x', YAMLDocument: MANIFEST }, /^Update of GORM Model fields is not allowed : ID$/],
        [{ CreatedAt: '2024-01-01T00:00:00Z', Name: 'x', YAMLDocument: MANIFEST }, /GORM Model fields is not allowed : CreatedAt/],
        [{ Name: 'x' }, /^Missing required field\(s\) : YAMLDocument$/],
        [{ YAMLDocument: MANIFEST }, /^Missing required field\(s\) : Name$/],
        [{ Name: 42, YAMLDocument: MANIFEST }, /field WorkloadDefinition\.Name must be a string, got number/],
        [{ Name: 'x', YAMLDocument: MANIFEST, Reconciled: 'yes' }, /Reconciled must be a boolean, got string/],
        [{ Name: 'x', YAMLDocument: MANIFEST, ProfileID: -3 }, /ProfileID must be a positive integer object ID, got -3/],
        [{ Name: 'x', YAMLDocument: MANIFEST, CreationAcknowledged: 'yesterday' }, /must be an RFC 3339 timestamp/],
      ];
      for (const [body, message] of cases) {
        const res = await call(api, 'POST', '/v0/workload-definitions', body);
        assert.equal(res.status, 400, `${JSON.stringify(body)} → ${res.text}`);
        assert.equal(res.body.Status.code, 400);
        assert.equal(res.body.Status.message, 'Bad Request');
        assert.match(res.body.Status.error, message, JSON.stringify(body));
      }
      const enumRes = await call(api, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'x', InfraProvider: 'gke' });
      assert.equal(enumRes.status, 400);
      assert.match(enumRes.body.Status.error, /InfraProvider has invalid value "gke": must be one of kind, eks/);
      const nonJson = await fetch(`${api.url}/v0/workload-definitions`, {
        method: 'POST',
        body: 'Name=x',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      });
      assert.equal(nonJson.status, 400);
      assert.equal(await rowCount('v0_workload_definitions'), before);
    });

    test('a WorkloadDefinition whose YAMLDocument is not Kubernetes objects gets 400 at create time', async () => {
      const cases: Array<[string, RegExp]> = [
        ['a: [1, 2', /^YAMLDocument is not valid YAML \(document 1\)/],
        ['just text', /^YAMLDocument document 1 is not a Kubernetes object/],
        [`${MANIFEST}---\nkind: Service\nmetadata:\n  name: x\n`, /^YAMLDocument document 2 is not a Kubernetes object: apiVersion missing/],
        ['apiVersion: v1\nkind: Pod\n', /^YAMLDocument document 1 \(Pod\) has no metadata mapping$/],
        ['---\n---\n', /^YAMLDocument holds no Kubernetes objects$/],
      ];
      for (const [doc, message] of cases) {
        const res = await call(api, 'POST', '/v0/workload-definitions', { Name: 'bad-yaml', YAMLDocument: doc });
        assert.equal(res.status, 400, doc);
        assert.match(res.body.Status.error, message);
      }
      const def = await createDefinition('good-yaml');
      const patch = await call(api, 'PATCH', `/v0/workload-definitions/${def.ID}`, { YAMLDocument: 'nope' });
      assert.equal(patch.status, 400);
      assert.match(patch.body.Status.error, /not a Kubernetes object/);
      const multi = await call(api, 'POST', '/v0/workload-definitions', {
        Name: 'multi',
        YAMLDocument: `${manifest('one')}---\n${manifest('two')}---\n`,
      });
      assert.equal(multi.status, 201, multi.text);
    });

    test('oversized bodies get 413 with the envelope', async () => {
      const res = await call(api, 'POST', '/v0/workload-definitions', { Name: 'big', YAMLDocument: 'x'.repeat(100 * 1024) });
      assert.equal(res.status, 413);
      assert.equal(res.body.Status.code, 413);
      assert.match(res.body.Status.error, /larger than the limit of 65536 bytes/);
      const list = await call(api, 'GET', '/v0/workload-definitions?name=big');
      assert.equal(list.body.Meta.TotalCount, 0);
    });

    test('409 for a duplicate name among live rows; the name is reusable after delete', async () => {
      await call(api, 'POST', '/v0/profiles', { Name: 'dup' });
      const again = await call(api, 'POST', '/v0/profiles', { Name: 'dup' });
      assert.equal(again.status, 409);
      assert.deepEqual(again.body.Status, { code: 409, message: 'Conflict', error: 'object with provided name already exists' });
      const list = await call(api, 'GET', '/v0/profiles?name=dup');
      const id = list.body.Data![0]!['ID'];
      const del = await call(api, 'DELETE', `/v0/profiles/${id}`);
      assert.equal(del.status, 200);
      assert.ok(del.body.Data![0]!['DeletedAt']);
      assert.equal((await call(api, 'GET', `/v0/profiles/${id}`)).status, 404);
      assert.equal((await call(api, 'POST', '/v0/profiles', { Name: 'dup' })).status, 201);
    });

    test('list: pagination, default size 50, -1 for all, TotalCount, ID order', async () => {
      for (let i = 0; i < 7; i++) await call(api, 'POST', '/v0/tiers', { Name: `tier-${i}`, Criticality: i });
      const all = await call(api, 'GET', '/v0/tiers');
      assert.deepEqual(all.body.Meta, { Page: 1, Size: 50, TotalCount: 7 });
      const ids = all.body.Data!.map((o) => o['ID'] as number);
      assert.deepEqual(ids, [...ids].sort((a, b) => a - b));
      const page2 = await call(api, 'GET', '/v0/tiers?page=2&size=3');
      assert.deepEqual(page2.body.Meta, { Page: 2, Size: 3, TotalCount: 7 });
      assert.deepEqual(page2.body.Data!.map((o) => o['Name']), ['tier-3', 'tier-4', 'tier-5']);
      const beyond = await call(api, 'GET', '/v0/tiers?page=9&size=3');
      assert.equal(beyond.body.Meta.TotalCount, 7);
      assert.deepEqual(beyond.body.Data, []);
      const unlimited = await call(api, 'GET', '/v0/tiers?size=-1');
      assert.equal(unlimited.body.Data!.length, 7);
      for (const q of ['size=-2', 'size=abc', 'page=-5', 'page=x', 'size=1.5']) {
        const res = await call(api, 'GET', `/v0/tiers?${q}`);
        assert.equal(res.status, 400, q);
        assert.match(res.body.Status.error, /must be an integer of -1 or more/);
      }
    });

    test('filters by query keys; zero values filter nothing; quirks kept', async () => {
      const def = await createDefinition('filter-def');
      const other = await createDefinition('filter-other');
      for (const [name, d] of [['fi-1', def.ID], ['fi-2', def.ID], ['fi-3', other.ID]] as const) {
        const res = await call(api, 'POST', '/v0/workload-instances', {
          Name: name,
          WorkloadDefinitionID: d,
          KubernetesRuntimeInstanceID: runtimeId,
        });
        assert.equal(res.status, 201, res.text);
      }
      const byDef = await call(api, 'GET', `/v0/workload-instances?workloaddefinitionid=${def.ID}`);
      assert.deepEqual(byDef.body.Data!.map((o) => o['Name']), ['fi-1', 'fi-2']);
      const both = await call(api, 'GET', `/v0/workload-instances?workloaddefinitionid=${def.ID}&name=fi-2`);
      assert.deepEqual(both.body.Data!.map((o) => o['Name']), ['fi-2']);
      const zero = await call(api, 'GET', '/v0/workload-instances?workloaddefinitionid=0&name=');
      assert.ok(zero.body.Meta.TotalCount >= 3);
      const defaults = await call(api, 'GET', '/v0/kubernetes-runtime-instances?defaultruntime=true');
      assert.deepEqual(defaults.body.Data!.map((o) => o['Name']), ['local']);
      const badInt = await call(api, 'GET', '/v0/workload-instances?workloaddefinitionid=abc');
      assert.equal(badInt.status, 400);
      assert.match(badInt.body.Status.error, /query parameter workloaddefinitionid must be an integer/);
      const ignored = await call(api, 'GET', '/v0/workload-instances?nosuchkey=1');
      assert.equal(ignored.status, 200);
      // Upstream's tag quirk: TerraformInstance.TerraformDefinitionID filters as workloaddefinitionid.
      const tf = await call(api, 'GET', '/v0/terraform-instances?workloaddefinitionid=5');
      assert.equal(tf.status, 200);
    });

    test('SQL metacharacters in names and filters are data, never SQL', async () => {
      const nasty = ["x'; DROP TABLE v0_profiles; --", 'a"b\\c', '%_*', "' OR '1'='1"];
      for (const name of nasty) {
        const res = await call(api, 'POST', '/v0/profiles', { Name: name });
        assert.equal(res.status, 201, res.text);
        const found = await call(api, 'GET', `/v0/profiles?name=${encodeURIComponent(name)}`);
        assert.equal(found.status, 200);
        assert.deepEqual(found.body.Data!.map((o) => o['Name']), [name]);
      }
      const weirdFilter = await call(api, 'GET', `/v0/profiles?name=${encodeURIComponent("' OR 1=1 --")}`);
      assert.equal(weirdFilter.body.Meta.TotalCount, 0);
    });

    test('POST of a reconciled kind queues a reconcile in the same statement; Reconciled:true does not', async () => {
      const def = await createDefinition('queued-def');
      assert.deepEqual(await queueRow('WorkloadDefinition', def.ID), { operation: 'Created', generation: 1 });
      const pre = await call(api, 'POST', '/v0/workload-definitions', { Name: 'pre', YAMLDocument: MANIFEST, Reconciled: true });
      assert.equal(await queueRow('WorkloadDefinition', pre.body.Data![0]!['ID'] as number), undefined);
      const profile = await call(api, 'POST', '/v0/profiles', { Name: 'not-reconciled' });
      assert.equal(await queueRow('Profile', profile.body.Data![0]!['ID'] as number), undefined);
    });

    test('PATCH changes only given fields and queues when left unreconciled; PUT replaces and never queues', async () => {
      const def = await createDefinition('patch-def');
      await api.server.db.query('DELETE FROM threeport_reconcile_queue WHERE object_id = $1', [def.ID]);
      const done = await call(api, 'PATCH', `/v0/workload-definitions/${def.ID}`, { Reconciled: true });
      assert.equal(done.status, 200);
      assert.equal(done.body.Data![0]!['YAMLDocument'], MANIFEST);
      assert.equal(await queueRow('WorkloadDefinition', def.ID), undefined);
      const again = await call(api, 'PATCH', `/v0/workload-definitions/${def.ID}`, { Reconciled: false, YAMLDocument: manifest('a1') });
      assert.equal(again.body.Data![0]!['YAMLDocument'], manifest('a1'));
      assert.equal((await queueRow('WorkloadDefinition', def.ID))?.operation, 'Updated');
      const twice = await call(api, 'PATCH', `/v0/workload-definitions/${def.ID}`, { YAMLDocument: manifest('a2') });
      assert.equal(twice.status, 200);
      assert.deepEqual(await queueRow('WorkloadDefinition', def.ID), { operation: 'Updated', generation: 2 });

      const putMissing = await call(api, 'PUT', `/v0/workload-definitions/${def.ID}`, { Name: 'patch-def' });
      assert.equal(putMissing.status, 400);
      assert.match(putMissing.body.Status.error, /Missing required field\(s\) : YAMLDocument/);
      const put = await call(api, 'PUT', `/v0/workload-definitions/${def.ID}`, { Name: 'patch-def', YAMLDocument: manifest('b1') });
      assert.equal(put.status, 200);
      assert.equal(put.body.Data![0]!['YAMLDocument'], manifest('b1'));
      assert.equal(put.body.Data![0]!['Reconciled'], undefined, 'PUT replaces: omitted optional fields are gone');
      assert.deepEqual(await queueRow('WorkloadDefinition', def.ID), { operation: 'Updated', generation: 2 });

      const emptyPatch = await call(api, 'PATCH', `/v0/workload-definitions/${def.ID}`, {});
      assert.equal(emptyPatch.status, 400);
      const model = await call(api, 'PATCH', `/v0/workload-definitions/${def.ID}`, { ID: 9 });
      assert.match(model.body.Status.error, /GORM Model fields is not allowed : ID/);
      assert.equal((await call(api, 'PATCH', '/v0/workload-definitions/99999999', { YAMLDocument: MANIFEST })).status, 404);
    });

    test('nested associations are created with the parent, and a list sent in PATCH or PUT replaces them', async () => {
      const res = await call(api, 'POST', '/v0/gateway-definitions', {
        Name: 'gw',
        Reconciled: true, // registered only (an existing gateway): TLS ports are accepted, nothing reconciles them
        HttpPorts: [{ Port: 80 }, { Port: 443, TLSEnabled: true }],
        TcpPorts: [{ Port: 5432 }],
      });
      assert.equal(res.status, 201, res.text);
      const gw = res.body.Data![0]!;
      const ports = gw['HttpPorts'] as Array<Record<string, unknown>>;
      assert.deepEqual(ports.map((p) => [p['Port'], p['Path'], p['TLSEnabled'], p['GatewayDefinitionID']]), [
        [80, '/', false, gw['ID']],
        [443, '/', true, gw['ID']],
      ]);
      const listed = await call(api, 'GET', `/v0/gateway-http-ports?gatewaydefinitionid=${gw['ID']}`);
      assert.equal(listed.body.Meta.TotalCount, 2);
      // Get-modify-update, as upstream's client does it: the whole object back (top-level model
      // fields stripped), the ports unchanged with their IDs and timestamps: 200, ports untouched.
      const whole: Record<string, unknown> = { ...gw, SubDomain: 'www' };
      for (const f of ['ID', 'CreatedAt', 'UpdatedAt', 'DeletedAt', 'Generation', 'ObservedGeneration', 'Conditions']) delete whole[f];
      const gmu = await call(api, 'PATCH', `/v0/gateway-definitions/${gw['ID']}`, whole);
      assert.equal(gmu.status, 200, gmu.text);
      assert.equal(gmu.body.Data![0]!['SubDomain'], 'www');
      assert.deepEqual((gmu.body.Data![0]!['HttpPorts'] as Array<Record<string, unknown>>).map((p) => p['ID']), ports.map((p) => p['ID']));
      // Upstream's integration test PATCHes the definition's HttpPorts to a new list: the list
      // replaces the stored ports (the TcpPorts, sent back unchanged, stay), a desired change.
      const replaced = await call(api, 'PATCH', `/v0/gateway-definitions/${gw['ID']}`, { ...whole, HttpPorts: [{ Port: 8080 }] });
      assert.equal(replaced.status, 200, replaced.text);
      const after = replaced.body.Data![0]!;
      assert.deepEqual((after['HttpPorts'] as Array<Record<string, unknown>>).map((p) => [p['Port'], p['Path'], p['TLSEnabled'], p['GatewayDefinitionID']]), [[8080, '/', false, gw['ID']]]);
      assert.deepEqual((after['TcpPorts'] as Array<Record<string, unknown>>).map((p) => p['ID']), (gw['TcpPorts'] as Array<Record<string, unknown>>).map((p) => p['ID']));
      assert.equal(after['Generation'], (gmu.body.Data![0]!['Generation'] as number) + 1);
      assert.equal((await call(api, 'GET', `/v0/gateway-http-ports?gatewaydefinitionid=${gw['ID']}`)).body.Meta.TotalCount, 1);
      // Items echoed from a GET keep naming this object's own children; another object's are refused.
      const kept = after['HttpPorts'] as Array<Record<string, unknown>>;
      const added = await call(api, 'PUT', `/v0/gateway-definitions/${gw['ID']}`, { Name: 'gw', HttpPorts: [...kept, { Port: 8443, TLSEnabled: false }] });
      assert.equal(added.status, 200, added.text);
      assert.deepEqual((added.body.Data![0]!['HttpPorts'] as Array<Record<string, unknown>>).map((p) => p['Port']), [8080, 8443]);
      assert.equal((added.body.Data![0]!['TcpPorts'] as unknown[]).length, 1, 'a list left out of a PUT keeps its children');
      const foreign = await call(api, 'PATCH', `/v0/gateway-definitions/${gw['ID']}`, { HttpPorts: [{ ID: 999999, Port: 81 }] });
      assert.equal(foreign.status, 400);
      assert.match(foreign.body.Status.error, /^field GatewayDefinition\.HttpPorts\[0\]\.ID: GatewayHttpPort 999999 is not one of the HttpPorts of GatewayDefinition \d+$/);
      const elsewhere = await call(api, 'PATCH', `/v0/gateway-definitions/${gw['ID']}`, { HttpPorts: [{ Port: 81, GatewayDefinitionID: 999999 }] });
      assert.equal(elsewhere.status, 400);
      assert.match(elsewhere.body.Status.error, /HttpPorts\[0\]\.GatewayDefinitionID: the HttpPorts of GatewayDefinition \d+ belong to it/);
      // A bad list changes nothing: validated as creates of the child kind, with the definition's own rules.
      const duplicate = await call(api, 'PATCH', `/v0/gateway-definitions/${gw['ID']}`, { HttpPorts: [{ Port: 81 }, { Port: 81 }] });
      assert.equal(duplicate.status, 400);
      assert.match(duplicate.body.Status.error, /port 81 is used twice/);
      const missing = await call(api, 'PATCH', `/v0/gateway-definitions/${gw['ID']}`, { HttpPorts: [{ Path: '/x' }] });
      assert.equal(missing.status, 400);
      assert.match(missing.body.Status.error, /HttpPorts\[0\]: Missing required field\(s\) : Port/);
      assert.equal((await call(api, 'GET', `/v0/gateway-http-ports?gatewaydefinitionid=${gw['ID']}`)).body.Meta.TotalCount, 2);
      const badChild = await call(api, 'POST', '/v0/gateway-definitions', { Name: 'gw2', HttpPorts: [{ Path: '/x' }] });
      assert.equal(badChild.status, 400);
      assert.match(badChild.body.Status.error, /HttpPorts\[0\]: Missing required field\(s\) : Port/);
      assert.equal((await call(api, 'GET', '/v0/gateway-definitions?name=gw2')).body.Meta.TotalCount, 0);
    });

    test('immutable Location cannot change', async () => {
      const res = await call(api, 'PATCH', `/v0/kubernetes-runtime-instances/${runtimeId}`, { Location: 'Europe:Paris' });
      assert.equal(res.status, 400);
      assert.match(res.body.Status.error, /Location cannot be changed once set: it is "Local"/);
      const same = await call(api, 'PATCH', `/v0/kubernetes-runtime-instances/${runtimeId}`, { Location: 'Local' });
      assert.equal(same.status, 200);
    });

    test('two-phase deletion of reconciled kinds, and 409 while it runs', async () => {
      const def = await createDefinition('delete-def');
      const first = await call(api, 'DELETE', `/v0/workload-definitions/${def.ID}`);
      assert.equal(first.status, 200);
      const scheduled = first.body.Data![0]!;
      assert.ok(scheduled['DeletionScheduled']);
      assert.equal(scheduled['Reconciled'], false);
      assert.equal((await queueRow('WorkloadDefinition', def.ID))?.operation, 'Deleted');
      const second = await call(api, 'DELETE', `/v0/workload-definitions/${def.ID}`);
      assert.equal(second.status, 409);
      assert.equal(second.body.Status.error, `object with ID ${def.ID} already being deleted`);
      assert.equal((await call(api, 'GET', `/v0/workload-definitions/${def.ID}`)).status, 200);
      // What the controller runtime does once cleanup is done: confirm, then delete again.
      const now = new Date().toISOString();
      await call(api, 'PATCH', `/v0/workload-definitions/${def.ID}`, {
        DeletionAcknowledged: now,
        DeletionConfirmed: now,
        Reconciled: true,
      });
      const final = await call(api, 'DELETE', `/v0/workload-definitions/${def.ID}`);
      assert.equal(final.status, 200);
      assert.equal((await call(api, 'GET', `/v0/workload-definitions/${def.ID}`)).status, 404);
      assert.equal(await queueRow('WorkloadDefinition', def.ID), undefined);
      assert.equal((await call(api, 'DELETE', `/v0/workload-definitions/${def.ID}`)).status, 404);
    });

    test('409 when live dependents reference the object', async () => {
      const def = await createDefinition('dep-def');
      const inst = await call(api, 'POST', '/v0/workload-instances', {
        Name: 'dep-inst',
        WorkloadDefinitionID: def.ID,
        KubernetesRuntimeInstanceID: runtimeId,
      });
      const res = await call(api, 'DELETE', `/v0/workload-definitions/${def.ID}`);
      assert.equal(res.status, 409);
      assert.match(res.body.Status.error, /has related WorkloadInstances .* - cannot be deleted/);
      const rt = await call(api, 'DELETE', `/v0/kubernetes-runtime-instances/${runtimeId}`);
      assert.equal(rt.status, 409);
      assert.equal((await call(api, 'GET', `/v0/workload-definitions/${def.ID}`)).body.Data![0]!['DeletionScheduled'], undefined);
      assert.equal(inst.status, 201);
    });

    test('encrypted fields never reach the database as plaintext', async () => {
      const secret = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
      const res = await call(api, 'POST', '/v0/aws-accounts', {
        Name: 'acct',
        AccountID: '555555555555',
        DefaultRegion: 'us-east-1',
        AccessKeyID: 'AKIAIOSFODNN7EXAMPLE',
        SecretAccessKey: secret,
      });
      assert.equal(res.status, 201, res.text);
      assert.ok(!res.text.includes(secret));
      const acct = res.body.Data![0]!;
      assert.match(String(acct['ExternalId']), /^[0-9a-f-]{36}$/);
      const row = await api.server.db.query('SELECT data::text AS t FROM v0_aws_accounts WHERE id = $1', [acct['ID']]);
      const stored = (row.rows[0] as { t: string }).t;
      assert.ok(!stored.includes(secret) && !stored.includes('AKIAIOSFODNN7EXAMPLE'));
      assert.equal(api.server.store.decrypt(acct['SecretAccessKey'] as string), secret);
      const serverSet = await call(api, 'POST', '/v0/aws-accounts', {
        Name: 'acct2', AccountID: '1', DefaultRegion: 'us-east-1', ExternalId: 'mine',
      });
      assert.equal(serverSet.status, 400);
      assert.match(serverSet.body.Status.error, /ExternalId of AwsAccount are set by the server/);
    });

    test('AWS accounts: one credential style, one default account, a known region', async () => {
      const base = { AccountID: '111122223333', DefaultRegion: 'us-west-2' };
      const keys = { AccessKeyID: 'AKIAEXAMPLE', SecretAccessKey: 'secret' };
      const role = { RoleArn: 'arn:aws:iam::111122223333:role/threeport' };
      const cases: Array<[Record<string, unknown>, RegExp]> = [
        [{ Name: 'both', ...base, ...keys, ...role }, /one credential style: static keys .* or a role to assume \(RoleArn\), not both/],
        [{ Name: 'neither', ...base }, /AwsAccount needs credentials/],
        [{ Name: 'half', ...base, AccessKeyID: 'AKIA' }, /needs both AccessKeyID and SecretAccessKey, or neither/],
        [{ Name: 'region', ...base, ...role, DefaultRegion: 'mars-north-1' }, /DefaultRegion has invalid value "mars-north-1": must be one of us-east-1/],
        [{ Name: 'acct-id', ...base, ...role, AccountID: '12' }, /AccountID must be a 12-digit AWS account ID, got "12"/],
        [{ Name: 'arn', ...base, RoleArn: 'role/x' }, /RoleArn must be an IAM role ARN/],
      ];
      for (const [body, message] of cases) {
        const res = await call(api, 'POST', '/v0/aws-accounts', body);
        assert.equal(res.status, 400, res.text);
        assert.match(res.body.Status.error, message);
      }
      const first = await call(api, 'POST', '/v0/aws-accounts', { Name: 'default-1', ...base, ...role, DefaultAccount: true });
      assert.equal(first.status, 201, first.text);
      const second = await call(api, 'POST', '/v0/aws-accounts', { Name: 'default-2', ...base, ...keys, DefaultAccount: true });
      assert.equal(second.status, 409);
      assert.equal(second.body.Status.error, 'another AwsAccount already has DefaultAccount set to true; only one may');
      const notDefault = await call(api, 'POST', '/v0/aws-accounts', { Name: 'other', ...base, ...keys, DefaultAccount: false });
      assert.equal(notDefault.status, 201);
      const flip = await call(api, 'PATCH', `/v0/aws-accounts/${notDefault.body.Data![0]!['ID']}`, { DefaultAccount: true });
      assert.equal(flip.status, 409);
    });

    test('SecretDefinition.Data is not stored on the row, only encrypted in the reconcile request', async () => {
      const res = await call(api, 'POST', '/v0/secret-definitions', { Name: 'db-creds', Data: { password: 'hunter2' } });
      assert.equal(res.status, 201, res.text);
      const obj = res.body.Data![0]!;
      assert.equal(obj['Data'], undefined);
      const q = await api.server.db.query('SELECT payload FROM threeport_reconcile_queue WHERE object_id = $1', [obj['ID']]);
      const payload = (q.rows[0] as { payload: { Data: Record<string, string> } }).payload;
      assert.notEqual(payload.Data['password'], 'hunter2');
      assert.equal(api.server.store.decrypt(payload.Data['password']!), 'hunter2');
      const bad = await call(api, 'POST', '/v0/secret-definitions', { Name: 'x', Data: { n: 1 } });
      assert.match(bad.body.Status.error, /Data\.n must be a string, got number/);
    });

    test('SecretInstance: exactly one workload, which exists and runs on its runtime; otherwise 400 and nothing written', async () => {
      const sd = (await call(api, 'POST', '/v0/secret-definitions', { Name: 'si-creds', Data: { k: 'v' } })).body.Data![0]!;
      const wd = await createDefinition('si-wd');
      const wi = (await call(api, 'POST', '/v0/workload-instances', { Name: 'si-wi', WorkloadDefinitionID: wd.ID, KubernetesRuntimeInstanceID: runtimeId })).body.Data![0]!;
      const krd = (await call(api, 'POST', '/v0/kubernetes-runtime-definitions', { Name: 'si-krd', InfraProvider: 'kind' })).body.Data![0]!;
      const other = (await call(api, 'POST', '/v0/kubernetes-runtime-instances', { Name: 'si-other', Location: 'Local', KubernetesRuntimeDefinitionID: krd['ID'], Reconciled: true })).body.Data![0]!;
      const base = { Name: 'si', SecretDefinitionID: sd['ID'], KubernetesRuntimeInstanceID: runtimeId };
      const before = await rowCount('v0_secret_instances');
      for (const [body, error] of [
        [base, /^SecretInstance needs exactly one of WorkloadInstanceID and HelmWorkloadInstanceID/],
        [{ ...base, WorkloadInstanceID: wi['ID'], HelmWorkloadInstanceID: wi['ID'] }, /^SecretInstance needs exactly one of/],
        [{ ...base, WorkloadInstanceID: 987654 }, /^SecretInstance\.WorkloadInstanceID refers to WorkloadInstance 987654, which does not exist$/],
        [{ ...base, HelmWorkloadInstanceID: 987654 }, /^SecretInstance\.HelmWorkloadInstanceID refers to HelmWorkloadInstance 987654, which does not exist$/],
        [{ ...base, KubernetesRuntimeInstanceID: other['ID'], WorkloadInstanceID: wi['ID'] }, /^SecretInstance\.KubernetesRuntimeInstanceID is \d+, but WorkloadInstance \d+ runs on KubernetesRuntimeInstance \d+$/],
      ] as const) {
        const res = await call(api, 'POST', '/v0/secret-instances', body);
        assert.equal(res.status, 400, res.text);
        assert.match(res.body.Status.error, error);
      }
      assert.equal(await rowCount('v0_secret_instances'), before);
      const ok = await call(api, 'POST', '/v0/secret-instances', { ...base, WorkloadInstanceID: wi['ID'] });
      assert.equal(ok.status, 201, ok.text);
    });

    test('workload-resource-definition-sets are created atomically', async () => {
      const def = await createDefinition('wrd-def');
      const set = await call(api, 'POST', '/v0/workload-resource-definition-sets', [
        { JSONDefinition: { kind: 'ConfigMap' }, WorkloadDefinitionID: def.ID },
        { JSONDefinition: { kind: 'Service' }, WorkloadDefinitionID: def.ID },
      ]);
      assert.equal(set.status, 201, set.text);
      assert.equal(set.body.Data!.length, 2);
      const bad = await call(api, 'POST', '/v0/workload-resource-definition-sets', [
        { JSONDefinition: { kind: 'Secret' }, WorkloadDefinitionID: def.ID },
        { JSONDefinition: { kind: 'Pod' } },
      ]);
      assert.equal(bad.status, 400);
      assert.match(bad.body.Status.error, /item 1: Missing required field\(s\) : WorkloadDefinitionID/);
      const listed = await call(api, 'GET', `/v0/workload-resource-definitions?workloaddefinitionid=${def.ID}`);
      assert.equal(listed.body.Meta.TotalCount, 2);
      const notArray = await call(api, 'POST', '/v0/workload-resource-definition-sets', { JSONDefinition: {} });
      assert.equal(notArray.status, 400);
    });

    test('workload events: bulk delete by instance; events joined with attached references', async () => {
      for (let i = 0; i < 3; i++) {
        const ev = await call(api, 'POST', '/v0/workload-events', {
          RuntimeEventUID: `uid-${i}`,
          Timestamp: '2024-01-02T03:04:05Z',
          WorkloadInstanceID: 4242,
        });
        assert.equal(ev.status, 201, ev.text);
      }
      const noKey = await call(api, 'DELETE', '/v0/workload-events');
      assert.equal(noKey.status, 400);
      const both = await call(api, 'DELETE', '/v0/workload-events?workloadinstanceid=1&helmworkloadinstanceid=2');
      assert.equal(both.status, 400);
      const del = await call(api, 'DELETE', '/v0/workload-events?workloadinstanceid=4242');
      assert.equal(del.status, 200);
      assert.equal(del.body.Meta.TotalCount, 3);
      assert.equal((await call(api, 'GET', '/v0/workload-events?workloadinstanceid=4242')).body.Meta.TotalCount, 0);

      const event = await call(api, 'POST', '/v0/events', { Reason: 'SuccessfulCreated', Note: 'ok', Type: 'Normal' });
      const eventId = event.body.Data![0]!['ID'];
      const ref = await call(api, 'POST', '/v0/attached-object-references', {
        ObjectType: 'v0.WorkloadInstance',
        ObjectID: 777,
        AttachedObjectType: 'v0.Event',
        AttachedObjectID: eventId,
      });
      assert.equal(ref.status, 201, ref.text);
      const dupRef = await call(api, 'POST', '/v0/attached-object-references', {
        ObjectType: 'v0.WorkloadInstance',
        ObjectID: 777,
        AttachedObjectType: 'v0.Event',
        AttachedObjectID: eventId,
      });
      assert.equal(dupRef.status, 409);
      const joined = await call(api, 'GET', '/v0/events-join-attached-object-references?objectid=777&reason=SuccessfulCreated');
      assert.equal(joined.status, 200);
      assert.deepEqual(joined.body.Data!.map((e) => e['ID']), [eventId]);
      const other = await call(api, 'GET', '/v0/events-join-attached-object-references?objectid=777&reason=Nope');
      assert.equal(other.body.Meta.TotalCount, 0);
      assert.equal((await call(api, 'GET', '/v0/events-join-attached-object-references')).status, 400);
    });

    test('unknown routes get a 404 envelope', async () => {
      const res = await call(api, 'GET', '/v0/no-such-things');
      assert.equal(res.status, 404);
      assert.equal(res.body.Status.code, 404);
    });
  });
}
