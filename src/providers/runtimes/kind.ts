// InfraProvider `kind` (upstream's local provider): a cluster in Docker containers, made and
// removed through the `kind` CLI. It works only where both the CLI and a Docker engine are
// present; anywhere else it fails terminally and says what to use instead.
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { JsonObject } from '../../kinds/validate.js';
import { connectionFieldsFromKubeconfig } from '../kube/connection.js';
import { clusterNameFor } from './kwok/runtimes.js';
import { verifyReachable, writeConnection } from './reachability.js';
import { RuntimeProviderError, type RuntimeContext, type RuntimeProvider } from './types.js';

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export type RunCommand = (bin: string, args: string[], opts: { timeoutMs: number; signal?: AbortSignal }) => Promise<CommandResult>;

/** Runs a command without a shell; a missing binary resolves with code 127. */
export const runCommand: RunCommand = (bin, args, opts) =>
  new Promise((resolve) => {
    execFile(
      bin,
      args,
      { timeout: opts.timeoutMs, maxBuffer: 16 * 1024 * 1024, ...(opts.signal ? { signal: opts.signal } : {}) },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 127) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });

export interface KindRuntimeProviderOptions {
  /** Where kubeconfigs go: `<dataDir>/runtimes/<name>/kubeconfig`. */
  dataDir: string;
  kindBin?: string;
  dockerBin?: string;
  run?: RunCommand;
}

export const KIND_UNAVAILABLE_HINT =
  'use InfraProvider kwok for a local simulated cluster or kubeconfig for an existing cluster';

export class KindRuntimeProvider implements RuntimeProvider {
  readonly infraProvider = 'kind' as const;
  readonly #kind: string;
  readonly #docker: string;
  readonly #run: RunCommand;
  readonly #dataDir: string;

  constructor(options: KindRuntimeProviderOptions) {
    this.#dataDir = options.dataDir;
    this.#kind = options.kindBin ?? 'kind';
    this.#docker = options.dockerBin ?? 'docker';
    this.#run = options.run ?? runCommand;
  }

  /** Undefined when kind and a Docker engine are usable; otherwise what is missing. */
  async missing(signal?: AbortSignal): Promise<string | undefined> {
    const [kind, docker] = await Promise.all([
      this.#run(this.#kind, ['version'], { timeoutMs: 15_000, ...(signal ? { signal } : {}) }),
      this.#run(this.#docker, ['info', '--format', '{{.ServerVersion}}'], { timeoutMs: 15_000, ...(signal ? { signal } : {}) }),
    ]);
    const noKind = kind.code !== 0;
    const noDocker = docker.code !== 0 || docker.stdout.trim().length === 0;
    if (noKind && noDocker) return 'none found';
    if (noKind) return 'the kind CLI was not found';
    if (noDocker) return 'no Docker engine answers `docker info`';
    return undefined;
  }

  async #requireAvailable(signal: AbortSignal): Promise<void> {
    const missing = await this.missing(signal);
    if (missing) {
      throw new RuntimeProviderError(`the kind provider needs the kind CLI and a Docker engine; ${missing} — ${KIND_UNAVAILABLE_HINT}`, {
        retryable: false,
        reason: 'KindUnavailable',
      });
    }
  }

  #clusterName(instance: JsonObject): string {
    return `threeport-${clusterNameFor(String(instance['Name']))}`;
  }

  async #exists(name: string, signal: AbortSignal): Promise<boolean> {
    const r = await this.#run(this.#kind, ['get', 'clusters'], { timeoutMs: 30_000, signal });
    if (r.code !== 0) throw new RuntimeProviderError(`kind get clusters failed: ${r.stderr.trim()}`, { retryable: true });
    return r.stdout.split('\n').map((l) => l.trim()).includes(name);
  }

  async #ensure(ctx: RuntimeContext, instance: JsonObject): Promise<void> {
    await this.#requireAvailable(ctx.signal);
    const name = this.#clusterName(instance);
    const dir = join(this.#dataDir, 'runtimes', clusterNameFor(String(instance['Name'])));
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const kubeconfig = join(dir, 'kubeconfig');
    if (!(await this.#exists(name, ctx.signal))) {
      const r = await this.#run(this.#kind, ['create', 'cluster', '--name', name, '--kubeconfig', kubeconfig, '--wait', '180s'], {
        timeoutMs: 300_000,
        signal: ctx.signal,
      });
      if (r.code !== 0) {
        throw new RuntimeProviderError(`kind create cluster --name ${name} failed: ${r.stderr.trim().split('\n').slice(-5).join(' ')}`, {
          retryable: true,
          reason: 'KindCreateFailed',
        });
      }
    } else {
      const r = await this.#run(this.#kind, ['export', 'kubeconfig', '--name', name, '--kubeconfig', kubeconfig], { timeoutMs: 30_000, signal: ctx.signal });
      if (r.code !== 0) throw new RuntimeProviderError(`kind export kubeconfig --name ${name} failed: ${r.stderr.trim()}`, { retryable: true });
    }
    const fields = connectionFieldsFromKubeconfig(kubeconfig, `kind-${name}`);
    await verifyReachable(ctx, await writeConnection(ctx, instance, fields));
  }

  instanceCreated(ctx: RuntimeContext, instance: JsonObject): Promise<void> {
    return this.#ensure(ctx, instance);
  }

  instanceUpdated(ctx: RuntimeContext, instance: JsonObject): Promise<void> {
    return this.#ensure(ctx, instance);
  }

  async instanceDeleted(ctx: RuntimeContext, instance: JsonObject): Promise<void> {
    ctx.kube.forget(Number(instance['ID']));
    // Without kind and Docker no cluster can have been made: nothing to remove.
    if (await this.missing(ctx.signal)) return;
    const name = this.#clusterName(instance);
    const r = await this.#run(this.#kind, ['delete', 'cluster', '--name', name], { timeoutMs: 180_000, signal: ctx.signal });
    if (r.code !== 0) throw new RuntimeProviderError(`kind delete cluster --name ${name} failed: ${r.stderr.trim()}`, { retryable: true });
    rmSync(join(this.#dataDir, 'runtimes', clusterNameFor(String(instance['Name']))), { recursive: true, force: true });
  }
}
