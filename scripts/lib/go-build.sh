# scripts/lib/go-build.sh: the steps every script that builds a test peer from Go modules shares.
# Source it after setting LOG_TAG (the prefix of every log line). Each script builds through a
# small wrapper module of its own (`threeport.test/<name>`) that requires the upstream module, so
# the go command resolves exactly what the upstream release pins, plus the replaces we repeat.

log() { echo "[$LOG_TAG] $(date +%H:%M:%S) $*"; }

# go_line: the installed toolchain's language version (1.25 or 1.25.3), for a wrapper's `go` line.
go_line() { go env GOVERSION | sed -E 's/^go([0-9]+\.[0-9]+(\.[0-9]+)?).*/\1/'; }

# module_dir <module@version>: where the go command unpacked that module (downloads it if needed).
module_dir() {
  go mod download -json "$1" | sed -n -E 's/^[[:space:]]*"Dir": "(.*)",?$/\1/p'
}

# hold_lock <lock-file>: one build of that thing per machine at a time (fd 9, held until the
# script exits or closes it). A second invocation waits, then finds the result present.
hold_lock() {
  exec 9>"$1"
  if ! flock -n 9; then
    log "another build holds $1; waiting"
    flock 9
  fi
}

# write_gomod <dir> <wrapper-name> <module> <version> [<directives>]: the wrapper's go.mod,
# requiring <module> <version>, then the further directives (replace, godebug, exclude). go.sum is
# dropped only when the go.mod template changed, so an edited template re-resolves while an
# unchanged one keeps its resolved go.mod/go.sum (an interrupted build resumes).
write_gomod() {
  local dir=$1 name=$2 module=$3 version=$4 directives=${5:-}
  mkdir -p "$dir"
  {
    printf 'module threeport.test/%s\n\ngo %s\n\nrequire %s %s\n' "$name" "$(go_line)" "$module" "$version"
    if [[ -n "$directives" ]]; then printf '\n%s\n' "$directives"; fi
  } > "$dir/go.mod.new"
  if ! cmp -s "$dir/go.mod.new" "$dir/go.mod.template" 2>/dev/null; then
    cp "$dir/go.mod.new" "$dir/go.mod"
    cp "$dir/go.mod.new" "$dir/go.mod.template"
    rm -f "$dir/go.sum"
  fi
  rm -f "$dir/go.mod.new"
}

# write_tools_go <dir> <package...>: a tools.go that imports the packages, so `go mod` keeps
# them (and what their builds and tests need) in the wrapper's go.sum.
write_tools_go() {
  local dir=$1; shift
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for p in "$@"; do printf '\t_ "%s"\n' "$p"; done
    printf ')\n'
  } > "$dir/tools.go"
}

# go_build_bin <out-dir> <name> <module-dir> <go-subcommand> <go-args...>: runs
# `go <subcommand> -o <tmp> <go-args...>` in the module dir at low priority, into a temp name in
# <out-dir>, then renames it atomically. Skips a binary already present. With BUILD_INFO set,
# appends the cold build time and size to that file.
go_build_bin() {
  local out_dir=$1 name=$2 mod_dir=$3 sub=$4; shift 4
  mkdir -p "$out_dir"
  if [[ -x "$out_dir/$name" ]]; then
    log "$name: present, skipping ($out_dir/$name)"
    return 0
  fi
  local tmp="$out_dir/.$name.tmp.$$"
  rm -f "$out_dir/.$name.tmp."*   # leftovers of an interrupted run (we hold the lock)
  trap 'rm -f "'"$tmp"'"' EXIT
  local t0; t0=$(date +%s)
  log "$name: building (go $sub ${*: -1}; load $(cut -d' ' -f1 /proc/loadavg)) ..."
  (cd "$mod_dir" && nice -n 19 go "$sub" -o "$tmp" "$@")
  chmod 0755 "$tmp"
  mv -f "$tmp" "$out_dir/$name"
  trap - EXIT
  local secs=$(( $(date +%s) - t0 )) size; size=$(du -m "$out_dir/$name" | cut -f1)
  if [[ -n "${BUILD_INFO:-}" ]]; then
    echo "$name build_seconds=$secs size_mib=$size built=$(date -u +%FT%TZ) load=$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' ,)" >> "$BUILD_INFO"
  fi
  log "$name: done in ${secs}s (${size} MiB)"
}
