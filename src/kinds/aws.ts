import { defineKind, f } from './declare.js';
import { RDS_ENGINE_VERSIONS, RDS_MACHINE_SIZES, AWS_REGIONS } from './locations.js';

/** Kubernetes object names (DNS-1123 subdomain): Secrets and ServiceAccounts the AWS controller writes. */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;
/** A C identifier, as environment variable names are in practice. */
const ENV_VAR = /^[A-Za-z_][A-Za-z0-9_]*$/;

function intIn(o: Readonly<Record<string, unknown>>, kind: string, field: string, min: number, max: number): string | undefined {
  const v = o[field];
  if (typeof v !== 'number') return undefined;
  return v < min || v > max ? `${kind}.${field} must be from ${min} to ${max}, got ${v}` : undefined;
}

export const AwsAccount = defineKind({
  name: 'AwsAccount',
  plural: 'aws-accounts',
  domain: 'aws',
  base: 'plain',
  reconciled: false,
  description: 'An AWS account Threeport provisions into: static keys or a role to assume.',
  fields: {
    Name: f.string({ required: true }),
    AccountID: f.string({ required: true }),
    DefaultAccount: f.boolean({ default: false }),
    DefaultRegion: f.string({ required: true, enum: AWS_REGIONS }),
    AccessKeyID: f.string({ encrypted: true }),
    SecretAccessKey: f.string({ encrypted: true }),
    RoleArn: f.string(),
    ExternalId: f.string({ serverSet: true }),
  },
  uniqueWhenTrue: ['DefaultAccount'],
  check: (a) => {
    const keys = [a['AccessKeyID'], a['SecretAccessKey']].filter((v) => v !== undefined).length;
    if (keys === 1) return 'AwsAccount needs both AccessKeyID and SecretAccessKey, or neither';
    if (keys === 2 && a['RoleArn'] !== undefined) {
      return 'AwsAccount takes one credential style: static keys (AccessKeyID and SecretAccessKey) or a role to assume (RoleArn), not both';
    }
    if (keys === 0 && a['RoleArn'] === undefined) {
      return 'AwsAccount needs credentials: static keys (AccessKeyID and SecretAccessKey) or a role to assume (RoleArn)';
    }
    if (a['RoleArn'] !== undefined && !/^arn:aws[a-z-]*:iam::\d{12}:role\/.+/.test(String(a['RoleArn']))) {
      return `AwsAccount.RoleArn must be an IAM role ARN such as arn:aws:iam::123456789012:role/name, got ${JSON.stringify(a['RoleArn'])}`;
    }
    if (!/^\d{12}$/.test(String(a['AccountID']))) {
      return `AwsAccount.AccountID must be a 12-digit AWS account ID, got ${JSON.stringify(a['AccountID'])}`;
    }
    return undefined;
  },
});

export const AwsEksKubernetesRuntimeDefinition = defineKind({
  name: 'AwsEksKubernetesRuntimeDefinition',
  plural: 'aws-eks-kubernetes-runtime-definitions',
  domain: 'aws',
  base: 'definition',
  reconciled: false,
  fields: {
    AWSAccountID: f.id('AwsAccount', { required: true, blocksDelete: true }),
    ZoneCount: f.integer({ required: true }),
    DefaultNodeGroupInstanceType: f.string({ required: true }),
    DefaultNodeGroupInitialSize: f.integer({ required: true }),
    DefaultNodeGroupMinimumSize: f.integer({ required: true }),
    DefaultNodeGroupMaximumSize: f.integer({ required: true }),
    KubernetesRuntimeDefinitionID: f.id('KubernetesRuntimeDefinition', { required: true }),
  },
  check: (d) => {
    const k = 'AwsEksKubernetesRuntimeDefinition';
    const bad =
      intIn(d, k, 'ZoneCount', 1, 4) ??
      intIn(d, k, 'DefaultNodeGroupMinimumSize', 0, 1000) ??
      intIn(d, k, 'DefaultNodeGroupMaximumSize', 1, 1000) ??
      intIn(d, k, 'DefaultNodeGroupInitialSize', 0, 1000);
    if (bad) return bad;
    const [min, initial, max] = [d['DefaultNodeGroupMinimumSize'], d['DefaultNodeGroupInitialSize'], d['DefaultNodeGroupMaximumSize']] as number[];
    if (!(min! <= initial! && initial! <= max!)) {
      return `${k} node group sizes must satisfy DefaultNodeGroupMinimumSize <= DefaultNodeGroupInitialSize <= DefaultNodeGroupMaximumSize, got ${min} <= ${initial} <= ${max}`;
    }
    const type = d['DefaultNodeGroupInstanceType'];
    if (typeof type === 'string' && !/^[a-z][a-z0-9-]*\.[a-z0-9]+$/.test(type)) {
      return `${k}.DefaultNodeGroupInstanceType must be an EC2 instance type such as t3.medium, got ${JSON.stringify(type)}`;
    }
    return undefined;
  },
});

