#!/usr/bin/env bash
# Builds the image and proves it works as deployed: the all-in-one with SQLite on a volume,
# a read-only root filesystem, no capabilities, no new privileges, running as UID 10001.
# Inside the running container the operator CLI creates a user and a confidential
# application; the seed's password grant must then return an access token, the image's
# HEALTHCHECK must pass, nothing may have been written outside the volume, and SIGTERM must
# stop the server cleanly.
# Usage: deploy/container/test.sh BIN_DIR      (e.g. target/debug or target/release)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=deploy/container/lib.sh
. "$here/lib.sh"
bin_dir="${1:?usage: test.sh BIN_DIR}"
image="localhost/doorward:test"
name="doorward-test-$$"
volume="doorward-test-data-$$"

fail() {
  echo "FAIL: $*" >&2
  echo "--- container log" >&2
  pod logs "$name" >&2 2>&1 || true
  exit 1
}
cleanup() {
  pod rm --force --time 2 "$name" >/dev/null 2>&1 || true
  pod volume rm --force "$volume" >/dev/null 2>&1 || true
  # Earlier builds of the same tag, now untagged: vfs keeps a full copy of each.
  pod image prune --force >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$here/build.sh" "$bin_dir" "$image"

user="$(pod image inspect --format '{{.Config.User}}' "$image")"
[ "$user" = "10001:10001" ] || fail "the image runs as '$user', not 10001:10001"
healthcheck="$(pod image inspect --format '{{json .Config.Healthcheck}}' "$image")"
grep -q doorward-healthcheck <<<"$healthcheck" ||
  fail "the image has no HEALTHCHECK (was it built with --format docker?)"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"

# --network host keeps every request on this machine's loopback (no bridge, no NAT); the
# gRPC port is 0 (any free port) so that it cannot clash with anything else running here.
# The ulimits are this sandbox's: it lacks CAP_SYS_RESOURCE, and podman's default limits
# are above the host's hard limits, which runc may not raise.
# --read-only-tmpfs=false: not even /tmp or /run is writable; the volume is the only place.
pod volume create "$volume" >/dev/null
pod run --detach --name "$name" \
  --read-only --read-only-tmpfs=false \
  --cap-drop ALL --security-opt no-new-privileges \
  --network host \
  --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 \
  --volume "$volume:/var/lib/doorward" \
  --env "AUTH_WEB_ADDR=127.0.0.1:$port" \
  --env "TOKEN_SERVICE_ADDR=127.0.0.1:0" \
  --env "PUBLIC_URL=$base" \
  "$image" >/dev/null

ready=""
for _ in $(seq 1 60); do
  if curl -fsS -o /dev/null "$base/-/readiness" 2>/dev/null; then ready=yes; break; fi
  [ "$(pod inspect --format '{{.State.Running}}' "$name")" = true ] || fail "the container stopped"
  sleep 1
done
[ -n "$ready" ] ||
  fail "/-/readiness did not answer 200 on $base within 60 s (last: $(curl -s -o /dev/null -w '%{http_code}' "$base/-/readiness"))"
curl -fsS -o /dev/null "$base/-/liveness" || fail "/-/liveness does not answer 200"
curl -fsS -o /dev/null "$base/-/health" || fail "/-/health (the alias of /-/liveness) does not answer 200"
echo "ok: the container answers /-/readiness, /-/liveness and /-/health on $base"

pid="$(pod inspect --format '{{.State.Pid}}' "$name")"
uids="$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$pid/status")"
[ "$uids" = "10001 10001 10001 10001" ] || fail "the server runs with UIDs '$uids', not 10001"
caps="$(awk '/^CapEff:/ { print $2 }' "/proc/$pid/status")"
[ "$caps" = 0000000000000000 ] || fail "the server holds capabilities $caps"
nnp="$(awk '/^NoNewPrivs:/ { print $2 }' "/proc/$pid/status")"
[ "$nnp" = 1 ] || fail "no_new_privs is not set"
echo "ok: the server runs as 10001:10001 with no capabilities and no_new_privs"

# Read whole before matching: `grep -q` would close the pipe early and, under pipefail,
# fail the pipeline on podman's SIGPIPE.
log="$(pod logs "$name" 2>&1)"
grep -q "First start: created the administrator" <<<"$log" ||
  fail "the first start did not create the administrator"

