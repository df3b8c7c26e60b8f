// Test tiers: which peers a compiled test file needs, derived from what its code imports.
//
// A tier is named by the heaviest peer the file needs, in TIERS order:
//   unit  no peer process at all;
//   db    PostgreSQL (a throwaway server, or the embedded one that `threeport server` and `tptctl up` start);
//   kube  the Kubernetes test binaries (kube-apiserver, etcd, kwok; helm), usually with PostgreSQL too;
//   aws   moto, the local imitation of the AWS APIs, usually with Kubernetes and PostgreSQL too.
// Every test file is in exactly one tier, so the tiers together are the whole suite.
//
// The tier is derived, not declared, so it cannot drift from the code: a file needs a peer when
// it, or a test module it imports (transitively), imports a module in PEER_MODULES. Imports into
// src/ are matched against the table but not followed: src/ holds the product, and importing one
// of its functions does not start anything.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

export const TIERS = ['unit', 'db', 'kube', 'aws'];

/** The modules that start a peer (paths relative to dist/), and the tier that peer puts a test in. */
export const PEER_MODULES = {
  'test/harness/postgres.js': 'db',
  // spawns `threeport server`, which starts its embedded PostgreSQL
  'test/harness/server-process.js': 'db',
  // startServer opens the embedded PostgreSQL unless it is given a database URL
  'src/server.js': 'db',
  // tptctl up starts a local control plane with its database
  'test/e2e/tptctl-harness.js': 'db',
  'test/harness/kube-cluster.js': 'kube',
  'src/providers/runtimes/kwok/binaries.js': 'kube',
  'test/harness/moto.js': 'aws',
};

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return walk(path);
    return name.endsWith('.test.js') ? [path] : [];
  });
}

/** Every compiled test file under dist/test, sorted. */
export function testFiles(distRoot) {
  return walk(join(distRoot, 'test')).sort();
}

// Static `import ... from '...'`, `export ... from '...'` and `import('...')` with a literal
// relative specifier; compiled output has no other kind of relative import.
const IMPORT = /(?:\bfrom\s*|\bimport\s*\(\s*|^\s*import\s*)['"](\.{1,2}\/[^'"]+)['"]/gm;

function relativeImports(file) {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(IMPORT)].map((m) => resolve(dirname(file), m[1]));
}

/**
 * The tier of each test file: a Map from its path relative to dist/ to { tier, peers }, where
 * peers names the modules that put it there (for `--tiers`, which prints the reasons).
 */
export function classify(distRoot, files = testFiles(distRoot)) {
  const testRoot = join(distRoot, 'test');
  const memo = new Map(); // test module -> Set of peer modules it reaches
  const reach = (file) => {
    const known = memo.get(file);
    if (known) return known;
    const found = new Set();
    memo.set(file, found); // set before recursing, so an import cycle ends here
    for (const target of relativeImports(file)) {
      const rel = relative(distRoot, target);
      if (PEER_MODULES[rel]) found.add(rel);
      if (target.startsWith(testRoot + '/')) for (const peer of reach(target)) found.add(peer);
    }
    return found;
  };
  const result = new Map();
  for (const file of files) {
    const peers = [...reach(file)].sort();
    const rank = Math.max(0, ...peers.map((p) => TIERS.indexOf(PEER_MODULES[p])));
    result.set(relative(distRoot, file), { tier: TIERS[rank], peers });
  }
  return result;
}
