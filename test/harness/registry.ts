// The in-memory OCI registry (go-containerregistry's cmd/registry, built and cached by
// scripts/k8s/build-test-bins.sh) on a free loopback port, plain HTTP.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { BUILD_SCRIPT_REL, packageRoot } from '../../src/providers/runtimes/kwok/binaries.js';

/** The cached OCI registry binary, or undefined when not built. */
export function findRegistryBinary(): string | undefined {
  try {
    const root = packageRoot();
    if (!root) return undefined;
    const dir = execFileSync('bash', [join(root, BUILD_SCRIPT_REL), '--print-registry-dir'], { encoding: 'utf8', timeout: 10_000 }).trim();
    const path = join(dir, 'registry');
    return dir && existsSync(path) ? path : undefined;
  } catch {
    return undefined;
  }
}

/** Starts the in-memory registry on a free loopback port; resolves its port. */
export async function startRegistry(binary: string): Promise<{ port: number; child: ChildProcess }> {
  const child = spawn(binary, ['--port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const port = await new Promise<number>((resolvePort, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`registry did not start: ${buf}`)), 20_000);
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      const m = /serving on port (\d+)/.exec(buf);
      if (m) {
        clearTimeout(timer);
        resolvePort(Number(m[1]));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`registry exited (${String(code)}): ${buf}`));
    });
  });
  child.stderr!.resume();
  return { port, child };
}
