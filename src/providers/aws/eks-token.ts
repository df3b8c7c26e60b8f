// An EKS bearer token, as aws-iam-authenticator and `aws eks get-token` make
// it: an STS GetCallerIdentity request presigned (SigV4, query parameters)
// with the cluster name in the signed `x-k8s-aws-id` header, encoded as
// "k8s-aws-v1." + base64url(url) without padding. The API server's
// authenticator replays the URL to STS to learn who the caller is.
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, Checksum, SourceData } from '@smithy/types';

/** EKS accepts a token for 15 minutes after signing; we call it expired a minute earlier. */
export const EKS_TOKEN_LIFETIME_MS = 14 * 60_000;
const PRESIGN_EXPIRES_SECONDS = 60;

function bytes(data: SourceData): Buffer {
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data as ArrayBuffer);
}

/** SHA-256 (or HMAC-SHA-256 with a secret) from node:crypto, in the shape the signer takes. */
class Sha256 implements Checksum {
  #hash: Hash | Hmac;
  readonly #secret: SourceData | undefined;
  constructor(secret?: SourceData) {
    this.#secret = secret;
    this.#hash = this.#fresh();
  }
  #fresh(): Hash | Hmac {
    return this.#secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(this.#secret));
  }
  update(data: Uint8Array): void {
    this.#hash.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#hash.digest());
  }
  reset(): void {
    this.#hash = this.#fresh();
  }
}

export interface EksToken {
  token: string;
  expiresAt: Date;
}

/** The STS host the token is presigned for: the regional endpoint, or the override (moto) when set. */
function stsTarget(region: string, endpoint: string | undefined): { protocol: string; hostname: string; port?: number } {
  if (endpoint) {
    const u = new URL(endpoint);
    return { protocol: u.protocol, hostname: u.hostname, ...(u.port ? { port: Number(u.port) } : {}) };
  }
  const suffix = region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
  return { protocol: 'https:', hostname: `sts.${region}.${suffix}` };
}

export async function eksToken(input: {
  clusterName: string;
  region: string;
  credentials: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  now: number;
  endpoint?: string;
}): Promise<EksToken> {
  const signer = new SignatureV4({ service: 'sts', region: input.region, credentials: input.credentials, sha256: Sha256 });
  const target = stsTarget(input.region, input.endpoint);
  const signed = await signer.presign(
    {
      method: 'GET',
      ...target,
      path: '/',
      query: { Action: 'GetCallerIdentity', Version: '2011-06-15' },
      headers: { host: target.port ? `${target.hostname}:${target.port}` : target.hostname, 'x-k8s-aws-id': input.clusterName },
    },
    { expiresIn: PRESIGN_EXPIRES_SECONDS, signingDate: new Date(input.now) },
  );
  const query = Object.entries(signed.query ?? {})
    .flatMap(([k, v]) => (Array.isArray(v) ? v.map((x) => [k, x] as const) : v === null ? [] : [[k, v] as const]))
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
  const url = `${target.protocol}//${target.hostname}${target.port ? `:${target.port}` : ''}/?${query}`;
  return {
    token: `k8s-aws-v1.${Buffer.from(url, 'utf8').toString('base64url')}`,
    expiresAt: new Date(input.now + EKS_TOKEN_LIFETIME_MS),
  };
}

/** Decodes a token back to its presigned URL (tests and diagnostics; the URL carries a signature, not a secret key). */
export function decodeEksToken(token: string): URL {
  if (!token.startsWith('k8s-aws-v1.')) throw new Error('not an EKS token: it must start with k8s-aws-v1.');
  return new URL(Buffer.from(token.slice('k8s-aws-v1.'.length), 'base64url').toString('utf8'));
}
