// moto's server (a local imitation of the AWS APIs) for integration tests, on a
// free loopback port, and a fault-injecting loopback proxy to put in front of it.
//
// moto keeps all state in memory: `reset()` wipes it between tests. It starts
// in about a second. If it is missing, scripts/install-test-deps.sh installs it; until then
// startMoto fails, saying so, unless THREEPORT_SKIP_AWS=1 skips the suites that need it
// (as THREEPORT_SKIP_KUBE=1 does for the Kubernetes binaries).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { freePort } from '../../src/system.js';

export const MOTO_VERSION = '5.2.1';

export interface MotoServer {
  /** `http://127.0.0.1:<port>`: the endpoint every AWS client of the test uses. */
  url: string;
  port: number;
  /** Wipes every resource in every service (POST /moto-api/reset). */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

/** THREEPORT_SKIP_AWS=1 skips the suites that need moto; otherwise a missing moto fails them with instructions. */
export const SKIP_AWS: string | undefined =
  process.env['THREEPORT_SKIP_AWS'] === '1' ? 'THREEPORT_SKIP_AWS=1: tests that need moto skipped' : undefined;

export class MotoMissingError extends Error {
  constructor(detail: string) {
    super(
      `moto's server is not installed (${detail}); run scripts/install-test-deps.sh (pip install moto[server]==${MOTO_VERSION}), ` +
        'or set THREEPORT_SKIP_AWS=1 to skip the tests that need it',
    );
    this.name = 'MotoMissingError';
  }
}

/** Why `python3 -m moto.server` cannot run here, or undefined when it can. */
function motoMissing(): MotoMissingError | undefined {
  const probe = spawnSync('python3', ['-c', 'import moto.server, flask'], { encoding: 'utf8', timeout: 30_000 });
  if (probe.error) return new MotoMissingError(`python3 is not runnable: ${probe.error.message}`);
  if (probe.status !== 0) return new MotoMissingError(probe.stderr.trim().split('\n').at(-1) ?? 'import failed');
  return undefined;
}

async function waitReady(url: string, child: ChildProcess, timeoutMs: number, output: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  child.once('exit', () => (exited = true));
  for (let i = 0; Date.now() < deadline; i++) {
    if (exited) throw new Error(`moto server exited before it was ready: ${output()}`);
    try {
      const res = await fetch(`${url}/moto-api/`, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.status < 500) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, Math.min(50 * (i + 1), 250)));
  }
  throw new Error(`moto server did not answer on ${url} within ${timeoutMs} ms: ${output()}`);
}

