// The Terraform controller against real peers: PostgreSQL (store and reconcile queue), the real
// OpenTofu binary (scripts/tofu/build-tofu.sh), and moto for the S3 state backend. The
// configuration is upstream's sample shape with `terraform_data` resources (no provider can be had
// here). Checked: outputs reach the instance; changed variables and a changed configuration apply;
// delete destroys from the state and removes it; local state lives on the instance; a config that
// does not parse and missing or invalid variables give Status Error with tofu's message and no
// secret; a missing tofu fails loudly naming the build command.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { startFaultProxy, startMoto, SKIP_AWS, type MotoServer } from '../harness/moto.js';
import { Settlements, eventsOf, eventually, startEnv, startRuntime, type Env } from '../reconcile/helpers.js';
import type { ReconcileRuntime } from '../../src/reconcile/runtime.js';
import type { JsonObject } from '../../src/kinds/validate.js';
import type { Kind } from '../../src/kinds/declare.js';
import { AwsAccount } from '../../src/kinds/aws.js';
import { TerraformDefinition, TerraformInstance } from '../../src/kinds/terraform.js';
import { NotFoundError } from '../../src/errors.js';
import { controllerDeps } from '../../src/controllers/aws/deps.js';
import { TerraformController } from '../../src/controllers/terraform/index.js';
import { AwsProvider } from '../../src/providers/aws/provider.js';
import { TofuLocator, findTofu } from '../../src/providers/terraform/binary.js';
import { TofuNotFoundError } from '../../src/providers/terraform/errors.js';
import { capturingLogger, MOTO_ACCOUNT_ID, motoDefaultAccount, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY } from '../aws/helpers.js';
import { DB_PASSWORD, RESOURCE_NAMES, configDir, readLedger, sampleFiles, sampleVars, stateResources } from '../terraform/sample.js';
import { SKIP_TOFU, tofuPath } from '../terraform/tofu.js';

const skip = SKIP_TOFU ?? SKIP_AWS;
const BUCKET = 'tf-state';

async function create(env: Env, kind: Kind, fields: JsonObject): Promise<JsonObject> {
  return JSON.parse(await env.store.create(kind, fields)) as JsonObject;
}

