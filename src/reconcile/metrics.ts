// Prometheus metrics of the reconcile queue and the controllers, in the text
// exposition format (prom-client). Queue depth is read from the database at
// scrape time, so an API-only process shows it too; the per-reconcile
// counters and histograms exist where controllers run.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from 'pino';
import type { Database } from '../store/database.js';
import { ReconcileQueue } from '../store/reconcile-queue.js';
import type { Outcome } from './types.js';

export class ReconcileMetrics {
  readonly registry = new Registry();
  readonly reconciles: Counter<'kind' | 'operation' | 'outcome'>;
  readonly errors: Counter<'kind' | 'operation' | 'terminal'>;
  readonly duration: Histogram<'kind' | 'operation' | 'outcome'>;
  readonly leaseLost: Counter<'kind'>;
  readonly #leases = new Set<() => ReadonlyMap<string, number>>();

  constructor(db: Database, options: { log?: Logger; processMetrics?: boolean } = {}) {
    const queue = new ReconcileQueue(db);
    const registers = [this.registry];
    const leases = this.#leases;
    new Gauge({
      name: 'threeport_reconcile_queue_depth',
      help: 'Queued reconcile items per kind, operation and state (ready, delayed, leased, failed)',
      labelNames: ['kind', 'operation', 'state'] as const,
      registers,
      async collect() {
        this.reset();
        try {
          for (const row of await queue.depth()) this.set({ kind: row.kind, operation: row.operation, state: row.state }, row.count);
        } catch (err) {
          options.log?.warn({ err: (err as Error).message }, 'cannot read the reconcile queue depth');
        }
      },
    });
    new Gauge({
      name: 'threeport_reconcile_leases_held',
      help: 'Reconcile items this process holds a lease on (running or about to run), per kind',
      labelNames: ['kind'] as const,
      registers,
      collect() {
        this.reset();
        for (const source of leases) for (const [kind, n] of source()) this.set({ kind }, n);
      },
    });
    this.reconciles = new Counter({
      name: 'threeport_reconciles_total',
      help: 'Finished reconcile attempts per kind, operation and outcome',
      labelNames: ['kind', 'operation', 'outcome'] as const,
      registers,
    });
    this.errors = new Counter({
      name: 'threeport_reconcile_errors_total',
      help: 'Reconcile attempts that failed, per kind and operation; terminal="true" for failures that are not retried',
      labelNames: ['kind', 'operation', 'terminal'] as const,
      registers,
    });
    this.duration = new Histogram({
      name: 'threeport_reconcile_duration_seconds',
      help: 'Time from starting a reconcile to committing its outcome, per kind, operation and outcome',
      labelNames: ['kind', 'operation', 'outcome'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.leaseLost = new Counter({
      name: 'threeport_reconcile_leases_lost_total',
      help: 'Items whose lease expired while this process worked on them (another worker took them)',
      labelNames: ['kind'] as const,
      registers,
    });
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'threeport_' });
  }

  /** The named leases this replica holds (src/store/leases.ts): threeport_lease_owned{lease, holder} 1. */
  trackOwnership(holder: string, held: () => readonly string[]): void {
    new Gauge({
      name: 'threeport_lease_owned',
      help: 'Named leases this controllers replica holds (runtime:<id> = it watches that runtime; singleton:<work>), 1 each',
      labelNames: ['lease', 'holder'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const lease of held()) this.set({ lease, holder }, 1);
      },
    });
  }

  /** A runtime reports the leases it holds through this; returns the unregister function. */
  trackLeases(source: () => ReadonlyMap<string, number>): () => void {
    this.#leases.add(source);
    return () => this.#leases.delete(source);
  }

  observe(kind: string, operation: string, outcome: Outcome, seconds: number): void {
    this.reconciles.inc({ kind, operation, outcome });
    this.duration.observe({ kind, operation, outcome }, seconds);
    if (outcome === 'failed' || outcome === 'terminal') {
      this.errors.inc({ kind, operation, terminal: String(outcome === 'terminal') });
    }
    if (outcome === 'lease-lost') this.leaseLost.inc({ kind });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
