// The dashboard's server side against a real API server and PostgreSQL (embedded and external):
// the change feed (one LISTEN connection, replay after Last-Event-ID, reset when it cannot
// replay), the dependency graph derived from the kind declarations with its delete plan, and
// field redaction. The browser tests are in dashboard.test.ts.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { BACKENDS, call, startTestApi, type TestApi } from '../harness/api-server.js';
import { until } from '../harness/until.js';
import type { ObjectDetail, ObjectGraph } from '../../src/dashboard/api-types.js';

interface Frame {
  id?: string;
  event?: string;
  data?: string;
}

/** An event-stream client that collects frames. */
function stream(url: string, lastEventId?: string): { frames: Frame[]; close(): void; ready: Promise<void> } {
  const frames: Frame[] = [];
  let req: http.ClientRequest;
  const ready = new Promise<void>((resolve, reject) => {
    req = http.get(`${url}/dashboard/api/events`, { headers: lastEventId ? { 'last-event-id': lastEventId } : {} }, (res) => {
      assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8');
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        buf += c;
        let at;
        while ((at = buf.indexOf('\n\n')) >= 0) {
          const f: Frame = {};
          for (const line of buf.slice(0, at).split('\n')) {
            const [k, ...v] = line.split(': ');
            if (k === 'id' || k === 'event' || k === 'data') f[k] = v.join(': ');
          }
          buf = buf.slice(at + 2);
          if (f.event) frames.push(f);
          if (f.event === 'hello' || f.event === 'reset' || f.event === 'change') resolve();
        }
      });
    });
    req.on('error', reject);
  });
  return { frames, ready, close: () => req.destroy() };
}

async function listenConnections(api: TestApi): Promise<number> {
  const res = await api.server.db.query(
    `SELECT count(*)::int AS n FROM pg_stat_activity WHERE query ILIKE 'LISTEN threeport_objects%'`,
  );
  return (res.rows[0] as { n: number }).n;
}

