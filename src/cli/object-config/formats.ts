// Every object config format tptctl reads (spec §5.4), declared once. A
// `<Kind>Definition` / `<Kind>Instance` format mirrors its API kind: its field
// types, enums and required-ness come from the kind declaration. The
// defined-instance formats (Workload, HelmWorkload, KubernetesRuntime, ...)
// combine those fields and plan a definition and an instance with one name.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Kind } from '../../kinds/declare.js';
import { aws, controlPlane, gateway, helmWorkload, kubernetesRuntime, observability, secret, terraform, workload } from '../../kinds/index.js';
import { LOCATION_TO_AWS_REGION, RDS_ENGINE_VERSIONS } from '../../kinds/locations.js';
import type { ParseableFormat } from './parse.js';
import { planObject, type PlanContext, type PlannedObject, type PlannedRef } from './planned.js';
import {
  atLeastOne,
  atMostOne,
  exactlyOne,
  fieldsOf,
  filePath,
  fromKind,
  nestedKind,
  plain,
  refByObject,
  refByString,
  type ConfigField,
  type Fields,
  type Rule,
  type Values,
} from './schema.js';

export interface ConfigFormat extends ParseableFormat {
  readonly configKind: string;
  readonly fields: Fields;
  readonly rules?: readonly Rule[];
  /** The API objects this config stands for, in creation order. */
  plan(values: Values, ctx: PlanContext, root: string): PlannedObject[];
  /** Defined-instance formats: the definition and instance kinds they pair. */
  readonly definition?: Kind;
  readonly instance?: Kind;
  /** Single-object formats: the one kind. */
  readonly kind?: Kind;
  /** Every kind a config of this format creates under its own name, in creation order (for `delete -n`). */
  readonly members: readonly Kind[];
}

const { WorkloadDefinition: WD, WorkloadInstance: WI } = workload;
const { KubernetesRuntimeDefinition: KRD, KubernetesRuntimeInstance: KRI } = kubernetesRuntime;
const {
  AwsAccount,
  AwsEksKubernetesRuntimeDefinition: EksD,
  AwsEksKubernetesRuntimeInstance: EksI,
  AwsRelationalDatabaseDefinition: RdsD,
  AwsRelationalDatabaseInstance: RdsI,
  AwsObjectStorageBucketDefinition: S3D,
  AwsObjectStorageBucketInstance: S3I,
} = aws;
const { DomainNameDefinition: DnD, DomainNameInstance: DnI, GatewayDefinition: GwD, GatewayInstance: GwI, GatewayHttpPort, GatewayTcpPort } =
  gateway;
const { HelmWorkloadDefinition: HwD, HelmWorkloadInstance: HwI } = helmWorkload;
const { SecretDefinition: SecD, SecretInstance: SecI } = secret;
const { TerraformDefinition: TfD, TerraformInstance: TfI } = terraform;
const { ObservabilityStackDefinition: ObsD, ObservabilityStackInstance: ObsI } = observability;
const { ControlPlaneDefinition: CpD, ControlPlaneInstance: CpI } = controlPlane;

// ---------------------------------------------------------------- shared fields

const runtimeRef = refByObject(KRI, 'KubernetesRuntimeInstanceID', { defaultRuntime: true });
const workloadInstanceRef = (required: boolean) => refByObject(WI, 'WorkloadInstanceID', { required });
const awsAccountName = (required: boolean) => refByString(AwsAccount, 'AwsAccountID', { required });
const named = (kind: Kind) => ({ Name: fromKind(kind, 'Name') });

function valuesInlineOrFile(prefix: string, to: string): Record<string, ConfigField> {
  return {
    [`${prefix}Values`]: { ...plain({ type: 'string' }, { doc: 'Helm values, inline YAML' }), target: { copy: to } },
    [`${prefix}ValuesDocument`]: filePath(to, { doc: 'a Helm values file, relative to the config file' }),
  };
}

const httpPortsShape = { type: 'list', item: nestedKind(GatewayHttpPort, ['GatewayDefinitionID']) } as const;
const tcpPortsShape = { type: 'list', item: nestedKind(GatewayTcpPort, ['GatewayDefinitionID']) } as const;

const gatewayPortRules: Rule[] = [
  atLeastOne('HttpPorts', 'TcpPorts'),
  (v) => {
    const ports = (v['HttpPorts'] as Values[] | undefined) ?? [];
    const i = ports.findIndex((p) => p['TLSEnabled'] === true && p['HTTPSRedirect'] === true);
    return i >= 0 ? { field: `HttpPorts[${i}]`, message: 'TLSEnabled and HTTPSRedirect cannot both be true on one port' } : undefined;
  },
];

const gatewayDefinitionFields: Fields = {
  ...named(GwD),
  HttpPorts: { shape: httpPortsShape, target: { copy: 'HttpPorts' } },
  TcpPorts: { shape: tcpPortsShape, target: { copy: 'TcpPorts' } },
  ...fieldsOf(GwD, ['ServiceName', 'SubDomain']),
};

const rdsDefinitionFields: Fields = {
  ...named(RdsD),
  AwsAccountName: awsAccountName(true),
  ...fieldsOf(RdsD, ['Engine', 'EngineVersion', 'DatabaseName', 'DatabasePort', 'BackupDays', 'MachineSize', 'StorageGb', 'WorkloadSecretName']),
};

