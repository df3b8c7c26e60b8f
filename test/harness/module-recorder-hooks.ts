// Loader hooks registered by module-recorder.ts: record each loaded file URL.
import { appendFileSync } from 'node:fs';

let out = '';

export function initialize(data: { out: string }): void {
  out = data.out;
}

export async function load(
  url: string,
  context: unknown,
  next: (url: string, context: unknown) => Promise<unknown>,
): Promise<unknown> {
  if (url.startsWith('file:')) appendFileSync(out, `${url}\n`);
  return next(url, context);
}
