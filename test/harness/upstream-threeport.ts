// Upstream Threeport v0.6.1's own binaries, built from its Go module by
// scripts/upstream/build-threeport.sh into ~/.cache/threeport (never committed): its tptctl, its
// integration test (test/integration, TestWorkloadE2E) compiled with `go test -c`, and the
// module's directory for its sample configs. Missing binaries fail the suites that need them,
// with the command that builds them.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const UPSTREAM_VERSION = 'v0.6.1';

export interface UpstreamThreeport {
  /** Upstream's `tptctl`. */
  tptctl: string;
  /** Upstream's `test/integration` package compiled as a test binary. */
  workloadE2E: string;
  /** The module's (read-only) source directory: `samples/` and friends. */
  moduleDir: string;
}

export function upstreamThreeport(): UpstreamThreeport {
  const dir = join(process.env['THREEPORT_CACHE_DIR'] ?? join(homedir(), '.cache', 'threeport'), 'upstream-threeport', UPSTREAM_VERSION);
  const found: UpstreamThreeport = { tptctl: join(dir, 'bin', 'tptctl'), workloadE2E: join(dir, 'bin', 'workload-e2e.test'), moduleDir: join(dir, 'module') };
  const missing = Object.values(found).filter((p) => !existsSync(p));
  if (missing.length > 0) {
    throw new Error(
      `upstream Threeport ${UPSTREAM_VERSION} is not built here (missing ${missing.join(', ')}): run \`bash scripts/upstream/build-threeport.sh\` ` +
        '(or scripts/install-test-deps.sh), or set THREEPORT_SKIP_KUBE=1 to skip the Kubernetes tests',
    );
  }
  return found;
}
