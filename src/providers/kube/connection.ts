// How to reach one cluster: the connection fields of a KubernetesRuntimeInstance
// (spec §3 "Kube access"), decrypted, or the same fields read from a kubeconfig
// file for the `kubeconfig` infra provider.
import { readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { InputError } from '../../errors.js';
import type { JsonObject } from '../../kinds/validate.js';

/** Decrypted connection to one Kubernetes API server. */
export interface KubeConnection {
  /** e.g. `KubernetesRuntimeInstance "dev" (ID 4)`: names the cluster in errors and logs. */
  label: string;
  /** https://host:port */
  server: string;
  caPem?: string;
  clientCertPem?: string;
  clientKeyPem?: string;
  token?: string;
}

/** The in-cluster address of the API server (spec §3: used when the control plane runs inside that cluster). */
export const IN_CLUSTER_ENDPOINT = 'https://kubernetes.default.svc.cluster.local';

export function runtimeLabel(instance: JsonObject): string {
  return `KubernetesRuntimeInstance ${JSON.stringify(instance['Name'] ?? '?')} (ID ${String(instance['ID'] ?? '?')})`;
}

/** `127.0.0.1:6443` → `https://127.0.0.1:6443`; URLs are kept as they are. */
export function normalizeEndpoint(endpoint: string): string {
  const trimmed = endpoint.trim().replace(/\/+$/, '');
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(trimmed) ? trimmed : `https://${trimmed}`;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

export interface ConnectionOptions {
  /**
   * True when this process runs inside a Kubernetes cluster; then an instance with
   * ThreeportControlPlaneHost set is reached through the in-cluster service name.
   * Default: whether KUBERNETES_SERVICE_HOST is set.
   */
  inCluster?: boolean;
}

/**
 * The connection of a KubernetesRuntimeInstance. Encrypted fields (CertificateKey,
 * ConnectionToken) are decrypted with `decrypt` (the store's cipher). Throws when the instance
 * has no APIEndpoint yet, or neither a client certificate nor a token.
 */
export function connectionFromRuntimeInstance(
  instance: JsonObject,
  decrypt: (ciphertext: string) => string,
  options: ConnectionOptions = {},
): KubeConnection {
  const label = runtimeLabel(instance);
  const endpoint = str(instance['APIEndpoint']);
  if (!endpoint) throw new Error(`${label} has no APIEndpoint yet`);
  const inCluster = options.inCluster ?? Boolean(process.env['KUBERNETES_SERVICE_HOST']);
  const server = inCluster && instance['ThreeportControlPlaneHost'] === true ? IN_CLUSTER_ENDPOINT : normalizeEndpoint(endpoint);
  const conn: KubeConnection = { label, server };
  const ca = str(instance['CACertificate']);
  if (ca) conn.caPem = ca;
  const cert = str(instance['Certificate']);
  const key = str(instance['CertificateKey']);
  const token = str(instance['ConnectionToken']);
  if (cert && key) {
    conn.clientCertPem = cert;
    conn.clientKeyPem = decrypt(key);
  }
  if (token) conn.token = decrypt(token);
  if (!conn.clientKeyPem && !conn.token) {
    throw new Error(`${label} has no credentials: it needs Certificate and CertificateKey, or ConnectionToken`);
  }
  return conn;
}

/** A client-node KubeConfig for one connection (inline data only, no files). */
export function kubeConfigFor(conn: KubeConnection): KubeConfig {
  const b64 = (s: string): string => Buffer.from(s).toString('base64');
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'runtime', server: conn.server, skipTLSVerify: false, ...(conn.caPem ? { caData: b64(conn.caPem) } : {}) }],
    users: [
      {
        name: 'threeport',
        ...(conn.clientCertPem ? { certData: b64(conn.clientCertPem) } : {}),
        ...(conn.clientKeyPem ? { keyData: b64(conn.clientKeyPem) } : {}),
        ...(conn.token ? { token: conn.token } : {}),
      },
    ],
    contexts: [{ name: 'runtime', cluster: 'runtime', user: 'threeport' }],
    currentContext: 'runtime',
  });
  return kc;
}

/** KubernetesRuntimeInstance connection fields, plain text (the store encrypts CertificateKey and ConnectionToken). */
export interface RuntimeConnectionFields {
  APIEndpoint: string;
  CACertificate?: string;
  Certificate?: string;
  CertificateKey?: string;
  ConnectionToken?: string;
}

function decodeData(data: string): string {
  return Buffer.from(data, 'base64').toString('utf8');
}

/**
 * Reads the connection of `context` (default: the current context) from a kubeconfig file, for
 * registering an existing cluster (`InfraProvider: kubeconfig`). Inline data and file references
 * are both resolved. Exec and auth-provider plugins cannot be stored on a runtime instance and
 * are refused with an InputError, as are contexts without a CA (insecure-skip-tls-verify).
 */
export function connectionFieldsFromKubeconfig(path: string, context?: string): RuntimeConnectionFields {
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(path);
  } catch (err) {
    throw new InputError(`cannot read kubeconfig ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const names = kc.getContexts().map((c) => c.name);
  const contextName = context ?? kc.getCurrentContext();
  if (!contextName || !names.includes(contextName)) {
    throw new InputError(
      `kubeconfig ${path} has no context ${JSON.stringify(contextName ?? '')}; it has: ${names.length ? names.join(', ') : '(none)'}`,
    );
  }
  kc.setCurrentContext(contextName);
  const cluster = kc.getCurrentCluster();
  const user = kc.getCurrentUser();
  if (!cluster) throw new InputError(`kubeconfig ${path}: context ${contextName} names no known cluster`);
  if (!user) throw new InputError(`kubeconfig ${path}: context ${contextName} names no known user`);
  const where = `kubeconfig ${path}, context ${contextName}`;
  const read = (file: string, what: string): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch (err) {
      throw new InputError(`${where}: cannot read the ${what} file ${file}: ${(err as Error).message}`);
    }
  };

  const fields: RuntimeConnectionFields = { APIEndpoint: normalizeEndpoint(cluster.server) };
  if (cluster.caData) fields.CACertificate = decodeData(cluster.caData);
  else if (cluster.caFile) fields.CACertificate = read(cluster.caFile, 'certificate-authority');
  else if (cluster.skipTLSVerify) {
    throw new InputError(
      `${where}: the cluster uses insecure-skip-tls-verify; threeport needs its CA certificate (certificate-authority-data)`,
    );
  }

  if (user.exec || user.authProvider) {
    throw new InputError(
      `${where}: user ${user.name} authenticates through an ${user.exec ? 'exec' : 'auth-provider'} plugin, which threeport cannot store;` +
        ' use a context with a client certificate or a bearer token',
    );
  }
  if (user.certData) fields.Certificate = decodeData(user.certData);
  else if (user.certFile) fields.Certificate = read(user.certFile, 'client-certificate');
  if (user.keyData) fields.CertificateKey = decodeData(user.keyData);
  else if (user.keyFile) fields.CertificateKey = read(user.keyFile, 'client-key');
  if (user.token) fields.ConnectionToken = user.token.trim();
  if (!(fields.Certificate && fields.CertificateKey) && !fields.ConnectionToken) {
    throw new InputError(`${where}: user ${user.name} has neither a client certificate and key nor a token`);
  }
  return fields;
}
