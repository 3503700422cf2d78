# shellcheck shell=bash
# Sourced by build.sh and test.sh: how podman runs on a machine like CI's, and where its
# store lives. Each setting is written down here because each one was needed:
#   --root/--runroot   a store of our own under /var/cache, kept between CI runs (the image
#                      layers) and never shared with anyone else's podman store;
#   vfs                no overlay mounts inside this sandbox; vfs copies layers, which for
#                      one small FROM-scratch image costs little;
#   cgroupfs           systemd is not PID 1 here, so there is no systemd cgroup manager;
#   runc               crun 1.8 refuses this host's hybrid cgroup v1/v2 layout ("cgroups in
#                      hybrid mode not supported"); runc accepts it;
#   events file        no journald to log events to.
# On a normal host none of this is needed: `podman build` and `podman run` as written in
# deploy/README.md work with podman's defaults (or with docker).
DOORWARD_PODMAN_STORE="${DOORWARD_PODMAN_STORE:-/var/cache/doorward-deploy/containers}"

ensure_podman() {
  local missing=()
  command -v podman >/dev/null 2>&1 || missing+=(podman)
  command -v runc >/dev/null 2>&1 || missing+=(runc)
  # Static: the image has no libraries for a dynamic busybox.
  { [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || missing+=(busybox-static)
  command -v strip >/dev/null 2>&1 || missing+=(binutils)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]} from Debian's packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

pod() {
  podman \
    --root "$DOORWARD_PODMAN_STORE/storage" \
    --runroot "/run/doorward-deploy-podman" \
    --storage-driver vfs \
    --cgroup-manager cgroupfs \
    --runtime runc \
    --events-backend file \
    "$@"
}
