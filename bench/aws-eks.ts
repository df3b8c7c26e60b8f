// bench/aws-eks: the time and the number of AWS API calls it takes to provision a full EKS
// runtime (VPC, subnets, gateways, routes, security group, IAM roles, cluster, OIDC provider,
// node group) against moto, and to delete it; also a resume after a crash at every step, and a
// build at 20% injected throttling. moto answers in about a millisecond and has no CREATING
// phase, so the times are our overhead plus moto's, not AWS's (EKS takes 10+ minutes).
//
//   node dist/bench/aws-eks.js [--runs 5] [--zones 2,3]
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { startFaultProxy, startMoto } from '../test/harness/moto.js';
import { AwsProvider } from '../src/providers/aws/provider.js';
import { deleteEks, eksSteps, provisionEks, type EksSpec } from '../src/providers/aws/eks.js';
import type { ResourceInventory } from '../src/providers/aws/inventory.js';
import { median as medianOf } from './lib/load.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, zones: { type: 'string', default: '2,3' } } });
const RUNS = Number(values.runs);
const ZONES = values.zones.split(',').map(Number);

const account = { ID: 1, Name: 'bench', AccountID: '123456789012', DefaultRegion: 'us-east-1', AccessKeyID: 'AKIAIOSFODNN7EXAMPLE', SecretAccessKey: 'bench-secret' };

interface Phase {
  ms: number;
  calls: number;
  retries: number;
  byOperation: Record<string, number>;
}

async function phase(provider: AwsProvider, work: () => Promise<unknown>): Promise<Phase> {
  provider.stats.reset();
  const t0 = performance.now();
  await work();
  const ms = performance.now() - t0;
  const s = provider.stats.snapshot();
  return { ms, calls: s.calls, retries: s.retries, byOperation: s.byOperation };
}

async function drive<T extends { done: boolean }>(step: () => Promise<T>): Promise<void> {
  for (let i = 0; i < 50; i++) if ((await step()).done) return;
  throw new Error('did not finish in 50 rounds');
}

function median(xs: number[]): number {
  return medianOf(xs);
}

function row(label: string, phases: Phase[]): string {
  const ms = phases.map((p) => p.ms);
  const calls = phases.map((p) => p.calls);
  return `${label.padEnd(42)} ${median(ms).toFixed(0).padStart(6)} ms (min ${Math.min(...ms).toFixed(0)}, max ${Math.max(...ms).toFixed(0)})   ${median(calls).toFixed(0).padStart(4)} calls${
    phases.some((p) => p.retries > 0) ? `   ${median(phases.map((p) => p.retries)).toFixed(0)} retries` : ''
  }`;
}

const moto = await startMoto();
const proxy = await startFaultProxy(moto.url);
try {
  const provider = new AwsProvider({ decrypt: (c) => c, endpoint: moto.url, retry: { maxAttempts: 10, baseDelayMs: 5, maxDelayMs: 40 } });
  const flaky = new AwsProvider({ decrypt: (c) => c, endpoint: proxy.url, retry: { maxAttempts: 10, baseDelayMs: 5, maxDelayMs: 40 } });
  console.log(`bench/aws-eks: moto 5.2.1 on ${moto.url}, ${RUNS} runs each, medians\n`);
  let lastBreakdown: Record<string, number> = {};
  for (const zones of ZONES) {
    const spec: EksSpec = { zoneCount: zones, instanceType: 't3.medium', initialSize: 2, minSize: 0, maxSize: 10 };
    const builds: Phase[] = [];
    const deletes: Phase[] = [];
    const resumes: Phase[] = [];
    const throttled: Phase[] = [];
    for (let run = 0; run < RUNS; run++) {
      await moto.reset();
      const session = provider.session(account);
      const stack = `tp-bench-${zones}-${run}`;
      let inv: ResourceInventory | undefined;
      const save = async (i: ResourceInventory): Promise<void> => {
        inv = structuredClone(i);
      };
      builds.push(await phase(provider, () => drive(() => provisionEks({ session, stack, spec, inventory: inv, save }))));
      lastBreakdown = builds.at(-1)!.byOperation;
      deletes.push(await phase(provider, () => drive(() => deleteEks({ session, stack, spec, inventory: inv, save }))));

      // Crash after every step (the inventory write lost), then resume: the cost of resuming.
      await moto.reset();
      let stored: ResourceInventory | undefined;
      const crashedAt = new Set<string>();
      const steps = eksSteps(spec).length;
      resumes.push(
        await phase(provider, async () => {
          for (let k = 0; k < steps * 2 + 5; k++) {
            const lossy = async (i: ResourceInventory): Promise<void> => {
              const fresh = Object.keys(i.resources).find((key) => !stored?.resources[key] && !crashedAt.has(key));
              if (fresh) {
                crashedAt.add(fresh);
                throw new Error('crash before the inventory write');
              }
              stored = structuredClone(i);
            };
            try {
              if ((await provisionEks({ session, stack, spec, inventory: stored && structuredClone(stored), save: lossy })).done) return;
            } catch {
              // crashed; resume
            }
          }
          throw new Error('resume did not finish');
        }),
      );
      await drive(() => deleteEks({ session, stack, spec, inventory: stored, save: async () => {} }));

      // 20% of requests throttled or 5xx.
      await moto.reset();
      proxy.setRule({ fraction: 0.2, fault: run % 2 === 0 ? 'throttle' : 'unavailable', maxFaults: 1_000 });
      const fs = flaky.session(account);
      let finv: ResourceInventory | undefined;
      throttled.push(
        await phase(flaky, () => drive(() => provisionEks({ session: fs, stack, spec, inventory: finv, save: async (i) => void (finv = structuredClone(i)) }))),
      );
      proxy.setRule(undefined);
      await drive(() => deleteEks({ session: fs, stack, spec, inventory: finv, save: async () => {} }));
    }
    console.log(`ZoneCount ${zones} (${eksSteps(spec).length} steps)`);
    console.log(row('  provision a full EKS runtime', builds));
    console.log(row('  delete it', deletes));
    console.log(row('  provision with a crash after every step', resumes));
    console.log(row('  provision at 20% throttling/5xx', throttled));
    console.log('');
  }
  console.log('AWS calls of one provision (last ZoneCount), by operation:');
  for (const [op, n] of Object.entries(lastBreakdown)) console.log(`  ${op.padEnd(40)} ${n}`);
} finally {
  await proxy.close();
  await moto.stop();
}
