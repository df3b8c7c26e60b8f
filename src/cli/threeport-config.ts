// The threeport config file (spec §5.3, `~/.threeport/config.yaml`): the
// control planes this user can reach and which one is current. It is read and
// written through the YAML document model, so fields and comments this
// version does not know (an upstream config's KubeAPI, EKSProviderConfig, ...)
// survive a rewrite. Certificates and keys are stored base64-encoded, as
// upstream stores them; plain PEM is accepted on read.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { Document, isMap, isSeq, parseDocument, YAMLSeq } from 'yaml';
import { apiBaseUrl, ThreeportClient } from '../client/api-client.js';
import { CliError } from './errors.js';

export interface Credential {
  Name: string;
  ClientCert: string;
  ClientKey: string;
}

/** One entry of `ControlPlanes`. Unknown fields are kept as they are. */
export interface ControlPlaneConfig {
  Name: string;
  AuthEnabled?: boolean;
  Genesis?: boolean;
  /** host:port, no scheme. */
  APIServer?: string;
  /** base64 of the CA's PEM. */
  CACert?: string;
  Credentials?: Credential[];
  /** kind | eks | local */
  Provider?: string;
  EncryptionKey?: string;
  /** Our `local` provider: where the control plane keeps its state. */
  LocalProviderConfig?: { DataDir?: string; LogFile?: string };
  [field: string]: unknown;
}

export function defaultThreeportDir(): string {
  return join(homedir(), '.threeport');
}

export function defaultConfigPath(): string {
  return join(defaultThreeportDir(), 'config.yaml');
}

export function encodePem(pem: string): string {
  return Buffer.from(pem, 'utf8').toString('base64');
}

/** Accepts base64 of a PEM (upstream's encoding) or the PEM itself. */
export function decodePem(value: string, what: string): string {
  const trimmed = value.trim();
  if (trimmed.startsWith('-----BEGIN')) return `${trimmed}\n`;
  const decoded = Buffer.from(trimmed, 'base64').toString('utf8');
  if (!decoded.includes('-----BEGIN')) throw new CliError(`${what} in the threeport config is neither a PEM block nor base64 of one`);
  return decoded;
}

export class ThreeportConfigFile {
  #doc: Document;

  private constructor(
    readonly path: string,
    doc: Document,
  ) {
    this.#doc = doc;
  }

