// Minimal test PKI: ECDSA P-256 keys and X.509 certificates made with node:crypto (WebCrypto)
// and @peculiar/x509. Only for throwaway test clusters on loopback.
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN_ALG = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface KeyPairPem {
  privateKeyPem: string; // PKCS#8
  publicKeyPem: string; // SPKI
}

export interface CertAndKey {
  certPem: string;
  keyPem: string;
}

export interface CertificateAuthority extends CertAndKey {
  /** Issues a leaf certificate signed by this CA. */
  issue(opts: LeafOptions): Promise<CertAndKey>;
}

export interface LeafOptions {
  commonName: string;
  organizations?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  server?: boolean;
  client?: boolean;
  /** Validity in days (default 7). */
  days?: number;
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64');
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)!.join('\n')}\n-----END ${label}-----\n`;
}

async function generateKeys(): Promise<CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC_ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
}

async function exportPrivate(key: CryptoKey): Promise<string> {
  return pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', key));
}

/** An ECDSA P-256 key pair in PEM (e.g. for service-account token signing). */
export async function generateKeyPairPem(): Promise<KeyPairPem> {
  const keys = await generateKeys();
  return {
    privateKeyPem: await exportPrivate(keys.privateKey),
    publicKeyPem: pem('PUBLIC KEY', await webcrypto.subtle.exportKey('spki', keys.publicKey)),
  };
}

function escapeDnValue(v: string): string {
  return v.replace(/([,+"\\<>;=])/g, '\\$1');
}

function dn(commonName: string, organizations: string[] = []): string {
  return [...organizations.map((o) => `O=${escapeDnValue(o)}`), `CN=${escapeDnValue(commonName)}`].join(', ');
}

function validity(days: number): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return { notBefore: new Date(now - 60 * 60 * 1000), notAfter: new Date(now + days * 24 * 60 * 60 * 1000) };
}

function serial(): string {
  // Positive, non-zero 16-byte serial.
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return Buffer.from(bytes).toString('hex');
}

/** Creates a self-signed CA. */
export async function createCertificateAuthority(commonName: string, days = 30): Promise<CertificateAuthority> {
  const keys = await generateKeys();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: dn(commonName),
    ...validity(days),
    signingAlgorithm: SIGN_ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const caAki = await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey);

  const issue = async (opts: LeafOptions): Promise<CertAndKey> => {
    const leafKeys = await generateKeys();
    const ekus: string[] = [];
    if (opts.server) ekus.push(x509.ExtendedKeyUsage.serverAuth);
    if (opts.client) ekus.push(x509.ExtendedKeyUsage.clientAuth);
    const sans = [
      ...(opts.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
      ...(opts.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
    ];
    const extensions: x509.Extension[] = [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension(ekus, false),
      caAki,
    ];
    if (sans.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(sans, false));
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: dn(opts.commonName, opts.organizations),
      issuer: cert.subject,
      ...validity(opts.days ?? 7),
      signingAlgorithm: SIGN_ALG,
      publicKey: leafKeys.publicKey,
      signingKey: keys.privateKey,
      extensions,
    });
    return { certPem: leaf.toString('pem') + '\n', keyPem: await exportPrivate(leafKeys.privateKey) };
  };

  return { certPem: cert.toString('pem') + '\n', keyPem: await exportPrivate(keys.privateKey), issue };
}
