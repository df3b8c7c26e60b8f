// Starts an in-process `threeport server` (API role) on a loopback port,
// against the embedded database or a throwaway PostgreSQL 15, for API tests.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/logger.js';
import { startServer, type RunningServer } from '../../src/server.js';
import { FieldCipher } from '../../src/crypto/field-encryption.js';
import { startTestPostgres, type TestPostgres } from './postgres.js';

export type Backend = 'embedded' | 'postgres';
export const BACKENDS: readonly Backend[] = ['embedded', 'postgres'];

export interface TestApi {
  backend: Backend;
  url: string;
  server: RunningServer;
  dataDir: string;
  postgres?: TestPostgres;
  stop(): Promise<void>;
}

export async function startTestApi(backend: Backend, options: { auth?: boolean; bodyLimitBytes?: number; helmChartDir?: string } = {}): Promise<TestApi> {
  const dataDir = mkdtempSync(join(tmpdir(), `threeport-api-${backend}-`));
  const postgres = backend === 'postgres' ? await startTestPostgres() : undefined;
  const server = await startServer({
    port: 0,
    host: '127.0.0.1',
    role: 'api',
    dataDir,
    auth: options.auth ?? false,
    ...(postgres ? { databaseUrl: postgres.url, encryptionKey: FieldCipher.generateKey() } : {}),
    ...(options.bodyLimitBytes ? { bodyLimitBytes: options.bodyLimitBytes } : {}),
    ...(options.helmChartDir ? { helmChartDir: options.helmChartDir } : {}),
    logger: createLogger({ level: process.env['THREEPORT_TEST_LOG_LEVEL'] ?? 'silent' }),
  });
  return {
    backend,
    url: server.url!,
    server,
    dataDir,
    ...(postgres ? { postgres } : {}),
    async stop() {
      await server.close();
      await postgres?.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface ApiResponse {
  status: number;
  body: {
    Meta: { Page: number; Size: number; TotalCount: number };
    Type: string;
    Data: Array<Record<string, unknown>> | null;
    Status: { code: number; message: string; error: string };
  };
  text: string;
}

/** A plain-HTTP request to the API; the body is sent as given (string) or JSON-encoded. */
export async function call(api: TestApi, method: string, path: string, body?: unknown): Promise<ApiResponse> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers = { 'content-type': 'application/json' };
  }
  const res = await fetch(`${api.url}${path}`, init);
  const text = await res.text();
  let parsed: ApiResponse['body'];
  try {
    parsed = JSON.parse(text) as ApiResponse['body'];
  } catch {
    parsed = { Meta: { Page: 0, Size: 0, TotalCount: 0 }, Type: '', Data: null, Status: { code: res.status, message: '', error: text } };
  }
  return { status: res.status, body: parsed, text };
}
