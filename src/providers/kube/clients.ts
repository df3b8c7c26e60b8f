// One KubeClusterClient per runtime instance, reused across reconciles so that
// discovery is cached per cluster and connections are pooled. A client is
// replaced when the instance's connection fields change (new endpoint, rotated
// certificate or token).
import { createHash } from 'node:crypto';
import type { JsonObject } from '../../kinds/validate.js';
import { connectionFromRuntimeInstance, type ConnectionOptions, type KubeConnection } from './connection.js';
import { kubeClusterClient, type KubeClientOptions, type KubeClusterClient } from './client.js';

const CONNECTION_FIELDS = ['APIEndpoint', 'CACertificate', 'Certificate', 'CertificateKey', 'ConnectionToken', 'ThreeportControlPlaneHost'];

function fingerprint(instance: JsonObject): string {
  const h = createHash('sha256');
  for (const f of CONNECTION_FIELDS) h.update(`${f}=${JSON.stringify(instance[f] ?? null)}\n`);
  return h.digest('hex');
}

export type KubeClientFactory = (conn: KubeConnection) => KubeClusterClient;

export interface KubeClientsOptions extends KubeClientOptions, ConnectionOptions {
  /** Decrypts CertificateKey / ConnectionToken (the store's cipher: `store.decrypt`). */
  decrypt: (ciphertext: string) => string;
  /** How clients are made; tests of error paths pass a fake. */
  factory?: KubeClientFactory;
}

/** The kube provider's entry point for controllers: `clients.forRuntime(instance)`. */
export class KubeClients {
  readonly #clients = new Map<number, { fingerprint: string; client: KubeClusterClient }>();
  readonly #options: KubeClientsOptions;

  constructor(options: KubeClientsOptions) {
    this.#options = options;
  }

  /** The client for a KubernetesRuntimeInstance (as read from the store, encrypted fields included). */
  forRuntime(instance: JsonObject): KubeClusterClient {
    const id = Number(instance['ID']);
    const fp = fingerprint(instance);
    const cached = this.#clients.get(id);
    if (cached && cached.fingerprint === fp) return cached.client;
    cached?.client.close();
    const conn = connectionFromRuntimeInstance(instance, this.#options.decrypt, this.#options);
    const client = this.#options.factory
      ? this.#options.factory(conn)
      : kubeClusterClient(conn, this.#options.requestTimeoutMs ? { requestTimeoutMs: this.#options.requestTimeoutMs } : {});
    this.#clients.set(id, { fingerprint: fp, client });
    return client;
  }

  /** Drops the client of a deleted runtime instance. */
  forget(instanceId: number): void {
    this.#clients.get(instanceId)?.client.close();
    this.#clients.delete(instanceId);
  }

  close(): void {
    for (const { client } of this.#clients.values()) client.close();
    this.#clients.clear();
  }
}