const rdsVersionRule: Rule = (v) => {
  const engine = v['Engine'] as string | undefined;
  const version = v['EngineVersion'] as string | undefined;
  if (!engine || !version) return undefined;
  const allowed = RDS_ENGINE_VERSIONS[engine] ?? [];
  const ok = allowed.some((m) => version === m || version.startsWith(`${m}.`));
  return ok ? undefined : { field: 'EngineVersion', message: `${JSON.stringify(version)} is not a supported ${engine} version: expected ${allowed.join(', ')} (or a minor release of one)` };
};

const s3DefinitionFields: Fields = {
  ...named(S3D),
  AwsAccountName: awsAccountName(true),
  ...fieldsOf(S3D, ['PublicReadAccess', 'WorkloadServiceAccountName', 'WorkloadBucketEnvVar']),
};

const domainNameDefinitionFields: Fields = { ...named(DnD), ...fieldsOf(DnD, ['Domain', 'Zone', 'AdminEmail']) };

const secretDefinitionFields: Fields = { ...named(SecD), Data: fromKind(SecD, 'Data'), AwsAccountName: awsAccountName(false) };

const OBSERVABILITY_CHARTS = ['Grafana', 'KubePrometheusStack', 'Loki', 'Promtail'] as const;
/** `GrafanaHelmValues` (inline) or `GrafanaHelmValuesDocument` (a file), and so on for each chart. */
const observabilityValues = (): Record<string, ConfigField> =>
  Object.assign({}, ...OBSERVABILITY_CHARTS.map((c) => valuesInlineOrFile(`${c}Helm`, `${c}HelmValuesDocument`))) as Record<string, ConfigField>;
const observabilityValueRules: Rule[] = OBSERVABILITY_CHARTS.map((c) => atMostOne(`${c}HelmValues`, `${c}HelmValuesDocument`));

const customComponentShape = {
  type: 'list',
  item: {
    type: 'object',
    fields: {
      Name: plain({ type: 'string' }, { required: true }),
      Enabled: plain({ type: 'boolean' }),
      BinaryName: plain({ type: 'string' }),
      ImageName: plain({ type: 'string' }),
      ImageRepo: plain({ type: 'string' }),
      ImageTag: plain({ type: 'string' }),
      ServiceAccountName: plain({ type: 'string' }),
      ServiceResourceName: plain({ type: 'string' }),
      ImagePullSecretName: plain({ type: 'string' }),
    },
  },
} as const;

// ---------------------------------------------------------------- helpers

/** A format for exactly one API object, planned field by field. */
function objectFormat(kind: Kind, fields: Fields, rules: Rule[] = [], extra: Partial<Pick<ConfigFormat, 'plan'>> = {}): ConfigFormat {
  return {
    configKind: kind.name,
    fields,
    rules,
    kind,
    members: [kind],
    plan: extra.plan ?? ((values, ctx, root) => [planObject(kind, fields, Object.keys(fields), values, ctx, root)]),
  };
}

function refTo(kind: Kind, field: string, name: string, path: string): PlannedRef {
  return { field, kind, name, path };
}

/** The default-runtime or named-runtime reference of a config, at `path`. */
function runtimeRefOf(values: Values, path: string): PlannedRef {
  const named = values['KubernetesRuntimeInstance'] as Values | undefined;
  return named
    ? { field: 'KubernetesRuntimeInstanceID', kind: KRI, name: named['Name'] as string, path: `${path}.KubernetesRuntimeInstance.Name` }
    : { field: 'KubernetesRuntimeInstanceID', kind: KRI, defaultRuntime: true, path: `${path}.KubernetesRuntimeInstance` };
}

function locationForRegion(region: string): string | undefined {
  return Object.entries(LOCATION_TO_AWS_REGION).find(([loc, r]) => r === region && loc !== 'Local')?.[0];
}

// ---------------------------------------------------------------- AWS accounts

/** Reads an AWS shared config or credentials file (INI). */
export function readIni(text: string): Map<string, Map<string, string>> {
  const sections = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[\s*(.+?)\s*\]$/.exec(line);
    if (header) {
      current = new Map();
      sections.set(header[1]!, current);
      continue;
    }
    const eq = line.indexOf('=');
    if (eq > 0 && current) current.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  return sections;
}

const awsAccountFields: Fields = {
  ...fieldsOf(AwsAccount, ['Name', 'AccountID']),
  ...fieldsOf(AwsAccount, ['DefaultAccount', 'DefaultRegion', 'AccessKeyID', 'SecretAccessKey', 'RoleArn'], { optional: true }),
  LocalConfig: plain({ type: 'string' }, { doc: 'an AWS config file (INI); its profile gives the region' }),
  LocalCredentials: plain({ type: 'string' }, { doc: 'an AWS credentials file (INI); its profile gives the keys' }),
  LocalProfile: plain({ type: 'string' }, { doc: 'the profile to read from LocalConfig and LocalCredentials' }),
};

const AWS_ACCOUNT_HELP = 'give DefaultRegion with AccessKeyID and SecretAccessKey (or with RoleArn), or LocalConfig, LocalCredentials and LocalProfile';

const awsAccountRules: Rule[] = [
  (v) => {
    const local = ['LocalConfig', 'LocalCredentials', 'LocalProfile'].filter((k) => v[k] !== undefined);
    const explicit = ['AccessKeyID', 'SecretAccessKey'].filter((k) => v[k] !== undefined);
    if (local.length > 0 && explicit.length > 0) return { field: explicit[0]!, message: `cannot be combined with ${local[0]}: ${AWS_ACCOUNT_HELP}` };
    if (local.length > 0 && local.length < 3) {
      const missing = ['LocalConfig', 'LocalCredentials', 'LocalProfile'].filter((k) => v[k] === undefined);
      return { field: missing[0]!, message: `required with ${local[0]}: ${AWS_ACCOUNT_HELP}` };
    }
    if (explicit.length === 1) {
      const missing = explicit[0] === 'AccessKeyID' ? 'SecretAccessKey' : 'AccessKeyID';
      return { field: missing, message: `required with ${explicit[0]}: give both keys or neither` };
    }
    if (local.length === 0 && v['DefaultRegion'] === undefined) return { field: 'DefaultRegion', message: `required field is missing: ${AWS_ACCOUNT_HELP}` };
    if (local.length === 0 && explicit.length === 0 && v['RoleArn'] === undefined) {
      return { message: `no credentials: ${AWS_ACCOUNT_HELP}` };
    }
    return undefined;
  },
];

