// The `local` provider: a control plane on this machine, as one background
// `threeport server` process with its embedded PostgreSQL, its certificates
// and its encryption key under `<provider-config>/<name>/` (by default
// ~/.threeport/<name>/). `up` writes the control plane into the threeport
// config only once the API answers over mTLS, so a failed `up` leaves neither
// a config entry nor a process behind (upstream issue #227).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { threeportServerScript } from '../providers/executables.js';
import { freePort, portIsFree, processAlive } from '../system.js';
import { ThreeportClient } from '../client/api-client.js';
import { ObjectConflictError } from '../client/errors.js';
import { controlPlane, kubernetesRuntime } from '../kinds/index.js';
import { localRuntimeAvailability, localRuntimeObjects } from '../providers/runtimes/local.js';
import { CliError } from './errors.js';
import type { Output } from './output.js';
import { ThreeportConfigFile, clientFor, encodePem, type ControlPlaneConfig } from './threeport-config.js';

export const DEFAULT_API_PORT = 1323;
export const NAME_MAX = 30;
const NAME_PATTERN = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

export const SERVER_PID_FILE = 'threeport.pid';
export const SERVER_LOG_FILE = 'threeport.log';

export { threeportServerScript } from '../providers/executables.js';

export function validateName(name: string | undefined): string {
  if (!name) throw new CliError('a control plane name is required: pass -n <name>');
  if (name.length > NAME_MAX) throw new CliError(`control plane name ${JSON.stringify(name)} is ${name.length} characters long; the limit is ${NAME_MAX}`);
  if (!NAME_PATTERN.test(name)) {
    throw new CliError(`control plane name ${JSON.stringify(name)} is not valid: use lower-case letters, digits and dashes, starting and ending with a letter or digit`);
  }
  return name;
}

/** The command line of a process (Linux), to make sure a pid from a file is still the process we think. */
function commandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return undefined;
  }
}

function pidFrom(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, 'utf8').split('\n')[0]!.trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The pid of the control plane server running from `dir`, if one is. */
export function runningServer(dir: string): number | undefined {
  const pid = pidFrom(join(dir, SERVER_PID_FILE));
  if (pid === undefined || !processAlive(pid)) return undefined;
  const cmd = commandLine(pid);
  return cmd === undefined || cmd.includes(dir) ? pid : undefined;
}

/** The embedded PostgreSQL of `dir`, if it is still running (its pid is the first line of postmaster.pid). */
export function runningPostgres(dir: string): number | undefined {
  const pid = pidFrom(join(dir, 'db', 'pgdata', 'postmaster.pid'));
  if (pid === undefined || !processAlive(pid)) return undefined;
  const cmd = commandLine(pid);
  return cmd === undefined || cmd.includes('postgres') ? pid : undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function terminate(pid: number, signal: NodeJS.Signals, graceMs: number): Promise<'stopped' | 'killed'> {
  try {
    process.kill(pid, signal);
  } catch {
    return 'stopped';
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!processAlive(pid)) return 'stopped';
    await sleep(100);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
  for (let i = 0; i < 50 && processAlive(pid); i++) await sleep(100);
  return 'killed';
}

/** Stops the server of `dir` (SIGTERM, then SIGKILL after the grace period) and its PostgreSQL if that is left running. */
export async function stopLocal(dir: string, out: Output | undefined, graceMs = 30_000): Promise<void> {
  const server = runningServer(dir);
  if (server !== undefined) {
    const progress = out?.progress(`stopping threeport server (pid ${server})`);
    const how = await terminate(server, 'SIGTERM', graceMs);
    progress?.stop();
    if (how === 'killed') out?.warn(`threeport server (pid ${server}) did not stop within ${graceMs / 1000}s and was killed`);
  }
  const pg = runningPostgres(dir);
  if (pg !== undefined) {
    const how = await terminate(pg, 'SIGINT', 10_000);
    if (how === 'killed') out?.warn(`embedded PostgreSQL (pid ${pg}) did not stop within 10s and was killed`);
  }
  rmSync(join(dir, SERVER_PID_FILE), { force: true });
}

/** Whether a Docker engine answers on its socket (the default provider is kind then, local otherwise). */
export async function dockerEngineAvailable(env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const host = env['DOCKER_HOST'];
  const path = host?.startsWith('unix://') ? host.slice('unix://'.length) : host ? undefined : '/var/run/docker.sock';
  if (!path || !existsSync(path)) return false;
  return new Promise((resolve) => {
    const socket = connect(path);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, 1000);
    let reply = '';
    socket.on('connect', () => socket.write('GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n'));
    socket.on('data', (d) => (reply += d.toString()));
    socket.on('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(/^HTTP\/1\.\d 200/.test(reply));
    });
  });
}

