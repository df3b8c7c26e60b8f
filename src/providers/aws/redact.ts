// Keeps credentials out of every string that leaves the AWS provider: error
// messages, log lines, event notes and statuses. The provider registers each
// secret it handles (decrypted keys, assumed-role credentials, EKS tokens); on
// top of that, anything shaped like an AWS access key ID or a presigned
// signature is masked.

const PATTERNS: readonly RegExp[] = [
  /\b(?:AKIA|ASIA|AROA|AIDA)[A-Z0-9]{12,}\b/g, // access key IDs (and role/user unique IDs)
  /X-Amz-Signature=[0-9a-f]+/gi,
  /X-Amz-Credential=[^&\s"']+/gi,
  /X-Amz-Security-Token=[^&\s"']+/gi,
  /Credential=[A-Za-z0-9]+\/[^,\s"']+/g,
  /k8s-aws-v1\.[A-Za-z0-9_-]+/g,
];

export class SecretScrubber {
  readonly #secrets = new Set<string>();

  /** Remembers a secret value; values shorter than 8 characters are ignored (they would mask ordinary words). */
  add(...values: Array<string | undefined>): void {
    for (const v of values) if (v && v.length >= 8) this.#secrets.add(v);
  }

  scrub(text: string): string {
    let out = text;
    // Longest first, so a secret containing another is masked whole.
    for (const s of [...this.#secrets].sort((a, b) => b.length - a.length)) out = out.split(s).join('[redacted]');
    for (const p of PATTERNS) out = out.replace(p, '[redacted]');
    return out;
  }
}
