import { readFileSync } from 'node:fs';

// The package version, read once; the API reports it at /version as upstream does ("v" prefix).
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
export const VERSION = `v${pkg.version}`;
