// tptctl plugins (spec §5.1): executables in ~/.threeport/plugins (or
// THREEPORT_PLUGIN_DIR). `tptctl <plugin> args...` runs one; a plugin whose
// name clashes with a core command is ignored.
import { spawn } from 'node:child_process';
import { accessSync, constants, readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';

export interface Plugin {
  name: string;
  path: string;
}

export function listPlugins(dir: string, coreCommands: ReadonlySet<string>): Plugin[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  const plugins = new Map<string, Plugin>();
  for (const file of entries.sort()) {
    const path = join(dir, file);
    try {
      if (!statSync(path).isFile()) continue;
      accessSync(path, constants.X_OK);
    } catch {
      continue;
    }
    // `foo` and `foo.sh` both answer to `tptctl foo`; the exact name wins.
    for (const name of [file, file.slice(0, file.length - extname(file).length)]) {
      if (!name || coreCommands.has(name)) continue;
      if (!plugins.has(name) || name === file) plugins.set(name, { name, path });
    }
  }
  return [...plugins.values()];
}

/** The first argument that is not an option (or an option's value): the command name. */
export function commandWord(args: readonly string[], optionsWithValues: ReadonlySet<string>): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') return args[i + 1];
    if (a.startsWith('-')) {
      if (!a.includes('=') && optionsWithValues.has(a)) i++;
      continue;
    }
    return a;
  }
  return undefined;
}

export async function runPlugin(plugin: Plugin, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(plugin.path, args, { stdio: 'inherit', env });
    child.once('error', (err) => {
      process.stderr.write(`Error: plugin ${plugin.name} (${plugin.path}) could not be run: ${err.message}\n`);
      resolve(1);
    });
    child.once('exit', (code, signal) => {
      if (signal) {
        const n = { SIGINT: 2, SIGTERM: 15, SIGKILL: 9 }[signal as string] ?? 1;
        resolve(128 + n);
      } else resolve(code ?? 1);
    });
  });
}
