// `tptctl create | get | describe | delete <noun>` and `tptctl apply`.
import { Command, Option } from 'commander';
import type { Kind } from '../kinds/declare.js';
import { KIND_BY_NAME, events, workload } from '../kinds/index.js';
import type { ThreeportClient } from '../client/api-client.js';
import type { AnyObject } from '../client/types.js';
import { CliError } from './errors.js';
import { deleteObjects, execute, type DeleteTarget } from './object-config/execute.js';
import { FORMAT_BY_KIND, type ConfigFormat } from './object-config/formats.js';
import { parseConfigFile, type ParsedConfig } from './object-config/parse.js';
import type { PlannedObject } from './object-config/planned.js';
import { NOUNS, nounNamed, type Noun } from './nouns.js';
import { explainFormat } from './object-config/reference.js';
import { article } from './object-config/schema.js';
import { age, formatTable } from './output.js';
import { formatControlPlaneTree } from './control-plane-tree.js';
import { cell, columnsFor, describeLines, header, instanceStatus, PAIR_COLUMNS, redact, serialize } from './render.js';
import type { Session } from './session.js';
import type { ControlPlaneConfig } from './threeport-config.js';

interface ObjectOptions {
  controlPlaneName?: string;
  version: string;
}

function checkVersion(version: string): void {
  if (version !== 'v0') throw new CliError(`API version ${JSON.stringify(version)} is not served: Threeport objects have version v0`);
}

function connect(session: Session, opts: ObjectOptions): { cp: ControlPlaneConfig; api: ThreeportClient } {
  checkVersion(opts.version);
  const cp = session.controlPlane(opts.controlPlaneName);
  return { cp, api: session.client(cp) };
}

function addObjectOptions(cmd: Command): Command {
  return cmd
    .option('-i, --control-plane-name <name>', 'the control plane to talk to (default: the current one)')
    .option('-v, --version <version>', 'object API version', 'v0');
}

/** Parses config files; `expect` limits the accepted config kinds. */
export function parseConfigs(files: string[], expect?: ConfigFormat): ParsedConfig<ConfigFormat>[] {
  const expected = expect ? `${article(expect.configKind)} config` : `one of ${[...FORMAT_BY_KIND.keys()].join(', ')}`;
  return files.flatMap((file) =>
    parseConfigFile<ConfigFormat>(
      file,
      (configKind) => {
        const format = FORMAT_BY_KIND.get(configKind);
        if (!format) return `unknown object kind ${JSON.stringify(configKind)}: expected ${expected}`;
        if (expect && format !== expect) {
          return `this is ${article(configKind)} config, but this command takes ${expected} (use "tptctl create ${NOUNS.find((n) => n.format === format)?.name}" for it)`;
        }
        return format;
      },
      expected,
    ),
  );
}

export function planConfigs(parsed: ParsedConfig<ConfigFormat>[], readFiles: boolean): PlannedObject[] {
  return parsed.flatMap((p) => p.format.plan(p.values, { source: p.source, readFiles }, p.root));
}

function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text.trim());
  if (!m) throw new CliError(`invalid duration ${JSON.stringify(text)}: use e.g. 500ms, 30s or 2m`);
  const n = Number(m[1]);
  return Math.round(m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1000);
}

/** Names of referenced objects, fetched once per kind. */
class NameCache {
  readonly #byKind = new Map<string, Map<number, string>>();
  constructor(private readonly api: ThreeportClient) {}

  async load(kindName: string): Promise<Map<number, string>> {
    let m = this.#byKind.get(kindName);
    if (!m) {
      m = new Map();
      const kind = KIND_BY_NAME.get(kindName);
      if (kind?.allFields['Name']) {
        for (const o of (await this.api.listAll(kind)) as AnyObject[]) m.set(o.ID, String(o['Name']));
      }
      this.#byKind.set(kindName, m);
    }
    return m;
  }

  get(kindName: string, id: number): string | undefined {
    return this.#byKind.get(kindName)?.get(id);
  }

  async preload(kind: Kind, objects: AnyObject[]): Promise<void> {
    for (const [field, spec] of Object.entries(kind.allFields)) {
      if (spec.type === 'id' && spec.ref && objects.some((o) => typeof o[field] === 'number')) await this.load(spec.ref);
    }
  }
}

