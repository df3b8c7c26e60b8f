export * from './types.js';
export * from './reachability.js';
export { EksRuntimeProvider, eksDefinitionFields } from './eks.js';
export { KindRuntimeProvider, KIND_UNAVAILABLE_HINT, runCommand, type RunCommand, type CommandResult } from './kind.js';
export { KubeconfigRuntimeProvider } from './kubeconfig.js';
export { KwokRuntimeProvider, RESTARTED_REASON } from './kwok/provider.js';
export { KwokRuntimes, clusterNameFor, type EnsureResult } from './kwok/runtimes.js';
export { KwokCluster, EtcdServer, type Component, type ComponentStatus } from './kwok/cluster.js';
export { findKubeBinaries, buildHint, KubeBinariesMissingError, type KubeBinaries } from './kwok/binaries.js';
