// What the AWS reconcilers are built from, with the seams tests replace.
import type { Logger } from 'pino';
import type { ObjectStore } from '../../store/object-store.js';
import { AwsProvider, type AwsProviderOptions } from '../../providers/aws/provider.js';
import { EksConnectionResolver, TOKEN_REFRESH_MARGIN_MS, type ClusterConnectionResolver } from '../../providers/aws/connection.js';
import { RdsEndpointResolver, type DatabaseEndpointResolver } from '../../providers/aws/rds.js';
import type { EksPollIntervals } from '../../providers/aws/eks.js';
import { KubeClients } from '../../providers/kube/clients.js';

export interface AwsControllerOptions {
  logger?: Logger;
  /** Provider settings (endpoint, retry policy, ...); `decrypt` defaults to the store's cipher. */
  provider?: Partial<AwsProviderOptions>;
  /** Where a provisioned cluster is reached (default: EKS itself). Tests point it at a local cluster. */
  connectionResolver?: ClusterConnectionResolver;
  /** Where a provisioned database is reached (default: the RDS endpoint). Tests point it at a local PostgreSQL. */
  databaseResolver?: DatabaseEndpointResolver;
  /** Provision an EKS runtime only once something uses it (default true). */
  lazyProvisioning?: boolean;
  /** How often a deferred runtime checks for a first user (default 30 s). */
  lazyCheckIntervalMs?: number;
  /** Refresh the cluster token when it expires within this margin (default 3 min). */
  tokenRefreshMarginMs?: number;
  eksPoll?: Partial<EksPollIntervals>;
  /** How often RDS/S3 look again while AWS works or a dependency is not ready (default 15 s). */
  waitPollMs?: number;
}

export interface AwsControllerDeps {
  provider(store: ObjectStore): AwsProvider;
  /** Clients of the workloads' clusters, for the S3 overlays (kube provider). */
  kube(store: ObjectStore): KubeClients;
  connectionResolver: ClusterConnectionResolver;
  databaseResolver: DatabaseEndpointResolver;
  lazyProvisioning: boolean;
  lazyCheckIntervalMs: number;
  tokenRefreshMarginMs: number;
  eksPoll: Partial<EksPollIntervals>;
  waitPollMs: number;
}

export function controllerDeps(options: AwsControllerOptions = {}): AwsControllerDeps & { current(): AwsProvider | undefined; close(): void } {
  let provider: AwsProvider | undefined;
  let kube: KubeClients | undefined;
  return {
    kube(store) {
      kube ??= new KubeClients({ decrypt: (c) => store.decrypt(c) });
      return kube;
    },
    close() {
      kube?.close();
      kube = undefined;
    },
    // Built on first use: the store (and its cipher) exists only once the server runs.
    provider(store) {
      provider ??= new AwsProvider({
        decrypt: (c) => store.decrypt(c),
        ...(options.logger ? { log: options.logger } : {}),
        ...options.provider,
      });
      return provider;
    },
    current: () => provider,
    connectionResolver: options.connectionResolver ?? new EksConnectionResolver(),
    databaseResolver: options.databaseResolver ?? new RdsEndpointResolver(),
    lazyProvisioning: options.lazyProvisioning ?? true,
    lazyCheckIntervalMs: options.lazyCheckIntervalMs ?? 30_000,
    tokenRefreshMarginMs: options.tokenRefreshMarginMs ?? TOKEN_REFRESH_MARGIN_MS,
    eksPoll: options.eksPoll ?? {},
    waitPollMs: options.waitPollMs ?? 15_000,
  };
}