function planAwsAccount(values: Values, ctx: PlanContext, root: string): PlannedObject[] {
  const obj = planObject(AwsAccount, awsAccountFields, Object.keys(awsAccountFields), values, ctx, root, {
    preflight: async (api, existing) => {
      if (values['DefaultAccount'] !== true) return;
      const defaults = await api.listAll(AwsAccount, { DefaultAccount: true });
      const other = defaults.find((a) => a.Name !== values['Name'] && a.ID !== existing?.['ID']);
      if (other) throw ctx.source.error(`${root}.DefaultAccount`, `AwsAccount ${JSON.stringify(other.Name)} is already the default account; only one default account is allowed`);
    },
  });
  if (values['LocalProfile'] !== undefined && ctx.readFiles) {
    const profile = values['LocalProfile'] as string;
    const read = (key: 'LocalConfig' | 'LocalCredentials') => {
      const rel = values[key] as string;
      const abs = resolve(ctx.source.dir, rel);
      try {
        return readIni(readFileSync(abs, 'utf8'));
      } catch {
        throw ctx.source.error(`${root}.${key}`, `file ${JSON.stringify(rel)} does not exist or cannot be read (looked for ${abs}; paths are relative to the config file)`);
      }
    };
    const config = read('LocalConfig');
    const creds = read('LocalCredentials');
    if (values['DefaultRegion'] === undefined) {
      const section = config.get(profile === 'default' ? 'default' : `profile ${profile}`) ?? config.get(profile);
      const region = section?.get('region');
      if (!region) throw ctx.source.error(`${root}.LocalConfig`, `profile ${JSON.stringify(profile)} with a region not found in ${values['LocalConfig'] as string}`);
      obj.fields['DefaultRegion'] = region;
    }
    const keys = creds.get(profile);
    const id = keys?.get('aws_access_key_id');
    const secretKey = keys?.get('aws_secret_access_key');
    if (!id || !secretKey) {
      throw ctx.source.error(`${root}.LocalCredentials`, `profile ${JSON.stringify(profile)} with aws_access_key_id and aws_secret_access_key not found in ${values['LocalCredentials'] as string}`);
    }
    obj.fields['AccessKeyID'] = id;
    obj.fields['SecretAccessKey'] = secretKey;
  }
  return [obj];
}

// ---------------------------------------------------------------- definitions and instances

const workloadDefinitionFields: Fields = { ...named(WD), YAMLDocument: filePath('YAMLDocument', { required: true, doc: 'a multi-document Kubernetes manifest, relative to the config file' }) };
const workloadInstanceFields: Fields = {
  ...named(WI),
  WorkloadDefinition: refByObject(WD, 'WorkloadDefinitionID', { required: true }),
  KubernetesRuntimeInstance: runtimeRef,
};

const kubernetesRuntimeDefinitionFields: Fields = {
  ...named(KRD),
  ...fieldsOf(KRD, ['InfraProvider', 'InfraProviderAccountName', 'HighAvailability', 'NodeSize', 'NodeProfile', 'NodeMaximum']),
};
/** Ours (InfraProvider kubeconfig): an existing cluster's connection, read from a kubeconfig file. */
const kubeconfigFields: Fields = {
  Kubeconfig: plain({ type: 'string' }, { doc: 'a kubeconfig file, relative to the config file: its context gives APIEndpoint, CACertificate and the client certificate or token (InfraProvider kubeconfig)' }),
  KubeconfigContext: plain({ type: 'string' }, { doc: 'the context to read (default: its current context)' }),
};
const kubeconfigRules: Rule[] = [(v) => (v['KubeconfigContext'] !== undefined && v['Kubeconfig'] === undefined ? { field: 'KubeconfigContext', message: 'needs Kubeconfig' } : undefined)];

const kubernetesRuntimeInstanceFields: Fields = {
  ...named(KRI),
  ...fieldsOf(KRI, ['ThreeportControlPlaneHost', 'DefaultRuntime', 'Location', 'ThreeportAgentImage']),
  KubernetesRuntimeDefinition: refByObject(KRD, 'KubernetesRuntimeDefinitionID', { required: true }),
  ...kubeconfigFields,
};

/**
 * Fills the instance's connection fields from the kubeconfig the config names,
 * before anything is written (the kube client library loads only when needed).
 */
function withKubeconfig(obj: PlannedObject, values: Values, ctx: PlanContext, root: string): PlannedObject {
  const file = values['Kubeconfig'] as string | undefined;
  if (file === undefined) return obj;
  const previous = obj.preflight;
  obj.preflight = async (api, existing) => {
    await previous?.(api, existing);
    const abs = resolve(ctx.source.dir, file);
    if (!existsSync(abs)) {
      throw ctx.source.error(`${root}.Kubeconfig`, `file ${JSON.stringify(file)} does not exist (looked for ${abs}; paths are relative to the config file)`);
    }
    const { connectionFieldsFromKubeconfig } = await import('../../providers/kube/connection.js');
    try {
      Object.assign(obj.fields, connectionFieldsFromKubeconfig(abs, values['KubeconfigContext'] as string | undefined));
    } catch (err) {
      throw ctx.source.error(`${root}.${values['KubeconfigContext'] !== undefined ? 'KubeconfigContext' : 'Kubeconfig'}`, (err as Error).message);
    }
  };
  return obj;
}

