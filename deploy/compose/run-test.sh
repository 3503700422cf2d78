#!/usr/bin/env bash
# Runs compose.yaml's stack for real, without containers (no image registry is reachable
# for the postgres and haproxy images): PostgreSQL and HAProxy from Debian's packages and
# the Doorward binaries, each with its service's command, environment and secret files, in a
# network and mount namespace of their own. Then: migrate before the token-services, both
# token-services and both auth-webs up (auth-web over mutual TLS), the operator CLI, the
# password grant through the proxy over HTTPS reaching both auth-webs, and an auth-web
# without its client certificate refused. See run-stack.py for what differs from compose.
# Usage: deploy/compose/run-test.sh PYTHON_VENV_BIN BIN_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:?usage: run-test.sh PYTHON_VENV_BIN BIN_DIR}"
bin_dir="$(cd "${2:?usage: run-test.sh PYTHON_VENV_BIN BIN_DIR}" && pwd)"

need=()
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

scratch="$(mktemp -d /var/tmp/doorward-compose.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
chmod 755 "$scratch"
mkdir "$scratch/bin"
# Copies the service user (UID 10001) may execute wherever the target folder is.
for bin in doorward token-service auth-web; do cp "$bin_dir/$bin" "$scratch/bin/"; done
chmod 755 "$scratch/bin" "$scratch/bin"/*
"$here/make-secrets.sh" "$scratch/bin" "$scratch/secrets" >/dev/null
(cd "$here" && "$venv/podman-compose" -f compose.yaml config) >"$scratch/resolved.yaml"

unshare --net --mount --fork -- "$venv/python" "$here/run-stack.py" \
  "$scratch/resolved.yaml" "$scratch/secrets" "$scratch/bin" "$here/haproxy.cfg" "$scratch"