function lastLogProblem(logFile: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return undefined;
  }
  const lines = text.trim().split('\n').slice(-30).reverse();
  for (const line of lines) {
    if (line.startsWith('threeport server:')) return line.slice('threeport server:'.length).trim();
  }
  for (const line of lines) {
    try {
      const rec = JSON.parse(line) as { level?: number; msg?: string };
      if ((rec.level ?? 0) >= 50 && rec.msg) return rec.msg;
    } catch {
      if (/error/i.test(line)) return line.trim();
    }
  }
  return undefined;
}

export interface UpOptions {
  name: string;
  authEnabled: boolean;
  forceOverwriteConfig: boolean;
  /** Default: 1323 when free, else any free port. */
  port?: number;
  waitTimeoutMs: number;
  configPath: string;
  providerDir: string;
  out: Output;
  signal?: AbortSignal;
}

export async function upLocal(options: UpOptions): Promise<ControlPlaneConfig> {
  const { name, out } = options;
  const config = ThreeportConfigFile.load(options.configPath);
  const existing = config.find(name);
  if (existing && !options.forceOverwriteConfig) {
    throw new CliError(
      `control plane ${JSON.stringify(name)} already exists in ${options.configPath}${existing.APIServer ? ` (API ${existing.APIServer})` : ''}: run "tptctl down -n ${name}" first, choose another name, or pass --force-overwrite-config`,
    );
  }
  const dir = existing?.LocalProviderConfig?.DataDir ?? join(options.providerDir, name);
  const running = runningServer(dir);
  if (running !== undefined) {
    if (!options.forceOverwriteConfig) {
      throw new CliError(`a control plane is already running from ${dir} (pid ${running}): run "tptctl down -n ${name}" first, or pass --force-overwrite-config to restart it`);
    }
    await stopLocal(dir, out);
  }

  const fresh = !existsSync(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const logFile = join(dir, SERVER_LOG_FILE);
  let port = options.port;
  if (port === undefined) port = (await portIsFree(DEFAULT_API_PORT)) ? DEFAULT_API_PORT : await freePort();
  else if (port !== 0 && !(await portIsFree(port))) throw new CliError(`port ${port} on 127.0.0.1 is already in use: pass another --port, or 0 for any free port`);
  else if (port === 0) port = await freePort();

  const args = [threeportServerScript(), 'server', '--port', String(port), '--host', '127.0.0.1', '--data-dir', dir];
  if (!options.authEnabled) args.push('--no-auth');
  // The control plane's own /metrics over plain HTTP on loopback, so that an observability stack
  // on a local runtime scrapes it (the API itself wants a client certificate).
  args.push('--metrics-port', String(await freePort()));
  // The local control plane keeps its own key and database: the caller's settings for another one must not leak in.
  const env = { ...process.env };
  delete env['ENCRYPTION_KEY'];
  delete env['THREEPORT_DATABASE_URL'];
  const logFd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', logFd, logFd], env });
  } finally {
    closeSync(logFd);
  }
  let exited: string | undefined;
  child.once('exit', (code, signal) => {
    exited = signal ? `was killed by ${signal}` : `exited with code ${code}`;
  });
  child.once('error', (err) => {
    exited = `could not be started: ${err.message}`;
  });
  if (child.pid !== undefined) writeFileSync(join(dir, SERVER_PID_FILE), `${child.pid}\n`);
  child.unref();

  const scheme = options.authEnabled ? 'https' : 'http';
  const url = `${scheme}://127.0.0.1:${port}`;
  const progress = out.progress(`starting control plane ${JSON.stringify(name)} at ${url}`);
  try {
    await waitForApi(dir, url, options, () => exited);
    progress.stop();
  } catch (err) {
    progress.stop();
    if (child.pid !== undefined && processAlive(child.pid)) await terminate(child.pid, 'SIGTERM', 10_000);
    await stopLocal(dir, undefined, 10_000);
    let kept = logFile;
    if (fresh) {
      kept = join(options.providerDir, `${name}.failed-up.log`);
      try {
        renameSync(logFile, kept);
      } catch {
        kept = '';
      }
      rmSync(dir, { recursive: true, force: true });
    }
    const problem = lastLogProblem(kept || logFile);
    if (options.signal?.aborted) {
      throw new CliError(`tptctl up -n ${name} was interrupted; the server was stopped and nothing was written to the threeport config`, 130);
    }
    throw new CliError(
      `control plane ${JSON.stringify(name)} did not start: ${(err as Error).message}${problem ? `: ${problem}` : ''}${kept ? ` (log: ${kept})` : ''}; nothing was written to the threeport config`,
    );
  }

  const entry: ControlPlaneConfig = {
    Name: name,
    AuthEnabled: options.authEnabled,
    Genesis: true,
    APIServer: `127.0.0.1:${port}`,
    ...(options.authEnabled
      ? {
          CACert: encodePem(readFileSync(join(dir, 'pki', 'ca.crt'), 'utf8')),
          Credentials: [
            {
              Name: name,
              ClientCert: encodePem(readFileSync(join(dir, 'pki', 'client.crt'), 'utf8')),
              ClientKey: encodePem(readFileSync(join(dir, 'pki', 'client.key'), 'utf8')),
            },
          ],
        }
      : {}),
    Provider: 'local',
    EncryptionKey: readFileSync(join(dir, 'encryption.key'), 'utf8').trim(),
    LocalProviderConfig: { DataDir: dir, LogFile: logFile },
  };
  // Re-read: another tptctl may have written the file while the server started.
  const latest = ThreeportConfigFile.load(options.configPath);
  latest.upsert(entry);
  latest.setCurrent(name);
  latest.save();
  return entry;
}

