// `tptctl dashboard`: runs the dashboard proxy (src/dashboard/proxy.ts) for the current control
// plane (or -i NAME) until interrupted, and prints the URL to open.
import { Command, InvalidArgumentError } from 'commander';
import { apiBaseUrl } from '../client/api-client.js';
import { startDashboardProxy } from '../dashboard/proxy.js';
import { CliError } from './errors.js';
import type { Session } from './session.js';
import { tlsOf } from './threeport-config.js';

function parsePort(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535) throw new InvalidArgumentError('expected a port number from 0 to 65535');
  return n;
}

export function registerDashboardCommand(program: Command, session: () => Session): void {
  program
    .command('dashboard')
    .description('open the dashboard: a local proxy on 127.0.0.1 to the control plane, with your client certificate')
    .option('--port <port>', 'local port (0 picks a free one)', parsePort, 0)
    .option('-i, --control-plane-name <name>', 'control plane (default: the current one)')
    .action(async (opts: { port: number; controlPlaneName?: string }) => {
      const s = session();
      const cp = s.controlPlane(opts.controlPlaneName);
      if (!cp.APIServer) throw new CliError(`control plane ${JSON.stringify(cp.Name)} has no APIServer in the threeport config`);
      const auth = cp.AuthEnabled !== false;
      const upstream = apiBaseUrl(cp.APIServer, auth);
      let proxy;
      try {
        proxy = await startDashboardProxy({ upstream, port: opts.port, controlPlane: cp.Name, ...(auth ? { tls: tlsOf(cp) } : {}) });
      } catch (err) {
        throw new CliError(`cannot start the dashboard proxy on 127.0.0.1:${opts.port}: ${(err as Error).message}`);
      }
      s.out.info(`Dashboard for control plane ${JSON.stringify(cp.Name)} (${upstream}):`);
      s.out.print(proxy.url);
      if (!auth) s.out.info(`The control plane runs without authentication; it also serves the dashboard at ${upstream}/dashboard/`);
      s.out.info('Press Ctrl-C to stop.');
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await proxy.close();
    });
}
