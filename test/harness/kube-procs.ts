// Child-process bookkeeping for the Kubernetes test harness.
//
// Every component runs in its own process group (detached) so that it and anything it forks can
// be killed together. Three layers make sure nothing outlives the test process:
//  1. explicit stop() / stopAll() from the tests (try/finally);
//  2. a process 'exit' handler plus SIGINT/SIGTERM/SIGHUP handlers that SIGKILL every live group
//     and remove the temp dirs synchronously;
//  3. a tiny detached "reaper" bash per temp root that polls the test process and, once it is
//     gone (even after SIGKILL), kills the recorded groups and removes the temp root.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { FatalPollError } from './kube-http.js';
import { join } from 'node:path';

const live = new Set<ManagedProcess>();
const liveRoots = new Map<string, { reaper: ChildProcess | undefined }>();
let handlersInstalled = false;

function pgidFile(root: string): string {
  return join(root, '.pgids');
}

function recordPgids(): void {
  for (const root of liveRoots.keys()) {
    const pgids = [...live].filter((p) => p.root === root && p.pid !== undefined).map((p) => p.pid);
    try {
      writeFileSync(pgidFile(root), pgids.join('\n') + '\n');
    } catch {
      // the root is being removed
    }
  }
}

function killAllSync(): void {
  for (const p of live) p.killGroupSync('SIGKILL');
  live.clear();
  for (const [root, { reaper }] of liveRoots) {
    if (process.env.THREEPORT_KUBE_KEEP_DIR !== '1') rmSync(root, { recursive: true, force: true });
    if (reaper?.pid !== undefined) {
      try {
        process.kill(reaper.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  liveRoots.clear();
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killAllSync);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAllSync();
      process.removeListener(sig, onSignal);
      // Let the default action (or other handlers) run as if we had not been here.
      if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
    };
    process.on(sig, onSignal);
  }
}

/** Registers a temp root: it is removed, and its processes killed, whenever the test process ends. */
export function registerRoot(root: string): void {
  installHandlers();
  // The reaper survives the test process (own session), then cleans up after it.
  const script = [
    'P="$1"; F="$2"; R="$3"',
    'while kill -0 "$P" 2>/dev/null; do sleep 1; done',
    'if [ -f "$F" ]; then while read -r g; do [ -n "$g" ] && kill -KILL -- "-$g" 2>/dev/null; done < "$F"; fi',
    'if [ "${THREEPORT_KUBE_KEEP_DIR:-}" != 1 ]; then rm -rf -- "$R"; fi',
  ].join('\n');
  const reaper = spawn('bash', ['-c', script, 'threeport-kube-reaper', String(process.pid), pgidFile(root), root], {
    detached: true,
    stdio: 'ignore',
  });
  reaper.unref();
  liveRoots.set(root, { reaper });
  recordPgids();
}

/** Removes a temp root and stops its reaper (its processes must have been stopped already). */
export function releaseRoot(root: string): void {
  const entry = liveRoots.get(root);
  liveRoots.delete(root);
  if (entry?.reaper?.pid !== undefined) {
    try {
      process.kill(entry.reaper.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (process.env.THREEPORT_KUBE_KEEP_DIR !== '1') rmSync(root, { recursive: true, force: true });
}

export interface ManagedProcessSpec {
  name: string;
  bin: string;
  args: string[];
  logPath: string;
  root: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

/** One component process; can be started again after it stopped (same args). */
export class ManagedProcess {
  readonly name: string;
  readonly root: string;
  readonly logPath: string;
  private readonly spec: ManagedProcessSpec;
  private child: ChildProcess | undefined;
  private exitPromise: Promise<void> = Promise.resolve();
  private exitInfo: string | undefined;

  constructor(spec: ManagedProcessSpec) {
    this.spec = spec;
    this.name = spec.name;
    this.root = spec.root;
    this.logPath = spec.logPath;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.exitInfo === undefined;
  }

  /** Why the process ended (undefined while running or never started). */
  get exited(): string | undefined {
    return this.exitInfo;
  }

  start(): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    const fd = openSync(this.logPath, 'a');
    writeFileSync(fd, `\n===== ${new Date().toISOString()} start ${this.spec.bin} ${this.spec.args.join(' ')}\n`);
    let child: ChildProcess;
    try {
      child = spawn(this.spec.bin, this.spec.args, {
        detached: true,
        stdio: ['ignore', fd, fd],
        env: this.spec.env ?? process.env,
        cwd: this.spec.cwd,
      });
    } finally {
      closeSync(fd);
    }
    this.child = child;
    this.exitInfo = undefined;
    live.add(this);
    this.exitPromise = new Promise<void>((resolve) => {
      const done = (info: string): void => {
        if (this.child === child && this.exitInfo === undefined) this.exitInfo = info;
        live.delete(this);
        recordPgids();
        resolve();
      };
      child.once('exit', (code, signal) => done(signal ? `killed by ${signal}` : `exited with code ${code}`));
      child.once('error', (err) => done(`failed to start: ${err.message}`));
    });
    // The test process must not wait for components (the exit handler kills them).
    child.unref();
    recordPgids();
  }

  killGroupSync(signal: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (pid === undefined || this.exitInfo !== undefined) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // group already gone
    }
  }

  /** SIGTERM (or `signal`), then SIGKILL after `graceMs`; resolves once the process has exited. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000): Promise<void> {
    if (!this.running) return;
    this.killGroupSync(signal);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.exitPromise.then(() => false),
      new Promise<boolean>((r) => {
        timer = setTimeout(() => r(true), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      this.killGroupSync('SIGKILL');
      // A timer keeps the event loop alive while waiting (the child handle is unref'd).
      await Promise.race([this.exitPromise, new Promise((r) => setTimeout(r, 10_000))]);
    }
    // Children in the group (none expected) go too.
    const pid = this.child?.pid;
    if (pid !== undefined) {
      try {
        process.kill(-pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }

  /** Last `lines` lines of the log, for error messages. */
  logTail(lines = 25): string {
    if (!existsSync(this.logPath)) return '(no log)';
    const text = readFileSync(this.logPath, 'utf8').trimEnd().split('\n');
    return text.slice(-lines).join('\n');
  }

  /** Throws if the process has died (with the end of its log). */
  assertRunning(): void {
    if (this.exitInfo !== undefined) {
      throw new FatalPollError(`${this.name} ${this.exitInfo}; end of ${this.logPath}:\n${this.logTail()}`);
    }
  }

  /** Resident set size in bytes from /proc, or undefined. */
  rssBytes(): number | undefined {
    const pid = this.pid;
    if (pid === undefined || !this.running) return undefined;
    try {
      const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      return m ? Number(m[1]) * 1024 : undefined;
    } catch {
      return undefined;
    }
  }
}

const handedOut = new Set<number>();

/** A currently free TCP port on 127.0.0.1, never handed out twice by this process. */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.unref();
      srv.on('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const addr = srv.address();
        const p = typeof addr === 'object' && addr !== null ? addr.port : 0;
        srv.close(() => resolve(p));
      });
    });
    if (port > 0 && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('could not find a free port on 127.0.0.1');
}
