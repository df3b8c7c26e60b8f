#!/usr/bin/env bash
# Builds upstream Threeport's own tptctl and its integration test (test/integration,
# TestWorkloadE2E) from upstream's Go module through the Go module proxy, into a per-machine
# cache outside the repository. The compatibility tests run them against our server.
#
#   scripts/upstream/build-threeport.sh              build what is missing, print the bin dir
#   scripts/upstream/build-threeport.sh --print-dir  print the bin dir only (exit 0 even if not built)
#
# Environment: THREEPORT_CACHE_DIR (default ~/.cache/threeport).
# No upstream source is vendored or committed: the wrapper module is generated into the cache.
set -euo pipefail

UPSTREAM_VERSION=v0.6.1        # github.com/threeport/threeport (go.mod declares go 1.23.4; no replaces)

CACHE_ROOT="${THREEPORT_CACHE_DIR:-$HOME/.cache/threeport}"
DIR="$CACHE_ROOT/upstream-threeport/$UPSTREAM_VERSION"
BIN_DIR="$DIR/bin"

case "${1:-}" in
  --print-dir) echo "$BIN_DIR"; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--print-dir]" >&2; exit 2 ;;
esac

command -v go >/dev/null || { echo "go is not installed" >&2; exit 1; }
command -v flock >/dev/null || { echo "flock (util-linux) is required" >&2; exit 1; }
export GOFLAGS=-mod=mod
export CGO_ENABLED=0
# The checksum database has no entry for this one dependency of upstream's (it answers 404);
# the proxy serves it, and go.sum pins what was fetched.
export GONOSUMDB=github.com/nukleros/aws-builder

mkdir -p "$BIN_DIR" "$DIR/build"
exec 9>"$DIR/.build.lock"
if ! flock -n 9; then
  echo "[build-upstream] another build holds $DIR/.build.lock; waiting"
  flock 9
fi
log() { echo "[build-upstream] $(date +%H:%M:%S) $*"; }

MOD="$DIR/build"
if [[ ! -f "$MOD/go.mod" ]]; then
  cat > "$MOD/go.mod" <<EOM
module threeport.test/upstreambin

go $(go env GOVERSION | sed -E 's/^go([0-9]+\.[0-9]+(\.[0-9]+)?).*/\1/')

require github.com/threeport/threeport $UPSTREAM_VERSION
EOM
  # Pins the packages so that `go mod` keeps their (and their tests') dependencies.
  cat > "$MOD/tools.go" <<'EOM'
//go:build tools

package tools

import (
	_ "github.com/threeport/threeport/cmd/tptctl"
	_ "github.com/stretchr/testify/assert"
)
EOM
fi

# build <name> <go subcommand> <go args...>: into a temp name, then an atomic rename.
build() {
  local name=$1 sub=$2; shift 2
  if [[ -x "$BIN_DIR/$name" ]]; then log "$name: present ($BIN_DIR/$name)"; return 0; fi
  local tmp="$BIN_DIR/.$name.tmp.$$"
  rm -f "$BIN_DIR/.$name.tmp."*
  trap 'rm -f "'"$tmp"'"' EXIT
  local t0; t0=$(date +%s)
  log "$name: building (go $sub $*) ..."
  (cd "$MOD" && nice -n 19 go "$sub" -o "$tmp" "$@")
  chmod 0755 "$tmp"; mv -f "$tmp" "$BIN_DIR/$name"; trap - EXIT
  log "$name: done in $(( $(date +%s) - t0 ))s ($(du -h "$BIN_DIR/$name" | cut -f1))"
}

log "threeport $UPSTREAM_VERSION: resolving modules ..."
(cd "$MOD" && nice -n 19 go mod download github.com/threeport/threeport)
# The tests read upstream's own sample configs from the module: link its (read-only) directory.
MOD_SRC=$(cd "$MOD" && go mod download -json "github.com/threeport/threeport@$UPSTREAM_VERSION" \
  | sed -n -E 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p')
ln -sfn "$MOD_SRC" "$DIR/module"
build tptctl build -trimpath -ldflags "-s -w" \
  github.com/threeport/threeport/cmd/tptctl
build workload-e2e.test test -c -trimpath github.com/threeport/threeport/test/integration
echo "$BIN_DIR"
