// The helm provider: releases on one Kubernetes runtime, through the `helm` CLI.
//
//   const helm = new HelmReleases({ caFile });
//   await helm.deploy(conn, { release, namespace, source, values, postRender, description });
//   await helm.status(conn, release, namespace);   // undefined when there is no such release
//   await helm.uninstall(conn, release, namespace); // not-found is fine
//
// Every call gets its own HelmWorkspace (kubeconfig 0600, values files, post-renderer), removed
// afterwards. Errors are HelmErrors whose message is helm's scrubbed stderr and whose
// `retryable` says whether trying again can help.
import { createHash } from 'node:crypto';
import { cpSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { KubeConnection } from '../kube/connection.js';
import { findHelm, type HelmBinary } from './binary.js';
import { describeChart, type ChartSource } from './chart-source.js';
import { HelmCommandError } from './errors.js';
import type { PostRenderConfig } from './post-render.js';
import { HelmWorkspace, removeStaleWorkspaces, type RunOptions } from './workspace.js';

export interface HelmReleasesOptions {
  /** The helm binary, or how to find it (default: findHelm(), resolved on first use). */
  helm?: string | (() => HelmBinary);
  /** CA bundle for https chart repositories and OCI registries (`--ca-file`). */
  caFile?: string;
  /** Where workspaces are created (default: <tmpdir>/threeport-helm). */
  workRoot?: string;
  /** helm's `--timeout` for Kubernetes operations such as hooks (default 5 min). */
  operationTimeout?: string;
}

export interface DeployRequest {
  release: string;
  namespace: string;
  source: ChartSource;
  /** Values files in order: later files win (`-f a.yaml -f b.yaml`). Names are shown in helm's errors. */
  values: ReadonlyArray<{ name: string; yaml: string }>;
  postRender: PostRenderConfig;
  /** Stored as the release description (e.g. a fingerprint of the desired state). */
  description?: string;
}

/** The parts of `helm status -o json` the controller uses. */
export interface ReleaseStatus {
  name: string;
  namespace: string;
  revision: number;
  /** deployed | failed | pending-install | pending-upgrade | uninstalling | superseded | ... */
  status: string;
  description: string;
  chart?: string;
  chartVersion?: string;
}

function parseRelease(json: string): ReleaseStatus {
  const r = JSON.parse(json) as {
    name: string;
    namespace: string;
    version: number;
    info?: { status?: string; description?: string };
    chart?: { metadata?: { name?: string; version?: string } };
  };
  return {
    name: r.name,
    namespace: r.namespace,
    revision: r.version,
    status: r.info?.status ?? 'unknown',
    description: r.info?.description ?? '',
    ...(r.chart?.metadata?.name ? { chart: r.chart.metadata.name } : {}),
    ...(r.chart?.metadata?.version ? { chartVersion: r.chart.metadata.version } : {}),
  };
}

function isReleaseNotFound(err: unknown): boolean {
  return err instanceof HelmCommandError && /release: not found|release ".*" not found/i.test(err.stderr);
}

/** A digest of a local chart's files (directory or package), so that editing it counts as a change. */
export function localChartDigest(path: string): string {
  const h = createHash('sha256');
  const walk = (p: string): void => {
    const st = statSync(p);
    if (st.isDirectory()) {
      for (const name of readdirSync(p).sort()) walk(join(p, name));
    } else if (st.isFile()) {
      h.update(`${relative(path, p)}\0`);
      h.update(readFileSync(p));
      h.update('\0');
    }
  };
  walk(path);
  return h.digest('hex');
}

export class HelmReleases {
  readonly #options: HelmReleasesOptions;
  #binary: HelmBinary | undefined;

  constructor(options: HelmReleasesOptions = {}) {
    this.#options = options;
    if (options.workRoot) removeStaleWorkspaces(options.workRoot);
  }

  /** The helm executable in use (found on first use; a failed lookup is retried next time). */
  binary(): HelmBinary {
    if (!this.#binary) {
      const h = this.#options.helm;
      this.#binary = typeof h === 'string' ? { path: h, source: 'THREEPORT_HELM' } : h ? h() : findHelm();
    }
    return this.#binary;
  }

  async #inWorkspace<T>(conn: KubeConnection, work: (ws: HelmWorkspace) => Promise<T>): Promise<T> {
    const ws = HelmWorkspace.open(this.binary().path, conn, this.#options.workRoot);
    try {
      return await work(ws);
    } finally {
      ws.close();
    }
  }

  #tlsArgs(source: ChartSource): string[] {
    return this.#options.caFile && source.type !== 'local' ? ['--ca-file', this.#options.caFile] : [];
  }

  /**
   * `helm upgrade --install`: installs the release or upgrades it, creating the namespace and
   * updating chart dependencies, with the post-renderer. Does not wait for readiness.
   */
  deploy(conn: KubeConnection, req: DeployRequest, options: RunOptions = {}): Promise<ReleaseStatus> {
    return this.#inWorkspace(conn, async (ws) => {
      let chartArgs: string[];
      switch (req.source.type) {
        case 'repository':
          chartArgs = [req.source.chart, '--repo', req.source.url, ...(req.source.version ? ['--version', req.source.version] : [])];
          break;
        case 'oci':
          chartArgs = [req.source.ref, ...(req.source.version ? ['--version', req.source.version] : [])];
          break;
        case 'local': {
          // A copy, so that `--dependency-update` never writes into the source directory.
          let path = req.source.path;
          if (!req.source.packaged) {
            path = join(ws.dir, 'chart');
            cpSync(req.source.path, path, { recursive: true, dereference: true });
          }
          chartArgs = [path];
          break;
        }
      }
      const valueArgs = req.values.flatMap((v) => ['-f', ws.writeFile(v.name, v.yaml)]);
      const args = [
        'upgrade',
        '--install',
        req.release,
        ...chartArgs,
        '--namespace',
        req.namespace,
        '--create-namespace',
        '--dependency-update',
        ...this.#tlsArgs(req.source),
        ...valueArgs,
        '--post-renderer',
        ws.postRenderer(req.postRender),
        '--timeout',
        this.#options.operationTimeout ?? '5m',
        ...(req.description ? ['--description', req.description] : []),
        '--output',
        'json',
      ];
      try {
        const { stdout } = await ws.run(args, options);
        return parseRelease(stdout);
      } catch (err) {
        throw this.#wrap(
          err,
          `helm upgrade --install of release ${JSON.stringify(req.release)} in namespace ${JSON.stringify(req.namespace)}` +
            ` on ${conn.label} (${describeChart(req.source)})`,
        );
      }
    });
  }

  /** `helm status`: the release, or undefined when it does not exist. */
  status(conn: KubeConnection, release: string, namespace: string, options: RunOptions = {}): Promise<ReleaseStatus | undefined> {
    return this.#inWorkspace(conn, async (ws) => {
      try {
        const { stdout } = await ws.run(['status', release, '--namespace', namespace, '--output', 'json'], options);
        return parseRelease(stdout);
      } catch (err) {
        if (isReleaseNotFound(err)) return undefined;
        throw this.#wrap(err, `helm status of release ${JSON.stringify(release)} in namespace ${JSON.stringify(namespace)} on ${conn.label}`);
      }
    });
  }

  /** The release's rendered manifest as helm stored it (post-rendered), or undefined when there is no release. */
  manifest(conn: KubeConnection, release: string, namespace: string, options: RunOptions = {}): Promise<string | undefined> {
    return this.#inWorkspace(conn, async (ws) => {
      try {
        return (await ws.run(['get', 'manifest', release, '--namespace', namespace], options)).stdout;
      } catch (err) {
        if (isReleaseNotFound(err)) return undefined;
        throw this.#wrap(err, `helm get manifest of release ${JSON.stringify(release)} in namespace ${JSON.stringify(namespace)} on ${conn.label}`);
      }
    });
  }

  /** `helm uninstall --ignore-not-found`; resolves whether a release was there. */
  uninstall(conn: KubeConnection, release: string, namespace: string, options: RunOptions = {}): Promise<boolean> {
    return this.#inWorkspace(conn, async (ws) => {
      try {
        const { stdout } = await ws.run(
          ['uninstall', release, '--namespace', namespace, '--ignore-not-found', '--timeout', this.#options.operationTimeout ?? '5m'],
          options,
        );
        return !/not found/i.test(stdout);
      } catch (err) {
        if (isReleaseNotFound(err)) return false;
        throw this.#wrap(err, `helm uninstall of release ${JSON.stringify(release)} in namespace ${JSON.stringify(namespace)} on ${conn.label}`);
      }
    });
  }

  #wrap(err: unknown, what: string): unknown {
    if (!(err instanceof HelmCommandError)) return err;
    return new HelmCommandError(`${what} failed: ${err.message}`, {
      command: err.command,
      exitCode: err.exitCode,
      stderr: err.stderr,
      retryable: err.retryable,
    });
  }
}
