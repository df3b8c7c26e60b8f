// Runs the compiled `threeport server` as a child process, the way users and
// `tptctl up` run it, so tests can kill it for real.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

export const THREEPORT_BIN = fileURLToPath(new URL('../../src/bin/threeport.js', import.meta.url));

export interface ServerProcess {
  url: string;
  child: ChildProcess;
  /** Resolves with the exit code once the process has ended. */
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function spawnServer(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 60_000,
  /** detached: the server leads its own process group (with its embedded PostgreSQL), so a test can kill the group. */
  options: { detached?: boolean } = {},
): Promise<ServerProcess> {
  const child = spawn(process.execPath, [THREEPORT_BIN, 'server', ...args], {
    env: { ...process.env, THREEPORT_LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`threeport server did not start within ${timeoutMs} ms: ${stderr}`));
    }, timeoutMs);
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      if (!line.includes('"listening"')) return;
      clearTimeout(timer);
      resolve((JSON.parse(line) as { url: string }).url);
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`threeport server exited with ${code} before listening: ${stderr}`));
    });
  });
  return {
    url,
    child,
    exited,
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}
