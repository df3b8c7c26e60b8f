// The RDS stack of one AwsRelationalDatabaseInstance (spec §3.3 "RDS Created"),
// inside the VPC of the EKS runtime its workload runs on:
//
//   db-security-group   allows DatabasePort from the cluster security group and the VPC
//   db-subnet-group     the runtime's private subnets
//   db-instance         the database (waits for "available")
//
// The master credentials are the caller's; they never enter the inventory, only a
// random label of them does (see RdsContext.credentialsLabel).
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateSecurityGroupCommand,
  DeleteSecurityGroupCommand,
  DescribeSecurityGroupsCommand,
} from '@aws-sdk/client-ec2';
import {
  CreateDBInstanceCommand,
  CreateDBSubnetGroupCommand,
  DeleteDBInstanceCommand,
  DeleteDBSubnetGroupCommand,
  DescribeDBInstancesCommand,
  DescribeDBSubnetGroupsCommand,
  ModifyDBInstanceCommand,
  type DBInstance,
} from '@aws-sdk/client-rds';
import { hasCode, isDependencyViolation, isNotFound, ProvisioningError } from './errors.js';
import { newInventory, runCreate, runDelete, type ResourceInventory, type RunResult, type Step } from './inventory.js';
import type { RuntimeNetwork } from './eks.js';
import type { AwsSession } from './provider.js';
import { ec2TagFilters, ec2TagSpec, stackTags, tagList } from './tags.js';

export interface DatabaseSpec {
  engine: string;
  engineVersion: string;
  databaseName: string;
  port: number;
  backupDays: number;
  /** DB instance class, e.g. db.t3.micro. */
  instanceClass: string;
  storageGb: number;
}

export interface RdsContext {
  session: AwsSession;
  stack: string;
  network: RuntimeNetwork;
  db: DatabaseSpec;
  /** The master credentials to create the instance with. */
  credentials: { username: string; password: string };
  /**
   * A random label of those credentials (not derived from them). The instance entry records the label
   * of the credentials it was created with, so a later run can tell whether the credentials it holds
   * are the instance's or must be set with resetMasterPassword.
   */
  credentialsLabel: string;
  pollMs: number;
  signal?: AbortSignal;
}

function opts(ctx: { signal?: AbortSignal }): { abortSignal?: AbortSignal } {
  return ctx.signal ? { abortSignal: ctx.signal } : {};
}

/** RDS identifiers: a letter first, letters, digits and single hyphens, at most 63. */
export function dbIdentifier(stack: string): string {
  return stack.replace(/--+/g, '-').slice(0, 63).replace(/-$/, '');
}

const securityGroupStep: Step<RdsContext> = {
  key: 'db-security-group',
  title: 'database security group',
  async ensure(ctx) {
    const found = await ctx.session.ec2.send(new DescribeSecurityGroupsCommand({ Filters: ec2TagFilters(ctx.stack, 'db-security-group') }), opts(ctx));
    let id = found.SecurityGroups?.[0]?.GroupId;
    if (!id) {
      id = (
        await ctx.session.ec2.send(
          new CreateSecurityGroupCommand({
            GroupName: `${ctx.stack}-db`,
            Description: `Threeport database ${ctx.stack}: ${ctx.db.engine} on port ${ctx.db.port} from the cluster`,
            VpcId: ctx.network.vpcId,
            TagSpecifications: ec2TagSpec('security-group', ctx.stack, 'db-security-group'),
          }),
          opts(ctx),
        )
      ).GroupId;
      if (!id) throw new Error('ec2:CreateSecurityGroup returned no group ID');
      try {
        await ctx.session.ec2.send(
          new AuthorizeSecurityGroupIngressCommand({
            GroupId: id,
            IpPermissions: [
              {
                IpProtocol: 'tcp',
                FromPort: ctx.db.port,
                ToPort: ctx.db.port,
                UserIdGroupPairs: [{ GroupId: ctx.network.clusterSecurityGroupId }],
                IpRanges: [{ CidrIp: ctx.network.vpcCidr, Description: 'the runtime VPC' }],
              },
            ],
          }),
          opts(ctx),
        );
      } catch (err) {
        if (!hasCode(err, 'InvalidPermission.Duplicate')) throw err;
      }
    }
    return { entry: { id, ready: true, port: ctx.db.port } };
  },
  async remove(ctx, inv) {
    const ids = new Set<string>();
    const known = inv.resources['db-security-group']?.id;
    if (known) ids.add(known);
    const found = await ctx.session.ec2.send(new DescribeSecurityGroupsCommand({ Filters: ec2TagFilters(ctx.stack, 'db-security-group') }), opts(ctx));
    for (const g of found.SecurityGroups ?? []) if (g.GroupId) ids.add(g.GroupId);
    for (const id of ids) {
      try {
        await ctx.session.ec2.send(new DeleteSecurityGroupCommand({ GroupId: id }), opts(ctx));
      } catch (err) {
        if (isNotFound(err)) continue;
        if (isDependencyViolation(err)) return { gone: false, waitingFor: `security group ${id} to be released by the database`, pollMs: ctx.pollMs };
        throw err;
      }
    }
    return { gone: true };
  },
};