async function get(env: Env, kind: Kind, id: number): Promise<JsonObject | undefined> {
  try {
    return await env.store.getObject(kind, id);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

describe('Terraform controller: OpenTofu with its state in moto S3', { skip }, () => {
  let moto: MotoServer;
  let env: Env;
  let runtime: ReconcileRuntime;
  let controller: TerraformController;
  let dir: string;
  let accountId: number;
  const logs = capturingLogger();
  const settlements = new Settlements();
  let observer: ReturnType<AwsProvider['session']>;

  before(async () => {
    const tofu = tofuPath();
    moto = await startMoto();
    env = await startEnv();
    dir = mkdtempSync(join(tmpdir(), 'threeport-tf-'));
    controller = new TerraformController({
      aws: controllerDeps({
        logger: logs.log,
        provider: {
          endpoint: moto.url,
          retry: { maxAttempts: 3, baseDelayMs: 5, maxDelayMs: 50 },
          // The controller's own identity, which assumes an account's RoleArn.
          baseCredentials: { accessKeyId: 'AKIABASECONTROLLER01', secretAccessKey: 'base-controller-secret-key' },
        },
      }),
      workRoot: join(dir, 'terraform'),
      logger: logs.log,
      tofuPath: tofu,
      waitPollMs: 200,
    });
    runtime = await startRuntime(env, controller.reconcilers, settlements, { logger: logs.log });
    observer = new AwsProvider({ decrypt: (c) => c, endpoint: moto.url }).session({
      ID: 0,
      Name: 'observer',
      AccessKeyID: 'observer-key',
      SecretAccessKey: 'observer-secret',
      DefaultRegion: 'us-east-1',
    });
    await observer.s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const account = await create(env, AwsAccount, motoDefaultAccount());
    accountId = Number(account['ID']);
  });

  after(async () => {
    await runtime?.stop().catch(() => undefined);
    await env?.close();
    await moto?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function reconciled(id: number, what: string, timeoutMs = 120_000): Promise<JsonObject> {
    return eventually(
      async () => {
        const o = await get(env, TerraformInstance, id);
        return o?.['Reconciled'] === true ? o : undefined;
      },
      what,
      timeoutMs,
    );
  }

  /** Like eventually, but a timeout shows the instance's events and its queue row. */
  async function settle<T>(id: number, check: () => Promise<T | undefined>, what: string): Promise<T> {
    try {
      return await eventually(check, what, 120_000);
    } catch (err) {
      const row = await env.db.query(`SELECT * FROM threeport_reconcile_queue WHERE object_id = $1`, [id]);
      throw new Error(`${(err as Error).message}\nevents:\n${(await notes(id)).join('\n')}\nqueue: ${JSON.stringify(row.rows)}\nsettlements: ${JSON.stringify(settlements.of(id).slice(-5))}`);
    }
  }

  async function notes(id: number): Promise<string[]> {
    return (await eventsOf(env.db, TerraformInstance.name, id)).map((e) => `${String(e['Reason'])}: ${String(e['Note'])}`);
  }

  function assertNoSecret(texts: string[], secrets: string[]): void {
    for (const t of texts) for (const s of secrets) assert.ok(!t.includes(s), `a secret leaked: ${t}`);
  }

  async function s3State(key: string): Promise<string | undefined> {
    try {
      const out = await observer.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
      return await out.Body!.transformToString();
    } catch (err) {
      if ((err as { httpStatus?: number }).httpStatus === 404 || /NoSuchKey|not found/i.test(String((err as Error).message))) return undefined;
      throw err;
    }
  }

  let sampleId: number;
  let defId: number;
  const ledger = () => join(dir, 'ledger-s3.txt');
  const key = 'rds-instance/terraform.tfstate';

  test('the sample applies through the API; outputs and state reach the instance and moto S3', async () => {
    const files = sampleFiles({ motoUrl: moto.url, bucket: BUCKET, key, ledger: ledger() });
    const def = await create(env, TerraformDefinition, { Name: 'rds-instance', ConfigDir: configDir(files) });
    defId = Number(def['ID']);
    const inst = await create(env, TerraformInstance, {
      Name: 'rds-instance-01',
      AwsAccountID: accountId,
      TerraformDefinitionID: defId,
      VarsDocument: sampleVars(),
    });
    sampleId = Number(inst['ID']);
    const done = await reconciled(sampleId, 'the sample to be applied');
    assert.equal(done['Status'], 'Applied');
    const outputs = JSON.parse(env.store.decrypt(String(done['Outputs']))) as Record<string, { value: unknown; sensitive: boolean }>;
    assert.equal(outputs['rds_port']?.value, 3306);
    assert.equal(outputs['rds_username']?.value, 'wordpress_user');
    assert.equal(outputs['rds_password']?.sensitive, true);
    assert.equal(outputs['rds_password']?.value, DB_PASSWORD);
    const stored = env.store.decrypt(String(done['StateDocument']));
    const resources = stateResources(stored);
    assert.deepEqual(Object.keys(resources).sort(), [...RESOURCE_NAMES].sort());
    assert.match(String(outputs['rds_hostname']?.value), new RegExp(`^${resources['db_instance']}\\.`));
    // The backend holds the same state (the instance has a snapshot of it).
    const remote = await s3State(key);
    assert.ok(remote, 'the state object exists in moto S3');
    assert.deepEqual(stateResources(remote), resources);
    // Each resource was created exactly once.
    const creates = readLedger(ledger()).filter((e) => e.op === 'create');
    assert.deepEqual(creates.map((e) => `${e.name} ${e.id}`).sort(), RESOURCE_NAMES.map((n) => `${n} ${resources[n]}`).sort());
    const evs = await notes(sampleId);
    assert.ok(evs.some((n) => /^TerraformApplied: Apply complete! Resources: 4 added, 0 changed, 0 destroyed/.test(n)), evs.join('\n'));
    assertNoSecret([...evs, ...logs.lines], [DB_PASSWORD, TEST_SECRET_ACCESS_KEY, TEST_ACCESS_KEY_ID]);
    // The run's workspace (with its variables file) is gone.
    assert.deepEqual(readdirSync(controller.runner.runsDir), []);
  });

  test('changed variables apply the change', async () => {
    // As tptctl and API clients do: a change with Reconciled: false queues the controller.
    await env.store.patch(TerraformInstance, sampleId, { VarsDocument: sampleVars(5432), Reconciled: false });
    const done = await settle(
      sampleId,
      async () => {
        const o = await get(env, TerraformInstance, sampleId);
        if (o?.['Reconciled'] !== true) return undefined;
        const outputs = JSON.parse(env.store.decrypt(String(o['Outputs']))) as Record<string, { value: unknown }>;
        return outputs['rds_port']?.value === 5432 ? o : undefined;
      },
      'the new port to be applied',
    );
    assert.equal(done['Status'], 'Applied');
    // terraform_data updates its input in place: nothing was created again.
    assert.equal(readLedger(ledger()).filter((e) => e.op === 'create').length, 4);
    const evs = await notes(sampleId);
    assert.ok(evs.some((n) => /^TerraformApplied: Apply complete! Resources: 0 added, 2 changed, 0 destroyed/.test(n)), evs.join('\n'));
  });

  test('a changed configuration applies to its instances', async () => {
    const files = sampleFiles({ motoUrl: moto.url, bucket: BUCKET, key, ledger: ledger() });
    files['outputs.tf'] += '\noutput "rds_endpoint" {\n  value = "wordpress-db.local:${var.db_port}"\n}\n';
    await env.store.patch(TerraformDefinition, defId, { ConfigDir: configDir(files), Reconciled: false });
    await eventually(
      async () => {
        const o = await get(env, TerraformInstance, sampleId);
        if (o?.['Reconciled'] !== true || !o['Outputs']) return undefined;
        const outputs = JSON.parse(env.store.decrypt(String(o['Outputs']))) as Record<string, { value: unknown }>;
        return outputs['rds_endpoint']?.value === 'wordpress-db.local:5432' ? o : undefined;
      },
      'the new output to reach the instance',
      120_000,
    );
  });

  test('delete runs destroy from the state and removes the state from S3', async () => {
    const before = stateResources(await s3State(key));
    await env.store.delete(TerraformInstance, sampleId);
    await eventually(async () => ((await get(env, TerraformInstance, sampleId)) ? undefined : true), 'the instance to be deleted', 120_000);
    const destroys = readLedger(ledger()).filter((e) => e.op === 'destroy');
    assert.deepEqual(destroys.map((e) => `${e.name} ${e.id}`).sort(), RESOURCE_NAMES.map((n) => `${n} ${before[n]}`).sort());
    assert.equal(await s3State(key), undefined, 'the state object is gone');
    await assert.rejects(observer.s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `${key}.tflock` })));
    const evs = await notes(sampleId);
    assert.ok(evs.some((n) => /^TerraformDestroyed: Destroy complete! Resources: 4 destroyed\. The state object s3:\/\/tf-state\/rds-instance\/terraform\.tfstate was removed\./.test(n)), evs.join('\n'));
  });

  test('a failing backend is retried with backoff, with events the user reads', async () => {
    // moto behind a proxy that answers the first S3 requests with 503 Service Unavailable.
    const proxy = await startFaultProxy(moto.url, { fault: 'unavailable', fraction: 1, maxFaults: 6 });
    try {
      const files = sampleFiles({ motoUrl: proxy.url, bucket: BUCKET, key: 'flaky/terraform.tfstate', ledger: join(dir, 'ledger-flaky.txt') });
      files['main.tf'] = files['main.tf']!.replace('use_lockfile                = true', 'use_lockfile                = true\n    max_retries                 = 1');
      const def = await create(env, TerraformDefinition, { Name: 'flaky', ConfigDir: configDir(files) });
      const inst = await create(env, TerraformInstance, { Name: 'flaky-01', AwsAccountID: accountId, TerraformDefinitionID: Number(def['ID']), VarsDocument: sampleVars() });
      const id = Number(inst['ID']);
      const done = await reconciled(id, 'the flaky backend to let the run through');
      assert.equal(done['Status'], 'Applied');
      assert.notEqual(done['CreationFailed'], true);
      assert.ok(proxy.stats.injected.unavailable >= 2, `faults injected: ${proxy.stats.injected.unavailable}`);
      const outcomes = settlements.of(id).map((x) => x.outcome);
      assert.ok(outcomes.includes('failed') && !outcomes.includes('terminal'), outcomes.join(','));
      const evs = await notes(id);
      assert.ok(evs.some((n) => /^FailedCreate: .*tofu init failed: .*StatusCode: 503/.test(n)), evs.join('\n'));
      await env.store.delete(TerraformInstance, id);
      await eventually(async () => ((await get(env, TerraformInstance, id)) ? undefined : true), 'the flaky instance to be deleted', 120_000);
    } finally {
      await proxy.close();
    }
  });

  test('without a backend the state is stored on the instance, and destroy works from it', async () => {
    const local = join(dir, 'ledger-local.txt');
    const files = sampleFiles({ motoUrl: moto.url, bucket: BUCKET, key: 'unused', ledger: local, backend: 'local' });
    const def = await create(env, TerraformDefinition, { Name: 'rds-local', ConfigDir: configDir(files) });
    const inst = await create(env, TerraformInstance, {
      Name: 'rds-local-01',
      AwsAccountID: accountId,
      TerraformDefinitionID: Number(def['ID']),
      VarsDocument: sampleVars(),
    });
    const id = Number(inst['ID']);
    const done = await reconciled(id, 'the local-state sample to be applied');
    const resources = stateResources(env.store.decrypt(String(done['StateDocument'])));
    assert.deepEqual(Object.keys(resources).sort(), [...RESOURCE_NAMES].sort());
    assert.equal(await s3State('unused'), undefined);
    // A resync (Updated with nothing changed) plans from the stored state: no changes, nothing created.
    await env.store.patch(TerraformInstance, id, { Reconciled: false });
    await reconciled(id, 'the no-op update');
    assert.equal(readLedger(local).filter((e) => e.op === 'create').length, 4);
    await env.store.delete(TerraformInstance, id);
    await eventually(async () => ((await get(env, TerraformInstance, id)) ? undefined : true), 'the local instance to be deleted', 120_000);
    assert.deepEqual(
      readLedger(local)
        .filter((e) => e.op === 'destroy')
        .map((e) => `${e.name} ${e.id}`)
        .sort(),
      RESOURCE_NAMES.map((n) => `${n} ${resources[n]}`).sort(),
    );
    assert.deepEqual(readdirSync(controller.runner.runsDir), []);
  });

  test("an account with a RoleArn hands tofu the assumed role's session, not the controller's keys", async () => {
    const role = await create(env, AwsAccount, {
      Name: 'role-account',
      AccountID: MOTO_ACCOUNT_ID,
      DefaultRegion: 'us-east-1',
      RoleArn: `arn:aws:iam::${MOTO_ACCOUNT_ID}:role/threeport-terraform`,
    });
    const seen = join(dir, 'credentials-seen.txt');
    const def = await create(env, TerraformDefinition, {
      Name: 'who',
      ConfigDir: `resource "terraform_data" "who" {\n  provisioner "local-exec" {\n    command = "printf '%s %s %s' \\"$\${AWS_ACCESS_KEY_ID}\\" \\"$\${AWS_SESSION_TOKEN:+session-token}\\" \\"$\${AWS_REGION}\\" > ${seen}"\n  }\n}\n`,
    });
    const inst = await create(env, TerraformInstance, { Name: 'who-01', AwsAccountID: Number(role['ID']), TerraformDefinitionID: Number(def['ID']) });
    const id = Number(inst['ID']);
    await settle(id, async () => ((await get(env, TerraformInstance, id))?.['Reconciled'] === true ? true : undefined), 'the role account run');
    const [keyId, token, region] = readFileSync(seen, 'utf8').split(' ');
    assert.match(keyId!, /^ASIA/, 'moto issues session keys for AssumeRole');
    assert.equal(token, 'session-token');
    assert.equal(region, 'us-east-1');
    assertNoSecret([...(await notes(id)), ...logs.lines], [keyId!, 'base-controller-secret-key']);
  });

  async function failed(id: number, what: string): Promise<{ obj: JsonObject; events: string[] }> {
    const obj = await eventually(
      async () => {
        const o = await get(env, TerraformInstance, id);
        return o?.['CreationFailed'] === true ? o : undefined;
      },
      what,
      120_000,
    );
    return { obj, events: await notes(id) };
  }

  test('a configuration that does not parse gives Status Error with tofu\'s message', async () => {
    const def = await create(env, TerraformDefinition, {
      Name: 'broken',
      ConfigDir: 'resource "terraform_data" "x" {\n  input = "ok"\n\nresource "terraform_data" "y" {\n',
    });
    const inst = await create(env, TerraformInstance, { Name: 'broken-01', AwsAccountID: accountId, TerraformDefinitionID: Number(def['ID']) });
    const { obj, events } = await failed(Number(inst['ID']), 'the broken config to fail');
    assert.equal(obj['Status'], 'Error');
    const failure = events.find((n) => n.startsWith('FailedCreate: '));
    assert.ok(failure, events.join('\n'));
    assert.match(failure, /TerraformInstance "broken-01" \(ID \d+\): tofu init failed: Error: Unclosed configuration block/);
    assert.match(failure, /on main\.tf line 4, in resource "terraform_data" "x"/);
    assert.ok(!failure.includes(dir), 'the workspace path is not shown');
  });

  test('missing and invalid variables give Status Error naming them, and no value leaks', async () => {
    const token = 'tok-live-8e1b52d0c4-secret';
    const config =
      configDir(sampleFiles({ motoUrl: moto.url, bucket: BUCKET, key: 'vars', ledger: join(dir, 'ledger-vars.txt'), backend: 'local' })) +
      '\nvariable "api_token" {\n  type = string\n  validation {\n    condition     = length(var.api_token) > 64\n    error_message = "The api_token must be longer than 64 characters."\n  }\n}\n';
    const def = await create(env, TerraformDefinition, { Name: 'vars', ConfigDir: config });
    // db_port is missing.
    const missing = sampleVars().split('\n').filter((l) => !l.startsWith('db_port')).join('\n') + `api_token = "${token}"\n`;
    const a = await create(env, TerraformInstance, { Name: 'vars-missing', AwsAccountID: accountId, TerraformDefinitionID: Number(def['ID']), VarsDocument: missing });
    const m = await failed(Number(a['ID']), 'the missing variable to fail');
    assert.equal(m.obj['Status'], 'Error');
    const mf = m.events.find((n) => n.startsWith('FailedCreate: '))!;
    assert.match(mf, /tofu plan failed: Error: No value for required variable .*"db_port"/);
    // api_token is too short: tofu quotes the offending line of the variables file.
    const b = await create(env, TerraformInstance, {
      Name: 'vars-invalid',
      AwsAccountID: accountId,
      TerraformDefinitionID: Number(def['ID']),
      VarsDocument: `${sampleVars()}api_token = "${token}"\n`,
    });
    const v = await failed(Number(b['ID']), 'the invalid variable to fail');
    const vf = v.events.find((n) => n.startsWith('FailedCreate: '))!;
    assert.match(vf, /Error: Invalid value for variable/);
    assert.match(vf, /The api_token must be longer than 64 characters\./);
    assertNoSecret([...m.events, ...v.events, ...logs.lines], [token, DB_PASSWORD, TEST_SECRET_ACCESS_KEY]);
    // The failure is terminal: parked until the object changes, no retry storm.
    const runs = settlements.of(Number(b['ID'])).length;
    await new Promise((r) => setTimeout(r, 1_000));
    assert.equal(settlements.of(Number(b['ID'])).length, runs);
  });

  test('a missing tofu fails loudly, naming the build command', () => {
    assert.throws(() => findTofu({ explicit: join(dir, 'no-such-tofu') }), (err: unknown) => {
      assert.ok(err instanceof TofuNotFoundError);
      assert.match(err.message, /no-such-tofu \(from --tofu or THREEPORT_TOFU\) is not an executable file\. Build it with: {2}bash \/.*scripts\/tofu\/build-tofu\.sh/);
      return true;
    });
    // Nothing in the cache, nothing on PATH, building on first use turned off.
    const locator = new TofuLocator({ autoBuild: false, env: { THREEPORT_CACHE_DIR: join(dir, 'empty-cache'), PATH: '/nonexistent' } });
    assert.throws(() => locator.resolve(), /OpenTofu \(tofu\) is not installed: looked in .*empty-cache\/tofu\/v1\.12\.6\/bin\/tofu, tofu on PATH\. Build it once per machine with: {2}bash \/.*scripts\/tofu\/build-tofu\.sh/);
  });
});