const eksDefinitionFields: Fields = {
  ...named(EksD),
  AwsAccountName: refByString(AwsAccount, 'AWSAccountID', { required: true }),
  ...fieldsOf(EksD, ['ZoneCount', 'DefaultNodeGroupInstanceType', 'DefaultNodeGroupInitialSize', 'DefaultNodeGroupMinimumSize', 'DefaultNodeGroupMaximumSize']),
};
const eksInstanceFields: Fields = {
  ...named(EksI),
  Region: fromKind(EksI, 'Region', { required: true }),
  AwsEksKubernetesRuntimeDefinition: refByObject(EksD, 'AwsEksKubernetesRuntimeDefinitionID', { required: true }),
  DefaultRuntime: fromKind(KRI, 'DefaultRuntime'),
};

/** An EKS runtime definition is backed by a KubernetesRuntimeDefinition of the same name. */
function planEksDefinition(values: Values, ctx: PlanContext, root: string): PlannedObject[] {
  const name = values['Name'] as string;
  // Created Reconciled, as upstream's config layer does: this config creates the
  // AwsEksKubernetesRuntimeDefinition itself, so the runtime controller must not race it.
  const krd = planObject(KRD, {}, [], values, ctx, root, {
    fixed: { Name: name, InfraProvider: 'eks', InfraProviderAccountName: values['AwsAccountName'], Reconciled: true },
  });
  const def = planObject(EksD, eksDefinitionFields, Object.keys(eksDefinitionFields), values, ctx, root, {
    refs: [refTo(KRD, 'KubernetesRuntimeDefinitionID', name, `${root}.Name`)],
  });
  return [krd, def];
}

/** An EKS runtime instance is backed by a KubernetesRuntimeInstance of the same name, located where its region is. */
function planEksInstance(values: Values, ctx: PlanContext, root: string, definitionName?: string): PlannedObject[] {
  const name = values['Name'] as string;
  const region = values['Region'] as string;
  const location = locationForRegion(region);
  if (!location) throw ctx.source.error(`${root}.Region`, `region ${JSON.stringify(region)} has no Threeport location`);
  const defName = definitionName ?? ((values['AwsEksKubernetesRuntimeDefinition'] as Values)['Name'] as string);
  const defPath = definitionName ? `${root}.Name` : `${root}.AwsEksKubernetesRuntimeDefinition.Name`;
  // Reconciled for the same reason: the AwsEksKubernetesRuntimeInstance is created below; the AWS
  // controller marks the instance unreconciled once the cluster can be reached.
  const kri = planObject(KRI, {}, [], values, ctx, root, {
    fixed: { Name: name, Location: location, Reconciled: true, ...(values['DefaultRuntime'] !== undefined ? { DefaultRuntime: values['DefaultRuntime'] } : {}) },
    refs: [{ ...refTo(KRD, 'KubernetesRuntimeDefinitionID', defName, defPath), named: EksD }],
  });
  const inst = planObject(EksI, eksInstanceFields, ['Name', 'Region'], values, ctx, root, {
    refs: [refTo(EksD, 'AwsEksKubernetesRuntimeDefinitionID', defName, defPath), refTo(KRI, 'KubernetesRuntimeInstanceID', name, `${root}.Name`)],
  });
  return [kri, inst];
}

