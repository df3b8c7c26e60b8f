// One support peer of one simulated runtime, as the gateway controller runs it (traefik,
// cert-manager): a SupportPeerSet of its own under the runtime's directory, started with a launch
// that depends on a settings key, and restarted (upgrade in place) when the key changes or the
// supervisor gave up on it.
import { mkdirSync, rmSync } from 'node:fs';
import type { KubeConnection } from '../../providers/kube/connection.js';
import { SupportPeerSet, type PeerContext, type PeerEvent, type PeerLaunch } from '../../providers/support-peers/index.js';

export class RuntimePeer {
  readonly #set: SupportPeerSet;
  #key: string | undefined;

  constructor(readonly dir: string, readonly peerName: string, kube: KubeConnection, onEvent: (e: PeerEvent) => void) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.#set = new SupportPeerSet({ dir, kube, onEvent });
  }

  get peer() {
    return this.#set.get(this.peerName);
  }

  get running(): boolean {
    return this.peer?.running === true;
  }

  rssBytes(): number | undefined {
    return this.peer?.rssBytes();
  }

  /** Runs the peer for `key`; starts it, or restarts it when the key changed or it is down. */
  protected async ensureKey(key: string, launch: (ctx: PeerContext) => Promise<PeerLaunch> | PeerLaunch): Promise<'started' | 'restarted' | 'running'> {
    const peer = this.peer;
    if (peer?.running && key === this.#key) return 'running';
    const restart = peer !== undefined;
    if (peer) await this.#set.stopPeer(this.peerName);
    await this.#set.start(await launch({ kubeconfigPath: this.#set.kubeconfigPath, dir: this.#set.dir }), { timeoutMs: 90_000 });
    this.#key = key;
    return restart ? 'restarted' : 'started';
  }

  /** Stops the peer and removes its directory. */
  async remove(): Promise<void> {
    await this.#set.stopAll();
    rmSync(this.dir, { recursive: true, force: true });
  }

  async stop(): Promise<void> {
    await this.#set.stopAll();
  }
}
