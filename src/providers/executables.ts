// Finding executables and telling whether a process still runs: shared by the providers that run
// CLIs (helm, tofu).
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable `name` in the directories of `pathVar` (a PATH value). */
export function findOnPath(name: string, pathVar: string | undefined): string | undefined {
  for (const dir of (pathVar ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, name);
    if (isExecutableFile(p)) return p;
  }
  return undefined;
}

/**
 * The compiled `threeport` executable of this build (dist/src/bin/threeport.js): what `tptctl up`
 * starts, and what a parent control plane runs as a child control plane on a simulated runtime.
 */
export function threeportServerScript(): string {
  return fileURLToPath(new URL('../bin/threeport.js', import.meta.url));
}
