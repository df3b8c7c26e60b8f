#!/usr/bin/env node
// Bundles the dashboard page (web/dashboard) into dist/dashboard with esbuild: one hashed JS and
// one hashed CSS file, minified, everything included (no CDN at run time). Prints the gzipped
// size of the JavaScript the page loads first (the budget is 300 KB).
import { build } from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';

const root = new URL('..', import.meta.url).pathname;
const out = join(root, 'dist', 'dashboard');
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });
const result = await build({
  entryPoints: { app: join(root, 'web/dashboard/src/main.tsx'), style: join(root, 'web/dashboard/src/styles.css') },
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2022',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  entryNames: '[name]-[hash]',
  outdir: join(out, 'assets'),
  metafile: true,
  legalComments: 'linked',
  logLevel: 'warning',
});
const outputs = Object.keys(result.metafile.outputs).map((p) => basename(p));
const js = outputs.find((f) => f.startsWith('app-') && f.endsWith('.js'));
const css = outputs.find((f) => f.startsWith('style-') && f.endsWith('.css'));
const html = readFileSync(join(root, 'web/dashboard/index.html'), 'utf8').replace('%JS%', js).replace('%CSS%', css);
writeFileSync(join(out, 'index.html'), html);
const gz = gzipSync(readFileSync(join(out, 'assets', js))).length;
console.log(`dashboard: dist/dashboard/assets/${js} ${(gz / 1024).toFixed(1)} KB gzipped (budget 300 KB)`);
if (gz > 300 * 1024) {
  console.error('the dashboard JavaScript is over its 300 KB gzipped budget');
  process.exit(1);
}
