#!/usr/bin/env bash
# The whole test suite on a fresh machine: test dependencies, npm packages,
# build, then every unit, integration and end-to-end test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
npm ci --no-audit --no-fund
npm test