const rdsInstanceFields: Fields = {
  ...named(RdsI),
  AwsRelationalDatabaseDefinition: refByObject(RdsD, 'AwsRelationalDatabaseDefinitionID', { required: true }),
  WorkloadInstance: workloadInstanceRef(true),
};
const s3InstanceFields: Fields = {
  ...named(S3I),
  AwsObjectStorageBucketDefinition: refByObject(S3D, 'AwsObjectStorageBucketDefinitionID', { required: true }),
  WorkloadInstance: workloadInstanceRef(true),
};
const domainNameInstanceFields: Fields = {
  ...named(DnI),
  DomainNameDefinition: refByObject(DnD, 'DomainNameDefinitionID', { required: true }),
  KubernetesRuntimeInstance: runtimeRef,
  WorkloadInstance: workloadInstanceRef(true),
};
const gatewayDefinitionWithDomain: Fields = {
  ...gatewayDefinitionFields,
  DomainNameDefinition: refByObject(DnD, 'DomainNameDefinitionID'),
};
const gatewayInstanceFields: Fields = {
  Name: fromKind(GwI, 'Name', { required: false, doc: 'default: the gateway definition name' }),
  GatewayDefinition: refByObject(GwD, 'GatewayDefinitionID', { required: true }),
  KubernetesRuntimeInstance: runtimeRef,
  WorkloadInstance: workloadInstanceRef(true),
};
const helmDefinitionFields: Fields = {
  ...named(HwD),
  ...fieldsOf(HwD, ['Repo', 'Chart', 'ChartVersion']),
  ...valuesInlineOrFile('', 'ValuesDocument'),
};
const helmInstanceFields: Fields = {
  ...named(HwI),
  ...valuesInlineOrFile('', 'ValuesDocument'),
  ...fieldsOf(HwI, ['ReleaseNamespace']),
  KubernetesRuntimeInstance: runtimeRef,
  HelmWorkloadDefinition: refByObject(HwD, 'HelmWorkloadDefinitionID', { required: true }),
};
const secretInstanceFields: Fields = {
  ...named(SecI),
  SecretDefinition: refByObject(SecD, 'SecretDefinitionID', { required: true }),
  KubernetesRuntimeInstance: runtimeRef,
  WorkloadInstance: workloadInstanceRef(false),
  HelmWorkloadInstance: refByObject(HwI, 'HelmWorkloadInstanceID'),
};
const terraformDefinitionFields: Fields = { ...named(TfD), ConfigDir: filePath('ConfigDir', { required: true, dir: true }) };
const terraformInstanceFields: Fields = {
  ...named(TfI),
  VarsDocument: filePath('VarsDocument', { doc: 'a .tfvars file, relative to the config file' }),
  TerraformDefinition: refByObject(TfD, 'TerraformDefinitionID', { required: true }),
  AwsAccount: refByObject(AwsAccount, 'AwsAccountID', { required: true }),
};
const observabilityDefinitionFields: Fields = {
  ...named(ObsD),
  ...fieldsOf(ObsD, OBSERVABILITY_CHARTS.map((c) => `${c}HelmChartVersion`)),
  ...observabilityValues(),
};
const observabilityInstanceFields: Fields = {
  ...named(ObsI),
  ObservabilityStackDefinition: refByObject(ObsD, 'ObservabilityStackDefinitionID', { required: true }),
  KubernetesRuntimeInstance: runtimeRef,
  ...fieldsOf(ObsI, ['MetricsEnabled', 'LoggingEnabled']),
  ...observabilityValues(),
};
const controlPlaneDefinitionFields: Fields = { ...named(CpD), ...fieldsOf(CpD, ['AuthEnabled', 'OnboardParent']) };
const controlPlaneInstanceFields: Fields = {
  ...named(CpI),
  ...fieldsOf(CpI, ['Namespace']),
  ControlPlaneDefinition: refByObject(CpD, 'ControlPlaneDefinitionID', { required: true }),
  KubernetesRuntimeInstance: runtimeRef,
  CustomComponentInfo: { shape: customComponentShape, target: { copy: 'CustomComponentInfo' } },
};

// ---------------------------------------------------------------- defined instances

interface DefinedInstanceSpec {
  configKind: string;
  definition: Kind;
  instance: Kind;
  members?: Kind[];
  fields: Fields;
  rules?: Rule[];
  plan(values: Values, ctx: PlanContext, root: string): PlannedObject[];
}

function definedInstance(spec: DefinedInstanceSpec): ConfigFormat {
  return {
    configKind: spec.configKind,
    fields: spec.fields,
    rules: spec.rules ?? [],
    definition: spec.definition,
    instance: spec.instance,
    members: spec.members ?? [spec.definition, spec.instance],
    plan: spec.plan,
  };
}

/** Plans a definition and its instance: same name, the instance refers to the definition. */
function pair(
  values: Values,
  ctx: PlanContext,
  root: string,
  def: { kind: Kind; fields: Fields; keys: string[]; fixed?: Record<string, unknown> },
  inst: { kind: Kind; fields: Fields; keys: string[]; refField: string; fixed?: Record<string, unknown>; refs?: PlannedRef[] },
): PlannedObject[] {
  const name = values['Name'] as string;
  return [
    planObject(def.kind, def.fields, def.keys, values, ctx, root, def.fixed ? { fixed: def.fixed } : {}),
    planObject(inst.kind, inst.fields, inst.keys, values, ctx, root, {
      ...(inst.fixed ? { fixed: inst.fixed } : {}),
      refs: [refTo(def.kind, inst.refField, name, `${root}.Name`), ...(inst.refs ?? [])],
    }),
  ];
}

const workloadFields: Fields = {
  ...workloadDefinitionFields,
  KubernetesRuntimeInstance: runtimeRef,
  DomainName: plain({ type: 'object', fields: domainNameDefinitionFields }, { doc: 'a domain name for the workload' }),
  Gateway: plain({ type: 'object', fields: { ...gatewayDefinitionFields } }, { doc: 'a gateway that routes traffic to the workload' }),
  AwsRelationalDatabase: plain({ type: 'object', fields: rdsDefinitionFields }, { doc: 'an RDS database for the workload' }),
  AwsObjectStorageBucket: plain({ type: 'object', fields: s3DefinitionFields }, { doc: 'an S3 bucket for the workload' }),
  Secret: plain({ type: 'object', fields: secretDefinitionFields }, { doc: 'secret data delivered to the workload' }),
};

const workloadRules: Rule[] = [
  (v) => {
    const gw = v['Gateway'] as Values | undefined;
    if (!gw) return undefined;
    for (const rule of gatewayPortRules) {
      const p = rule(gw);
      if (p) return { field: p.field ? `Gateway.${p.field}` : 'Gateway', message: p.message };
    }
    return undefined;
  },
  (v) => {
    const db = v['AwsRelationalDatabase'] as Values | undefined;
    const p = db ? rdsVersionRule(db) : undefined;
    return p ? { field: `AwsRelationalDatabase.${p.field}`, message: p.message } : undefined;
  },
];