pod healthcheck run "$name" || fail "the image's HEALTHCHECK failed"
# And the probe can fail: pointed at a port nothing listens on, or at a path the server
# answers 404, it must say unhealthy (no fallback to another path).
if pod exec --env HEALTHCHECK_URL=http://127.0.0.1:1/-/readiness "$name" doorward-healthcheck 2>/dev/null; then
  fail "the health probe passed against a closed port"
fi
if pod exec --env "HEALTHCHECK_URL=$base/-/no-such-probe" "$name" doorward-healthcheck 2>/dev/null; then
  fail "the health probe passed against a path that answers 404"
fi
echo "ok: HEALTHCHECK passes (and fails against a closed port and a 404)"

if pod exec "$name" /bin/busybox touch /probe 2>/dev/null; then
  fail "the root filesystem is writable"
fi
echo "ok: the root filesystem is read-only"

password="correct horse battery $$"
printf '%s\n' "$password" |
  pod exec --interactive "$name" doorward users create --username jane --email jane@example.com --password-stdin ||
  fail "users create failed inside the container"
app="$(pod exec "$name" doorward apps create --name "Container test" --redirect-uri http://127.0.0.1/cb --json)" ||
  fail "apps create failed inside the container"
client_id="$(printf '%s' "$app" | jq -er .uid)" || fail "apps create printed no uid: $app"
client_secret="$(printf '%s' "$app" | jq -er .secret)" || fail "apps create printed no secret: $app"
echo "ok: the CLI in the container created user jane and application $client_id"

response="$(curl -sS -u "$client_id:$client_secret" "$base/oauth/token" \
  -d grant_type=password -d username=jane --data-urlencode "password=$password")"
token="$(printf '%s' "$response" | jq -er .access_token)" || fail "no access_token: $response"
user_json="$(curl -sS -H "Authorization: Bearer $token" "$base/api/v4/user")"
[ "$(printf '%s' "$user_json" | jq -r .username)" = jane ] || fail "/api/v4/user answered $user_json"
echo "ok: the password grant issued an access token, and /api/v4/user accepts it"

# The all-in-one serves both metric sets on auth-web's /-/metrics, to loopback by default.
metrics_file="$(mktemp)"
status="$(curl -sS -o "$metrics_file" -w '%{http_code}' "$base/-/metrics")"
[ "$status" = 200 ] || fail "/-/metrics answered $status"
has_sample() { # NAME LABEL... : a sample of NAME carrying every LABEL, with a value >= 1
  local name="$1"
  shift
  awk -v name="$name" -v labels="$*" '
    index($0, name "{") == 1 || index($0, name " ") == 1 {
      n = split(labels, want, " "); ok = 1
      for (i = 1; i <= n; i++) if (index($0, want[i]) == 0) ok = 0
      if (ok && $NF + 0 >= 1) found = 1
    }
    END { exit !found }' "$metrics_file"
}
has_sample doorward_web_token_responses_total 'grant_type="password"' 'outcome="issued"' ||
  fail "/-/metrics has no issued password grant in doorward_web_token_responses_total"
has_sample doorward_grants_total 'grant_type="password"' ||
  fail "/-/metrics has no password grant in doorward_grants_total"
has_sample process_resident_memory_bytes || fail "/-/metrics has no process_resident_memory_bytes"
echo "ok: /-/metrics counts the password grant on both halves"
rm -f "$metrics_file"

# Nothing outside the volume changed (podman diff lists the container layer's changes).
changes="$(pod diff "$name" | grep -v -E '^[ACD] /var/lib/doorward(/|$)' || true)"
[ -z "$changes" ] || fail "files changed outside the volume: $changes"
echo "ok: no file changed outside /var/lib/doorward"

pod stop --time 20 "$name" >/dev/null
code="$(pod inspect --format '{{.State.ExitCode}}' "$name")"
[ "$code" = 0 ] || fail "the server exited with $code after SIGTERM"
echo "ok: SIGTERM stops the server with exit code 0"

size="$(pod image inspect --format '{{.Size}}' "$image")"
echo "container test passed (image $((size / 1024 / 1024)) MiB)"
