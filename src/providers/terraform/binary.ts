// Which OpenTofu executable the Terraform controller runs:
//   1. the server's `--tofu <path>` flag, or $THREEPORT_TOFU;
//   2. the tofu that scripts/tofu/build-tofu.sh builds into its version-keyed cache (the script
//      owns the cache layout: its `--print-dir` answer is used, never a path recomputed here);
//   3. `tofu` on PATH.
// When none exists, the first reconcile that needs it starts the build script in the background
// (about 23 minutes cold on 2 cores; progress goes to the server log), unless building on first use
// is off (`--no-tofu-build`, THREEPORT_TOFU_BUILD=0) or the script or Go is missing; then the error
// names the build command. Nothing else (the quick start included) ever starts the build.
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { findOnPath, isExecutableFile } from '../executables.js';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { packageRoot } from '../runtimes/kwok/binaries.js';
import { TofuNotFoundError } from './errors.js';

export const TOFU_PATH_ENV = 'THREEPORT_TOFU';
/** `0` (or `false`) turns off building tofu on first use. */
export const TOFU_BUILD_ENV = 'THREEPORT_TOFU_BUILD';
export const TOFU_BUILD_SCRIPT_REL = 'scripts/tofu/build-tofu.sh';

export interface TofuBinary {
  path: string;
  /** Where it was found, for logs and error messages. */
  source: 'flag or THREEPORT_TOFU' | 'build cache' | 'PATH';
}

/** The build script's absolute path, when this installation ships it. */
export function tofuBuildScript(): string | undefined {
  const root = packageRoot();
  return root ? join(root, TOFU_BUILD_SCRIPT_REL) : undefined;
}

/** The command that builds tofu, for error messages. */
export function tofuBuildCommand(): string {
  return `bash ${tofuBuildScript() ?? TOFU_BUILD_SCRIPT_REL}`;
}