async function waitForApi(dir: string, url: string, options: UpOptions, exited: () => string | undefined): Promise<void> {
  const deadline = Date.now() + options.waitTimeoutMs;
  const pki = join(dir, 'pki');
  let lastError = '';
  while (Date.now() < deadline) {
    if (options.signal?.aborted) throw new Error('interrupted');
    const gone = exited();
    if (gone) throw new Error(`threeport server ${gone}`);
    const ready = !options.authEnabled || ['ca.crt', 'client.crt', 'client.key'].every((f) => existsSync(join(pki, f)));
    if (ready && existsSync(join(dir, 'encryption.key'))) {
      let client: ThreeportClient | undefined;
      try {
        client = new ThreeportClient({
          baseUrl: url,
          timeoutMs: 2000,
          ...(options.authEnabled
            ? {
                tls: {
                  ca: readFileSync(join(pki, 'ca.crt'), 'utf8'),
                  cert: readFileSync(join(pki, 'client.crt'), 'utf8'),
                  key: readFileSync(join(pki, 'client.key'), 'utf8'),
                },
              }
            : {}),
        });
        await client.version();
        return;
      } catch (err) {
        lastError = (err as Error).message;
      } finally {
        client?.close();
      }
    }
    await sleep(200);
  }
  throw new Error(`the API did not answer within ${Math.round(options.waitTimeoutMs / 1000)}s${lastError ? ` (last error: ${lastError})` : ''}`);
}

export interface DownOptions {
  name: string;
  keepData: boolean;
  configPath: string;
  providerDir: string;
  out: Output;
}

export async function downLocal(options: DownOptions): Promise<{ dir: string; removedEntry: boolean }> {
  const { name, out } = options;
  const config = ThreeportConfigFile.load(options.configPath);
  const entry = config.find(name);
  if (entry && entry.Provider !== 'local') {
    throw new CliError(
      `control plane ${JSON.stringify(name)} uses provider ${JSON.stringify(entry.Provider ?? 'kind')}; "tptctl down" for the kind and eks providers comes with a later release`,
    );
  }
  const dir = entry?.LocalProviderConfig?.DataDir ?? join(options.providerDir, name);
  if (!entry && !existsSync(dir)) {
    throw new CliError(`no control plane named ${JSON.stringify(name)}: it is not in ${options.configPath} and ${dir} does not exist`);
  }
  await stopLocal(dir, out);
  if (!options.keepData) rmSync(dir, { recursive: true, force: true });
  const latest = ThreeportConfigFile.load(options.configPath);
  const removedEntry = latest.remove(name);
  if (removedEntry) latest.save();
  return { dir, removedEntry };
}

