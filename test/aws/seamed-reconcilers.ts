// A THREEPORT_TEST_RECONCILERS module for a real `threeport server` child process: the built-in
// AWS and secret reconcilers, with the test seams pointed at local peers. It reads
// THREEPORT_TEST_AWS_SEAMS, a JSON file: { cluster: {server, caPem, clientCertPem, clientKeyPem},
// postgresUrl }. The AWS endpoint comes from THREEPORT_AWS_ENDPOINT_URL as in production.
import { readFileSync } from 'node:fs';
import { AwsController } from '../../src/controllers/aws/index.js';
import { SecretController } from '../../src/controllers/secret/index.js';
import { createLogger } from '../../src/logger.js';
import { LocalClusterResolver, LocalPostgresResolver } from './seams.js';

const path = process.env['THREEPORT_TEST_AWS_SEAMS'];
if (!path) throw new Error('THREEPORT_TEST_AWS_SEAMS must name the seams JSON file');
const seams = JSON.parse(readFileSync(path, 'utf8')) as {
  cluster: { server: string; caPem: string; clientCertPem: string; clientKeyPem: string };
  postgresUrl: string;
};

const aws = new AwsController({
  logger: createLogger({ level: process.env['THREEPORT_LOG_LEVEL'] ?? 'warn', name: 'aws-test' }),
  provider: { retry: { maxAttempts: 5, baseDelayMs: 10, maxDelayMs: 100 } },
  connectionResolver: new LocalClusterResolver(seams.cluster),
  databaseResolver: new LocalPostgresResolver(seams.postgresUrl),
  lazyCheckIntervalMs: 250,
  waitPollMs: 250,
  eksPoll: { clusterMs: 250, nodeGroupMs: 250, natGatewayMs: 250, deleteMs: 250, iamPropagationMs: 250 },
});

export const reconcilers = [...aws.reconcilers, ...new SecretController({ deps: aws.deps }).reconcilers];
