// N workers × M objects: several runtimes (as several controller processes
// would) share one queue. A probe inside the reconciler records every entry
// and exit per object: no object is ever reconciled twice at once, every
// change is reconciled once when changes do not race with reconciles, and
// under racing changes the last reconcile of each object sees its final state.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ControlPlaneDefinition } from '../../src/kinds/control-plane.js';
import { validatePayload } from '../../src/kinds/validate.js';
import { QUEUE_TABLE } from '../../src/store/schema.js';
import type { ReconcileRuntime } from '../../src/reconcile/runtime.js';
import type { ReconcileContext, Reconciler } from '../../src/reconcile/types.js';
import type { JsonObject } from '../../src/kinds/validate.js';
import { Settlements, eventually, resetData, startEnv, startRuntime, type Env } from './helpers.js';

const WORKERS = 3;
const OBJECTS = 200;

let env: Env;
before(async () => {
  env = await startEnv();
  await resetData(env.db);
});
after(async () => {
  await env?.close();
});

class OverlapProbe {
  readonly active = new Map<number, number>();
  readonly overlaps: Array<{ id: number; op: string }> = [];
  readonly runs = new Map<number, Array<{ op: string; name: string }>>();
  maxActive = 0;
  #activeTotal = 0;

  async visit(ctx: ReconcileContext, obj: JsonObject): Promise<void> {
    const id = ctx.id;
    const now = this.active.get(id) ?? 0;
    if (now > 0) this.overlaps.push({ id, op: ctx.operation });
    this.active.set(id, now + 1);
    this.#activeTotal++;
    this.maxActive = Math.max(this.maxActive, this.#activeTotal);
    try {
      // Hold the object for a moment, so that overlaps would have room to happen.
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 4)));
      const list = this.runs.get(id) ?? [];
      list.push({ op: ctx.operation, name: obj['Name'] as string });
      this.runs.set(id, list);
    } finally {
      this.active.set(id, this.active.get(id)! - 1);
      this.#activeTotal--;
    }
  }
}

async function queueEmpty(): Promise<void> {
  await eventually(async () => {
    const { rows } = await env.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${QUEUE_TABLE}`);
    return rows[0]!.n === 0 ? true : undefined;
  }, 'the queue to drain', 60_000);
}

test(`${WORKERS} runtimes × ${OBJECTS} objects: never two reconciles of one object at once, one per change`, async () => {
  const probe = new OverlapProbe();
  const reconciler: Reconciler = {
    kind: 'ControlPlaneDefinition',
    created: (ctx, obj) => probe.visit(ctx, obj),
    updated: (ctx, obj) => probe.visit(ctx, obj),
  };
  const s = new Settlements();
  const runtimes: ReconcileRuntime[] = [];
  for (let i = 0; i < WORKERS; i++) runtimes.push(await startRuntime(env, [reconciler], s, { concurrency: 4, pollIntervalMs: 100 }));
  try {
    // Phase 1: creates, 20 at a time from "API clients".
    const ids: number[] = [];
    for (let i = 0; i < OBJECTS; i += 20) {
      const batch = await Promise.all(
        Array.from({ length: 20 }, (_, j) =>
          env.store.create(ControlPlaneDefinition, validatePayload(ControlPlaneDefinition, { Name: `o${i + j}` }, 'create')),
        ),
      );
      ids.push(...batch.map((json) => (JSON.parse(json) as { ID: number }).ID));
    }
    await queueEmpty();
    for (const id of ids) assert.deepEqual(probe.runs.get(id), [{ op: 'Created', name: `o${ids.indexOf(id)}` }], `object ${id}`);

    // Phase 2: one change per object, all at once: each object reconciled exactly once more.
    await Promise.all(ids.map((id, i) => env.store.patch(ControlPlaneDefinition, id, { Name: `v2-${i}`, Reconciled: false })));
    await queueEmpty();
    ids.forEach((id, i) => assert.deepEqual(probe.runs.get(id)!.slice(1), [{ op: 'Updated', name: `v2-${i}` }], `object ${id}`));

    // Phase 3: changes race with reconciles. Changes coalesce; the last run sees the final state.
    const finalName = new Map<number, string>();
    const patches = new Map<number, number>();
    for (let round = 0; round < 4; round++) {
      const chosen = ids.filter(() => Math.random() < 0.5);
      await Promise.all(
        chosen.map((id) => {
          const name = `v3-${id}-${round}`;
          finalName.set(id, name);
          patches.set(id, (patches.get(id) ?? 0) + 1);
          return env.store.patch(ControlPlaneDefinition, id, { Name: name, Reconciled: false });
        }),
      );
      await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 20)));
    }
    await queueEmpty();
    for (const [id, name] of finalName) {
      const runs = probe.runs.get(id)!.slice(2);
      assert.ok(runs.length >= 1 && runs.length <= patches.get(id)!, `object ${id}: ${runs.length} runs for ${patches.get(id)} changes`);
      assert.equal(runs.at(-1)!.name, name, `object ${id}'s last reconcile saw its final state`);
      assert.equal((await env.store.getObject(ControlPlaneDefinition, id))['Reconciled'], true);
    }

    assert.deepEqual(probe.overlaps, [], 'no object was reconciled by two workers at once');
    assert.ok(probe.maxActive > 1, 'work did run concurrently');
    assert.ok(new Set(s.all.map((x) => x.owner)).size >= 2, 'the work was shared between runtimes');
  } finally {
    await Promise.all(runtimes.map((r) => r.stop()));
  }
});
