// End to end: the real compiled tptctl against a real `threeport server`
// (embedded PostgreSQL, mutual TLS) that `tptctl up --provider local` starts in
// a throwaway HOME. One control plane serves the whole file; `after` brings it
// down. Assertions read what the API stores, through the credentials tptctl
// wrote into the threeport config.
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import type { ThreeportClient } from '../../src/client/api-client.js';
import type { AnyObject } from '../../src/client/types.js';
import { FieldCipher } from '../../src/crypto/field-encryption.js';
import { aws, helmWorkload, kubernetesRuntime, workload } from '../../src/kinds/index.js';
import { processAlive } from '../../src/system.js';
import { VERSION } from '../../src/version.js';
import { errorLine, eventually, FIXTURES, parseTable, STAND_IN_RECONCILERS, TptctlHome, type RunResult } from './tptctl-harness.js';

const { WorkloadDefinition: WD, WorkloadInstance: WI } = workload;
const { KubernetesRuntimeDefinition: KRD, KubernetesRuntimeInstance: KRI } = kubernetesRuntime;
const CP = 'e2e';
const fixture = (name: string) => join(FIXTURES, name);

describe('tptctl against a local control plane', () => {
  const t = new TptctlHome();
  let up: RunResult;
  let api: ThreeportClient;
  const tptctl = (...args: string[]) => t.run(args);

  before(async () => {
    // The stand-in reconcilers let the controller runtime finish reconciles and deletions (see the module).
    // The tests register their own default runtime; tptctl-local-provider.test.ts covers the one `up` registers.
    up = await t.run(['up', '-n', CP, '--port', '0', '--no-local-runtime'], { env: { THREEPORT_TEST_RECONCILERS: STAND_IN_RECONCILERS } });
    if (up.code === 0) api = t.api(CP);
  });
  after(() => t.cleanup());

  it('up starts the control plane and writes it into the threeport config as the current one', async () => {
    assert.equal(up.code, 0, `up failed: ${up.stderr}`);
    assert.match(up.stdout, /control plane "e2e" is up at https:\/\/127\.0\.0\.1:\d+ \(provider local, mutual TLS\)/);
    assert.match(up.stderr, /starting control plane "e2e" at https:\/\/127\.0\.0\.1:\d+ \.\.\./);
    const cfg = t.config()!;
    assert.equal(cfg.CurrentControlPlane, CP);
    const cp = t.controlPlane(CP)!;
    assert.equal(cp.Provider, 'local');
    assert.equal(cp.Genesis, true);
    assert.equal(cp.AuthEnabled, true);
    assert.match(cp.APIServer!, /^127\.0\.0\.1:\d+$/);
    const stateDir = join(t.threeportDir, CP);
    assert.equal(Buffer.from(cp.CACert!, 'base64').toString(), readFileSync(join(stateDir, 'pki', 'ca.crt'), 'utf8'));
    assert.equal(cp.Credentials?.[0]?.Name, CP);
    assert.equal(Buffer.from(cp.Credentials![0]!.ClientKey, 'base64').toString(), readFileSync(join(stateDir, 'pki', 'client.key'), 'utf8'));
    assert.equal(cp.EncryptionKey, readFileSync(join(stateDir, 'encryption.key'), 'utf8').trim());
    assert.equal(statSync(t.configPath).mode & 0o777, 0o600);
    assert.ok(existsSync(join(stateDir, 'threeport.log')));
    assert.equal(await api.version(), VERSION);
  });

  it('version and config get-control-planes report the control plane', async () => {
    const v = await tptctl('version');
    assert.equal(v.code, 0);
    assert.equal(v.stdout, `tptctl ${VERSION}\nAPI ${VERSION} (control plane "e2e")\n`);
    const list = await tptctl('config', 'get-control-planes');
    const { headers, rows } = parseTable(list.stdout);
    assert.deepEqual(headers, ['CURRENT', 'NAME', 'PROVIDER', 'API SERVER', 'AUTH ENABLED', 'GENESIS']);
    assert.deepEqual(rows, [{ CURRENT: '*', NAME: CP, PROVIDER: 'local', 'API SERVER': t.controlPlane(CP)!.APIServer!, 'AUTH ENABLED': 'true', GENESIS: 'true' }]);
  });

  it('a second up with the same name says so and changes nothing', async () => {
    const before = readFileSync(t.configPath, 'utf8');
    const again = await tptctl('up', '-n', CP, '--port', '0');
    assert.match(errorLine(again), /^control plane "e2e" already exists in .*config\.yaml \(API 127\.0\.0\.1:\d+\): run "tptctl down -n e2e" first, choose another name, or pass --force-overwrite-config$/);
    assert.equal(readFileSync(t.configPath, 'utf8'), before);
    assert.equal(await api.version(), VERSION);
  });

  it('create kubernetes-runtime makes the default runtime', async () => {
    const r = await tptctl('create', 'kubernetes-runtime', '-c', fixture('k8s-runtime.yaml'));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'KubernetesRuntimeDefinition "local-runtime" created\nKubernetesRuntimeInstance "local-runtime" created\n');
    const def = await api.getByName(KRD, 'local-runtime');
    const inst = await api.getByName(KRI, 'local-runtime');
    assert.equal(def.InfraProvider, 'kind');
    assert.equal(def.HighAvailability, false);
    assert.equal(inst.KubernetesRuntimeDefinitionID, def.ID);
    assert.equal(inst.Location, 'Local');
    assert.equal(inst.DefaultRuntime, true);
  });

  it('create kubernetes-runtime with InfraProvider kubeconfig reads the connection from the kubeconfig', async () => {
    const r = await tptctl('create', 'kubernetes-runtime', '-c', fixture('kubeconfig/k8s-runtime-kubeconfig.yaml'));
    assert.equal(r.code, 0, r.stderr);
    const inst = await api.getByName(KRI, 'existing-cluster');
    assert.equal(inst.APIEndpoint, 'https://127.0.0.1:6443');
    assert.equal(inst.CACertificate, '-----BEGIN CERTIFICATE-----\nTEST-CA\n-----END CERTIFICATE-----\n');
    assert.equal(inst.DefaultRuntime, false);
    const key = await tptctl('describe', 'kubernetes-runtime-instance', '-n', 'existing-cluster', '-f', 'CertificateKey');
    assert.equal(key.stdout, '-----BEGIN PRIVATE KEY-----\nTEST-KEY\n-----END PRIVATE KEY-----\n');
    assert.notEqual(inst.CertificateKey, '-----BEGIN PRIVATE KEY-----\nTEST-KEY\n-----END PRIVATE KEY-----\n');
    const bad = await t.run(['create', 'kubernetes-runtime', '-c', fixture('kubeconfig/k8s-runtime-kubeconfig.yaml'), '-i', CP], {});
    assert.match(errorLine(bad), /creating KubernetesRuntimeDefinition "existing-cluster" failed: object with provided name already exists/);
  });

  it('create workload makes a WorkloadDefinition with the manifest and a WorkloadInstance on the default runtime', async () => {
    const r = await tptctl('create', 'workload', '-c', fixture('wordpress-workload.yaml'));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'WorkloadDefinition "wordpress" created\nWorkloadInstance "wordpress" created\n');
    const def = await api.getByName(WD, 'wordpress');
    const inst = await api.getByName(WI, 'wordpress');
    assert.equal(def.YAMLDocument, readFileSync(fixture('wordpress-manifest.yaml'), 'utf8'));
    assert.equal(inst.WorkloadDefinitionID, def.ID);
    assert.equal(inst.KubernetesRuntimeInstanceID, (await api.getByName(KRI, 'local-runtime')).ID);
  });

  it('create of an object that exists fails on the first write and points at apply', async () => {
    const before = await api.getByName(WD, 'wordpress');
    const again = await tptctl('create', 'workload', '-c', fixture('wordpress-workload.yaml'));
    assert.equal(
      errorLine(again),
      `${fixture('wordpress-workload.yaml')}:3:1: Workload: creating WorkloadDefinition "wordpress" failed: object with provided name already exists (HTTP 409); "tptctl apply" updates existing objects in place`,
    );
    assert.deepEqual(await api.getByName(WD, 'wordpress'), before);
  });

  it('create workload-definition and workload-instance from separate configs', async () => {
    const d = await tptctl('create', 'workload-definition', '-c', fixture('wordpress-workload-definition.yaml'));
    assert.equal(d.code, 0, d.stderr);
    const i = await tptctl('create', 'workload-instance', '-c', fixture('wordpress-workload-instance.yaml'));
    assert.equal(i.code, 0, i.stderr);
    assert.equal(i.stdout, 'WorkloadInstance "wordpress-01" created\n');
    const inst = await api.getByName(WI, 'wordpress-01');
    assert.equal(inst.WorkloadDefinitionID, (await api.getByName(WD, 'wordpress-def')).ID);
  });

  it('create aws-account stores the keys encrypted, from the config or from local AWS files', async () => {
    const r = await tptctl('create', 'aws-account', '-c', fixture('aws-account.yaml'));
    assert.equal(r.code, 0, r.stderr);
    const acct = await api.getByName(aws.AwsAccount, 'default-account');
    assert.equal(acct.AccountID, '555555555555');
    assert.equal(acct.DefaultAccount, true);
    const cipher = new FieldCipher(t.controlPlane(CP)!.EncryptionKey!);
    assert.notEqual(acct.SecretAccessKey, 'example/secret/access/key/000000000001');
    assert.equal(cipher.decrypt(acct.SecretAccessKey!), 'example/secret/access/key/000000000001');

    const local = await tptctl('create', 'aws-account', '-c', fixture('aws-account-local.yaml'));
    assert.equal(local.code, 0, local.stderr);
    const staged = await api.getByName(aws.AwsAccount, 'profile-account');
    assert.equal(staged.DefaultRegion, 'us-west-2');
    assert.equal(cipher.decrypt(staged.AccessKeyID!), 'AKIASTAGING000000000');
  });

  it('create helm-workload reads the values file and takes inline values', async () => {
    const r = await tptctl('create', 'helm-workload', '-c', fixture('helm/wordpress-helm-workload.yaml'));
    assert.equal(r.code, 0, r.stderr);
    const def = await api.getByName(helmWorkload.HelmWorkloadDefinition, 'wordpress-helm');
    const inst = await api.getByName(helmWorkload.HelmWorkloadInstance, 'wordpress-helm');
    assert.equal(def.Repo, 'oci://registry-1.docker.io/bitnamicharts');
    assert.equal(def.ChartVersion, '23.1.0');
    assert.equal(def.ValuesDocument, readFileSync(fixture('helm/wordpress-definition-values.yaml'), 'utf8'));
    assert.equal(inst.ValuesDocument, 'replicaCount: 2\n');
    assert.equal(inst.ReleaseNamespace, 'blog');
    assert.equal(inst.HelmWorkloadDefinitionID, def.ID);
  });

  it('get workloads prints the columns of spec §5.2', async () => {
    // The stand-in reconcilers mark instances reconciled: STATUS moves from Reconciling to Healthy.
    await eventually('wordpress reconciled', async () => ((await api.getByName(WI, 'wordpress')).Reconciled ? true : undefined));
    const r = await tptctl('get', 'workloads');
    assert.equal(r.code, 0, r.stderr);
    const { headers, rows } = parseTable(r.stdout);
    assert.deepEqual(headers, ['VERSION', 'NAME', 'WORKLOAD DEFINITION', 'WORKLOAD INSTANCE', 'KUBERNETES RUNTIME INSTANCE', 'STATUS', 'AGE']);
    const wp = rows.find((row) => row['NAME'] === 'wordpress')!;
    assert.deepEqual({ ...wp, AGE: '' }, {
      VERSION: 'v0',
      NAME: 'wordpress',
      'WORKLOAD DEFINITION': 'wordpress',
      'WORKLOAD INSTANCE': 'wordpress',
      'KUBERNETES RUNTIME INSTANCE': 'local-runtime',
      STATUS: 'Healthy',
      AGE: '',
    });
    assert.match(wp['AGE']!, /^\d+[smhd]$/);
    assert.equal(rows.find((row) => row['NAME'] === 'wordpress-01')?.['WORKLOAD DEFINITION'], 'wordpress-def');
  });

  it('get workload-instances, workload-definitions and aws-accounts print their tables', async () => {
    const inst = parseTable((await tptctl('get', 'workload-instances')).stdout);
    assert.deepEqual(inst.headers, ['NAME', 'WORKLOAD DEFINITION', 'KUBERNETES RUNTIME INSTANCE', 'STATUS', 'AGE']);
    assert.deepEqual(
      inst.rows.map((r) => [r['NAME'], r['WORKLOAD DEFINITION'], r['KUBERNETES RUNTIME INSTANCE']]),
      [
        ['wordpress', 'wordpress', 'local-runtime'],
        ['wordpress-01', 'wordpress-def', 'local-runtime'],
      ],
    );
    const defs = parseTable((await tptctl('get', 'workload-definitions')).stdout);
    assert.deepEqual(defs.headers, ['NAME', 'AGE']);
    assert.deepEqual(
      defs.rows.map((r) => r['NAME']),
      ['wordpress', 'wordpress-def'],
    );
    const accounts = parseTable((await tptctl('get', 'aws-accounts')).stdout);
    assert.deepEqual(accounts.headers, ['NAME', 'ACCOUNT ID', 'DEFAULT ACCOUNT', 'DEFAULT REGION', 'AGE']);
    assert.deepEqual(accounts.rows[0], { ...accounts.rows[0], NAME: 'default-account', 'ACCOUNT ID': '555555555555', 'DEFAULT ACCOUNT': 'true', 'DEFAULT REGION': 'us-east-1' });
    const one = parseTable((await tptctl('get', 'workload-instance', 'wordpress-01')).stdout);
    assert.deepEqual(
      one.rows.map((r) => r['NAME']),
      ['wordpress-01'],
    );
  });

  it('get -o json and -o yaml print the stored objects, without secrets', async () => {
    const json = await tptctl('get', 'workloads', '-o', 'json');
    assert.equal(json.code, 0, json.stderr);
    const pairs = JSON.parse(json.stdout) as Array<Record<string, AnyObject>>;
    const wp = pairs.find((p) => p['WorkloadInstance']?.['Name'] === 'wordpress')!;
    assert.equal(wp['WorkloadDefinition']!['Name'], 'wordpress');
    assert.equal(wp['WorkloadInstance']!['WorkloadDefinitionID'], wp['WorkloadDefinition']!.ID);
    const yaml = await tptctl('get', 'aws-accounts', '-o', 'yaml');
    const accounts = parse(yaml.stdout) as AnyObject[];
    assert.equal(accounts[0]!['Name'], 'default-account');
    assert.equal(accounts[0]!['SecretAccessKey'], '[redacted]');
    assert.equal(yaml.stdout.includes('example/secret'), false);
    const none = await tptctl('get', 'gateways');
    assert.equal(none.code, 0);
    assert.equal(none.stdout, '');
    assert.equal(none.stderr, 'No gateways found.\n');
    assert.equal((await tptctl('get', 'gateways', '-o', 'json')).stdout, '[]\n');
  });

  it('describe shows the objects, redacts encrypted fields, and prints one field with -f', async () => {
    const plain = await tptctl('describe', 'workload', '-n', 'wordpress');
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stdout, /^Kind: +WorkloadInstance\nName: +wordpress\nID: +\d+\nStatus: +Healthy\n/);
    assert.match(plain.stdout, /\nKubernetesRuntimeInstance: +local-runtime \(ID \d+\)\n/);
    assert.match(plain.stdout, /\nKind: +WorkloadDefinition\nName: +wordpress\n/);
    assert.match(plain.stdout, /\nYAMLDocument:\n {2}# A small WordPress deployment/);
    // Events the controller runtime attached to the instance (here: for the stand-in reconciler's success).
    assert.match(plain.stdout, /\nEvents:\n {2}TYPE +REASON +AGE +COUNT +NOTE\n {2}Normal +SuccessfulCreate +\d+[smhd] +1 +WorkloadInstance successfully reconciled/);

    const field = await tptctl('describe', 'workload-definition', '-n', 'wordpress', '-f', 'YAMLDocument');
    assert.equal(field.stdout, readFileSync(fixture('wordpress-manifest.yaml'), 'utf8'));

    const acct = await tptctl('describe', 'aws-account', '-c', fixture('aws-account.yaml'));
    assert.match(acct.stdout, /\nSecretAccessKey: +\[redacted\] \(show it with -f SecretAccessKey\)\n/);
    assert.equal(acct.stdout.includes('example/secret'), false);
    const secret = await tptctl('describe', 'aws-account', '-n', 'default-account', '-f', 'SecretAccessKey');
    assert.equal(secret.stdout, 'example/secret/access/key/000000000001\n');

    const json = await tptctl('describe', 'workload-instance', '-n', 'wordpress-01', '-o', 'json');
    const obj = JSON.parse(json.stdout) as Record<string, AnyObject>;
    assert.equal(obj['WorkloadInstance']!['Name'], 'wordpress-01');

    const missing = await tptctl('describe', 'workload', '-n', 'nope');
    assert.equal(errorLine(missing), 'no WorkloadInstance or WorkloadDefinition named "nope" exists on control plane "e2e"');
  });

  it('apply updates changed fields in place, creates what is missing, and leaves the rest alone', async () => {
    const dir = mkdtempSync(join(t.home, 'apply-'));
    copyFileSync(fixture('wordpress-workload.yaml'), join(dir, 'wordpress-workload.yaml'));
    const manifest = readFileSync(fixture('wordpress-manifest.yaml'), 'utf8').replace('replicas: 2', 'replicas: 3');
    writeFileSync(join(dir, 'wordpress-manifest.yaml'), manifest);
    writeFileSync(
      join(dir, 'app.yaml'),
      `${readFileSync(join(dir, 'wordpress-workload.yaml'), 'utf8')}---\nKubernetesRuntimeDefinition:\n  Name: staging\n  InfraProvider: eks\n  InfraProviderAccountName: default-account\n`,
    );
    const before = await api.getByName(WD, 'wordpress');
    const r = await tptctl('apply', '-c', join(dir, 'app.yaml'));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      'WorkloadDefinition "wordpress" updated (YAMLDocument)\nWorkloadInstance "wordpress" unchanged\nKubernetesRuntimeDefinition "staging" created\n',
    );
    const afterApply = await api.getByName(WD, 'wordpress');
    assert.equal(afterApply.ID, before.ID);
    assert.equal(afterApply.YAMLDocument, manifest);
    assert.equal((await api.getByName(KRD, 'staging')).InfraProvider, 'eks');

    const again = await tptctl('apply', '-c', join(dir, 'app.yaml'));
    assert.equal(again.stdout, 'WorkloadDefinition "wordpress" unchanged\nWorkloadInstance "wordpress" unchanged\nKubernetesRuntimeDefinition "staging" unchanged\n');

    // An update the API cannot make is refused before anything is written.
    writeFileSync(join(dir, 'move.yaml'), 'KubernetesRuntimeInstance:\n  Name: local-runtime\n  KubernetesRuntimeDefinition: {Name: local-runtime}\n  Location: Europe:Paris\n');
    const move = await tptctl('apply', '-c', join(dir, 'move.yaml'));
    assert.match(errorLine(move), /move\.yaml:4:13: KubernetesRuntimeInstance\.Location: KubernetesRuntimeInstance "local-runtime" has Location "Local", which cannot be changed once set \(the config asks for "Europe:Paris"\)$/);
    assert.equal((await api.getByName(KRI, 'local-runtime')).Location, 'Local');
  });

  describe('bad input: one clear line, exit code 1, nothing written', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(t.home, 'bad-'));
      copyFileSync(fixture('wordpress-manifest.yaml'), join(dir, 'manifest.yaml'));
    });

    async function rejected(name: string, text: string, noun = 'workload'): Promise<string> {
      writeFileSync(join(dir, name), text);
      const r = await t.run(['create', noun, '-c', name], { cwd: dir });
      return errorLine(r);
    }

    async function assertNoWorkload(name: string): Promise<void> {
      assert.equal(await api.findByName(WD, name), undefined, `WorkloadDefinition ${name} must not exist`);
      assert.equal(await api.findByName(WI, name), undefined, `WorkloadInstance ${name} must not exist`);
    }

    it('a YAML syntax error', async () => {
      const line = await rejected('syntax.yaml', 'Workload:\n  Name: bad-syntax\n  YAMLDocument: [manifest.yaml\n');
      assert.match(line, /^syntax\.yaml:\d+:\d+: YAML syntax error: /);
      await assertNoWorkload('bad-syntax');
    });

    it('an unknown key', async () => {
      const line = await rejected('unknown.yaml', 'Workload:\n  Name: bad-key\n  YAMLDocument: manifest.yaml\n  Replicas: 3\n');
      assert.equal(
        line,
        'unknown.yaml:4:3: Workload.Replicas: unknown field; Workload accepts Name, YAMLDocument, KubernetesRuntimeInstance, DomainName, Gateway, AwsRelationalDatabase, AwsObjectStorageBucket, Secret',
      );
      await assertNoWorkload('bad-key');
    });

    it('a wrong type', async () => {
      const line = await rejected('type.yaml', 'KubernetesRuntime:\n  Name: bad-type\n  InfraProvider: kind\n  Location: Local\n  DefaultRuntime: "yes"\n', 'kubernetes-runtime');
      assert.equal(line, 'type.yaml:5:19: KubernetesRuntime.DefaultRuntime: expected true or false, got string "yes"');
      assert.equal(await api.findByName(KRD, 'bad-type'), undefined);
    });

    it('a missing required field', async () => {
      const line = await rejected('required.yaml', 'Workload:\n  Name: bad-required\n');
      assert.equal(line, 'required.yaml:1:1: Workload.YAMLDocument: required field is missing: expected a string');
      await assertNoWorkload('bad-required');
    });

    it('a referenced file that does not exist', async () => {
      const line = await rejected('file.yaml', 'Workload:\n  Name: bad-file\n  YAMLDocument: no-such-manifest.yaml\n');
      assert.equal(
        line,
        `file.yaml:3:17: Workload.YAMLDocument: file "no-such-manifest.yaml" does not exist (looked for ${join(dir, 'no-such-manifest.yaml')}; paths are relative to the config file)`,
      );
      await assertNoWorkload('bad-file');
    });

    it('a name that does not exist on the server', async () => {
      const line = await rejected('name.yaml', 'Workload:\n  Name: bad-name\n  YAMLDocument: manifest.yaml\n  KubernetesRuntimeInstance:\n    Name: no-such-runtime\n');
      assert.equal(line, 'name.yaml:5:11: Workload.KubernetesRuntimeInstance.Name: no KubernetesRuntimeInstance named "no-such-runtime" exists on control plane "e2e"');
      await assertNoWorkload('bad-name');
      const inst = await rejected('inst.yaml', 'WorkloadInstance:\n  Name: bad-ref\n  WorkloadDefinition: {Name: no-such-definition}\n', 'workload-instance');
      assert.equal(inst, 'inst.yaml:3:30: WorkloadInstance.WorkloadDefinition.Name: no WorkloadDefinition named "no-such-definition" exists on control plane "e2e"');
      assert.equal(await api.findByName(WI, 'bad-ref'), undefined);
    });

    it('an instance the server refuses after its definition was created: the definition is removed again', async () => {
      // A WorkloadInstance "taken" already exists (of another definition), so the API refuses the second one with 409.
      writeFileSync(join(dir, 'taken-instance.yaml'), 'WorkloadInstance:\n  Name: taken\n  WorkloadDefinition: {Name: wordpress-def}\n');
      assert.equal((await t.run(['create', 'workload-instance', '-c', 'taken-instance.yaml'], { cwd: dir })).code, 0);
      const line = await rejected('taken.yaml', 'Workload:\n  Name: taken\n  YAMLDocument: manifest.yaml\n');
      assert.match(
        line,
        /^taken\.yaml:1:1: Workload: creating WorkloadInstance "taken" failed: object with provided name already exists \(HTTP 409\); rolled back: WorkloadDefinition "taken" (deleted|scheduled for deletion)$/,
      );
      // The definition is reconciled, so its controller finishes the deletion.
      await eventually('the rolled-back WorkloadDefinition to be gone', async () => ((await api.findByName(WD, 'taken')) === undefined ? true : undefined));
      const existing = await api.getByName(WI, 'taken');
      assert.equal(existing.WorkloadDefinitionID, (await api.getByName(WD, 'wordpress-def')).ID);
    });

    it('a config file that does not exist, and a config of the wrong kind', async () => {
      assert.equal(errorLine(await t.run(['create', 'workload', '-c', 'missing.yaml'], { cwd: dir })), 'missing.yaml: cannot read the config file: no such file');
      const wrong = await rejected('wrong.yaml', 'WorkloadDefinition:\n  Name: bad-kind\n  YAMLDocument: manifest.yaml\n');
      assert.equal(wrong, 'wrong.yaml:1:1: WorkloadDefinition: this is a WorkloadDefinition config, but this command takes a Workload config (use "tptctl create workload-definition" for it)');
      await assertNoWorkload('bad-kind');
    });
  });

  it('delete removes instances before their definitions, by name or by config file', async () => {
    const byName = await tptctl('delete', 'workload', '-n', 'wordpress');
    assert.equal(byName.code, 0, byName.stderr);
    assert.equal(byName.stdout, 'WorkloadInstance "wordpress" deleted\nWorkloadDefinition "wordpress" deleted\n');
    assert.equal(await api.findByName(WI, 'wordpress'), undefined);
    assert.equal(await api.findByName(WD, 'wordpress'), undefined);

    assert.equal((await tptctl('delete', 'workload-instance', '-n', 'taken')).code, 0);
    const byConfig = await tptctl('delete', 'workload-instance', '-c', fixture('wordpress-workload-instance.yaml'));
    assert.equal(byConfig.stdout, 'WorkloadInstance "wordpress-01" deleted\n');
    assert.equal((await tptctl('delete', 'workload-definition', '-c', fixture('wordpress-workload-definition.yaml'))).code, 0);
    assert.equal(await api.findByName(WD, 'wordpress-def'), undefined);

    const acct = await tptctl('delete', 'aws-account', '-n', 'profile-account');
    assert.equal(acct.stdout, 'AwsAccount "profile-account" deleted\n');
    assert.equal(await api.findByName(aws.AwsAccount, 'profile-account'), undefined);

    const gone = await tptctl('delete', 'workload', '-n', 'wordpress');
    assert.equal(gone.code, 1);
    assert.equal(
      gone.stderr,
      'Warning: WorkloadInstance "wordpress" not found; skipped\nWarning: WorkloadDefinition "wordpress" not found; skipped\nError: nothing to delete: WorkloadInstance "wordpress", WorkloadDefinition "wordpress" do not exist on control plane "e2e"\n',
    );
  });

  it('down stops the server, removes its state and its config entry', async () => {
    const stateDir = join(t.threeportDir, CP);
    const pid = Number(readFileSync(join(stateDir, 'threeport.pid'), 'utf8'));
    assert.ok(processAlive(pid));
    const r = await tptctl('down', '-n', CP);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'control plane "e2e" stopped and its data removed\n');
    assert.equal(processAlive(pid), false);
    assert.equal(existsSync(stateDir), false);
    const cfg = t.config()!;
    assert.deepEqual(cfg.ControlPlanes, []);
    assert.equal(cfg.CurrentControlPlane, '');
    const after = await tptctl('get', 'workloads');
    assert.match(errorLine(after), /^no control plane is configured in .*config\.yaml: start one with "tptctl up -n <name>"$/);
  });
});
