// WorkloadDefinition reconciler (spec §3.1): the definition's YAMLDocument, split into one
// WorkloadResourceDefinition per document, written in one transaction. Beyond upstream, a
// changed document replaces the WRDs, and every instance of the definition applies again: the
// definition owns its instances (src/controllers/graph.ts), so the engine reconciles them once
// this reconcile of the changed spec has committed.
import { ManifestError, splitManifest } from '../../kinds/manifest.js';
import { WorkloadInstance, WorkloadResourceDefinition } from '../../kinds/workload.js';
import type { JsonObject } from '../../kinds/validate.js';
import { TerminalError } from '../../reconcile/errors.js';
import type { ReconcileContext, Reconciler } from '../../reconcile/types.js';
import { canonicalJson } from './resources.js';
import { edgesOf } from '../graph.js';

function byId(a: JsonObject, b: JsonObject): number {
  return Number(a['ID']) - Number(b['ID']);
}

/** Replaces the definition's WRDs when its document changed; returns how many live instances will roll out. */
async function syncResourceDefinitions(ctx: ReconcileContext, definition: JsonObject): Promise<number> {
  let objects: JsonObject[];
  try {
    objects = splitManifest(String(definition['YAMLDocument'] ?? '')) as unknown as JsonObject[];
  } catch (err) {
    if (err instanceof ManifestError) throw new TerminalError(`WorkloadDefinition ${JSON.stringify(definition['Name'])}: ${err.message}`);
    throw err;
  }
  const wanted = objects.map(canonicalJson);
  return ctx.transaction(async (tx) => {
    const current = (await tx.find(WorkloadResourceDefinition, { WorkloadDefinitionID: ctx.id })).sort(byId);
    const same = current.length === wanted.length && current.every((wrd, i) => canonicalJson(wrd['JSONDefinition']) === wanted[i]);
    if (same) return 0;
    for (const wrd of current) await ctx.store.softDelete(WorkloadResourceDefinition, Number(wrd['ID']), tx.client);
    for (const object of objects) await tx.create(WorkloadResourceDefinition, { JSONDefinition: object, WorkloadDefinitionID: ctx.id });
    if (current.length === 0) return 0; // the first split: instances wait for it anyway
    return (await tx.find(WorkloadInstance, { WorkloadDefinitionID: ctx.id })).filter((i) => !i['DeletionScheduled']).length;
  });
}

export function workloadDefinitionReconciler(controller: string): Reconciler {
  const sync = async (ctx: ReconcileContext, definition: JsonObject): Promise<void> => {
    const rolled = await syncResourceDefinitions(ctx, definition);
    if (rolled > 0) {
      await ctx.recordEvent({
        reason: 'DefinitionChanged',
        note: `WorkloadDefinition ${JSON.stringify(definition['Name'])} changed: rolling out to ${rolled} WorkloadInstance${rolled === 1 ? '' : 's'}`,
      });
    }
  };
  return {
    kind: 'WorkloadDefinition',
    controller,
    ...edgesOf('WorkloadDefinition'),
    created: sync,
    // Upstream does nothing; here a changed document replaces the WRDs and rolls out (resync included).
    updated: sync,
    deleted: async (ctx) => {
      await ctx.transaction(async (tx) => {
        for (const wrd of await tx.find(WorkloadResourceDefinition, { WorkloadDefinitionID: ctx.id })) {
          await ctx.store.softDelete(WorkloadResourceDefinition, Number(wrd['ID']), tx.client);
        }
      });
    },
  };
}
