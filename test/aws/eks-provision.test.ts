// The EKS stack against moto, through the real SDK: build, inventory, resume
// after a crash, delete, and a census of every resource type afterwards.
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DescribeSubnetsCommand, DescribeVpcsCommand } from '@aws-sdk/client-ec2';
import { ListRolesCommand } from '@aws-sdk/client-iam';
import { startMoto, SKIP_AWS, type MotoServer } from '../harness/moto.js';
import { deleteEks, provisionEks, eksSteps, runtimeNetwork, type EksSpec } from '../../src/providers/aws/eks.js';
import type { ResourceInventory } from '../../src/providers/aws/inventory.js';
import { STACK_TAG } from '../../src/providers/aws/tags.js';
import { added, census, drive, testAccount, testCipher, testProvider, type Census } from './helpers.js';

const skip = SKIP_AWS;
const spec: EksSpec = { zoneCount: 2, instanceType: 't3.medium', initialSize: 2, minSize: 0, maxSize: 5 };

describe('EKS stack against moto', { skip }, () => {
  let moto: MotoServer;
  const cipher = testCipher();
  let baseline: Census;

  before(async () => {
    moto = await startMoto();
  });
  after(async () => {
    await moto?.stop();
  });
  beforeEach(async () => {
    await moto.reset();
    baseline = await census(testProvider(moto.url, cipher).session(testAccount(cipher)));
  });

  test('builds every resource in order, records each in the inventory, and deletes to nothing', async () => {
    const provider = testProvider(moto.url, cipher);
    const session = provider.session(testAccount(cipher));
    const saves: ResourceInventory[] = [];
    const save = async (inv: ResourceInventory): Promise<void> => {
      saves.push(structuredClone(inv));
    };
    const built = await drive(() => provisionEks({ session, stack: 'tp-demo-1', spec, save }));
    const inv = built.inventory;
    assert.equal(inv.phase, 'created');
    const keys = eksSteps(spec).map((s) => s.key);
    assert.deepEqual(Object.keys(inv.resources).sort(), [...keys].sort());
    for (const key of keys) assert.equal(inv.resources[key]!.ready, true, `${key} is ready`);
    // One save per step, plus the phase changes: every created resource was recorded as it came.
    assert.ok(saves.length >= keys.length, `saved ${saves.length} times for ${keys.length} steps`);
    for (let i = 1; i < saves.length; i++) {
      assert.ok(Object.keys(saves[i]!.resources).length >= Object.keys(saves[i - 1]!.resources).length);
    }
    assert.match(inv.resources['vpc']!.id, /^vpc-/);
    assert.deepEqual(inv.resources['availability-zones']!['zones'], ['us-east-1a', 'us-east-1b']);
    assert.equal(inv.resources['cluster']!.id, 'tp-demo-1');
    assert.match(String(inv.resources['oidc-provider']!.arn), /^arn:aws:iam::123456789012:oidc-provider\/oidc\.eks\./);
    assert.equal(inv.resources['node-group']!.id, 'default');

    const net = runtimeNetwork(inv);
    assert.ok(net);
    assert.equal(net.privateSubnetIds.length, 2);
    assert.equal(net.vpcId, inv.resources['vpc']!.id);

    const grown = added(baseline, await census(session));
    assert.equal(grown.vpcs?.length, 1);
    assert.equal(grown.subnets?.length, 4);
    assert.equal(grown.internetGateways?.length, 1);
    assert.equal(grown.natGateways?.length, 1);
    assert.equal(grown.elasticIps?.length, 1);
    assert.deepEqual(grown.iamRoles, ['tp-demo-1-cluster', 'tp-demo-1-node']);
    assert.deepEqual(grown.eksClusters, ['tp-demo-1']);
    assert.deepEqual(grown.eksNodegroups, ['tp-demo-1/default']);
    assert.equal(grown.oidcProviders?.length, 1);
    assert.equal(grown.securityGroups?.length, 2, 'ours plus the VPC default group');
    assert.equal(grown.routeTables?.length, 3, 'public, private and the VPC main table');

    // A second run over a finished inventory calls nothing.
    const callsBefore = provider.stats.calls;
    const again = await provisionEks({ session, stack: 'tp-demo-1', spec, inventory: inv, save });
    assert.equal(again.done, true);
    assert.equal(provider.stats.calls, callsBefore);

    const deleted = await drive(() => deleteEks({ session, stack: 'tp-demo-1', spec, inventory: inv, save }));
    assert.equal(deleted.inventory.phase, 'deleted');
    assert.deepEqual(deleted.inventory.resources, {});
    assert.deepEqual(added(baseline, await census(session)), {});
  });

  test('a run killed after N steps resumes from the inventory without duplicates', async () => {
    const session = testProvider(moto.url, cipher).session(testAccount(cipher));
    let stored: ResourceInventory | undefined;
    const save = async (inv: ResourceInventory): Promise<void> => {
      stored = structuredClone(inv);
    };
    for (const killAfter of [3, 5, 4]) {
      const abort = new AbortController();
      let ensured = 0;
      await assert.rejects(
        provisionEks({
          session,
          stack: 'tp-resume-2',
          spec,
          inventory: stored,
          save,
          signal: abort.signal,
          onStep: (e) => {
            if (e.action === 'ensured' && ++ensured === killAfter) abort.abort(new Error('killed'));
          },
        }),
        /killed/,
      );
    }
    const done = await drive(() => provisionEks({ session, stack: 'tp-resume-2', spec, inventory: stored, save }));
    assert.equal(done.inventory.phase, 'created');
    const grown = added(baseline, await census(session));
    assert.equal(grown.vpcs?.length, 1);
    assert.equal(grown.subnets?.length, 4);
    assert.equal(grown.natGateways?.length, 1);
    assert.equal(grown.elasticIps?.length, 1);
    assert.equal(grown.eksClusters?.length, 1);
    await drive(() => deleteEks({ session, stack: 'tp-resume-2', spec, inventory: stored, save }));
    assert.deepEqual(added(baseline, await census(session)), {});
  });

  test('a crash between a create call and the inventory write does not duplicate the resource', async () => {
    const session = testProvider(moto.url, cipher).session(testAccount(cipher));
    let stored: ResourceInventory | undefined;
    // Every step's first save "crashes": its resource exists in AWS but not in the inventory.
    const crashed = new Set<string>();
    for (let round = 0; round < 40; round++) {
      let crashedNow = false;
      const save = async (inv: ResourceInventory): Promise<void> => {
        const fresh = Object.keys(inv.resources).find((k) => !crashed.has(k) && !(stored?.resources[k]));
        if (fresh) {
          crashed.add(fresh);
          crashedNow = true;
          throw new Error(`crash before recording ${fresh}`);
        }
        stored = structuredClone(inv);
      };
      try {
        const r = await provisionEks({ session, stack: 'tp-crash-3', spec, inventory: stored && structuredClone(stored), save });
        if (r.done) break;
      } catch (err) {
        assert.ok(crashedNow, `unexpected failure: ${String(err)}`);
      }
    }
    assert.equal(stored?.phase, 'created');
    assert.equal(crashed.size, eksSteps(spec).length, 'every step crashed once before it was recorded');
    const vpcs = await session.ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: `tag:${STACK_TAG}`, Values: ['tp-crash-3'] }] }));
    assert.equal(vpcs.Vpcs?.length, 1);
    const subnets = await session.ec2.send(new DescribeSubnetsCommand({ Filters: [{ Name: `tag:${STACK_TAG}`, Values: ['tp-crash-3'] }] }));
    assert.equal(subnets.Subnets?.length, 4);
    const roles = (await session.iam.send(new ListRolesCommand({}))).Roles?.filter((r) => r.RoleName?.startsWith('tp-crash-3'));
    assert.equal(roles?.length, 2);
    const grown = added(baseline, await census(session));
    assert.equal(grown.natGateways?.length, 1);
    assert.equal(grown.elasticIps?.length, 1);
    assert.equal(grown.oidcProviders?.length, 1);
    assert.equal(grown.routeTables?.length, 3);

    // Deleting from an inventory that lost entries still finds everything by its tags.
    const lossy = structuredClone(stored!);
    for (const key of ['nat-gateway', 'subnet-private-1', 'cluster-role', 'oidc-provider', 'route-table-public']) delete lossy.resources[key];
    await drive(() => deleteEks({ session, stack: 'tp-crash-3', spec, inventory: lossy, save: async () => {} }));
    assert.deepEqual(added(baseline, await census(session)), {});
  });
});
