// Supervised host processes for the support-service peers on simulated runtimes, where no
// container runs: each peer is one process pointed at the runtime's API server (a kubeconfig in
// the peer set's directory), restarted with backoff when it dies, with an event for each start,
// exit and restart, and removed with the set.
//
// Processes are ManagedProcesses (src/providers/runtimes/kwok/processes.ts): own process group,
// killed on owner exit, and reaped by a watcher even when the owner is SIGKILLed.
import { mkdirSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { join } from 'node:path';
import { kubeConfigFor, type KubeConnection } from '../kube/connection.js';
import { ManagedProcess, registerRoot, releaseRoot } from '../runtimes/kwok/processes.js';
import { backoffDelay } from '../../system.js';

export interface PeerEvent {
  type: 'Normal' | 'Warning';
  /** SupportPeerStarted, SupportPeerExited, SupportPeerRestarted, SupportPeerFailed. */
  reason: string;
  /** The process's name within its set, e.g. `traefik`. */
  peer: string;
  message: string;
}

/** How to tell that a started peer is serving. */
export type ReadinessProbe =
  | { kind: 'http'; url: string; /** PEM CA for https URLs. */ ca?: string }
  | { kind: 'tcp'; host: string; port: number }
  /** A line of the peer's own log (for peers with no health endpoint). */
  | { kind: 'log'; pattern: RegExp };

/** One peer process: what to run, how to tell it is ready. Built by the functions in launch.ts. */
export interface PeerLaunch {
  /** Unique within its set; names the log file and the events. */
  name: string;
  bin: string;
  args: string[];
  /** The whole environment: nothing of the owner's environment is inherited (no stray credentials). */
  env: Record<string, string>;
  /** Files written into the peer's directory before it starts (relative path -> content). */
  files?: Record<string, string>;
  ready: ReadinessProbe;
}

export interface RestartPolicy {
  /** First restart delay (default 1 s), doubled per consecutive failure up to maxDelayMs (default 30 s). */
  initialDelayMs?: number;
  maxDelayMs?: number;
  /** Consecutive failed runs (each shorter than stableMs) before giving up (default 5). */
  maxConsecutiveFailures?: number;
  /** A run this long resets the backoff (default 60 s). */
  stableMs?: number;
}

const DEFAULT_RESTART: Required<RestartPolicy> = {
  initialDelayMs: 1_000,
  maxDelayMs: 30_000,
  maxConsecutiveFailures: 5,
  stableMs: 60_000,
};

function probeOnce(probe: ReadinessProbe, logText: () => string): Promise<boolean> {
  switch (probe.kind) {
    case 'log':
      return Promise.resolve(probe.pattern.test(logText()));
    case 'tcp':
      return new Promise((resolve) => {
        const socket = connect({ host: probe.host, port: probe.port });
        const done = (ok: boolean): void => {
          socket.destroy();
          resolve(ok);
        };
        socket.setTimeout(2_000, () => done(false));
        socket.once('connect', () => done(true));
        socket.once('error', () => done(false));
      });
    case 'http':
      return new Promise((resolve) => {
        const url = new URL(probe.url);
        const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
        const req = send(url, { method: 'GET', timeout: 2_000, ...(probe.ca ? { ca: probe.ca } : {}) }, (res) => {
          res.resume();
          resolve((res.statusCode ?? 500) < 400);
        });
        req.once('timeout', () => req.destroy());
        req.once('error', () => resolve(false));
        req.end();
      });
  }
}

/** One supervised peer process. */
export class SupervisedPeer {
  readonly name: string;
  readonly dir: string;
  readonly launch: PeerLaunch;
  readonly #process: ManagedProcess;
  readonly #policy: Required<RestartPolicy>;
  readonly #emit: (e: PeerEvent) => void;
  #stopped = false;
  #failures = 0;
  #restarts = 0;
  #restartTimer: NodeJS.Timeout | undefined;
  #gaveUp = false;

  constructor(launch: PeerLaunch, opts: { dir: string; root: string; restart?: RestartPolicy; onEvent?: (e: PeerEvent) => void }) {
    this.name = launch.name;
    this.launch = launch;
    this.dir = opts.dir;
    this.#policy = { ...DEFAULT_RESTART, ...opts.restart };
    this.#emit = opts.onEvent ?? (() => undefined);
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    for (const [rel, content] of Object.entries(launch.files ?? {})) {
      writeFileSync(join(this.dir, rel), content, { mode: 0o600 });
    }
    this.#process = new ManagedProcess({
      name: launch.name,
      bin: launch.bin,
      args: launch.args,
      env: launch.env,
      cwd: this.dir,
      root: opts.root,
      logPath: join(this.dir, `${launch.name}.log`),
      onUnexpectedExit: (info) => this.#onExit(info),
    });
  }

  get running(): boolean {
    return this.#process.running;
  }

  get pid(): number | undefined {
    return this.#process.pid;
  }

  get logPath(): string {
    return this.#process.logPath;
  }

  /** Restarts after unexpected exits so far. */
  get restarts(): number {
    return this.#restarts;
  }

  /** True once the restart budget is spent; the peer stays down until start() is called again. */
  get failed(): boolean {
    return this.#gaveUp;
  }

  rssBytes(): number | undefined {
    return this.#process.rssBytes();
  }

  logTail(lines = 30): string {
    return this.#process.logTail(lines);
  }

  /** Starts the process and waits until its readiness probe passes; throws (with the log's end) if it exits or times out. */
  async start(opts: { timeoutMs?: number } = {}): Promise<void> {
    this.#stopped = false;
    this.#gaveUp = false;
    this.#failures = 0;
    this.#process.start();
    await this.waitReady(opts.timeoutMs ?? 60_000);
    this.#emit({ type: 'Normal', reason: 'SupportPeerStarted', peer: this.name, message: `${this.name} is ready (pid ${String(this.pid)})` });
  }

  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; ; i++) {
      if (!this.#process.running) {
        throw new Error(`${this.name} ${this.#process.exited ?? 'is not running'} before it was ready; end of ${this.logPath}:\n${this.logTail()}`);
      }
      if (await probeOnce(this.launch.ready, () => this.logTail(400))) return;
      if (Date.now() > deadline) {
        throw new Error(`${this.name} was not ready within ${timeoutMs} ms; end of ${this.logPath}:\n${this.logTail()}`);
      }
      await new Promise((r) => setTimeout(r, Math.min(100 * (i + 1), 500)));
    }
  }

  #onExit(info: string): void {
    if (this.#stopped) return;
    const stable = this.#process.uptimeMs >= this.#policy.stableMs;
    this.#failures = stable ? 1 : this.#failures + 1;
    if (this.#failures > this.#policy.maxConsecutiveFailures) {
      this.#gaveUp = true;
      this.#emit({
        type: 'Warning',
        reason: 'SupportPeerFailed',
        peer: this.name,
        message: `${this.name} ${info} ${this.#failures} times in a row; not restarting it (log: ${this.logPath})`,
      });
      return;
    }
    const delay = backoffDelay(this.#failures, { initialMs: this.#policy.initialDelayMs, maxMs: this.#policy.maxDelayMs });
    this.#emit({ type: 'Warning', reason: 'SupportPeerExited', peer: this.name, message: `${this.name} ${info}; restarting in ${delay} ms` });
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#stopped) return;
      try {
        this.#process.start();
        this.#restarts++;
        this.#emit({ type: 'Normal', reason: 'SupportPeerRestarted', peer: this.name, message: `${this.name} restarted (pid ${String(this.pid)})` });
      } catch (err) {
        this.#onExit(`failed to restart: ${(err as Error).message}`);
      }
    }, delay);
    this.#restartTimer.unref();
  }

  /** Stops the process (SIGTERM, then SIGKILL after graceMs) and any pending restart. Idempotent. */
  async stop(graceMs = 5_000): Promise<void> {
    this.#stopped = true;
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    await this.#process.stop('SIGTERM', graceMs);
  }
}

