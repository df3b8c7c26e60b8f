// traefik v3.6.12 as the Gateway API implementation of one simulated (kwok) runtime: a supervised
// host process pointed at the runtime's API server (src/providers/support-peers), restarted with an
// event when it dies, removed with the runtime or with the runtime's last gateway.
//
// Each runtime's traefik binds its own loopback address (127.x.y.z, stable per runtime directory),
// so two runtimes can both serve port 80 on one host. traefik binds a Gateway listener to the
// entry point with the same port, so every port of every gateway on the runtime is an entry point;
// a changed port set restarts traefik with the new ones (upgrade in place).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KubeConnection } from '../../providers/kube/connection.js';
import { traefikLaunch, type PeerEvent } from '../../providers/support-peers/index.js';
import { freePort } from '../../system.js';
import { RuntimePeer } from './runtime-peer.js';

export const TRAEFIK_PEER = 'traefik';

/** A loopback address derived from the directory, so it is stable across restarts and rarely shared. */
function loopbackAddressFor(dir: string): string {
  const h = createHash('sha256').update(dir).digest();
  return `127.${100 + (h[0]! % 100)}.${h[1]!}.${1 + (h[2]! % 254)}`;
}

export class RuntimeTraefik extends RuntimePeer {
  readonly address: string;
  #pingPort: number | undefined;

  constructor(dir: string, kube: KubeConnection, onEvent: (e: PeerEvent) => void) {
    super(dir, TRAEFIK_PEER, kube, onEvent);
    const addressFile = join(dir, 'address');
    this.address = existsSync(addressFile) ? readFileSync(addressFile, 'utf8').trim() : loopbackAddressFor(dir);
    writeFileSync(addressFile, this.address);
  }

  /** Runs traefik with one entry point per port; restarts it when the ports changed or it gave up. */
  async ensure(ports: readonly number[]): Promise<'started' | 'restarted' | 'running'> {
    const unique = [...new Set(ports)].sort((a, b) => a - b);
    return this.ensureKey(unique.join(','), async (ctx) => {
      this.#pingPort ??= await freePort('traefik-ping');
      const entryPoints = Object.fromEntries(unique.map((p) => [`p${p}`, `${this.address}:${p}`]));
      return traefikLaunch(ctx, { entryPoints, pingPort: this.#pingPort, ingress: false, gateway: true, experimentalChannel: true, statusIp: this.address });
    });
  }
}
