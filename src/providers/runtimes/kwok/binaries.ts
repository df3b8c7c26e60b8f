// Where the Kubernetes binaries of a simulated cluster come from: built once per machine by
// scripts/k8s/build-test-bins.sh into a cache outside the repository, keyed by version.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const BUILD_SCRIPT_REL = 'scripts/k8s/build-test-bins.sh';
/** The cache key the build script uses (K8S_VERSION-etcdETCD_VERSION-kwokKWOK_VERSION); used when the script is not shipped. */
export const DEFAULT_BINARIES_KEY = 'v1.34.4-etcdv3.6.16-kwokv0.8.0';

export interface KubeBinaries {
  dir: string;
  etcd: string;
  kubeApiserver: string;
  kubeControllerManager: string;
  kubeScheduler: string;
  kwok: string;
  /** kwok Stage objects (node/pod lifecycle), written by the build script. */
  kwokStages: string;
}

export class KubeBinariesMissingError extends Error {
  override name = 'KubeBinariesMissingError';
}

/** The repository (or installed package) root: the directory holding scripts/k8s/build-test-bins.sh, if any. */
export function packageRoot(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, BUILD_SCRIPT_REL))) return dir;
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

function defaultBinDir(): string {
  const root = packageRoot();
  if (root) {
    const r = spawnSync('bash', [join(root, BUILD_SCRIPT_REL), '--print-dir'], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  const cache = process.env['THREEPORT_CACHE_DIR'] || join(homedir(), '.cache', 'threeport');
  return join(cache, 'k8s', DEFAULT_BINARIES_KEY, 'bin');
}

/** How to get the binaries, for error messages (tptctl and the kwok provider show it). */
export function buildHint(): string {
  const root = packageRoot();
  const script = root ? join(root, BUILD_SCRIPT_REL) : BUILD_SCRIPT_REL;
  return (
    `Build them once per machine with:  bash ${script}\n` +
    '(the cold build takes about 6 minutes on 2 cores and needs Go and the Go module proxy; alternatively point' +
    ' THREEPORT_K8S_BIN_DIR at a directory holding etcd, kube-apiserver, kube-controller-manager, kube-scheduler,' +
    ' kwok and kwok-stages.yaml)'
  );
}

/** Locates the binaries: $THREEPORT_K8S_BIN_DIR, else the build script's cache directory. Throws KubeBinariesMissingError. */
export function findKubeBinaries(): KubeBinaries {
  const dir = process.env['THREEPORT_K8S_BIN_DIR'] || defaultBinDir();
  const bins: KubeBinaries = {
    dir,
    etcd: join(dir, 'etcd'),
    kubeApiserver: join(dir, 'kube-apiserver'),
    kubeControllerManager: join(dir, 'kube-controller-manager'),
    kubeScheduler: join(dir, 'kube-scheduler'),
    kwok: join(dir, 'kwok'),
    kwokStages:
      [join(dir, 'kwok-stages.yaml'), join(dir, '..', 'etc', 'kwok-stages.yaml')].find((p) => existsSync(p)) ??
      join(dir, '..', 'etc', 'kwok-stages.yaml'),
  };
  const missing = Object.entries(bins)
    .filter(([k, p]) => k !== 'dir' && !existsSync(p))
    .map(([, p]) => p);
  if (missing.length > 0) {
    throw new KubeBinariesMissingError(`Kubernetes binaries for simulated clusters are missing:\n  ${missing.join('\n  ')}\n${buildHint()}`);
  }
  return bins;
}
