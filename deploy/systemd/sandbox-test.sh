#!/usr/bin/env bash
# Runs Doorward's binaries under the restrictions each unit asks for, read from the unit
# files by sandbox-exec.py in a mount namespace of their own: ProtectSystem=strict (all
# read-only but the state and runtime directories), PrivateTmp, ProtectHome,
# PrivateDevices, ProtectKernelTunables, ProtectProc=invisible with ProcSubset=pid, UMask,
# the seccomp SystemCallFilter with RestrictAddressFamilies, RestrictNamespaces,
# LockPersonality and RestrictSUIDSGID, MemoryDenyWriteExecute through the kernel's
# PR_SET_MDWE, NoNewPrivileges, an empty capability bounding set, and a non-root UID. Then:
#   1. doorward.service: `migrate` (ExecStartPre), the all-in-one, the operator CLI and
#      the seed's password grant;
#   2. token-service.service + auth-web.service as one host runs them: the same UID, auth-web
#      reaching token-service over the Unix socket (which admits its own user only), and
#      the grant again;
#   3. a process in the same sandbox is refused what the units forbid.
# This is not systemd, which cannot start units here (it is not PID 1): sandbox-exec.py
# lists what it does not apply. Scratch folders stand in for /var/lib/doorward and
# /run/doorward.
# Usage: deploy/systemd/sandbox-test.sh BIN_DIR
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bin_dir="$(cd "${1:?usage: sandbox-test.sh BIN_DIR}" && pwd)"
# A UID from systemd's DynamicUser= range, owning nothing else on this machine.
uid=61999
gid=61999

if ! /usr/bin/python3 -c 'import seccomp' 2>/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-seccomp >/dev/null
fi

