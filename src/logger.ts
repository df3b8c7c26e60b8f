// Structured JSON logs. Field names that can carry secrets are redacted at the
// logger, so a careless `log.info({ obj })` cannot leak them.
import { pino, destination, stdTimeFunctions, type Logger } from 'pino';

export const REDACTED_KEYS = [
  'SecretAccessKey',
  'AccessKeyID',
  'CertificateKey',
  'ConnectionToken',
  'ClientKey',
  'VarsDocument',
  'StateDocument',
  'Outputs',
  'Data',
  'password',
  'authorization',
  'EncryptionKey',
];

export function createLogger(options: { level?: string; name?: string; destination?: number | string } = {}): Logger {
  const paths = REDACTED_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`]);
  return pino(
    {
      name: options.name ?? 'threeport',
      level: options.level ?? process.env['THREEPORT_LOG_LEVEL'] ?? 'info',
      redact: { paths, censor: '[redacted]' },
      base: { pid: process.pid },
      timestamp: stdTimeFunctions.isoTime,
    },
    destination({ dest: options.destination ?? 1, sync: false }),
  );
}
