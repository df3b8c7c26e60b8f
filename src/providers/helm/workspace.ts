// One private directory per helm operation: a kubeconfig written from the runtime instance's
// connection (mode 0600), values files, the post-renderer's config and wrapper, and helm's own
// cache/config/data homes, so nothing is shared with other operations or with the user's
// ~/.config/helm. The directory (credentials included) is removed when the operation ends;
// directories left by a process that died are removed the next time a provider starts.
//
// helm runs in its own process group with a minimal environment (the server's own secrets, e.g.
// ENCRYPTION_KEY, never reach helm or the post-renderer), and is killed, group and all, when the
// reconcile is aborted or a command overruns its time limit.
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { KubeConnection } from '../kube/connection.js';
import { processAlive } from '../../system.js';
import { HelmCommandError, HelmScrubber, isTransientHelmFailure } from './errors.js';
import type { PostRenderConfig } from './post-render.js';

const WORKSPACE_PREFIX = 'work-';
/** Environment variables passed through to helm (network settings only). */
const PASSED_ENV = ['PATH', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy', 'SSL_CERT_FILE', 'SSL_CERT_DIR', 'TZ'];
const MAX_STDOUT = 32 * 1024 * 1024;
const MAX_STDERR = 64 * 1024;
const KILL_GRACE_MS = 3_000;

/** The compiled post-renderer next to this module (dist/src/providers/helm/post-renderer.js). */
export const POST_RENDERER_SCRIPT = fileURLToPath(new URL('./post-renderer.js', import.meta.url));

/** Removes workspaces under `root` left by processes that no longer run. */
export function removeStaleWorkspaces(root: string): number {
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return 0;
  }
  for (const name of names) {
    const m = /^work-(\d+)-/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || processAlive(pid)) continue;
    rmSync(join(root, name), { recursive: true, force: true });
    removed++;
  }
  return removed;
}

function kubeconfigYaml(conn: KubeConnection): string {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'runtime', cluster: { server: conn.server, ...(conn.caPem ? { 'certificate-authority-data': b64(conn.caPem) } : {}) } }],
    users: [
      {
        name: 'threeport',
        user: {
          ...(conn.clientCertPem ? { 'client-certificate-data': b64(conn.clientCertPem) } : {}),
          ...(conn.clientKeyPem ? { 'client-key-data': b64(conn.clientKeyPem) } : {}),
          ...(conn.token ? { token: conn.token } : {}),
        },
      },
    ],
    contexts: [{ name: 'runtime', context: { cluster: 'runtime', user: 'threeport' } }],
    'current-context': 'runtime',
  });
}

