// Child processes of a simulated cluster, and making sure none outlives its owner.
//
// Every component runs in its own process group (detached), so that it and anything it forks
// can be killed together. Three layers:
//  1. explicit stop() from the owner (the runtime provider, or a test's try/finally);
//  2. a process 'exit' handler that SIGKILLs every live group synchronously (and, for
//     throwaway roots, removes them); tests also install SIGINT/SIGTERM/SIGHUP handlers;
//  3. a tiny detached "reaper" bash per root that polls the owner process and, once it is
//     gone (even after SIGKILL), kills the recorded groups (and removes a throwaway root).
// A root is a directory: one per simulated cluster for the control plane, a temp dir for tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FatalPollError } from './http.js';

interface RootEntry {
  reaper: ChildProcess | undefined;
  /** Remove the directory when the owner exits (throwaway test roots). */
  removeOnExit: boolean;
}

const live = new Set<ManagedProcess>();
const liveRoots = new Map<string, RootEntry>();
let exitHandlerInstalled = false;
let signalHandlersInstalled = false;

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

function keepDirs(): boolean {
  return process.env['THREEPORT_KUBE_KEEP_DIR'] === '1';
}

function killAllSync(): void {
  for (const p of live) p.killGroupSync('SIGKILL');
  live.clear();
  for (const [root, { reaper, removeOnExit }] of liveRoots) {
    if (removeOnExit && !keepDirs()) rmSync(root, { recursive: true, force: true });
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

function installExitHandler(): void {
  if (exitHandlerInstalled) return;
  exitHandlerInstalled = true;
  process.on('exit', killAllSync);
}

/**
 * Also kill every managed process on SIGINT/SIGTERM/SIGHUP, then let the signal take its default
 * course. For test processes; a server handles these signals itself and stops its clusters.
 */
export function killChildrenOnSignals(): void {
  if (signalHandlersInstalled) return;
  signalHandlersInstalled = true;
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

/**
 * Registers a root: its processes are killed whenever this process ends, even by SIGKILL. With
 * `removeOnExit` the directory goes too (throwaway test roots); without it, it stays, so that a
 * restarted control plane finds the cluster's state again.
 */
export function registerRoot(root: string, opts: { removeOnExit?: boolean } = {}): void {
  installExitHandler();
  if (liveRoots.has(root)) return;
  const removeOnExit = opts.removeOnExit ?? true;
  // The reaper survives this process (own session), then cleans up after it.
  const script = [
    'P="$1"; F="$2"; R="$3"; RM="$4"',
    'while kill -0 "$P" 2>/dev/null; do sleep 1; done',
    'if [ -f "$F" ]; then while read -r g; do [ -n "$g" ] && kill -KILL -- "-$g" 2>/dev/null; done < "$F"; fi',
    'if [ "$RM" = 1 ] && [ "${THREEPORT_KUBE_KEEP_DIR:-}" != 1 ]; then rm -rf -- "$R"; fi',
  ].join('\n');
  const reaper = spawn(
    'bash',
    ['-c', script, 'threeport-kube-reaper', String(process.pid), pgidFile(root), root, removeOnExit ? '1' : '0'],
    { detached: true, stdio: 'ignore' },
  );
  reaper.unref();
  liveRoots.set(root, { reaper, removeOnExit });
  recordPgids();
}

/** Forgets a root and stops its reaper (its processes must have been stopped already); `remove` deletes it. */
export function releaseRoot(root: string, opts: { remove?: boolean } = {}): void {
  const entry = liveRoots.get(root);
  liveRoots.delete(root);
  if (entry?.reaper?.pid !== undefined) {
    try {
      process.kill(entry.reaper.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if ((opts.remove ?? entry?.removeOnExit ?? true) && !keepDirs()) rmSync(root, { recursive: true, force: true });
}

export interface ManagedProcessSpec {
  name: string;
  bin: string;
  args: string[];
  logPath: string;
  root: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Called when the process ends without stop() having been asked for it. */
  onUnexpectedExit?: (info: string) => void;
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
  private stopping = false;
  private startedAt = 0;

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

  /** Milliseconds since the last start (0 when never started). */
  get uptimeMs(): number {
    return this.startedAt === 0 ? 0 : Date.now() - this.startedAt;
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
    this.stopping = false;
    this.startedAt = Date.now();
    live.add(this);
    this.exitPromise = new Promise<void>((resolve) => {
      const done = (info: string): void => {
        if (this.child === child && this.exitInfo === undefined) {
          this.exitInfo = info;
          if (!this.stopping) this.spec.onUnexpectedExit?.(info);
        }
        live.delete(this);
        recordPgids();
        resolve();
      };
      child.once('exit', (code, signal) => done(signal ? `killed by ${signal}` : `exited with code ${code}`));
      child.once('error', (err) => done(`failed to start: ${err.message}`));
    });
    // The owner must not wait for components (the exit handler kills them).
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

  /**
   * Sends `signal` (SIGTERM by default), then SIGKILL after `graceMs`; resolves once the process
   * has exited. An exit caused by stop() is expected: onUnexpectedExit does not fire for it.
   */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000, opts: { expected?: boolean } = {}): Promise<void> {
    if (!this.running) return;
    this.stopping = opts.expected ?? true;
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
    return processRssBytes(pid);
  }
}

/** VmRSS of a process from /proc, or undefined. */
export function processRssBytes(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

function cmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return undefined;
  }
}

/**
 * Kills process groups left by an earlier owner (e.g. a control plane that was SIGKILLed and
 * restarted before its reaper ran). Only groups whose leader's command line mentions `marker`
 * (the cluster's directory) are touched, so a recycled pid is never hit. Returns the pids killed.
 */
export async function killStaleGroups(pids: readonly number[], marker: string, timeoutMs = 5_000): Promise<number[]> {
  const ours = pids.filter((pid) => pid > 1 && pid !== process.pid && cmdline(pid)?.includes(marker));
  for (const pid of ours) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  }
  const deadline = Date.now() + timeoutMs;
  // A killed child of a dead parent is reaped by init at once; ours (same owner) by Node.
  while (ours.some((pid) => cmdline(pid) !== undefined && !isZombie(pid)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  return ours;
}

function isZombie(pid: number): boolean {
  try {
    return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true;
  }
}
