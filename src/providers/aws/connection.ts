// How the control plane reaches a provisioned cluster: the API endpoint, its
// CA and a short-lived bearer token. This is a seam: the default asks EKS, and
// tests (moto's EKS endpoint and CA are fake) point it at a local test cluster.
import { DescribeClusterCommand } from '@aws-sdk/client-eks';
import { eksToken } from './eks-token.js';
import type { AwsSession } from './provider.js';

/** What goes onto the KubernetesRuntimeInstance (APIEndpoint, CACertificate, Connection*, Certificate*). */
export interface ClusterConnection {
  apiEndpoint: string;
  /** PEM. */
  caCertificate: string;
  /** Bearer token and when it stops working. */
  token?: string;
  tokenExpiration?: Date;
  /** Client certificate and key (PEM), for clusters that authenticate that way (test clusters). */
  certificate?: string;
  certificateKey?: string;
}

export interface ClusterConnectionRequest {
  session: AwsSession;
  clusterName: string;
  /** The time the token is signed at (epoch ms). */
  now: number;
  signal?: AbortSignal;
}

export interface ClusterConnectionResolver {
  resolve(request: ClusterConnectionRequest): Promise<ClusterConnection>;
}

/** EKS's own answer: DescribeCluster for the endpoint and CA, and a presigned STS token. */
export class EksConnectionResolver implements ClusterConnectionResolver {
  async resolve(request: ClusterConnectionRequest): Promise<ClusterConnection> {
    const { session } = request;
    const cluster = (
      await session.eks.send(new DescribeClusterCommand({ name: request.clusterName }), request.signal ? { abortSignal: request.signal } : {})
    ).cluster;
    if (!cluster?.endpoint) throw new Error(`EKS cluster ${request.clusterName} has no API endpoint yet`);
    const token = await this.token(request);
    return {
      apiEndpoint: cluster.endpoint.replace(/\/$/, ''),
      caCertificate: decodeCa(cluster.certificateAuthority?.data ?? ''),
      token: token.token,
      tokenExpiration: token.expiresAt,
    };
  }

  async token(request: ClusterConnectionRequest): Promise<{ token: string; expiresAt: Date }> {
    const t = await eksToken({
      clusterName: request.clusterName,
      region: request.session.region,
      credentials: request.session.credentials,
      now: request.now,
      ...(request.session.provider.endpoint ? { endpoint: request.session.provider.endpoint } : {}),
    });
    request.session.provider.scrubber.add(t.token);
    return t;
  }
}

/** EKS returns the CA as base64 of the PEM. moto returns random text, which is passed through as is. */
export function decodeCa(data: string): string {
  if (data === '') return '';
  const decoded = Buffer.from(data, 'base64').toString('utf8');
  return decoded.includes('-----BEGIN CERTIFICATE-----') ? decoded : data;
}

/** A token is refreshed when it expires within this margin (upstream: 3 minutes). */
export const TOKEN_REFRESH_MARGIN_MS = 3 * 60_000;

export function tokenNeedsRefresh(expiration: string | Date | undefined | null, now: number, marginMs = TOKEN_REFRESH_MARGIN_MS): boolean {
  if (!expiration) return true;
  const t = typeof expiration === 'string' ? Date.parse(expiration) : expiration.getTime();
  return !Number.isFinite(t) || t - now <= marginMs;
}
