// IAM roles and policies with deterministic names: a role is looked up by
// name before it is created, so repeating a step never makes a second one,
// and a role that exists without our stack tag is never adopted.
import {
  AttachRolePolicyCommand,
  CreatePolicyCommand,
  CreateRoleCommand,
  DeletePolicyCommand,
  DeletePolicyVersionCommand,
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  DetachRolePolicyCommand,
  GetPolicyCommand,
  GetRoleCommand,
  ListAttachedRolePoliciesCommand,
  ListPolicyVersionsCommand,
  ListRolePoliciesCommand,
  UpdateAssumeRolePolicyCommand,
} from '@aws-sdk/client-iam';
import { hasCode, isNotFound, ProvisioningError } from './errors.js';
import type { AwsSession } from './provider.js';
import { stackTags, STACK_TAG, tagList } from './tags.js';

export interface RoleSpec {
  name: string;
  description: string;
  /** A service principal, or a full trust policy document. */
  trust: { Service: string } | { document: Record<string, unknown> };
  managedPolicies: string[];
}

function trustDocument(trust: RoleSpec['trust']): string {
  if ('document' in trust) return JSON.stringify(trust.document);
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [{ Effect: 'Allow', Principal: { Service: trust.Service }, Action: 'sts:AssumeRole' }],
  });
}

function opts(signal: AbortSignal | undefined): { abortSignal?: AbortSignal } {
  return signal ? { abortSignal: signal } : {};
}

export async function ensureRole(
  session: AwsSession,
  stack: string,
  resource: string,
  spec: RoleSpec,
  signal?: AbortSignal,
): Promise<{ name: string; arn: string }> {
  let arn: string | undefined;
  try {
    const got = await session.iam.send(new GetRoleCommand({ RoleName: spec.name }), opts(signal));
    const owner = got.Role?.Tags?.find((t) => t.Key === STACK_TAG)?.Value;
    if (owner !== stack) {
      throw new ProvisioningError(`IAM role ${spec.name} already exists and does not belong to ${stack} (its ${STACK_TAG} tag is ${owner ?? 'missing'})`);
    }
    arn = got.Role?.Arn;
    // Keep the trust policy current (e.g. an IRSA role whose service account changed).
    if ('document' in spec.trust) {
      await session.iam.send(new UpdateAssumeRolePolicyCommand({ RoleName: spec.name, PolicyDocument: trustDocument(spec.trust) }), opts(signal));
    }
  } catch (err) {
    if (!isNotFound(err)) throw err;
    try {
      const out = await session.iam.send(
        new CreateRoleCommand({
          RoleName: spec.name,
          Description: spec.description.slice(0, 1000),
          AssumeRolePolicyDocument: trustDocument(spec.trust),
          Tags: tagList(stackTags(stack, resource)),
        }),
        opts(signal),
      );
      arn = out.Role?.Arn;
    } catch (createErr) {
      if (!hasCode(createErr, 'EntityAlreadyExists', 'EntityAlreadyExistsException')) throw createErr;
      arn = (await session.iam.send(new GetRoleCommand({ RoleName: spec.name }), opts(signal))).Role?.Arn;
    }
  }
  if (!arn) throw new Error(`IAM returned no ARN for role ${spec.name}`);
  // Attaching an attached policy is a no-op in IAM, so this is safe to repeat.
  for (const policyArn of spec.managedPolicies) {
    await session.iam.send(new AttachRolePolicyCommand({ RoleName: spec.name, PolicyArn: policyArn }), opts(signal));
  }
  return { name: spec.name, arn };
}

/** Detaches every managed policy, deletes every inline policy, then the role. Missing pieces are fine. */
export async function removeRole(session: AwsSession, name: string, signal?: AbortSignal): Promise<void> {
  try {
    const attached = await session.iam.send(new ListAttachedRolePoliciesCommand({ RoleName: name }), opts(signal));
    for (const p of attached.AttachedPolicies ?? []) {
      if (!p.PolicyArn) continue;
      try {
        await session.iam.send(new DetachRolePolicyCommand({ RoleName: name, PolicyArn: p.PolicyArn }), opts(signal));
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    const inline = await session.iam.send(new ListRolePoliciesCommand({ RoleName: name }), opts(signal));
    for (const policyName of inline.PolicyNames ?? []) {
      try {
        await session.iam.send(new DeleteRolePolicyCommand({ RoleName: name, PolicyName: policyName }), opts(signal));
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    await session.iam.send(new DeleteRoleCommand({ RoleName: name }), opts(signal));
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

/** A customer-managed policy with a deterministic name; its ARN is computed from the account, so lookups are exact. */
export async function ensurePolicy(
  session: AwsSession,
  stack: string,
  resource: string,
  input: { name: string; accountId: string; document: Record<string, unknown>; description: string },
  signal?: AbortSignal,
): Promise<string> {
  const arn = `arn:${session.partition}:iam::${input.accountId}:policy/${input.name}`;
  try {
    const got = await session.iam.send(new GetPolicyCommand({ PolicyArn: arn }), opts(signal));
    const owner = got.Policy?.Tags?.find((t) => t.Key === STACK_TAG)?.Value;
    if (owner !== undefined && owner !== stack) {
      throw new ProvisioningError(`IAM policy ${input.name} already exists and does not belong to ${stack}`);
    }
    return got.Policy?.Arn ?? arn;
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  try {
    const out = await session.iam.send(
      new CreatePolicyCommand({
        PolicyName: input.name,
        Description: input.description.slice(0, 1000),
        PolicyDocument: JSON.stringify(input.document),
        Tags: tagList(stackTags(stack, resource)),
      }),
      opts(signal),
    );
    return out.Policy?.Arn ?? arn;
  } catch (err) {
    if (hasCode(err, 'EntityAlreadyExists', 'EntityAlreadyExistsException')) return arn;
    throw err;
  }
}

/** Deletes a customer-managed policy and its non-default versions; it must be detached first. */
export async function removePolicy(session: AwsSession, arn: string, signal?: AbortSignal): Promise<void> {
  try {
    const versions = await session.iam.send(new ListPolicyVersionsCommand({ PolicyArn: arn }), opts(signal));
    for (const v of versions.Versions ?? []) {
      if (v.IsDefaultVersion || !v.VersionId) continue;
      await session.iam.send(new DeletePolicyVersionCommand({ PolicyArn: arn, VersionId: v.VersionId }), opts(signal));
    }
    await session.iam.send(new DeletePolicyCommand({ PolicyArn: arn }), opts(signal));
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}

/** The account ID as IAM sees it (from a role ARN we hold, or STS). */
export function accountOfArn(arn: string | undefined): string | undefined {
  return arn ? /^arn:[^:]+:[^:]*:[^:]*:(\d{12}):/.exec(arn)?.[1] : undefined;
}
