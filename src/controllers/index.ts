// The registry of reconcilers that `threeport server --role controllers|all`
// runs. Each domain's controller lives in src/controllers/<domain>/ and adds
// its reconcilers here.
//
// THREEPORT_TEST_RECONCILERS (tests and benchmarks only): the path of a compiled
// ES module that exports `reconcilers` (Reconciler[]) and optionally
// `onSettled` (called after each outcome commits). Its reconcilers replace
// built-in ones of the same kind. It lets a test run a real `threeport server`
// child process with a test reconciler, e.g. to kill it mid-reconcile. It is
// read only when set; never set it in production.
import { join } from 'node:path';
import { TEST_RECONCILERS_ENV, importTestReconcilers } from '../reconcile/test-reconcilers.js';
import type { Logger } from 'pino';
import type { Reconciler, Settlement } from '../reconcile/types.js';
import type { ObjectStore } from '../store/object-store.js';
import type { Leases } from '../store/leases.js';
import { KubernetesRuntimeController } from './kubernetes-runtime/index.js';
import { HelmWorkloadController } from './helm-workload/index.js';
import { WorkloadController } from './workload/index.js';
import { AwsController } from './aws/index.js';
import { SecretController } from './secret/index.js';
import { TerraformController, defaultTerraformWorkRoot } from './terraform/index.js';
import { ObservabilityController } from './observability/index.js';
import { ControlPlaneController } from './control-plane/index.js';
import { GatewayController } from './gateway/index.js';
import { DomainNameController } from './gateway/domain-name.js';

export { TEST_RECONCILERS_ENV, testReconcilerKinds } from '../reconcile/test-reconcilers.js';

/** What built-in controllers need from the server. */
export interface ControllerEnvironment {
  dataDir: string;
  logger: Logger;
  /** The OpenTofu executable for the Terraform controller (`--tofu`); default: $THREEPORT_TOFU, the build cache, PATH. */
  tofuPath?: string;
  /** Build OpenTofu on first use when it is missing (`--no-tofu-build` turns it off). */
  tofuAutoBuild?: boolean;
  /** The control plane's own /metrics over plain HTTP, once it listens (observability stacks scrape it). */
  selfMetricsUrl?: () => string | undefined;
}

/** What the server gives controllers at start. */
export interface ControllerContext {
  /** The replicas' named leases (src/store/leases.ts): per-runtime ownership, singleton timers. */
  leases?: Leases;
}

/** A domain's controller: its reconcilers, and work around the reconcile runtime's life. */
export interface Controller {
  readonly reconcilers: readonly Reconciler[];
  /** After the reconcile runtime has started (e.g. bring back local clusters after a restart). */
  start?(store: ObjectStore, context?: ControllerContext): Promise<void>;
  /** After the reconcile runtime has stopped, before the database closes (e.g. stop child processes). */
  stop?(): Promise<void>;
}

/** The controllers this build ships; they arrive domain by domain. */
export function builtInControllers(env: ControllerEnvironment): Controller[] {
  const gateway = new GatewayController({
    dataDir: env.dataDir,
    logger: env.logger.child({ controller: 'gateway' }),
    pinning: (store, runtime) => runtimes.pinning(store, runtime),
  });
  const aws = new AwsController({ logger: env.logger.child({ controller: 'aws' }) });
  const dns = new DomainNameController({
    dataDir: env.dataDir,
    logger: env.logger.child({ controller: 'dns' }),
    aws: aws.deps,
    pinning: (store, runtime) => runtimes.pinning(store, runtime),
  });
  const runtimes: KubernetesRuntimeController = new KubernetesRuntimeController({
    dataDir: env.dataDir,
    logger: env.logger.child({ controller: 'kubernetes-runtime' }),
    onInstanceDeleting: async (id) => {
      await dns.runtimeDeleted(id);
      await gateway.runtimeDeleted(id);
    },
  });
  return [
    runtimes,
    // Child control planes on simulated runtimes live in (and go with) those runtimes' directories.
    new ControlPlaneController({ dataDir: env.dataDir, kwok: runtimes.kwok, logger: env.logger.child({ controller: 'control-plane' }) }),
    gateway,
    dns,
    new HelmWorkloadController({ workRoot: join(env.dataDir, 'helm'), logger: env.logger.child({ controller: 'helm-workload' }) }),
    new WorkloadController({ logger: env.logger.child({ controller: 'workload' }), pinning: (store, runtime) => runtimes.pinning(store, runtime) }),
    new ObservabilityController({
      dataDir: env.dataDir,
      logger: env.logger.child({ controller: 'observability' }),
      ...(env.selfMetricsUrl ? { selfMetricsUrl: env.selfMetricsUrl } : {}),
    }),
    ...awsControllers(env, aws),
  ];
}

/** The AWS, secret, Terraform and DNS controllers share one AWS provider (clients, call counters). */
function awsControllers(env: ControllerEnvironment, aws: AwsController): Controller[] {
  const terraform = new TerraformController({
    aws: aws.deps,
    workRoot: defaultTerraformWorkRoot(env.dataDir),
    logger: env.logger.child({ controller: 'terraform' }),
    ...(env.tofuPath ? { tofuPath: env.tofuPath } : {}),
    ...(env.tofuAutoBuild !== undefined ? { tofuAutoBuild: env.tofuAutoBuild } : {}),
  });
  return [aws, new SecretController({ deps: aws.deps }), terraform];
}

/** The built-in controllers' reconcilers (none without an environment). */
export function builtInReconcilers(env?: ControllerEnvironment): Reconciler[] {
  return env ? builtInControllers(env).flatMap((c) => [...c.reconcilers]) : [];
}

export interface ReconcilerSet {
  reconcilers: Reconciler[];
  /** The built-in controllers in use (their start/stop hooks); none when reconcilers are explicit. */
  controllers: Controller[];
  onSettled?: (settlement: Settlement) => void;
}

/** `explicit` (or the built-ins), plus the test module named by THREEPORT_TEST_RECONCILERS when it is set. */
export async function loadReconcilers(explicit?: readonly Reconciler[], env?: ControllerEnvironment): Promise<ReconcilerSet> {
  const controllers = explicit || !env ? [] : builtInControllers(env);
  const base = [...(explicit ?? controllers.flatMap((c) => [...c.reconcilers]))];
  const path = process.env[TEST_RECONCILERS_ENV];
  if (!path) return { reconcilers: base, controllers };
  const { reconcilers: test, onSettled } = await importTestReconcilers(path);
  const replaced = new Set(test.map((r) => r.kind));
  return {
    reconcilers: [...base.filter((r) => !replaced.has(r.kind)), ...test],
    controllers,
    ...(onSettled ? { onSettled } : {}),
  };
}
