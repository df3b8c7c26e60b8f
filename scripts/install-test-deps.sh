#!/usr/bin/env bash
# Installs or builds everything the test suite needs that npm does not bring:
# a PostgreSQL server (Debian's), chromium (the dashboard tests), util-linux's
# unshare (runs the embedded PostgreSQL when we are root), the Kubernetes test
# binaries and OpenTofu (built once per machine from Go modules into a cache
# outside the repo).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[install-test-deps] %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    say "apt-get update"
    as_root apt-get update -qq
    apt_updated=1
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  apt_install postgresql
fi
say "PostgreSQL server: $(ls -d /usr/lib/postgresql/*/bin | tail -1)"

if [ "$(id -u)" = 0 ] && ! command -v unshare >/dev/null 2>&1; then
  apt_install util-linux
fi

# Debian's chromium for the dashboard's browser tests and bench (driven by playwright-core, which
# cannot download browsers here).
if ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium
fi
say "chromium: $(chromium --version 2>/dev/null || echo missing)"

# moto's server (a local imitation of the AWS APIs) for the AWS integration tests.
if ! python3 -c 'import moto.server, flask' >/dev/null 2>&1; then
  say "pip install moto[server]==5.2.1"
  python3 -m pip install --quiet 'moto[server]==5.2.1' || python3 -m pip install --quiet --break-system-packages 'moto[server]==5.2.1'
fi

# The container image test (test/platform/image.test.ts): mmdebstrap makes the Debian rootfs,
# podman (with runc) assembles, pushes, pulls and runs the image. THREEPORT_SKIP_IMAGE=1 skips both.
if [ "${THREEPORT_SKIP_IMAGE:-}" != 1 ]; then
  missing=()
  for tool in mmdebstrap podman runc newuidmap; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
  if [ ${#missing[@]} -gt 0 ]; then apt_install mmdebstrap podman runc uidmap; fi
  say "image tools: $(mmdebstrap --version 2>/dev/null | head -1), $(podman --version 2>/dev/null)"
fi

need_go() { if ! command -v go >/dev/null 2>&1; then apt_install golang-go; fi; }

if [ "${THREEPORT_SKIP_KUBE:-}" = 1 ]; then
  say "THREEPORT_SKIP_KUBE=1: not building the Kubernetes test binaries"
else
  need_go
  bash scripts/k8s/build-test-bins.sh
fi

# OpenTofu for the Terraform controller's tests (about 23 minutes cold on 2 cores, then cached).
if [ "${THREEPORT_SKIP_TOFU:-}" = 1 ]; then
  say "THREEPORT_SKIP_TOFU=1: not building OpenTofu"
else
  need_go
  bash scripts/tofu/build-tofu.sh
fi
