// Where a HelmWorkloadDefinition may take a chart from the server's own disk. Without a limit a
// client could name any directory, and the controller's events would then say whether it exists.
// The operator names one directory (`threeport server --helm-chart-dir`); local Repos must lie
// under it, and without the flag no local Repo is accepted.
import { existsSync, realpathSync } from 'node:fs';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clip } from '../kinds/input-limits.js';

/** A Repo that names a location on the server's disk (not https://, oci:// or another scheme). */
function localPath(repo: string): string | undefined {
  const text = repo.trim();
  if (text === '') return undefined;
  if (/^file:\/\//i.test(text)) {
    try {
      return fileURLToPath(text);
    } catch {
      return text;
    }
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) return undefined;
  return text;
}

/** The real path, following symbolic links as far as the path exists. */
function real(path: string): string {
  return existsSync(path) ? realpathSync(path) : resolve(path);
}

/** Why `repo` is refused under `root` (the --helm-chart-dir), or undefined when it is allowed. */
export function localRepoProblem(repo: unknown, root: string | undefined): string | undefined {
  if (typeof repo !== 'string') return undefined;
  const path = localPath(repo);
  if (path === undefined) return undefined;
  const shown = JSON.stringify(clip(repo, 200));
  if (!root) {
    return `field HelmWorkloadDefinition.Repo ${shown} is a local directory, and this server accepts none (start it with --helm-chart-dir to allow charts under one directory); use an https:// chart repository or an oci:// registry`;
  }
  const base = real(root);
  // Relative to the server's working directory, as the helm controller resolves it (chartSource).
  const target = real(isAbsolute(path) ? path : resolve(path));
  const rel = relative(base, target);
  if (rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    return `field HelmWorkloadDefinition.Repo ${shown} is outside the server's chart directory; local charts must be under ${base}`;
  }
  return undefined;
}
