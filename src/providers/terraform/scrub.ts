// Keeps variable values and credentials out of everything that leaves a tofu run: error messages,
// events, log lines and statuses. OpenTofu masks values of variables declared `sensitive`, but not
// others, and its diagnostics quote configuration lines; so every string value of the instance's
// variables document is masked too, as are the AWS credentials handed to tofu, and anything shaped
// like an access key, a private key or a credential in a URL.
import { SecretScrubber } from '../aws/redact.js';

/** Values shorter than this are not masked: they would mask ordinary words ("us", "dev"). */
const MIN_VALUE_LENGTH = 4;

const PATTERNS: ReadonlyArray<[RegExp, string]> = [
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g, '[redacted private key]'],
  [/(\b[a-z][a-z0-9+.-]*:\/\/)[^/\s:@]+:[^/\s@]+@/gi, '$1[redacted]@'],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, '$1 [redacted]'],
];

/** The string values of a tfvars document (HCL) or a tfvars.json document; map keys are not values. */
export function variableValues(document: string): string[] {
  const out = new Set<string>();
  const text = document.trim();
  if (text.startsWith('{')) {
    try {
      const walk = (v: unknown): void => {
        if (typeof v === 'string') out.add(v);
        else if (Array.isArray(v)) v.forEach(walk);
        else if (v && typeof v === 'object') Object.values(v).forEach(walk);
      };
      walk(JSON.parse(text));
      return [...out];
    } catch {
      // not JSON after all: read it as HCL
    }
  }
  // Heredocs: <<EOT … EOT and <<-EOT … EOT; the body and each of its lines.
  const heredoc = /<<-?([A-Za-z_][A-Za-z0-9_]*)[ \t]*\r?\n([\s\S]*?)\r?\n[ \t]*\1[ \t]*(?:\r?\n|$)/g;
  let rest = document;
  for (const m of document.matchAll(heredoc)) {
    const body = m[2]!;
    out.add(body);
    for (const line of body.split('\n')) out.add(line.trim());
    rest = rest.replace(m[0], '\n');
  }
  // Quoted strings, unless a `=` or `:` follows (then it is a map key).
  for (const m of rest.matchAll(/"((?:[^"\\\n]|\\.)*)"/g)) {
    if (/^\s*[=:]/.test(rest.slice(m.index! + m[0].length))) continue;
    const raw = m[1]!;
    out.add(raw);
    try {
      out.add(JSON.parse(`"${raw}"`) as string); // the unescaped form, as tofu would print it
    } catch {
      // HCL escapes JSON does not know (e.g. ${ } templates): the raw form is enough
    }
  }
  return [...out];
}

export class TofuScrubber {
  readonly #secrets = new SecretScrubber();
  readonly #values = new Set<string>();
  readonly #literals: Array<[string, string]> = [];

  /** Remembers credentials (8 characters or more). */
  addSecret(...values: Array<string | undefined>): void {
    this.#secrets.add(...values);
  }

  /** Remembers variable values (4 characters or more). */
  addValues(values: Iterable<string>): void {
    for (const v of values) if (v.length >= MIN_VALUE_LENGTH) this.#values.add(v);
  }

  /** Replaces `from` (e.g. the temporary workspace path) with `to` in scrubbed text. */
  replace(from: string, to: string): void {
    if (from) this.#literals.push([from, to]);
  }

  scrub(text: string): string {
    let out = this.#secrets.scrub(text);
    for (const v of [...this.#values].sort((a, b) => b.length - a.length)) out = out.split(v).join('[redacted]');
    for (const [re, to] of PATTERNS) out = out.replace(re, to);
    for (const [from, to] of this.#literals) out = out.split(from).join(to);
    return out;
  }
}
