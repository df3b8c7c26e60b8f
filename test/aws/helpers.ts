// Shared pieces of the AWS tests: a provider pointed at moto, an account with
// encrypted keys, and a census of every resource type the controllers create.
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import {
  DescribeAddressesCommand,
  DescribeInternetGatewaysCommand,
  DescribeNatGatewaysCommand,
  DescribeRouteTablesCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
} from '@aws-sdk/client-ec2';
import { ListClustersCommand, ListNodegroupsCommand } from '@aws-sdk/client-eks';
import { ListOpenIDConnectProvidersCommand, ListPoliciesCommand, ListRolesCommand } from '@aws-sdk/client-iam';
import { DescribeDBInstancesCommand, DescribeDBSubnetGroupsCommand } from '@aws-sdk/client-rds';
import { ListBucketsCommand } from '@aws-sdk/client-s3';
import { ListSecretsCommand } from '@aws-sdk/client-secrets-manager';
import { FieldCipher } from '../../src/crypto/field-encryption.js';
import { AwsProvider, type AwsProviderOptions, type AwsSession } from '../../src/providers/aws/provider.js';
import type { AwsAccountRecord } from '../../src/providers/aws/credentials.js';
import { REDACTED_KEYS } from '../../src/logger.js';

/** Fake, but shaped like real keys, so the scrubbing of key-shaped strings is exercised too. */
export const TEST_ACCESS_KEY_ID = 'AKIAIOSFODNN7EXAMPLE';
export const TEST_SECRET_ACCESS_KEY = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
/** moto's account. */
export const MOTO_ACCOUNT_ID = '123456789012';

/** The fields of the default AwsAccount that every moto-backed test registers (API body or store create). */
export function motoDefaultAccount(region = 'us-east-1', name = 'default-account'): Record<string, string | boolean> {
  return { Name: name, AccountID: MOTO_ACCOUNT_ID, DefaultAccount: true, DefaultRegion: region, AccessKeyID: TEST_ACCESS_KEY_ID, SecretAccessKey: TEST_SECRET_ACCESS_KEY };
}

export function testCipher(): FieldCipher {
  return new FieldCipher(FieldCipher.generateKey());
}

export function testAccount(cipher: FieldCipher, overrides: Partial<AwsAccountRecord> = {}): AwsAccountRecord {
  return {
    ID: 1,
    Name: 'test-account',
    AccountID: MOTO_ACCOUNT_ID,
    DefaultRegion: 'us-east-1',
    AccessKeyID: cipher.encrypt(TEST_ACCESS_KEY_ID),
    SecretAccessKey: cipher.encrypt(TEST_SECRET_ACCESS_KEY),
    UpdatedAt: '2026-01-01T00:00:00Z',
    ...overrides,
  };
}

/** A logger that keeps every line, for assertions that no secret reaches a log. */
export function capturingLogger(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  const paths = REDACTED_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]);
  return { log: pino({ level: 'debug', redact: { paths, censor: '[redacted]' } }, stream), lines };
}

export function testProvider(endpoint: string, cipher: FieldCipher, options: Partial<AwsProviderOptions> = {}): AwsProvider {
  return new AwsProvider({
    decrypt: (c) => cipher.decrypt(c),
    endpoint,
    retry: { maxAttempts: 6, baseDelayMs: 5, maxDelayMs: 50, jitter: 'none' },
    baseCredentials: { accessKeyId: 'base-testing-key', secretAccessKey: 'base-testing-secret' },
    ...options,
  });
}

export interface Census {
  vpcs: string[];
  subnets: string[];
  internetGateways: string[];
  natGateways: string[];
  elasticIps: string[];
  routeTables: string[];
  securityGroups: string[];
  iamRoles: string[];
  iamPolicies: string[];
  oidcProviders: string[];
  eksClusters: string[];
  eksNodegroups: string[];
  rdsInstances: string[];
  rdsSubnetGroups: string[];
  s3Buckets: string[];
  secrets: string[];
}