export interface SupportPeerSetOptions {
  /** The set's directory (kubeconfig, one subdirectory per peer); created 0700. */
  dir: string;
  /** The runtime's API server, written once as <dir>/kubeconfig (0600) for every peer. */
  kube: KubeConnection;
  /** Remove `dir` when the set stops or the owner exits (throwaway test sets). Default false. */
  removeOnExit?: boolean;
  restart?: RestartPolicy;
  onEvent?: (e: PeerEvent) => void;
}

/**
 * The support-service peers of one runtime: shares one kubeconfig and one reaped root, starts and
 * stops peers by name. A controller keeps one set per simulated runtime.
 */
export class SupportPeerSet {
  readonly dir: string;
  readonly kubeconfigPath: string;
  readonly #peers = new Map<string, SupervisedPeer>();
  readonly #opts: SupportPeerSetOptions;
  #closed = false;

  constructor(opts: SupportPeerSetOptions) {
    this.#opts = opts;
    this.dir = opts.dir;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.kubeconfigPath = join(this.dir, 'kubeconfig');
    writeFileSync(this.kubeconfigPath, kubeConfigFor(opts.kube).exportConfig(), { mode: 0o600 });
    registerRoot(this.dir, { removeOnExit: opts.removeOnExit ?? false });
  }

  get(name: string): SupervisedPeer | undefined {
    return this.#peers.get(name);
  }

  get peers(): readonly SupervisedPeer[] {
    return [...this.#peers.values()];
  }

  /** Starts a peer (replacing a stopped one of the same name) and waits until it is ready. */
  async start(launch: PeerLaunch, opts: { timeoutMs?: number } = {}): Promise<SupervisedPeer> {
    if (this.#closed) throw new Error(`support peer set ${this.dir} is stopped`);
    const existing = this.#peers.get(launch.name);
    if (existing?.running) throw new Error(`support peer ${launch.name} is already running`);
    const peer = new SupervisedPeer(launch, {
      dir: join(this.dir, launch.name),
      root: this.dir,
      ...(this.#opts.restart ? { restart: this.#opts.restart } : {}),
      ...(this.#opts.onEvent ? { onEvent: this.#opts.onEvent } : {}),
    });
    this.#peers.set(launch.name, peer);
    try {
      await peer.start(opts);
    } catch (err) {
      await peer.stop(1_000);
      throw err;
    }
    return peer;
  }

  /** Stops one peer; resolves false when there was none. */
  async stopPeer(name: string): Promise<boolean> {
    const peer = this.#peers.get(name);
    if (!peer) return false;
    await peer.stop();
    this.#peers.delete(name);
    return true;
  }

  /** RSS per running peer, for status and benchmarks. */
  rss(): { peer: string; rssBytes: number | undefined }[] {
    return this.peers.map((p) => ({ peer: p.name, rssBytes: p.rssBytes() }));
  }

  /** Stops every peer, then releases (and with removeOnExit, removes) the directory. Idempotent. */
  async stopAll(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.peers.map((p) => p.stop().catch(() => undefined)));
    this.#peers.clear();
    releaseRoot(this.dir, { remove: this.#opts.removeOnExit ?? false });
  }
}