function planWorkload(values: Values, ctx: PlanContext, root: string): PlannedObject[] {
  const name = values['Name'] as string;
  const objects = pair(
    values,
    ctx,
    root,
    { kind: WD, fields: workloadFields, keys: ['Name', 'YAMLDocument'] },
    { kind: WI, fields: workloadFields, keys: ['Name', 'KubernetesRuntimeInstance'], refField: 'WorkloadDefinitionID' },
  );
  const toWorkload = refTo(WI, 'WorkloadInstanceID', name, `${root}.Name`);
  const runtime = runtimeRefOf(values, root);
  const nested = (key: string, kind: Kind, fields: Fields, options: Parameters<typeof planObject>[6] = {}) => {
    const v = values[key] as Values;
    return planObject(kind, fields, Object.keys(fields), v, ctx, `${root}.${key}`, options);
  };
  const dn = values['DomainName'] as Values | undefined;
  if (dn) {
    const dnName = dn['Name'] as string;
    objects.push(
      nested('DomainName', DnD, domainNameDefinitionFields),
      planObject(DnI, {}, [], dn, ctx, `${root}.DomainName`, {
        fixed: { Name: dnName },
        refs: [refTo(DnD, 'DomainNameDefinitionID', dnName, `${root}.DomainName.Name`), runtime, toWorkload],
      }),
    );
  }
  const gw = values['Gateway'] as Values | undefined;
  if (gw) {
    const gwName = gw['Name'] as string;
    objects.push(
      nested('Gateway', GwD, gatewayDefinitionFields, dn ? { refs: [refTo(DnD, 'DomainNameDefinitionID', dn['Name'] as string, `${root}.DomainName.Name`)] } : {}),
      planObject(GwI, {}, [], gw, ctx, `${root}.Gateway`, {
        fixed: { Name: gwName },
        refs: [refTo(GwD, 'GatewayDefinitionID', gwName, `${root}.Gateway.Name`), runtime, toWorkload],
      }),
    );
  }
  const db = values['AwsRelationalDatabase'] as Values | undefined;
  if (db) {
    const dbName = db['Name'] as string;
    objects.push(
      nested('AwsRelationalDatabase', RdsD, rdsDefinitionFields),
      planObject(RdsI, {}, [], db, ctx, `${root}.AwsRelationalDatabase`, {
        fixed: { Name: dbName },
        refs: [refTo(RdsD, 'AwsRelationalDatabaseDefinitionID', dbName, `${root}.AwsRelationalDatabase.Name`), toWorkload],
      }),
    );
  }
  const bucket = values['AwsObjectStorageBucket'] as Values | undefined;
  if (bucket) {
    const bName = bucket['Name'] as string;
    objects.push(
      nested('AwsObjectStorageBucket', S3D, s3DefinitionFields),
      planObject(S3I, {}, [], bucket, ctx, `${root}.AwsObjectStorageBucket`, {
        fixed: { Name: bName },
        refs: [refTo(S3D, 'AwsObjectStorageBucketDefinitionID', bName, `${root}.AwsObjectStorageBucket.Name`), toWorkload],
      }),
    );
  }
  objects.push(...planAttachedSecret(values, ctx, root, runtime, toWorkload));
  return objects;
}

/** A config's `Secret`: a SecretDefinition and a SecretInstance of the same name, attached to the workload. */
function planAttachedSecret(values: Values, ctx: PlanContext, root: string, runtime: PlannedRef, toWorkload: PlannedRef): PlannedObject[] {
  const sec = values['Secret'] as Values | undefined;
  if (!sec) return [];
  const sName = sec['Name'] as string;
  return [
    planObject(SecD, secretDefinitionFields, Object.keys(secretDefinitionFields), sec, ctx, `${root}.Secret`),
    planObject(SecI, {}, [], sec, ctx, `${root}.Secret`, {
      fixed: { Name: sName },
      refs: [refTo(SecD, 'SecretDefinitionID', sName, `${root}.Secret.Name`), runtime, toWorkload],
    }),
  ];
}

const helmWorkloadFields: Fields = {
  ...named(HwD),
  ...fieldsOf(HwD, ['Repo', 'Chart', 'ChartVersion']),
  ...valuesInlineOrFile('Definition', 'ValuesDocument'),
  ...valuesInlineOrFile('Instance', 'ValuesDocument'),
  ...fieldsOf(HwI, ['ReleaseNamespace']),
  KubernetesRuntimeInstance: runtimeRef,
  Secret: plain({ type: 'object', fields: secretDefinitionFields }, { doc: 'secret data delivered into the release namespace (upstream #298)' }),
};

const kubernetesRuntimeFields: Fields = {
  ...kubernetesRuntimeDefinitionFields,
  ...fieldsOf(KRI, ['Location', 'DefaultRuntime', 'ThreeportAgentImage']),
  ...kubeconfigFields,
};

const eksFields: Fields = {
  ...eksDefinitionFields,
  Region: fromKind(EksI, 'Region', { required: true }),
  DefaultRuntime: fromKind(KRI, 'DefaultRuntime'),
};

const rdsFields: Fields = { ...rdsDefinitionFields, WorkloadInstance: workloadInstanceRef(true) };
const s3Fields: Fields = { ...s3DefinitionFields, WorkloadInstance: workloadInstanceRef(true) };
const domainNameFields: Fields = { ...domainNameDefinitionFields, KubernetesRuntimeInstance: runtimeRef, WorkloadInstance: workloadInstanceRef(true) };
const gatewayFields: Fields = {
  ...gatewayDefinitionWithDomain,
  KubernetesRuntimeInstance: runtimeRef,
  WorkloadInstance: workloadInstanceRef(true),
};
const secretFields: Fields = {
  ...secretDefinitionFields,
  KubernetesRuntimeInstance: runtimeRef,
  WorkloadInstance: workloadInstanceRef(false),
  HelmWorkloadInstance: refByObject(HwI, 'HelmWorkloadInstanceID'),
};
const terraformFields: Fields = {
  ...terraformDefinitionFields,
  VarsDocument: terraformInstanceFields['VarsDocument']!,
  AwsAccount: terraformInstanceFields['AwsAccount']!,
};
const observabilityFields: Fields = {
  ...observabilityDefinitionFields,
  KubernetesRuntimeInstance: runtimeRef,
  ...fieldsOf(ObsI, ['MetricsEnabled', 'LoggingEnabled']),
};
const controlPlaneFields: Fields = {
  ...controlPlaneDefinitionFields,
  ...fieldsOf(CpI, ['Namespace']),
  KubernetesRuntimeInstance: runtimeRef,
  CustomComponentInfo: controlPlaneInstanceFields['CustomComponentInfo']!,
};

