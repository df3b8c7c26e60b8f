// End to end: `tptctl up` and `down` with the local provider beyond the happy
// path (a failed up leaves nothing behind, auth disabled, --keep-data), the
// flags that fail before anything starts, plugins, and --debug.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { aws, controlPlane, kubernetesRuntime } from '../../src/kinds/index.js';
import { runningPostgres, runningServer } from '../../src/cli/local-provider.js';
import { processAlive } from '../../src/system.js';
import { errorLine, FIXTURES, parseTable, STAND_IN_RECONCILERS, TptctlHome } from './tptctl-harness.js';

describe('tptctl up and down, local provider', () => {
  const t = new TptctlHome();
  after(() => t.cleanup());

  it('refuses bad names and providers that come later, before starting anything', async () => {
    const long = await t.run(['up', '-n', 'a'.repeat(31)]);
    assert.equal(errorLine(long), `control plane name "${'a'.repeat(31)}" is 31 characters long; the limit is 30`);
    for (const provider of ['kind', 'eks']) {
      const r = await t.run(['up', '-n', 'later', '--provider', provider]);
      assert.equal(
        errorLine(r),
        `provider "${provider}" is not available yet: it comes with a later release; use --provider local for a control plane on this machine`,
      );
    }
    const missing = await t.run(['up']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /required option '-n, --name <name>' not specified/);
    assert.equal(existsSync(t.configPath), false);
    assert.equal(existsSync(join(t.threeportDir, 'later')), false);
  });

  it('a failed up leaves no config entry, no state and no process', async () => {
    // A server that cannot start: the controller module it is told to load does not exist.
    const r = await t.run(['up', '-n', 'broken', '--port', '0'], { env: { THREEPORT_TEST_RECONCILERS: join(t.home, 'no-such-module.js') } });
    const line = errorLine(r);
    assert.match(line, /^control plane "broken" did not start: threeport server exited with code 1/);
    assert.match(line, /nothing was written to the threeport config$/);
    assert.equal(t.controlPlane('broken'), undefined);
    const dir = join(t.threeportDir, 'broken');
    assert.equal(existsSync(dir), false);
    assert.equal(runningServer(dir), undefined);
    assert.equal(runningPostgres(dir), undefined);
    assert.ok(existsSync(join(t.threeportDir, 'broken.failed-up.log')), 'the log of the failed start is kept for reading');
    // The name is free for the next attempt (upstream issue #227).
    assert.doesNotMatch((await t.run(['up', '-n', 'broken', '--provider', 'eks'])).stderr, /already exists/);
  });

  it('with --auth-enabled=false the API speaks plain HTTP, and --keep-data keeps the objects for the next up', async () => {
    // Binaries for a simulated cluster "exist" (empty files): up registers the default runtime. The stand-in
    // reconcilers replace the runtime controller, so nothing tries to run them.
    const bin = join(t.home, 'k8s-bin');
    mkdirSync(bin, { recursive: true });
    for (const f of ['etcd', 'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kwok', 'kwok-stages.yaml']) writeFileSync(join(bin, f), '');
    const env = { THREEPORT_K8S_BIN_DIR: bin, THREEPORT_TEST_RECONCILERS: STAND_IN_RECONCILERS };
    const up = await t.run(['up', '-n', 'plain', '--auth-enabled=false', '--port', '0'], { env });
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, /control plane "plain" is up at http:\/\/127\.0\.0\.1:\d+ \(provider local, no auth\)/);
    assert.match(up.stdout, /\ndefault Kubernetes runtime "threeport-plain" registered: a simulated \(kwok\) cluster that the control plane starts\n/);
    const runtimes = parseTable((await t.run(['get', 'kubernetes-runtimes'])).stdout);
    assert.deepEqual(
      runtimes.rows.map((r) => [r['KUBERNETES RUNTIME DEFINITION'], r['KUBERNETES RUNTIME INSTANCE']]),
      [['threeport-plain', 'threeport-plain']],
    );
    const krd = parseTable((await t.run(['get', 'kubernetes-runtime-definitions'])).stdout);
    assert.equal(krd.rows[0]?.['INFRA PROVIDER'], 'kwok');
    const cp = t.controlPlane('plain')!;
    assert.equal(cp.AuthEnabled, false);
    assert.equal(cp.CACert, undefined);
    assert.equal(cp.Credentials, undefined);
    // As upstream's `up`: the default runtime hosts the control plane, and the control plane
    // registers itself (genesis definition and instance, created reconciled).
    const registered = t.api('plain');
    const host = await registered.listAll(kubernetesRuntime.KubernetesRuntimeInstance, { ThreeportControlPlaneHost: true });
    assert.deepEqual(host.map((r) => r.Name), ['threeport-plain']);
    const cpd = await registered.getByName(controlPlane.ControlPlaneDefinition, 'plain');
    assert.equal(cpd.AuthEnabled, false);
    assert.equal(cpd.Reconciled, true);
    const cpi = await registered.getByName(controlPlane.ControlPlaneInstance, 'plain');
    assert.deepEqual(
      [cpi.Genesis, cpi.IsSelf, cpi.Reconciled, cpi.Namespace, cpi.KubernetesRuntimeInstanceID, cpi.ControlPlaneDefinitionID, cpi.ApiServerEndpoint],
      [true, true, true, 'threeport-control-plane', host[0]!.ID, cpd.ID, cp.APIServer],
    );
    const planes = parseTable((await t.run(['get', 'control-planes'])).stdout);
    // The tree of control planes: the genesis one at its root.
    assert.deepEqual(planes.rows.map((r) => [r['NAME'], r['ROLE'], r['NAMESPACE']]), [['plain', 'genesis, self', 'threeport-control-plane']]);

    const create = await t.run(['create', 'aws-account', '-c', join(FIXTURES, 'aws-account.yaml')]);
    assert.equal(create.code, 0, create.stderr);
    const pid = Number(readFileSync(join(t.threeportDir, 'plain', 'threeport.pid'), 'utf8'));

    const down = await t.run(['down', '-n', 'plain', '--keep-data']);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout, /control plane "plain" stopped; its data is kept in .*\.threeport\/plain\n/);
    assert.equal(processAlive(pid), false);
    assert.equal(t.controlPlane('plain'), undefined);
    assert.ok(existsSync(join(t.threeportDir, 'plain', 'db')));

    const again = await t.run(['up', '-n', 'plain', '--auth-enabled=false', '--port', '0'], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /\ndefault Kubernetes runtime: "threeport-plain" \(already registered\)\n/);
    assert.equal((await t.api('plain').listAll(controlPlane.ControlPlaneInstance, {})).length, 1, 'a second up registers the control plane once');
    const accounts = parseTable((await t.run(['get', 'aws-accounts'])).stdout);
    assert.deepEqual(
      accounts.rows.map((r) => r['NAME']),
      ['default-account'],
    );
    const api = t.api('plain');
    assert.equal((await api.getByName(aws.AwsAccount, 'default-account')).AccountID, '555555555555');

    const down2 = await t.run(['down', '-n', 'plain']);
    assert.equal(down2.code, 0, down2.stderr);
    assert.equal(existsSync(join(t.threeportDir, 'plain')), false);
    const missing = await t.run(['down', '-n', 'plain']);
    assert.match(errorLine(missing), /^no control plane named "plain": it is not in .*config\.yaml and .*\.threeport\/plain does not exist$/);
  });

  it('runs plugins from THREEPORT_PLUGIN_DIR, passing the arguments and the config path', async () => {
    const dir = join(t.home, 'plugins');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'hello'), '#!/bin/sh\necho "hello $* from $THREEPORT_CONFIG"\nexit 3\n');
    chmodSync(join(dir, 'hello'), 0o755);
    writeFileSync(join(dir, 'version'), '#!/bin/sh\necho shadowed\n');
    chmodSync(join(dir, 'version'), 0o755);
    const env = { THREEPORT_PLUGIN_DIR: dir };
    const r = await t.run(['hello', 'a', '--b'], { env });
    assert.equal(r.code, 3);
    assert.equal(r.stdout, `hello a --b from ${t.configPath}\n`);
    const core = await t.run(['version'], { env });
    assert.match(core.stdout, /^tptctl v/);
    const help = await t.run(['--help'], { env });
    assert.match(help.stdout, /Plugins \(.*plugins\):\n {2}hello\n/);
    const unknown = await t.run(['nosuchcommand'], { env });
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown command 'nosuchcommand'/);
  });

  it('config current-control-plane switches between configured control planes, keeping what it does not know', async () => {
    const path = join(t.home, 'two-planes.yaml');
    writeFileSync(path, 'CurrentControlPlane: a\nControlPlanes:\n  - Name: a\n    Provider: kind\n    APIServer: localhost:443\n  - Name: b\n    Provider: local\n    APIServer: 127.0.0.1:1\n    Custom: {kept: true}\n');
    const set = await t.run(['config', 'current-control-plane', '-n', 'b', '--threeport-config', path]);
    assert.equal(set.code, 0, set.stderr);
    const text = readFileSync(path, 'utf8');
    assert.match(text, /^CurrentControlPlane: b\n/);
    assert.match(text, /Custom: \{ kept: true \}/);
    const list = parseTable((await t.run(['config', 'get-control-planes'], { env: { THREEPORT_CONFIG: path } })).stdout);
    assert.deepEqual(
      list.rows.map((r) => [r['CURRENT'], r['NAME'], r['PROVIDER']]),
      [
        ['', 'a', 'kind'],
        ['*', 'b', 'local'],
      ],
    );
    const unknown = await t.run(['config', 'current-control-plane', '-n', 'c', '--threeport-config', path]);
    assert.match(errorLine(unknown), /^control plane "c" is not in .*two-planes\.yaml \(known: a, b\)$/);
    const down = await t.run(['down', '-n', 'a', '--threeport-config', path]);
    assert.equal(errorLine(down), 'control plane "a" uses provider "kind"; "tptctl down" for the kind and eks providers comes with a later release');
  });

  it('prints stack traces only with --debug', async () => {
    const plain = await t.run(['get', 'workloads', '--threeport-config', join(t.home, 'none.yaml')]);
    assert.equal(errorLine(plain), `no control plane is configured in ${join(t.home, 'none.yaml')}: start one with "tptctl up -n <name>"`);
    const debug = await t.run(['--debug', 'get', 'workloads', '--threeport-config', join(t.home, 'none.yaml')]);
    assert.equal(debug.code, 1);
    assert.match(debug.stderr, /^Error: no control plane is configured/);
    assert.match(debug.stderr, /\n {4}at /);
  });
});