/** Single-quotes a string for /bin/sh. */
function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface RunOptions {
  signal?: AbortSignal;
  /** Kill helm after this long (default 10 min). */
  timeoutMs?: number;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

export class HelmWorkspace {
  readonly dir: string;
  readonly kubeconfig: string;
  readonly scrubber = new HelmScrubber();
  readonly #helm: string;
  readonly #env: NodeJS.ProcessEnv;

  private constructor(helm: string, dir: string, conn: KubeConnection) {
    this.#helm = helm;
    this.dir = dir;
    this.scrubber.addSecret(conn.clientKeyPem, conn.token);
    this.scrubber.replace(`${dir}/`, '');
    this.scrubber.replace(dir, '<workspace>');
    for (const sub of ['cache', 'config', 'data', 'tmp']) mkdirSync(join(dir, sub), { mode: 0o700 });
    this.kubeconfig = this.writeFile('kubeconfig', kubeconfigYaml(conn));
    const env: NodeJS.ProcessEnv = {};
    for (const k of PASSED_ENV) if (process.env[k] !== undefined) env[k] = process.env[k];
    Object.assign(env, {
      HOME: dir,
      TMPDIR: join(dir, 'tmp'),
      KUBECONFIG: this.kubeconfig,
      HELM_CACHE_HOME: join(dir, 'cache'),
      HELM_CONFIG_HOME: join(dir, 'config'),
      HELM_DATA_HOME: join(dir, 'data'),
    });
    this.#env = env;
  }

  /** Creates a workspace under `root` (made 0700 if missing) for one connection. */
  static open(helm: string, conn: KubeConnection, root: string = join(tmpdir(), 'threeport-helm')): HelmWorkspace {
    mkdirSync(root, { recursive: true, mode: 0o700 });
    const dir = mkdtempSync(join(root, `${WORKSPACE_PREFIX}${process.pid}-`));
    chmodSync(dir, 0o700);
    try {
      return new HelmWorkspace(helm, dir, conn);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Writes a file (mode 0600) into the workspace; returns its path. */
  writeFile(name: string, content: string, mode = 0o600): string {
    const path = join(this.dir, name);
    writeFileSync(path, content, { mode, flag: 'wx' });
    return path;
  }

  /** Writes the post-renderer's config and a wrapper helm can execute; returns the wrapper's path. */
  postRenderer(config: PostRenderConfig): string {
    const configPath = this.writeFile('post-render.json', JSON.stringify(config));
    return this.writeFile(
      'post-renderer.sh',
      `#!/bin/sh\nexec ${shQuote(process.execPath)} ${shQuote(POST_RENDERER_SCRIPT)} ${shQuote(configPath)}\n`,
      0o700,
    );
  }

  /** Runs helm with `args`; rejects with a HelmCommandError carrying helm's scrubbed stderr. */
  run(args: string[], options: RunOptions = {}): Promise<RunResult> {
    const verb = args.filter((a) => !a.startsWith('-')).slice(0, 1).join(' ') || 'helm';
    const command = args[0] === 'upgrade' && args.includes('--install') ? 'upgrade --install' : verb;
    const timeoutMs = options.timeoutMs ?? 10 * 60_000;
    return new Promise<RunResult>((resolvePromise, reject) => {
      if (options.signal?.aborted) {
        reject(new HelmCommandError(`helm ${command} was cancelled`, { command, exitCode: null, stderr: '', retryable: true }));
        return;
      }
      const child = spawn(this.#helm, args, { cwd: this.dir, env: this.#env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      let killedFor: 'cancelled' | 'timeout' | undefined;
      let graceTimer: NodeJS.Timeout | undefined;
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        if (stdout.length < MAX_STDOUT) stdout += d;
      });
      child.stderr.setEncoding('utf8').on('data', (d: string) => {
        stderr = (stderr + d).slice(-MAX_STDERR);
      });
      const killGroup = (why: 'cancelled' | 'timeout'): void => {
        if (killedFor || child.exitCode !== null || child.pid === undefined) return;
        killedFor = why;
        const pid = child.pid;
        try {
          process.kill(-pid, 'SIGTERM');
        } catch {
          /* already gone */
        }
        graceTimer = setTimeout(() => {
          try {
            process.kill(-pid, 'SIGKILL');
          } catch {
            /* already gone */
          }
        }, KILL_GRACE_MS);
      };
      const timer = setTimeout(() => killGroup('timeout'), timeoutMs);
      const onAbort = (): void => killGroup('cancelled');
      options.signal?.addEventListener('abort', onAbort, { once: true });
      const done = (): void => {
        clearTimeout(timer);
        if (graceTimer) clearTimeout(graceTimer);
        options.signal?.removeEventListener('abort', onAbort);
      };
      child.on('error', (err) => {
        done();
        reject(
          new HelmCommandError(`cannot run helm (${this.#helm}): ${err.message}`, {
            command,
            exitCode: null,
            stderr: '',
            retryable: false,
          }),
        );
      });
      child.on('close', (code, signal) => {
        done();
        const cleanErr = this.scrubber.scrub(stderr).trim();
        if (code === 0) {
          resolvePromise({ stdout, stderr: cleanErr });
          return;
        }
        if (killedFor) {
          const message =
            killedFor === 'timeout'
              ? `helm ${command} did not finish within ${Math.round(timeoutMs / 100) / 10} s and was stopped${cleanErr ? `: ${cleanErr}` : ''}`
              : `helm ${command} was cancelled`;
          reject(new HelmCommandError(message, { command, exitCode: code, stderr: cleanErr, retryable: true }));
          return;
        }
        const detail = cleanErr.replace(/^Error: /, '') || `exit ${code ?? signal}`;
        reject(
          new HelmCommandError(detail, {
            command,
            exitCode: code,
            stderr: cleanErr,
            retryable: isTransientHelmFailure(cleanErr),
          }),
        );
      });
    });
  }

  /** Removes the workspace and everything in it (the kubeconfig included). */
  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
