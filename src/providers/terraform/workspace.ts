// One private directory per tofu run of one TerraformInstance: the configuration, the variables
// file (mode 0600), the local state when no backend is configured, tofu's own home and temp
// directories, run.json (which tofu process runs, so a later run can tell whether it still does)
// and the commands' output. The directory is removed once the run's state is stored on the
// instance; until then it is what a crash leaves behind, and the next run of that instance adopts
// its state (see leftovers()).
//
// tofu runs in its own process group with a minimal environment (the server's own secrets, e.g.
// ENCRYPTION_KEY, never reach it), with its output going to files rather than pipes: when the
// server dies mid-apply, tofu is not killed by a broken pipe but finishes its operations and
// writes its state, as if the server were still there.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { processAlive } from '../../system.js';
import { TofuCommandError, isTransientTofuFailure } from './errors.js';
import { TofuScrubber } from './scrub.js';

/** Environment variables passed through to tofu (network and registry settings only). */
const PASSED_ENV = [
  'PATH',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'http_proxy',
  'https_proxy',
  'no_proxy',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'TZ',
  // The operator's CLI configuration: provider mirrors / a private registry (production).
  'TF_CLI_CONFIG_FILE',
];
const MAX_OUTPUT = 4 * 1024 * 1024;
const STOP_GRACE_MS = 20_000;

export interface RunRecord {
  instanceId: number;
  serverPid: number;
  tofuPid?: number;
  tofuPath?: string;
  command?: string;
  startedAt?: string;
}

export interface CommandResult {
  code: number;
  stdout: string;
  /** Scrubbed. */
  stderr: string;
}

export interface CommandOptions {
  signal?: AbortSignal;
  /** Exit codes that are not failures (default [0]; plan -detailed-exitcode: [0, 2]). */
  okCodes?: number[];
  /** Ask tofu to stop (SIGINT) after this long (default 60 min). */
  timeoutMs?: number;
}

/** Whether `pid` is still the tofu of a run (not a recycled pid). */
function tofuRunning(pid: number, tofuPath: string | undefined): boolean {
  if (!processAlive(pid)) return false;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return tofuPath ? cmdline.includes(tofuPath) : cmdline.includes('tofu');
  } catch {
    return true; // no /proc: trust the pid
  }
}

/** A workspace left by an earlier run of the instance. */
export interface Leftover {
  dir: string;
  record: RunRecord | undefined;
  /** The tofu process still runs (a run interrupted by a crash that tofu survived). */
  runningPid: number | undefined;
  /** Its local state file, when it has one. */
  state: string | undefined;
}

function prefixOf(instanceId: number): string {
  return `i${instanceId}-`;
}

/** Workspaces under `root` of `instanceId` whose server process is gone (or another process's). */
export function leftovers(root: string, instanceId: number): Leftover[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  const out: Leftover[] = [];
  for (const name of names) {
    if (!name.startsWith(prefixOf(instanceId))) continue;
    const dir = join(root, name);
    let record: RunRecord | undefined;
    try {
      record = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as RunRecord;
    } catch {
      record = undefined;
    }
    const runningPid = record?.tofuPid !== undefined && tofuRunning(record.tofuPid, record.tofuPath) ? record.tofuPid : undefined;
    const statePath = join(dir, 'terraform.tfstate');
    const state = existsSync(statePath) ? readFileSync(statePath, 'utf8') : undefined;
    out.push({ dir, record, runningPid, state });
  }
  return out;
}

export interface WorkspaceInput {
  tofu: string;
  root: string;
  instanceId: number;
  /** Shared provider cache (production: providers downloaded once per machine). */
  pluginCacheDir: string;
  /** Extra environment: AWS credentials, region, endpoint. */
  env: Record<string, string>;
  scrubber: TofuScrubber;
}

