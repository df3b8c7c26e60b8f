// deploy/helm/threeport: `helm lint` passes; installs without a database URL, or with an external
// database but no encryption key, fail with a message naming the value; every rendered object is
// accepted by a real kube-apiserver with strict server-side validation; `helm install` into a
// simulated (kwok) cluster makes every Deployment Available and the evaluation StatefulSet ready;
// an upgrade keeps the generated encryption key and certificates.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { findHelmBinary, pollUntil, SKIP_KUBE, SKIP_KUBE_REASON, startKubeClusters, type KubeCluster, type KubeClusterSet } from '../harness/kube-cluster.js';

const CHART = fileURLToPath(new URL('../../../deploy/helm/threeport', import.meta.url));
const KEY = Buffer.alloc(32, 7).toString('base64');
const EXTERNAL = ['--set', 'database.url=postgres://threeport:pw@db.example:5432/threeport', '--set', `encryption.key=${KEY}`];
const EVALUATION = ['--set', 'postgresql.enabled=true', '--set', 'postgresql.persistence.enabled=false'];

interface Run {
  code: number | null;
  out: string;
  err: string;
}
function run(cmd: string, args: string[], stdin = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out, err }));
    child.stdin.end(stdin);
  });
}

let helm: string;
const helmRun = (args: string[]) => run(helm, args);
async function template(args: string[]): Promise<Record<string, any>[]> {
  const r = await helmRun(['template', 'tp', CHART, '--namespace', 'threeport', ...args]);
  assert.equal(r.code, 0, r.err);
  return parseAllDocuments(r.out).map((d) => d.toJS()).filter((o) => o);
}

test('helm lint passes with an external database, with the evaluation database, and without TLS', { skip: SKIP_KUBE && SKIP_KUBE_REASON }, async () => {
  helm = findHelmBinary();
  for (const values of [EXTERNAL, EVALUATION, [...EXTERNAL, '--set', 'tls.enabled=false', '--set', 'metrics.serviceMonitor.enabled=true']]) {
    const r = await helmRun(['lint', '--strict', CHART, ...values]);
    assert.equal(r.code, 0, `helm lint ${values.join(' ')}: ${r.out}${r.err}`);
  }
});

test('a missing database URL, or a missing encryption key with an external database, fails naming the value', { skip: SKIP_KUBE && SKIP_KUBE_REASON }, async () => {
  helm = findHelmBinary();
  const noDb = await helmRun(['template', 'tp', CHART]);
  assert.notEqual(noDb.code, 0);
  assert.match(noDb.err, /database\.url is required/);
  const noKey = await helmRun(['template', 'tp', CHART, '--set', 'database.url=postgres://u:p@db:5432/x']);
  assert.notEqual(noKey.code, 0);
  assert.match(noKey.err, /encryption\.key is required with an external database/);
  const existing = await helmRun(['template', 'tp', CHART, '--set', 'database.existingSecret=db', '--set', 'encryption.existingSecret=enc']);
  assert.equal(existing.code, 0, existing.err);
  assert.doesNotMatch(existing.out, /kind: Secret\n(?:.*\n){0,3}\s+name: tp-threeport-(database|encryption)/, 'supplied Secrets are not re-created');
});

test('rendered objects: probes on the plain metrics port, non-root, Secrets wired, ServiceMonitor only when enabled', { skip: SKIP_KUBE && SKIP_KUBE_REASON }, async () => {
  helm = findHelmBinary();
  const objs = await template(EXTERNAL);
  const kinds = objs.map((o) => `${o.kind}/${o.metadata.name}`).sort();
  assert.deepEqual(kinds, [
    'Deployment/tp-threeport-api', 'Deployment/tp-threeport-controllers',
    'NetworkPolicy/tp-threeport-api', 'NetworkPolicy/tp-threeport-controllers',
    'PodDisruptionBudget/tp-threeport-api', 'PodDisruptionBudget/tp-threeport-controllers',
    'Secret/tp-threeport-client-tls', 'Secret/tp-threeport-database', 'Secret/tp-threeport-encryption', 'Secret/tp-threeport-tls',
    'Service/tp-threeport-api', 'Service/tp-threeport-controllers-metrics', 'ServiceAccount/tp-threeport',
  ]);
  for (const d of objs.filter((o) => o.kind === 'Deployment')) {
    const c = d.spec.template.spec.containers[0];
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    assert.equal(c.readinessProbe.httpGet.port, 'metrics');
    assert.equal(d.spec.template.spec.securityContext.runAsNonRoot, true);
    assert.equal(c.securityContext.readOnlyRootFilesystem, true);
    assert.deepEqual(c.env.map((e: any) => [e.name, e.valueFrom?.secretKeyRef?.name]).slice(0, 2), [
      ['THREEPORT_DATABASE_URL', 'tp-threeport-database'],
      ['ENCRYPTION_KEY', 'tp-threeport-encryption'],
    ]);
    assert.ok(c.args.includes(`--role=${d.metadata.name.replace('tp-threeport-', '')}`));
    // The pods mount the server certificate and the CA certificate, never the CA key.
    const tls = d.spec.template.spec.volumes.find((v: any) => v.name === 'tls');
    assert.deepEqual(tls.secret.items.map((i: any) => i.path), ['ca.crt', 'server.crt', 'server.key']);
  }
  const url = objs.find((o) => o.metadata.name === 'tp-threeport-database')!;
  assert.equal(Buffer.from(url.data.url, 'base64').toString(), 'postgres://threeport:pw@db.example:5432/threeport');
  // The generated server certificate names the API Service.
  const tls = objs.find((o) => o.metadata.name === 'tp-threeport-tls')!;
  const cert = new X509Certificate(Buffer.from(tls.data['tls.crt'], 'base64'));
  assert.match(cert.subjectAltName ?? '', /DNS:tp-threeport-api\.threeport\.svc/);
  assert.ok(cert.checkIssued(new X509Certificate(Buffer.from(tls.data['ca.crt'], 'base64'))));

  const monitored = await template([...EXTERNAL, '--set', 'metrics.serviceMonitor.enabled=true']);
  const sm = monitored.find((o) => o.kind === 'ServiceMonitor');
  assert.equal(sm?.apiVersion, 'monitoring.coreos.com/v1');
  assert.deepEqual(sm?.spec.endpoints.map((e: any) => e.port), ['metrics']);
});

