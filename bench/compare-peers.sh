#!/usr/bin/env bash
# Doorward beside two peers, node-oidc-provider (127.0.0.1:3000) and doorkeeper
# (127.0.0.1:3001), measured one after another with the same wrk command and the same wrk
# scripts (client_credentials token requests, then introspection of one token). Doorward
# runs from target/release (all-in-one, SQLite in a scratch folder) on 127.0.0.1:3002.
#
#   bash bench/compare-peers.sh
#
# Sets the peers up if needed (run-peers.sh setup: apt packages, npm, gems; needs root and
# the network), builds Doorward's release binary if it is missing, and writes the table to
# bench/results/compare-peers.txt. It stops only the processes it started; a port that is
# already taken is an error, not something to kill.
#
# Environment: PEERS_DIR (the peers' recipes, default /work/shared/peers), PEERS (their
# scratch folder, default ~/.cache/oauth-peers), DOORWARD_PORT (3002), WRK_ARGS
# ("-t2 -c32 -d10s"), BUILD=never to refuse building.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERS_DIR=${PEERS_DIR:-/work/shared/peers}
export PEERS=${PEERS:-$HOME/.cache/oauth-peers}
PORT=${DOORWARD_PORT:-3002}
read -r -a WRK <<<"${WRK_ARGS:--t2 -c32 -d10s}"
OUT_DIR=$ROOT/bench/results
OUT=$OUT_DIR/compare-peers.txt
OP=http://127.0.0.1:3000
DK=http://127.0.0.1:3001
DW=http://127.0.0.1:$PORT

die() { echo "compare-peers: $*" >&2; exit 1; }
say() { echo "compare-peers: $*" >&2; }
port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_url() {
  for _ in $(seq 1 120); do curl -s -o /dev/null "$1" && return 0; sleep 0.5; done
  return 1
}

[ -f "$PEERS_DIR/run-peers.sh" ] || die "no $PEERS_DIR/run-peers.sh: set PEERS_DIR to the peers' folder"
command -v curl >/dev/null || die "curl is needed"
command -v python3 >/dev/null || die "python3 is needed"

# --- Set the peers up once -------------------------------------------------------------
if ! command -v wrk >/dev/null || ! command -v puma >/dev/null \
   || [ ! -d "$PEERS/node-op/node_modules" ] || [ ! -f "$PEERS/doorkeeper/config.ru" ]; then
  say "setting the peers up in $PEERS (apt-get, npm; a few minutes)"
  [ "$(id -u)" = 0 ] || die "the peers' setup installs apt packages: run as root, or run '$PEERS_DIR/run-peers.sh setup' first"
  apt-get update -qq
  bash "$PEERS_DIR/run-peers.sh" setup
fi
WRK_SCRIPTS=$PEERS_DIR/wrk

# --- Build Doorward if needed ------------------------------------------------------------
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release/doorward
if [ ! -x "$BIN" ]; then
  [ "${BUILD:-}" != never ] || die "$BIN is not built"
  say "building Doorward (release)"
  (cd "$ROOT" && cargo build --release -p doorward)
fi

# --- Start what is not running; stop only that on exit ----------------------------------
STARTED_PEERS=no
DW_PID=
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/doorward-compare-XXXXXX")
cleanup() {
  [ -n "$DW_PID" ] && kill "$DW_PID" 2>/dev/null && wait "$DW_PID" 2>/dev/null
  [ "$STARTED_PEERS" = yes ] && bash "$PEERS_DIR/run-peers.sh" stop
  rm -rf "$SCRATCH"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if port_taken 3000 || port_taken 3001; then
  # Measure peers that already run only if they are the peers (their discovery/token
  # endpoints answer as expected); never stop them.
  curl -sf -o /dev/null "$OP/.well-known/openid-configuration" \
    && curl -s -o /dev/null -w '%{http_code}' -X POST "$DK/oauth/token" | grep -q '^4' \
    || die "port 3000 or 3001 is taken by something other than the peers: free it, or start the peers with run-peers.sh"
  say "the peers already run (not started here, so not stopped here)"
else
  say "starting the peers"
  STARTED_PEERS=yes
  bash "$PEERS_DIR/run-peers.sh" start
fi

port_taken "$PORT" && die "port $PORT is taken: set DOORWARD_PORT"
export DATA_DIR=$SCRATCH DATABASE_URL="sqlite://$SCRATCH/doorward.db" \
  AUTH_WEB_ADDR=127.0.0.1:$PORT TOKEN_SERVICE_ADDR=127.0.0.1:0 PUBLIC_URL=$DW \
  RUST_LOG=${RUST_LOG:-warn}
APP=$("$BIN" apps create --name compare-peers --redirect-uri http://127.0.0.1/callback \
  --scopes api --grant-types client_credentials --json | tail -n 1)
DW_ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["uid"])' "$APP")
DW_SECRET=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["secret"])' "$APP")
"$BIN" >"$SCRATCH/doorward.log" 2>&1 &
DW_PID=$!
wait_url "$DW/.well-known/openid-configuration" || { tail -20 "$SCRATCH/doorward.log" >&2; die "Doorward did not start"; }

# --- Measure -------------------------------------------------------------------------------
# name|client_id|secret|scope|token endpoint|introspection endpoint
SERVERS=(
  "node-oidc-provider|bench-client|bench-secret|api:read|$OP/token|$OP/token/introspection"
  "doorkeeper|bench-client|bench-secret|api:read|$DK/oauth/token|$DK/oauth/introspect"
  "Doorward|$DW_ID|$DW_SECRET|api|$DW/oauth/token|$DW/oauth/introspect"
)
RAW=$SCRATCH/raw
mkdir -p "$RAW"
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

