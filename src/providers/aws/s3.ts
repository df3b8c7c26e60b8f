// The S3 stack of one AwsObjectStorageBucketInstance (spec §3.3 "S3 Created"):
//
//   bucket      private (public access blocked) unless PublicReadAccess; tagged with the stack
//   s3-policy   read/write on the bucket and its objects
//   s3-role     assumable by the workload's ServiceAccount through the runtime's OIDC provider (IRSA)
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  DeletePublicAccessBlockCommand,
  GetBucketTaggingCommand,
  HeadBucketCommand,
  ListObjectVersionsCommand,
  ListObjectsV2Command,
  PutBucketPolicyCommand,
  PutBucketTaggingCommand,
  PutPublicAccessBlockCommand,
  type BucketLocationConstraint,
} from '@aws-sdk/client-s3';
import { awsHttpStatus, hasCode, isNotFound, ProvisioningError } from './errors.js';
import { accountOfArn, ensurePolicy, ensureRole, removePolicy, removeRole } from './iam.js';
import { newInventory, runCreate, runDelete, type ResourceInventory, type RunResult, type Step } from './inventory.js';
import type { RuntimeNetwork } from './eks.js';
import type { AwsSession } from './provider.js';
import { slug, stackTags, STACK_TAG, tagList } from './tags.js';

export interface BucketSpec {
  bucketName: string;
  publicRead: boolean;
  serviceAccountName: string;
}

export interface S3Context {
  session: AwsSession;
  stack: string;
  /** The runtime's network, for its OIDC provider (IRSA). */
  network: RuntimeNetwork;
  bucket: BucketSpec;
  signal?: AbortSignal;
}

function opts(ctx: { signal?: AbortSignal }): { abortSignal?: AbortSignal } {
  return ctx.signal ? { abortSignal: ctx.signal } : {};
}

/** A globally unique, stable bucket name: `tp-<account>-<instance id>-<name>`, at most 63 characters. */
export function bucketName(accountId: string, instanceId: number, name: string): string {
  const head = `tp-${accountId}-${instanceId}`;
  return `${head}-${slug(name, 63 - head.length - 1)}`.slice(0, 63).replace(/-$/, '');
}

export function roleName(stack: string): string {
  return `${stack}-s3`;
}

async function bucketExists(ctx: S3Context, name: string): Promise<boolean> {
  try {
    await ctx.session.s3.send(new HeadBucketCommand({ Bucket: name }), opts(ctx));
    return true;
  } catch (err) {
    if (isNotFound(err) || awsHttpStatus(err) === 404) return false;
    if (awsHttpStatus(err) === 403) throw new ProvisioningError(`S3 bucket ${name} exists and belongs to another account`);
    throw err;
  }
}