const subnetGroupStep: Step<RdsContext> = {
  key: 'db-subnet-group',
  title: 'database subnet group',
  async ensure(ctx) {
    const name = dbIdentifier(ctx.stack);
    try {
      await ctx.session.rds.send(new DescribeDBSubnetGroupsCommand({ DBSubnetGroupName: name }), opts(ctx));
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await ctx.session.rds.send(
          new CreateDBSubnetGroupCommand({
            DBSubnetGroupName: name,
            DBSubnetGroupDescription: `Threeport database ${ctx.stack}: the runtime's private subnets`,
            SubnetIds: ctx.network.privateSubnetIds,
            Tags: tagList(stackTags(ctx.stack, 'db-subnet-group')),
          }),
          opts(ctx),
        );
      } catch (createErr) {
        if (!hasCode(createErr, 'DBSubnetGroupAlreadyExists', 'DBSubnetGroupAlreadyExistsFault')) throw createErr;
      }
    }
    return { entry: { id: name, ready: true, subnets: ctx.network.privateSubnetIds } };
  },
  async remove(ctx) {
    try {
      await ctx.session.rds.send(new DeleteDBSubnetGroupCommand({ DBSubnetGroupName: dbIdentifier(ctx.stack) }), opts(ctx));
    } catch (err) {
      if (isNotFound(err)) return { gone: true };
      if (hasCode(err, 'InvalidDBSubnetGroupStateFault', 'InvalidDBSubnetGroupState')) {
        return { gone: false, waitingFor: `subnet group ${dbIdentifier(ctx.stack)} to be released by the database`, pollMs: ctx.pollMs };
      }
      throw err;
    }
    return { gone: true };
  },
};

export async function describeDbInstance(session: AwsSession, id: string, signal?: AbortSignal): Promise<DBInstance | undefined> {
  try {
    return (await session.rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: id }), signal ? { abortSignal: signal } : {})).DBInstances?.[0];
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

const FAILED_DB_STATES = new Set(['failed', 'incompatible-parameters', 'incompatible-network', 'incompatible-option-group', 'incompatible-restore', 'storage-full']);

const instanceStep: Step<RdsContext> = {
  key: 'db-instance',
  title: 'database instance',
  async ensure(ctx, inv) {
    const id = dbIdentifier(ctx.stack);
    let db = await describeDbInstance(ctx.session, id, ctx.signal);
    let created = false;
    if (!db) {
      try {
        db = (
          await ctx.session.rds.send(
            new CreateDBInstanceCommand({
              DBInstanceIdentifier: id,
              Engine: ctx.db.engine,
              EngineVersion: ctx.db.engineVersion,
              DBInstanceClass: ctx.db.instanceClass,
              AllocatedStorage: ctx.db.storageGb,
              DBName: ctx.db.databaseName,
              Port: ctx.db.port,
              MasterUsername: ctx.credentials.username,
              MasterUserPassword: ctx.credentials.password,
              BackupRetentionPeriod: ctx.db.backupDays,
              DBSubnetGroupName: inv.resources['db-subnet-group']?.id ?? id,
              VpcSecurityGroupIds: [inv.resources['db-security-group']!.id],
              PubliclyAccessible: false,
              StorageEncrypted: true,
              Tags: tagList(stackTags(ctx.stack, 'db-instance')),
            }),
            opts(ctx),
          )
        ).DBInstance;
        created = true;
      } catch (err) {
        if (!hasCode(err, 'DBInstanceAlreadyExists', 'DBInstanceAlreadyExistsFault')) throw err;
        db = await describeDbInstance(ctx.session, id, ctx.signal);
      }
    }
    if (!db) throw new Error(`rds:CreateDBInstance returned no instance for ${id}`);
    const status = db.DBInstanceStatus ?? 'creating';
    const entry = {
      id,
      ...(db.DBInstanceArn ? { arn: db.DBInstanceArn } : {}),
      ready: false,
      status,
      engine: db.Engine ?? ctx.db.engine,
      masterUsername: db.MasterUsername ?? ctx.credentials.username,
      // The credentials it was created with, when a run of ours created it (a crash before this entry was saved loses it).
      ...(created
        ? { credentialsLabel: ctx.credentialsLabel }
        : typeof inv.resources['db-instance']?.['credentialsLabel'] === 'string'
          ? { credentialsLabel: inv.resources['db-instance']['credentialsLabel'] }
          : {}),
    };
    if (FAILED_DB_STATES.has(status)) throw new ProvisioningError(`RDS instance ${id} is ${status}`);
    if (status === 'available') return { entry };
    return { entry, ready: false, waitingFor: `RDS instance ${id} to become available (${status})`, pollMs: ctx.pollMs };
  },
  async remove(ctx) {
    const id = dbIdentifier(ctx.stack);
    const db = await describeDbInstance(ctx.session, id, ctx.signal);
    if (!db) return { gone: true };
    if (db.DBInstanceStatus !== 'deleting') {
      try {
        await ctx.session.rds.send(
          new DeleteDBInstanceCommand({ DBInstanceIdentifier: id, SkipFinalSnapshot: true, DeleteAutomatedBackups: true }),
          opts(ctx),
        );
      } catch (err) {
        if (isNotFound(err)) return { gone: true };
        if (!hasCode(err, 'InvalidDBInstanceState', 'InvalidDBInstanceStateFault')) throw err;
        return { gone: false, waitingFor: `RDS instance ${id} to finish ${db.DBInstanceStatus} before it can be deleted`, pollMs: ctx.pollMs };
      }
    }
    return (await describeDbInstance(ctx.session, id, ctx.signal))
      ? { gone: false, waitingFor: `RDS instance ${id} to be deleted`, pollMs: ctx.pollMs }
      : { gone: true };
  },
};

