// The container image: scripts/image/build.sh builds it (rootfs cached by version), pushes it to
// the local OCI registry; podman pulls it back from there and runs it against a harness
// PostgreSQL, and /readyz answers. The image runs as a non-root user and carries no secret.
// Skipped, with the reason, where podman or mmdebstrap is missing or THREEPORT_SKIP_IMAGE=1.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { FieldCipher } from '../../src/crypto/field-encryption.js';
import { startTestPostgres, type TestPostgres } from '../harness/postgres.js';
import { freePort } from '../../src/system.js';
import { findRegistryBinary, startRegistry } from '../harness/registry.js';
import { until } from '../harness/until.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));
// What podman needs on these machines (../shared/notes/environment.md).
const PODMAN_RUN = ['--runtime', 'runc', '--network=host', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024'];

function skipReason(): string | false {
  if (process.env['THREEPORT_SKIP_IMAGE'] === '1') return 'THREEPORT_SKIP_IMAGE=1';
  for (const tool of ['podman', 'mmdebstrap']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed (scripts/install-test-deps.sh installs it)`;
  }
  const probe = spawnSync('podman', ['info', '--format', '{{.Host.OCIRuntime.Name}}'], { encoding: 'utf8', timeout: 60_000 });
  if (probe.status !== 0) return `podman cannot run here: ${probe.stderr.trim().split('\n').at(-1)}`;
  if (!findRegistryBinary()) return 'the OCI registry is not built (bash scripts/k8s/build-test-bins.sh)';
  return false;
}
const SKIP = skipReason();

function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

const cleanup: (() => Promise<unknown> | unknown)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

test('image: built reproducibly by scripts/image/build.sh, pushed to the registry, pulled and run by podman; /readyz answers', { skip: SKIP, timeout: 45 * 60_000 }, async (t) => {
  const registry = await startRegistry(findRegistryBinary()!);
  cleanup.push(() => registry.child.kill());
  const local = `localhost/threeport:test-${process.pid}`;
  const remote = `127.0.0.1:${registry.port}/threeport:test`;
  cleanup.push(() => run('podman', ['rmi', '-f', local, remote], 60_000));

  // A cold machine builds the Debian rootfs first (minutes); later runs reuse it from the cache.
  const build = await run('bash', ['scripts/image/build.sh', '--tag', local, '--push', remote], 40 * 60_000);
  assert.equal(build.code, 0, `build.sh failed:\n${build.err.slice(-4000)}`);
  t.diagnostic(build.err.split('\n').filter((l) => l.startsWith('[image]')).join('\n'));
  t.diagnostic(`image ID ${build.out.trim().split('\n').at(-1)}`);

  // Non-root, and nothing secret in its configuration.
  const inspect = await run('podman', ['image', 'inspect', local, '--format', '{{json .Config}}'], 60_000);
  const config = JSON.parse(inspect.out) as { User: string; Env: string[]; Entrypoint: string[] };
  assert.equal(config.User, '10001:10001');
  assert.deepEqual(config.Env.filter((e) => /KEY|PASSWORD|SECRET|TOKEN|DATABASE_URL/i.test(e)), []);

  // From the registry, not the local store.
  assert.equal((await run('podman', ['rmi', '-f', local], 60_000)).code, 0);
  const pull = await run('podman', ['pull', '--tls-verify=false', remote], 10 * 60_000);
  assert.equal(pull.code, 0, pull.err);

  const pg: TestPostgres = await startTestPostgres();
  cleanup.push(() => pg.stop());
  const port = await freePort();
  const name = `threeport-image-test-${process.pid}`;
  cleanup.push(() => run('podman', ['rm', '-f', '-t', '2', name], 60_000));
  const container = await run(
    'podman',
    ['run', '-d', '--name', name, ...PODMAN_RUN, '--read-only', '--tmpfs', '/tmp', '--tmpfs', '/home/threeport/data:rw,mode=1777',
      '-e', `THREEPORT_DATABASE_URL=${pg.url}`, '-e', `ENCRYPTION_KEY=${FieldCipher.generateKey()}`,
      remote, 'server', '--role', 'all', '--no-auth', '--host', '127.0.0.1', '--port', String(port), '--data-dir', '/home/threeport/data'],
    5 * 60_000,
  );
  assert.equal(container.code, 0, container.err);
  const ready = await until('the container /readyz', async () => {
    const state = await run('podman', ['inspect', name, '--format', '{{.State.Status}}'], 30_000);
    if (state.out.trim() === 'exited') return 'exited';
    const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
    return res?.status === 200 ? 'ready' : undefined;
  }, 180_000, 250);
  const logs = await run('podman', ['logs', name], 30_000);
  assert.equal(ready, 'ready', `the container exited:\n${logs.out}${logs.err}`);
  // It serves the API (schema applied to the harness database), as uid 10001.
  const list = await fetch(`http://127.0.0.1:${port}/v0/control-plane-definitions`);
  assert.equal(list.status, 200);
  const dashboard = await fetch(`http://127.0.0.1:${port}/dashboard/`);
  assert.equal(dashboard.status, 200, 'the image carries the dashboard bundle');
  const uid = await run('podman', ['exec', name, '/usr/bin/node', '-e', 'process.stdout.write(String(process.getuid()))'], 60_000);
  assert.equal(uid.out, '10001');
});
