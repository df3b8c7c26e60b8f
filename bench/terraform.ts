// bench/terraform: apply and destroy times of the sample (upstream's samples/terraform shape, four
// `terraform_data` resources, state in moto's S3 with a lock file) through Threeport (the
// TerraformInstance reconciler on a real reconcile runtime and PostgreSQL: create → Reconciled,
// delete → gone) against the direct `tofu` CLI (`init` + `apply -auto-approve`, then
// `destroy -auto-approve`) in the same run, interleaved, medians.
//
//   node dist/bench/terraform.js [--runs 5]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { startMoto } from '../test/harness/moto.js';
import { Settlements, startEnv, startRuntime } from '../test/reconcile/helpers.js';
import { configDir, sampleFiles, sampleVars } from '../test/terraform/sample.js';
import { AwsAccount } from '../src/kinds/aws.js';
import { TerraformDefinition, TerraformInstance } from '../src/kinds/terraform.js';
import { NotFoundError } from '../src/errors.js';
import { controllerDeps } from '../src/controllers/aws/deps.js';
import { TerraformController } from '../src/controllers/terraform/index.js';
import { AwsProvider } from '../src/providers/aws/provider.js';
import { findTofu } from '../src/providers/terraform/binary.js';
import { median } from './lib/load.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' } } });
const RUNS = Number(values.runs);
const KEY_ID = 'AKIAIOSFODNN7EXAMPLE';
const SECRET = 'bench-secret-access-key-000000000000';

const tofu = findTofu().path;
const version = spawnSync(tofu, ['version'], { encoding: 'utf8', env: { PATH: process.env['PATH'] ?? '' } }).stdout.split('\n').find((l) => l.startsWith('OpenTofu'));
const moto = await startMoto();
const env = await startEnv();
const dir = mkdtempSync(join(tmpdir(), 'threeport-bench-tf-'));
const settlements = new Settlements();
const controller = new TerraformController({
  aws: controllerDeps({ provider: { endpoint: moto.url } }),
  workRoot: join(dir, 'terraform'),
  tofuPath: tofu,
});
const runtime = await startRuntime(env, controller.reconcilers, settlements, { pollIntervalMs: 50 });

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 300_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function tofuRun(cwd: string, args: string[]): void {
  const r = spawnSync(tofu, args, {
    cwd,
    encoding: 'utf8',
    env: {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      HOME: cwd,
      TF_IN_AUTOMATION: '1',
      CHECKPOINT_DISABLE: '1',
      AWS_ACCESS_KEY_ID: KEY_ID,
      AWS_SECRET_ACCESS_KEY: SECRET,
      AWS_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_ENDPOINT_URL: moto.url,
    },
  });
  if (r.status !== 0) throw new Error(`tofu ${args.join(' ')} failed: ${r.stderr}`);
}

try {
  const observer = new AwsProvider({ decrypt: (c) => c, endpoint: moto.url }).session({ ID: 0, Name: 'o', AccessKeyID: 'o-key-000', SecretAccessKey: 'o-secret-000', DefaultRegion: 'us-east-1' });
  await observer.s3.send(new CreateBucketCommand({ Bucket: 'bench-state' }));
  const account = JSON.parse(
    await env.store.create(AwsAccount, { Name: 'bench', AccountID: '123456789012', DefaultRegion: 'us-east-1', AccessKeyID: KEY_ID, SecretAccessKey: SECRET }),
  ) as { ID: number };
  const direct = { apply: [] as number[], destroy: [] as number[] };
  const threeport = { apply: [] as number[], destroy: [] as number[] };
  console.log(`bench/terraform: ${version} (${tofu}), moto 5.2.1, ${RUNS} runs each, interleaved, medians\n`);
  for (let i = 0; i < RUNS; i++) {
    // Direct CLI, in a directory of its own.
    const cli = join(dir, `cli-${i}`);
    const files = sampleFiles({ motoUrl: moto.url, bucket: 'bench-state', key: `cli-${i}.tfstate`, ledger: join(dir, `ledger-cli-${i}`) });
    spawnSync('mkdir', ['-p', cli]);
    for (const [name, text] of Object.entries(files)) writeFileSync(join(cli, name), text);
    writeFileSync(join(cli, 'terraform.tfvars'), sampleVars());
    let t0 = performance.now();
    tofuRun(cli, ['init', '-input=false', '-no-color']);
    tofuRun(cli, ['apply', '-auto-approve', '-input=false', '-no-color']);
    direct.apply.push(performance.now() - t0);
    t0 = performance.now();
    tofuRun(cli, ['destroy', '-auto-approve', '-input=false', '-no-color']);
    direct.destroy.push(performance.now() - t0);

    // Through Threeport.
    const tfFiles = sampleFiles({ motoUrl: moto.url, bucket: 'bench-state', key: `tp-${i}.tfstate`, ledger: join(dir, `ledger-tp-${i}`) });
    const def = JSON.parse(await env.store.create(TerraformDefinition, { Name: `bench-${i}`, ConfigDir: configDir(tfFiles) })) as { ID: number };
    t0 = performance.now();
    const inst = JSON.parse(
      await env.store.create(TerraformInstance, { Name: `bench-${i}`, AwsAccountID: account.ID, TerraformDefinitionID: def.ID, VarsDocument: sampleVars() }),
    ) as { ID: number };
    await until(async () => (await env.store.getObject(TerraformInstance, inst.ID))['Reconciled'] === true, 'apply');
    threeport.apply.push(performance.now() - t0);
    t0 = performance.now();
    await env.store.delete(TerraformInstance, inst.ID);
    await until(async () => {
      try {
        await env.store.getObject(TerraformInstance, inst.ID);
        return false;
      } catch (err) {
        if (err instanceof NotFoundError) return true;
        throw err;
      }
    }, 'destroy');
    threeport.destroy.push(performance.now() - t0);
    console.log(
      `run ${i + 1}: direct apply ${direct.apply[i]!.toFixed(0)} ms, destroy ${direct.destroy[i]!.toFixed(0)} ms; threeport apply ${threeport.apply[i]!.toFixed(0)} ms, destroy ${threeport.destroy[i]!.toFixed(0)} ms`,
    );
  }
  const row = (label: string, xs: number[]) => `${label.padEnd(46)} ${median(xs).toFixed(0).padStart(6)} ms (min ${Math.min(...xs).toFixed(0)}, max ${Math.max(...xs).toFixed(0)})`;
  console.log('');
  console.log(row('apply, direct tofu (init + apply)', direct.apply));
  console.log(row('apply, Threeport (create → Reconciled)', threeport.apply));
  console.log(row('destroy, direct tofu (destroy)', direct.destroy));
  console.log(row('destroy, Threeport (delete → gone)', threeport.destroy));
  console.log(`\noverhead: apply ×${(median(threeport.apply) / median(direct.apply)).toFixed(2)}, destroy ×${(median(threeport.destroy) / median(direct.destroy)).toFixed(2)}`);
} finally {
  await runtime.stop();
  await env.close();
  await moto.stop();
  rmSync(dir, { recursive: true, force: true });
}