function definitionField(instance: Kind, definition: Kind): string {
  const entry = Object.entries(instance.allFields).find(([, s]) => s.type === 'id' && s.ref === definition.name);
  if (!entry) throw new Error(`${instance.name} has no reference to ${definition.name}`);
  return entry[0];
}

// ---------------------------------------------------------------- create / apply

async function runCreateOrApply(session: Session, files: string[], mode: 'create' | 'apply', noun: Noun | undefined, opts: ObjectOptions): Promise<void> {
  checkVersion(opts.version);
  const parsed = parseConfigs(files, noun?.format);
  const objects = planConfigs(parsed, true);
  const { cp, api } = connect(session, opts);
  await execute(objects, mode, { api, controlPlane: cp.Name, out: session.out, ...(session.cipher(cp) ? { cipher: session.cipher(cp)! } : {}) });
}

// ---------------------------------------------------------------- get

async function runGet(session: Session, noun: Noun, name: string | undefined, opts: ObjectOptions & { output?: 'json' | 'yaml' }): Promise<void> {
  const { api } = connect(session, opts);
  const names = new NameCache(api);
  const now = Date.now();
  if (noun.definedInstance) {
    const def = noun.format.definition!;
    const inst = noun.format.instance!;
    const defField = definitionField(inst, def);
    const [defs, insts] = await Promise.all([api.listAll(def) as Promise<AnyObject[]>, api.listAll(inst) as Promise<AnyObject[]>]);
    const defById = new Map(defs.map((d) => [d.ID, d]));
    const pairs: Array<{ definition?: AnyObject; instance?: AnyObject }> = insts.map((i) => ({ instance: i, definition: defById.get(i[defField] as number) }));
    const used = new Set(insts.map((i) => i[defField]));
    for (const d of defs) if (!used.has(d.ID)) pairs.push({ definition: d });
    const selected = name ? pairs.filter((p) => (p.instance?.['Name'] ?? p.definition?.['Name']) === name) : pairs;
    if (opts.output) {
      session.out.print(
        serialize(
          selected.map((p) => ({
            [def.name]: p.definition ? redact(def, p.definition) : null,
            [inst.name]: p.instance ? redact(inst, p.instance) : null,
          })),
          opts.output,
        ),
      );
      return;
    }
    if (selected.length === 0) return notFound(session, noun, name);
    if (noun.format.configKind === 'ControlPlane') {
      // The tree of control planes (genesis, and the children under their parents); definitions
      // without an instance have no place in it.
      await names.load('KubernetesRuntimeInstance');
      const rows = selected
        .filter((p) => p.instance)
        .map((p) => ({
          instance: p.instance!,
          definition: p.definition,
          runtimeName: names.get('KubernetesRuntimeInstance', p.instance!['KubernetesRuntimeInstanceID'] as number),
        }));
      if (rows.length === 0) return notFound(session, noun, name);
      session.out.print(formatControlPlaneTree(rows, now));
      return;
    }
    const hasRuntime = 'KubernetesRuntimeInstanceID' in inst.allFields;
    if (hasRuntime) await names.load('KubernetesRuntimeInstance');
    const base = header(noun.format.configKind);
    const extra = PAIR_COLUMNS[inst.name] ?? [];
    const headers = ['VERSION', 'NAME', `${base} DEFINITION`, `${base} INSTANCE`, ...(hasRuntime ? ['KUBERNETES RUNTIME INSTANCE'] : []), 'STATUS', ...extra.map((f) => header(f)), 'AGE'];
    const rows = selected.map(({ definition, instance }) => [
      'v0',
      cell(instance?.['Name'] ?? definition?.['Name']),
      cell(definition?.['Name']),
      cell(instance?.['Name']),
      ...(hasRuntime ? [cell(instance ? names.get('KubernetesRuntimeInstance', instance['KubernetesRuntimeInstanceID'] as number) : undefined)] : []),
      instance ? instanceStatus(instance) : '<none>',
      ...extra.map((f) => cell(instance?.[f])),
      age((instance ?? definition)!.CreatedAt, now),
    ]);
    session.out.print(formatTable(headers, rows));
    return;
  }
  const kind = noun.primary;
  const objects = (await api.listAll(kind, name ? { Name: name } : undefined)) as AnyObject[];
  if (opts.output) {
    session.out.print(serialize(objects.map((o) => redact(kind, o)), opts.output));
    return;
  }
  if (objects.length === 0) return notFound(session, noun, name);
  await names.preload(kind, objects);
  const cols = columnsFor(kind);
  const rows = objects.map((o) =>
    cols.map((c) => {
      if (c.header === 'AGE') return age(o.CreatedAt, now);
      if (c.header === 'STATUS') return instanceStatus(o);
      if (c.ref) return cell(names.get(c.ref, o[c.field!] as number) ?? (o[c.field!] === undefined || o[c.field!] === null ? undefined : `ID ${String(o[c.field!])}`));
      return cell(o[c.field!]);
    }),
  );
  session.out.print(formatTable(cols.map((c) => c.header), rows));
}

