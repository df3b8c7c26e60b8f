// What a parsed config turns into: the API objects to create or update, in
// dependency order, with the names they refer to still unresolved.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Kind } from '../../kinds/declare.js';
import type { ThreeportClient } from '../../client/api-client.js';
import type { ConfigSource } from './parse.js';
import type { Fields, Values } from './schema.js';

export interface PlannedRef {
  /** The API field that receives the referred object's ID. */
  field: string;
  kind: Kind;
  /** The name to look up; absent with `defaultRuntime` means "the default KubernetesRuntimeInstance". */
  name?: string;
  defaultRuntime?: boolean;
  /** Config path of the value that names it, for error messages. */
  path: string;
  /**
   * The kind the config names, when this reference goes to its companion of the same name (an
   * AwsEksKubernetesRuntimeDefinition's KubernetesRuntimeDefinition): a missing one is reported
   * as the kind the user wrote.
   */
  named?: Kind;
}

export interface PlannedObject {
  kind: Kind;
  name: string;
  /** Field values, file contents already read. */
  fields: Record<string, unknown>;
  refs: PlannedRef[];
  /** Config path of the object (`Workload`, `Workload.Gateway`). */
  path: string;
  source: ConfigSource;
  /** Checks that need the API (e.g. "only one default AwsAccount"); throw a ConfigError. */
  preflight?: (api: ThreeportClient, existing: Record<string, unknown> | undefined) => Promise<void>;
}

export interface PlanContext {
  source: ConfigSource;
  /** False for `delete -c`: only names matter, referenced files need not exist. */
  readFiles: boolean;
}

function readTarget(ctx: PlanContext, path: string, relPath: string, dir: boolean): string {
  const abs = resolve(ctx.source.dir, relPath);
  let stat;
  try {
    stat = statSync(abs);
  } catch {
    throw ctx.source.error(path, `${dir ? 'directory' : 'file'} ${JSON.stringify(relPath)} does not exist (looked for ${abs}; paths are relative to the config file)`);
  }
  if (dir) {
    if (!stat.isDirectory()) throw ctx.source.error(path, `${JSON.stringify(relPath)} is not a directory (${abs})`);
    const files = readdirSync(abs)
      .filter((f) => f.endsWith('.tf'))
      .sort();
    if (files.length === 0) throw ctx.source.error(path, `directory ${JSON.stringify(relPath)} has no .tf files (${abs})`);
    return files.map((f) => readFileSync(join(abs, f), 'utf8')).join('\n');
  }
  if (!stat.isFile()) throw ctx.source.error(path, `${JSON.stringify(relPath)} is not a file (${abs})`);
  return readFileSync(abs, 'utf8');
}

export interface ObjectPlanOptions {
  /** Config path of each field (default `${path}.${key}`). */
  pathOf?: (key: string) => string;
  /** Fields set by the format itself. */
  fixed?: Record<string, unknown>;
  /** References set by the format itself (e.g. an instance to its definition). */
  refs?: PlannedRef[];
  preflight?: PlannedObject['preflight'];
}

/**
 * Builds one API object from config values, following each field's target:
 * copy the value, read the file it names, or record the reference it makes.
 * `keys` picks which of `fields` apply to this object (a defined-instance
 * config shares its fields among several objects).
 */
export function planObject(
  kind: Kind,
  fields: Fields,
  keys: readonly string[],
  values: Values,
  ctx: PlanContext,
  path: string,
  options: ObjectPlanOptions = {},
): PlannedObject {
  const pathOf = options.pathOf ?? ((key: string) => `${path}.${key}`);
  const out: Record<string, unknown> = {};
  const refs: PlannedRef[] = [];
  for (const key of keys) {
    const field = fields[key];
    if (!field) throw new Error(`config format declaration error: ${path} has no field ${key}`);
    const value = values[key];
    const target = field.target;
    if (!target) continue;
    if ('copy' in target) {
      if (value !== undefined) out[target.copy] = value;
    } else if ('file' in target) {
      if (value !== undefined) out[target.file] = ctx.readFiles ? readTarget(ctx, pathOf(key), value as string, target.dir === true) : '';
    } else {
      const name = value === undefined ? undefined : target.byName === 'string' ? (value as string) : ((value as Values)['Name'] as string);
      if (name !== undefined) refs.push({ field: target.to, kind: target.ref, name, path: target.byName === 'string' ? pathOf(key) : `${pathOf(key)}.Name` });
      else if (target.defaultRuntime) refs.push({ field: target.to, kind: target.ref, defaultRuntime: true, path: pathOf(key) });
    }
  }
  Object.assign(out, options.fixed ?? {});
  const name = (out['Name'] ?? values['Name']) as string;
  if (kind.allFields['Name'] && out['Name'] === undefined) out['Name'] = name;
  return {
    kind,
    name,
    fields: out,
    refs: [...refs, ...(options.refs ?? [])],
    path,
    source: ctx.source,
    ...(options.preflight ? { preflight: options.preflight } : {}),
  };
}