export async function startMoto(options: { timeoutMs?: number } = {}): Promise<MotoServer> {
  const missing = motoMissing();
  if (missing) throw missing;
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn('python3', ['-m', 'moto.server', '-H', '127.0.0.1', '-p', String(port)], {
    env: {
      ...process.env,
      MOTO_IAM_LOAD_MANAGED_POLICIES: 'true',
      // Dummy credentials for anything in moto that reads them; never real ones.
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
      PYTHONUNBUFFERED: '1',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
    detached: true,
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString()).slice(-4_000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const killGroup = (signal: NodeJS.Signals): void => {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  };
  const onExit = (): void => killGroup('SIGKILL');
  process.once('exit', onExit);
  try {
    await waitReady(url, child, options.timeoutMs ?? 30_000, () => stderr);
  } catch (err) {
    killGroup('SIGKILL');
    process.removeListener('exit', onExit);
    throw err;
  }
  return {
    url,
    port,
    async reset() {
      const res = await fetch(`${url}/moto-api/reset`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
      await res.arrayBuffer();
      if (!res.ok) throw new Error(`moto reset failed: HTTP ${res.status}`);
    },
    async stop() {
      killGroup('SIGTERM');
      const timer = setTimeout(() => killGroup('SIGKILL'), 3_000);
      await exited;
      clearTimeout(timer);
      process.removeListener('exit', onExit);
    },
  };
}

/** What the proxy does with one request. */
/**
 * What the proxy does with one request. 'signature' answers 403 SignatureDoesNotMatch and echoes the
 * request's Authorization header in the message, as AWS echoes the string it signed: it checks that
 * no credential in an AWS error message survives into our errors and logs.
 */
export type Fault = 'pass' | 'throttle' | 'unavailable' | 'internal' | 'signature';

export interface FaultRule {
  /**
   * Which requests the rule may hit: a predicate over the AWS operation (from
   * the `Action` form field, the `X-Amz-Target` header, or `METHOD path` for
   * REST services). Default: every request.
   */
  match?: (operation: string) => boolean;
  /** Faults for the first matching requests, in order ('pass' lets one through); then `fraction` applies. */
  sequence?: readonly Fault[];
  /** After the sequence: the share of matching requests (0–1) that get `fault`. Default 0. */
  fraction?: number;
  /** The fault `fraction` injects (default 'throttle'). */
  fault?: Exclude<Fault, 'pass'>;
  /** Injects at most this many faults in total (default unlimited). Bounds every failure loop. */
  maxFaults?: number;
}

/** A request the proxy saw (the first 1,000 of them), for assertions about what was sent. */
export interface SeenRequest {
  operation: string;
  authorization: string;
  body: string;
}

export interface FaultProxy {
  url: string;
  /** Replaces the rule; counters keep running. */
  setRule(rule: FaultRule | undefined): void;
  /** Requests seen, and faults injected, per kind. */
  readonly stats: { requests: number; injected: Record<Exclude<Fault, 'pass'>, number>; operations: string[]; seen: SeenRequest[] };
  close(): Promise<void>;
}

function operationOf(req: IncomingMessage, body: Buffer): string {
  const target = req.headers['x-amz-target'];
  if (typeof target === 'string') return target.split('.').at(-1) ?? target;
  const url = new URL(req.url ?? '/', 'http://x');
  const fromQuery = url.searchParams.get('Action');
  if (fromQuery) return fromQuery;
  const form = body.toString('utf8');
  const match = /(?:^|&)Action=([A-Za-z0-9]+)/.exec(form);
  if (match) return match[1]!;
  return `${req.method} ${url.pathname}`;
}

type Protocol = 'json' | 'ec2' | 'query' | 's3';

function protocolOf(req: IncomingMessage, body: Buffer): Protocol {
  if (typeof req.headers['x-amz-target'] === 'string') return 'json';
  const path = new URL(req.url ?? '/', 'http://x').pathname;
  if (path.startsWith('/clusters')) return 'json'; // EKS (REST-JSON)
  const form = body.toString('utf8');
  if (/(?:^|&)Action=/.test(form) || /[?&]Action=/.test(req.url ?? '')) {
    return /(?:^|&)Version=2016-11-15/.test(form) ? 'ec2' : 'query';
  }
  return 's3';
}

function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function writeFault(res: ServerResponse, fault: Exclude<Fault, 'pass'>, req: IncomingMessage, body: Buffer): void {
  const [status, code, message] =
    fault === 'throttle'
      ? [429, 'ThrottlingException', 'Rate exceeded']
      : fault === 'unavailable'
        ? [503, 'ServiceUnavailable', 'Service is unavailable, try again']
        : fault === 'signature'
          ? [
              403,
              'SignatureDoesNotMatch',
              `The request signature we calculated does not match the signature you provided. Authorization: ${String(req.headers['authorization'] ?? '')}`,
            ]
          : [500, 'InternalError', 'We encountered an internal error. Please try again.'];
  const protocol = protocolOf(req, body);
  if (protocol === 'json') {
    res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': code, 'x-amzn-requestid': 'fault-proxy' });
    res.end(JSON.stringify({ __type: code, message }));
    return;
  }
  const m = escapeXml(message);
  const xml =
    protocol === 'ec2'
      ? `<Response><Errors><Error><Code>${code}</Code><Message>${m}</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>`
      : protocol === 'query'
        ? `<ErrorResponse><Error><Type>Sender</Type><Code>${code}</Code><Message>${m}</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>`
        : `<Error><Code>${code}</Code><Message>${m}</Message><RequestId>fault-proxy</RequestId></Error>`;
  res.writeHead(status, { 'content-type': 'text/xml', 'x-amzn-requestid': 'fault-proxy' });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>${xml}`);
}

/**
 * An HTTP proxy on 127.0.0.1 that forwards to `target` (moto), except for the
 * requests its rule picks, which get a throttling (429) or server (500/503)
 * error in the shape the AWS protocols use. Deterministic unless `fraction`
 * is used with a value strictly between 0 and 1.
 */
export async function startFaultProxy(target: string, rule?: FaultRule, random: () => number = Math.random): Promise<FaultProxy> {
  const upstream = new URL(target);
  let current = rule;
  let seen = 0; // matching requests under the current rule
  let injectedTotal = 0;
  const stats = {
    requests: 0,
    injected: { throttle: 0, unavailable: 0, internal: 0, signature: 0 },
    operations: [] as string[],
    seen: [] as SeenRequest[],
  };

  const decide = (operation: string): Fault => {
    if (!current || (current.match && !current.match(operation))) return 'pass';
    if (current.maxFaults !== undefined && injectedTotal >= current.maxFaults) return 'pass';
    const index = seen++;
    const sequence = current.sequence ?? [];
    if (index < sequence.length) return sequence[index]!;
    const fraction = current.fraction ?? 0;
    return fraction > 0 && random() < fraction ? (current.fault ?? 'throttle') : 'pass';
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const operation = operationOf(req, body);
      stats.requests++;
      stats.operations.push(operation);
      if (stats.seen.length < 1_000) {
        stats.seen.push({ operation, authorization: String(req.headers['authorization'] ?? ''), body: body.toString('utf8').slice(0, 4_000) });
      }
      const fault = decide(operation);
      if (fault !== 'pass') {
        injectedTotal++;
        stats.injected[fault]++;
        writeFault(res, fault, req, body);
        return;
      }
      const forward = httpRequest(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: req.headers.host ?? upstream.host },
        },
        (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        },
      );
      forward.on('error', (err) => {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`fault proxy: upstream error: ${err.message}`);
      });
      forward.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    setRule(next) {
      current = next;
      seen = 0;
      injectedTotal = 0;
    },
    stats,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
