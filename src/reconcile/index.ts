// The reconciliation engine: runtime, reconciler contract, retry policy,
// events, choreography helpers and metrics.
export { ReconcileRuntime, RUNTIME_DEFAULTS, type ReconcileRuntimeOptions, type ReconcileRuntimeSettings } from './runtime.js';
export { RetryPolicy, DEFAULT_RETRY, type RetryPolicyInput } from './retry-policy.js';
export { ReconcileError, TerminalError, LeaseLostError, ShutdownError, isTerminal, type EventOverride } from './errors.js';
export { ControllableClock, systemClock, type Clock } from './clock.js';
export { defineReconciler, type Reconciler, type ReconcileContext, type ReconcileResult, type Settlement, type Outcome } from './types.js';
export { StoreTransaction, inTransaction, requestReconcile } from './choreography.js';
export { recordEvent, successReason, failureReason, successNote, controllerName, type EventInput, type EventType } from './events.js';
export { ReconcileMetrics } from './metrics.js';
export { startMetricsServer, type MetricsServer } from './metrics-server.js';
