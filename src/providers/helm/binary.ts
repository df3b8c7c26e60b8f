// Which helm executable the provider runs:
//   1. $THREEPORT_HELM (a path), when set;
//   2. the helm that scripts/k8s/build-test-bins.sh builds into its cache. The script owns the
//      cache layout: its `--print-helm-dir` answer is used, never a path recomputed here;
//   3. `helm` on PATH.
// Anything else is a HelmNotFoundError that says how to get one.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { findOnPath, isExecutableFile } from '../executables.js';
import { BUILD_SCRIPT_REL, packageRoot } from '../runtimes/kwok/binaries.js';
import { HelmNotFoundError } from './errors.js';

export const HELM_PATH_ENV = 'THREEPORT_HELM';

export interface HelmBinary {
  path: string;
  /** Where it was found, for logs and error messages. */
  source: typeof HELM_PATH_ENV | 'test-binaries cache' | 'PATH';
}


/** The cached helm's directory as the build script reports it, or undefined (script not shipped or failing). */
export function cachedHelmDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const root = packageRoot();
  if (!root) return undefined;
  const r = spawnSync('bash', [join(root, BUILD_SCRIPT_REL), '--print-helm-dir'], {
    encoding: 'utf8',
    // The caller's environment (THREEPORT_CACHE_DIR), but this process's PATH to find bash.
    env: { ...env, PATH: process.env['PATH'] ?? '/usr/bin:/bin' },
    timeout: 10_000,
  });
  const dir = r.status === 0 ? r.stdout.trim() : '';
  return dir || undefined;
}

/** Finds helm; throws HelmNotFoundError naming every place it looked. */
export function findHelm(env: NodeJS.ProcessEnv = process.env): HelmBinary {
  const explicit = env[HELM_PATH_ENV];
  if (explicit) {
    if (isExecutableFile(explicit)) return { path: explicit, source: HELM_PATH_ENV };
    throw new HelmNotFoundError(`${HELM_PATH_ENV}=${explicit}: there is no executable file at that path`);
  }
  const looked: string[] = [];
  const cacheDir = cachedHelmDir(env);
  if (cacheDir) {
    const p = join(cacheDir, 'helm');
    if (isExecutableFile(p)) return { path: p, source: 'test-binaries cache' };
    looked.push(p);
  }
  const onPath = findOnPath('helm', env['PATH']);
  if (onPath) return { path: onPath, source: 'PATH' };
  looked.push('helm on PATH');
  const root = packageRoot();
  const script = root ? join(root, BUILD_SCRIPT_REL) : BUILD_SCRIPT_REL;
  throw new HelmNotFoundError(
    `helm is not installed: looked in ${looked.join(', ')}. Set ${HELM_PATH_ENV} to a helm v3 binary, install helm on PATH,` +
      ` or build the cached one with:  bash ${script}`,
  );
}
