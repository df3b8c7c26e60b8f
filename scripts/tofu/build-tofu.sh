#!/usr/bin/env bash
# Builds the OpenTofu CLI (`tofu`) that the Terraform controller runs, from its Go module
# through the module proxy, into a per-machine cache outside the repository.
#
#   scripts/tofu/build-tofu.sh              build it if missing, then print the bin dir
#   scripts/tofu/build-tofu.sh --print-dir  print the bin dir only (exit 0 even if not built)
#   scripts/tofu/build-tofu.sh --version    print the pinned OpenTofu version
#
# Environment: THREEPORT_CACHE_DIR (default ~/.cache/threeport).
# A cold build takes about 23 minutes on 2 cores (110 MB binary). No OpenTofu source is vendored
# or committed: the wrapper module below is generated into the cache and resolved through the
# Go module proxy. Terraform itself does not build from the proxy here, hence OpenTofu.
set -euo pipefail

# ---- pinned versions ---------------------------------------------------------------------
TOFU_VERSION=v1.12.6
# Upstream's go.mod replaces hcl with its fork; a `replace` in a dependency's go.mod does not
# apply to the main module, so the wrapper repeats it (without it the build fails).
HCL_REPLACE='github.com/hashicorp/hcl/v2 v2.20.1 => github.com/opentofu/hcl/v2 v2.20.2-0.20251021132045-587d123c2828'

CACHE_ROOT="${THREEPORT_CACHE_DIR:-$HOME/.cache/threeport}"
TOFU_DIR="$CACHE_ROOT/tofu/$TOFU_VERSION"
BIN_DIR="$TOFU_DIR/bin"

case "${1:-}" in
  --print-dir) echo "$BIN_DIR"; exit 0 ;;
  --version) echo "$TOFU_VERSION"; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--print-dir|--version]" >&2; exit 2 ;;
esac

LOG_TAG=build-tofu
# shellcheck source=../lib/go-build.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/go-build.sh"

if [[ -x "$BIN_DIR/tofu" ]]; then
  log "tofu $TOFU_VERSION: present ($BIN_DIR/tofu)"
  echo "$BIN_DIR"
  exit 0
fi

command -v go >/dev/null || { echo "go is not installed" >&2; exit 1; }
command -v flock >/dev/null || { echo "flock (util-linux) is required" >&2; exit 1; }

export GOFLAGS=-mod=mod
export CGO_ENABLED=0

MOD_DIR="$TOFU_DIR/build"
mkdir -p "$BIN_DIR" "$MOD_DIR"
# One tofu build per machine at a time (its own lock, so it does not queue behind the
# Kubernetes binaries): a second invocation waits, then finds the binary present.
hold_lock "$TOFU_DIR/.build.lock"
if [[ -x "$BIN_DIR/tofu" ]]; then
  log "tofu $TOFU_VERSION: built by the other invocation ($BIN_DIR/tofu)"
  echo "$BIN_DIR"
  exit 0
fi

write_gomod "$MOD_DIR" tofubin github.com/opentofu/opentofu "$TOFU_VERSION" "// Same GODEBUG settings as upstream's go.mod.
godebug (
	tlsmlkem=0
	winsymlink=0
)

replace $HCL_REPLACE"
write_tools_go "$MOD_DIR" github.com/opentofu/opentofu/cmd/tofu

t0=$(date +%s)
log "tofu $TOFU_VERSION: resolving modules ..."
(cd "$MOD_DIR" && nice -n 19 go mod download github.com/opentofu/opentofu)
log "tofu $TOFU_VERSION: modules resolved in $(( $(date +%s) - t0 ))s"

tmp="$BIN_DIR/.tofu.tmp.$$"
rm -f "$BIN_DIR/.tofu.tmp."*   # leftovers of an interrupted run (we hold the lock)
trap 'rm -f "$tmp"' EXIT
t0=$(date +%s)
log "tofu $TOFU_VERSION: building github.com/opentofu/opentofu/cmd/tofu (about 23 min cold on 2 cores) ..."
# version.dev=no: a release build (`tofu version` says v1.12.6, not v1.12.6-dev).
# Progress: -v names each package as it is compiled; print a count once a minute instead of
# flooding the terminal with ~1,500 package names.
if ! (cd "$MOD_DIR" && nice -n 19 go build -v -trimpath -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" -o "$tmp" github.com/opentofu/opentofu/cmd/tofu) 2>&1 \
  | awk -v start="$t0" '
      /^(# |go: |[^ ]+\.go:[0-9])/ || /cannot |refused|not available|FAIL/ { print; fflush(); next }
      { n++; now = systime(); if (now - last >= 60) { printf "[build-tofu] %s %d packages compiled (%ds)\n", strftime("%H:%M:%S"), n, now - start; fflush(); last = now } }'
then
  log "tofu $TOFU_VERSION: build FAILED"; exit 1
fi
chmod 0755 "$tmp"
TF_CLI_CONFIG_FILE= "$tmp" version >/dev/null   # the binary runs before it is published
mv -f "$tmp" "$BIN_DIR/tofu"
trap - EXIT
log "tofu $TOFU_VERSION: done in $(( $(date +%s) - t0 ))s ($(du -h "$BIN_DIR/tofu" | cut -f1)); $(TF_CLI_CONFIG_FILE= "$BIN_DIR/tofu" version | grep -m1 OpenTofu)"
echo "$BIN_DIR"
