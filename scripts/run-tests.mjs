#!/usr/bin/env node
// Runs the compiled test files with node's own test runner.
// Node 20's `--test` takes no globs, so the files are listed here.
//
// Usage: node scripts/run-tests.mjs [--tiers] [unit|db|kube|aws|<substring>]...
//   no argument      every test file (what `npm test` and CI run);
//   a tier name      the files of that tier (scripts/test-tiers.mjs says how tiers are derived);
//   anything else    the files whose path under dist/test contains it;
//   --tiers          prints each selected file's tier and the peer modules that put it there, runs nothing.
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { TIERS, classify, testFiles } from './test-tiers.mjs';

const root = new URL('..', import.meta.url).pathname;
const distRoot = join(root, 'dist');
const testRoot = join(distRoot, 'test');

const args = process.argv.slice(2);
const listTiers = args.includes('--tiers');
const filters = args.filter((a) => a !== '--tiers');
const all = testFiles(distRoot);
const tiers = classify(distRoot, all);
const tierOf = (f) => tiers.get(relative(distRoot, f)).tier;
const files = all.filter(
  (f) => filters.length === 0 || filters.some((s) => (TIERS.includes(s) ? tierOf(f) === s : relative(testRoot, f).includes(s))),
);
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ') || '(all)'} under ${testRoot}`);
  process.exit(1);
}
if (listTiers) {
  for (const f of files) {
    const { tier, peers } = tiers.get(relative(distRoot, f));
    console.log(`${tier.padEnd(5)} ${relative(testRoot, f)}${peers.length ? `  (${peers.join(', ')})` : ''}`);
  }
  process.exit(0);
}
// Integration suites start real peers (PostgreSQL, API servers); on two cores they run one file at a time.
const result = spawnSync(
  process.execPath,
  ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