function askScript(flag: '--print-dir' | '--version', env: NodeJS.ProcessEnv): string | undefined {
  const script = tofuBuildScript();
  if (!script) return undefined;
  const r = spawnSync('bash', [script, flag], {
    encoding: 'utf8',
    // The caller's THREEPORT_CACHE_DIR, this process's PATH (to find bash).
    env: { ...env, PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
    timeout: 10_000,
  });
  const out = r.status === 0 ? r.stdout.trim() : '';
  return out || undefined;
}

/** The pinned OpenTofu version (from the build script), e.g. "v1.12.6". */
export function pinnedTofuVersion(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return askScript('--version', env);
}

/** Finds tofu without building it; throws TofuNotFoundError naming every place it looked and the build command. */
export function findTofu(options: { explicit?: string; env?: NodeJS.ProcessEnv } = {}): TofuBinary {
  const env = options.env ?? process.env;
  const explicit = options.explicit ?? env[TOFU_PATH_ENV];
  if (explicit) {
    if (isExecutableFile(explicit)) return { path: explicit, source: 'flag or THREEPORT_TOFU' };
    throw new TofuNotFoundError(
      `OpenTofu not found: ${explicit} (from --tofu or ${TOFU_PATH_ENV}) is not an executable file. Build it with:  ${tofuBuildCommand()}`,
    );
  }
  const looked: string[] = [];
  const dir = askScript('--print-dir', env);
  if (dir) {
    const p = join(dir, 'tofu');
    if (isExecutableFile(p)) return { path: p, source: 'build cache' };
    looked.push(p);
  }
  const onPath = findOnPath('tofu', env['PATH']);
  if (onPath) return { path: onPath, source: 'PATH' };
  looked.push('tofu on PATH');
  throw new TofuNotFoundError(
    `OpenTofu (tofu) is not installed: looked in ${looked.join(', ')}. Build it once per machine with:  ${tofuBuildCommand()}` +
      ` (about 23 minutes cold on 2 cores; needs Go and the Go module proxy), or pass --tofu <path> / set ${TOFU_PATH_ENV}.`,
  );
}

export type TofuAvailability = { state: 'ready'; binary: TofuBinary } | { state: 'building'; since: number; lastLine: string };

/**
 * Finds tofu, and builds it on first use when allowed. `resolve()` never waits for the build: while
 * it runs, callers get `building` and try again later, so no reconcile holds its lease for 23 minutes.
 */
export class TofuLocator {
  readonly #explicit: string | undefined;
  readonly #autoBuild: boolean;
  readonly #log: Logger | undefined;
  readonly #env: NodeJS.ProcessEnv;
  #found: TofuBinary | undefined;
  #build: { since: number; lastLine: string; done: Promise<void> } | undefined;
  #buildFailure: string | undefined;

  constructor(options: { explicit?: string; autoBuild?: boolean; log?: Logger; env?: NodeJS.ProcessEnv } = {}) {
    this.#env = options.env ?? process.env;
    this.#explicit = options.explicit ?? (this.#env[TOFU_PATH_ENV] || undefined);
    const envBuild = this.#env[TOFU_BUILD_ENV];
    this.#autoBuild = options.autoBuild ?? !(envBuild === '0' || envBuild === 'false');
    this.#log = options.log;
  }

  resolve(): TofuAvailability {
    if (this.#found && isExecutableFile(this.#found.path)) return { state: 'ready', binary: this.#found };
    if (this.#build) return { state: 'building', since: this.#build.since, lastLine: this.#build.lastLine };
    let missing: TofuNotFoundError;
    try {
      this.#found = findTofu({ ...(this.#explicit ? { explicit: this.#explicit } : {}), env: this.#env });
      return { state: 'ready', binary: this.#found };
    } catch (err) {
      if (!(err instanceof TofuNotFoundError)) throw err;
      missing = err;
    }
    // An explicit path that is wrong is the operator's mistake: building elsewhere would hide it.
    if (this.#explicit || !this.#autoBuild) throw missing;
    if (this.#buildFailure) throw new TofuNotFoundError(`${missing.message} Building it on first use failed: ${this.#buildFailure}`);
    const script = tofuBuildScript();
    const go = spawnSync('go', ['version'], { encoding: 'utf8', timeout: 10_000 });
    if (!script || go.status !== 0) throw missing;
    this.#startBuild(script);
    return { state: 'building', since: this.#build!.since, lastLine: this.#build!.lastLine };
  }

  #startBuild(script: string): void {
    const since = Date.now();
    this.#log?.warn({ script }, `OpenTofu is not installed; building it now (first use, about 23 minutes on 2 cores): bash ${script}`);
    const child = spawn('nice', ['-n', '19', 'bash', script], { env: this.#env, stdio: ['ignore', 'pipe', 'pipe'] });
    const build = { since, lastLine: 'starting', done: Promise.resolve() };
    let tail: string[] = [];
    const onLine = (line: string): void => {
      if (!line.trim()) return;
      build.lastLine = line.slice(0, 300);
      tail = [...tail.slice(-9), build.lastLine];
      this.#log?.info({ tofuBuild: true }, line);
    };
    createInterface({ input: child.stdout! }).on('line', onLine);
    createInterface({ input: child.stderr! }).on('line', onLine);
    build.done = new Promise<void>((resolveDone) => {
      const finish = (failure: string | undefined): void => {
        this.#build = undefined;
        this.#buildFailure = failure;
        if (failure) this.#log?.error({ tofuBuild: true }, `building OpenTofu failed: ${failure}`);
        else this.#log?.info({ tofuBuild: true, seconds: Math.round((Date.now() - since) / 1000) }, 'OpenTofu built');
        resolveDone();
      };
      child.once('error', (err) => finish(`cannot run bash ${script}: ${err.message}`));
      child.once('close', (code) => finish(code === 0 ? undefined : `bash ${script} exited with ${code}: ${tail.join(' | ')}`));
    });
    this.#build = build;
  }

  /** Resolves when a build started by this locator ends (tests, shutdown). */
  async settled(): Promise<void> {
    await this.#build?.done;
  }
}
