// A closed-loop HTTP load generator: `concurrency` workers, each sending its
// next request when the previous one answers, for a fixed time. Every
// response's latency is recorded (autocannon rounds to whole milliseconds).
import http from 'node:http';
import https from 'node:https';

export interface Target {
  url: string;
  tls?: { ca: string; cert: string; key: string };
}

export interface RequestSpec {
  method: string;
  path: string;
  body?: string;
}

export interface LoadResult {
  requests: number;
  errors: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
}

export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export async function runLoad(
  target: Target,
  next: (worker: number, i: number) => RequestSpec,
  options: { concurrency: number; seconds: number; expectStatus: number },
): Promise<LoadResult> {
  const base = new URL(target.url);
  const isTls = base.protocol === 'https:';
  const agent = isTls
    ? new https.Agent({ keepAlive: true, maxSockets: options.concurrency, ...target.tls })
    : new http.Agent({ keepAlive: true, maxSockets: options.concurrency });
  const send = (spec: RequestSpec): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = (isTls ? https : http).request(
        {
          host: base.hostname,
          port: base.port,
          method: spec.method,
          path: spec.path,
          agent,
          headers: spec.body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(spec.body) } : {},
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end(spec.body);
    });

  const latencies: number[] = [];
  let errors = 0;
  const deadline = performance.now() + options.seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: options.concurrency }, async (_, w) => {
      for (let i = 0; performance.now() < deadline; i++) {
        const t0 = performance.now();
        const status = await send(next(w, i)).catch(() => -1);
        latencies.push(performance.now() - t0);
        if (status !== options.expectStatus) errors++;
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  const sorted = Float64Array.from(latencies).sort();
  return {
    requests: latencies.length,
    errors,
    seconds,
    perSecond: latencies.length / seconds,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
  };
}
