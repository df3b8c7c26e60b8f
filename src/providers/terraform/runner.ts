// The Terraform provider: runs OpenTofu's init, plan and apply (or destroy) for one
// TerraformInstance in a per-run workspace, and hands back the state and the outputs.
//
// State lives in one of two places, decided by the configuration:
// - no `backend` block: on the instance (StateDocument, encrypted). The stored state is written
//   into the workspace before plan, and read back after every run, failed ones included;
// - a backend (e.g. s3 with use_lockfile): in the backend, which locks it. A snapshot
//   (`tofu state pull`) is still stored on the instance after every run, for visibility; the
//   backend stays authoritative. A backend that has never held state for this key gets the stored
//   state first (`tofu state push`), so moving a configuration from local state to a backend keeps
//   its resources instead of creating them again.
//
// A run interrupted by a crash leaves its workspace behind (see workspace.ts). The next run of the
// instance waits while that tofu still runs (it finishes its operations and writes its state: to
// the backend, or to the workspace's state file), then adopts the newer local state, so a resumed
// apply plans from what was really created and makes no duplicates.
import { join } from 'node:path';
import { rmSync } from 'node:fs';
import type { Logger } from 'pino';
import { TofuCommandError, TofuError } from './errors.js';
import { TofuScrubber, variableValues } from './scrub.js';
import { TofuWorkspace, leftovers } from './workspace.js';
import type { TofuLocator } from './binary.js';

export interface RunInput {
  instanceId: number;
  /** The configuration: the contents of every .tf file (TerraformDefinition.ConfigDir). */
  config: string;
  /** The variables document (tfvars HCL or JSON), decrypted. */
  vars?: string | undefined;
  /** The state stored on the instance, decrypted. */
  storedState?: string | undefined;
  /** Environment for tofu: the AWS account's credentials, region, endpoint. */
  env: Record<string, string>;
  /** Values to mask in every message (credentials). */
  secrets: string[];
  signal?: AbortSignal;
  /** Called with the state as soon as it is known, before anything else happens: persist it. */
  saveState(state: string): Promise<void>;
  /** Progress for events users read (plan summaries, waiting for an interrupted run). */
  progress?(reason: string, note: string): Promise<void>;
}

export type RunOutcome =
  | { status: 'done'; changed: boolean; summary: string; outputs: string | undefined; backend: BackendInfo }
  | { status: 'waiting'; reason: string }
  | { status: 'tofu-building'; since: number; lastLine: string };

export interface BackendInfo {
  /** "local" when the state lives on the instance. */
  type: string;
  /** The backend's settings (from .terraform/terraform.tfstate), e.g. bucket and key for s3. */
  config: Record<string, unknown>;
}

export interface TerraformRunnerOptions {
  tofu: TofuLocator;
  /** Workspaces and the plugin cache live here (e.g. <data-dir>/terraform). */
  root: string;
  log?: Logger;
  /** How long plan/apply/destroy wait for a state lock held by another run (default 60 s). */
  lockTimeoutMs?: number;
  /** Per-command limit before tofu is asked to stop (default 60 min). */
  commandTimeoutMs?: number;
}

interface StateShape {
  serial?: number;
  lineage?: string;
  resources?: unknown[];
}

function parseState(text: string | undefined): StateShape | undefined {
  if (!text || !text.trim()) return undefined;
  try {
    const s = JSON.parse(text) as StateShape;
    return typeof s === 'object' && s !== null ? s : undefined;
  } catch {
    return undefined;
  }
}

function resourceCount(text: string | undefined): number {
  const r = parseState(text)?.resources;
  return Array.isArray(r) ? r.length : 0;
}

/** Whether `candidate` is a later version of `current` (or `current` is empty). */
export function isNewerState(candidate: string | undefined, current: string | undefined): boolean {
  const c = parseState(candidate);
  if (!c) return false;
  const s = parseState(current);
  if (!s) return true;
  if (s.lineage && c.lineage && s.lineage !== c.lineage) return false;
  return (c.serial ?? 0) > (s.serial ?? 0);
}

function lastLine(text: string, pattern: RegExp): string | undefined {
  return text.split('\n').reverse().find((l) => pattern.test(l))?.trim();
}

export class TerraformRunner {
  readonly #o: TerraformRunnerOptions;

  constructor(options: TerraformRunnerOptions) {
    this.#o = options;
  }

