#!/usr/bin/env bash
# Builds the Kubernetes control-plane binaries that the integration tests run
# (kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok) plus helm and a small
# in-memory OCI registry (for the helm OCI chart tests), from the Go module proxy, into a
# per-machine cache outside the repository.
#
#   scripts/k8s/build-test-bins.sh               build what is missing, print the bin dir
#   scripts/k8s/build-test-bins.sh --print-dir   print the k8s bin dir only (exit 0 even if not built)
#   scripts/k8s/build-test-bins.sh --print-helm-dir   same for the helm bin dir
#   scripts/k8s/build-test-bins.sh --print-registry-dir   same for the OCI registry's bin dir
#
# Environment: THREEPORT_CACHE_DIR (default ~/.cache/threeport).
# No Kubernetes source is vendored or committed: the wrapper modules below are generated
# into the cache and resolved through the Go module proxy.
set -euo pipefail

# ---- pinned versions ---------------------------------------------------------------------
K8S_VERSION=v1.34.4            # k8s.io/kubernetes
K8S_STAGING_VERSION=v0.34.4    # every k8s.io/<staging-module> is replaced with this version
ETCD_VERSION=v3.6.16           # go.etcd.io/etcd/server/v3 (kube 1.34 supports etcd 3.5/3.6)
KWOK_VERSION=v0.8.0            # sigs.k8s.io/kwok; its go.mod declares go 1.26.0, so no GOTOOLCHAIN switch
HELM_VERSION=v3.22.0           # helm.sh/helm/v3
REGISTRY_VERSION=v0.22.1       # github.com/google/go-containerregistry (cmd/registry: in-memory, plain HTTP)
# A kwok (or other) release whose go.mod declares Go 1.27 would need, before any go command:
#   export GOTOOLCHAIN=go1.27.3
# (the approved way; the go command fetches that toolchain from the proxy).

# Modules that k8s.io/kubernetes keeps under staging/ and pins at v0.0.0.
K8S_STAGING_MODULES=(
  api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
  cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms
  kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
  mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller
)

CACHE_ROOT="${THREEPORT_CACHE_DIR:-$HOME/.cache/threeport}"
K8S_KEY="${K8S_VERSION}-etcd${ETCD_VERSION}-kwok${KWOK_VERSION}"
K8S_DIR="$CACHE_ROOT/k8s/$K8S_KEY"
BIN_DIR="$K8S_DIR/bin"
HELM_DIR="$CACHE_ROOT/helm/$HELM_VERSION"
HELM_BIN_DIR="$HELM_DIR/bin"
REGISTRY_DIR="$CACHE_ROOT/registry/$REGISTRY_VERSION"
REGISTRY_BIN_DIR="$REGISTRY_DIR/bin"

case "${1:-}" in
  --print-dir) echo "$BIN_DIR"; exit 0 ;;
  --print-helm-dir) echo "$HELM_BIN_DIR"; exit 0 ;;
  --print-registry-dir) echo "$REGISTRY_BIN_DIR"; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--print-dir|--print-helm-dir|--print-registry-dir]" >&2; exit 2 ;;
esac

command -v go >/dev/null || { echo "go is not installed" >&2; exit 1; }
command -v flock >/dev/null || { echo "flock (util-linux) is required" >&2; exit 1; }

export GOFLAGS=-mod=mod
export CGO_ENABLED=0
# GOCACHE / GOMODCACHE stay at their defaults (outside the repo). GOMAXPROCS is left alone.

mkdir -p "$BIN_DIR" "$HELM_BIN_DIR" "$REGISTRY_BIN_DIR" "$K8S_DIR/build"
LOG_TAG=build-test-bins
# shellcheck source=../lib/go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/go-build.sh"
# One build per machine at a time: a second invocation waits, then finds everything present.
hold_lock "$CACHE_ROOT/.build.lock"
START_ALL=$(date +%s)

# build_bin <out-dir> <name> <module-dir> <package> <ldflags-extra>
build_bin() {
  go_build_bin "$1" "$2" "$3" build -trimpath -ldflags "-s -w $5" "$4"
}

# ---- Kubernetes control plane --------------------------------------------------------------
K8S_MOD="$K8S_DIR/build/kubernetes"
if [[ ! -x "$BIN_DIR/kube-apiserver" || ! -x "$BIN_DIR/kube-controller-manager" || ! -x "$BIN_DIR/kube-scheduler" ]]; then
  mkdir -p "$K8S_MOD"
  K8S_REPLACES=$(for m in "${K8S_STAGING_MODULES[@]}"; do echo "	k8s.io/$m => k8s.io/$m $K8S_STAGING_VERSION"; done)
  write_gomod "$K8S_MOD" k8sbins k8s.io/kubernetes "$K8S_VERSION" "// Same GODEBUG defaults as upstream k8s.io/kubernetes $K8S_VERSION.
