// The dashboard's live updates: ONE LISTEN connection per server process on the store's change
// channel (every object write NOTIFYs `<Kind>:<id>:<C|U|D>`, see src/store/object-store.ts),
// fanned out to every connected browser as server-sent events.
//
// Event IDs are `<epoch>-<seq>`: the epoch names this feed's lifetime, seq counts changes. A ring
// buffer keeps the last changes, so a browser that reconnects with Last-Event-ID gets exactly the
// changes it missed. When it cannot (another epoch after a restart, a gap longer than the buffer,
// or notifications possibly lost while the LISTEN connection was down) it gets a `reset` event
// and reloads what it shows: it never silently misses a change.
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Database } from '../store/database.js';
import { CHANGE_CHANNEL } from '../store/schema.js';
import { backoffDelay } from '../system.js';

export interface Change {
  seq: number;
  kind: string;
  id: number;
  op: 'C' | 'U' | 'D';
}

/** Anything pushed to browsers besides object changes (e.g. runtime reachability). */
export interface Notice {
  event: string;
  data: unknown;
}

const BUFFER = 10_000;
const HEARTBEAT_MS = 15_000;

export class ChangeFeed {
  readonly epoch = randomBytes(4).toString('hex');
  readonly #db: Database;
  readonly #log: Logger;
  readonly #clients = new Set<ServerResponse>();
  readonly #buffer: Change[] = [];
  #seq = 0;
  #listen: pg.Client | undefined;
  #failures = 0;
  #retry: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #closed = false;
  #listening: Promise<void> | undefined;
  /** Called when the first browser connects and when the last one leaves. */
  onAudience?: (clients: number) => void;

  constructor(db: Database, log: Logger) {
    this.#db = db;
    this.#log = log;
  }

  get clients(): number {
    return this.#clients.size;
  }

  /** Starts listening (lazily, with the first browser) and resolves once LISTEN is in place. */
  start(): Promise<void> {
    this.#listening ??= this.#connect();
    this.#heartbeat ??= setInterval(() => this.#write(': keep-alive\n\n'), HEARTBEAT_MS).unref();
    return this.#listening;
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    const client = this.#db.newClient();
    this.#listen = client;
    client.on('notification', (msg) => {
      if (msg.channel === CHANGE_CHANNEL && msg.payload) this.#publish(msg.payload);
    });
    client.on('error', (err) => this.#lost(client, err));
    client.on('end', () => this.#lost(client));
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANGE_CHANNEL}`);
    } catch (err) {
      this.#lost(client, err);
      return;
    }
    if (this.#failures > 0) {
      this.#log.info('dashboard change feed: LISTEN restored');
      // Changes committed while we were not listening were never seen: every browser reloads.
      this.#resetAll();
    }
    this.#failures = 0;
  }

  #lost(client: pg.Client, err?: unknown): void {
    if (this.#listen !== client || this.#closed) return;
    this.#listen = undefined;
    client.removeAllListeners('notification');
    void client.end().catch(() => {});
    this.#failures += 1;
    const delay = backoffDelay(this.#failures, { initialMs: 500, maxMs: 10_000 });
    this.#log.warn({ err: err ? String(err) : undefined, retryInMs: delay }, 'dashboard change feed: LISTEN connection lost');
    this.#retry = setTimeout(() => void this.#connect(), delay);
    this.#retry.unref();
  }

  #publish(payload: string): void {
    const [kind, id, op] = payload.split(':');
    if (!kind || !id || (op !== 'C' && op !== 'U' && op !== 'D')) return;
    const change: Change = { seq: ++this.#seq, kind, id: Number(id), op };
    this.#buffer.push(change);
    if (this.#buffer.length > BUFFER) this.#buffer.splice(0, this.#buffer.length - BUFFER);
    this.#write(this.#frame(change));
  }

  #frame(c: Change): string {
    return `id: ${this.epoch}-${c.seq}\nevent: change\ndata: {"kind":"${c.kind}","id":${c.id},"op":"${c.op}"}\n\n`;
  }

  /** Pushes a notice to every browser (not replayed on reconnect: notices describe the present). */
  notify(notice: Notice): void {
    this.#write(`event: ${notice.event}\ndata: ${JSON.stringify(notice.data)}\n\n`);
  }

  #resetAll(): void {
    this.#write(`id: ${this.epoch}-${this.#seq}\nevent: reset\ndata: {}\n\n`);
  }

  #write(frame: string): void {
    for (const res of this.#clients) res.write(frame);
  }

  /**
   * Serves one browser's stream on `res` (already past routing). `lastEventId` is the browser's
   * Last-Event-ID: the missed changes are replayed, or a reset is sent when they cannot be.
   */
  async attach(res: ServerResponse, lastEventId: string | undefined): Promise<void> {
    await this.start();
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write(`retry: 1000\n\n`);
    const [epoch, seqText] = (lastEventId ?? '').split('-');
    const since = Number(seqText);
    if (lastEventId && epoch === this.epoch && Number.isSafeInteger(since) && since <= this.#seq) {
      const oldest = this.#buffer[0]?.seq ?? this.#seq + 1;
      if (since + 1 >= oldest || since === this.#seq) {
        for (const c of this.#buffer) if (c.seq > since) res.write(this.#frame(c));
      } else {
        res.write(`id: ${this.epoch}-${this.#seq}\nevent: reset\ndata: {}\n\n`);
      }
    } else if (lastEventId) {
      res.write(`id: ${this.epoch}-${this.#seq}\nevent: reset\ndata: {}\n\n`);
    } else {
      // A fresh page: tell it where the feed stands, so its next reconnect resumes from here.
      res.write(`id: ${this.epoch}-${this.#seq}\nevent: hello\ndata: {}\n\n`);
    }
    this.#clients.add(res);
    if (this.#clients.size === 1) this.onAudience?.(1);
    res.on('close', () => {
      this.#clients.delete(res);
      if (this.#clients.size === 0) this.onAudience?.(0);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    clearInterval(this.#heartbeat);
    for (const res of this.#clients) res.end();
    this.#clients.clear();
    const client = this.#listen;
    this.#listen = undefined;
    await client?.end().catch(() => {});
  }
}