function notFound(session: Session, noun: Noun, name: string | undefined): void {
  const what = noun.plural.replace(/-/g, ' ');
  session.out.err.write(name ? `No ${what} named ${JSON.stringify(name)} found.\n` : `No ${what} found.\n`);
}

// ---------------------------------------------------------------- describe

interface DescribeOptions extends ObjectOptions {
  name?: string;
  config?: string;
  output: 'plain' | 'json' | 'yaml';
  field?: string;
}

function namesFromConfig(noun: Noun, file: string): string[] {
  const objects = planConfigs(parseConfigs([file], noun.format), false);
  const names = objects.filter((o) => o.kind === noun.primary).map((o) => o.name);
  return [...new Set(names)];
}

async function runDescribe(session: Session, noun: Noun, opts: DescribeOptions): Promise<void> {
  if (!opts.name === !opts.config) throw new CliError('give exactly one of -n <name> or -c <config file>');
  const objectNames = opts.name ? [opts.name] : namesFromConfig(noun, opts.config!);
  const { cp, api } = connect(session, opts);
  const names = new NameCache(api);
  const kinds: Kind[] = noun.definedInstance ? [noun.format.instance!, noun.format.definition!] : [noun.primary];
  const sections: Array<{ kind: Kind; object: AnyObject }> = [];
  for (const name of objectNames) {
    let found = 0;
    for (const kind of kinds) {
      const object = (await api.findByName(kind, name)) as AnyObject | undefined;
      if (object) {
        sections.push({ kind, object });
        found++;
      }
    }
    if (found === 0) throw new CliError(`no ${kinds.map((k) => k.name).join(' or ')} named ${JSON.stringify(name)} exists on control plane ${JSON.stringify(cp.Name)}`);
  }

  if (opts.field) {
    const field = opts.field;
    const hit = sections.find((s) => field in s.kind.allFields || field in s.object);
    if (!hit) {
      const known = [...new Set(sections.flatMap((s) => ['ID', 'CreatedAt', 'UpdatedAt', ...Object.keys(s.kind.allFields)]))];
      throw new CliError(`${kinds.map((k) => k.name).join(' and ')} ${kinds.length > 1 ? 'have' : 'has'} no field ${JSON.stringify(field)}; fields: ${known.join(', ')}`);
    }
    const spec = hit.kind.allFields[field];
    let value = hit.object[field];
    if (spec?.transient) throw new CliError(`${hit.kind.name}.${field} is never stored by the API: it travels only to its controller`);
    if (spec?.encrypted && typeof value === 'string') {
      const cipher = session.cipher(cp);
      if (!cipher) throw new CliError(`${hit.kind.name}.${field} is encrypted and control plane ${JSON.stringify(cp.Name)} has no EncryptionKey in the threeport config`);
      try {
        value = cipher.decrypt(value);
      } catch {
        throw new CliError(`${hit.kind.name}.${field} cannot be decrypted with the EncryptionKey of control plane ${JSON.stringify(cp.Name)}`);
      }
    }
    if (opts.output === 'plain') session.out.print(value === undefined || value === null ? '' : typeof value === 'object' ? JSON.stringify(value, null, 2) : String(value));
    else session.out.print(serialize({ [field]: value ?? null }, opts.output));
    return;
  }

  if (opts.output !== 'plain') {
    const data = sections.map((s) => ({ [s.kind.name]: redact(s.kind, s.object) }));
    session.out.print(serialize(data.length === 1 ? data[0] : data, opts.output));
    return;
  }
  const now = Date.now();
  const texts: string[] = [];
  for (const { kind, object } of sections) {
    await names.preload(kind, [object]);
    let text = describeLines(kind, object, (k, id) => names.get(k, id), now);
    if (kind.base === 'instance') text += await eventsText(api, kind, object, now);
    text += await workloadEventsText(api, kind, object, now);
    texts.push(text);
  }
  session.out.print(texts.join('\n'));
}

