#!/usr/bin/env bash
# Installs or builds everything the test suite needs that npm does not bring:
# a PostgreSQL server (Debian's), chromium (the dashboard tests), util-linux's
# unshare (runs the embedded PostgreSQL when we are root), the Kubernetes test
# binaries, OpenTofu, the support-service peers and the observability peers (Prometheus,
# VictoriaLogs; built once per machine from Go modules into a cache outside the repo).
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

# schemathesis (PyPI): the schema-driven fuzzer that test/api/fuzz-openapi.test.ts runs against
# /swagger/doc.json. Pinned, in its own venv cached outside the repo by version.
SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_VENV="${HOME}/.cache/threeport/schemathesis/${SCHEMATHESIS_VERSION}"
if [ ! -x "${SCHEMATHESIS_VENV}/bin/st" ]; then
  say "pip install schemathesis==${SCHEMATHESIS_VERSION} into ${SCHEMATHESIS_VENV}"
  rm -rf "${SCHEMATHESIS_VENV}"
  python3 -m venv "${SCHEMATHESIS_VENV}"
  "${SCHEMATHESIS_VENV}/bin/python" -m pip install --quiet "schemathesis==${SCHEMATHESIS_VERSION}"
fi
say "schemathesis: ${SCHEMATHESIS_VENV}/bin/st"

if [ "${THREEPORT_SKIP_KUBE:-}" = 1 ]; then
  say "THREEPORT_SKIP_KUBE=1: not building the Kubernetes test binaries"
else
  need_go
  bash scripts/k8s/build-test-bins.sh
  # Upstream Threeport's own tptctl and integration test, run against our server (test/e2e/upstream-*).
  bash scripts/upstream/build-threeport.sh
  # Support-service peers (traefik, cert-manager, external-dns, external-secrets, pebble, CoreDNS,
  # Gateway API CRDs), cached per version. traefik is by far the slowest (about 36 minutes cold),
  # so it builds alongside the others: two builds at once at most.
  if [ "${THREEPORT_SKIP_PEERS:-}" = 1 ]; then
    say "THREEPORT_SKIP_PEERS=1: not building the support-service peers"
  else
    peers_t0=$(date +%s)
    (bash scripts/peers/build-support-peers.sh traefik 2>&1 | sed -u 's/^/[traefik] /') &
    traefik_pid=$!
    bash scripts/peers/build-support-peers.sh cert-manager pebble coredns external-dns external-secrets gateway-api
    wait "$traefik_pid"
    say "support-service peers ready in $(( $(date +%s) - peers_t0 ))s"
  fi
  # Observability stack peers: Prometheus (the slow one cold) and VictoriaLogs with its shipper
  # vlagent (under a minute), cached per version like the support-service peers. They build in
  # the background alongside OpenTofu (two builds at once at most) and are waited for at the end.
  if [ "${THREEPORT_SKIP_OBSERVABILITY:-}" = 1 ]; then
    say "THREEPORT_SKIP_OBSERVABILITY=1: not building Prometheus and VictoriaLogs"
  else
    obs_t0=$(date +%s)
    (bash scripts/peers/build-support-peers.sh victoria-logs prometheus 2>&1 | sed -u 's/^/[observability] /') &
    obs_pid=$!
  fi
fi

# OpenTofu for the Terraform controller's tests (about 23 minutes cold on 2 cores, then cached).
if [ "${THREEPORT_SKIP_TOFU:-}" = 1 ]; then
  say "THREEPORT_SKIP_TOFU=1: not building OpenTofu"
else
  need_go
  bash scripts/tofu/build-tofu.sh
fi

if [ -n "${obs_pid:-}" ]; then
  wait "$obs_pid"
  say "observability peers (prometheus, victoria-logs) ready in $(( $(date +%s) - obs_t0 ))s"
fi
