// The v0 response envelope (spec §2.2). Every response, success or error, has
// it. Objects arrive as JSON text from the store and are spliced in unparsed.
import { STATUS_CODES } from 'node:http';

export interface Meta {
  page: number;
  size: number;
  total: number;
}

function status(code: number, error: string): string {
  return `{"code":${code},"message":${JSON.stringify(STATUS_CODES[code] ?? 'Unknown')},"error":${JSON.stringify(error)}}`;
}

export function envelope(type: string, items: readonly string[], meta: Meta, code = 200): string {
  return `{"Meta":{"Page":${meta.page},"Size":${meta.size},"TotalCount":${meta.total}},"Type":${JSON.stringify(type)},"Data":[${items.join(',')}],"Status":${status(code, '')}}`;
}

export function single(type: string, json: string, code = 200): string {
  return envelope(type, [json], { page: 1, size: 1, total: 1 }, code);
}

export function errorEnvelope(type: string, code: number, message: string): string {
  return `{"Meta":{"Page":0,"Size":0,"TotalCount":0},"Type":${JSON.stringify(type)},"Data":null,"Status":${status(code, message)}}`;
}