export class TofuWorkspace {
  readonly dir: string;
  readonly scrubber: TofuScrubber;
  readonly #tofu: string;
  readonly #env: NodeJS.ProcessEnv;
  readonly #record: RunRecord;
  #n = 0;
  /** The tofu process running now, if any. */
  #running: number | undefined;

  private constructor(input: WorkspaceInput, dir: string) {
    this.dir = dir;
    this.#tofu = input.tofu;
    this.scrubber = input.scrubber;
    this.scrubber.replace(`${dir}/`, '');
    this.scrubber.replace(dir, '<workspace>');
    for (const sub of ['home', 'tmp', 'logs']) mkdirSync(join(dir, sub), { mode: 0o700 });
    const env: NodeJS.ProcessEnv = {};
    for (const k of PASSED_ENV) if (process.env[k] !== undefined) env[k] = process.env[k];
    // A CLI configuration that does not exist only makes tofu print a warning on every run.
    if (env['TF_CLI_CONFIG_FILE'] && !existsSync(env['TF_CLI_CONFIG_FILE'])) delete env['TF_CLI_CONFIG_FILE'];
    Object.assign(env, {
      HOME: join(dir, 'home'),
      TMPDIR: join(dir, 'tmp'),
      TF_IN_AUTOMATION: '1',
      TF_INPUT: '0',
      CHECKPOINT_DISABLE: '1',
      TF_PLUGIN_CACHE_DIR: input.pluginCacheDir,
      // tofu gets the account's credentials explicitly; it must never fall back to the host's
      // instance role (the controller's own identity).
      AWS_EC2_METADATA_DISABLED: 'true',
      ...input.env,
    });
    this.#env = env;
    this.#record = { instanceId: input.instanceId, serverPid: process.pid };
    this.#writeRecord();
  }