const bucketStep: Step<S3Context> = {
  key: 'bucket',
  title: 'S3 bucket',
  async ensure(ctx) {
    const name = ctx.bucket.bucketName;
    if (await bucketExists(ctx, name)) {
      try {
        const tags = await ctx.session.s3.send(new GetBucketTaggingCommand({ Bucket: name }), opts(ctx));
        const owner = tags.TagSet?.find((t) => t.Key === STACK_TAG)?.Value;
        if (owner !== undefined && owner !== ctx.stack) {
          throw new ProvisioningError(`S3 bucket ${name} already exists and belongs to ${owner}, not ${ctx.stack}`);
        }
      } catch (err) {
        // No tags yet: a crash between creating and tagging it; the deterministic name makes it ours.
        if (!hasCode(err, 'NoSuchTagSet', 'NoSuchTagSetError') && !isNotFound(err)) throw err;
      }
    } else {
      try {
        await ctx.session.s3.send(
          new CreateBucketCommand({
            Bucket: name,
            ...(ctx.session.region === 'us-east-1'
              ? {}
              : { CreateBucketConfiguration: { LocationConstraint: ctx.session.region as BucketLocationConstraint } }),
          }),
          opts(ctx),
        );
      } catch (err) {
        if (hasCode(err, 'BucketAlreadyExists')) throw new ProvisioningError(`the S3 bucket name ${name} is taken by another AWS account`);
        if (!hasCode(err, 'BucketAlreadyOwnedByYou')) throw err;
      }
    }
    await ctx.session.s3.send(new PutBucketTaggingCommand({ Bucket: name, Tagging: { TagSet: tagList(stackTags(ctx.stack, 'bucket')) } }), opts(ctx));
    if (ctx.bucket.publicRead) {
      await ctx.session.s3.send(new DeletePublicAccessBlockCommand({ Bucket: name }), opts(ctx));
      await ctx.session.s3.send(
        new PutBucketPolicyCommand({
          Bucket: name,
          Policy: JSON.stringify({
            Version: '2012-10-17',
            Statement: [
              { Sid: 'PublicRead', Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: `arn:${ctx.session.partition}:s3:::${name}/*` },
            ],
          }),
        }),
        opts(ctx),
      );
    } else {
      await ctx.session.s3.send(
        new PutPublicAccessBlockCommand({
          Bucket: name,
          PublicAccessBlockConfiguration: { BlockPublicAcls: true, IgnorePublicAcls: true, BlockPublicPolicy: true, RestrictPublicBuckets: true },
        }),
        opts(ctx),
      );
    }
    return { entry: { id: name, ready: true, arn: `arn:${ctx.session.partition}:s3:::${name}`, publicRead: ctx.bucket.publicRead } };
  },
  async remove(ctx, inv) {
    const name = inv.resources['bucket']?.id ?? ctx.bucket.bucketName;
    if (!(await bucketExists(ctx, name))) return { gone: true };
    await emptyBucket(ctx, name);
    try {
      await ctx.session.s3.send(new DeleteBucketCommand({ Bucket: name }), opts(ctx));
    } catch (err) {
      if (isNotFound(err)) return { gone: true };
      if (hasCode(err, 'BucketNotEmpty')) return { gone: false, waitingFor: `bucket ${name} to be empty (objects are still being written)`, pollMs: 10_000 };
      throw err;
    }
    return { gone: true };
  },
};

