// Strict parsing of object config files (spec §5.4): the top-level key names
// the config kind, every key must be known, every value must have the
// declared type, required fields must be present. The first problem is
// reported as one line naming the file, the line and column, the field path
// and what was expected.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseAllDocuments, type Document, type Node, type Pair } from 'yaml';
import { ConfigError, type Position } from '../errors.js';
import { describeShape, type Fields, type Rule, type Shape, type Values } from './schema.js';

/** What the parser needs to know about a config format. */
export interface ParseableFormat {
  readonly configKind: string;
  readonly fields: Fields;
  readonly rules?: readonly Rule[];
}

/** One parsed file: where it is, and where each field path sits in it (for later errors). */
export class ConfigSource {
  readonly positions = new Map<string, Position>();
  constructor(
    /** The path as the user gave it: error messages use it. */
    readonly file: string,
    readonly absPath: string,
  ) {}

  get dir(): string {
    return dirname(this.absPath);
  }

  /** Position of `path`, or of its closest parent that has one. */
  positionOf(path: string): Position | undefined {
    let p = path;
    for (;;) {
      const pos = this.positions.get(p);
      if (pos) return pos;
      const cut = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['));
      if (cut <= 0) return undefined;
      p = p.slice(0, cut);
    }
  }

  error(path: string, problem: string): ConfigError {
    return new ConfigError(this.file, path, problem, this.positionOf(path));
  }
}

export interface ParsedConfig<F extends ParseableFormat = ParseableFormat> {
  format: F;
  values: Values;
  source: ConfigSource;
  /** The config kind, which is also the root of every field path (`Workload.Name`). */
  root: string;
}

function got(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (typeof value === 'string') return `string ${JSON.stringify(value)}`;
  if (typeof value === 'number') return `number ${value}`;
  if (typeof value === 'boolean') return `boolean ${value}`;
  return typeof value;
}

function nodeKind(node: unknown): string {
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) return got(node.value);
  return 'nothing';
}

