// tptctl: the Threeport CLI (spec §5). Builds the command tree, runs plugins,
// and turns every failure into one line on stderr and a non-zero exit code
// (with the stack trace only under --debug).
import { resolve } from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { ApiConnectionError, ApiError } from '../client/errors.js';
import { CliError } from './errors.js';
import { registerControlPlaneCommands } from './control-plane-commands.js';
import { registerDashboardCommand } from './dashboard-command.js';
import { registerObjectCommands } from './object-commands.js';
import { Output, type Stream } from './output.js';
import { commandWord, listPlugins, runPlugin } from './plugins.js';
import { defaultGlobals, pluginDir, Session, type GlobalOptions } from './session.js';

export interface Io {
  out: Stream;
  err: Stream;
  env: NodeJS.ProcessEnv;
}

const GLOBAL_VALUE_OPTIONS = new Set(['--threeport-config', '--provider-config']);

function buildProgram(io: Io, output: Output, session: () => Session): Command {
  const defaults = defaultGlobals(io.env);
  const program = new Command('tptctl')
    .description('Manage Threeport control planes and the applications they deliver')
    .addOption(new Option('--threeport-config <path>', 'threeport config file (env THREEPORT_CONFIG)').default(defaults.threeportConfig))
    .option('--provider-config <dir>', 'provider state directory (local control planes live in <dir>/<name>)', defaults.providerConfig)
    .option('--debug', 'print stack traces with errors', false)
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      writeOut: (s) => void io.out.write(s),
      writeErr: (s) => void io.err.write(s),
      outputError: (s, write) => write(s.replace(/^error: /, `${output.paint('Error:', 'red', true)} `)),
    });
  registerControlPlaneCommands(program, session);
  registerObjectCommands(program, session);
  registerDashboardCommand(program, session);
  return program;
}

function coreCommandNames(program: Command): Set<string> {
  return new Set(program.commands.flatMap((c) => [c.name(), ...c.aliases()]).concat(['help']));
}

export async function main(argv: readonly string[], io: Io = { out: process.stdout, err: process.stderr, env: process.env }): Promise<number> {
  const output = new Output(io.out, io.err, io.env);
  let current: Session | undefined;
  let program: Command | undefined;
  const session = () => {
    if (!current) {
      const opts = program!.opts<GlobalOptions>();
      // Absolute, because up records the state directory in the config for later runs from anywhere.
      current = new Session({ threeportConfig: resolve(opts.threeportConfig), providerConfig: resolve(opts.providerConfig), debug: opts.debug }, output);
    }
    return current;
  };
  program = buildProgram(io, output, session);
  const args = argv.slice(2);
  const debug = args.includes('--debug');

  const core = coreCommandNames(program);
  const plugins = listPlugins(pluginDir(io.env), core);
  if (plugins.length > 0) {
    program.addHelpText('after', `\nPlugins (${pluginDir(io.env)}):\n${plugins.map((p) => `  ${p.name}`).join('\n')}\n`);
  }
  const word = commandWord(args, GLOBAL_VALUE_OPTIONS);
  if (word && !core.has(word)) {
    const plugin = plugins.find((p) => p.name === word);
    if (plugin) {
      const rest = args.slice(args.indexOf(word) + 1);
      const cfgIndex = args.findIndex((a) => a === '--threeport-config' || a.startsWith('--threeport-config='));
      const cfg =
        cfgIndex >= 0 ? (args[cfgIndex]!.includes('=') ? args[cfgIndex]!.split('=').slice(1).join('=') : args[cfgIndex + 1]) : defaultGlobals(io.env).threeportConfig;
      return runPlugin(plugin, rest, { ...io.env, THREEPORT_CONFIG: cfg ?? defaultGlobals(io.env).threeportConfig });
    }
  }

  try {
    await program.parseAsync([...argv]);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; commander already printed usage errors.
      return err.exitCode;
    }
    const message = err instanceof Error ? err.message : String(err);
    if (err instanceof CliError) output.error(message);
    else if (err instanceof ApiError || err instanceof ApiConnectionError) output.error(message);
    else output.error(debug ? message : `${message} (run with --debug for details)`);
    if (debug && err instanceof Error && err.stack) io.err.write(`${err.stack}\n`);
    return err instanceof CliError ? err.exitCode : 1;
  } finally {
    current?.close();
  }
}