for (const backend of BACKENDS) {
  describe(`dashboard server routes (${backend})`, () => {
    let api: TestApi;
    before(async () => {
      api = await startTestApi(backend);
    });
    after(async () => api?.stop());

    const post = async (plural: string, body: unknown) => {
      const r = await call(api, 'POST', `/v0/${plural}`, body);
      assert.equal(r.status, 201, r.text);
      return r.body.Data![0]! as { ID: number } & Record<string, unknown>;
    };

    it('streams every object write with kind and id to all clients over one LISTEN connection, and replays after Last-Event-ID', async () => {
      const a = stream(api.url);
      const b = stream(api.url);
      await Promise.all([a.ready, b.ready]);
      assert.equal(a.frames[0]!.event, 'hello');
      const profile = await post('profiles', { Name: 'p1' });
      const patched = await call(api, 'PATCH', `/v0/profiles/${profile.ID}`, { Name: 'p1-renamed' });
      assert.equal(patched.status, 200);
      for (const s of [a, b]) {
        await until('two changes', () => (s.frames.filter((f) => f.event === 'change').length >= 2 ? true : undefined));
        assert.deepEqual(
          s.frames.filter((f) => f.event === 'change').map((f) => JSON.parse(f.data!)),
          [{ kind: 'Profile', id: profile.ID, op: 'C' }, { kind: 'Profile', id: profile.ID, op: 'U' }],
        );
      }
      assert.equal(await listenConnections(api), 1, 'one database connection for all browsers');
      // b goes away after the first change; two more changes happen; it comes back with its last ID.
      const lastSeen = b.frames.find((f) => f.event === 'change')!.id!;
      b.close();
      a.close();
      const deleted = await call(api, 'DELETE', `/v0/profiles/${profile.ID}`);
      assert.equal(deleted.status, 200);
      const back = stream(api.url, lastSeen);
      await back.ready;
      await until('replayed', () => (back.frames.filter((f) => f.event === 'change').length >= 2 ? true : undefined));
      assert.deepEqual(
        back.frames.filter((f) => f.event === 'change').map((f) => JSON.parse(f.data!).op),
        ['U', 'D'],
        'exactly the missed changes, in order',
      );
      back.close();
      // An ID from another feed (a restarted server) cannot be replayed: the page is told to reload.
      const stale = stream(api.url, 'deadbeef-3');
      await stale.ready;
      assert.equal(stale.frames[0]!.event, 'reset');
      stale.close();
    });

    it('after losing its LISTEN connection the feed reconnects and tells every page to reload (changes may have gone unseen)', async () => {
      const s = stream(api.url);
      await s.ready;
      await api.server.db.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query ILIKE 'LISTEN threeport_objects%'`);
      await until('reset after the reconnect', () => (s.frames.some((f) => f.event === 'reset') ? true : undefined), 30_000);
      const profile = await post('profiles', { Name: 'after-reconnect' });
      await until('a change after the reconnect', () =>
        s.frames.some((f) => f.event === 'change' && JSON.parse(f.data!).id === profile.ID) ? true : undefined,
      );
      assert.equal(await listenConnections(api), 1);
      s.close();
    });

    it('answers the dependency graph of an app in one call, derived from the reference fields, with the delete plan in order', async () => {
      const krd = await post('kubernetes-runtime-definitions', { Name: 'g-krd', InfraProvider: 'kwok' });
      const kri = await post('kubernetes-runtime-instances', { Name: 'g-kri', Location: 'Local', KubernetesRuntimeDefinitionID: krd.ID });
      const wd = await post('workload-definitions', { Name: 'g-wd', YAMLDocument: 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n' });
      const db = await post('workload-instances', { Name: 'g-db', KubernetesRuntimeInstanceID: kri.ID, WorkloadDefinitionID: wd.ID });
      const app = await post('workload-instances', { Name: 'g-app', KubernetesRuntimeInstanceID: kri.ID, WorkloadDefinitionID: wd.ID, DependsOn: [db.ID] });
      const web = await post('workload-instances', { Name: 'g-web', KubernetesRuntimeInstanceID: kri.ID, WorkloadDefinitionID: wd.ID, DependsOn: [app.ID] });
      const other = await post('workload-instances', { Name: 'g-other', KubernetesRuntimeInstanceID: kri.ID, WorkloadDefinitionID: wd.ID });
      const sd = await post('secret-definitions', { Name: 'g-sd', Data: { password: 'hunter2' } });
      const si = await post('secret-instances', { Name: 'g-si', SecretDefinitionID: sd.ID, KubernetesRuntimeInstanceID: kri.ID, WorkloadInstanceID: app.ID });

      const res = await fetch(`${api.url}/dashboard/api/graph/WorkloadInstance/${app.ID}`);
      assert.equal(res.status, 200);
      const g = (await res.json()) as ObjectGraph;
      const role = (key: string) => g.nodes.find((n) => n.key === key)?.role;
      assert.equal(role(`WorkloadInstance:${app.ID}`), 'root');
      assert.equal(role(`WorkloadDefinition:${wd.ID}`), 'dependency');
      assert.equal(role(`KubernetesRuntimeInstance:${kri.ID}`), 'dependency');
      assert.equal(role(`KubernetesRuntimeDefinition:${krd.ID}`), 'dependency');
      assert.equal(role(`WorkloadInstance:${db.ID}`), 'dependency');
      assert.equal(role(`WorkloadInstance:${web.ID}`), 'dependent');
      assert.equal(role(`SecretInstance:${si.ID}`), 'attached');
      assert.equal(role(`SecretDefinition:${sd.ID}`), 'attached');
      assert.equal(role(`WorkloadInstance:${other.ID}`), undefined, 'another app on the same runtime is not part of this one');
      assert.ok(g.edges.some((e) => e.from === `WorkloadInstance:${app.ID}` && e.to === `WorkloadInstance:${db.ID}` && e.field === 'DependsOn'));
      assert.ok(g.edges.some((e) => e.from === `WorkloadInstance:${app.ID}` && e.to === `KubernetesRuntimeInstance:${kri.ID}` && e.field === 'KubernetesRuntimeInstanceID'));
      assert.deepEqual(
        g.deletePlan.map((s) => s.key),
        [`WorkloadInstance:${web.ID}`, `SecretInstance:${si.ID}`, `WorkloadInstance:${app.ID}`],
        'dependents first, then what belongs to the app, then the app; never its definition, runtime or dependencies',
      );

      // The Apps view's one call lists both app kinds with their runtimes.
      const hd = await post('helm-workload-definitions', { Name: 'g-hd', Repo: 'https://charts.example.com', Chart: 'x' });
      const hi = await post('helm-workload-instances', { Name: 'g-helm', HelmWorkloadDefinitionID: hd.ID, KubernetesRuntimeInstanceID: kri.ID });
      const apps = (await (await fetch(`${api.url}/dashboard/api/apps`)).json()) as { apps: Array<{ kind: string; id: number; runtimeId: number }>; runtimes: Array<{ id: number; provider: string }> };
      assert.deepEqual(
        apps.apps.filter((a) => a.id === hi.ID || a.id === app.ID).map((a) => [a.kind, a.runtimeId]),
        [['WorkloadInstance', kri.ID], ['HelmWorkloadInstance', kri.ID]],
      );
      assert.equal(apps.runtimes.find((r) => r.id === kri.ID)?.provider, 'kwok');

      const missing = await fetch(`${api.url}/dashboard/api/graph/WorkloadInstance/987654321`);
      assert.equal(missing.status, 404);
      const badKind = await fetch(`${api.url}/dashboard/api/graph/NoSuchKind/1`);
      assert.equal(badKind.status, 404);
      const badId = await fetch(`${api.url}/dashboard/api/graph/WorkloadInstance/abc`);
      assert.equal(badId.status, 400);
    });

    it('never shows encrypted fields in the object detail', async () => {
      const account = await post('aws-accounts', { Name: 'acct', AccountID: '111122223333', DefaultRegion: 'us-east-1', AccessKeyID: 'AKIAEXAMPLE', SecretAccessKey: 'wJalrXUtnFEMI' });
      const res = await fetch(`${api.url}/dashboard/api/objects/AwsAccount/${account.ID}`);
      assert.equal(res.status, 200);
      const text = await res.text();
      const detail = JSON.parse(text) as ObjectDetail;
      assert.equal(detail.object['AccessKeyID'], '(hidden)');
      assert.equal(detail.object['SecretAccessKey'], '(hidden)');
      assert.doesNotMatch(text, /AKIAEXAMPLE|wJalrXUtnFEMI/);
      const stored = await call(api, 'GET', `/v0/aws-accounts/${account.ID}`);
      assert.notEqual(stored.body.Data![0]!['SecretAccessKey'], '(hidden)', 'the API itself is unchanged');
    });

    it('serves the page and its bundle, with no CDN', async () => {
      const page = await fetch(`${api.url}/dashboard/`);
      assert.equal(page.status, 200);
      const html = await page.text();
      const scripts = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]!);
      assert.ok(scripts.length >= 2);
      for (const s of scripts) {
        assert.match(s, /^\/dashboard\/assets\//, 'every asset is served by the control plane');
        const asset = await fetch(new URL(s, `${api.url}/dashboard/`));
        assert.equal(asset.status, 200, s);
      }
      const session = (await (await fetch(`${api.url}/dashboard/session`)).json()) as { token: unknown; proxied: boolean };
      assert.deepEqual([session.token, session.proxied], [null, false]);
    });
  });
}