godebug default=go1.24

replace (
$K8S_REPLACES
)"
  # A blank-import file pins the commands so that `go mod` keeps their dependencies.
  write_tools_go "$K8S_MOD" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler
  t0=$(date +%s)
  log "kubernetes $K8S_VERSION: resolving modules ..."
  (cd "$K8S_MOD" && nice -n 10 go mod download k8s.io/kubernetes)
  log "kubernetes $K8S_VERSION: modules resolved in $(( $(date +%s) - t0 ))s"
fi
K8S_MINOR=$(echo "$K8S_VERSION" | cut -d. -f2)
K8S_VERSION_LDFLAGS=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  K8S_VERSION_LDFLAGS+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$K8S_MINOR"
  K8S_VERSION_LDFLAGS+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
for c in kube-apiserver kube-controller-manager kube-scheduler; do
  build_bin "$BIN_DIR" "$c" "$K8S_MOD" "k8s.io/kubernetes/cmd/$c" "$K8S_VERSION_LDFLAGS"
done

# ---- etcd ----------------------------------------------------------------------------------
ETCD_MOD="$K8S_DIR/build/etcd"
if [[ ! -x "$BIN_DIR/etcd" ]]; then
  mkdir -p "$ETCD_MOD"
  write_gomod "$ETCD_MOD" etcdbin go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
  cat > "$ETCD_MOD/main.go" <<'EOF'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
fi
build_bin "$BIN_DIR" etcd "$ETCD_MOD" . ""

# ---- kwok ----------------------------------------------------------------------------------
KWOK_MOD="$K8S_DIR/build/kwok"
if [[ ! -x "$BIN_DIR/kwok" ]]; then
  mkdir -p "$KWOK_MOD"
  write_gomod "$KWOK_MOD" kwokbin sigs.k8s.io/kwok "$KWOK_VERSION"
  write_tools_go "$KWOK_MOD" sigs.k8s.io/kwok/cmd/kwok
fi
build_bin "$BIN_DIR" kwok "$KWOK_MOD" sigs.k8s.io/kwok/cmd/kwok \
  "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"

# kwok needs Stage objects (how fake nodes and pods move through their lifecycle). The
# standalone binary has no built-in set, so take the release's own default "fast" stages
# from the module cache and keep them next to the binaries.
KWOK_STAGES="$K8S_DIR/etc/kwok-stages.yaml"
if [[ ! -s "$KWOK_STAGES" ]]; then
  mkdir -p "$K8S_DIR/etc"
  KWOK_SRC=$(cd "$KWOK_MOD" && module_dir "sigs.k8s.io/kwok@$KWOK_VERSION")
  tmp="$KWOK_STAGES.tmp.$$"
  : > "$tmp"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    { echo "---"; cat "$KWOK_SRC/kustomize/stage/$f"; } >> "$tmp"
  done
  mv -f "$tmp" "$KWOK_STAGES"
  log "kwok stages: written to $KWOK_STAGES"
fi

# ---- helm ----------------------------------------------------------------------------------
HELM_MOD="$HELM_DIR/build"
if [[ ! -x "$HELM_BIN_DIR/helm" ]]; then
  mkdir -p "$HELM_MOD"
  write_gomod "$HELM_MOD" helmbin helm.sh/helm/v3 "$HELM_VERSION"
  write_tools_go "$HELM_MOD" helm.sh/helm/v3/cmd/helm
fi
build_bin "$HELM_BIN_DIR" helm "$HELM_MOD" helm.sh/helm/v3/cmd/helm \
  "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"

# ---- OCI registry (helm OCI chart tests) ---------------------------------------------------
REGISTRY_MOD="$REGISTRY_DIR/build"
if [[ ! -x "$REGISTRY_BIN_DIR/registry" ]]; then
  mkdir -p "$REGISTRY_MOD"
  write_gomod "$REGISTRY_MOD" registrybin github.com/google/go-containerregistry "$REGISTRY_VERSION"
  write_tools_go "$REGISTRY_MOD" github.com/google/go-containerregistry/cmd/registry
fi
build_bin "$REGISTRY_BIN_DIR" registry "$REGISTRY_MOD" github.com/google/go-containerregistry/cmd/registry ""

log "all binaries present; total ${SECONDS}s (wall $(( $(date +%s) - START_ALL ))s)"
echo "helm bin dir: $HELM_BIN_DIR"
echo "registry bin dir: $REGISTRY_BIN_DIR"
echo "$BIN_DIR"
