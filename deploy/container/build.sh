#!/usr/bin/env bash
# Builds the Doorward image from binaries already built, without any image registry:
# the Containerfile starts FROM scratch and this script gathers everything the image holds.
# Usage: deploy/container/build.sh BIN_DIR [IMAGE]
#   BIN_DIR  a cargo target profile folder holding doorward, token-service and auth-web
#            (target/release for a real image; target/debug works and is stripped here)
#   IMAGE    the tag to make (default localhost/doorward:latest)
# Prints the image's size at the end.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=deploy/container/lib.sh
. "$here/lib.sh"

bin_dir="${1:?usage: build.sh BIN_DIR [IMAGE]}"
image="${2:-localhost/doorward:latest}"
bins=(doorward token-service auth-web)
for bin in "${bins[@]}"; do
  if [ ! -x "$bin_dir/$bin" ]; then
    echo "error: $bin_dir/$bin is missing (cargo build -p doorward -p token-service -p auth-web)" >&2
    exit 1
  fi
done
ensure_podman
# The probe must be busybox-static: a dynamic busybox would need libraries the image lacks.
if ldd /bin/busybox >/dev/null 2>&1; then
  echo "error: /bin/busybox is dynamically linked; install busybox-static" >&2
  exit 1
fi

ctx="$(mktemp -d /var/tmp/doorward-image.XXXXXX)"
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root/usr/local/bin" "$root/bin" "$root/etc" "$ctx/data"

for bin in "${bins[@]}"; do
  # Stripped copies: symbols and debug info stay in the target folder, not in the image.
  strip --strip-all -o "$root/usr/local/bin/$bin" "$bin_dir/$bin"
done

# Exactly the shared libraries the binaries load (libc, libm, libgcc_s, the loader, ...),
# at the paths the loader looks for them. SQLite and libpq are compiled in.
libs="$(for bin in "${bins[@]}"; do ldd "$bin_dir/$bin"; done |
  awk '/=> \// { print $3 } /^\s*\/[^ ]+ \(0x/ { print $1 }' | sort -u)"
if [ -z "$libs" ]; then
  echo "error: ldd listed no libraries; expected at least libc and the loader" >&2
  exit 1
fi
for lib in $libs; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
# Debian's loader is /lib64/ld-linux-x86-64.so.2, a symlink into /lib/x86_64-linux-gnu;
# the copy above followed it, so both names resolve in the image.

cp /bin/busybox "$root/bin/busybox"
install -m 0755 "$here/doorward-healthcheck" "$root/usr/local/bin/doorward-healthcheck"

# Names for the numeric IDs (ps, logs); nothing in Doorward looks them up.
cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/nonexistent:/sbin/nologin
doorward:x:10001:10001:Doorward:/var/lib/doorward:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
doorward:x:10001:
nogroup:x:65534:
GROUP
# The files a container runtime mounts its own over. Present in the image, so the runtime
# need not create them at start: the root filesystem stays unchanged (test.sh checks
# `podman diff` is empty outside the volume).
printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"
: >"$root/etc/resolv.conf"
printf 'doorward\n' >"$root/etc/hostname"
ln -s /proc/mounts "$root/etc/mtab"

cp "$here/Containerfile" "$ctx/Containerfile"
# --format docker: the OCI image format has no HEALTHCHECK, and podman would drop it.
pod build --format docker --no-cache --tag "$image" --file "$ctx/Containerfile" "$ctx"
size="$(pod image inspect --format '{{.Size}}' "$image")"
echo "built $image: $((size / 1024 / 1024)) MiB ($size bytes)"
