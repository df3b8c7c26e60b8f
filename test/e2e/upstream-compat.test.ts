// Upstream Threeport v0.6.1's own tools against our control plane, and our tptctl with upstream's
// own sample configs. One control plane from `tptctl up`, with its real controllers (no stand-in
// reconcilers) and its simulated (kwok) default runtime; the AWS controllers talk to moto.
//
//   - our tptctl + upstream's samples/workload/wordpress-workload-local.yaml (a MariaDB
//     StatefulSet and a WordPress Deployment with PersistentVolumeClaims) → Healthy, unchanged;
//     `describe workload-instance` shows the cluster's events (Scheduled … Started), newest first;
//   - our tptctl + upstream's samples/aws EKS configs: no race with the runtime controller, and
//     a missing AwsEksKubernetesRuntimeDefinition is named as such;
//   - upstream's tptctl: get control-planes, get aws-eks-kubernetes-runtime-instances,
//     create / describe / delete workload;
//   - upstream's integration test TestWorkloadE2E passes, unchanged.
//
// The upstream binaries come from scripts/upstream/build-threeport.sh (Go module proxy, cached).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { aws, controlPlane, gateway, kubernetesRuntime, workload } from '../../src/kinds/index.js';
import type { ThreeportClient } from '../../src/client/api-client.js';
import { findKubeBinaries, SKIP_KUBE, SKIP_KUBE_REASON } from '../harness/kube-cluster.js';
import { SKIP_AWS, startMoto, type MotoServer } from '../harness/moto.js';
import { upstreamThreeport, type UpstreamThreeport } from '../harness/upstream-threeport.js';
import { MOTO_ACCOUNT_ID, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY } from '../aws/helpers.js';
import { errorLine, eventually, parseTable, runProgram, TptctlHome } from './tptctl-harness.js';

const skip = SKIP_KUBE ? SKIP_KUBE_REASON : SKIP_AWS;
const CP = 'upstream';

/** testify's failure blocks: the distinct `Messages:` of the failed assertions, or `Error:` lines without one. */
export function failedAssertions(output: string): string[] {
  const out = new Set<string>();
  for (const block of output.split(/Error Trace:/).slice(1)) {
    const message = /Messages:\s+(.+)/.exec(block)?.[1] ?? /Error:\s+(.+)/.exec(block)?.[1];
    if (message) out.add(message.trim());
  }
  return [...out].sort();
}

