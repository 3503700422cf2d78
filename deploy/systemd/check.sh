#!/usr/bin/env bash
# Checks the systemd units without a running systemd (it is not PID 1 in CI):
#   1. `systemd-analyze verify` must print nothing at all: it exits 0 on warnings such as an
#      unknown or misspelt directive, so any output counts as a failure here.
#   2. `systemd-analyze security --offline=true` must rate every unit at or below
#      MAX_EXPOSURE (2.0 by default; lower is better, 10 is an unsandboxed root service).
# Usage: deploy/systemd/check.sh [BIN_DIR]
#   BIN_DIR (e.g. target/debug): the real binaries are installed into the scratch root that
#   `verify` reads, so the check also proves each ExecStart names a binary the build makes.
#   Without it, empty executables stand in for them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin_dir="${1:-}"
max_exposure="${MAX_EXPOSURE:-2.0}"
units=(doorward.service token-service.service auth-web.service)

if ! command -v systemd-analyze >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
fi
systemd-analyze --version | head -1

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
# verify --root needs the units the service units pull in (sysinit.target, basic.target,
# ...), so the system's own unit directory is copied in beside ours.
mkdir -p "$root/usr/local/bin" "$root/etc/systemd/system" "$root/usr/lib/systemd"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
for bin in doorward token-service auth-web; do
  if [ -n "$bin_dir" ]; then
    if [ ! -x "$bin_dir/$bin" ]; then
      echo "error: $bin_dir/$bin is missing: the units start it" >&2
      exit 1
    fi
    # A hard link when possible: the debug binaries are large.
    ln "$bin_dir/$bin" "$root/usr/local/bin/$bin" 2>/dev/null || cp "$bin_dir/$bin" "$root/usr/local/bin/$bin"
  else
    printf '#!/bin/sh\nexit 0\n' >"$root/usr/local/bin/$bin"
    chmod 755 "$root/usr/local/bin/$bin"
  fi
done
for unit in "${units[@]}"; do
  cp "$here/$unit" "$root/etc/systemd/system/$unit"
done

echo "== systemd-analyze verify"
out="$(systemd-analyze verify --root="$root" "${units[@]}" 2>&1)" || {
  echo "$out" >&2
  echo "error: systemd-analyze verify failed" >&2
  exit 1
}
if [ -n "$out" ]; then
  echo "$out" >&2
  echo "error: systemd-analyze verify printed warnings (above); they must be fixed" >&2
  exit 1
fi
echo "verify: ${units[*]} clean"

echo "== systemd-analyze security --offline=true (fails above $max_exposure)"
failed=0
for unit in "${units[@]}"; do
  report="$(systemd-analyze security --offline=true --root="$root" "$root/etc/systemd/system/$unit" 2>&1)"
  level="$(printf '%s\n' "$report" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')"
  if [ -z "$level" ]; then
    echo "$report" >&2
    echo "error: no exposure level for $unit" >&2
    exit 1
  fi
  # The settings still counted against the unit, for the log.
  printf '%s\n' "$report" | grep '^✗' | sed 's/^/    /' || true
  if awk -v l="$level" -v m="$max_exposure" 'BEGIN { exit !(l > m) }'; then
    echo "$unit: exposure $level > $max_exposure  FAIL"
    failed=1
  else
    echo "$unit: exposure $level (limit $max_exposure)"
  fi
done
exit "$failed"
