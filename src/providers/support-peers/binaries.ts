// Where the support-service peers come from: built once per machine, one peer at a time, by
// scripts/peers/build-support-peers.sh into a cache outside the repository, keyed by version
// (~/.cache/threeport/<peer>/<version>/{bin,crds,certs}). The script holds the pinned versions;
// this module asks it for the directories, so the versions are written in one place.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../runtimes/kwok/binaries.js';

export const PEER_BUILD_SCRIPT_REL = 'scripts/peers/build-support-peers.sh';

/** The peers the build script knows, and the binary each one runs (gateway-api is CRDs only). */
export const SUPPORT_PEER_BINARIES = {
  traefik: 'traefik',
  'cert-manager': 'cert-manager-controller',
  pebble: 'pebble',
  coredns: 'coredns',
  'external-dns': 'external-dns',
  'external-secrets': 'external-secrets',
  'gateway-api': undefined,
  // Observability stacks (src/providers/observability): metrics, and logs (the directory also
  // holds vlagent, the log shipper).
  prometheus: 'prometheus',
  'victoria-logs': 'victoria-logs',
} as const;

export type SupportPeerName = keyof typeof SUPPORT_PEER_BINARIES;

export class SupportPeerMissingError extends Error {
  override name = 'SupportPeerMissingError';
}

/** What one built peer offers. */
export interface SupportPeerFiles {
  peer: SupportPeerName;
  /** The peer's cache entry, e.g. ~/.cache/threeport/traefik/v3.6.12. */
  dir: string;
  /** The executable, for peers that run one. */
  bin: string | undefined;
  /** CustomResourceDefinition manifests the peer needs (cert-manager, external-secrets, gateway-api standard channel). */
  crdFiles: string[];
}

/** How to build one peer, for error messages. */
export function peerBuildHint(peer: SupportPeerName): string {
  const root = packageRoot();
  const script = root ? join(root, PEER_BUILD_SCRIPT_REL) : PEER_BUILD_SCRIPT_REL;
  return `build it once per machine with:  bash ${script} ${peer}`;
}

function peerDir(peer: SupportPeerName): string {
  const root = packageRoot();
  if (!root) throw new SupportPeerMissingError(`support peer ${peer}: cannot find ${PEER_BUILD_SCRIPT_REL} (it pins the versions)`);
  const r = spawnSync('bash', [join(root, PEER_BUILD_SCRIPT_REL), '--print-dir', peer], { encoding: 'utf8' });
  if (r.status !== 0 || !r.stdout.trim()) {
    throw new SupportPeerMissingError(`${PEER_BUILD_SCRIPT_REL} --print-dir ${peer} failed: ${r.stderr.trim()}`);
  }
  return r.stdout.trim();
}

function yamlFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => join(dir, f));
}

/** CRD manifests of a peer's cache entry (experimental Gateway API kinds only when asked for). */
function crdFilesOf(peer: SupportPeerName, dir: string, experimental: boolean): string[] {
  switch (peer) {
    case 'cert-manager':
    case 'external-secrets':
      return yamlFiles(join(dir, 'crds'));
    case 'gateway-api':
      return [...yamlFiles(join(dir, 'crds', 'standard')), ...(experimental ? yamlFiles(join(dir, 'crds', 'experimental')) : [])];
    default:
      return [];
  }
}

/**
 * Locates a built peer. Throws SupportPeerMissingError naming the command that builds it when its
 * binary or CRDs are missing, so a first use fails loudly instead of waiting for a process that
 * never starts.
 */
export function findSupportPeer(peer: SupportPeerName, opts: { experimentalCrds?: boolean } = {}): SupportPeerFiles {
  const dir = peerDir(peer);
  const binName = SUPPORT_PEER_BINARIES[peer];
  const bin = binName === undefined ? undefined : join(dir, 'bin', binName);
  const crdFiles = crdFilesOf(peer, dir, opts.experimentalCrds ?? false);
  const wantsCrds = peer === 'cert-manager' || peer === 'external-secrets' || peer === 'gateway-api';
  if ((bin !== undefined && !existsSync(bin)) || (wantsCrds && crdFiles.length === 0)) {
    throw new SupportPeerMissingError(
      `support peer ${peer} is not built (looked for ${bin ?? join(dir, 'crds')}); ${peerBuildHint(peer)}\n` +
        '(cold builds take minutes on 2 cores and need Go and the Go module proxy; traefik and prometheus take about 36 minutes)',
    );
  }
  return { peer, dir, bin, crdFiles };
}
