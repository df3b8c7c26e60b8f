// Unit tests of the Terraform provider's pure parts: which values are masked, how tofu's
// diagnostics become one readable message, which failures are retried, and which leftover state
// is adopted.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TofuScrubber, variableValues } from '../../src/providers/terraform/scrub.js';
import { diagnostics } from '../../src/providers/terraform/workspace.js';
import { isTransientTofuFailure } from '../../src/providers/terraform/errors.js';
import { isNewerState } from '../../src/providers/terraform/runner.js';

describe('terraform provider units', () => {
  test('variable values of a tfvars document are found; map keys, numbers and booleans are not values', () => {
    const doc = [
      'db_password = "unsecure\\"pwd"',
      'db_port = 3306',
      'enabled = true',
      'tags = { "Name" = "wordpress-db", Owner = "team-a" }',
      'subnet_ids = ["subnet-1", "subnet-2"]',
      'cert = <<EOT',
      '-----BEGIN CERT-----',
      'MIIBlineone',
      'EOT',
    ].join('\n');
    const values = variableValues(doc);
    for (const v of ['unsecure"pwd', 'wordpress-db', 'team-a', 'subnet-1', 'subnet-2', 'MIIBlineone']) assert.ok(values.includes(v), v);
    assert.ok(!values.includes('Name'));
    assert.deepEqual(variableValues('{"db_password": "p4ssw0rd-x", "ports": [1, 2], "nested": {"k": "v-value"}}').sort(), ['p4ssw0rd-x', 'v-value']);
  });

  test('the scrubber masks values, credentials and the workspace path', () => {
    const s = new TofuScrubber();
    s.addValues(['unsecurepwd', 'us']);
    s.addSecret('AKIAIOSFODNN7EXAMPLE', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY');
    s.replace('/tmp/ws/', '');
    const out = s.scrub('on /tmp/ws/threeport.tfvars line 2: db_password = "unsecurepwd" key AKIAIOSFODNN7EXAMPLE wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY region us');
    assert.equal(out, 'on threeport.tfvars line 2: db_password = "[redacted]" key [redacted] [redacted] region us');
  });

  test("tofu's diagnostics become one message per error", () => {
    const stderr = '\nError: No value for required variable\n\n  on main.tf line 30:\n  30: variable "db_port" {\n\nThe root module input variable "db_port" is not set, and has no default\nvalue.\n\nError: Unsupported argument\n\n  on main.tf line 2:\n';
    assert.equal(
      diagnostics(stderr),
      'Error: No value for required variable on main.tf line 30: 30: variable "db_port" { The root module input variable "db_port" is not set, and has no default value.; Error: Unsupported argument on main.tf line 2:',
    );
  });

  test('lock contention and unreachable endpoints are retried; config errors are not', () => {
    assert.ok(isTransientTofuFailure('Error: Error acquiring the state lock Lock Info: ID: 1234'));
    assert.ok(isTransientTofuFailure('Error: Failed to get existing workspaces: operation error S3: ListObjectsV2, https response error StatusCode: 503'));
    assert.ok(isTransientTofuFailure('dial tcp 127.0.0.1:1: connect: connection refused'));
    assert.ok(!isTransientTofuFailure('Error: Unclosed configuration block on main.tf line 1'));
    assert.ok(!isTransientTofuFailure('Error: No value for required variable'));
  });

  test('a leftover state is adopted only when it is a later version of the stored one', () => {
    const st = (serial: number, lineage = 'L1') => JSON.stringify({ version: 4, serial, lineage, resources: [] });
    assert.ok(isNewerState(st(3), undefined));
    assert.ok(isNewerState(st(3), st(2)));
    assert.ok(!isNewerState(st(2), st(2)));
    assert.ok(!isNewerState(st(5, 'L2'), st(2)), 'another lineage is another state');
    assert.ok(!isNewerState('not json', st(1)));
  });
});
