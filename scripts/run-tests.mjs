#!/usr/bin/env node
// Runs the compiled test files with node's own test runner.
// Node 20's `--test` takes no globs, so the files are listed here.
// Usage: node scripts/run-tests.mjs [unit|integration|e2e|<substring>]...
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const testRoot = join(root, 'dist', 'test');

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return walk(path);
    return name.endsWith('.test.js') ? [path] : [];
  });
}

const filters = process.argv.slice(2);
const files = walk(testRoot)
  .sort()
  .filter((f) => filters.length === 0 || filters.some((s) => relative(testRoot, f).includes(s)));
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ') || '(all)'} under ${testRoot}`);
  process.exit(1);
}
// Integration suites start real peers (PostgreSQL, API servers); on two cores they run one file at a time.
const result = spawnSync(
  process.execPath,
  ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
