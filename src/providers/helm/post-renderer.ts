#!/usr/bin/env node
// The executable helm runs as `--post-renderer`: it reads the rendered manifests on stdin and
// writes them, labelled and with the additional resources appended, to stdout.
//
//   node dist/src/providers/helm/post-renderer.js <config.json>
//
// <config.json> is a PostRenderConfig (see post-render.ts) that the helm provider writes into
// its private workspace for one helm command. A failure is reported on stderr, which helm
// includes in its own error, and exits 1.
import { readFileSync } from 'node:fs';
import { postRender, type PostRenderConfig } from './post-render.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function main(): Promise<void> {
  const configPath = process.argv[2];
  if (!configPath) throw new Error('usage: post-renderer <config.json>');
  const config = JSON.parse(readFileSync(configPath, 'utf8')) as PostRenderConfig;
  const rendered = postRender(await readStdin(), config);
  await new Promise<void>((resolve, reject) => process.stdout.write(rendered, (err) => (err ? reject(err) : resolve())));
}

main().catch((err: unknown) => {
  process.stderr.write(`threeport post-renderer: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
