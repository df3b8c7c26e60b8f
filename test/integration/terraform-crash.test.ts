// The sample through tptctl and a real `threeport server` process, killed with SIGKILL in the
// middle of `tofu apply` and started again on the same data directory: the run resumes from the
// state the interrupted tofu wrote (to moto's S3 backend, or, without a backend, to the workspace it
// left behind), every resource exists exactly once, and `tptctl delete terraform` destroys each of
// them once and removes the state.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { startMoto, SKIP_AWS, type MotoServer } from '../harness/moto.js';
import { spawnServer, type ServerProcess } from '../harness/server-process.js';
import { TptctlHome } from '../e2e/tptctl-harness.js';
import { FieldCipher } from '../../src/crypto/field-encryption.js';
import { AwsProvider } from '../../src/providers/aws/provider.js';
import { leftovers } from '../../src/providers/terraform/workspace.js';
import { MOTO_ACCOUNT_ID, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY } from '../aws/helpers.js';
import { DB_PASSWORD, RESOURCE_NAMES, readLedger, stateResources, writeSample } from '../terraform/sample.js';
import { SKIP_TOFU, tofuPath } from '../terraform/tofu.js';

const skip = SKIP_TOFU ?? SKIP_AWS;
const BUCKET = 'tf-crash-state';

type Obj = Record<string, unknown>;

