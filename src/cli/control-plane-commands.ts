// `tptctl up`, `down`, `config ...` and `version`.
import { Command, InvalidArgumentError, Option } from 'commander';
import { VERSION } from '../version.js';
import { CliError } from './errors.js';
import { DEFAULT_API_PORT, dockerEngineAvailable, downLocal, registerGenesisControlPlane, registerLocalRuntime, upLocal, validateName } from './local-provider.js';
import { formatTable } from './output.js';
import { serialize } from './render.js';
import type { Session } from './session.js';
import { clientFor } from './threeport-config.js';

const PROVIDERS = ['local', 'kind', 'eks'] as const;

function parseBool(value: string): boolean {
  if (/^(true|1|yes)$/i.test(value)) return true;
  if (/^(false|0|no)$/i.test(value)) return false;
  throw new InvalidArgumentError('expected true or false');
}

function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new InvalidArgumentError('expected a port number from 0 to 65535');
  return n;
}

function laterProvider(provider: string): never {
  throw new CliError(
    `provider ${JSON.stringify(provider)} is not available yet: it comes with a later release; use --provider local for a control plane on this machine`,
  );
}

export function registerControlPlaneCommands(program: Command, session: () => Session): void {
  program
    .command('up')
    .description('start a control plane (provider local: a background threeport server on this machine)')
    .requiredOption('-n, --name <name>', `control plane name (at most 30 characters)`)
    .addOption(new Option('-p, --provider <provider>', 'where it runs (default: kind when a Docker engine answers, else local)').choices(PROVIDERS))
    .addOption(new Option('--auth-enabled [bool]', 'mutual TLS between clients and the API').argParser(parseBool).default(true))
    .option('--force-overwrite-config', 'replace an existing control plane entry of the same name (and restart it)', false)
    .option('--port <port>', `API port (default ${DEFAULT_API_PORT} when free, else any free port; 0 for any)`, parsePort)
    .option('--wait-timeout <seconds>', 'how long to wait for the API to answer', (v) => Number(v), 120)
    .option('--no-local-runtime', 'do not register a simulated (kwok) Kubernetes runtime as the default runtime')
    .option('--kind-kubeconfig <path>', 'kind provider only (later release)')
    .option('--aws-config-profile <profile>', 'eks provider only (later release)')
    .option('--aws-region <region>', 'eks provider only (later release)')
    .option('--root-domain <domain>', 'accepted for upstream compatibility; unused')
    .option('--admin-email <email>', 'accepted for upstream compatibility; unused')
    .action(async (opts: { name: string; provider?: string; authEnabled: boolean; forceOverwriteConfig: boolean; port?: number; waitTimeout: number; localRuntime: boolean }) => {
      const s = session();
      const name = validateName(opts.name);
      const provider = opts.provider ?? ((await dockerEngineAvailable()) ? 'kind' : 'local');
      if (provider !== 'local') laterProvider(provider);
      if (!Number.isFinite(opts.waitTimeout) || opts.waitTimeout <= 0) throw new CliError('--wait-timeout must be a positive number of seconds');
      const abort = new AbortController();
      const onSignal = () => abort.abort();
      process.once('SIGINT', onSignal);
      process.once('SIGTERM', onSignal);
      try {
        const entry = await upLocal({
          name,
          authEnabled: opts.authEnabled,
          forceOverwriteConfig: opts.forceOverwriteConfig,
          ...(opts.port !== undefined ? { port: opts.port } : {}),
          waitTimeoutMs: opts.waitTimeout * 1000,
          configPath: s.globals.threeportConfig,
          providerDir: s.globals.providerConfig,
          out: s.out,
          signal: abort.signal,
        });
        s.out.done(`control plane ${JSON.stringify(name)} is up at ${opts.authEnabled ? 'https' : 'http'}://${entry.APIServer} (provider local${opts.authEnabled ? ', mutual TLS' : ', no auth'})`);
        const runtimeId = opts.localRuntime ? await registerLocalRuntime(entry, s.out) : undefined;
        await registerGenesisControlPlane(entry, runtimeId, s.out);
        s.out.info(`logs: ${entry.LocalProviderConfig?.LogFile}`);
        s.out.info(`it is now the current control plane in ${s.globals.threeportConfig}; stop it with "tptctl down -n ${name}"`);
      } finally {
        process.removeListener('SIGINT', onSignal);
        process.removeListener('SIGTERM', onSignal);
      }
    });

  program
    .command('down')
    .description('stop a control plane and remove it (and its data, unless --keep-data) from this machine and the threeport config')
    .requiredOption('-n, --name <name>', 'control plane name')
    .option('--keep-data', 'keep the database, certificates and logs under the provider config directory', false)
    .option('--control-plane-only', 'accepted for upstream compatibility (the local provider has no separate infrastructure)')
    .action(async (opts: { name: string; keepData: boolean }) => {
      const s = session();
      const { dir, removedEntry } = await downLocal({
        name: opts.name,
        keepData: opts.keepData,
        configPath: s.globals.threeportConfig,
        providerDir: s.globals.providerConfig,
        out: s.out,
      });
      s.out.done(`control plane ${JSON.stringify(opts.name)} stopped${opts.keepData ? `; its data is kept in ${dir}` : ' and its data removed'}`);
      if (!removedEntry) s.out.warn(`control plane ${JSON.stringify(opts.name)} was not in ${s.globals.threeportConfig}`);
    });

  const config = program.command('config').description('manage the threeport config');
  config
    .command('current-control-plane')
    .description('set the control plane that commands talk to by default')
    .requiredOption('-n, --name <name>', 'control plane name')
    .action((opts: { name: string }) => {
      const s = session();
      const cfg = s.config();
      cfg.resolve(opts.name); // must exist
      cfg.setCurrent(opts.name);
      cfg.save();
      s.out.done(`current control plane set to ${JSON.stringify(opts.name)}`);
    });
  config
    .command('get-control-planes')
    .description('list the control planes in the threeport config')
    .addOption(new Option('-o, --output <format>', 'output format (default: a table)').choices(['json', 'yaml']))
    .action((opts: { output?: 'json' | 'yaml' }) => {
      const s = session();
      const cfg = s.config();
      const planes = cfg.controlPlanes();
      if (opts.output) {
        const safe = planes.map((cp) => ({
          Name: cp.Name,
          Current: cp.Name === cfg.current,
          Provider: cp.Provider ?? null,
          APIServer: cp.APIServer ?? null,
          AuthEnabled: cp.AuthEnabled ?? null,
          Genesis: cp.Genesis ?? null,
        }));
        s.out.print(serialize(safe, opts.output));
        return;
      }
      if (planes.length === 0) {
        s.out.err.write(`No control planes in ${cfg.path}.\n`);
        return;
      }
      s.out.print(
        formatTable(
          ['CURRENT', 'NAME', 'PROVIDER', 'API SERVER', 'AUTH ENABLED', 'GENESIS'],
          planes.map((cp) => [cp.Name === cfg.current ? '*' : '', cp.Name, cp.Provider ?? '', cp.APIServer ?? '', String(cp.AuthEnabled ?? ''), String(cp.Genesis ?? '')]),
        ),
      );
    });

  program
    .command('version')
    .description('print the tptctl version, and the API version of the current control plane when it answers')
    .option('-i, --control-plane-name <name>', 'the control plane to ask (default: the current one)')
    .action(async (opts: { controlPlaneName?: string }) => {
      const s = session();
      s.out.info(`tptctl ${VERSION}`);
      const cfg = s.config();
      const name = opts.controlPlaneName || cfg.current;
      if (!name) return;
      const cp = cfg.resolve(name);
      const api = clientFor(cp, 5000);
      try {
        s.out.info(`API ${await api.version()} (control plane ${JSON.stringify(cp.Name)})`);
      } catch (err) {
        s.out.warn(`control plane ${JSON.stringify(cp.Name)} did not answer: ${(err as Error).message}`);
      } finally {
        api.close();
      }
    });
}
