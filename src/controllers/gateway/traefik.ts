// traefik v3.6.12 as the Gateway API implementation of one simulated (kwok) runtime: a supervised
// host process pointed at the runtime's API server (src/providers/support-peers), restarted with an
// event when it dies, removed with the runtime or with the runtime's last gateway.
//
// Each runtime's traefik binds its own loopback address (127.x.y.z, stable per runtime directory),
// so two runtimes can both serve port 80 on one host. traefik binds a Gateway listener to the
// entry point with the same port, so every port of every gateway on the runtime is an entry point;
// a changed port set restarts traefik with the new ones (upgrade in place).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeConnection } from '../../providers/kube/connection.js';
import { SupportPeerSet, traefikLaunch, type PeerEvent } from '../../providers/support-peers/index.js';
import { freePort } from '../../system.js';

export const TRAEFIK_PEER = 'traefik';

/** A loopback address derived from the directory, so it is stable across restarts and rarely shared. */
function loopbackAddressFor(dir: string): string {
  const h = createHash('sha256').update(dir).digest();
  return `127.${100 + (h[0]! % 100)}.${h[1]!}.${1 + (h[2]! % 254)}`;
}

export class RuntimeTraefik {
  readonly address: string;
  readonly #set: SupportPeerSet;
  #ports = '';
  #pingPort: number | undefined;

  constructor(readonly dir: string, kube: KubeConnection, onEvent: (e: PeerEvent) => void) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const addressFile = join(dir, 'address');
    this.address = existsSync(addressFile) ? readFileSync(addressFile, 'utf8').trim() : loopbackAddressFor(dir);
    writeFileSync(addressFile, this.address);
    this.#set = new SupportPeerSet({ dir, kube, onEvent });
  }

  get peer() {
    return this.#set.get(TRAEFIK_PEER);
  }

  get running(): boolean {
    return this.peer?.running === true;
  }

  rssBytes(): number | undefined {
    return this.peer?.rssBytes();
  }

  /** Runs traefik with one entry point per port; restarts it when the ports changed or it gave up. */
  async ensure(ports: readonly number[]): Promise<'started' | 'restarted' | 'running'> {
    const key = [...new Set(ports)].sort((a, b) => a - b).join(',');
    const peer = this.peer;
    if (peer?.running && key === this.#ports) return 'running';
    const restart = peer !== undefined;
    if (peer) await this.#set.stopPeer(TRAEFIK_PEER);
    this.#pingPort ??= await freePort('traefik-ping');
    const entryPoints = Object.fromEntries([...new Set(ports)].map((p) => [`p${p}`, `${this.address}:${p}`]));
    await this.#set.start(
      traefikLaunch(
        { kubeconfigPath: this.#set.kubeconfigPath, dir: this.#set.dir },
        { entryPoints, pingPort: this.#pingPort, ingress: false, gateway: true, experimentalChannel: true, statusIp: this.address },
      ),
      { timeoutMs: 90_000 },
    );
    this.#ports = key;
    return restart ? 'restarted' : 'started';
  }

  /** Stops traefik and removes the runtime's gateway directory. */
  async remove(): Promise<void> {
    await this.#set.stopAll();
    rmSync(this.dir, { recursive: true, force: true });
  }

  async stop(): Promise<void> {
    await this.#set.stopAll();
  }
}