describe('upstream Threeport v0.6.1 and its samples against our control plane (real controllers, simulated runtime)', { skip }, () => {
  const t = new TptctlHome();
  let up: UpstreamThreeport;
  let moto: MotoServer;
  let api: ThreeportClient;
  let kubeconfig: string;
  let work: string;
  const upstreamEnv = () => t.env({ PATH: process.env['PATH'] ?? '' });
  const upstream = (args: string[], timeoutMs = 120_000) => runProgram(up.tptctl, args, { env: upstreamEnv(), timeoutMs, cwd: t.home });
  const kubectl = (args: string[]) => {
    const r = spawnSync('kubectl', ['--kubeconfig', kubeconfig, ...args], { encoding: 'utf8' });
    assert.equal(r.status, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    up = upstreamThreeport(); // fails loudly, with the build command, when missing
    const bins = findKubeBinaries();
    moto = await startMoto();
    work = mkdtempSync(join(tmpdir(), 'threeport-upstream-'));
    const result = await t.run(['up', '-n', CP, '--port', '0'], {
      env: { THREEPORT_K8S_BIN_DIR: bins.dir, THREEPORT_AWS_ENDPOINT_URL: moto.url, AWS_EC2_METADATA_DISABLED: 'true' },
      timeoutMs: 180_000,
    });
    assert.equal(result.code, 0, `tptctl up failed: ${result.stderr}`);
    api = t.api(CP);
    // The simulated cluster is up once the runtime controller has reconciled its instance.
    const kri = await eventually(
      'the default runtime reconciled (its simulated cluster started)',
      async () => {
        const [r] = await api.listAll(kubernetesRuntime.KubernetesRuntimeInstance, { DefaultRuntime: true });
        return r?.Reconciled && r.APIEndpoint ? r : undefined;
      },
      240_000,
    );
    assert.equal(kri.ThreeportControlPlaneHost, true);
    const runtimes = join(t.threeportDir, CP, 'runtimes');
    kubeconfig = join(runtimes, readdirSync(runtimes)[0]!, 'admin.kubeconfig');
  });

  after(async () => {
    await t.cleanup();
    await moto?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test("our tptctl: upstream's getting-started WordPress (PVCs) becomes Healthy unchanged, and describe says what the cluster did", { timeout: 400_000 }, async () => {
    const sample = join(up.moduleDir, 'samples', 'workload', 'wordpress-workload-local.yaml');
    const created = await t.run(['create', 'workload', '-c', sample]);
    assert.equal(created.code, 0, created.stderr);
    const row = await eventually(
      'wordpress Healthy in tptctl get workloads',
      async () => {
        const rows = parseTable((await t.run(['get', 'workloads'])).stdout).rows;
        const r = rows.find((x) => x['NAME'] === 'wordpress');
        return r?.['STATUS'] === 'Healthy' ? r : undefined;
      },
      300_000,
    );
    assert.equal(row['KUBERNETES RUNTIME INSTANCE'], `threeport-${CP}`);
    // Both claims were bound by the host-path provisioner behind the default StorageClass.
    const claims = JSON.parse(kubectl(['get', 'pvc', '--all-namespaces', '-o', 'json'])) as { items: Array<{ metadata: { name: string }; status: { phase: string }; spec: { storageClassName: string } }> };
    assert.deepEqual(
      claims.items.map((c) => [c.metadata.name, c.status.phase, c.spec.storageClassName]).sort(),
      [
        ['data-getting-started-mariadb-0', 'Bound', 'standard'],
        ['getting-started-wordpress', 'Bound', 'standard'],
      ],
    );
    // The kubelet's events, as kwok's pod stages emit them, reach the WorkloadEvents…
    const wi = await api.getByName(workload.WorkloadInstance, 'wordpress');
    const reasons = await eventually('Scheduled, Pulled, Created and Started WorkloadEvents', async () => {
      const evs = await api.listAll(workload.WorkloadEvent, { WorkloadInstanceID: wi.ID });
      const got = new Set(evs.filter((e) => e.Type === 'Normal').map((e) => e.Reason));
      return ['Scheduled', 'Pulled', 'Created', 'Started'].every((r) => got.has(r)) ? evs : undefined;
    });
    // …and describe lists them, newest first, beside the controller's own events.
    const described = await t.run(['describe', 'workload-instance', '-n', 'wordpress']);
    assert.equal(described.code, 0, described.stderr);
    assert.match(described.stdout, /\nEvents:/);
    const section = described.stdout.split('Workload Events (newest first):\n')[1];
    assert.ok(section, described.stdout);
    const listed = parseTable(section.split('\n').map((l) => l.replace(/^ {2}/, '')).join('\n')).rows;
    assert.ok(listed.some((r) => r['REASON'] === 'Started'), section);
    const newestFirst = [...reasons].sort((a, b) => Date.parse(String(b.Timestamp)) - Date.parse(String(a.Timestamp)) || b.ID - a.ID);
    assert.equal(listed[0]!['REASON'], newestFirst[0]!.Reason, section);

    const deleted = await t.run(['delete', 'workload', '-c', sample]);
    assert.equal(deleted.code, 0, deleted.stderr);
    await eventually('the claims released with the workload', async () => {
      const left = JSON.parse(kubectl(['get', 'pvc', '--all-namespaces', '-o', 'json'])) as { items: unknown[] };
      const wis = await api.listAll(workload.WorkloadInstance, { Name: 'wordpress' });
      return wis.length === 0 && left.items.length <= 1 ? true : undefined; // the StatefulSet's claim outlives it, as on any cluster
    }, 120_000);
  });

  test('our tptctl: a Down workload says why in get workloads, and describe shows the Warning', { timeout: 240_000 }, async () => {
    writeFileSync(
      join(work, 'stuck-manifest.yaml'),
      [
        'apiVersion: v1',
        'kind: PersistentVolumeClaim',
        'metadata: {name: stuck-data}',
        'spec:',
        '  storageClassName: no-such-class',
        '  accessModes: [ReadWriteOnce]',
        '  resources: {requests: {storage: 1Gi}}',
        '---',
        'apiVersion: apps/v1',
        'kind: Deployment',
        'metadata: {name: stuck}',
        'spec:',
        '  selector: {matchLabels: {app: stuck}}',
        '  template:',
        '    metadata: {labels: {app: stuck}}',
        '    spec:',
        '      containers: [{name: app, image: example.com/app:1, volumeMounts: [{name: data, mountPath: /data}]}]',
        '      volumes: [{name: data, persistentVolumeClaim: {claimName: stuck-data}}]',
        '',
      ].join('\n'),
    );
    writeFileSync(join(work, 'stuck.yaml'), 'Workload:\n  Name: stuck\n  YAMLDocument: stuck-manifest.yaml\n');
    const created = await t.run(['create', 'workload', '-c', join(work, 'stuck.yaml')]);
    assert.equal(created.code, 0, created.stderr);
    const status = await eventually(
      'stuck Down with its reason',
      async () => {
        const r = parseTable((await t.run(['get', 'workloads'])).stdout).rows.find((x) => x['NAME'] === 'stuck');
        // The scheduler may first see the Deployment's pod before its claim exists ("not found");
        // the reason follows the newest warning.
        return r?.['STATUS']?.includes('unbound immediate PersistentVolumeClaims') ? r['STATUS'] : undefined;
      },
      120_000,
    );
    assert.match(status, /^Down: Deployment stuck: no ready replicas \(FailedScheduling: .*unbound immediate PersistentVolumeClaims/);
    // The reason comes from the watched Event at once; the WorkloadEvent rows are written by the
    // watcher's next flush, so describe may list them a moment later.
    const described = await eventually(
      'describe listing the FailedScheduling WorkloadEvent',
      async () => {
        const r = await t.run(['describe', 'workload-instance', '-n', 'stuck']);
        return /Warning +FailedScheduling/.test(r.stdout.split('Workload Events (newest first):\n')[1] ?? '') ? r : undefined;
      },
      60_000,
    );
    assert.match(described.stdout, /\nStatus: +Down: Deployment stuck: no ready replicas/);
    const deleted = await t.run(['delete', 'workload', '-c', join(work, 'stuck.yaml')]);
    assert.equal(deleted.code, 0, deleted.stderr);
  });

  test("our tptctl: upstream's EKS sample configs do not race the runtime controller, and a missing definition is named", { timeout: 240_000 }, async () => {
    writeFileSync(
      join(work, 'default-aws-account.yaml'),
      `AwsAccount:\n  Name: default-account\n  AccountID: "${MOTO_ACCOUNT_ID}"\n  DefaultAccount: true\n  DefaultRegion: us-east-1\n  AccessKeyID: ${TEST_ACCESS_KEY_ID}\n  SecretAccessKey: ${TEST_SECRET_ACCESS_KEY}\n`,
    );
    assert.equal((await t.run(['create', 'aws-account', '-c', join(work, 'default-aws-account.yaml')])).code, 0);
    const samples = join(up.moduleDir, 'samples', 'aws');
    // The instance before its definition: the error names the kind the config names.
    const early = await t.run(['create', 'aws-eks-kubernetes-runtime-instance', '-c', join(samples, 'test-aws-eks-k8s-runtime-instance.yaml')]);
    assert.match(errorLine(early), /no AwsEksKubernetesRuntimeDefinition named "test-runtime" exists on control plane "upstream"/);
    assert.equal((await api.listAll(kubernetesRuntime.KubernetesRuntimeInstance, { Name: 'test-runtime-01' })).length, 0, 'nothing written');

    const def = await t.run(['create', 'aws-eks-kubernetes-runtime-definition', '-c', join(samples, 'test-aws-eks-k8s-runtime-definition.yaml')]);
    assert.equal(def.code, 0, def.stderr);
    const krd = await api.getByName(kubernetesRuntime.KubernetesRuntimeDefinition, 'test-runtime');
    assert.equal(krd.Reconciled, true, 'created Reconciled, as upstream does: the runtime controller leaves it alone');
    const inst = await t.run(['create', 'aws-eks-kubernetes-runtime-instance', '-c', join(samples, 'test-aws-eks-k8s-runtime-instance.yaml')]);
    assert.equal(inst.code, 0, inst.stderr);
    // Well after both creates, still exactly one of each: the server made no copy of its own.
    await new Promise((r) => setTimeout(r, 3_000));
    assert.equal((await api.listAll(aws.AwsEksKubernetesRuntimeDefinition, {})).length, 1);
    assert.equal((await api.listAll(aws.AwsEksKubernetesRuntimeInstance, { Name: 'test-runtime-01' })).length, 1);
  });

  test("upstream's tptctl: get control-planes and get aws-eks-kubernetes-runtime-instances read our objects", { timeout: 120_000 }, async () => {
    const planes = await upstream(['get', 'control-planes']);
    assert.equal(planes.code, 0, `${planes.stdout}\n${planes.stderr}`);
    assert.doesNotMatch(planes.stdout + planes.stderr, /panic|nil pointer/);
    assert.match(planes.stdout, new RegExp(`\\n${CP}\\s`), planes.stdout);
    const cpi = await api.getByName(controlPlane.ControlPlaneInstance, CP);
    assert.deepEqual([cpi.Genesis, cpi.IsSelf], [true, true]);

    const eks = await upstream(['get', 'aws-eks-kubernetes-runtime-instances']);
    assert.equal(eks.code, 0, `${eks.stdout}\n${eks.stderr}`);
    assert.doesNotMatch(eks.stdout + eks.stderr, /panic|nil pointer/);
    assert.match(eks.stdout, /test-runtime-01/);
  });

  test("upstream's tptctl: create, get, describe and delete a workload from upstream's sample", { timeout: 400_000 }, async () => {
    const sample = join(up.moduleDir, 'samples', 'workload', 'wordpress-workload-local.yaml');
    const created = await upstream(['create', 'workload', '-c', sample]);
    assert.equal(created.code, 0, `${created.stdout}\n${created.stderr}`);
    await eventually(
      'wordpress Healthy',
      async () => ((await api.findByName(workload.WorkloadInstance, 'wordpress'))?.Status === 'Healthy' ? true : undefined),
      300_000,
    );
    const listed = await upstream(['get', 'workloads']);
    assert.equal(listed.code, 0, `${listed.stdout}\n${listed.stderr}`);
    assert.match(listed.stdout, /wordpress/);
    const described = await upstream(['describe', 'workload-instance', '-n', 'wordpress', '-o', 'json']);
    assert.equal(described.code, 0, `${described.stdout}\n${described.stderr}`);
    assert.doesNotMatch(described.stdout + described.stderr, /panic|nil pointer/);
    assert.match(described.stdout, /"Name": ?"wordpress"/);
    const deleted = await upstream(['delete', 'workload', '-c', sample]);
    assert.equal(deleted.code, 0, `${deleted.stdout}\n${deleted.stderr}`);
    await eventually('the workload gone', async () => ((await api.findByName(workload.WorkloadInstance, 'wordpress')) ? undefined : true), 120_000);
  });

  test("upstream's integration test TestWorkloadE2E passes: both workloads, with their gateway (TLS port), domain name and secret definition, created and deleted", { timeout: 1_200_000 }, async () => {
    const r = await runProgram(up.workloadE2E, ['-test.run', '^TestWorkloadE2E$', '-test.v', '-test.timeout', '18m'], { env: upstreamEnv(), timeoutMs: 1_150_000, cwd: t.home });
    const output = r.stdout + r.stderr;
    assert.match(output, /=== RUN {3}TestWorkloadE2E/);
    assert.deepEqual(failedAssertions(output), [], `assertions of TestWorkloadE2E that fail:\n${output.slice(-8000)}`);
    assert.doesNotMatch(output, /\npanic: /, output.slice(-4000));
    assert.match(output, /--- PASS: TestWorkloadE2E/, output.slice(-4000));
    assert.equal(r.code, 0, output.slice(-4000));
    // Both of its workloads went through the whole lifecycle, and it left nothing behind.
    for (const name of ['unmanaged-namespace-workload', 'managed-namespace-workload']) assert.match(output, new RegExp(`testing workload: ${name}`));
    assert.deepEqual(await api.listAll(gateway.GatewayDefinition, {}), []);
    assert.deepEqual(await api.listAll(gateway.DomainNameDefinition, {}), []);
    assert.deepEqual(await api.listAll(workload.WorkloadInstance, { Name: 'managed-namespace-workload-0' }), []);
  });
});