/** The name of the simulated runtime `up` registers, after upstream's genesis runtime `threeport-<name>`. */
export function localRuntimeName(controlPlane: string): string {
  return `threeport-${controlPlane}`;
}

/**
 * Registers a default Kubernetes runtime for a new local control plane: a
 * simulated (kwok) cluster, which the control plane's runtime controller
 * starts, when this machine has the binaries for one. Never fails `up`: what
 * went wrong is a warning. Returns the default runtime instance's ID, if there is one.
 */
export async function registerLocalRuntime(entry: ControlPlaneConfig, out: Output): Promise<number | undefined> {
  const { KubernetesRuntimeDefinition: KRD, KubernetesRuntimeInstance: KRI } = kubernetesRuntime;
  const api = clientFor(entry);
  try {
    const defaults = await api.listAll(KRI, { DefaultRuntime: true });
    if (defaults.length > 0) {
      out.info(`default Kubernetes runtime: ${JSON.stringify(defaults[0]!.Name)} (already registered)`);
      return defaults[0]!.ID;
    }
    const availability = localRuntimeAvailability();
    if (!availability.available) {
      out.warn(availability.message);
      return undefined;
    }
    const name = localRuntimeName(entry.Name);
    const objects = localRuntimeObjects(name);
    const def = (await api.findByName(KRD, name)) ?? (await api.create(KRD, objects.definition));
    let instance;
    try {
      instance = await api.create(KRI, objects.instance(def.ID));
    } catch (err) {
      if (!(err instanceof ObjectConflictError)) await api.delete(KRD, def.ID).catch(() => undefined);
      throw err;
    }
    out.done(`default Kubernetes runtime ${JSON.stringify(name)} registered: a simulated (kwok) cluster that the control plane starts`);
    return instance.ID;
  } catch (err) {
    out.warn(`no local Kubernetes runtime was registered: ${(err as Error).message}`);
    return undefined;
  } finally {
    api.close();
  }
}

/** The namespace upstream's genesis ControlPlaneInstance names (its installer's `ControlPlaneNamespace`). */
export const GENESIS_NAMESPACE = 'threeport-control-plane';

/**
 * Registers the control plane itself, as upstream's `tptctl up` does: a ControlPlaneDefinition
 * and a ControlPlaneInstance named after it (`Genesis`, `IsSelf`, its API endpoint and client
 * credentials), both created `Reconciled` because they describe what already runs. The instance
 * lives on a runtime (`KubernetesRuntimeInstanceID` is required), so without one only the
 * definition is registered, with a warning. Idempotent for `up --force-overwrite-config`.
 */
export async function registerGenesisControlPlane(entry: ControlPlaneConfig, runtimeId: number | undefined, out: Output): Promise<void> {
  const { ControlPlaneDefinition: CPD, ControlPlaneInstance: CPI } = controlPlane;
  const api = clientFor(entry);
  try {
    const def =
      (await api.findByName(CPD, entry.Name)) ??
      (await api.create(CPD, { Name: entry.Name, AuthEnabled: entry.AuthEnabled ?? true, Reconciled: true }));
    if (runtimeId === undefined) {
      out.warn(`control plane ${JSON.stringify(entry.Name)}: no ControlPlaneInstance was registered, because it has no Kubernetes runtime to live on`);
      return;
    }
    if (await api.findByName(CPI, entry.Name)) return;
    const credentials = entry.Credentials?.[0];
    await api.create(CPI, {
      Name: entry.Name,
      Namespace: GENESIS_NAMESPACE,
      Genesis: true,
      IsSelf: true,
      ApiServerEndpoint: entry.APIServer ?? null,
      ...(entry.AuthEnabled && entry.CACert && credentials
        ? { CACert: entry.CACert, ClientCert: credentials.ClientCert, ClientKey: credentials.ClientKey }
        : {}),
      KubernetesRuntimeInstanceID: runtimeId,
      ControlPlaneDefinitionID: def.ID,
      Reconciled: true,
    });
  } catch (err) {
    out.warn(`control plane ${JSON.stringify(entry.Name)} was not registered as a ControlPlaneDefinition/Instance: ${(err as Error).message}`);
  } finally {
    api.close();
  }
}
