// AWS Secrets Manager, the secret backend (spec §3.6). A secret is named after
// its SecretDefinition and holds the definition's Data as a JSON object. A
// secret Threeport did not create (no stack tag) is never overwritten or deleted.
import {
  CreateSecretCommand,
  DeleteSecretCommand,
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  type DescribeSecretCommandOutput,
} from '@aws-sdk/client-secrets-manager';
import { hasCode, isNotFound, ProvisioningError } from './errors.js';
import type { AwsSession } from './provider.js';
import { stackTags, STACK_TAG, tagList } from './tags.js';

function opts(signal: AbortSignal | undefined): { abortSignal?: AbortSignal } {
  return signal ? { abortSignal: signal } : {};
}

async function describe(session: AwsSession, name: string, signal?: AbortSignal): Promise<DescribeSecretCommandOutput | undefined> {
  try {
    return await session.secretsManager.send(new DescribeSecretCommand({ SecretId: name }), opts(signal));
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

function owner(d: DescribeSecretCommandOutput): string | undefined {
  return d.Tags?.find((t) => t.Key === STACK_TAG)?.Value;
}

/**
 * Creates the secret, or sets its value when this stack created it before (a retry, or new data).
 * `data` undefined only checks that the secret exists (the data travels once, with the create request).
 */
export async function putSecret(
  session: AwsSession,
  input: { name: string; stack: string; data: Record<string, string> | undefined; description?: string },
  signal?: AbortSignal,
  retried = false,
): Promise<{ arn: string; created: boolean }> {
  const existing = await describe(session, input.name, signal);
  if (existing && !existing.DeletedDate) {
    const who = owner(existing);
    if (who !== input.stack) {
      throw new ProvisioningError(`a secret named ${input.name} already exists in AWS Secrets Manager (${session.region}) and Threeport did not create it for ${input.stack}`);
    }
    if (input.data) {
      await session.secretsManager.send(new PutSecretValueCommand({ SecretId: input.name, SecretString: JSON.stringify(input.data) }), opts(signal));
    }
    return { arn: existing.ARN ?? input.name, created: false };
  }
  if (existing?.DeletedDate) {
    throw new ProvisioningError(`a secret named ${input.name} is scheduled for deletion in AWS Secrets Manager (${session.region}); restore or purge it first`);
  }
  if (!input.data) {
    throw new ProvisioningError(`secret ${input.name} does not exist in AWS Secrets Manager and its data is gone (it travels only with the create request); delete and re-create the SecretDefinition`);
  }
  try {
    const out = await session.secretsManager.send(
      new CreateSecretCommand({
        Name: input.name,
        SecretString: JSON.stringify(input.data),
        Description: input.description ?? `Threeport secret ${input.name}`,
        Tags: tagList(stackTags(input.stack, 'secret')),
      }),
      opts(signal),
    );
    return { arn: out.ARN ?? input.name, created: true };
  } catch (err) {
    if (!hasCode(err, 'ResourceExistsException') || retried) throw err;
    // Created meanwhile (a concurrent run): check the owner again and set the value.
    return putSecret(session, input, signal, true);
  }
}

/** Deletes the secret at once (no recovery window, so the name can be reused); missing or foreign secrets are left alone. */
export async function deleteSecret(session: AwsSession, input: { name: string; stack: string }, signal?: AbortSignal): Promise<'deleted' | 'absent' | 'foreign'> {
  const existing = await describe(session, input.name, signal);
  if (!existing) return 'absent';
  if (owner(existing) !== input.stack) return 'foreign';
  try {
    await session.secretsManager.send(new DeleteSecretCommand({ SecretId: input.name, ForceDeleteWithoutRecovery: true }), opts(signal));
  } catch (err) {
    if (isNotFound(err)) return 'absent';
    throw err;
  }
  return 'deleted';
}

/**
 * The secret's current value as a string map, and its version (which changes on every rotation).
 * Undefined when the secret does not exist. A value that is not a JSON object of strings is a
 * ProvisioningError that names the secret and the offending key, never the value.
 */
export async function getSecretValue(session: AwsSession, name: string, signal?: AbortSignal): Promise<{ data: Record<string, string>; versionId: string } | undefined> {
  let out;
  try {
    out = await session.secretsManager.send(new GetSecretValueCommand({ SecretId: name }), opts(signal));
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(out.SecretString ?? '');
  } catch {
    throw new ProvisioningError(`secret ${name} in AWS Secrets Manager (${session.region}) is not a JSON object`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ProvisioningError(`secret ${name} in AWS Secrets Manager (${session.region}) is not a JSON object`);
  }
  const data: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (typeof v !== 'string') throw new ProvisioningError(`secret ${name} in AWS Secrets Manager (${session.region}): key ${JSON.stringify(k)} is not a string`);
    data[k] = v;
  }
  return { data, versionId: out.VersionId ?? '' };
}
