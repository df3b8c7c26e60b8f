// Terminal output in kubectl's habits: aligned tables, short ages, colour only
// on a terminal (and never with NO_COLOR), progress on stderr so that stdout
// stays parseable, one-line errors.

export interface Stream {
  write(text: string): unknown;
  isTTY?: boolean;
}

function colourAllowed(stream: Stream, env: NodeJS.ProcessEnv): boolean {
  if (env['NO_COLOR'] !== undefined && env['NO_COLOR'] !== '') return false;
  if (env['FORCE_COLOR'] !== undefined && env['FORCE_COLOR'] !== '0') return true;
  return stream.isTTY === true && env['TERM'] !== 'dumb';
}

const CODES = { red: 31, green: 32, yellow: 33, cyan: 36, bold: 1, dim: 2 } as const;
export type Colour = keyof typeof CODES;

export class Output {
  readonly colour: boolean;
  readonly errColour: boolean;

  constructor(
    readonly out: Stream = process.stdout,
    readonly err: Stream = process.stderr,
    readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.colour = colourAllowed(out, env);
    this.errColour = colourAllowed(err, env);
  }

  paint(text: string, colour: Colour, forErr = false): string {
    return (forErr ? this.errColour : this.colour) ? `\x1b[${CODES[colour]}m${text}\x1b[0m` : text;
  }

  /** Plain data for stdout (tables, JSON, YAML). */
  print(text: string): void {
    this.out.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  info(message: string): void {
    this.out.write(`${message}\n`);
  }

  /** A step that finished: "✔ WorkloadDefinition "x" created" on a terminal. */
  done(message: string): void {
    this.out.write(this.colour ? `${this.paint('✔', 'green')} ${message}\n` : `${message}\n`);
  }

  warn(message: string): void {
    this.err.write(`${this.paint('Warning:', 'yellow', true)} ${message}\n`);
  }

  error(message: string): void {
    this.err.write(`${this.paint('Error:', 'red', true)} ${message}\n`);
  }

  /**
   * Progress for waits longer than a second: nothing for the first second,
   * then a spinner on a terminal, or a line and then one every 10 s otherwise.
   */
  progress(label: string, delayMs = 1000): Progress {
    return new Progress(this.err, this.err.isTTY === true, label, this.errColour, delayMs);
  }
}

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export class Progress {
  readonly #started = Date.now();
  #delay: NodeJS.Timeout | undefined;
  #timer: NodeJS.Timeout | undefined;
  #shown = false;
  #frame = 0;
  #label: string;
  #lastLine = 0;

  constructor(
    private readonly stream: Stream,
    private readonly tty: boolean,
    label: string,
    private readonly colour: boolean,
    delayMs: number,
  ) {
    this.#label = label;
    this.#delay = setTimeout(() => this.#begin(), delayMs);
    this.#delay.unref();
  }

  #begin(): void {
    this.#shown = true;
    if (this.tty) {
      this.#draw();
      this.#timer = setInterval(() => this.#draw(), 100);
    } else {
      this.stream.write(`${this.#label} ...\n`);
      this.#lastLine = Date.now();
      this.#timer = setInterval(() => {
        if (Date.now() - this.#lastLine >= 10_000) {
          this.#lastLine = Date.now();
          this.stream.write(`${this.#label} ... still waiting (${formatDuration(Date.now() - this.#started)})\n`);
        }
      }, 1000);
    }
    this.#timer.unref();
  }

  #draw(): void {
    const frame = FRAMES[this.#frame++ % FRAMES.length]!;
    const spinner = this.colour ? `\x1b[36m${frame}\x1b[0m` : frame;
    this.stream.write(`\r\x1b[2K${spinner} ${this.#label} (${formatDuration(Date.now() - this.#started)})`);
  }

  update(label: string): void {
    this.#label = label;
    if (this.#shown && !this.tty) {
      this.stream.write(`${label} ...\n`);
      this.#lastLine = Date.now();
    }
  }

  /** Clears the spinner; the caller prints the outcome. */
  stop(): void {
    clearTimeout(this.#delay);
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#shown && this.tty) this.stream.write('\r\x1b[2K');
  }
}

/** 5s, 3m, 2h, 4d, 2y: the short age kubectl prints. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h`;
  const d = Math.floor(h / 24);
  if (d < 365) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

export function age(since: string | undefined | null, now = Date.now()): string {
  if (!since) return '<unknown>';
  const t = Date.parse(since);
  return Number.isNaN(t) ? '<unknown>' : formatDuration(now - t);
}

/** Columns separated by three spaces, left-aligned, as kubectl prints them. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

