#!/usr/bin/env bash
# Checks that each binary's own build reuses the workspace build: after
# `cargo build --workspace`, `cargo build -p token-service` (and -p auth-web, -p doorward)
# must compile no third-party crate. One that does has other features when its package is
# built alone; add it to workspace-hack/Cargo.toml with the workspace build's features.
#
# Usage: .ci/check-feature-alignment.sh [--release]
# Meant to run after CI's `cargo build --workspace` (then the first step below is a no-op).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=()
if [ "${1:-}" = "--release" ]; then
  profile=(--release)
fi

cargo build "${profile[@]}" --workspace
failed=0
# The three binaries an operator runs. (doorward-bench built alone still recompiles a few
# build-time crates of the proto build script and reqwest: not aligned yet.)
for package in token-service auth-web doorward; do
  output=$(cargo build "${profile[@]}" -p "$package" 2>&1) || {
    echo "$output" >&2
    exit 1
  }
  # A workspace crate prints its path: `Compiling token-service v0.1.0 (/src/token-service)`.
  rebuilt=$(echo "$output" | grep -E '^ *Compiling ' | grep -v ' (/' || true)
  if [ -n "$rebuilt" ]; then
    echo "error: cargo build -p $package rebuilt third-party crates after the workspace build:" >&2
    echo "$rebuilt" >&2
    failed=1
  else
    echo "cargo build -p $package: no third-party crate rebuilt"
  fi
done
if [ "$failed" -ne 0 ]; then
  echo "Add each crate named above to workspace-hack/Cargo.toml with the features the workspace" >&2
  echo "build gives it (cargo +nightly build --workspace --unit-graph -Z unstable-options)." >&2
  exit 1
fi