/** Deletes every object and object version, 1,000 at a time (bounded: at most 10,000 pages). */
async function emptyBucket(ctx: S3Context, name: string): Promise<void> {
  for (let page = 0; page < 10_000; page++) {
    const versions = await ctx.session.s3.send(new ListObjectVersionsCommand({ Bucket: name, MaxKeys: 1000 }), opts(ctx));
    const keys = [...(versions.Versions ?? []), ...(versions.DeleteMarkers ?? [])].flatMap((v) =>
      v.Key ? [{ Key: v.Key, ...(v.VersionId && v.VersionId !== 'null' ? { VersionId: v.VersionId } : {}) }] : [],
    );
    if (keys.length === 0) {
      const objects = await ctx.session.s3.send(new ListObjectsV2Command({ Bucket: name, MaxKeys: 1000 }), opts(ctx));
      const plain = (objects.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
      if (plain.length === 0) return;
      await ctx.session.s3.send(new DeleteObjectsCommand({ Bucket: name, Delete: { Objects: plain, Quiet: true } }), opts(ctx));
      continue;
    }
    await ctx.session.s3.send(new DeleteObjectsCommand({ Bucket: name, Delete: { Objects: keys, Quiet: true } }), opts(ctx));
  }
  throw new Error(`bucket ${name} still has objects after 10,000 pages of deletions`);
}

function policyName(stack: string): string {
  return `${stack}-s3`;
}

function accountId(ctx: S3Context): string {
  const account = accountOfArn(ctx.network.oidcProviderArn) ?? ctx.session.account.AccountID;
  if (!account) throw new Error('cannot tell the AWS account ID for the bucket policy');
  return account;
}

const policyStep: Step<S3Context> = {
  key: 's3-policy',
  title: 'bucket access policy',
  async ensure(ctx, inv) {
    const bucketArn = inv.resources['bucket']?.arn ?? `arn:${ctx.session.partition}:s3:::${ctx.bucket.bucketName}`;
    const arn = await ensurePolicy(
      ctx.session,
      ctx.stack,
      's3-policy',
      {
        name: policyName(ctx.stack),
        accountId: accountId(ctx),
        description: `Threeport: read and write ${ctx.bucket.bucketName}`,
        document: {
          Version: '2012-10-17',
          Statement: [
            { Effect: 'Allow', Action: ['s3:ListBucket', 's3:GetBucketLocation'], Resource: bucketArn },
            { Effect: 'Allow', Action: ['s3:GetObject', 's3:PutObject', 's3:DeleteObject'], Resource: `${bucketArn}/*` },
          ],
        },
      },
      ctx.signal,
    );
    return { entry: { id: policyName(ctx.stack), arn, ready: true } };
  },
  async remove(ctx, inv) {
    const arn = inv.resources['s3-policy']?.arn ?? (ctx.network.oidcProviderArn || ctx.session.account.AccountID ? `arn:${ctx.session.partition}:iam::${accountId(ctx)}:policy/${policyName(ctx.stack)}` : undefined);
    if (arn) await removePolicy(ctx.session, arn, ctx.signal);
    return { gone: true };
  },
};

const roleStep: Step<S3Context> = {
  key: 's3-role',
  title: 'workload IAM role (IRSA)',
  async ensure(ctx, inv) {
    const provider = ctx.network.oidcProviderArn;
    const issuer = ctx.network.oidcIssuer?.replace(/^https:\/\//, '');
    if (!provider || !issuer) throw new ProvisioningError(`the runtime's EKS cluster ${ctx.network.clusterName} has no OIDC provider; IRSA is not available`);
    const role = await ensureRole(
      ctx.session,
      ctx.stack,
      's3-role',
      {
        name: roleName(ctx.stack),
        description: `Threeport: ServiceAccount ${ctx.bucket.serviceAccountName} reaches bucket ${ctx.bucket.bucketName}`,
        trust: {
          document: {
            Version: '2012-10-17',
            Statement: [
              {
                Effect: 'Allow',
                Principal: { Federated: provider },
                Action: 'sts:AssumeRoleWithWebIdentity',
                Condition: {
                  StringEquals: { [`${issuer}:aud`]: 'sts.amazonaws.com' },
                  StringLike: { [`${issuer}:sub`]: `system:serviceaccount:*:${ctx.bucket.serviceAccountName}` },
                },
              },
            ],
          },
        },
        managedPolicies: [inv.resources['s3-policy']!.arn!],
      },
      ctx.signal,
    );
    return { entry: { id: role.name, arn: role.arn, ready: true, serviceAccount: ctx.bucket.serviceAccountName } };
  },
  async remove(ctx) {
    await removeRole(ctx.session, roleName(ctx.stack), ctx.signal);
    return { gone: true };
  },
};

export const S3_STEPS: readonly Step<S3Context>[] = [bucketStep, policyStep, roleStep];

export interface S3RunInput extends S3Context {
  inventory?: ResourceInventory | undefined;
  save: (inventory: ResourceInventory) => Promise<void>;
}

export async function provisionBucket(input: S3RunInput): Promise<RunResult & { inventory: ResourceInventory }> {
  const inventory = input.inventory ?? newInventory(input.stack, input.session.region);
  const result = await runCreate(S3_STEPS, input, inventory, { save: input.save, ...(input.signal ? { signal: input.signal } : {}) });
  return { ...result, inventory };
}

export async function deleteBucket(input: S3RunInput): Promise<RunResult & { inventory: ResourceInventory }> {
  const inventory = input.inventory ?? newInventory(input.stack, input.session.region, 'deleting');
  const result = await runDelete(S3_STEPS, input, inventory, { save: input.save, ...(input.signal ? { signal: input.signal } : {}) });
  return { ...result, inventory };
}