for test in cc_token introspect; do
  for server in "${SERVERS[@]}"; do
    IFS='|' read -r name id secret scope token_ep introspect_ep <<<"$server"
    url=$token_ep TOKEN=
    if [ "$test" = introspect ]; then
      url=$introspect_ep
      TOKEN=$(curl -s -u "$id:$secret" -d grant_type=client_credentials -d "scope=$scope" "$token_ep" \
        | python3 -c 'import sys,json; print(json.load(sys.stdin)["access_token"])') \
        || die "$name gave no token"
    fi
    say "$test: $name (load average before: $(loadavg))"
    echo "load average before: $(loadavg)" >"$RAW/$test-$name"
    CLIENT_ID=$id CLIENT_SECRET=$secret SCOPE=$scope TOKEN=$TOKEN \
      wrk "${WRK[@]}" --latency -s "$WRK_SCRIPTS/$test.lua" "$url" >>"$RAW/$test-$name" 2>&1 \
      || die "wrk failed against $name: $(tail -3 "$RAW/$test-$name")"
  done
done

# --- Report ----------------------------------------------------------------------------------
mkdir -p "$OUT_DIR"
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
COMMIT=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
DIRTY=
[ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ] && DIRTY=" (uncommitted changes)"
python3 - "$RAW" "$CPU" "$(nproc)" "$COMMIT$DIRTY" "$(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)" "${WRK[*]} --latency" >"$OUT.tmp" <<'PY'
import os, re, sys, datetime
raw, cpu, cores, commit, wrk_version, wrk_args = sys.argv[1:7]
UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}

def parse(text):
    r = {"rps": None, "p99": None, "non2xx": 0, "socket": 0, "requests": None, "seconds": None, "load": ""}
    m = re.search(r"load average before: (.*)", text)
    if m: r["load"] = m.group(1).strip()
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if m: r["rps"] = float(m.group(1))
    m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if m: r["p99"] = float(m.group(1)) * UNIT[m.group(2)]
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m: r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m: r["socket"] = sum(int(x) for x in m.groups())
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", text)
    if m:
        r["requests"] = int(m.group(1))
        r["seconds"] = float(m.group(2)) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[m.group(3)]
    # Successful answers per second: wrk's rate counts error answers too.
    if r["requests"] and r["seconds"]:
        r["ok_rps"] = max(r["requests"] - r["non2xx"], 0) / r["seconds"]
    else:
        r["ok_rps"] = None
    return r

tests = [("cc_token", "client_credentials token (POST token endpoint, Basic)"),
         ("introspect", "introspection of one token (RFC 7662, Basic)")]
peers = ["node-oidc-provider", "doorkeeper"]
print(f"Doorward beside its peers, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
print(f"machine: {cpu}, {cores} cores; wrk on the same cores; Doorward commit {commit}")
print(f"command: wrk {wrk_args} -s <peers>/wrk/<script>.lua URL ({wrk_version})")
print("Doorward: target/release/doorward, all-in-one, SQLite (WAL), default configuration")
print("node-oidc-provider: in-memory store, opaque tokens; doorkeeper: Rails + SQLite, 1 puma thread")
print()
for test, title in tests:
    rows = {}
    for name in peers + ["Doorward"]:
        path = os.path.join(raw, f"{test}-{name}")
        rows[name] = parse(open(path).read()) if os.path.exists(path) else None
    print(f"{title}")
    print(f"  {'server':<20} {'2xx/s':>9} {'p99 ms':>8} {'non-2xx':>8} {'sock err':>8}  {'load before':<16}")
    for name, r in rows.items():
        if r is None or r["ok_rps"] is None:
            print(f"  {name:<20} {'(no result)':>9}")
            continue
        p99 = f"{r['p99']:.2f}" if r["p99"] is not None else "-"
        print(f"  {name:<20} {r['ok_rps']:>9.0f} {p99:>8} {r['non2xx']:>8} {r['socket']:>8}  {r['load']:<16}")
    d = rows.get("Doorward")
    for peer in peers:
        p = rows.get(peer)
        if d and p and d["ok_rps"] and p["ok_rps"]:
            lat = (f", p99 x{d['p99'] / p['p99']:.2f}" if d["p99"] and p["p99"] else "")
            print(f"  Doorward / {peer}: throughput x{d['ok_rps'] / p['ok_rps']:.2f}{lat}")
    print()
print("2xx/s: answers that were not errors, per second (wrk's Requests/sec minus non-2xx).")
print("Throughput ratio above 1: Doorward answers more per second; p99 ratio below 1: its slowest")
print("answers are faster. Figures move ±20% from run to run, and more when other work (another")
print("benchmark, a build) shares the cores: see the load average (1, 5, 15 min) before each run.")
print()
print("Raw wrk output:")
for test, _ in tests:
    for name in peers + ["Doorward"]:
        path = os.path.join(raw, f"{test}-{name}")
        if os.path.exists(path):
            print(f"--- {test}: {name}")
            for line in open(path).read().splitlines():
                if line.strip() and not line.startswith("load average"):
                    print(f"    {line.rstrip()}")
PY
mv "$OUT.tmp" "$OUT"
cat "$OUT"
say "wrote $OUT"
