// Every reconciled kind's responses carry the reconciliation booleans (`Reconciled`,
// `CreationFailed`, `InterruptReconciliation`), however the object was created: upstream's
// tptctl dereferences them without a nil check (`get aws-eks-kubernetes-runtime-instances`
// panicked on an AwsEksKubernetesRuntimeInstance the AWS controller had created through the store).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { KINDS, RECONCILIATION_FIELDS } from '../../src/kinds/index.js';
import { call, startTestApi, type TestApi } from '../harness/api-server.js';

const BOOLEANS = Object.entries(RECONCILIATION_FIELDS)
  .filter(([, s]) => s.type === 'boolean')
  .map(([n]) => n);
const RECONCILED = KINDS.filter((k) => k.hasReconciliation);

describe('reconciliation fields on every reconciled kind', () => {
  let api: TestApi;
  before(async () => {
    api = await startTestApi('postgres');
  });
  after(async () => api?.stop());

  test('the declarations list the kinds this test enumerates', () => {
    assert.ok(BOOLEANS.includes('Reconciled') && BOOLEANS.includes('CreationFailed') && BOOLEANS.includes('InterruptReconciliation'));
    assert.ok(RECONCILED.some((k) => k.name === 'AwsEksKubernetesRuntimeInstance'));
    assert.ok(RECONCILED.length >= 20, `only ${RECONCILED.length} reconciled kinds`);
  });

  for (const kind of RECONCILED) {
    test(`${kind.name} created through the store (as controllers do) answers every reconciliation boolean`, async () => {
      // Controllers write only the fields they know; the store must start from the declared defaults.
      const created = JSON.parse(await api.server.store.create(kind, { Name: `store-${kind.plural}` }, { enqueue: false })) as Record<string, unknown>;
      for (const field of BOOLEANS) assert.equal(typeof created[field], 'boolean', `${kind.name}.${field} in the create's result`);
      const got = await call(api, 'GET', `/v0/${kind.plural}/${created['ID']}`);
      assert.equal(got.status, 200, got.text);
      const object = got.body.Data![0]!;
      for (const field of BOOLEANS) assert.equal(object[field], false, `${kind.name}.${field} over the API: ${got.text}`);
      const listed = await call(api, 'GET', `/v0/${kind.plural}?name=store-${kind.plural}`);
      for (const field of BOOLEANS) assert.equal(listed.body.Data![0]![field], false, `${kind.name}.${field} in a list`);
    });
  }
});
