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
LOG_TAG=build-upstream
# shellcheck source=../lib/go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/go-build.sh"
hold_lock "$DIR/.build.lock"

MOD="$DIR/build"
if [[ ! -f "$MOD/go.mod" ]]; then
  write_gomod "$MOD" upstreambin github.com/threeport/threeport "$UPSTREAM_VERSION"
  # Pins the packages so that `go mod` keeps their (and their tests') dependencies.
  write_tools_go "$MOD" github.com/threeport/threeport/cmd/tptctl github.com/stretchr/testify/assert
fi

log "threeport $UPSTREAM_VERSION: resolving modules ..."
(cd "$MOD" && nice -n 19 go mod download github.com/threeport/threeport)
# The tests read upstream's own sample configs from the module: link its (read-only) directory.
MOD_SRC=$(cd "$MOD" && module_dir "github.com/threeport/threeport@$UPSTREAM_VERSION")
ln -sfn "$MOD_SRC" "$DIR/module"
go_build_bin "$BIN_DIR" tptctl "$MOD" build -trimpath -ldflags "-s -w" github.com/threeport/threeport/cmd/tptctl
go_build_bin "$BIN_DIR" workload-e2e.test "$MOD" test -c -trimpath github.com/threeport/threeport/test/integration
echo "$BIN_DIR"
