// What went wrong running helm, and whether trying again can help. Retryability is data on the
// error (`retryable`), which the reconcile runtime reads: an unreachable cluster or chart
// repository is retried with backoff; a chart that does not exist, values that fail the chart's
// schema or a template error are not (they need a change to the object).
//
// Messages carry helm's own stderr, scrubbed: they end up in events and logs that users read.
import { SecretScrubber } from '../aws/redact.js';

export class HelmError extends Error {
  /** Read by the reconcile runtime: false stops retries until the object changes. */
  readonly retryable: boolean;

  constructor(message: string, options: { retryable: boolean; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.retryable = options.retryable;
  }
}

/** No helm executable could be found (THREEPORT_HELM, the test-binaries cache, PATH). */
export class HelmNotFoundError extends HelmError {
  constructor(message: string) {
    super(message, { retryable: false });
  }
}

/** A helm command exited non-zero (or was killed). */
export class HelmCommandError extends HelmError {
  /** e.g. "upgrade --install". */
  readonly command: string;
  readonly exitCode: number | null;
  /** helm's stderr, scrubbed and trimmed. */
  readonly stderr: string;

  constructor(message: string, fields: { command: string; exitCode: number | null; stderr: string; retryable: boolean }) {
    super(message, { retryable: fields.retryable });
    this.command = fields.command;
    this.exitCode = fields.exitCode;
    this.stderr = fields.stderr;
  }
}

// Failures that come and go: the cluster or a chart source is unreachable or overloaded, or
// another helm operation holds the release. Everything else helm reports (chart not found, no
// such version, schema or template errors, objects the API server rejects) needs a change.
const TRANSIENT: readonly RegExp[] = [
  /connection refused/i,
  /connection reset/i,
  /broken pipe/i,
  /i\/o timeout/i,
  /timed? ?out/i,
  /deadline exceeded/i,
  /no such host/i,
  /temporary failure in name resolution/i,
  /server misbehaving/i,
  /network is unreachable/i,
  /": (?:unexpected )?EOF\b/, // Go's transport errors: Get "https://...": EOF
  /Kubernetes cluster unreachable/i,
  /the server is currently unable to handle the request/i,
  /ServiceUnavailable|Too Many Requests|TooManyRequests/i,
  /\b(?:429|500|502|503|504)\b (?:Too Many|Internal Server|Bad Gateway|Service Unavailable|Gateway Timeout)/i,
  /etcdserver/i,
  /the object has been modified; please apply your changes to the latest version/i,
  /another operation \(install\/upgrade\/rollback\) is in progress/i,
  /is being terminated|because it is being terminated/i,
];

export function isTransientHelmFailure(stderr: string): boolean {
  return TRANSIENT.some((p) => p.test(stderr));
}

// Shapes of credentials that must never leave the provider, on top of the exact values
// registered with the scrubber: PEM private keys, bearer tokens, basic-auth in URLs.
const PATTERNS: ReadonlyArray<[RegExp, string]> = [
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g, '[redacted private key]'],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, '$1 [redacted]'],
  [/(\b[a-z][a-z0-9+.-]*:\/\/)[^/\s:@]+:[^/\s@]+@/gi, '$1[redacted]@'],
  [/((?:client-key|client-certificate|certificate-authority)-data|token|password)(["']?\s*[:=]\s*["']?)[^\s"',}]+/gi, '$1$2[redacted]'],
];

/** Masks known secret values and credential-shaped text. */
export class HelmScrubber {
  readonly #inner = new SecretScrubber();
  readonly #literals: Array<[string, string]> = [];

  /** Remembers secret values (the decrypted client key, the bearer token, ...). */
  addSecret(...values: Array<string | undefined>): void {
    this.#inner.add(...values);
    // PEM keys also reach error text line by line or base64-encoded (kubeconfig data).
    for (const v of values) {
      if (!v || v.length < 8) continue;
      this.#inner.add(Buffer.from(v).toString('base64'));
      for (const line of v.split('\n')) if (line.length >= 16 && !line.startsWith('-----')) this.#inner.add(line);
    }
  }

  /** Replaces `from` (e.g. the temporary workspace path) with `to` in scrubbed text. */
  replace(from: string, to: string): void {
    if (from) this.#literals.push([from, to]);
  }

  scrub(text: string): string {
    let out = this.#inner.scrub(text);
    for (const [re, to] of PATTERNS) out = out.replace(re, to);
    for (const [from, to] of this.#literals) out = out.split(from).join(to);
    return out;
  }
}