export const AwsEksKubernetesRuntimeInstance = defineKind({
  name: 'AwsEksKubernetesRuntimeInstance',
  plural: 'aws-eks-kubernetes-runtime-instances',
  domain: 'aws',
  base: 'instance',
  reconciled: true,
  fields: {
    Region: f.string({ enum: AWS_REGIONS }),
    AwsEksKubernetesRuntimeDefinitionID: f.id('AwsEksKubernetesRuntimeDefinition', {
      required: true,
      blocksDelete: true,
    }),
    ResourceInventory: f.json({ observed: true }),
    KubernetesRuntimeInstanceID: f.id('KubernetesRuntimeInstance', { required: true }),
  },
});

export const AwsRelationalDatabaseDefinition = defineKind({
  name: 'AwsRelationalDatabaseDefinition',
  plural: 'aws-relational-database-definitions',
  domain: 'aws',
  base: 'definition',
  reconciled: false,
  fields: {
    Engine: f.string({ required: true, enum: Object.keys(RDS_ENGINE_VERSIONS) }),
    EngineVersion: f.string({ required: true }),
    DatabaseName: f.string({ required: true }),
    DatabasePort: f.integer({ required: true }),
    BackupDays: f.integer({ default: 0, query: 'BackupDays' }),
    MachineSize: f.string({ required: true, enum: Object.keys(RDS_MACHINE_SIZES) }),
    StorageGb: f.integer({ required: true }),
    WorkloadSecretName: f.string({ required: true }),
    AwsAccountID: f.id('AwsAccount', { required: true, blocksDelete: true }),
  },
  check: (d) => {
    const k = 'AwsRelationalDatabaseDefinition';
    const engine = String(d['Engine']);
    const versions = RDS_ENGINE_VERSIONS[engine];
    const version = String(d['EngineVersion']);
    if (versions && !versions.some((m) => version === m || version.startsWith(`${m}.`))) {
      return `${k}.EngineVersion ${JSON.stringify(d['EngineVersion'])} is not supported for Engine ${engine}: must be one of ${versions.join(', ')} (or a minor release of one)`;
    }
    const bad =
      intIn(d, k, 'DatabasePort', 1150, 65535) ?? intIn(d, k, 'StorageGb', 20, 65536) ?? intIn(d, k, 'BackupDays', 0, 35);
    if (bad) return bad;
    const db = d['DatabaseName'];
    if (typeof db === 'string' && !/^[A-Za-z][A-Za-z0-9_]{0,62}$/.test(db)) {
      return `${k}.DatabaseName must start with a letter and hold only letters, digits and underscores (at most 63), got ${JSON.stringify(db)}`;
    }
    const secret = d['WorkloadSecretName'];
    if (typeof secret === 'string' && !DNS_SUBDOMAIN.test(secret)) {
      return `${k}.WorkloadSecretName must be a Kubernetes object name (lower-case letters, digits, '-' and '.'), got ${JSON.stringify(secret)}`;
    }
    return undefined;
  },
});

export const AwsRelationalDatabaseInstance = defineKind({
  name: 'AwsRelationalDatabaseInstance',
  plural: 'aws-relational-database-instances',
  domain: 'aws',
  base: 'instance',
  reconciled: true,
  fields: {
    AwsRelationalDatabaseDefinitionID: f.id('AwsRelationalDatabaseDefinition', { required: true, blocksDelete: true }),
    ResourceInventory: f.json({ observed: true }),
    WorkloadInstanceID: f.id('WorkloadInstance', { required: true }),
  },
});

export const AwsObjectStorageBucketDefinition = defineKind({
  name: 'AwsObjectStorageBucketDefinition',
  plural: 'aws-object-storage-bucket-definitions',
  domain: 'aws',
  base: 'definition',
  reconciled: false,
  fields: {
    PublicReadAccess: f.boolean({ default: false }),
    WorkloadServiceAccountName: f.string({ required: true }),
    WorkloadBucketEnvVar: f.string({ required: true }),
    AwsAccountID: f.id('AwsAccount', { required: true, blocksDelete: true }),
  },
  check: (d) => {
    const k = 'AwsObjectStorageBucketDefinition';
    const sa = d['WorkloadServiceAccountName'];
    if (typeof sa === 'string' && !DNS_SUBDOMAIN.test(sa)) {
      return `${k}.WorkloadServiceAccountName must be a Kubernetes object name (lower-case letters, digits, '-' and '.'), got ${JSON.stringify(sa)}`;
    }
    const env = d['WorkloadBucketEnvVar'];
    if (typeof env === 'string' && !ENV_VAR.test(env)) {
      return `${k}.WorkloadBucketEnvVar must be an environment variable name (letters, digits and '_', not starting with a digit), got ${JSON.stringify(env)}`;
    }
    return undefined;
  },
});

export const AwsObjectStorageBucketInstance = defineKind({
  name: 'AwsObjectStorageBucketInstance',
  plural: 'aws-object-storage-bucket-instances',
  domain: 'aws',
  base: 'instance',
  reconciled: true,
  fields: {
    ResourceInventory: f.json({ observed: true }),
    AwsObjectStorageBucketDefinitionID: f.id('AwsObjectStorageBucketDefinition', { required: true, blocksDelete: true }),
    WorkloadInstanceID: f.id('WorkloadInstance', { required: true }),
  },
});
