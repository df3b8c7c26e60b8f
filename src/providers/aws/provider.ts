// The AWS provider: SDK v3 clients for one account and region, with the
// account's credentials, an optional endpoint override (moto in tests),
// counted and logged retries, and errors that never carry a credential.
import { EC2Client } from '@aws-sdk/client-ec2';
import { EKSClient } from '@aws-sdk/client-eks';
import { IAMClient } from '@aws-sdk/client-iam';
import { RDSClient } from '@aws-sdk/client-rds';
import { Route53Client } from '@aws-sdk/client-route-53';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { STSClient } from '@aws-sdk/client-sts';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider, MiddlewareStack } from '@smithy/types';
import type { Logger } from 'pino';
import { AwsCallError } from './errors.js';
import { accountCredentials, type AwsAccountRecord } from './credentials.js';
import { SecretScrubber } from './redact.js';
import {
  AwsCallStats,
  AwsRetryPolicy,
  OPERATION_KEY,
  ThreeportRetryStrategy,
  type AwsRetryEvent,
  type AwsRetryPolicyInput,
} from './retry.js';

/** The environment variable that points every AWS client at another endpoint (tests: moto). */
export const AWS_ENDPOINT_ENV = 'THREEPORT_AWS_ENDPOINT_URL';

export type AwsService = 'ec2' | 'eks' | 'iam' | 'rds' | 'route53' | 's3' | 'secretsmanager' | 'sts';

/** Anything with a middleware stack: every SDK v3 client. */
export interface InstrumentableClient {
  middlewareStack: MiddlewareStack<any, any>;
}

export interface AwsProviderOptions {
  /** Decrypts AwsAccount.AccessKeyID/SecretAccessKey (the store's cipher: `store.decrypt`). */
  decrypt: (ciphertext: string) => string;
  /** Send every request here instead of AWS (default: $THREEPORT_AWS_ENDPOINT_URL, else AWS itself). */
  endpoint?: string;
  retry?: AwsRetryPolicy | AwsRetryPolicyInput;
  log?: Logger;
  /** Called for every retry (after it is counted and logged). */
  onRetry?: (event: AwsRetryEvent) => void;
  /** The controller's own credentials, for AssumeRole. Default: the SDK's chain (env, web identity, ...). */
  baseCredentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider;
  /** Time, for credential expiry (default Date.now). */
  now?: () => number;
  /** Per-request timeout (default 60 s). */
  requestTimeoutMs?: number;
  /** Test seam: adds middleware to each new client, e.g. to rewrite a response. */
  instrument?: (client: InstrumentableClient, service: AwsService) => void;
  /** Random numbers for retry jitter (tests). */
  random?: () => number;
}

export class AwsProvider {
  readonly stats = new AwsCallStats();
  readonly scrubber = new SecretScrubber();
  readonly endpoint: string | undefined;
  readonly retryPolicy: AwsRetryPolicy;
  readonly #options: AwsProviderOptions;
  readonly #strategy: ThreeportRetryStrategy;
  readonly #sessions = new Map<string, AwsSession>();