class Walker {
  constructor(
    private readonly source: ConfigSource,
    private readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  pos(node: unknown): Position | undefined {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    if (!range) return undefined;
    const { line, col } = this.lines.linePos(range[0]);
    return { line, col };
  }

  fail(path: string, problem: string, node?: unknown): never {
    throw new ConfigError(this.source.file, path, problem, this.pos(node) ?? this.source.positionOf(path));
  }

  deref(node: unknown): unknown {
    return isAlias(node) ? node.resolve(this.doc) : node;
  }

  /** Converts `node` to a value of `shape`, recording positions; throws ConfigError on the first problem. */
  value(raw: unknown, shape: Shape, path: string): unknown {
    const node = this.deref(raw);
    const pos = this.pos(node);
    if (pos) this.source.positions.set(path, pos);
    switch (shape.type) {
      case 'string': {
        if (!isScalar(node)) return this.fail(path, `expected ${describeShape(shape)}, got ${nodeKind(node)}`, node);
        let text: string;
        if (typeof node.value === 'string') text = node.value;
        // An unquoted number (AccountID: 555555555555, EngineVersion: 10.11) keeps its source text, as upstream's YAML decoder does.
        else if (typeof node.value === 'number' && typeof node.source === 'string') text = node.source;
        else return this.fail(path, `expected ${describeShape(shape)}, got ${got(node.value)}`, node);
        if (shape.enum && !shape.enum.includes(text)) {
          return this.fail(path, `invalid value ${JSON.stringify(text)}: expected one of ${shape.enum.join(', ')}`, node);
        }
        return text;
      }
      case 'integer': {
        if (!isScalar(node) || typeof node.value !== 'number' || !Number.isSafeInteger(node.value)) {
          return this.fail(path, `expected an integer, got ${nodeKind(node)}`, node);
        }
        return node.value;
      }
      case 'boolean': {
        if (!isScalar(node) || typeof node.value !== 'boolean') {
          return this.fail(path, `expected true or false, got ${nodeKind(node)}`, node);
        }
        return node.value;
      }
      case 'stringMap': {
        if (!isMap(node)) return this.fail(path, `expected ${describeShape(shape)}, got ${nodeKind(node)}`, node);
        const out: Record<string, string> = {};
        for (const pair of node.items as Pair[]) {
          const key = this.key(pair, path);
          out[key] = this.value(pair.value, { type: 'string' }, `${path}.${key}`) as string;
        }
        return out;
      }
      case 'list': {
        if (!isSeq(node)) return this.fail(path, `expected ${describeShape(shape)}, got ${nodeKind(node)}`, node);
        return node.items.map((item, i) => this.value(item, shape.item, `${path}[${i}]`));
      }
      case 'object': {
        if (!isMap(node)) return this.fail(path, `expected ${describeShape(shape)}, got ${nodeKind(node)}`, node);
        return this.object(node.items as Pair[], shape.fields, undefined, path, node);
      }
    }
  }

  key(pair: Pair, path: string): string {
    const key = this.deref(pair.key);
    if (!isScalar(key) || (typeof key.value !== 'string' && typeof key.value !== 'number')) {
      return this.fail(path, `keys must be plain names, got ${nodeKind(key)}`, key);
    }
    return String(key.value);
  }

  object(pairs: Pair[], fields: Fields, rules: readonly Rule[] | undefined, path: string, node: unknown): Values {
    const out: Values = {};
    for (const pair of pairs) {
      const key = this.key(pair, path);
      const field = fields[key];
      if (!field) {
        return this.fail(`${path}.${key}`, `unknown field; ${path.replace(/\[\d+\]$/, '[]')} accepts ${Object.keys(fields).join(', ')}`, pair.key);
      }
      const valueNode = this.deref(pair.value);
      // `Field:` with nothing after it means "not set", as with upstream's pointer fields.
      if (valueNode === null || valueNode === undefined || (isScalar(valueNode) && valueNode.value === null)) {
        const keyPos = this.pos(pair.key);
        if (keyPos) this.source.positions.set(`${path}.${key}`, keyPos);
        continue;
      }
      out[key] = this.value(pair.value, field.shape, `${path}.${key}`);
    }
    for (const [name, field] of Object.entries(fields)) {
      if (field.required && out[name] === undefined) {
        return this.fail(`${path}.${name}`, `required field is missing: expected ${describeShape(field.shape)}`, node);
      }
      if (field.required && typeof out[name] === 'string' && (out[name] as string).trim() === '') {
        return this.fail(`${path}.${name}`, `required field is empty: expected ${describeShape(field.shape)}`);
      }
    }
    for (const rule of rules ?? []) {
      const problem = rule(out);
      if (problem) return this.fail(problem.field ? `${path}.${problem.field}` : path, problem.message, problem.field ? undefined : node);
    }
    return out;
  }
}

function syntaxMessage(message: string): string {
  const first = message.split('\n')[0] ?? message;
  return first.replace(/ at line \d+, column \d+:?$/, '');
}

/**
 * Parses every YAML document of `file`. `formatOf` returns the format for a
 * top-level key, or a problem explaining why that key is not accepted here.
 */
export function parseConfigText<F extends ParseableFormat>(
  text: string,
  source: ConfigSource,
  formatOf: (configKind: string) => F | string,
  expected: string,
): ParsedConfig<F>[] {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: true });
  if (!Array.isArray(docs) || docs.length === 0) {
    throw new ConfigError(source.file, '', `the file has no YAML document: expected ${expected}`);
  }
  const out: ParsedConfig<F>[] = [];
  for (const doc of docs) {
    const err = doc.errors[0];
    if (err) {
      const lp = err.linePos?.[0];
      throw new ConfigError(source.file, '', `YAML syntax error: ${syntaxMessage(err.message)}`, lp ? { line: lp.line, col: lp.col } : undefined);
    }
    const walker: Walker = new Walker(source, doc as Document, lines);
    const contents = doc.contents as Node | null;
    if (contents === null || (isScalar(contents) && contents.value === null)) {
      if (docs.length > 1) continue; // an empty document between `---` separators
      throw new ConfigError(source.file, '', `the file has no YAML document: expected ${expected}`);
    }
    if (!isMap(contents)) {
      walker.fail('', `expected a mapping with one top-level key naming the object kind (${expected}), got ${nodeKind(contents)}`, contents);
    }
    const pairs = contents.items as Pair[];
    if (pairs.length !== 1) {
      const keys = pairs.map((p) => String((walker.deref(p.key) as { value?: unknown })?.value));
      walker.fail(
        keys[1] ?? '',
        `a config document has exactly one top-level key naming the object kind (${expected}); found ${keys.join(', ') || 'none'} (separate objects with ---)`,
        pairs[1]?.key ?? contents,
      );
    }
    const pair = pairs[0]!;
    const root = walker.key(pair, '');
    const format = formatOf(root);
    if (typeof format === 'string') walker.fail(root, format, pair.key);
    const keyPos = walker.pos(pair.key);
    if (keyPos) source.positions.set(root, keyPos);
    const body = walker.deref(pair.value);
    if (!isMap(body)) {
      walker.fail(root, `expected a mapping with the fields of ${root} (${Object.keys(format.fields).join(', ')}), got ${nodeKind(body)}`, body ?? pair.key);
    }
    const values = walker.object(body.items as Pair[], format.fields, format.rules, root, pair.key);
    out.push({ format, values, source, root });
  }
  return out;
}

export function parseConfigFile<F extends ParseableFormat>(
  file: string,
  formatOf: (configKind: string) => F | string,
  expected: string,
  cwd = process.cwd(),
): ParsedConfig<F>[] {
  const source = new ConfigSource(file, resolve(cwd, file));
  let text: string;
  try {
    text = readFileSync(source.absPath, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, not a file' : (err as Error).message;
    throw new ConfigError(file, '', `cannot read the config file: ${why}`);
  }
  return parseConfigText(text, source, formatOf, expected);
}