# Not under /tmp or /var/tmp, which PrivateTmp= hides.
mkdir -p /var/cache/doorward-deploy
scratch="$(mktemp -d /var/cache/doorward-deploy/sandbox.XXXXXX)"
chmod 755 "$scratch"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$scratch"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  for log in "$scratch"/*.log; do
    [ -f "$log" ] && { echo "--- $log" >&2; tail -20 "$log" >&2; }
  done
  exit 1
}
# The binaries, readable by the sandbox's UID wherever the target folder is.
mkdir -p "$scratch/bin"
for bin in doorward token-service auth-web; do cp "$bin_dir/$bin" "$scratch/bin/$bin"; done
chmod 755 "$scratch/bin"/*

# sandboxed UNIT COMMAND...: COMMAND under UNIT's restrictions, as the service's user, with
# $writable (colon-separated) as the unit's writable directories. Execs, so a background
# call's $! is the service's own PID.
writable=""
sandboxed() {
  local unit="$1"
  shift
  SANDBOX_WRITABLE="$writable" exec unshare --mount -- \
    /usr/bin/python3 "$here/sandbox-exec.py" "$here/$unit" "$uid" "$gid" "$@"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # URL PID
  for _ in $(seq 1 60); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.5
  done
  return 1
}
confined() { # PID NAME: the process runs as the service's UID, filtered, with no privileges
  local status="/proc/$1/status"
  [ "$(awk '/^Uid:/ { print $2 }' "$status")" = "$uid" ] || fail "$2 does not run as UID $uid"
  [ "$(awk '/^Seccomp:/ { print $2 }' "$status")" = 2 ] || fail "$2 has no seccomp filter"
  [ "$(awk '/^NoNewPrivs:/ { print $2 }' "$status")" = 1 ] || fail "$2 lacks no_new_privs"
  [ "$(awk '/^CapBnd:/ { print $2 }' "$status")" = 0000000000000000 ] || fail "$2 keeps a capability bounding set"
  # Its mount namespace: / read-only (ProtectSystem=strict), its own /proc (subset=pid).
  awk '$5 == "/" { split($6, o, ","); exit !(o[1] == "ro") }' "/proc/$1/mountinfo" || fail "$2 sees / writable"
  grep -q 'subset=pid' "/proc/$1/mountinfo" || fail "$2 sees the host's /proc"
}
grant() { # BASE UNIT CLI: create jane and an application with CLI under UNIT, then the grant
  local base="$1" unit="$2" cli="$3" password="correct horse battery $$" app client_id secret response
  printf '%s\n' "$password" |
    (sandboxed "$unit" "$cli" users create --username jane --email jane@example.com --password-stdin) >/dev/null ||
    fail "$cli users create failed under $unit's sandbox"
  app="$( (sandboxed "$unit" "$cli" apps create --name "Sandbox test" --redirect-uri http://127.0.0.1/cb --json))" ||
    fail "$cli apps create failed under $unit's sandbox"
  client_id="$(printf '%s' "$app" | jq -er .uid)" || fail "no uid: $app"
  secret="$(printf '%s' "$app" | jq -er .secret)" || fail "no secret: $app"
  response="$(curl -sS -u "$client_id:$secret" "$base/oauth/token" \
    -d grant_type=password -d username=jane --data-urlencode "password=$password")"
  printf '%s' "$response" | jq -er .access_token >/dev/null || fail "no access_token: $response"
}
process_metrics() { # BASE NAME: /-/metrics has the process metrics under ProcSubset=pid
  local code
  # No /proc/stat, no /proc/meminfo in the sandbox: the collector must read /proc/self only.
  code="$(curl -s -o "$scratch/metrics.txt" -w '%{http_code}' "$1/-/metrics")"
  [ "$code" = 200 ] || fail "$2's /-/metrics answered $code under the sandbox"
  for metric in process_cpu_seconds_total process_resident_memory_bytes; do
    grep -q "^$metric " "$scratch/metrics.txt" || fail "$2's /-/metrics lacks $metric under the sandbox"
  done
}
stop() { # PID NAME: SIGTERM must end it with status 0
  kill -TERM "$1"
  local status=0
  wait "$1" || status=$?
  [ "$status" = 0 ] || fail "$2 exited with $status after SIGTERM"
}

echo "== doorward.service's sandbox: migrate, the all-in-one, the CLI"
install -d -o "$uid" -g "$gid" -m 0700 "$scratch/state" "$scratch/run"
port="$(free_port)"
export DATA_DIR="$scratch/state" DOORWARD_TOKEN_SERVICE_SOCKET="$scratch/run/token-service.sock"
export AUTH_WEB_ADDR="127.0.0.1:$port" TOKEN_SERVICE_ADDR="127.0.0.1:0" PUBLIC_URL="http://127.0.0.1:$port"
writable="$scratch/state:$scratch/run"
(cd "$scratch/state" && sandboxed doorward.service "$scratch/bin/doorward" migrate) >"$scratch/migrate.log" 2>&1 ||
  fail "doorward migrate failed under the sandbox"
(cd "$scratch/state" && sandboxed doorward.service "$scratch/bin/doorward") >"$scratch/doorward.log" 2>&1 &
aio=$!
pids+=("$aio")
wait_http "http://127.0.0.1:$port/-/readiness" "$aio" || fail "the all-in-one did not become ready under the sandbox"
curl -fsS -o /dev/null "http://127.0.0.1:$port/-/liveness" || fail "the all-in-one's /-/liveness does not answer 200"
confined "$aio" "the all-in-one"
grant "http://127.0.0.1:$port" doorward.service "$scratch/bin/doorward"
process_metrics "http://127.0.0.1:$port" "the all-in-one"
echo "ok: the all-in-one's /-/metrics serves the process metrics under ProcSubset=pid"
stop "$aio" "the all-in-one"
echo "ok: migrate, serving, users create, apps create and the password grant work under doorward.service's sandbox"

echo "== token-service.service + auth-web.service: one user, the Unix socket between them"
install -d -o "$uid" -g "$gid" -m 0700 "$scratch/state2"
install -d -o "$uid" -g "$gid" -m 0750 "$scratch/run2"
port="$(free_port)"
export DATA_DIR="$scratch/state2" DOORWARD_TOKEN_SERVICE_SOCKET="$scratch/run2/token-service.sock"
export PUBLIC_URL="http://127.0.0.1:$port"
writable="$scratch/state2:$scratch/run2"
(cd "$scratch/state2" && sandboxed token-service.service "$scratch/bin/token-service" migrate) >"$scratch/ts-migrate.log" 2>&1 ||
  fail "token-service migrate failed under the sandbox"
(cd "$scratch/state2" && sandboxed token-service.service "$scratch/bin/token-service") >"$scratch/token-service.log" 2>&1 &
ts=$!
pids+=("$ts")
for _ in $(seq 1 60); do [ -S "$scratch/run2/token-service.sock" ] && break; kill -0 "$ts" || break; sleep 0.5; done
[ -S "$scratch/run2/token-service.sock" ] || fail "token-service made no socket under the sandbox"
(
  unset DATA_DIR DOORWARD_TOKEN_SERVICE_SOCKET TOKEN_SERVICE_ADDR
  export TOKEN_SERVICE_URL="unix:$scratch/run2/token-service.sock" AUTH_WEB_ADDR="127.0.0.1:$port"
  DOORWARD_WEB__SESSION_KEY="$(openssl rand -base64 64 | tr -d '\n')"
  export DOORWARD_WEB__SESSION_KEY
  # auth-web.service has no state or runtime directory of its own: nothing is writable.
  writable=""
  cd / && sandboxed auth-web.service "$scratch/bin/auth-web"
) >"$scratch/auth-web.log" 2>&1 &
aw=$!
pids+=("$aw")
# Ready: auth-web reaches token-service over the socket.
wait_http "http://127.0.0.1:$port/-/readiness" "$aw" || fail "auth-web did not become ready under the sandbox"
curl -fsS -o /dev/null "http://127.0.0.1:$port/-/liveness" || fail "auth-web's /-/liveness does not answer 200"
confined "$ts" token-service
confined "$aw" auth-web
(cd "$scratch/state2" && grant "http://127.0.0.1:$port" token-service.service "$scratch/bin/token-service")
process_metrics "http://127.0.0.1:$port" auth-web
stop "$aw" auth-web
stop "$ts" token-service
echo "ok: the split services are ready and serve the password grant under their sandboxes, over the socket;"
echo "    auth-web's /-/metrics serves the process metrics under ProcSubset=pid"

echo "== the sandbox refuses what the units forbid"
writable="$scratch/state2"
install -d -o "$uid" -g "$gid" "$scratch/not-writable"
out="$( (sandboxed token-service.service /usr/bin/python3 -c '
import ctypes, mmap, os, socket, sys
def refused(what, f):
    try:
        f()
    except OSError:
        return
    raise SystemExit(what + " was allowed")
refused("a writable and executable mapping", lambda: mmap.mmap(-1, 4096, prot=7))
refused("chroot (@privileged)", lambda: os.chroot("/"))
refused("setpriority (@resources)", lambda: os.setpriority(os.PRIO_PROCESS, 0, 5))
refused("an AF_PACKET socket", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x40000000) == 0:
    raise SystemExit("unshare(CLONE_NEWNET) was allowed")
# A folder owned by the service user that the unit does not list as writable.
refused("writing outside the state directory", lambda: open(sys.argv[2] + "/probe", "w"))
refused("reading /proc/stat (ProcSubset=pid)", lambda: open("/proc/stat").read())
if os.listdir("/root") or os.listdir("/home"):
    raise SystemExit("/root or /home is visible (ProtectHome)")
if sorted(os.listdir("/dev")) != ["fd", "full", "null", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"]:
    raise SystemExit("/dev holds " + " ".join(sorted(os.listdir("/dev"))) + " (PrivateDevices)")
open(sys.argv[1] + "/f", "w").close()
refused("a setuid bit", lambda: os.chmod(sys.argv[1] + "/f", 0o4755))
if os.listdir("/tmp"):
    raise SystemExit("/tmp is not private")
if oct(os.umask(0)) != "0o77":
    raise SystemExit("the umask is not 0077")
socket.socket(socket.AF_INET6).close()
print("refused")
' "$scratch/state2" "$scratch/not-writable") 2>&1)" || fail "$out"
[ "$out" = refused ] || fail "$out"
echo "ok: W+X memory, @privileged, @resources, other address families, namespaces, writes"
echo "    outside the state directory, /proc/stat and setuid bits are refused; /root, /home,"
echo "    /tmp are empty; /dev holds only the pseudo devices; the umask is 0077"
echo "sandbox test passed"
