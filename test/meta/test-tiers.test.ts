// The test tiers (scripts/test-tiers.mjs) partition the suite by the peers each file needs,
// derived from its imports: every file is in exactly one tier, and the derivation puts files
// that start a peer in that peer's tier.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

interface Tiers {
  TIERS: string[];
  testFiles(distRoot: string): string[];
  classify(distRoot: string): Map<string, { tier: string; peers: string[] }>;
}

const distRoot = fileURLToPath(new URL('../../', import.meta.url));
const tiersModule = new URL('../../../scripts/test-tiers.mjs', import.meta.url).href;

test('every compiled test file is in exactly one tier, and each tier holds files', async () => {
  const { TIERS, classify, testFiles } = (await import(tiersModule)) as Tiers;
  const tiers = classify(distRoot);
  assert.equal(tiers.size, testFiles(distRoot).length);
  for (const [file, { tier }] of tiers) assert.ok(TIERS.includes(tier), `${file}: ${tier}`);
  for (const tier of TIERS) assert.ok([...tiers.values()].some((t) => t.tier === tier), `tier ${tier} is empty`);
});

test('a file is in the tier of the heaviest peer its imports start', async () => {
  const { classify } = (await import(tiersModule)) as Tiers;
  const tiers = classify(distRoot);
  const tierOf = (file: string): string | undefined => tiers.get(`test/${file}`)?.tier;
  assert.equal(tierOf('reconcile/retry-policy.test.js'), 'unit');
  assert.equal(tierOf('meta/test-tiers.test.js'), 'unit');
  assert.equal(tierOf('reconcile/watches.test.js'), 'db'); // through test/reconcile/helpers.js
  assert.equal(tierOf('api/api.test.js'), 'db'); // through test/harness/api-server.js
  assert.equal(tierOf('integration/kube-provider.test.js'), 'kube');
  assert.equal(tierOf('aws/moto-missing.test.js'), 'aws');
  assert.equal(tierOf('integration/aws-controllers.test.js'), 'aws'); // moto and Kubernetes: the heavier one
});
