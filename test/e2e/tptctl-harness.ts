// Runs the real compiled tptctl in a throwaway HOME, so the threeport config
// (~/.threeport/config.yaml) and local control planes (~/.threeport/<name>/)
// of a test never touch the user's. `cleanup` brings down every control plane
// the test started and kills anything left running.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import type { ThreeportClient } from '../../src/client/api-client.js';
import { clientFor, type ControlPlaneConfig } from '../../src/cli/threeport-config.js';
import { runningPostgres, runningServer } from '../../src/cli/local-provider.js';
import { processAlive } from '../../src/system.js';

/** The repository root (this file runs from dist/test/e2e/). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const TPTCTL = join(ROOT, 'dist', 'src', 'bin', 'tptctl.js');
export const FIXTURES = join(ROOT, 'test', 'fixtures', 'configs');
export const STAND_IN_RECONCILERS = fileURLToPath(new URL('./stand-in-reconcilers.js', import.meta.url));

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

/** Runs a program to its end, collecting its output; one that outlives its timeout is killed and fails. */
export function runProgram(bin: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${bin} ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout: ${stdout.slice(-4000)}\nstderr: ${stderr.slice(-4000)}`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

export class TptctlHome {
  readonly home = mkdtempSync(join(tmpdir(), 'tptctl-e2e-'));
  readonly #clients: ThreeportClient[] = [];

  get threeportDir(): string {
    return join(this.home, '.threeport');
  }

  get configPath(): string {
    return join(this.threeportDir, 'config.yaml');
  }

  env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = { ...process.env, HOME: this.home, NO_COLOR: '1' };
    for (const k of ['THREEPORT_CONFIG', 'THREEPORT_PLUGIN_DIR', 'ENCRYPTION_KEY', 'THREEPORT_DATABASE_URL', 'FORCE_COLOR', 'THREEPORT_TEST_RECONCILERS', 'THREEPORT_K8S_BIN_DIR']) {
      delete env[k];
    }
    return { ...env, ...extra };
  }

  /** Runs `node dist/src/bin/tptctl.js args...`; a run that outlives its timeout is killed and fails. */
  run(args: string[], options: RunOptions = {}): Promise<RunResult> {
    return runProgram(process.execPath, [TPTCTL, ...args], { ...options, cwd: options.cwd ?? this.home, env: this.env(options.env) });
  }

  /** The parsed threeport config (undefined when there is no file). */
  config(): { CurrentControlPlane?: string; ControlPlanes?: ControlPlaneConfig[] } | undefined {
    if (!existsSync(this.configPath)) return undefined;
    return parse(readFileSync(this.configPath, 'utf8')) as { CurrentControlPlane?: string; ControlPlanes?: ControlPlaneConfig[] };
  }

  controlPlane(name: string): ControlPlaneConfig | undefined {
    return this.config()?.ControlPlanes?.find((cp) => cp.Name === name);
  }

  /** An API client with the credentials tptctl wrote into the config. */
  api(name: string): ThreeportClient {
    const cp = this.controlPlane(name);
    if (!cp) throw new Error(`control plane ${name} is not in ${this.configPath}`);
    const client = clientFor(cp);
    this.#clients.push(client);
    return client;
  }

  /** `tptctl down` for every control plane still configured, then kill whatever a state directory still runs. */
  async cleanup(): Promise<void> {
    for (const c of this.#clients) c.close();
    for (const cp of this.config()?.ControlPlanes ?? []) {
      await this.run(['down', '-n', cp.Name], { timeoutMs: 60_000 }).catch(() => undefined);
    }
    if (existsSync(this.threeportDir)) {
      for (const name of readdirSync(this.threeportDir)) {
        const dir = join(this.threeportDir, name);
        for (const pid of [runningServer(dir), runningPostgres(dir)]) {
          if (pid !== undefined && processAlive(pid)) process.kill(pid, 'SIGKILL');
        }
      }
    }
    rmSync(this.home, { recursive: true, force: true });
  }
}

/**
 * The error of a failed run: exit code 1 and exactly one "Error: " line on
 * stderr, the last one (progress lines of a wait may come before it).
 */
export function errorLine(result: RunResult): string {
  const lines = result.stderr.split('\n').filter((l) => l.trim() !== '');
  const errors = lines.filter((l) => l.startsWith('Error: '));
  const others = lines.filter((l) => !l.startsWith('Error: ') && !/ \.\.\.( still waiting \(\d+[smhd]\))?$/.test(l));
  if (result.code !== 1 || errors.length !== 1 || lines[lines.length - 1] !== errors[0] || others.length > 0) {
    throw new Error(`expected exit code 1 and one "Error: " line on stderr, got code ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
  }
  return errors[0]!.slice('Error: '.length);
}

/** Parses a kubectl-style table into rows keyed by header. */
export function parseTable(text: string): { headers: string[]; rows: Array<Record<string, string>> } {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const head = lines[0] ?? '';
  const headers = head.split(/ {3,}/).map((h) => h.trim());
  const starts = headers.map((h) => head.indexOf(h));
  const rows = lines.slice(1).map((line) =>
    Object.fromEntries(headers.map((h, i) => [h, line.slice(starts[i], i + 1 < starts.length ? starts[i + 1] : undefined).trim()])),
  );
  return { headers, rows };
}

/** Polls `check` every 100 ms until it returns a value other than undefined, for at most `timeoutMs`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}
