// Credentials for one AwsAccount (spec §3 "Kube access", GetAwsConfigFromAwsAccount):
// - static keys: AccessKeyID and SecretAccessKey, decrypted with the store's cipher;
// - a role: AssumeRole(RoleArn, ExternalId) through STS, signed with the
//   controller's own credentials (env, IRSA web identity, ...). When the
//   controller already runs as that role (IRSA inside EKS), its own
//   credentials are used as they are.
// Assumed-role credentials are cached and renewed 5 minutes before they expire.
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { InputError } from '../../errors.js';

/** The AwsAccount fields the provider reads (as stored: keys are ciphertext). */
export interface AwsAccountRecord {
  ID?: number;
  Name?: string;
  AccountID?: string;
  DefaultRegion?: string;
  AccessKeyID?: string | null;
  SecretAccessKey?: string | null;
  RoleArn?: string | null;
  ExternalId?: string | null;
  UpdatedAt?: string;
}

const RENEW_BEFORE_MS = 5 * 60_000;
const SESSION_SECONDS = 3_600;

export interface CredentialDeps {
  decrypt: (ciphertext: string) => string;
  /** Registers secret values so that no message repeats them. */
  remember: (...secrets: Array<string | undefined>) => void;
  /** The controller's own credentials, used to assume account roles. Default: the SDK's provider chain. */
  baseCredentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** Builds the STS client that assumes roles (endpoint, retries and instrumentation as for every client). */
  stsClient: (region: string, credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider) => STSClient;
  now: () => number;
}

function present(v: string | null | undefined): v is string {
  return typeof v === 'string' && v !== '';
}

export function credentialStyle(account: AwsAccountRecord): 'keys' | 'role' {
  const keys = present(account.AccessKeyID) && present(account.SecretAccessKey);
  if (keys) return 'keys';
  if (present(account.RoleArn)) return 'role';
  throw new InputError(
    `AwsAccount ${account.Name ?? account.ID ?? ''} has no usable credentials: set AccessKeyID and SecretAccessKey, or RoleArn`.replace('  ', ' '),
  );
}

/** A credential provider for the account; the SDK calls it before signing each request. */
export function accountCredentials(account: AwsAccountRecord, region: string, deps: CredentialDeps): AwsCredentialIdentityProvider {
  if (credentialStyle(account) === 'keys') {
    let cached: AwsCredentialIdentity | undefined;
    return async () => {
      if (!cached) {
        const accessKeyId = deps.decrypt(account.AccessKeyID!);
        const secretAccessKey = deps.decrypt(account.SecretAccessKey!);
        deps.remember(accessKeyId, secretAccessKey);
        cached = { accessKeyId, secretAccessKey };
      }
      return cached;
    };
  }
  const roleArn = account.RoleArn!;
  let current: AwsCredentialIdentity | undefined;
  let pending: Promise<AwsCredentialIdentity> | undefined;
  let useBaseAsIs: boolean | undefined;
  const sts = deps.stsClient(region, deps.baseCredentials);
  const assume = async (): Promise<AwsCredentialIdentity> => {
    if (useBaseAsIs === undefined) useBaseAsIs = await alreadyTheRole(sts, roleArn);
    if (useBaseAsIs) {
      const base = deps.baseCredentials;
      const creds = typeof base === 'function' ? await base() : base ?? (await sts.config.credentials());
      deps.remember(creds.accessKeyId, creds.secretAccessKey, creds.sessionToken);
      return creds;
    }
    const out = await sts.send(
      new AssumeRoleCommand({
        RoleArn: roleArn,
        RoleSessionName: `threeport-${account.ID ?? 'account'}`.slice(0, 64),
        ...(present(account.ExternalId) ? { ExternalId: account.ExternalId } : {}),
        DurationSeconds: SESSION_SECONDS,
      }),
    );
    const c = out.Credentials;
    if (!c?.AccessKeyId || !c.SecretAccessKey) throw new Error(`sts:AssumeRole of ${roleArn} returned no credentials`);
    deps.remember(c.AccessKeyId, c.SecretAccessKey, c.SessionToken);
    return {
      accessKeyId: c.AccessKeyId,
      secretAccessKey: c.SecretAccessKey,
      ...(c.SessionToken ? { sessionToken: c.SessionToken } : {}),
      expiration: c.Expiration ?? new Date(deps.now() + SESSION_SECONDS * 1000),
    };
  };
  // `minValidityMs`: a caller that hands the credentials to a long-running process (tofu) asks for
  // ones that stay valid at least that long; they are renewed earlier when needed.
  return async (properties?: Record<string, unknown>) => {
    const wanted = typeof properties?.['minValidityMs'] === 'number' ? (properties['minValidityMs'] as number) : 0;
    const fresh = current && (!current.expiration || current.expiration.getTime() - deps.now() > Math.max(RENEW_BEFORE_MS, wanted));
    if (fresh) return current!;
    pending ??= assume().finally(() => (pending = undefined));
    current = await pending;
    return current;
  };
}

/** True when the caller is already a session of `roleArn` (e.g. IRSA inside the cluster), so no AssumeRole is needed. */
async function alreadyTheRole(sts: STSClient, roleArn: string): Promise<boolean> {
  const m = /^arn:(aws[a-z-]*):iam::(\d{12}):role\/(?:.*\/)?([^/]+)$/.exec(roleArn);
  if (!m) return false;
  try {
    const me = await sts.send(new GetCallerIdentityCommand({}));
    const [, partition, account, name] = m;
    return me.Arn?.startsWith(`arn:${partition}:sts::${account}:assumed-role/${name}/`) ?? false;
  } catch {
    return false; // AssumeRole will report the real problem
  }
}
