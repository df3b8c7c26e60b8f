#!/usr/bin/env bash
# Quick start: build, bring up a local Threeport control plane (embedded
# PostgreSQL, mutual TLS, a simulated Kubernetes cluster as the default
# runtime), deploy the sample WordPress workload, and wait until it is Healthy.
set -euo pipefail
cd "$(dirname "$0")/.."

NAME="${THREEPORT_QUICKSTART_NAME:-quickstart}"
TPTCTL=(node dist/src/bin/tptctl.js)
step() { printf '\n==> %s\n' "$*"; }

step "Installing npm packages"
npm ci --no-audit --no-fund
step "Building"
npm run build
step "Building the simulated-cluster binaries (cached after the first run; about 6 minutes cold)"
bash scripts/k8s/build-test-bins.sh

if "${TPTCTL[@]}" config get-control-planes 2>/dev/null | awk 'NR > 1 {print ($1 == "*") ? $2 : $1}' | grep -qx "$NAME"; then
  step "Removing the control plane \"$NAME\" left by an earlier run"
  "${TPTCTL[@]}" down -n "$NAME"
fi

step "Starting the control plane \"$NAME\""
"${TPTCTL[@]}" up -n "$NAME"

step "Deploying the sample workload"
"${TPTCTL[@]}" create workload -c samples/workload/wordpress-workload-local.yaml

step "Waiting for the workload to become Healthy"
for _ in $(seq 1 90); do
  if "${TPTCTL[@]}" get workloads | grep -q Healthy; then break; fi
  printf '.'
  sleep 2
done
echo
"${TPTCTL[@]}" get workloads
"${TPTCTL[@]}" get workloads | grep -q Healthy || { echo "the workload did not become Healthy in 3 minutes; see ~/.threeport/$NAME/threeport.log" >&2; exit 1; }

cat <<DONE

Threeport is running. Open the dashboard (a local proxy with your client certificate; Ctrl-C stops it):
  node dist/src/bin/tptctl.js dashboard

Or try:
  node dist/src/bin/tptctl.js describe workload-instance -n wordpress
  node dist/src/bin/tptctl.js delete workload -c samples/workload/wordpress-workload-local.yaml
  node dist/src/bin/tptctl.js down -n $NAME
DONE
