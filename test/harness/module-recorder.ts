// Preload (`node --import <this file>`) that appends the path of every module
// the process loads, ES module or CommonJS, to the file named by
// THREEPORT_MODULE_RECORD, one a line. Tests use it to check which
// dependencies a role loads: a module graph is deterministic, timing is not.
import { appendFileSync } from 'node:fs';
import Module, { register } from 'node:module';
import { fileURLToPath } from 'node:url';

const out = process.env['THREEPORT_MODULE_RECORD'];
if (out) {
  // ES modules (and the CommonJS modules they import) pass through the loader hooks.
  register(new URL('./module-recorder-hooks.js', import.meta.url), import.meta.url, { data: { out } });
  // CommonJS `require` inside CommonJS does not reach the ESM hooks on Node 20.
  const cjs = Module as unknown as { _resolveFilename: (request: string, ...rest: unknown[]) => string };
  const resolveFilename = cjs._resolveFilename;
  cjs._resolveFilename = function (request: string, ...rest: unknown[]): string {
    const file = resolveFilename.call(this, request, ...rest);
    if (file.startsWith('/')) appendFileSync(out, `${file}\n`);
    return file;
  };
}

/** The recorded module paths (file URLs turned into paths), deduplicated. */
export function readModuleRecord(text: string): string[] {
  const paths = text
    .split('\n')
    .filter((l) => l.length > 0)
    .map((l) => (l.startsWith('file:') ? fileURLToPath(l) : l));
  return [...new Set(paths)];
}
