// terraform controller (spec §3.7): TerraformDefinition and TerraformInstance reconcilers over the
// Terraform provider (src/providers/terraform), which runs OpenTofu.
//
// Instance Created/Updated: init, plan and, when the plan has changes, apply the definition's
// configuration with the instance's variables and its AwsAccount's credentials (assumed roles
// renewed so they outlast the run); the state (when no backend is configured) and the outputs are
// stored on the instance, encrypted. A changed configuration or variable set, or drift found at a
// resync, is applied. Instance Deleted: destroy from the stored state (or the backend's), then, for
// an s3 backend, remove the state object.
// Definition: Updated re-reconciles its instances (upstream: a no-op), so a changed ConfigDir
// rolls out.
//
// Runs of one instance never overlap: the reconcile runtime leases one item per object, and a run
// that a crash interrupted is waited for and its state adopted (docs/terraform.md).
import { join } from 'node:path';
import { DeleteObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { Logger } from 'pino';
import { TerraformDefinition, TerraformInstance } from '../../kinds/terraform.js';
import type { JsonObject } from '../../kinds/validate.js';
import { describeError, ignoreNotFound } from '../../errors.js';
import { ReconcileError, TerminalError, isTerminal } from '../../reconcile/errors.js';
import type { ReconcileContext, ReconcileResult, Reconciler } from '../../reconcile/types.js';
import { TofuLocator } from '../../providers/terraform/binary.js';
import { TofuError } from '../../providers/terraform/errors.js';
import { TerraformRunner, type BackendInfo, type RunInput, type RunOutcome } from '../../providers/terraform/runner.js';
import type { AwsSession } from '../../providers/aws/provider.js';
import { getOrUndefined, idOf, label, loadAccount } from '../aws/common.js';
import type { AwsControllerDeps } from '../aws/deps.js';
import { edgesOf } from '../graph.js';

export const TERRAFORM_CONTROLLER_NAME = 'TerraformController';

/** Credentials handed to tofu stay valid at least this long (assumed roles are renewed earlier). */
const CREDENTIAL_VALIDITY_MS = 30 * 60_000;

export interface TerraformControllerOptions {
  /** The AWS provider (credentials, endpoint override), shared with the AWS controller. */
  aws: Pick<AwsControllerDeps, 'provider'>;
  /** Workspaces and the provider plugin cache (default <data-dir>/terraform). */
  workRoot: string;
  logger?: Logger;
  /** The tofu executable (server flag --tofu; default $THREEPORT_TOFU, the build cache, PATH). */
  tofuPath?: string;
  /** Build tofu on first use when it is missing (default true unless THREEPORT_TOFU_BUILD=0). */
  tofuAutoBuild?: boolean;
  /** Tests: a locator of their own. */
  tofu?: TofuLocator;
  lockTimeoutMs?: number;
  commandTimeoutMs?: number;
  /** How often a run waiting for an interrupted one looks again (default 3 s). */
  waitPollMs?: number;
}

type Obj = JsonObject;

function decrypted(ctx: ReconcileContext, value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? ctx.store.decrypt(value) : undefined;
}

/** A failure of tofu as a reconcile error: terminal ones show Status Error until the object changes. */
async function asRunError(ctx: ReconcileContext, what: string, err: unknown): Promise<unknown> {
  if (err instanceof TofuError) {
    const e = err.retryable ? new ReconcileError(`${what}: ${err.message}`) : new TerminalError(`${what}: ${err.message}`);
    if (isTerminal(e)) await ctx.patchSelf({ Status: 'Error' }).catch(ignoreNotFound);
    return e;
  }
  return err;
}

export class TerraformController {
  readonly reconcilers: Reconciler[];
  readonly runner: TerraformRunner;
  readonly tofu: TofuLocator;
  readonly #o: TerraformControllerOptions;

  constructor(options: TerraformControllerOptions) {
    this.#o = options;
    this.tofu =
      options.tofu ??
      new TofuLocator({
        ...(options.tofuPath ? { explicit: options.tofuPath } : {}),
        ...(options.tofuAutoBuild !== undefined ? { autoBuild: options.tofuAutoBuild } : {}),
        ...(options.logger ? { log: options.logger } : {}),
      });
    this.runner = new TerraformRunner({
      tofu: this.tofu,
      root: options.workRoot,
      ...(options.logger ? { log: options.logger } : {}),
      ...(options.lockTimeoutMs !== undefined ? { lockTimeoutMs: options.lockTimeoutMs } : {}),
      ...(options.commandTimeoutMs !== undefined ? { commandTimeoutMs: options.commandTimeoutMs } : {}),
    });
    this.reconcilers = [this.#definitionReconciler(), this.#instanceReconciler()];
  }

  #definitionReconciler(): Reconciler {
    return {
      kind: TerraformDefinition.name,
      controller: TERRAFORM_CONTROLLER_NAME,
      // A changed configuration rolls out to the instances: the definition owns them
      // (src/controllers/graph.ts), so the engine reconciles them once it has reconciled the change.
      ...edgesOf(TerraformDefinition.name),
    };
  }

  #instanceReconciler(): Reconciler {
    return {
      kind: TerraformInstance.name,
      controller: TERRAFORM_CONTROLLER_NAME,
      // tofu is CPU- and memory-hungry; two runs at a time per process.
      concurrency: 2,
      created: (ctx, instance) => this.#apply(ctx, instance),
      updated: (ctx, instance) => this.#apply(ctx, instance),
      deleted: (ctx, instance) => this.#destroy(ctx, instance),
    };
  }

  /** What every run needs: configuration, variables, stored state, credentials. */
  async #input(ctx: ReconcileContext, instance: Obj, what: string): Promise<{ input: RunInput; session: AwsSession }> {
    const def = await getOrUndefined(ctx.store, TerraformDefinition, idOf(instance, 'TerraformDefinitionID'));
    if (!def) throw new TerminalError(`${what}: its TerraformDefinition ${String(instance['TerraformDefinitionID'])} does not exist`);
    const config = def['ConfigDir'];
    if (typeof config !== 'string' || !config.trim()) throw new TerminalError(`${what}: ${label(TerraformDefinition.name, def)} has an empty ConfigDir`);
    const account = await loadAccount(ctx.store, idOf(instance, 'AwsAccountID'), what);
    const provider = this.#o.aws.provider(ctx.store);
    const session = provider.session(account);
    let creds;
    creds = await session.credentials({ minValidityMs: CREDENTIAL_VALIDITY_MS });
    const env: Record<string, string> = {
      AWS_ACCESS_KEY_ID: creds.accessKeyId,
      AWS_SECRET_ACCESS_KEY: creds.secretAccessKey,
      AWS_REGION: session.region,
      AWS_DEFAULT_REGION: session.region,
      ...(creds.sessionToken ? { AWS_SESSION_TOKEN: creds.sessionToken } : {}),
      // The endpoint override (tests: moto) applies to tofu's AWS calls too.
      ...(provider.endpoint ? { AWS_ENDPOINT_URL: provider.endpoint } : {}),
    };
    const id = idOf(instance)!;
    const input: RunInput = {
      instanceId: id,
      config,
      vars: decrypted(ctx, instance['VarsDocument']),
      storedState: decrypted(ctx, instance['StateDocument']),
      env,
      secrets: [creds.accessKeyId, creds.secretAccessKey, creds.sessionToken ?? ''].filter((s) => s !== ''),
      signal: ctx.signal,
      saveState: async (state) => {
        await ctx.patchSelf({ StateDocument: state });
      },
      progress: async (reason, note) => {
        if (reason === 'TerraformPlanned') await ctx.patchSelf({ Status: 'Applying' });
        await ctx.recordEvent({ reason, note });
      },
    };
    return { input, session };
  }

  /** The reconcile's answer while tofu cannot run yet (building, or an interrupted run still going). */
  async #notYet(ctx: ReconcileContext, instance: Obj, outcome: Exclude<RunOutcome, { status: 'done' }>): Promise<ReconcileResult> {
    if (outcome.status === 'waiting') {
      if (instance['Status'] !== 'Waiting') await ctx.patchSelf({ Status: 'Waiting' });
      await ctx.recordEvent({ reason: 'WaitingForInterruptedRun', note: outcome.reason });
      return { requeueAfterMs: this.#o.waitPollMs ?? 3_000 };
    }
    const minutes = Math.round((Date.now() - outcome.since) / 60_000);
    await ctx.patchSelf({ Status: 'Waiting' });
    await ctx.recordEvent({
      reason: 'BuildingOpenTofu',
      note: 'OpenTofu is not installed on this controller, so it is being built on first use (about 23 minutes on 2 cores; progress in the server log)',
    });
    ctx.log.info({ minutes, lastLine: outcome.lastLine }, 'waiting for the OpenTofu build');
    return { requeueAfterMs: 30_000 };
  }

  async #apply(ctx: ReconcileContext, instance: Obj): Promise<ReconcileResult> {
    const what = label(TerraformInstance.name, instance);
    const { input } = await this.#input(ctx, instance, what);
    let outcome: RunOutcome;
    try {
      outcome = await this.runner.apply(input);
    } catch (err) {
      throw await asRunError(ctx, what, err);
    }
    if (outcome.status !== 'done') return this.#notYet(ctx, instance, outcome);
    const current = decrypted(ctx, instance['Outputs']);
    const status = outcome.changed || instance['Status'] !== 'Applied' ? 'Applied' : undefined;
    const changes: Obj = {};
    if (outcome.outputs !== undefined && outcome.outputs !== current) changes['Outputs'] = outcome.outputs;
    if (status) changes['Status'] = status;
    if (Object.keys(changes).length > 0) await ctx.patchSelf(changes);
    if (outcome.changed) await ctx.recordEvent({ reason: 'TerraformApplied', note: outcome.summary });
    ctx.log.info({ changed: outcome.changed, backend: outcome.backend.type }, outcome.summary);
    return;
  }

  async #destroy(ctx: ReconcileContext, instance: Obj): Promise<ReconcileResult> {
    const what = label(TerraformInstance.name, instance);
    const { input, session } = await this.#input(ctx, instance, what);
    let outcome: RunOutcome;
    try {
      outcome = await this.runner.destroy(input);
    } catch (err) {
      throw await asRunError(ctx, what, err);
    }
    if (outcome.status !== 'done') return this.#notYet(ctx, instance, outcome);
    let note = outcome.summary;
    if (outcome.backend.type === 's3') {
      note += ` ${await removeS3State(session, outcome.backend, ctx.signal)}`;
    } else if (outcome.backend.type !== 'local') {
      note += ` The (now empty) state stays in the ${outcome.backend.type} backend.`;
    }
    await ctx.recordEvent({ reason: 'TerraformDestroyed', note });
    return;
  }
}