let set: KubeClusterSet | undefined;
let cluster: KubeCluster;
before(async () => {
  if (SKIP_KUBE) return;
  set = await startKubeClusters({ names: ['chart'] });
  cluster = set.get('chart');
});
after(async () => {
  await set?.stopAll();
});

async function kubectl(args: string[], stdin = ''): Promise<Run> {
  return run('kubectl', [`--kubeconfig=${cluster.kubeconfigPath}`, '--request-timeout=30s', ...args], stdin);
}

async function secretData(ns: string, name: string): Promise<Record<string, string>> {
  const r = await cluster.request('GET', `/api/v1/namespaces/${ns}/secrets/${name}`);
  assert.equal(r.status, 200, r.body);
  return (r.json as { data: Record<string, string> }).data;
}

test('helm install into a simulated cluster: strict server-side validation, Deployments Available, upgrade keeps generated secrets', { skip: SKIP_KUBE && SKIP_KUBE_REASON, timeout: 600_000 }, async () => {
  helm = findHelmBinary();
  const kube = ['--kubeconfig', cluster.kubeconfigPath];
  assert.equal((await kubectl(['create', 'namespace', 'threeport'])).code, 0);

  // Every object the chart renders, both ways of supplying the database, validated by the API server.
  for (const values of [EVALUATION, EXTERNAL]) {
    const r = await helmRun(['template', 'tp', CHART, '--namespace', 'threeport', ...values]);
    assert.equal(r.code, 0, r.err);
    const dry = await kubectl(['apply', '-n', 'threeport', '--server-side', '--dry-run=server', '--validate=strict', '--field-manager=chart-test', '-f', '-'], r.out);
    assert.equal(dry.code, 0, `server-side dry run of ${values.join(' ')}: ${dry.err}`);
  }

  // Install-time failure names the value (helm install, not only template).
  const noKey = await helmRun(['install', 'bad', CHART, ...kube, '--namespace', 'threeport', '--set', 'database.url=postgres://u:p@db:5432/x']);
  assert.notEqual(noKey.code, 0);
  assert.match(noKey.err, /encryption\.key is required/);

  const install = await helmRun(['install', 'tp', CHART, ...kube, '--namespace', 'threeport', ...EVALUATION, '--set', 'api.replicas=2', '--wait', '--timeout', '5m']);
  assert.equal(install.code, 0, `${install.out}${install.err}`);
  for (const name of ['tp-threeport-api', 'tp-threeport-controllers']) {
    const available = await pollUntil(`${name} Available`, async () => {
      const r = await cluster.request('GET', `/apis/apps/v1/namespaces/threeport/deployments/${name}`);
      const d = r.json as { spec: { replicas: number }; status?: { availableReplicas?: number; conditions?: { type: string; status: string }[] } };
      const ok = d.status?.conditions?.some((c) => c.type === 'Available' && c.status === 'True') && d.status.availableReplicas === d.spec.replicas;
      return ok ? d : undefined;
    }, { timeoutMs: 120_000 });
    assert.ok(available);
  }
  const sts = await cluster.request('GET', '/apis/apps/v1/namespaces/threeport/statefulsets/tp-threeport-postgresql');
  assert.equal((sts.json as { status: { readyReplicas?: number } }).status.readyReplicas, 1);
  const pdb = await cluster.request('GET', '/apis/policy/v1/namespaces/threeport/poddisruptionbudgets/tp-threeport-api');
  assert.equal(pdb.status, 200);

  const key = await secretData('threeport', 'tp-threeport-encryption');
  const tls = await secretData('threeport', 'tp-threeport-tls');
  const pg = await secretData('threeport', 'tp-threeport-postgresql');
  assert.equal(Buffer.from(Buffer.from(key['key']!, 'base64').toString(), 'base64').length, 32, 'a generated key is 32 bytes');
  const upgrade = await helmRun(['upgrade', 'tp', CHART, ...kube, '--namespace', 'threeport', ...EVALUATION, '--set', 'api.replicas=3', '--wait', '--timeout', '5m']);
  assert.equal(upgrade.code, 0, `${upgrade.out}${upgrade.err}`);
  assert.deepEqual(await secretData('threeport', 'tp-threeport-encryption'), key, 'the upgrade kept the encryption key');
  assert.deepEqual(await secretData('threeport', 'tp-threeport-tls'), tls, 'the upgrade kept the certificates');
  assert.deepEqual(await secretData('threeport', 'tp-threeport-postgresql'), pg, 'the upgrade kept the database password');
  const scaled = await cluster.request('GET', '/apis/apps/v1/namespaces/threeport/deployments/tp-threeport-api');
  assert.equal((scaled.json as { status: { availableReplicas?: number } }).status.availableReplicas, 3);
});