export const RDS_STEPS: readonly Step<RdsContext>[] = [securityGroupStep, subnetGroupStep, instanceStep];

export interface RdsRunInput extends Omit<RdsContext, 'pollMs'> {
  inventory?: ResourceInventory | undefined;
  save: (inventory: ResourceInventory) => Promise<void>;
  pollMs?: number;
}

export async function provisionDatabase(input: RdsRunInput): Promise<RunResult & { inventory: ResourceInventory }> {
  const inventory = input.inventory ?? newInventory(input.stack, input.session.region);
  const ctx: RdsContext = { ...input, pollMs: input.pollMs ?? 30_000 };
  const result = await runCreate(RDS_STEPS, ctx, inventory, { save: input.save, ...(input.signal ? { signal: input.signal } : {}) });
  return { ...result, inventory };
}

export async function deleteDatabase(
  input: Omit<RdsRunInput, 'credentials' | 'credentialsLabel' | 'db' | 'network'> & { network?: RuntimeNetwork },
): Promise<RunResult & { inventory: ResourceInventory }> {
  const inventory = input.inventory ?? newInventory(input.stack, input.session.region, 'deleting');
  const ctx = {
    ...input,
    pollMs: input.pollMs ?? 30_000,
    // Deletion needs neither the network nor the spec; these placeholders are never read.
    network: input.network ?? ({} as RuntimeNetwork),
    db: {} as DatabaseSpec,
    credentials: { username: '', password: '' },
    credentialsLabel: '',
  } as RdsContext;
  const result = await runDelete(RDS_STEPS, ctx, inventory, { save: input.save, ...(input.signal ? { signal: input.signal } : {}) });
  return { ...result, inventory };
}

/** Sets a new master password (the Secret that held the old one was lost). The instance must be available. */
export async function resetMasterPassword(session: AwsSession, id: string, password: string, signal?: AbortSignal): Promise<void> {
  await session.rds.send(
    new ModifyDBInstanceCommand({ DBInstanceIdentifier: id, MasterUserPassword: password, ApplyImmediately: true }),
    signal ? { abortSignal: signal } : {},
  );
}

/** Where workloads reach the database. */
export interface DatabaseEndpoint {
  host: string;
  port: number;
}

export interface DatabaseEndpointRequest {
  instance: DBInstance;
  engine: string;
  databaseName: string;
  port: number;
  username: string;
  password: string;
}

/** A seam: the default reads the RDS endpoint; tests (moto's endpoints are fake) point it at a local PostgreSQL. */
export interface DatabaseEndpointResolver {
  resolve(request: DatabaseEndpointRequest): Promise<DatabaseEndpoint>;
}

export class RdsEndpointResolver implements DatabaseEndpointResolver {
  async resolve(request: DatabaseEndpointRequest): Promise<DatabaseEndpoint> {
    const address = request.instance.Endpoint?.Address;
    if (!address) throw new Error(`RDS instance ${request.instance.DBInstanceIdentifier} has no endpoint yet`);
    return { host: address, port: request.instance.Endpoint?.Port ?? request.port };
  }
}
