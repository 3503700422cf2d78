#!/usr/bin/env bash
# Writes deploy/compose/secrets/ for compose.yaml: the PostgreSQL password, the two
# services' secret configuration files (database_url with the password, the shared
# session key) and trial certificates from `token-service tls init` (a CA, a server
# certificate for token-service's names and for the proxy's localhost, auth-web's client certificate). For trials: in
# production bring certificates from your own PKI (the CA's key lies beside them here).
# Usage: deploy/compose/make-secrets.sh [BIN_DIR] [OUT_DIR]
#   BIN_DIR holds token-service (default: the one on PATH); OUT_DIR defaults to ./secrets
#   beside compose.yaml. Refuses to overwrite an existing OUT_DIR.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin="${1:+$1/}token-service"
out="${2:-$here/secrets}"
if [ -e "$out" ]; then
  echo "error: $out exists; remove it first to make new secrets" >&2
  exit 1
fi
umask 077
mkdir -p "$out"

"$bin" tls init --out "$out/tls" --days 365 \
  --host token-service --host token-service-1 --host token-service-2 --host localhost >/dev/null
# HAProxy wants the certificate and its key in one file.
cat "$out/tls/server.pem" "$out/tls/server-key.pem" >"$out/proxy.pem"

password="$(openssl rand -hex 24)"
printf '%s' "$password" >"$out/postgres-password"
cat >"$out/token-service.toml" <<EOF
# Secret: mounted at /run/secrets/token-service.toml. Everything else is in compose.yaml.
database_url = "postgres://doorward:$password@postgres:5432/doorward"
EOF
cat >"$out/auth-web.toml" <<EOF
# Secret: mounted at /run/secrets/auth-web.toml. Both replicas share this key, so a
# session made by one is accepted by the other.
[web]
session_key = "$(openssl rand -base64 64 | tr -d '\n')"
EOF

# The containers run as UID 10001 and read these files; nobody else may.
chown -R 10001:10001 "$out"
chmod -R u=rwX,go= "$out"
echo "wrote $out"
