// Status in words and in colour. Every badge shows the word; the colour only repeats it.
export type Tone = 'ok' | 'bad' | 'busy' | 'idle';

const TONES: Record<string, Tone> = {
  Healthy: 'ok',
  Reconciled: 'ok',
  Stored: 'idle',
  Reconciling: 'busy',
  Deleting: 'busy',
  Unhealthy: 'bad',
  Down: 'bad',
  Error: 'bad',
  Failed: 'bad',
  Unreachable: 'bad',
};

export function toneOf(status: string): Tone {
  return TONES[status] ?? 'idle';
}

export const TONE_SYMBOL: Record<Tone, string> = { ok: '●', bad: '✖', busy: '◐', idle: '○' };

/** What to show for an object whose runtime does not answer: Unreachable, with the last status kept in words. */
export function withReachability(status: string, reachable: boolean | undefined): { status: string; detail?: string } {
  if (reachable === false) return { status: 'Unreachable', detail: `runtime unreachable; last status ${status}` };
  return { status };
}

export function age(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}
