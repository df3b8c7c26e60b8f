// Errors the CLI reports as one line on stderr, with exit code 1 and no stack
// trace (unless --debug).

/** Something the user can fix: bad flags, a bad config file, a missing control plane. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

export interface Position {
  line: number;
  col: number;
}

/** A problem in an object config file: names the file, the position, the field path and what is expected. */
export class ConfigError extends CliError {
  constructor(
    readonly file: string,
    readonly path: string,
    readonly problem: string,
    readonly position?: Position,
  ) {
    super(`${file}${position ? `:${position.line}:${position.col}` : ''}: ${path ? `${path}: ` : ''}${problem}`);
  }
}
