// Where a HelmWorkloadDefinition's chart comes from. `Repo` is one of:
//   https://charts.example.com   a chart repository (index.yaml); helm gets `--repo <url> <Chart>`
//   oci://registry.example.com/x an OCI registry; helm gets `oci://registry.example.com/x/<Chart>`
//   /srv/charts or charts/       a local directory, absolute or relative to the server's working
//   (or file:///srv/charts)      directory, holding <Chart>/Chart.yaml (or being the chart itself)
// ChartVersion selects the version (`--version`); for a local directory it must match Chart.yaml.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export type ChartSource =
  | { type: 'repository'; url: string; chart: string; version?: string }
  | { type: 'oci'; ref: string; version?: string }
  /** `path` is a chart directory or a packaged chart (.tgz). */
  | { type: 'local'; path: string; packaged: boolean };

/** The definition's chart fields are wrong: retrying cannot help. */
export class ChartSourceError extends Error {
  override name = 'ChartSourceError';
  readonly retryable = false;
}

export interface ChartFields {
  Repo: string;
  Chart: string;
  ChartVersion?: string | null | undefined;
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function chartMetadata(dir: string): { name?: unknown; version?: unknown } | undefined {
  const file = join(dir, 'Chart.yaml');
  if (!existsSync(file)) return undefined;
  try {
    const meta: unknown = parse(readFileSync(file, 'utf8'));
    return typeof meta === 'object' && meta !== null ? (meta as { name?: unknown; version?: unknown }) : {};
  } catch (err) {
    throw new ChartSourceError(`${file} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
}

/**
 * Resolves the chart of a definition. `what` names the definition in messages, e.g.
 * `HelmWorkloadDefinition "web"`; `baseDir` anchors relative local directories.
 */
export function chartSource(fields: ChartFields, what: string, baseDir: string = process.cwd()): ChartSource {
  const repo = String(fields.Repo ?? '').trim();
  const chart = String(fields.Chart ?? '').trim();
  const version = fields.ChartVersion ? String(fields.ChartVersion).trim() : '';
  if (!chart) throw new ChartSourceError(`${what}: Chart is empty`);
  if (!repo) throw new ChartSourceError(`${what}: Repo is empty; give an https:// chart repository, an oci:// registry or a local directory`);

  if (/^oci:\/\//i.test(repo)) {
    if (chart.includes('/') || chart.includes(':')) {
      throw new ChartSourceError(`${what}: Chart ${JSON.stringify(chart)} must be a chart name; put the registry path in Repo`);
    }
    return { type: 'oci', ref: `${repo.replace(/\/+$/, '')}/${chart}`, ...(version ? { version } : {}) };
  }
  if (/^https?:\/\//i.test(repo)) {
    try {
      new URL(repo);
    } catch {
      throw new ChartSourceError(`${what}: Repo ${JSON.stringify(repo)} is not a valid URL`);
    }
    return { type: 'repository', url: repo, chart, ...(version ? { version } : {}) };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(repo) && !/^file:\/\//i.test(repo)) {
    throw new ChartSourceError(
      `${what}: Repo ${JSON.stringify(repo)} has an unsupported scheme; use https://, oci:// or a local directory`,
    );
  }

  const dir = /^file:\/\//i.test(repo) ? fileURLToPath(repo) : isAbsolute(repo) ? repo : resolve(baseDir, repo);
  if (!isDir(dir)) throw new ChartSourceError(`${what}: the local chart directory ${dir} does not exist`);
  const checkVersion = (chartDir: string, meta: { version?: unknown }): void => {
    if (version && String(meta.version) !== version) {
      throw new ChartSourceError(
        `${what}: the local chart ${chartDir} has version ${String(meta.version)}, but ChartVersion asks for ${version}`,
      );
    }
  };
  const nested = join(dir, chart);
  const nestedMeta = isDir(nested) ? chartMetadata(nested) : undefined;
  if (nestedMeta) {
    checkVersion(nested, nestedMeta);
    return { type: 'local', path: nested, packaged: false };
  }
  if (version) {
    const packaged = join(dir, `${chart}-${version}.tgz`);
    if (existsSync(packaged)) return { type: 'local', path: packaged, packaged: true };
  }
  const ownMeta = chartMetadata(dir);
  if (ownMeta && ownMeta.name === chart) {
    checkVersion(dir, ownMeta);
    return { type: 'local', path: dir, packaged: false };
  }
  throw new ChartSourceError(
    `${what}: no chart ${JSON.stringify(chart)} in the local directory ${dir} (looked for ${join(nested, 'Chart.yaml')}` +
      `${version ? `, ${join(dir, `${chart}-${version}.tgz`)}` : ''} and a Chart.yaml named ${JSON.stringify(chart)} in ${dir})`,
  );
}

/** A one-line description for messages: `chart "hello" from https://...`. */
export function describeChart(source: ChartSource): string {
  switch (source.type) {
    case 'repository':
      return `chart ${JSON.stringify(source.chart)}${source.version ? ` ${source.version}` : ''} from ${source.url}`;
    case 'oci':
      return `chart ${source.ref}${source.version ? ` ${source.version}` : ''}`;
    case 'local':
      return `local chart ${source.path}`;
  }
}
