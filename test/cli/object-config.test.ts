// Unit tests of object config parsing (spec §5.4): strictness, messages that
// name the file, position, field path and what is expected, and planning
// into API objects (files read relative to the config, references recorded).
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ConfigError } from '../../src/cli/errors.js';
import { FORMAT_BY_KIND, FORMATS, readIni } from '../../src/cli/object-config/formats.js';
import { parseConfigFile } from '../../src/cli/object-config/parse.js';
import type { PlannedObject } from '../../src/cli/object-config/planned.js';
import { NOUNS } from '../../src/cli/nouns.js';
import { parseConfigs, planConfigs } from '../../src/cli/object-commands.js';

const dir = mkdtempSync(join(tmpdir(), 'tptctl-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const path = join(dir, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
  return path;
}

/** Parses `text` as file `name` with the format of `kind` and returns the error message (one line). */
function problem(name: string, text: string, kind = 'Workload'): string {
  const path = write(name, text);
  try {
    parseConfigs([path], FORMAT_BY_KIND.get(kind));
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.equal(err.message.includes('\n'), false, 'one line');
    return err.message.slice(path.length);
  }
  assert.fail(`${name} parsed without error`);
}

function plan(name: string, text: string, kind?: string, readFiles = true): PlannedObject[] {
  const path = write(name, text);
  return planConfigs(parseConfigs([path], kind ? FORMAT_BY_KIND.get(kind) : undefined), readFiles);
}

describe('object config parsing', () => {
  it('reports a YAML syntax error with its position', () => {
    const msg = problem('syntax.yaml', 'Workload:\n  Name: wp\n  YAMLDocument: [unclosed\n');
    assert.match(msg, /^:\d+:\d+: YAML syntax error: /);
  });

  it('rejects an unknown key, naming the path and the accepted fields', () => {
    assert.equal(
      problem('unknown.yaml', 'Workload:\n  Name: wp\n  YAMLDocument: m.yaml\n  Replicas: 3\n'),
      ':4:3: Workload.Replicas: unknown field; Workload accepts Name, YAMLDocument, KubernetesRuntimeInstance, DomainName, Gateway, AwsRelationalDatabase, AwsObjectStorageBucket, Secret',
    );
  });

  it('rejects unknown keys in nested objects and list items', () => {
    assert.equal(
      problem('nested.yaml', 'Workload:\n  Name: wp\n  YAMLDocument: m.yaml\n  KubernetesRuntimeInstance:\n    Nmae: rt\n'),
      ':5:5: Workload.KubernetesRuntimeInstance.Nmae: unknown field; Workload.KubernetesRuntimeInstance accepts Name',
    );
    const msg = problem('port.yaml', 'Gateway:\n  Name: gw\n  HttpPorts:\n    - Port: 80\n      Tls: true\n  WorkloadInstance: {Name: w}\n', 'Gateway');
    assert.match(msg, /^:5:7: Gateway\.HttpPorts\[0\]\.Tls: unknown field; Gateway\.HttpPorts\[\] accepts Port, Path, TLSEnabled, HTTPSRedirect$/);
  });

  it('rejects wrong types with the value received and what is expected', () => {
    assert.equal(
      problem('bool.yaml', 'KubernetesRuntime:\n  Name: rt\n  InfraProvider: kind\n  Location: Local\n  DefaultRuntime: "yes"\n', 'KubernetesRuntime'),
      ':5:19: KubernetesRuntime.DefaultRuntime: expected true or false, got string "yes"',
    );
    assert.equal(
      problem('int.yaml', 'Gateway:\n  Name: gw\n  HttpPorts:\n    - Port: "80"\n  WorkloadInstance: {Name: w}\n', 'Gateway'),
      ':4:13: Gateway.HttpPorts[0].Port: expected an integer, got string "80"',
    );
    assert.equal(problem('map.yaml', 'Workload:\n  Name: {a: 1}\n  YAMLDocument: m.yaml\n'), ':2:9: Workload.Name: expected a string, got a mapping');
    assert.equal(
      problem('enum.yaml', 'KubernetesRuntime:\n  Name: rt\n  InfraProvider: docker\n  Location: Local\n', 'KubernetesRuntime'),
      ':3:18: KubernetesRuntime.InfraProvider: invalid value "docker": expected one of kind, eks, kwok, kubeconfig',
    );
  });

  it('takes unquoted numbers for string fields as written, as upstream does', () => {
    const [account] = plan('acct.yaml', 'AwsAccount:\n  Name: a\n  AccountID: 012345678901\n  DefaultRegion: us-east-1\n  RoleArn: arn:aws:iam::012345678901:role/x\n', 'AwsAccount');
    assert.equal(account!.fields['AccountID'], '012345678901');
    const [, db] = plan(
      'rds.yaml',
      'AwsRelationalDatabase:\n  Name: db\n  AwsAccountName: a\n  Engine: mariadb\n  EngineVersion: 10.11\n  DatabaseName: wp\n  DatabasePort: 3306\n  MachineSize: XSmall\n  StorageGb: 20\n  WorkloadSecretName: s\n  WorkloadInstance: {Name: w}\n',
      'AwsRelationalDatabase',
    );
    assert.equal(db!.kind.name, 'AwsRelationalDatabaseInstance');
  });

  it('reports a missing required field', () => {
    assert.equal(problem('missing.yaml', 'Workload:\n  YAMLDocument: m.yaml\n'), ':1:1: Workload.Name: required field is missing: expected a string');
    assert.equal(problem('empty-name.yaml', 'Workload:\n  Name: ""\n  YAMLDocument: m.yaml\n'), ':2:9: Workload.Name: required field is empty: expected a string');
    assert.equal(
      problem('inst.yaml', 'WorkloadInstance:\n  Name: wi\n', 'WorkloadInstance'),
      ':1:1: WorkloadInstance.WorkloadDefinition: required field is missing: expected a mapping with Name',
    );
  });

  it('treats `Field:` with no value as not set', () => {
    assert.equal(problem('null.yaml', 'Workload:\n  Name:\n  YAMLDocument: m.yaml\n'), ':1:1: Workload.Name: required field is missing: expected a string');
  });

  it('checks rules across fields', () => {
    assert.equal(
      problem('both.yaml', 'HelmWorkload:\n  Name: h\n  Repo: r\n  Chart: c\n  InstanceValues: "a: 1"\n  InstanceValuesDocument: v.yaml\n', 'HelmWorkload'),
      ':6:27: HelmWorkload.InstanceValuesDocument: cannot be set together with InstanceValues: give only one of InstanceValues, InstanceValuesDocument',
    );
    assert.equal(
      problem('noport.yaml', 'Gateway:\n  Name: gw\n  WorkloadInstance: {Name: w}\n', 'Gateway'),
      ':1:1: Gateway: one of HttpPorts, TcpPorts is required',
    );
    assert.match(
      problem('keys.yaml', 'AwsAccount:\n  Name: a\n  AccountID: "1"\n  DefaultRegion: us-east-1\n  AccessKeyID: x\n', 'AwsAccount'),
      /AwsAccount\.SecretAccessKey: required with AccessKeyID: give both keys or neither$/,
    );
    assert.match(
      problem('rdsver.yaml', 'AwsRelationalDatabaseDefinition:\n  Name: db\n  AwsAccountName: a\n  Engine: postgres\n  EngineVersion: "9.6"\n  DatabaseName: d\n  DatabasePort: 5432\n  MachineSize: Small\n  StorageGb: 20\n  WorkloadSecretName: s\n', 'AwsRelationalDatabaseDefinition'),
      /EngineVersion: "9\.6" is not a supported postgres version: expected 12, 13, 14, 15, 16/,
    );
  });

  it('needs a kubeconfig for InfraProvider kubeconfig, and only then', () => {
    assert.equal(
      problem('kc.yaml', 'KubernetesRuntime:\n  Name: rt\n  InfraProvider: kubeconfig\n  Location: Local\n', 'KubernetesRuntime'),
      ':1:1: KubernetesRuntime.Kubeconfig: required with InfraProvider kubeconfig: the kubeconfig file of the cluster to register',
    );
    assert.equal(
      problem('kc2.yaml', 'KubernetesRuntime:\n  Name: rt\n  InfraProvider: kind\n  Location: Local\n  Kubeconfig: x\n', 'KubernetesRuntime'),
      ':5:15: KubernetesRuntime.Kubeconfig: only InfraProvider kubeconfig registers a cluster from a kubeconfig file, not "kind"',
    );
  });

  it('rejects a config of another kind than the command takes, and unknown kinds', () => {
    assert.match(problem('wd.yaml', 'WorkloadDefinition:\n  Name: x\n  YAMLDocument: m.yaml\n'), /^:1:1: WorkloadDefinition: this is a WorkloadDefinition config, but this command takes a Workload config \(use "tptctl create workload-definition" for it\)$/);
    assert.match(problem('kind.yaml', 'Wrokload:\n  Name: x\n'), /^:1:1: Wrokload: unknown object kind "Wrokload": expected a Workload config$/);
  });

  it('rejects files that hold no config document', () => {
    assert.equal(problem('empty.yaml', ''), ': the file has no YAML document: expected a Workload config');
    assert.equal(problem('list.yaml', '- Workload: {}\n'), ':1:1: expected a mapping with one top-level key naming the object kind (a Workload config), got a list');
    assert.match(problem('two.yaml', 'Workload:\n  Name: a\nKubernetesRuntime:\n  Name: b\n'), /^:3:1: KubernetesRuntime: a config document has exactly one top-level key/);
  });

  it('reports a config file that does not exist', () => {
    assert.throws(() => parseConfigFile(join(dir, 'nope.yaml'), () => FORMAT_BY_KIND.get('Workload')!, 'a Workload config'), /nope\.yaml: cannot read the config file: no such file$/);
  });

  it('reads several documents separated by ---', () => {
    const objects = plan('multi.yaml', `${'AwsAccount:\n  Name: a\n  AccountID: "1"\n  DefaultRegion: us-east-1\n  RoleArn: r\n'}---\n${'AwsAccount:\n  Name: b\n  AccountID: "2"\n  DefaultRegion: us-east-2\n  RoleArn: r\n'}`);
    assert.deepEqual(
      objects.map((o) => o.name),
      ['a', 'b'],
    );
  });
});

describe('object config planning', () => {
  it('plans a Workload as a definition and an instance, reading the manifest relative to the config file', () => {
    write('app/manifests/web.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n');
    const objects = plan('app/workload.yaml', 'Workload:\n  Name: web\n  YAMLDocument: manifests/web.yaml\n', 'Workload');
    assert.deepEqual(
      objects.map((o) => [o.kind.name, o.name]),
      [
        ['WorkloadDefinition', 'web'],
        ['WorkloadInstance', 'web'],
      ],
    );
    assert.equal(objects[0]!.fields['YAMLDocument'], 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n');
    assert.deepEqual(
      objects[1]!.refs.map((r) => [r.field, r.kind.name, r.name ?? (r.defaultRuntime ? '<default>' : '')]),
      [
        ['KubernetesRuntimeInstanceID', 'KubernetesRuntimeInstance', '<default>'],
        ['WorkloadDefinitionID', 'WorkloadDefinition', 'web'],
      ],
    );
  });

  it('reports a referenced file that does not exist, with the path it looked for', () => {
    const path = write('gone.yaml', 'Workload:\n  Name: web\n  YAMLDocument: missing-manifest.yaml\n');
    assert.throws(
      () => planConfigs(parseConfigs([path], FORMAT_BY_KIND.get('Workload')), true),
      (err: Error) =>
        err instanceof ConfigError &&
        err.message === `${path}:3:17: Workload.YAMLDocument: file "missing-manifest.yaml" does not exist (looked for ${join(dir, 'missing-manifest.yaml')}; paths are relative to the config file)`,
    );
    // delete -c needs only the names
    assert.equal(planConfigs(parseConfigs([path], FORMAT_BY_KIND.get('Workload')), false).length, 2);
  });

  it('plans the dependencies of a Workload attached to its instance', () => {
    write('deps/m.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\n');
    const objects = plan(
      'deps/workload.yaml',
      [
        'Workload:',
        '  Name: wp',
        '  YAMLDocument: m.yaml',
        '  KubernetesRuntimeInstance: {Name: rt}',
        '  DomainName: {Name: example, Domain: example.com, Zone: Public, AdminEmail: a@example.com}',
        '  Gateway:',
        '    Name: web',
        '    HttpPorts: [{Port: 80, HTTPSRedirect: true}, {Port: 443, TLSEnabled: true}]',
        '    ServiceName: wp',
        '    SubDomain: blog',
        '',
      ].join('\n'),
      'Workload',
    );
    assert.deepEqual(
      objects.map((o) => `${o.kind.name}/${o.name}`),
      ['WorkloadDefinition/wp', 'WorkloadInstance/wp', 'DomainNameDefinition/example', 'DomainNameInstance/example', 'GatewayDefinition/web', 'GatewayInstance/web'],
    );
    const gw = objects[4]!;
    assert.deepEqual(gw.fields['HttpPorts'], [{ Port: 80, HTTPSRedirect: true }, { Port: 443, TLSEnabled: true }]);
    assert.deepEqual(gw.refs.map((r) => `${r.field}=${r.name}`), ['DomainNameDefinitionID=example']);
    const gwi = objects[5]!;
    assert.deepEqual(gwi.refs.map((r) => `${r.field}=${r.name}`), ['GatewayDefinitionID=web', 'KubernetesRuntimeInstanceID=rt', 'WorkloadInstanceID=wp']);
  });

  it('plans the Secret of a Workload and of a HelmWorkload (upstream #298) attached to its instance', () => {
    write('sec/m.yaml', 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\n');
    const secret = ['  Secret:', '    Name: creds', '    AwsAccountName: default-account', '    Data: {password: s3cret, user: app}', ''];
    const wl = plan('sec/workload.yaml', ['Workload:', '  Name: wp', '  YAMLDocument: m.yaml', '  KubernetesRuntimeInstance: {Name: rt}', ...secret].join('\n'), 'Workload');
    assert.deepEqual(wl.map((o) => `${o.kind.name}/${o.name}`), ['WorkloadDefinition/wp', 'WorkloadInstance/wp', 'SecretDefinition/creds', 'SecretInstance/creds']);
    assert.deepEqual(wl[2]!.fields['Data'], { password: 's3cret', user: 'app' });
    assert.deepEqual(wl[3]!.refs.map((r) => `${r.field}=${r.name ?? 'default'}`), ['SecretDefinitionID=creds', 'KubernetesRuntimeInstanceID=rt', 'WorkloadInstanceID=wp']);
    const hw = plan('sec/helm.yaml', ['HelmWorkload:', '  Name: shop', '  Repo: https://charts.example.com', '  Chart: shop', ...secret].join('\n'), 'HelmWorkload');
    assert.deepEqual(hw.map((o) => `${o.kind.name}/${o.name}`), ['HelmWorkloadDefinition/shop', 'HelmWorkloadInstance/shop', 'SecretDefinition/creds', 'SecretInstance/creds']);
    assert.deepEqual(hw[3]!.refs.map((r) => `${r.field}=${r.name ?? 'default'}`), ['SecretDefinitionID=creds', 'KubernetesRuntimeInstanceID=default', 'HelmWorkloadInstanceID=shop']);
  });

  it('plans an EKS runtime with the KubernetesRuntime objects behind it', () => {
    const objects = plan(
      'eks.yaml',
      'AwsEksKubernetesRuntime:\n  Name: eks\n  AwsAccountName: acct\n  ZoneCount: 2\n  DefaultNodeGroupInstanceType: t3.medium\n  DefaultNodeGroupInitialSize: 2\n  DefaultNodeGroupMinimumSize: 2\n  DefaultNodeGroupMaximumSize: 4\n  Region: us-east-2\n',
      'AwsEksKubernetesRuntime',
    );
    assert.deepEqual(
      objects.map((o) => o.kind.name),
      ['KubernetesRuntimeDefinition', 'AwsEksKubernetesRuntimeDefinition', 'KubernetesRuntimeInstance', 'AwsEksKubernetesRuntimeInstance'],
    );
    assert.equal(objects[0]!.fields['InfraProvider'], 'eks');
    assert.equal(objects[2]!.fields['Location'], 'NorthAmerica:Chicago');
  });

  it('reads AWS credentials from the profile of local AWS config files', () => {
    write('aws/config', '[default]\nregion = us-east-1\n[profile dev]\nregion = eu-west-1\n');
    write('aws/credentials', '[dev]\naws_access_key_id = AKIADEV\naws_secret_access_key = devsecret\n');
    const [acct] = plan('aws/account.yaml', 'AwsAccount:\n  Name: dev\n  AccountID: "123456789012"\n  LocalConfig: config\n  LocalCredentials: credentials\n  LocalProfile: dev\n', 'AwsAccount');
    assert.equal(acct!.fields['DefaultRegion'], 'eu-west-1');
    assert.equal(acct!.fields['AccessKeyID'], 'AKIADEV');
    assert.equal(acct!.fields['SecretAccessKey'], 'devsecret');
    assert.equal('LocalConfig' in acct!.fields, false);
  });

  it('concatenates the .tf files of a Terraform ConfigDir', () => {
    write('tf/config/b.tf', 'output "b" {}\n');
    write('tf/config/a.tf', 'variable "a" {}\n');
    write('tf/config/notes.txt', 'ignored');
    const [def] = plan('tf/terraform.yaml', 'TerraformDefinition:\n  Name: tf\n  ConfigDir: config\n', 'TerraformDefinition');
    assert.equal(def!.fields['ConfigDir'], 'variable "a" {}\n\noutput "b" {}\n');
  });

  it('parses INI files as AWS writes them', () => {
    const ini = readIni('# c\n[default]\nregion=us-east-1\n; x\n[profile a b]\n key = v = w \n');
    assert.equal(ini.get('default')?.get('region'), 'us-east-1');
    assert.equal(ini.get('profile a b')?.get('key'), 'v = w');
  });
});

describe('config formats and the kind declarations', () => {
  it('has a noun for every format, and a format for every reconciled definition and instance kind', () => {
    assert.equal(new Set(NOUNS.map((n) => n.name)).size, NOUNS.length);
    for (const name of ['workload', 'helm-workload', 'kubernetes-runtime', 'aws-eks-kubernetes-runtime', 'aws-relational-database', 'aws-object-storage-bucket', 'domain-name', 'gateway', 'secret', 'terraform', 'observability-stack', 'control-plane', 'aws-account']) {
      assert.ok(NOUNS.some((n) => n.name === name), name);
    }
    for (const n of NOUNS.filter((x) => x.definedInstance)) {
      assert.ok(NOUNS.some((x) => x.name === `${n.name}-definition`), `${n.name}-definition`);
      assert.ok(NOUNS.some((x) => x.name === `${n.name}-instance`), `${n.name}-instance`);
    }
  });

  it('mirrors the type and enum of the kind field a config field copies into', () => {
    const scalar: Record<string, string[]> = { string: ['string', 'time'], integer: ['integer'], boolean: ['boolean'], stringMap: ['stringMap'] };
    let checked = 0;
    for (const format of FORMATS) {
      const kind = format.kind ?? format.definition!;
      for (const [name, field] of Object.entries(format.fields)) {
        const target = field.target && 'copy' in field.target ? field.target.copy : undefined;
        const spec = target === name ? kind.allFields[name] : undefined;
        if (!spec || !(field.shape.type in scalar)) continue;
        assert.ok(scalar[field.shape.type]!.includes(spec.type), `${format.configKind}.${name}: ${field.shape.type} vs ${spec.type}`);
        assert.deepEqual(field.shape.type === 'string' ? field.shape.enum : undefined, spec.enum, `${format.configKind}.${name} enum`);
        checked++;
      }
    }
    assert.ok(checked > 50, `checked ${checked} fields`);
  });
});