/**
 * After a successful destroy, the s3 backend still holds an empty state object: remove it (and a
 * lock file left behind), so deleting the instance leaves nothing. Only the default workspace's key.
 */
async function removeS3State(session: AwsSession, backend: BackendInfo, signal: AbortSignal): Promise<string> {
  const c = backend.config;
  const bucket = typeof c['bucket'] === 'string' ? c['bucket'] : undefined;
  const key = typeof c['key'] === 'string' ? c['key'] : undefined;
  if (!bucket || !key) return 'The s3 backend names no bucket and key; its state was left in place.';
  const endpoints = (c['endpoints'] ?? {}) as Record<string, unknown>;
  const endpoint = typeof endpoints['s3'] === 'string' && endpoints['s3'] ? (endpoints['s3'] as string) : undefined;
  const region = typeof c['region'] === 'string' && c['region'] ? (c['region'] as string) : session.region;
  const client = endpoint
    ? new S3Client({ region, endpoint, credentials: session.credentials, forcePathStyle: c['use_path_style'] === true })
    : region === session.region
      ? session.s3
      : session.provider.client('s3', region, session.credentials);
  try {
    for (const k of [key, `${key}.tflock`]) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: k }), { abortSignal: signal });
    return `The state object s3://${bucket}/${key} was removed.`;
  } catch (err) {
    throw new ReconcileError(`destroy succeeded, but removing the state object s3://${bucket}/${key} failed: ${session.provider.scrub(describeError(err))}`);
  } finally {
    if (endpoint) client.destroy();
  }
}

export function defaultTerraformWorkRoot(dataDir: string): string {
  return join(dataDir, 'terraform');
}
