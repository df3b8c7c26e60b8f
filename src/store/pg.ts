// `pg`, loaded without the cost of its Cloudflare probe. When it loads, pg asks whether it runs
// in a Cloudflare Worker: it reads `navigator.userAgent` where a navigator exists (Node 21 and
// later), and otherwise constructs a `Response`, which on Node 20 loads Node's whole fetch
// implementation (undici). That was about 50 ms of an API replica's start-up, and memory it never
// uses. For the length of pg's load, a navigator that says what Node 21+ says answers the probe.
const scope = globalThis as { navigator?: unknown };
const shim = scope.navigator === undefined;
if (shim) Object.defineProperty(globalThis, 'navigator', { value: { userAgent: `Node.js/${process.versions.node}` }, configurable: true });
const { default: pg } = await import('pg');
if (shim) delete scope.navigator;

export default pg;