/** Events attached to the object (spec §1.8), newest last. */
async function eventsText(api: ThreeportClient, kind: Kind, object: AnyObject, now: number): Promise<string> {
  const refs = (await api.listAll(events.AttachedObjectReference, {
    ObjectType: `v0.${kind.name}`,
    ObjectID: object.ID,
    AttachedObjectType: 'v0.Event',
  })) as AnyObject[];
  if (refs.length === 0) return 'Events:  <none>\n';
  const rows: string[][] = [];
  for (const ref of refs) {
    try {
      const e = (await api.get(events.Event, ref['AttachedObjectID'] as number)) as AnyObject;
      rows.push([cell(e['Type']), cell(e['Reason']), age((e['LastObservedTime'] as string | undefined) ?? e.CreatedAt, now), cell(e['Count']), cell(e['Note'])]);
    } catch {
      // an event deleted since the reference was listed
    }
  }
  return `Events:\n${formatTable(['TYPE', 'REASON', 'AGE', 'COUNT', 'NOTE'], rows)
    .split('\n')
    .map((l) => (l ? `  ${l}` : l))
    .join('\n')}`;
}

/** How many WorkloadEvents `describe` lists (the newest). */
export const DESCRIBE_WORKLOAD_EVENTS = 20;

/** The field of a WorkloadEvent that points at an instance of `kind`, when it has one. */
function workloadEventField(kind: Kind): string | undefined {
  const field = `${kind.name}ID`;
  return workload.WorkloadEvent.allFields[field]?.ref === kind.name ? field : undefined;
}

/**
 * What the cluster said about a workload or helm workload instance (its WorkloadEvents: the
 * Kubernetes events about its objects, and the controller's reports), newest first. A pod that
 * cannot be scheduled says why here (FailedScheduling: unbound PersistentVolumeClaims).
 */
async function workloadEventsText(api: ThreeportClient, kind: Kind, object: AnyObject, now: number): Promise<string> {
  const field = workloadEventField(kind);
  if (!field) return '';
  const all = (await api.listAll(workload.WorkloadEvent, { [field]: object.ID })) as AnyObject[];
  if (all.length === 0) return 'Workload Events:  <none>\n';
  const time = (e: AnyObject) => Date.parse(String(e['Timestamp'] ?? e.CreatedAt));
  const newest = [...all].sort((a, b) => time(b) - time(a) || b.ID - a.ID).slice(0, DESCRIBE_WORKLOAD_EVENTS);
  const rows = newest.map((e) => [cell(e['Type']), cell(e['Reason']), age(String(e['Timestamp'] ?? e.CreatedAt), now), cell(e['Message']).replace(/\s+/g, ' ')]);
  const more = all.length > newest.length ? `  (${all.length - newest.length} older not shown)\n` : '';
  return `Workload Events (newest first):\n${formatTable(['TYPE', 'REASON', 'AGE', 'MESSAGE'], rows)
    .split('\n')
    .map((l) => (l ? `  ${l}` : l))
    .join('\n')}${more}`;
}

// ---------------------------------------------------------------- delete

interface DeleteCommandOptions extends ObjectOptions {
  name?: string;
  config?: string;
  wait: boolean;
  waitTimeout: string;
}