  get runsDir(): string {
    return join(this.#o.root, 'runs');
  }

  #lockArg(): string {
    return `-lock-timeout=${Math.round((this.#o.lockTimeoutMs ?? 60_000) / 1000)}s`;
  }

  /**
   * Earlier runs of the instance that a crash interrupted: wait while their tofu runs; then adopt
   * their local state when it is newer than the stored one, and remove them.
   */
  async #settleLeftovers(input: RunInput): Promise<{ waiting: string } | { stored: string | undefined }> {
    let stored = input.storedState;
    // One reconcile per object runs at a time, so every workspace of the instance found here is a leftover.
    const found = leftovers(this.runsDir, input.instanceId);
    const running = found.find((l) => l.runningPid !== undefined);
    if (running) {
      return {
        waiting: `an earlier run of this instance (tofu ${running.record?.command ?? ''}, pid ${running.runningPid}) is still running; waiting for it to finish and write its state`,
      };
    }
    for (const l of found) {
      if (isNewerState(l.state, stored)) {
        await input.saveState(l.state!);
        stored = l.state;
        this.#o.log?.warn({ instance: input.instanceId, workspace: l.dir }, 'adopted the state an interrupted run left behind');
        await input.progress?.('TerraformStateRecovered', 'adopted the state written by an interrupted run of tofu');
      }
      rmSync(l.dir, { recursive: true, force: true });
    }
    return { stored };
  }

  #open(input: RunInput, tofu: string): TofuWorkspace {
    const scrubber = new TofuScrubber();
    scrubber.addSecret(...input.secrets);
    if (input.vars) {
      scrubber.addSecret(input.vars);
      scrubber.addValues(variableValues(input.vars));
    }
    const ws = TofuWorkspace.open({
      tofu,
      root: this.runsDir,
      instanceId: input.instanceId,
      pluginCacheDir: join(this.#o.root, 'plugin-cache'),
      env: input.env,
      scrubber,
    });
    ws.writeFile('main.tf', input.config);
    return ws;
  }

  #varArgs(ws: TofuWorkspace, vars: string | undefined): string[] {
    if (!vars || !vars.trim()) return [];
    const name = vars.trim().startsWith('{') ? 'threeport.tfvars.json' : 'threeport.tfvars';
    ws.writeFile(name, vars);
    return [`-var-file=${name}`];
  }

  #backend(ws: TofuWorkspace): BackendInfo {
    const meta = parseJson(ws.readFile(join('.terraform', 'terraform.tfstate')));
    const backend = meta?.['backend'] as { type?: string; config?: Record<string, unknown> } | undefined;
    return backend?.type ? { type: backend.type, config: backend.config ?? {} } : { type: 'local', config: {} };
  }

  async #currentState(ws: TofuWorkspace, backend: BackendInfo, signal?: AbortSignal): Promise<string | undefined> {
    if (backend.type === 'local') return ws.readFile('terraform.tfstate');
    const pulled = await ws.run(['state', 'pull'], signal ? { signal } : {});
    return pulled.stdout.trim() ? pulled.stdout : undefined;
  }

  /** Common start of apply and destroy: the binary, leftovers, a workspace, init, the state in place. */
  async #prepare(input: RunInput): Promise<
    | { ready: false; outcome: RunOutcome }
    | { ready: true; ws: TofuWorkspace; backend: BackendInfo; stored: string | undefined; varArgs: string[] }
  > {
    const found = this.#o.tofu.resolve();
    if (found.state === 'building') return { ready: false, outcome: { status: 'tofu-building', since: found.since, lastLine: found.lastLine } };
    const settled = await this.#settleLeftovers(input);
    if ('waiting' in settled) return { ready: false, outcome: { status: 'waiting', reason: settled.waiting } };
    const ws = this.#open(input, found.binary.path);
    try {
      const varArgs = this.#varArgs(ws, input.vars);
      const sig = input.signal ? { signal: input.signal } : {};
      await ws.run(['init', '-input=false', '-no-color', this.#lockArg()], sig);
      const backend = this.#backend(ws);
      if (backend.type === 'local') {
        if (parseState(settled.stored)) ws.writeFile('terraform.tfstate', settled.stored!);
      } else if (parseState(settled.stored) && resourceCount(settled.stored) > 0) {
        const remote = await ws.run(['state', 'pull'], sig);
        if (!remote.stdout.trim()) {
          ws.writeFile('migrate.tfstate', settled.stored!);
          await ws.run(['state', 'push', this.#lockArg(), 'migrate.tfstate'], sig);
          await input.progress?.('TerraformStateMigrated', `the stored state was pushed to the ${backend.type} backend, which held none yet`);
        }
      }
      return { ready: true, ws, backend, stored: settled.stored, varArgs };
    } catch (err) {
      if (!ws.busy) ws.close();
      throw err;
    }
  }

  /** Persists the state after a run, failed ones included; false when it could not be read or stored. */
  async #persist(ws: TofuWorkspace, backend: BackendInfo, stored: string | undefined, input: RunInput): Promise<boolean> {
    if (ws.busy) return false; // tofu outlived an abort: the next run waits for it and adopts its state
    const state = await this.#currentState(ws, backend);
    if (state !== undefined && state !== stored) await input.saveState(state);
    return true;
  }

  /**
   * Removes the workspace once tofu has exited and its state is stored (a backend holds the state
   * anyway); otherwise it stays for the next run to adopt.
   */
  #close(ws: TofuWorkspace, backend: BackendInfo, saved: boolean): void {
    if (!ws.busy && (saved || backend.type !== 'local')) ws.close();
  }

  /** init, plan, and apply when the plan has changes; then the outputs. */
  async apply(input: RunInput): Promise<RunOutcome> {
    const p = await this.#prepare(input);
    if (!p.ready) return p.outcome;
    const { ws, backend, stored, varArgs } = p;
    const sig = input.signal ? { signal: input.signal } : {};
    const limit = this.#o.commandTimeoutMs ? { timeoutMs: this.#o.commandTimeoutMs } : {};
    let changed = false;
    let summary = 'No changes.';
    let outputs: string | undefined;
    let failure: unknown;
    let saved = false;
    try {
      try {
        const plan = await ws.run(['plan', '-input=false', '-no-color', '-detailed-exitcode', this.#lockArg(), '-out=tfplan', ...varArgs], {
          ...sig,
          ...limit,
          okCodes: [0, 2],
        });
        if (plan.code === 2) {
          await input.progress?.('TerraformPlanned', lastLine(plan.stdout, /^Plan: /) ?? 'changes planned');
          const applied = await ws.run(['apply', '-input=false', '-no-color', this.#lockArg(), 'tfplan'], { ...sig, ...limit });
          changed = true;
          summary = lastLine(applied.stdout, /^Apply complete!/) ?? 'Apply complete.';
        }
      } catch (err) {
        failure = err;
      }
      try {
        saved = await this.#persist(ws, backend, stored, input);
      } catch (err) {
        failure ??= err;
      }
      if (failure) throw failure;
      const out = await ws.run(['output', '-json', '-no-color'], sig);
      outputs = out.stdout.trim() || '{}';
    } finally {
      this.#close(ws, backend, saved);
    }
    return { status: 'done', changed, summary, outputs, backend };
  }

  /** Destroys what the state holds. Returns undefined when there is nothing to destroy (no state). */
  async destroy(input: RunInput): Promise<RunOutcome> {
    const p = await this.#prepare(input);
    if (!p.ready) return p.outcome;
    const { ws, backend, stored, varArgs } = p;
    if (backend.type === 'local' && !parseState(stored)) {
      ws.close();
      return { status: 'done', changed: false, summary: 'No state: nothing to destroy.', outputs: undefined, backend };
    }
    let summary = 'Destroy complete.';
    let failure: unknown;
    try {
      const out = await ws.run(['destroy', '-auto-approve', '-input=false', '-no-color', this.#lockArg(), ...varArgs], {
        ...(input.signal ? { signal: input.signal } : {}),
        ...(this.#o.commandTimeoutMs ? { timeoutMs: this.#o.commandTimeoutMs } : {}),
      });
      summary = lastLine(out.stdout, /^Destroy complete!/) ?? summary;
    } catch (err) {
      failure = err;
    }
    let saved = false;
    try {
      saved = await this.#persist(ws, backend, stored, input);
    } catch (err) {
      failure ??= err;
    } finally {
      this.#close(ws, backend, saved);
    }
    if (failure) throw failure;
    return { status: 'done', changed: true, summary, outputs: undefined, backend };
  }
}

function parseJson(text: string | undefined): Record<string, unknown> | undefined {
  if (!text) return undefined;
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

export { TofuError, TofuCommandError };
