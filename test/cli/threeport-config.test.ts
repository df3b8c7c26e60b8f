// Unit tests of the threeport config file (spec §5.3), output helpers and
// plugin discovery.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { apiBaseUrl } from '../../src/client/api-client.js';
import { decodePem, encodePem, ThreeportConfigFile, tlsOf } from '../../src/cli/threeport-config.js';
import { age, formatDuration, formatTable, Output } from '../../src/cli/output.js';
import { commandWord, listPlugins } from '../../src/cli/plugins.js';
import { header, instanceStatus, kebab } from '../../src/cli/render.js';
import { validateName } from '../../src/cli/local-provider.js';
import type { AnyObject } from '../../src/client/types.js';

const dir = mkdtempSync(join(tmpdir(), 'tptctl-unit-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

const UPSTREAM = `# written by upstream tptctl
CurrentControlPlane: test
ControlPlanes:
  - Name: test
    AuthEnabled: true
    Genesis: true
    APIServer: localhost:443
    CACert: ${encodePem(PEM)}
    Credentials:
      - Name: test
        ClientCert: ${encodePem(PEM)}
        ClientKey: ${encodePem('-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----\n')}
    KubeAPI:
      APIEndpoint: https://127.0.0.1:6443
      EKSToken: ""
    Provider: kind
    EKSProviderConfig:
      AWSConfigProfile: default
    EncryptionKey: abc
SomeFutureSetting: {keep: me}
`;

describe('threeport config file', () => {
  it('reads an upstream config and keeps fields it does not know when it writes', () => {
    const path = join(dir, 'upstream.yaml');
    writeFileSync(path, UPSTREAM);
    const cfg = ThreeportConfigFile.load(path);
    assert.equal(cfg.current, 'test');
    const cp = cfg.resolve();
    assert.equal(cp.APIServer, 'localhost:443');
    assert.deepEqual(cp['KubeAPI'], { APIEndpoint: 'https://127.0.0.1:6443', EKSToken: '' });
    cfg.upsert({ Name: 'local', Provider: 'local', AuthEnabled: false, APIServer: '127.0.0.1:1323' });
    cfg.setCurrent('local');
    cfg.save();
    const text = readFileSync(path, 'utf8');
    assert.match(text, /# written by upstream tptctl/);
    assert.match(text, /SomeFutureSetting:\s*\{\s*keep: me\s*\}/);
    assert.match(text, /EKSProviderConfig:\n\s+AWSConfigProfile: default/);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const again = ThreeportConfigFile.load(path);
    assert.deepEqual(
      again.controlPlanes().map((c) => c.Name),
      ['test', 'local'],
    );
    assert.equal(again.current, 'local');
    assert.equal(again.remove('local'), true);
    assert.equal(again.current, '');
  });

  it('decodes base64 or plain PEM certificates and picks the credential named like the control plane', () => {
    assert.equal(decodePem(encodePem(PEM), 'x'), PEM);
    assert.equal(decodePem(PEM, 'x'), PEM);
    assert.throws(() => decodePem('bm90IGEgcGVt', 'CACert of control plane x'), /CACert of control plane x in the threeport config is neither a PEM block nor base64 of one/);
    const tls = tlsOf({
      Name: 'b',
      CACert: PEM,
      Credentials: [
        { Name: 'a', ClientCert: 'wrong', ClientKey: 'wrong' },
        { Name: 'b', ClientCert: encodePem(PEM), ClientKey: PEM },
      ],
    });
    assert.equal(tls.cert, PEM);
  });

  it('explains what to do when no control plane is chosen or the name is unknown', () => {
    const empty = ThreeportConfigFile.load(join(dir, 'missing.yaml'));
    assert.throws(() => empty.resolve(), /no control plane is configured in .*missing\.yaml: start one with "tptctl up -n <name>"/);
    const path = join(dir, 'two.yaml');
    writeFileSync(path, 'CurrentControlPlane: ""\nControlPlanes:\n  - Name: a\n  - Name: b\n');
    const cfg = ThreeportConfigFile.load(path);
    assert.throws(() => cfg.resolve(), /no current control plane is set .*: choose one of a, b with "tptctl config current-control-plane -n <name>" or pass -i <name>/);
    assert.throws(() => cfg.resolve('c'), /control plane "c" is not in .*two\.yaml \(known: a, b\)/);
  });

  it('reports a config that is not valid YAML with its position', () => {
    const path = join(dir, 'broken.yaml');
    writeFileSync(path, 'ControlPlanes: [\n');
    assert.throws(() => ThreeportConfigFile.load(path), /broken\.yaml:\d+:\d+ is not valid YAML: /);
  });

  it('derives the API URL from APIServer and AuthEnabled', () => {
    assert.equal(apiBaseUrl('127.0.0.1:1323', true), 'https://127.0.0.1:1323');
    assert.equal(apiBaseUrl('localhost:80', false), 'http://localhost:80');
    assert.equal(apiBaseUrl('https://x:443/', false), 'https://x:443');
  });
});

describe('output', () => {
  it('aligns table columns with three spaces', () => {
    assert.equal(
      formatTable(['NAME', 'WORKLOAD DEFINITION', 'AGE'], [
        ['wordpress', 'wp', '5s'],
        ['a', 'a-much-longer-name', '3m'],
      ]),
      'NAME        WORKLOAD DEFINITION   AGE\nwordpress   wp                    5s\na           a-much-longer-name    3m\n',
    );
  });

  it('prints short ages', () => {
    assert.equal(formatDuration(5_000), '5s');
    assert.equal(formatDuration(3 * 60_000 + 5_000), '3m');
    assert.equal(formatDuration(2 * 3_600_000), '2h');
    assert.equal(formatDuration(4 * 86_400_000), '4d');
    assert.equal(age('2024-01-01T00:00:00Z', Date.parse('2024-01-01T00:00:07Z')), '7s');
    assert.equal(age(undefined), '<unknown>');
  });

  it('colours only a terminal, and never with NO_COLOR', () => {
    const sink = (tty: boolean) => ({ text: '', isTTY: tty, write(s: string) { this.text += s; } });
    const tty = sink(true);
    new Output(tty, tty, { TERM: 'xterm' }).error('boom');
    assert.match(tty.text, /\x1b\[31mError:\x1b\[0m boom/);
    const noColor = sink(true);
    new Output(noColor, noColor, { TERM: 'xterm', NO_COLOR: '1' }).error('boom');
    assert.equal(noColor.text, 'Error: boom\n');
    const pipe = sink(false);
    new Output(pipe, pipe, {}).error('boom');
    assert.equal(pipe.text, 'Error: boom\n');
  });

  it('names columns and nouns from declarations', () => {
    assert.equal(header('KubernetesRuntimeInstanceID', true), 'KUBERNETES RUNTIME INSTANCE');
    assert.equal(header('AccountID'), 'ACCOUNT ID');
    assert.equal(header('AWSAccountID', true), 'AWS ACCOUNT');
    assert.equal(kebab('AwsEksKubernetesRuntimeDefinition'), 'aws-eks-kubernetes-runtime-definition');
  });

  it('derives instance status from the object until controllers set it', () => {
    const base = { ID: 1, CreatedAt: '', UpdatedAt: '' } as AnyObject;
    assert.equal(instanceStatus({ ...base, Reconciled: false }), 'Reconciling');
    assert.equal(instanceStatus({ ...base, Reconciled: true }), 'Healthy');
    assert.equal(instanceStatus({ ...base, Reconciled: true, Status: 'Unhealthy' }), 'Unhealthy');
    assert.equal(instanceStatus({ ...base, Reconciled: false, DeletionScheduled: '2024-01-01T00:00:00Z' }), 'Deleting');
  });
});

describe('plugins and names', () => {
  it('finds executable plugins and ignores clashes with core commands', () => {
    const plugins = join(dir, 'plugins');
    rmSync(plugins, { recursive: true, force: true });
    mkdirSync(plugins);
    for (const [name, mode] of [
      ['hello', 0o755],
      ['deploy.sh', 0o755],
      ['get', 0o755],
      ['notes.txt', 0o644],
    ] as const) {
      writeFileSync(join(plugins, name), '#!/bin/sh\n', { flag: 'w' });
      chmodSync(join(plugins, name), mode);
    }
    const found = listPlugins(plugins, new Set(['get', 'create']))
      .map((p) => p.name)
      .sort();
    assert.deepEqual(found, ['deploy', 'deploy.sh', 'hello']);
    assert.deepEqual(listPlugins(join(dir, 'nowhere'), new Set()), []);
  });

  it('finds the command word after global options', () => {
    const withValues = new Set(['--threeport-config']);
    assert.equal(commandWord(['--threeport-config', 'x.yaml', 'hello', 'a'], withValues), 'hello');
    assert.equal(commandWord(['--threeport-config=x.yaml', '--debug', 'get'], withValues), 'get');
    assert.equal(commandWord(['--debug'], withValues), undefined);
  });

  it('validates control plane names', () => {
    assert.equal(validateName('dev-1'), 'dev-1');
    assert.throws(() => validateName('a'.repeat(31)), /is 31 characters long; the limit is 30/);
    assert.throws(() => validateName('Dev_1'), /is not valid: use lower-case letters, digits and dashes/);
    assert.throws(() => validateName(undefined), /a control plane name is required/);
  });
});
