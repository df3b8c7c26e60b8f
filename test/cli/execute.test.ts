// Unit tests of the create/apply operation list's error paths, against an
// in-memory stand-in for the API (the end-to-end suite covers the real one).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { ThreeportClient } from '../../src/client/api-client.js';
import { ObjectConflictError, ObjectNotFoundError } from '../../src/client/errors.js';
import type { AnyObject } from '../../src/client/types.js';
import { FieldCipher } from '../../src/crypto/field-encryption.js';
import type { Kind } from '../../src/kinds/declare.js';
import { deleteObjects, execute } from '../../src/cli/object-config/execute.js';
import { FORMAT_BY_KIND } from '../../src/cli/object-config/formats.js';
import { parseConfigs, planConfigs } from '../../src/cli/object-commands.js';
import { Output } from '../../src/cli/output.js';

const dir = mkdtempSync(join(tmpdir(), 'tptctl-exec-'));
after(() => rmSync(dir, { recursive: true, force: true }));

class FakeApi {
  readonly rows = new Map<string, AnyObject[]>();
  readonly calls: string[] = [];
  nextId = 1;
  failCreate?: (kind: Kind, body: Record<string, unknown>) => Error | undefined;
  failPatch?: (kind: Kind) => Error | undefined;

  table(kind: Kind): AnyObject[] {
    if (!this.rows.has(kind.name)) this.rows.set(kind.name, []);
    return this.rows.get(kind.name)!;
  }
  seed(kind: Kind, fields: Record<string, unknown>): AnyObject {
    const row = { ID: this.nextId++, CreatedAt: new Date().toISOString(), UpdatedAt: new Date().toISOString(), ...fields } as AnyObject;
    this.table(kind).push(row);
    return row;
  }
  async findByName(kind: Kind, name: string) {
    return this.table(kind).find((r) => r['Name'] === name);
  }
  async listAll(kind: Kind, filter: Record<string, unknown> = {}) {
    return this.table(kind).filter((r) => Object.entries(filter).every(([k, v]) => r[k] === v));
  }
  async create(kind: Kind, body: Record<string, unknown>) {
    this.calls.push(`create ${kind.name} ${String(body['Name'])}`);
    const err = this.failCreate?.(kind, body);
    if (err) throw err;
    return this.seed(kind, body);
  }
  async patch(kind: Kind, id: number, body: Record<string, unknown>) {
    this.calls.push(`patch ${kind.name} ${id} ${Object.keys(body).join(',')}`);
    const err = this.failPatch?.(kind);
    if (err) throw err;
    const row = this.table(kind).find((r) => r.ID === id)!;
    Object.assign(row, body);
    return row;
  }
  async get(kind: Kind, id: number) {
    const row = this.table(kind).find((r) => r.ID === id);
    if (!row) throw new ObjectNotFoundError('record not found', 404);
    return row;
  }
  async delete(kind: Kind, id: number) {
    this.calls.push(`delete ${kind.name} ${id}`);
    const rows = this.table(kind);
    const i = rows.findIndex((r) => r.ID === id);
    if (i < 0) throw new ObjectNotFoundError('record not found', 404);
    const [row] = rows.splice(i, 1);
    return { ...row!, DeletedAt: new Date().toISOString() };
  }
}

const quiet = () => {
  const sink = { text: '', write(s: string) { this.text += s; } };
  return { out: new Output(sink, sink, {}), sink };
};

function planned(name: string, text: string, kind?: string) {
  const path = join(dir, name);
  writeFileSync(path, text);
  return planConfigs(parseConfigs([path], kind ? FORMAT_BY_KIND.get(kind) : undefined), true);
}