  constructor(options: AwsProviderOptions) {
    this.#options = options;
    const endpoint = options.endpoint ?? process.env[AWS_ENDPOINT_ENV];
    this.endpoint = endpoint === '' ? undefined : endpoint;
    if (this.endpoint !== undefined && !/^https?:\/\/[^/]+\/?$/.test(this.endpoint)) {
      throw new Error(`AWS endpoint override must be a URL such as http://127.0.0.1:5000, got ${JSON.stringify(this.endpoint)}`);
    }
    this.retryPolicy = AwsRetryPolicy.from(options.retry);
    this.#strategy = new ThreeportRetryStrategy(
      this.retryPolicy,
      this.stats,
      (event) => {
        options.log?.warn(
          {
            aws: event.operation,
            attempt: event.attempt,
            reason: event.reason,
            code: event.code,
            status: event.httpStatus,
            delayMs: event.delayMs,
          },
          'AWS call failed; retrying',
        );
        options.onRetry?.(event);
      },
      options.random,
    );
  }

  now(): number {
    return (this.#options.now ?? Date.now)();
  }

  scrub(text: string): string {
    return this.scrubber.scrub(text);
  }

  /** Clients for `account` in `region` (default: the account's DefaultRegion), cached per account version. */
  session(account: AwsAccountRecord, region?: string): AwsSession {
    const r = region ?? account.DefaultRegion;
    if (!r) throw new Error(`AwsAccount ${account.Name ?? account.ID ?? ''} has no DefaultRegion and no region was given`);
    const key = `${account.ID ?? account.Name ?? '?'}|${account.UpdatedAt ?? ''}|${r}`;
    let s = this.#sessions.get(key);
    if (!s) {
      if (this.#sessions.size >= 256) this.#sessions.delete(this.#sessions.keys().next().value!);
      const credentials = accountCredentials(account, r, {
        decrypt: this.#options.decrypt,
        remember: (...v) => this.scrubber.add(...v),
        ...(this.#options.baseCredentials ? { baseCredentials: this.#options.baseCredentials } : {}),
        stsClient: (region, creds) => this.client('sts', region, creds),
        now: () => this.now(),
      });
      s = new AwsSession(this, r, credentials, account);
      this.#sessions.set(key, s);
    }
    return s;
  }

  /** A configured client; `credentials` undefined means the SDK's default chain. */
  client<S extends AwsService>(service: S, region: string, credentials?: AwsCredentialIdentity | AwsCredentialIdentityProvider): ClientOf<S> {
    const config = {
      region,
      ...(credentials ? { credentials } : {}),
      ...(this.endpoint ? { endpoint: this.endpoint } : {}),
      retryStrategy: this.#strategy,
      maxAttempts: this.retryPolicy.maxAttempts,
      requestHandler: { requestTimeout: this.#options.requestTimeoutMs ?? 60_000, connectionTimeout: 10_000 },
    };
    const client = (
      service === 'ec2'
        ? new EC2Client(config)
        : service === 'eks'
          ? new EKSClient(config)
          : service === 'iam'
            ? new IAMClient(config)
            : service === 'rds'
              ? new RDSClient(config)
              : service === 'route53'
                ? new Route53Client(config)
                : service === 's3'
                  ? new S3Client({ ...config, ...(this.endpoint ? { forcePathStyle: true } : {}) })
                  : service === 'secretsmanager'
                    ? new SecretsManagerClient(config)
                    : new STSClient(config)
    ) as ClientOf<S>;
    this.#instrument(client as unknown as InstrumentableClient, service);
    return client;
  }

  #instrument(client: InstrumentableClient, service: AwsService): void {
    const stats = this.stats;
    const scrub = (t: string): string => this.scrub(t);
    // Inside the retry loop: sees every HTTP attempt, and names the call on its errors.
    client.middlewareStack.add(
      (next: any, context: any) => async (args: any) => {
        const operation = `${service}:${String(context.commandName ?? 'Unknown').replace(/Command$/, '')}`;
        stats.recordAttempt(operation);
        try {
          return await next(args);
        } catch (err) {
          if (typeof err === 'object' && err !== null && !(OPERATION_KEY in err)) {
            Object.defineProperty(err, OPERATION_KEY, { value: operation, enumerable: false, configurable: true });
          }
          throw err;
        }
      },
      { step: 'finalizeRequest', priority: 'low', name: 'threeportAttemptObserver' },
    );
    // Outermost: whatever fails leaves the client as an AwsCallError with a scrubbed message.
    client.middlewareStack.add(
      (next: any, context: any) => async (args: any) => {
        try {
          return await next(args);
        } catch (err) {
          if (err instanceof AwsCallError) throw err;
          if (err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError')) throw err;
          const operation = `${service}:${String(context.commandName ?? 'Unknown').replace(/Command$/, '')}`;
          throw new AwsCallError(operation, err, scrub);
        }
      },
      { step: 'initialize', priority: 'high', name: 'threeportErrorBoundary' },
    );
    this.#options.instrument?.(client, service);
  }
}

type ClientOf<S extends AwsService> = S extends 'ec2'
  ? EC2Client
  : S extends 'eks'
    ? EKSClient
    : S extends 'iam'
      ? IAMClient
      : S extends 'rds'
        ? RDSClient
        : S extends 'route53'
          ? Route53Client
          : S extends 's3'
            ? S3Client
            : S extends 'secretsmanager'
              ? SecretsManagerClient
              : STSClient;

/** The clients of one account in one region; each is created on first use. */
export class AwsSession {
  #ec2?: EC2Client;
  #eks?: EKSClient;
  #iam?: IAMClient;
  #rds?: RDSClient;
  #route53?: Route53Client;
  #s3?: S3Client;
  #sm?: SecretsManagerClient;
  #sts?: STSClient;

  constructor(
    readonly provider: AwsProvider,
    readonly region: string,
    readonly credentials: AwsCredentialIdentityProvider,
    readonly account: AwsAccountRecord,
  ) {}

  get ec2(): EC2Client {
    return (this.#ec2 ??= this.provider.client('ec2', this.region, this.credentials));
  }
  get eks(): EKSClient {
    return (this.#eks ??= this.provider.client('eks', this.region, this.credentials));
  }
  get iam(): IAMClient {
    return (this.#iam ??= this.provider.client('iam', this.region, this.credentials));
  }
  get rds(): RDSClient {
    return (this.#rds ??= this.provider.client('rds', this.region, this.credentials));
  }
  /** Route 53 is global: the region only picks the signing region (the SDK resolves its global endpoint). */
  get route53(): Route53Client {
    return (this.#route53 ??= this.provider.client('route53', this.region, this.credentials));
  }
  get s3(): S3Client {
    return (this.#s3 ??= this.provider.client('s3', this.region, this.credentials));
  }
  get secretsManager(): SecretsManagerClient {
    return (this.#sm ??= this.provider.client('secretsmanager', this.region, this.credentials));
  }
  get sts(): STSClient {
    return (this.#sts ??= this.provider.client('sts', this.region, this.credentials));
  }

  /** The IAM partition of this region: aws, aws-cn or aws-us-gov. */
  get partition(): string {
    return this.region.startsWith('cn-') ? 'aws-cn' : this.region.startsWith('us-gov-') ? 'aws-us-gov' : 'aws';
  }
}