  /** Reads the file; a missing file is an empty config. */
  static load(path: string): ThreeportConfigFile {
    if (!existsSync(path)) return new ThreeportConfigFile(path, new Document({ CurrentControlPlane: '', ControlPlanes: [] }));
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new CliError(`cannot read the threeport config ${path}: ${(err as Error).message}`);
    }
    const doc = parseDocument(text, { uniqueKeys: false });
    const problem = doc.errors[0];
    if (problem) {
      const at = problem.linePos?.[0];
      throw new CliError(`the threeport config ${path}${at ? `:${at.line}:${at.col}` : ''} is not valid YAML: ${problem.message.split('\n')[0]}`);
    }
    if (doc.contents === null) doc.contents = doc.createNode({}) as never;
    if (!isMap(doc.contents)) throw new CliError(`the threeport config ${path} must be a mapping with CurrentControlPlane and ControlPlanes`);
    const planes = doc.get('ControlPlanes');
    if (planes !== undefined && planes !== null && !isSeq(planes)) throw new CliError(`ControlPlanes in the threeport config ${path} must be a list`);
    return new ThreeportConfigFile(path, doc);
  }

  get current(): string {
    const v = this.#doc.get('CurrentControlPlane');
    return typeof v === 'string' ? v : '';
  }

  setCurrent(name: string): void {
    this.#doc.set('CurrentControlPlane', name);
  }

  #seq(): YAMLSeq {
    let seq = this.#doc.get('ControlPlanes');
    if (!isSeq(seq)) {
      seq = new YAMLSeq();
      this.#doc.set('ControlPlanes', seq);
    }
    return seq as YAMLSeq;
  }

  controlPlanes(): ControlPlaneConfig[] {
    const seq = this.#doc.get('ControlPlanes');
    if (!isSeq(seq)) return [];
    return seq.items.map((item) => (isMap(item) ? (item.toJSON() as ControlPlaneConfig) : ({ Name: '' } as ControlPlaneConfig)));
  }

  find(name: string): ControlPlaneConfig | undefined {
    return this.controlPlanes().find((cp) => cp.Name === name);
  }

  /** Adds the entry, or replaces the one with the same name (keeping its position). */
  upsert(entry: ControlPlaneConfig): void {
    const seq = this.#seq();
    const node = this.#doc.createNode(entry);
    const index = seq.items.findIndex((item) => isMap(item) && item.get('Name') === entry.Name);
    if (index >= 0) seq.items[index] = node;
    else seq.items.push(node);
  }

  /** Removes the entry; clears CurrentControlPlane when it named it. Returns whether it existed. */
  remove(name: string): boolean {
    const seq = this.#seq();
    const before = seq.items.length;
    seq.items = seq.items.filter((item) => !(isMap(item) && item.get('Name') === name));
    if (this.current === name) this.setCurrent('');
    return seq.items.length !== before;
  }

  /** Writes atomically with mode 0600 (the file holds client keys and the encryption key). */
  save(): void {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.${process.pid}.tmp`;
    writeFileSync(tmp, this.#doc.toString({ lineWidth: 0 }), { mode: 0o600 });
    chmodSync(tmp, 0o600);
    renameSync(tmp, this.path);
  }

  /** The control plane a command talks to: `-i NAME`, else the current one. */
  resolve(requested?: string): ControlPlaneConfig {
    const name = requested || this.current;
    const names = this.controlPlanes().map((cp) => cp.Name);
    if (!name) {
      throw new CliError(
        names.length === 0
          ? `no control plane is configured in ${this.path}: start one with "tptctl up -n <name>"`
          : `no current control plane is set in ${this.path}: choose one of ${names.join(', ')} with "tptctl config current-control-plane -n <name>" or pass -i <name>`,
      );
    }
    const cp = this.find(name);
    if (!cp) {
      throw new CliError(
        `control plane ${JSON.stringify(name)} is not in ${this.path}${names.length ? ` (known: ${names.join(', ')})` : ''}`,
      );
    }
    return cp;
  }
}

export interface TlsMaterial {
  ca: string;
  cert: string;
  key: string;
}

/** The CA and the client credential of a control plane (the credential named like it, else the first one). */
export function tlsOf(cp: ControlPlaneConfig): TlsMaterial {
  if (!cp.CACert) throw new CliError(`control plane ${JSON.stringify(cp.Name)} has AuthEnabled but no CACert in the threeport config`);
  const cred = cp.Credentials?.find((c) => c.Name === cp.Name) ?? cp.Credentials?.[0];
  if (!cred?.ClientCert || !cred.ClientKey) {
    throw new CliError(`control plane ${JSON.stringify(cp.Name)} has AuthEnabled but no client Credentials in the threeport config`);
  }
  return {
    ca: decodePem(cp.CACert, `CACert of control plane ${cp.Name}`),
    cert: decodePem(cred.ClientCert, `ClientCert of control plane ${cp.Name}`),
    key: decodePem(cred.ClientKey, `ClientKey of control plane ${cp.Name}`),
  };
}

export function clientFor(cp: ControlPlaneConfig, timeoutMs?: number): ThreeportClient {
  if (!cp.APIServer) throw new CliError(`control plane ${JSON.stringify(cp.Name)} has no APIServer in the threeport config`);
  const auth = cp.AuthEnabled !== false;
  return new ThreeportClient({
    baseUrl: apiBaseUrl(cp.APIServer, auth),
    ...(auth ? { tls: tlsOf(cp) } : {}),
    ...(timeoutMs ? { timeoutMs } : {}),
  });
}
