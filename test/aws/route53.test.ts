// The Route 53 reads of the DNS controller against moto: which hosted zone serves a domain (the
// zone of that name, else the closest parent; public or private when asked), and which host names
// external-dns's TXT registry says an owner holds.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ChangeResourceRecordSetsCommand, CreateHostedZoneCommand } from '@aws-sdk/client-route-53';
import { startMoto, SKIP_AWS, type MotoServer } from '../harness/moto.js';
import { aRecordValues, findHostedZone, isWithin, listRecordSets, ownedHosts } from '../../src/providers/aws/route53.js';
import { testAccount, testCipher, testProvider } from './helpers.js';

describe('Route 53 reads (moto)', { skip: SKIP_AWS }, () => {
  let moto: MotoServer;
  before(async () => {
    moto = await startMoto();
  });
  after(async () => {
    await moto?.stop();
  });

  test('the zone of a domain: its own, else the closest parent; narrowed to public or private', async () => {
    const cipher = testCipher();
    const route53 = testProvider(moto.url, cipher).session(testAccount(cipher)).route53;
    const create = async (name: string, privateZone = false): Promise<string> => {
      const out = await route53.send(
        new CreateHostedZoneCommand({
          Name: name,
          CallerReference: `${name}-${String(privateZone)}-${Date.now()}`,
          ...(privateZone ? { HostedZoneConfig: { PrivateZone: true }, VPC: { VPCRegion: 'us-east-1', VPCId: 'vpc-12345678' } } : {}),
        }),
      );
      return out.HostedZone!.Id!.replace(/^\/hostedzone\//, '');
    };
    const parent = await create('example.test');
    const child = await create('shop.example.test');
    const internal = await create('internal.test', true);

    assert.equal((await findHostedZone(route53, 'example.test'))?.id, parent);
    assert.equal((await findHostedZone(route53, 'Blog.Example.Test'))?.id, parent, 'a parent zone serves a sub-domain, whatever the case');
    assert.equal((await findHostedZone(route53, 'cart.shop.example.test'))?.id, child, 'the closest parent wins');
    assert.equal(await findHostedZone(route53, 'nowhere.test'), undefined);
    assert.equal(await findHostedZone(route53, 'otherexample.test'), undefined, 'a zone serves names under it, not names that end like it');
    assert.deepEqual(await findHostedZone(route53, 'app.internal.test'), { id: internal, name: 'internal.test', private: true });
    assert.equal(await findHostedZone(route53, 'app.internal.test', 'public'), undefined);
    assert.equal((await findHostedZone(route53, 'app.internal.test', 'private'))?.id, internal);

    // Records as external-dns's TXT registry writes them: the A record and its owner in an `a-` TXT record.
    const txt = (owner: string) => `"heritage=external-dns,external-dns/owner=${owner},external-dns/resource=httproute/shop/gateway-shop-80"`;
    await route53.send(
      new ChangeResourceRecordSetsCommand({
        HostedZoneId: parent,
        ChangeBatch: {
          Changes: [
            { Action: 'CREATE', ResourceRecordSet: { Name: 'www.example.test', Type: 'A', TTL: 300, ResourceRecords: [{ Value: '127.1.2.3' }] } },
            { Action: 'CREATE', ResourceRecordSet: { Name: 'a-www.example.test', Type: 'TXT', TTL: 300, ResourceRecords: [{ Value: txt('threeport-dns-1') }] } },
            { Action: 'CREATE', ResourceRecordSet: { Name: 'a-api.example.test', Type: 'TXT', TTL: 300, ResourceRecords: [{ Value: txt('threeport-dns-11') }] } },
          ],
        },
      }),
    );
    const records = await listRecordSets(route53, parent);
    assert.deepEqual([...ownedHosts(records, 'threeport-dns-1')], ['www.example.test'], 'owner threeport-dns-1 does not hold threeport-dns-11’s records');
    assert.deepEqual(aRecordValues(records, 'WWW.example.test.'), ['127.1.2.3']);
    assert.deepEqual(aRecordValues(records, 'api.example.test'), []);
    assert.ok(isWithin('www.example.test.', 'example.test') && !isWithin('example.test', 'www.example.test'));
  });
});