writeFileSync(join(dir, 'm.yaml'), 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\n');

const KRI = FORMAT_BY_KIND.get('KubernetesRuntimeInstance')!.kind!;
const WD = FORMAT_BY_KIND.get('WorkloadDefinition')!.kind!;
const WI = FORMAT_BY_KIND.get('WorkloadInstance')!.kind!;

describe('create as a rollback-able operation list', () => {
  it('deletes the definition it created when the instance create fails', async () => {
    const api = new FakeApi();
    api.seed(KRI, { Name: 'rt', DefaultRuntime: true });
    api.failCreate = (kind) => (kind === WI ? new ObjectConflictError('object with provided name already exists', 409) : undefined);
    const objects = planned('w.yaml', 'Workload:\n  Name: wp\n  YAMLDocument: m.yaml\n', 'Workload');
    const { out } = quiet();
    await assert.rejects(
      execute(objects, 'create', { api: api as unknown as ThreeportClient, controlPlane: 'cp', out }),
      (err: Error) =>
        err.message ===
        `${join(dir, 'w.yaml')}:1:1: Workload: creating WorkloadInstance "wp" failed: object with provided name already exists (HTTP 409); rolled back: WorkloadDefinition "wp" deleted`,
    );
    assert.deepEqual(api.calls, ['create WorkloadDefinition wp', 'create WorkloadInstance wp', 'delete WorkloadDefinition 2']);
    assert.equal(api.table(WD).length, 0);
  });

  it('writes nothing when a referenced name does not exist', async () => {
    const api = new FakeApi();
    const objects = planned('w2.yaml', 'Workload:\n  Name: wp\n  YAMLDocument: m.yaml\n  KubernetesRuntimeInstance: {Name: ghost}\n', 'Workload');
    const { out } = quiet();
    await assert.rejects(
      execute(objects, 'create', { api: api as unknown as ThreeportClient, controlPlane: 'cp', out }),
      (err: Error) => err.message === `${join(dir, 'w2.yaml')}:4:37: Workload.KubernetesRuntimeInstance.Name: no KubernetesRuntimeInstance named "ghost" exists on control plane "cp"`,
    );
    assert.deepEqual(api.calls, []);
  });

  it('applies the kind declaration\'s own rules before writing', async () => {
    const api = new FakeApi();
    api.seed(KRI, { Name: 'rt', DefaultRuntime: true });
    writeFileSync(join(dir, 'not-k8s.yaml'), 'just: data\n');
    const objects = planned('w3.yaml', 'Workload:\n  Name: wp\n  YAMLDocument: not-k8s.yaml\n', 'Workload');
    const { out } = quiet();
    await assert.rejects(execute(objects, 'create', { api: api as unknown as ThreeportClient, controlPlane: 'cp', out }), /w3\.yaml:1:1: Workload: WorkloadDefinition "wp": YAMLDocument document 1 is not a Kubernetes object/);
    assert.deepEqual(api.calls, []);
  });
});

describe('apply', () => {
  it('patches only changed fields, compares encrypted fields decrypted, and restores them when a later step fails', async () => {
    const api = new FakeApi();
    const key = FieldCipher.generateKey();
    const cipher = new FieldCipher(key);
    api.seed(FORMAT_BY_KIND.get('AwsAccount')!.kind!, {
      Name: 'acct',
      AccountID: '123456789012',
      DefaultAccount: false,
      DefaultRegion: 'us-east-1',
      AccessKeyID: cipher.encrypt('AKIA1'),
      SecretAccessKey: cipher.encrypt('secret1'),
    });
    api.seed(KRI, { Name: 'rt', DefaultRuntime: true });
    const objects = planned(
      'apply.yaml',
      'AwsAccount:\n  Name: acct\n  AccountID: "123456789012"\n  DefaultRegion: us-west-2\n  AccessKeyID: AKIA1\n  SecretAccessKey: secret1\n---\nWorkload:\n  Name: wp\n  YAMLDocument: m.yaml\n',
    );
    api.failCreate = (kind) => (kind === WI ? new Error('boom') : undefined);
    const { out } = quiet();
    await assert.rejects(execute(objects, 'apply', { api: api as unknown as ThreeportClient, controlPlane: 'cp', out, cipher }), /creating WorkloadInstance "wp" failed: boom; rolled back: WorkloadDefinition "wp" deleted, AwsAccount "acct" restored$/);
    assert.deepEqual(api.calls, ['patch AwsAccount 1 DefaultRegion', 'create WorkloadDefinition wp', 'create WorkloadInstance wp', 'delete WorkloadDefinition 3', 'patch AwsAccount 1 DefaultRegion']);
    assert.equal((await api.findByName(FORMAT_BY_KIND.get('AwsAccount')!.kind!, 'acct'))!['DefaultRegion'], 'us-east-1');
  });

  it('points an existing instance at a definition the same apply creates', async () => {
    const api = new FakeApi();
    api.seed(KRI, { Name: 'rt', DefaultRuntime: true });
    const old = api.seed(WD, { Name: 'v1', YAMLDocument: 'x' });
    api.seed(WI, { Name: 'app', WorkloadDefinitionID: old.ID, KubernetesRuntimeInstanceID: 1 });
    const objects = planned(
      'repoint.yaml',
      'WorkloadDefinition:\n  Name: v2\n  YAMLDocument: m.yaml\n---\nWorkloadInstance:\n  Name: app\n  WorkloadDefinition: {Name: v2}\n  KubernetesRuntimeInstance: {Name: rt}\n',
    );
    const { out, sink } = quiet();
    await execute(objects, 'apply', { api: api as unknown as ThreeportClient, controlPlane: 'cp', out });
    const v2 = (await api.findByName(WD, 'v2'))!;
    assert.equal((await api.findByName(WI, 'app'))!['WorkloadDefinitionID'], v2.ID);
    assert.match(sink.text, /WorkloadDefinition "v2" created\nWorkloadInstance "app" updated \(WorkloadDefinitionID\)\n/);
  });

  it('refuses to change an immutable field before writing anything', async () => {
    const api = new FakeApi();
    const krd = FORMAT_BY_KIND.get('KubernetesRuntimeDefinition')!.kind!;
    api.seed(krd, { Name: 'rt', InfraProvider: 'kind' });
    api.seed(KRI, { Name: 'rt', Location: 'Local', KubernetesRuntimeDefinitionID: 1 });
    const objects = planned('loc.yaml', 'KubernetesRuntimeInstance:\n  Name: rt\n  Location: Europe:Paris\n  KubernetesRuntimeDefinition: {Name: rt}\n', 'KubernetesRuntimeInstance');
    const { out } = quiet();
    await assert.rejects(
      execute(objects, 'apply', { api: api as unknown as ThreeportClient, controlPlane: 'cp', out }),
      /loc\.yaml:3:13: KubernetesRuntimeInstance\.Location: KubernetesRuntimeInstance "rt" has Location "Local", which cannot be changed once set \(the config asks for "Europe:Paris"\)$/,
    );
    assert.deepEqual(api.calls, []);
  });
});

describe('delete', () => {
  it('deletes dependents first and skips what is missing', async () => {
    const api = new FakeApi();
    api.seed(WD, { Name: 'wp' });
    const { out, sink } = quiet();
    await deleteObjects(
      [
        { kind: WI, name: 'wp' },
        { kind: WD, name: 'wp' },
      ],
      { api: api as unknown as ThreeportClient, controlPlane: 'cp', out },
      { wait: true, timeoutMs: 1000 },
    );
    assert.match(sink.text, /Warning: WorkloadInstance "wp" not found; skipped\nWorkloadDefinition "wp" deleted\n/);
    await assert.rejects(
      deleteObjects([{ kind: WD, name: 'wp' }], { api: api as unknown as ThreeportClient, controlPlane: 'cp', out }, { wait: true, timeoutMs: 1000 }),
      /nothing to delete: WorkloadDefinition "wp" does not exist on control plane "cp"/,
    );
  });
});
