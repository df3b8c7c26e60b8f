// Certificates for mutual TLS between clients and the API (spec §1.10): a CA,
// a server certificate, and client certificates, generated on the first start
// of an embedded control plane. ECDSA P-256 keeps generation under a second
// where upstream's RSA-4096 takes several.
import { webcrypto, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as X509 from '@peculiar/x509';

// @peculiar/x509 (and its ASN.1 stack) takes a noticeable share of a replica's start-up, and a
// replica whose certificates are mounted never generates one: load it on first use.
let x509Module: Promise<typeof X509> | undefined;
function loadX509(): Promise<typeof X509> {
  x509Module ??= import('@peculiar/x509').then((m) => {
    m.cryptoProvider.set(webcrypto as never);
    return m;
  });
  return x509Module;
}

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 24 * 60 * 60 * 1000;

export interface KeyPairPem {
  cert: string;
  key: string;
}

export interface Pki {
  ca: KeyPairPem;
  server: KeyPairPem;
  client: KeyPairPem;
}

async function keyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key as webcrypto.CryptoKey));
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').trimEnd();
  return `-----BEGIN PRIVATE KEY-----\n${b64}\n-----END PRIVATE KEY-----\n`;
}

async function importKey(pem: string): Promise<CryptoKey> {
  const der = Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
  return (await webcrypto.subtle.importKey('pkcs8', der, ALG, true, ['sign'])) as unknown as CryptoKey;
}

function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f; // positive
  return bytes.toString('hex');
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as unknown as CryptoKeyPair;
}

export async function createCa(commonName = 'Threeport', years = 10): Promise<KeyPairPem> {
  const x509 = await loadX509();
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${commonName}, O=Threeport`,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + years * 365 * DAY),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem'), key: await keyPem(keys.privateKey) };
}

export interface LeafOptions {
  commonName: string;
  usage: 'server' | 'client';
  dnsNames?: string[];
  ips?: string[];
  years?: number;
  /** Subject O= values (default Threeport). Kubernetes reads them as groups, e.g. system:masters. */
  organizations?: string[];
}

function escapeDn(value: string): string {
  return value.replace(/([,+"\\<>;=])/g, '\\$1');
}

/** A bare ECDSA P-256 key pair in PEM (PKCS#8 private, SPKI public), e.g. for signing service-account tokens. */
export async function generateKeyPair(): Promise<{ privateKey: string; publicKey: string }> {
  const keys = await generateKeys();
  const spki = Buffer.from(await webcrypto.subtle.exportKey('spki', keys.publicKey as webcrypto.CryptoKey));
  const b64 = spki.toString('base64').replace(/(.{64})/g, '$1\n').trimEnd();
  return { privateKey: await keyPem(keys.privateKey), publicKey: `-----BEGIN PUBLIC KEY-----\n${b64}\n-----END PUBLIC KEY-----\n` };
}

export async function issueCertificate(ca: KeyPairPem, options: LeafOptions): Promise<KeyPairPem> {
  const x509 = await loadX509();
  const caCert = new x509.X509Certificate(ca.cert);
  const caKey = await importKey(ca.key);
  const keys = await generateKeys();
  const altNames: X509.JsonGeneralName[] = [
    ...(options.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(options.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: [`CN=${escapeDn(options.commonName)}`, ...(options.organizations ?? ['Threeport']).map((o) => `O=${escapeDn(o)}`)].join(', '),
    issuer: caCert.subject,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + (options.years ?? 5) * 365 * DAY),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension(
        [options.usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
        false,
      ),
      ...(altNames.length > 0 ? [new x509.SubjectAlternativeNameExtension(altNames)] : []),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { cert: cert.toString('pem'), key: await keyPem(keys.privateKey) };
}

export const SERVER_DNS_NAMES = [
  'localhost',
  'threeport-api-server',
  'threeport-api-server.threeport-control-plane',
  'threeport-api-server.threeport-control-plane.svc',
  'threeport-api-server.threeport-control-plane.svc.cluster',
  'threeport-api-server.threeport-control-plane.svc.cluster.local',
];

const FILES = {
  ca: ['ca.crt', 'ca.key'],
  server: ['server.crt', 'server.key'],
  client: ['client.crt', 'client.key'],
} as const;

/** Loads the control plane's certificates from `dir`, generating any that are missing. */
export async function ensurePki(dir: string, extraDnsNames: string[] = []): Promise<Pki> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const read = (name: keyof typeof FILES): KeyPairPem | undefined => {
    const [c, k] = FILES[name];
    if (!existsSync(join(dir, c)) || !existsSync(join(dir, k))) return undefined;
    return { cert: readFileSync(join(dir, c), 'utf8'), key: readFileSync(join(dir, k), 'utf8') };
  };
  const write = (name: keyof typeof FILES, pair: KeyPairPem): KeyPairPem => {
    const [c, k] = FILES[name];
    writeFileSync(join(dir, c), pair.cert, { mode: 0o644 });
    writeFileSync(join(dir, k), pair.key, { mode: 0o600 });
    return pair;
  };
  let ca = read('ca');
  let fresh = false;
  if (!ca) {
    ca = write('ca', await createCa());
    fresh = true;
  }
  const server =
    (!fresh && read('server')) ||
    write(
      'server',
      await issueCertificate(ca, {
        commonName: 'threeport-api-server',
        usage: 'server',
        dnsNames: [...SERVER_DNS_NAMES, ...extraDnsNames],
        ips: ['127.0.0.1', '::1'],
      }),
    );
  const client =
    (!fresh && read('client')) || write('client', await issueCertificate(ca, { commonName: 'tptctl', usage: 'client' }));
  return { ca, server, client };
}

/**
 * What the API's TLS listener needs: the CA certificate (to verify clients) and the server's
 * certificate and key. When those three files are in `dir` (e.g. a Kubernetes Secret mounted
 * read-only) they are used as they are, and the CA's private key need not be there; otherwise
 * the missing certificates are generated as by ensurePki.
 */
export async function serverTls(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const files = ['ca.crt', 'server.crt', 'server.key'].map((f) => join(dir, f));
  if (files.every((f) => existsSync(f))) {
    const [ca, cert, key] = files.map((f) => readFileSync(f, 'utf8')) as [string, string, string];
    return { ca, cert, key };
  }
  const pki = await ensurePki(dir);
  return { ca: pki.ca.cert, cert: pki.server.cert, key: pki.server.key };
}
