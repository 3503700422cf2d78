#!/usr/bin/env bash
# Every check of the deploy/ kit, in one script for CI (.ci/run calls it last):
#   systemd      systemd-analyze verify (silent) and security exposure <= 2.0 per unit;
#                the binaries run under each unit's seccomp filter, MemoryDenyWriteExecute,
#                NoNewPrivileges and empty capability set (sandbox-test.sh)
#   monitoring   promtool check config/rules, promtool test rules, dashboard queries
#   compose      compose-spec schema, podman-compose config, deployment rules, and each
#                service's configuration loaded by the real binary; then the stack run for
#                real without containers (run-test.sh): migrate, 2+2 services over mTLS,
#                the proxy, the CLI and the password grant
#   kubernetes   kustomize base and overlays rendered, OpenAPI schemas (strict), rules,
#                each workload's configuration loaded by the real binary
#   container    the image built from BIN_DIR and run: CLI, password grant, healthcheck,
#                read-only root, UID 10001 (deploy/container/test.sh)
# Installs what a fresh machine lacks (Debian packages; Python tools pinned in
# requirements.txt, in a virtualenv cached under /var/cache/doorward-deploy keyed on that
# file). Stops at the first failure.
# Usage: deploy/check.sh BIN_DIR      (a cargo profile folder with doorward, token-service
#                                      and auth-web; CI passes target/debug)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin_dir="$(cd "${1:?usage: deploy/check.sh BIN_DIR (e.g. target/debug)}" && pwd)"
cache=/var/cache/doorward-deploy
started=$SECONDS
current=""
step_started=$SECONDS
step() {
  if [ -n "$current" ]; then echo "-- $current: $((SECONDS - step_started)) s"; fi
  current="$1"
  step_started=$SECONDS
  printf '\n==== deploy: %s\n' "$1"
}

step "tools"
need=()
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v strip >/dev/null 2>&1 || need+=(binutils)
command -v jq >/dev/null 2>&1 || need+=(jq)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
/usr/bin/python3 -c 'import seccomp' 2>/dev/null || need+=(python3-seccomp)
{ [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1; } || need+=(busybox-static)
# Package scripts do not start services on this kind of machine (no systemd; policy-rc.d
# where present); deploy/ starts what it needs in its own namespaces and stops it.
if [ "${#need[@]}" -gt 0 ] || ! command -v promtool >/dev/null 2>&1; then
  apt-get update -qq
fi
if [ "${#need[@]}" -gt 0 ]; then
  echo "installing ${need[*]} from Debian's packages"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v promtool >/dev/null 2>&1; then
  # promtool is all that is wanted of prometheus: not the exporters it recommends.
  echo "installing prometheus (for promtool) from Debian's packages"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
venv="$cache/venv-$(sha256sum "$here/requirements.txt" | cut -c1-16)"
if [ ! -x "$venv/bin/check-jsonschema" ]; then
  echo "making $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$venv"
  }
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi
echo "python tools: $venv"

step "systemd units"
"$here/systemd/check.sh" "$bin_dir"

step "the binaries under the units' seccomp, MDWE, no_new_privs and capability settings"
"$here/systemd/sandbox-test.sh" "$bin_dir"

step "monitoring (Prometheus rules, Grafana dashboard)"
"$here/monitoring/check.sh"

step "compose"
"$here/compose/check.sh" "$venv/bin" "$bin_dir"

step "compose's stack, run from packages and binaries in a namespace of its own"
"$here/compose/run-test.sh" "$venv/bin" "$bin_dir"

step "kubernetes"
"$here/kubernetes/check.sh" "$venv/bin" "$bin_dir"

step "example configuration"
# The example file must load as it is (unknown keys are errors), in the real binary.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
"$bin_dir/doorward" --config "$here/doorward.example.toml" \
  tls init --out "$scratch/tls" --host 127.0.0.1 >/dev/null
echo "doorward.example.toml loads"

step "container image"
"$here/container/test.sh" "$bin_dir"

echo "-- $current: $((SECONDS - step_started)) s"
echo
echo "deploy checks passed in $((SECONDS - started)) s"
