// Finds the real OpenTofu for the Terraform suites. A missing binary fails them, with the build
// command in the message; THREEPORT_SKIP_TOFU=1 skips them instead.
import { findTofu } from '../../src/providers/terraform/binary.js';

export const SKIP_TOFU = process.env['THREEPORT_SKIP_TOFU'] === '1' ? 'THREEPORT_SKIP_TOFU=1: OpenTofu suites skipped' : undefined;

/** The tofu executable (throws TofuNotFoundError naming `bash scripts/tofu/build-tofu.sh`). */
export function tofuPath(): string {
  return findTofu().path;
}
