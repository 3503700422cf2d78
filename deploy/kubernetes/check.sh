#!/usr/bin/env bash
# Renders the kustomize base and every overlay (render.py) and validates the manifests
# offline: Kubernetes OpenAPI schemas (strict), the deployment's own rules, and, with
# BIN_DIR, each workload's environment loaded by Doorward itself. See check.py.
# Usage: deploy/kubernetes/check.sh PYTHON_VENV_BIN [BIN_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${1:?usage: check.sh PYTHON_VENV_BIN [BIN_DIR]}"
bin_dir="${2:-}"
"$venv/python" "$here/check.py" "$here" ${bin_dir:+"$bin_dir/doorward"}
