// InfraProvider `eks` (spec §3.2): the runtime controller hands the work to the AWS objects.
// A definition gets an AwsEksKubernetesRuntimeDefinition, an instance an
// AwsEksKubernetesRuntimeInstance; the AWS controller provisions the cluster and writes the
// connection back onto the KubernetesRuntimeInstance. Deletion deletes the AWS objects.
import { AwsAccount, AwsEksKubernetesRuntimeDefinition, AwsEksKubernetesRuntimeInstance } from '../../kinds/aws.js';
import { LOCATION_TO_AWS_REGION, awsInstanceType } from '../../kinds/locations.js';
import type { JsonObject } from '../../kinds/validate.js';
import type { Kind } from '../../kinds/declare.js';
import { ConflictError, NotFoundError } from '../../errors.js';
import { verifyReachable } from './reachability.js';
import { RuntimeProviderError, type RuntimeContext, type RuntimeProvider } from './types.js';

function label(kind: string, o: JsonObject): string {
  return `${kind} ${JSON.stringify(o['Name'] ?? '?')} (ID ${String(o['ID'])})`;
}

/** The AwsEksKubernetesRuntimeDefinition fields for a KubernetesRuntimeDefinition (spec §3.2). */
export function eksDefinitionFields(definition: JsonObject, awsAccountId: number): JsonObject {
  const profile = String(definition['NodeProfile'] ?? 'Balanced');
  const size = String(definition['NodeSize'] ?? 'Medium');
  const instanceType = awsInstanceType(profile, size);
  if (!instanceType) {
    throw new RuntimeProviderError(`${label('KubernetesRuntimeDefinition', definition)}: no AWS instance type for NodeProfile ${profile} and NodeSize ${size}`, {
      retryable: false,
    });
  }
  return {
    Name: definition['Name'] as string,
    AWSAccountID: awsAccountId,
    ZoneCount: definition['HighAvailability'] === true ? 3 : 2,
    DefaultNodeGroupInstanceType: instanceType,
    DefaultNodeGroupInitialSize: 2,
    DefaultNodeGroupMinimumSize: 0,
    DefaultNodeGroupMaximumSize: Number(definition['NodeMaximum'] ?? 250),
    KubernetesRuntimeDefinitionID: definition['ID'] as number,
  };
}

/** Deletes an object, tolerating "already gone" and "already being deleted"; other 409s are retried. */
async function deleteTolerant(ctx: RuntimeContext, kind: Kind, id: number, what: string): Promise<void> {
  try {
    await ctx.store.delete(kind, id);
  } catch (err) {
    if (err instanceof NotFoundError) return;
    if (err instanceof ConflictError && /already being deleted/.test(err.message)) return;
    if (err instanceof ConflictError) {
      throw new RuntimeProviderError(`cannot delete ${what} yet: ${err.message}; will retry`, { retryable: true, cause: err });
    }
    throw err;
  }
}

export class EksRuntimeProvider implements RuntimeProvider {
  readonly infraProvider = 'eks' as const;

  async #account(ctx: RuntimeContext, definition: JsonObject): Promise<JsonObject> {
    const name = definition['InfraProviderAccountName'];
    const filter: JsonObject = typeof name === 'string' && name.length > 0 ? { Name: name } : { DefaultAccount: true };
    const [account] = await ctx.store.find(AwsAccount, filter);
    if (!account) {
      throw new RuntimeProviderError(
        typeof filter['Name'] === 'string'
          ? `${label('KubernetesRuntimeDefinition', definition)}: no AwsAccount named ${JSON.stringify(filter['Name'])}; create it (or fix InfraProviderAccountName)`
          : `${label('KubernetesRuntimeDefinition', definition)}: no InfraProviderAccountName and no default AwsAccount; create an AwsAccount with DefaultAccount: true`,
        { retryable: true, reason: 'AwsAccountNotFound' },
      );
    }
    return account;
  }

  async definitionCreated(ctx: RuntimeContext, definition: JsonObject): Promise<void> {
    const existing = await ctx.store.find(AwsEksKubernetesRuntimeDefinition, { KubernetesRuntimeDefinitionID: definition['ID'] as number });
    if (existing.length > 0) return;
    const account = await this.#account(ctx, definition);
    await ctx.store.create(AwsEksKubernetesRuntimeDefinition, eksDefinitionFields(definition, account['ID'] as number));
  }

  async definitionDeleted(ctx: RuntimeContext, definition: JsonObject): Promise<void> {
    for (const eks of await ctx.store.find(AwsEksKubernetesRuntimeDefinition, { KubernetesRuntimeDefinitionID: definition['ID'] as number })) {
      // 409 while its AwsEksKubernetesRuntimeInstances are still being removed by the AWS controller: retried.
      await deleteTolerant(ctx, AwsEksKubernetesRuntimeDefinition, eks['ID'] as number, label('AwsEksKubernetesRuntimeDefinition', eks));
    }
  }

  async instanceCreated(ctx: RuntimeContext, instance: JsonObject, definition: JsonObject): Promise<void> {
    const existing = await ctx.store.find(AwsEksKubernetesRuntimeInstance, { KubernetesRuntimeInstanceID: instance['ID'] as number });
    if (existing.length > 0) return;
    const [eksDef] = await ctx.store.find(AwsEksKubernetesRuntimeDefinition, { KubernetesRuntimeDefinitionID: definition['ID'] as number });
    if (!eksDef) {
      throw new RuntimeProviderError(
        `${label('KubernetesRuntimeInstance', instance)}: its definition's AwsEksKubernetesRuntimeDefinition does not exist yet; will retry`,
        { retryable: true },
      );
    }
    const location = String(instance['Location']);
    const region = LOCATION_TO_AWS_REGION[location];
    if (!region) {
      throw new RuntimeProviderError(`${label('KubernetesRuntimeInstance', instance)}: Location ${location} has no AWS region`, { retryable: false });
    }
    await ctx.store.create(AwsEksKubernetesRuntimeInstance, {
      Name: instance['Name'] as string,
      Region: region,
      AwsEksKubernetesRuntimeDefinitionID: eksDef['ID'] as number,
      KubernetesRuntimeInstanceID: instance['ID'] as number,
    });
  }

  /**
   * Upstream installs the agent and support services here once the AWS controller has written
   * APIEndpoint. We install nothing (see docs/kubernetes-runtimes.md); we check the cluster answers.
   */
  async instanceUpdated(ctx: RuntimeContext, instance: JsonObject): Promise<void> {
    if (!instance['APIEndpoint'] || instance['DeletionScheduled']) return;
    await verifyReachable(ctx, instance);
  }

  async instanceDeleted(ctx: RuntimeContext, instance: JsonObject): Promise<void> {
    ctx.kube.forget(Number(instance['ID']));
    for (const eks of await ctx.store.find(AwsEksKubernetesRuntimeInstance, { KubernetesRuntimeInstanceID: instance['ID'] as number })) {
      if (eks['DeletionScheduled']) continue;
      await deleteTolerant(ctx, AwsEksKubernetesRuntimeInstance, eks['ID'] as number, label('AwsEksKubernetesRuntimeInstance', eks));
    }
  }
}