  /** Creates a workspace for one run of the instance under `root` (made 0700 if missing). */
  static open(input: WorkspaceInput): TofuWorkspace {
    mkdirSync(input.root, { recursive: true, mode: 0o700 });
    mkdirSync(input.pluginCacheDir, { recursive: true, mode: 0o700 });
    const dir = mkdtempSync(join(input.root, `${prefixOf(input.instanceId)}${process.pid}-`));
    chmodSync(dir, 0o700);
    try {
      return new TofuWorkspace(input, dir);
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
  }

  #writeRecord(): void {
    writeFileSync(join(this.dir, 'run.json'), JSON.stringify(this.#record), { mode: 0o600 });
  }

  /** Writes a file (mode 0600) into the workspace; returns its path. */
  writeFile(name: string, content: string): string {
    const path = join(this.dir, name);
    writeFileSync(path, content, { mode: 0o600 });
    chmodSync(path, 0o600);
    return path;
  }

  readFile(name: string): string | undefined {
    const path = join(this.dir, name);
    return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
  }

  /** Whether a tofu command of this workspace is still running (it outlived an abort). */
  get busy(): boolean {
    return this.#running !== undefined && tofuRunning(this.#running, this.#tofu);
  }

  /** Runs `tofu <args>`; rejects with a TofuCommandError carrying tofu's scrubbed diagnostics. */
  run(args: string[], options: CommandOptions = {}): Promise<CommandResult> {
    const command = args[0] ?? 'tofu';
    const n = ++this.#n;
    const outPath = join(this.dir, 'logs', `${n}-${command}.out`);
    const errPath = join(this.dir, 'logs', `${n}-${command}.err`);
    const timeoutMs = options.timeoutMs ?? 60 * 60_000;
    const okCodes = options.okCodes ?? [0];
    return new Promise<CommandResult>((resolvePromise, reject) => {
      if (options.signal?.aborted) {
        reject(new TofuCommandError(`tofu ${command} was cancelled`, { command, exitCode: null, retryable: true }));
        return;
      }
      const out = openSync(outPath, 'w', 0o600);
      const err = openSync(errPath, 'w', 0o600);
      let child;
      try {
        child = spawn(this.#tofu, args, { cwd: this.dir, env: this.#env, detached: true, stdio: ['ignore', out, err] });
      } finally {
        closeSync(out);
        closeSync(err);
      }
      const pid = child.pid;
      if (pid !== undefined) {
        this.#running = pid;
        Object.assign(this.#record, { tofuPid: pid, tofuPath: this.#tofu, command, startedAt: new Date().toISOString() });
        this.#writeRecord();
      }
      let stopped: 'cancelled' | 'timeout' | undefined;
      // SIGINT is tofu's graceful stop: it lets operations in flight finish and writes the state.
      const stop = (why: 'cancelled' | 'timeout'): void => {
        if (stopped || child.exitCode !== null || pid === undefined) return;
        stopped = why;
        try {
          process.kill(-pid, 'SIGINT');
        } catch {
          /* already gone */
        }
        // Waiting longer would hold a shutdown up; a run that outlives this is found by the next one.
        graceTimer = setTimeout(() => finish(null, 'still stopping'), STOP_GRACE_MS);
        graceTimer.unref();
      };
      let graceTimer: NodeJS.Timeout | undefined;
      const timer = setTimeout(() => stop('timeout'), timeoutMs);
      const onAbort = (): void => stop('cancelled');
      options.signal?.addEventListener('abort', onAbort, { once: true });
      let finished = false;
      const finish = (code: number | null, how: string | null): void => {
        if (finished) return;
        finished = true;
        clearTimeout(timer);
        if (graceTimer) clearTimeout(graceTimer);
        options.signal?.removeEventListener('abort', onAbort);
        if (how !== 'still stopping') this.#running = undefined;
        const stdout = readCapped(outPath);
        const stderr = this.scrubber.scrub(readCapped(errPath)).trim();
        if (code !== null && okCodes.includes(code) && !stopped) {
          resolvePromise({ code, stdout, stderr });
          return;
        }
        const detail = diagnostics(stderr, this.scrubber.scrub(stdout));
        if (stopped) {
          const message =
            stopped === 'timeout'
              ? `tofu ${command} did not finish within ${Math.round(timeoutMs / 1000)} s and was asked to stop${detail ? `: ${detail}` : ''}`
              : `tofu ${command} was cancelled (the controller is stopping or lost its lease)`;
          reject(new TofuCommandError(message, { command, exitCode: code, retryable: true }));
          return;
        }
        reject(
          new TofuCommandError(`tofu ${command} failed: ${detail || `exit ${code ?? how}`}`, {
            command,
            exitCode: code,
            retryable: isTransientTofuFailure(detail),
          }),
        );
      };
      child.on('error', (e) => {
        finished = true;
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        this.#running = undefined;
        reject(new TofuCommandError(`cannot run tofu (${this.#tofu}): ${e.message}`, { command, exitCode: null, retryable: false }));
      });
      child.on('exit', (code, signal) => finish(code, signal));
    });
  }

  /** Removes the workspace and everything in it (variables included). */
  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function readCapped(path: string): string {
  try {
    const text = readFileSync(path, 'utf8');
    return text.length > MAX_OUTPUT ? text.slice(-MAX_OUTPUT) : text;
  } catch {
    return '';
  }
}

/**
 * tofu's diagnostics in one paragraph per error: the "Error: …" blocks of stderr (or stdout), with
 * source excerpts kept short and blank lines folded, so an event says what is wrong and where.
 */
export function diagnostics(stderr: string, stdout = ''): string {
  const text = (stderr || stdout).replace(/\r/g, '');
  const blocks = text.split(/\n(?=(?:╷\n│ )?Error: )/).filter((b) => /Error: /.test(b));
  const picked = (blocks.length > 0 ? blocks : [text]).map((b) =>
    b
      .split('\n')
      .map((l) => l.replace(/^[│╷╵]\s?/, '').trimEnd())
      .filter((l) => l.trim() !== '')
      .join(' ')
      .replace(/\s+/g, ' ')
      .trim(),
  );
  return picked.join('; ').slice(0, 1_500);
}