async function runDelete(session: Session, noun: Noun, opts: DeleteCommandOptions): Promise<void> {
  if (!opts.name === !opts.config) throw new CliError('give exactly one of -n <name> or -c <config file>');
  let targets: DeleteTarget[];
  if (opts.config) {
    checkVersion(opts.version);
    targets = planConfigs(parseConfigs([opts.config], noun.format), false).map((o) => ({ kind: o.kind, name: o.name }));
  } else {
    targets = noun.format.members.map((kind) => ({ kind, name: opts.name! }));
  }
  targets.reverse();
  const timeoutMs = parseDuration(opts.waitTimeout);
  const { cp, api } = connect(session, opts);
  await deleteObjects(targets, { api, controlPlane: cp.Name, out: session.out }, { wait: opts.wait, timeoutMs });
}

// ---------------------------------------------------------------- registration

function describeNoun(noun: Noun): string {
  if (noun.definedInstance) return `${article(noun.format.definition!.name)} and ${article(noun.format.instance!.name)} of the same name`;
  return article(noun.primary.name);
}

export function registerObjectCommands(program: Command, session: () => Session): void {
  const create = program.command('create').description('create objects from config files');
  const get = program.command('get').description('list objects as a table (or -o json|yaml)');
  const describe = program.command('describe').description('show one object in detail');
  const del = program.command('delete').description('delete objects by name or by config file');

  for (const noun of NOUNS) {
    addObjectOptions(
      create
        .command(noun.name)
        .description(`create ${describeNoun(noun)} from ${article(noun.format.configKind)} config`)
        .requiredOption('-c, --config <file>', `${noun.format.configKind} config file`),
    ).action(async (opts: ObjectOptions & { config: string }) => runCreateOrApply(session(), [opts.config], 'create', noun, opts));

    addObjectOptions(
      get
        .command(noun.plural)
        .alias(noun.name)
        .description(`list ${noun.definedInstance ? `${noun.format.configKind} definitions and instances` : `${noun.primary.name} objects`}`)
        .argument('[name]', 'show only the object with this name')
        .addOption(new Option('-o, --output <format>', 'output format (default: a table)').choices(['json', 'yaml'])),
    ).action(async (name: string | undefined, opts: ObjectOptions & { output?: 'json' | 'yaml' }) => runGet(session(), noun, name, opts));

    addObjectOptions(
      describe
        .command(noun.name)
        .description(`show ${describeNoun(noun)}`)
        .option('-n, --name <name>', 'object name')
        .option('-c, --config <file>', `${noun.format.configKind} config file naming the object`)
        .addOption(new Option('-o, --output <format>', 'output format').choices(['plain', 'json', 'yaml']).default('plain'))
        .option('-f, --field <Field>', 'print only this field (encrypted fields are decrypted)'),
    ).action(async (opts: DescribeOptions) => runDescribe(session(), noun, opts));

    addObjectOptions(
      del
        .command(noun.name)
        .description(`delete ${describeNoun(noun)}`)
        .option('-n, --name <name>', 'object name')
        .option('-c, --config <file>', `${noun.format.configKind} config file naming the objects`)
        .option('--no-wait', 'do not wait for controllers to finish deleting reconciled objects')
        .option('--wait-timeout <duration>', 'how long to wait for each reconciled object to go', '60s'),
    ).action(async (opts: DeleteCommandOptions) => runDelete(session(), noun, opts));
  }

  program
    .command('explain')
    .description('describe the config format of an object noun: its fields, their types, and which are required')
    .argument('<noun>', `one of ${NOUNS.map((n) => n.name).join(', ')} (or a config kind such as Workload)`)
    .action((name: string) => {
      const noun = nounNamed(name) ?? NOUNS.find((n) => n.format.configKind === name);
      if (!noun) throw new CliError(`unknown noun ${JSON.stringify(name)}: expected one of ${NOUNS.map((n) => n.name).join(', ')}`);
      session().out.print(explainFormat(noun.format, noun.name));
    });

  addObjectOptions(
    program
      .command('apply')
      .description('create or update objects from config files: objects found by name get their changed fields updated, missing ones are created')
      .requiredOption('-c, --config <file>', 'config file (repeat for more); any object kind, several documents separated by ---', (v: string, prev: string[]) => [...prev, v], [] as string[]),
  ).action(async (opts: ObjectOptions & { config: string[] }) => runCreateOrApply(session(), opts.config, 'apply', undefined, opts));
}