async function until<T>(check: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('Terraform: tptctl, and a server killed mid-apply resumes without duplicates', { skip }, () => {
  let moto: MotoServer;
  let tofu: string;
  const t = new TptctlHome();
  const servers: ServerProcess[] = [];

  before(async () => {
    tofu = tofuPath();
    moto = await startMoto();
    const observer = new AwsProvider({ decrypt: (c) => c, endpoint: moto.url }).session({ ID: 0, Name: 'o', AccessKeyID: 'observer-key', SecretAccessKey: 'observer-secret', DefaultRegion: 'us-east-1' });
    await observer.s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  });

  after(async () => {
    for (const s of servers) await s.kill('SIGKILL').catch(() => undefined);
    await t.cleanup();
    await moto?.stop();
  });

  for (const backend of ['s3', 'local'] as const) {
    test(`backend ${backend}`, async () => {
      const dir = mkdtempSync(join(tmpdir(), `threeport-tf-crash-${backend}-`));
      const dataDir = join(dir, 'server');
      const ledger = join(dir, 'ledger.txt');
      const marker = join(dir, 'db-instance-started');
      const key = `crash-${backend}/terraform.tfstate`;
      const start = async (): Promise<ServerProcess> => {
        const s = await spawnServer(
          ['--data-dir', dataDir, '--port', '0', '--no-auth', '--tofu', tofu, '--reconcile-lease', '2s', '--reconcile-poll-interval', '200ms', '--retry-max', '2s'],
          { THREEPORT_AWS_ENDPOINT_URL: moto.url, AWS_EC2_METADATA_DISABLED: 'true' },
        );
        servers.push(s);
        mkdirSync(join(t.home, '.threeport'), { recursive: true });
        writeFileSync(t.configPath, `CurrentControlPlane: tf\nControlPlanes:\n  - Name: tf\n    APIServer: ${s.url}\n    AuthEnabled: false\n`);
        return s;
      };
      const getInstance = async (s: ServerProcess): Promise<Obj | undefined> => {
        const res = await fetch(`${s.url}/v0/terraform-instances?name=rds-instance`);
        const body = (await res.json()) as { Data: Obj[] | null };
        return body.Data?.[0];
      };
      try {
        let server = await start();
        writeSample(dir, { motoUrl: moto.url, bucket: BUCKET, key, ledger, backend, slowSeconds: 8, marker });
        writeFileSync(
          join(dir, 'aws-account.yaml'),
          `AwsAccount:\n  Name: default-account\n  AccountID: "${MOTO_ACCOUNT_ID}"\n  DefaultAccount: true\n  DefaultRegion: us-east-1\n  AccessKeyID: ${TEST_ACCESS_KEY_ID}\n  SecretAccessKey: ${TEST_SECRET_ACCESS_KEY}\n`,
        );
        // Upstream's samples/terraform/rds-terraform.yaml, with the keys upstream's config code reads
        // (pkg/config/v0/terraform.go: ConfigDir, VarsDocument; the sample file's older
        // TerraformConfigDir/TerraformVarsDocument are not read by upstream's tptctl either).
        writeFileSync(
          join(dir, 'rds-terraform.yaml'),
          'Terraform:\n  Name: rds-instance\n  ConfigDir: config\n  VarsDocument: config/terraform.tfvars\n  AwsAccount:\n    Name: default-account\n',
        );
        const acct = await t.run(['create', 'aws-account', '-c', join(dir, 'aws-account.yaml')]);
        assert.equal(acct.code, 0, acct.stderr);
        const created = await t.run(['create', 'terraform', '-c', join(dir, 'rds-terraform.yaml')]);
        assert.equal(created.code, 0, created.stderr);

        // Kill the server while tofu creates the last resource.
        await until(() => (existsSync(marker) ? true : undefined), 'tofu to start creating db_instance');
        const inst = (await getInstance(server))!;
        const id = Number(inst['ID']);
        server.child.kill('SIGKILL');
        await server.exited;
        const orphan = leftovers(join(dataDir, 'terraform', 'runs'), id).find((l) => l.runningPid !== undefined);
        assert.ok(orphan, 'the interrupted tofu outlived the server');
        assert.equal(readLedger(ledger).filter((e) => e.name === 'db_instance').length, 0, 'db_instance was not finished when the server died');

        server = await start();
        const done = await until(async () => {
          const o = await getInstance(server);
          return o?.['Reconciled'] === true && o['Status'] === 'Applied' ? o : undefined;
        }, 'the instance to be applied after the restart');

        const cipher = new FieldCipher(readFileSync(join(dataDir, 'encryption.key'), 'utf8').trim());
        const stored = cipher.decrypt(String(done['StateDocument']));
        const resources = stateResources(stored);
        assert.deepEqual(Object.keys(resources).sort(), [...RESOURCE_NAMES].sort());
        // Each resource was created exactly once, and it is the one in the state.
        const creates = readLedger(ledger).filter((e) => e.op === 'create');
        assert.deepEqual(creates.map((e) => `${e.name} ${e.id}`).sort(), RESOURCE_NAMES.map((n) => `${n} ${resources[n]}`).sort());
        const outputs = JSON.parse(cipher.decrypt(String(done['Outputs']))) as Record<string, { value: unknown }>;
        assert.equal(outputs['rds_password']?.value, DB_PASSWORD);

        const events = await fetch(`${server.url}/v0/events?size=1000`).then((r) => r.text());
        assert.ok(!events.includes(DB_PASSWORD) && !events.includes(TEST_SECRET_ACCESS_KEY));

        const del = await t.run(['delete', 'terraform', '-c', join(dir, 'rds-terraform.yaml')]);
        assert.equal(del.code, 0, del.stderr);
        await until(async () => ((await getInstance(server)) ? undefined : true), 'the instance to be deleted');
        const destroys = readLedger(ledger).filter((e) => e.op === 'destroy');
        assert.deepEqual(destroys.map((e) => `${e.name} ${e.id}`).sort(), RESOURCE_NAMES.map((n) => `${n} ${resources[n]}`).sort());
        if (backend === 's3') {
          const observer = new AwsProvider({ decrypt: (c) => c, endpoint: moto.url }).session({ ID: 0, Name: 'o', AccessKeyID: 'observer-key', SecretAccessKey: 'observer-secret', DefaultRegion: 'us-east-1' });
          await assert.rejects(observer.s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key })), /NoSuchKey|does not exist|not found/i);
        }
        await server.kill('SIGTERM');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
