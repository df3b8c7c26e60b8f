// A readable reference of a config format, printed by `tptctl explain` and
// used to write docs/tptctl.md: every field, its type, whether it is
// required, and where its value goes.
import type { ConfigFormat } from './formats.js';
import { article, type ConfigField, type Fields, type Shape } from './schema.js';

function shapeText(shape: Shape): string {
  switch (shape.type) {
    case 'string':
      return shape.enum ? `one of ${shape.enum.join(', ')}` : 'string';
    case 'integer':
      return 'integer';
    case 'boolean':
      return 'true or false';
    case 'stringMap':
      return 'mapping of names to strings';
    case 'object':
      return 'mapping';
    case 'list':
      return shape.item.type === 'object' ? 'list of mappings' : `list of ${shapeText(shape.item)}`;
  }
}

function typeText(field: ConfigField): string {
  const t = field.target;
  if (t && 'ref' in t) return t.byName === 'string' ? `name of ${article(t.ref.name)}` : `{Name: <${t.ref.name}>}`;
  if (t && 'file' in t) return t.dir ? 'directory path' : 'file path';
  return shapeText(field.shape);
}

function lines(fields: Fields, indent: string): string[] {
  const out: string[] = [];
  for (const [name, field] of Object.entries(fields)) {
    const doc = field.doc ? `: ${field.doc}` : '';
    out.push(`${indent}${name} (${typeText(field)}${field.required ? ', required' : ''})${doc}`);
    const nested = field.shape.type === 'object' ? field.shape : field.shape.type === 'list' && field.shape.item.type === 'object' ? field.shape.item : undefined;
    const isRef = field.target !== undefined && 'ref' in field.target;
    if (nested && !isRef) out.push(...lines(nested.fields, `${indent}  `));
  }
  return out;
}

export function explainFormat(format: ConfigFormat, noun: string): string {
  const what =
    format.definition && format.instance
      ? `${article(format.definition.name)} and ${article(format.instance.name)} of the same name`
      : format.members.length > 1
        ? `${article(format.kind!.name)}, with the ${format.members.filter((k) => k !== format.kind).map((k) => k.name).join(', ')} behind it`
        : article(format.kind!.name);
  return [`${format.configKind}: ${what} (tptctl create ${noun} -c <file>)`, '', ...lines(format.fields, '  '), ''].join('\n');
}
