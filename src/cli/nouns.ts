// The object nouns of `tptctl create | get | describe | delete` (spec §5.2):
// one per config format, so the defined-instance nouns (workload, ...), their
// `-definition` / `-instance` halves and `aws-account`.
import type { Kind } from '../kinds/declare.js';
import { FORMATS, isDefinedInstance, type ConfigFormat } from './object-config/formats.js';
import { kebab } from './render.js';

export interface Noun {
  /** `workload`, `workload-definition`, `aws-account`. */
  name: string;
  /** `workloads`: the form `get` takes (the singular works too). */
  plural: string;
  format: ConfigFormat;
  definedInstance: boolean;
  /** The kind `get` lists and `describe` shows: the instance of a defined instance, else the one kind. */
  primary: Kind;
}

export const NOUNS: readonly Noun[] = FORMATS.map((format) => ({
  name: kebab(format.configKind),
  plural: `${kebab(format.configKind)}s`,
  format,
  definedInstance: isDefinedInstance(format),
  primary: format.instance ?? format.kind!,
}));

export function nounNamed(name: string): Noun | undefined {
  return NOUNS.find((n) => n.name === name || n.plural === name);
}