const keysOf = (fields: Fields, except: string[] = []) => Object.keys(fields).filter((k) => !except.includes(k));

// ---------------------------------------------------------------- the registry

export const FORMATS: readonly ConfigFormat[] = [
  // defined instances
  definedInstance({ configKind: 'Workload', definition: WD, instance: WI, fields: workloadFields, rules: workloadRules, plan: planWorkload }),
  definedInstance({
    configKind: 'HelmWorkload',
    definition: HwD,
    instance: HwI,
    fields: helmWorkloadFields,
    rules: [atMostOne('DefinitionValues', 'DefinitionValuesDocument'), atMostOne('InstanceValues', 'InstanceValuesDocument')],
    plan: (v, ctx, root) => [
      ...pair(
        v,
        ctx,
        root,
        { kind: HwD, fields: helmWorkloadFields, keys: ['Name', 'Repo', 'Chart', 'ChartVersion', 'DefinitionValues', 'DefinitionValuesDocument'] },
        { kind: HwI, fields: helmWorkloadFields, keys: ['Name', 'InstanceValues', 'InstanceValuesDocument', 'ReleaseNamespace', 'KubernetesRuntimeInstance'], refField: 'HelmWorkloadDefinitionID' },
      ),
      ...planAttachedSecret(v, ctx, root, runtimeRefOf(v, root), refTo(HwI, 'HelmWorkloadInstanceID', v['Name'] as string, `${root}.Name`)),
    ],
  }),
  definedInstance({
    configKind: 'KubernetesRuntime',
    definition: KRD,
    instance: KRI,
    fields: kubernetesRuntimeFields,
    rules: [
      ...kubeconfigRules,
      (v) =>
        v['InfraProvider'] === 'kubeconfig' && v['Kubeconfig'] === undefined
          ? { field: 'Kubeconfig', message: 'required with InfraProvider kubeconfig: the kubeconfig file of the cluster to register' }
          : v['Kubeconfig'] !== undefined && v['InfraProvider'] !== 'kubeconfig'
            ? { field: 'Kubeconfig', message: `only InfraProvider kubeconfig registers a cluster from a kubeconfig file, not ${JSON.stringify(v['InfraProvider'])}` }
            : undefined,
    ],
    plan: (v, ctx, root) => {
      const [def, inst] = pair(
        v,
        ctx,
        root,
        { kind: KRD, fields: kubernetesRuntimeFields, keys: keysOf(kubernetesRuntimeDefinitionFields) },
        { kind: KRI, fields: kubernetesRuntimeFields, keys: ['Name', 'Location', 'DefaultRuntime', 'ThreeportAgentImage'], refField: 'KubernetesRuntimeDefinitionID' },
      );
      return [def!, withKubeconfig(inst!, v, ctx, root)];
    },
  }),
  definedInstance({
    configKind: 'AwsEksKubernetesRuntime',
    definition: EksD,
    instance: EksI,
    members: [KRD, EksD, KRI, EksI],
    fields: eksFields,
    plan: (v, ctx, root) => [...planEksDefinition(v, ctx, root), ...planEksInstance(v, ctx, root, v['Name'] as string)],
  }),
  definedInstance({
    configKind: 'AwsRelationalDatabase',
    definition: RdsD,
    instance: RdsI,
    fields: rdsFields,
    rules: [rdsVersionRule],
    plan: (v, ctx, root) =>
      pair(v, ctx, root, { kind: RdsD, fields: rdsFields, keys: keysOf(rdsDefinitionFields) }, { kind: RdsI, fields: rdsFields, keys: ['Name', 'WorkloadInstance'], refField: 'AwsRelationalDatabaseDefinitionID' }),
  }),
  definedInstance({
    configKind: 'AwsObjectStorageBucket',
    definition: S3D,
    instance: S3I,
    fields: s3Fields,
    plan: (v, ctx, root) =>
      pair(v, ctx, root, { kind: S3D, fields: s3Fields, keys: keysOf(s3DefinitionFields) }, { kind: S3I, fields: s3Fields, keys: ['Name', 'WorkloadInstance'], refField: 'AwsObjectStorageBucketDefinitionID' }),
  }),
  definedInstance({
    configKind: 'DomainName',
    definition: DnD,
    instance: DnI,
    fields: domainNameFields,
    plan: (v, ctx, root) =>
      pair(
        v,
        ctx,
        root,
        { kind: DnD, fields: domainNameFields, keys: keysOf(domainNameDefinitionFields) },
        { kind: DnI, fields: domainNameFields, keys: ['Name', 'KubernetesRuntimeInstance', 'WorkloadInstance'], refField: 'DomainNameDefinitionID' },
      ),
  }),
  definedInstance({
    configKind: 'Gateway',
    definition: GwD,
    instance: GwI,
    fields: gatewayFields,
    rules: gatewayPortRules,
    plan: (v, ctx, root) =>
      pair(
        v,
        ctx,
        root,
        { kind: GwD, fields: gatewayFields, keys: keysOf(gatewayDefinitionWithDomain) },
        { kind: GwI, fields: gatewayFields, keys: ['Name', 'KubernetesRuntimeInstance', 'WorkloadInstance'], refField: 'GatewayDefinitionID' },
      ),
  }),
  definedInstance({
    configKind: 'Secret',
    definition: SecD,
    instance: SecI,
    fields: secretFields,
    rules: [exactlyOne('WorkloadInstance', 'HelmWorkloadInstance')],
    plan: (v, ctx, root) =>
      pair(
        v,
        ctx,
        root,
        { kind: SecD, fields: secretFields, keys: keysOf(secretDefinitionFields) },
        { kind: SecI, fields: secretFields, keys: ['Name', 'KubernetesRuntimeInstance', 'WorkloadInstance', 'HelmWorkloadInstance'], refField: 'SecretDefinitionID' },
      ),
  }),
  definedInstance({
    configKind: 'Terraform',
    definition: TfD,
    instance: TfI,
    fields: terraformFields,
    plan: (v, ctx, root) =>
      pair(v, ctx, root, { kind: TfD, fields: terraformFields, keys: ['Name', 'ConfigDir'] }, { kind: TfI, fields: terraformFields, keys: ['Name', 'VarsDocument', 'AwsAccount'], refField: 'TerraformDefinitionID' }),
  }),
  definedInstance({
    configKind: 'ObservabilityStack',
    definition: ObsD,
    instance: ObsI,
    fields: observabilityFields,
    rules: observabilityValueRules,
    plan: (v, ctx, root) =>
      pair(
        v,
        ctx,
        root,
        { kind: ObsD, fields: observabilityFields, keys: keysOf(observabilityDefinitionFields) },
        { kind: ObsI, fields: observabilityFields, keys: ['Name', 'KubernetesRuntimeInstance', 'MetricsEnabled', 'LoggingEnabled'], refField: 'ObservabilityStackDefinitionID' },
      ),
  }),
  definedInstance({
    configKind: 'ControlPlane',
    definition: CpD,
    instance: CpI,
    fields: controlPlaneFields,
    plan: (v, ctx, root) =>
      pair(
        v,
        ctx,
        root,
        { kind: CpD, fields: controlPlaneFields, keys: keysOf(controlPlaneDefinitionFields) },
        { kind: CpI, fields: controlPlaneFields, keys: ['Name', 'Namespace', 'KubernetesRuntimeInstance', 'CustomComponentInfo'], refField: 'ControlPlaneDefinitionID' },
      ),
  }),

  // definitions and instances, one API object each (the EKS ones bring their KubernetesRuntime object along)
  objectFormat(WD, workloadDefinitionFields),
  objectFormat(WI, workloadInstanceFields),
  objectFormat(HwD, helmDefinitionFields, [atMostOne('Values', 'ValuesDocument')]),
  objectFormat(HwI, helmInstanceFields, [atMostOne('Values', 'ValuesDocument')]),
  objectFormat(KRD, kubernetesRuntimeDefinitionFields),
  objectFormat(KRI, kubernetesRuntimeInstanceFields, kubeconfigRules, {
    plan: (v, ctx, root) => [
      withKubeconfig(planObject(KRI, kubernetesRuntimeInstanceFields, keysOf(kubernetesRuntimeInstanceFields, Object.keys(kubeconfigFields)), v, ctx, root), v, ctx, root),
    ],
  }),
  { ...objectFormat(EksD, eksDefinitionFields, [], { plan: planEksDefinition }), members: [KRD, EksD] },
  { ...objectFormat(EksI, eksInstanceFields, [], { plan: (v, ctx, root) => planEksInstance(v, ctx, root) }), members: [KRI, EksI] },
  objectFormat(RdsD, rdsDefinitionFields, [rdsVersionRule]),
  objectFormat(RdsI, rdsInstanceFields),
  objectFormat(S3D, s3DefinitionFields),
  objectFormat(S3I, s3InstanceFields),
  objectFormat(DnD, domainNameDefinitionFields),
  objectFormat(DnI, domainNameInstanceFields),
  objectFormat(GwD, gatewayDefinitionWithDomain, gatewayPortRules),
  objectFormat(GwI, gatewayInstanceFields, [], {
    plan: (v, ctx, root) => {
      const name = (v['Name'] as string | undefined) ?? ((v['GatewayDefinition'] as Values)['Name'] as string);
      return [planObject(GwI, gatewayInstanceFields, Object.keys(gatewayInstanceFields), v, ctx, root, { fixed: { Name: name } })];
    },
  }),
  objectFormat(SecD, secretDefinitionFields),
  objectFormat(SecI, secretInstanceFields, [exactlyOne('WorkloadInstance', 'HelmWorkloadInstance')]),
  objectFormat(TfD, terraformDefinitionFields),
  objectFormat(TfI, terraformInstanceFields),
  objectFormat(ObsD, observabilityDefinitionFields, observabilityValueRules),
  objectFormat(ObsI, observabilityInstanceFields, observabilityValueRules),
  objectFormat(CpD, controlPlaneDefinitionFields),
  objectFormat(CpI, controlPlaneInstanceFields),
  objectFormat(AwsAccount, awsAccountFields, awsAccountRules, { plan: planAwsAccount }),
];

export const FORMAT_BY_KIND: ReadonlyMap<string, ConfigFormat> = new Map(FORMATS.map((f) => [f.configKind, f]));

export function isDefinedInstance(format: ConfigFormat): boolean {
  return format.definition !== undefined && format.instance !== undefined;
}

