// What one tptctl invocation shares between its parts: global options, the
// threeport config, API clients (closed at exit), output.
import { join } from 'node:path';
import type { ThreeportClient } from '../client/api-client.js';
import { FieldCipher } from '../crypto/field-encryption.js';
import { CliError } from './errors.js';
import type { Output } from './output.js';
import { clientFor, defaultConfigPath, defaultThreeportDir, ThreeportConfigFile, type ControlPlaneConfig } from './threeport-config.js';

export interface GlobalOptions {
  threeportConfig: string;
  providerConfig: string;
  debug: boolean;
}

export function defaultGlobals(env: NodeJS.ProcessEnv): GlobalOptions {
  return {
    threeportConfig: env['THREEPORT_CONFIG'] || defaultConfigPath(),
    providerConfig: defaultThreeportDir(),
    debug: false,
  };
}

export function pluginDir(env: NodeJS.ProcessEnv): string {
  return env['THREEPORT_PLUGIN_DIR'] || join(defaultThreeportDir(), 'plugins');
}

export class Session {
  readonly #clients: ThreeportClient[] = [];
  #config: ThreeportConfigFile | undefined;

  constructor(
    readonly globals: GlobalOptions,
    readonly out: Output,
  ) {}

  config(): ThreeportConfigFile {
    this.#config ??= ThreeportConfigFile.load(this.globals.threeportConfig);
    return this.#config;
  }

  controlPlane(requested?: string): ControlPlaneConfig {
    return this.config().resolve(requested);
  }

  client(cp: ControlPlaneConfig): ThreeportClient {
    const c = clientFor(cp);
    this.#clients.push(c);
    return c;
  }

  cipher(cp: ControlPlaneConfig): FieldCipher | undefined {
    if (!cp.EncryptionKey) return undefined;
    try {
      return new FieldCipher(cp.EncryptionKey);
    } catch (err) {
      throw new CliError(`EncryptionKey of control plane ${JSON.stringify(cp.Name)} in the threeport config is not usable: ${(err as Error).message}`);
    }
  }

  close(): void {
    for (const c of this.#clients) c.close();
  }
}
