// The users' Helm values of an observability stack, and the part of them that applies when the
// stack runs as host processes on a simulated runtime (docs/observability.md lists the mapping).
// On a real cluster the values go to the official charts whole; here only the settings that mean
// something for a single Prometheus and a single log store are read, and the rest is reported as
// ignored, so a user sees which of their values took effect.
import { parse as parseYaml } from 'yaml';

type Values = Record<string, unknown>;

/** Parses a values document; the kinds' `check` has already refused text that is not a YAML mapping. */
export function parseValues(doc: unknown): Values {
  if (typeof doc !== 'string' || doc.trim() === '') return {};
  const v = parseYaml(doc, { maxAliasCount: 100 }) as unknown;
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Values) : {};
}

function isMap(v: unknown): v is Values {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Helm's merge: maps merge key by key, anything else (lists too) is replaced by the later document. */
export function mergeValues(...docs: Values[]): Values {
  const out: Values = {};
  for (const doc of docs) {
    for (const [k, v] of Object.entries(doc)) {
      const prev = out[k];
      out[k] = isMap(prev) && isMap(v) ? mergeValues(prev, v) : v;
    }
  }
  return out;
}

function at(values: Values, path: readonly string[]): unknown {
  let cur: unknown = values;
  for (const p of path) {
    if (!isMap(cur)) return undefined;
    cur = cur[p];
  }
  return cur;
}

/** Every leaf path of a values tree, e.g. `prometheus.prometheusSpec.retention`. */
export function leafPaths(values: Values, prefix = ''): string[] {
  return Object.entries(values).flatMap(([k, v]) => (isMap(v) && Object.keys(v).length > 0 ? leafPaths(v, `${prefix}${k}.`) : [`${prefix}${k}`]));
}

/** A Prometheus duration (`30s`, `1m`, `15d`, `1h30m`). */
const DURATION = /^(\d+(ms|s|m|h|d|w|y))+$/;

export interface PrometheusSettings {
  scrapeInterval: string;
  evaluationInterval: string;
  retention: string;
  /** Extra scrape configs, appended as given (prometheus.prometheusSpec.additionalScrapeConfigs). */
  additionalScrapeConfigs: Values[];
  /** Values that have no meaning for a host-process Prometheus (listed in an event). */
  ignored: string[];
}

const PROMETHEUS_KEYS = {
  scrapeInterval: ['prometheus', 'prometheusSpec', 'scrapeInterval'],
  evaluationInterval: ['prometheus', 'prometheusSpec', 'evaluationInterval'],
  retention: ['prometheus', 'prometheusSpec', 'retention'],
  additionalScrapeConfigs: ['prometheus', 'prometheusSpec', 'additionalScrapeConfigs'],
} as const;

export class ValuesError extends Error {
  override name = 'ValuesError';
}

function duration(values: Values, path: readonly string[], field: string, fallback: string): string {
  const v = at(values, path);
  if (v === undefined || v === null || v === '') return fallback;
  if (typeof v !== 'string' || !DURATION.test(v)) throw new ValuesError(`${field}: ${path.join('.')} must be a duration such as 30s or 15d, got ${JSON.stringify(v)}`);
  return v;
}

/** kube-prometheus-stack values → the settings of our Prometheus. `field` names the values field in errors. */
export function prometheusSettings(values: Values, field: string): PrometheusSettings {
  const extra = at(values, PROMETHEUS_KEYS.additionalScrapeConfigs) ?? [];
  if (!Array.isArray(extra) || !extra.every(isMap)) {
    throw new ValuesError(`${field}: prometheus.prometheusSpec.additionalScrapeConfigs must be a list of scrape configs`);
  }
  for (const c of extra) {
    if (typeof c['job_name'] !== 'string' || c['job_name'] === '') throw new ValuesError(`${field}: every additionalScrapeConfigs entry needs a job_name`);
  }
  const known = new Set(Object.values(PROMETHEUS_KEYS).map((p) => p.join('.')));
  return {
    scrapeInterval: duration(values, PROMETHEUS_KEYS.scrapeInterval, field, '15s'),
    evaluationInterval: duration(values, PROMETHEUS_KEYS.evaluationInterval, field, '30s'),
    retention: duration(values, PROMETHEUS_KEYS.retention, field, '10d'),
    additionalScrapeConfigs: extra,
    ignored: leafPaths(values).filter((p) => ![...known].some((k) => p === k || p.startsWith(`${k}.`))),
  };
}

export interface LogStoreSettings {
  /** VictoriaLogs -retentionPeriod (from loki.limits_config.retention_period; Loki's default keeps logs forever, ours 7d). */
  retention: string;
  ignored: string[];
}

const LOKI_RETENTION = ['loki', 'limits_config', 'retention_period'] as const;

/** Loki chart values → the settings of our log store. */
export function logStoreSettings(values: Values, field: string): LogStoreSettings {
  const retention = duration(values, LOKI_RETENTION, field, '7d');
  // VictoriaLogs keeps logs for whole hours, days, weeks or years, one day at least.
  const m = /^(\d+)(h|d|w|y)$/.exec(retention);
  if (!m || (m[2] === 'h' && Number(m[1]) < 24) || Number(m[1]) === 0) {
    throw new ValuesError(`${field}: loki.limits_config.retention_period must be one unit of hours (24h at least), days, weeks or years here, got ${JSON.stringify(retention)}`);
  }
  return { retention, ignored: leafPaths(values).filter((p) => p !== LOKI_RETENTION.join('.')) };
}
