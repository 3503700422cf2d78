#!/usr/bin/env bash
# Validates compose.yaml offline (no image is pulled, nothing is started):
#   1. against the Compose Specification's JSON schema (check-jsonschema's vendored copy);
#   2. `podman-compose config` resolves it (anchors, merges, interpolation);
#   3. the rules the schema cannot know, on the resolved file (check-rules.py): every
#      Doorward container read-only, UID 10001, no capabilities; every token-service waits
#      for the migration to complete; secrets declared and present; mTLS on both sides;
#   4. with BIN_DIR: make-secrets.sh runs (tls init with every service name), and each
#      Doorward service's environment and secret config file load in the real binary
#      (an unknown or misspelt DOORWARD_* variable or TOML key stops it).
# Usage: deploy/compose/check.sh PYTHON_VENV_BIN [BIN_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:?usage: check.sh PYTHON_VENV_BIN [BIN_DIR]}"
bin_dir="${2:-}"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

echo "== compose-spec schema"
"$venv/check-jsonschema" --builtin-schema vendor.compose-spec "$here/compose.yaml"

echo "== podman-compose config"
# podman-compose reads the secret files' paths but not their contents; config needs none.
(cd "$here" && "$venv/podman-compose" -f compose.yaml config) >"$scratch/resolved.yaml"
echo "resolved: $(grep -c '^  [a-z0-9-]*:$' "$scratch/resolved.yaml") top-level entries"

echo "== deployment rules"
secrets_dir=""
if [ -n "$bin_dir" ]; then
  # Fresh secrets from the real tls init, then every service's configuration is loaded.
  "$here/make-secrets.sh" "$bin_dir" "$scratch/secrets"
  secrets_dir="$scratch/secrets"
fi
"$venv/python" "$here/check-rules.py" "$scratch/resolved.yaml" "$here/compose.yaml" \
  "${bin_dir:+$bin_dir/doorward}" "$secrets_dir"