/** Every resource of every type the AWS controllers create, in the session's region (IAM and S3 are global). */
export async function census(session: AwsSession): Promise<Census> {
  const ec2 = session.ec2;
  const clusters = (await session.eks.send(new ListClustersCommand({}))).clusters ?? [];
  const nodegroups: string[] = [];
  for (const c of clusters) {
    for (const n of (await session.eks.send(new ListNodegroupsCommand({ clusterName: c }))).nodegroups ?? []) nodegroups.push(`${c}/${n}`);
  }
  return {
    vpcs: ((await ec2.send(new DescribeVpcsCommand({}))).Vpcs ?? []).map((v) => v.VpcId!).sort(),
    subnets: ((await ec2.send(new DescribeSubnetsCommand({}))).Subnets ?? []).map((s) => s.SubnetId!).sort(),
    internetGateways: ((await ec2.send(new DescribeInternetGatewaysCommand({}))).InternetGateways ?? []).map((g) => g.InternetGatewayId!).sort(),
    natGateways: ((await ec2.send(new DescribeNatGatewaysCommand({}))).NatGateways ?? [])
      .filter((n) => n.State !== 'deleted')
      .map((n) => n.NatGatewayId!)
      .sort(),
    elasticIps: ((await ec2.send(new DescribeAddressesCommand({}))).Addresses ?? []).map((a) => a.AllocationId!).sort(),
    routeTables: ((await ec2.send(new DescribeRouteTablesCommand({}))).RouteTables ?? []).map((t) => t.RouteTableId!).sort(),
    securityGroups: ((await ec2.send(new DescribeSecurityGroupsCommand({}))).SecurityGroups ?? []).map((g) => g.GroupId!).sort(),
    iamRoles: ((await session.iam.send(new ListRolesCommand({ MaxItems: 1000 }))).Roles ?? []).map((r) => r.RoleName!).sort(),
    iamPolicies: ((await session.iam.send(new ListPoliciesCommand({ Scope: 'Local', MaxItems: 1000 }))).Policies ?? [])
      .map((p) => p.PolicyName!)
      .sort(),
    oidcProviders: ((await session.iam.send(new ListOpenIDConnectProvidersCommand({}))).OpenIDConnectProviderList ?? [])
      .map((p) => p.Arn!)
      .sort(),
    eksClusters: [...clusters].sort(),
    eksNodegroups: nodegroups.sort(),
    rdsInstances: ((await session.rds.send(new DescribeDBInstancesCommand({}))).DBInstances ?? [])
      .map((d) => d.DBInstanceIdentifier!)
      .sort(),
    rdsSubnetGroups: ((await session.rds.send(new DescribeDBSubnetGroupsCommand({}))).DBSubnetGroups ?? [])
      .map((g) => g.DBSubnetGroupName!)
      .sort(),
    s3Buckets: ((await session.s3.send(new ListBucketsCommand({}))).Buckets ?? []).map((b) => b.Name!).sort(),
    secrets: ((await session.secretsManager.send(new ListSecretsCommand({}))).SecretList ?? []).map((s) => s.Name!).sort(),
  };
}

/** The resources in `after` that are not in `before`, per type (empty types left out). */
export function added(before: Census, after: Census): Partial<Census> {
  const out: Partial<Census> = {};
  for (const key of Object.keys(after) as Array<keyof Census>) {
    const extra = after[key].filter((x) => !before[key].includes(x));
    if (extra.length > 0) out[key] = extra;
  }
  return out;
}

/** Calls `step` until it reports done, at most `rounds` times (every loop in a test is bounded). */
export async function drive<T extends { done: boolean }>(step: () => Promise<T>, rounds = 20): Promise<T> {
  let last: T | undefined;
  for (let i = 0; i < rounds; i++) {
    last = await step();
    if (last.done) return last;
  }
  throw new Error(`not done after ${rounds} rounds: ${JSON.stringify(last)}`);
}
