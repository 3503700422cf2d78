"""Brings compose.yaml's stack up without containers, inside a network and mount namespace
of its own (run-test.sh makes them with unshare), and drives it. For run-test.sh only.

Each service runs from the Debian package or the Doorward binary its image would hold,
with the environment, command and secret files compose.yaml gives it:
  - /run/secrets is a tmpfs holding the secrets under their compose names, /etc/hosts maps
    each service name to its own loopback address (token-service, the network alias, to
    token-service-1), so every path and URL in compose.yaml is used as written;
  - what cannot be as written in one network namespace: each listener binds its service's
    loopback address instead of 0.0.0.0 (TOKEN_SERVICE_ADDR, DOORWARD_METRICS_ADDR,
    AUTH_WEB_ADDR), and PostgreSQL (Debian's, not the postgres image) is initialised here
    with the role, database and password the image's entrypoint would make from
    POSTGRES_USER, POSTGRES_DB and POSTGRES_PASSWORD_FILE;
  - every process runs as UID/GID 10001, as the containers do.
The order follows depends_on: PostgreSQL healthy, migrate completed successfully, the
token-services, the auth-webs, the proxy.

Usage: run-stack.py RESOLVED_YAML SECRETS_DIR BIN_DIR HAPROXY_CFG SCRATCH
"""

import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import yaml

resolved, secrets_dir, bin_dir, haproxy_cfg, scratch = sys.argv[1:6]
compose = yaml.safe_load(open(resolved))
services = compose["services"]
UID = GID = 10001
ADDRS = {"postgres": "127.0.0.10", "token-service-1": "127.0.0.2", "token-service-2": "127.0.0.3",
         "auth-web-1": "127.0.0.4", "auth-web-2": "127.0.0.5", "proxy": "127.0.0.1"}
procs = {}


def fail(msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    for name in procs:
        log = os.path.join(scratch, f"{name}.log")
        if os.path.exists(log):
            print(f"--- {name}", file=sys.stderr)
            print("".join(open(log).readlines()[-15:]), file=sys.stderr)
    stop_all()
    sys.exit(1)


def stop_all():
    for p in procs.values():
        if p.poll() is None:
            p.terminate()
    for p in procs.values():
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def sh(*args):
    subprocess.run(args, check=True)


def as_service_user():
    os.setgroups([])
    os.setgid(GID)
    os.setuid(UID)


def env_of(name):
    env = services[name].get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: str(v) for k, v in env.items()}


def start(name, argv, env, cwd="/"):
    log = open(os.path.join(scratch, f"{name}.log"), "w")
    base = {"PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/bin", "HOME": "/nonexistent"}
    procs[name] = subprocess.Popen(argv, env={**base, **env}, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=cwd, preexec_fn=as_service_user)
    return procs[name]


def http(url, data=None, auth=None, cafile=None):
    req = urllib.request.Request(url, data=data)
    if auth:
        import base64
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    ctx = ssl.create_default_context(cafile=cafile) if cafile else None
    try:
        with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


def wait_for(what, check, proc=None, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            fail(f"{what}: the process exited with {proc.returncode}")
        time.sleep(0.3)
    fail(f"{what}: not within {seconds} s")


def answers(url):
    """The URL answers 200."""
    return http(url)[0] == 200


# --- The namespace: loopback up, names, secrets under their compose names.
sh("ip", "link", "set", "lo", "up")
hosts = os.path.join(scratch, "hosts")
with open(hosts, "w") as f:
    f.write("127.0.0.1 localhost proxy\n")
    for name, addr in ADDRS.items():
        if name != "proxy":
            f.write(f"{addr} {name}\n")
    f.write(f"{ADDRS['token-service-1']} token-service\n")
sh("mount", "--bind", hosts, "/etc/hosts")
# UID 10001 has a name in the images; initdb and postgres refuse a UID without one.
for table, line in (("passwd", "doorward:x:10001:10001:Doorward:/nonexistent:/usr/sbin/nologin\n"),
                    ("group", "doorward:x:10001:\n")):
    copy = os.path.join(scratch, table)
    with open(copy, "w") as f:
        f.write(open(f"/etc/{table}").read() + line)
    os.chmod(copy, 0o644)
    sh("mount", "--bind", copy, f"/etc/{table}")
sh("mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run")
os.makedirs("/run/secrets")
for secret, spec in compose["secrets"].items():
    src = os.path.join(secrets_dir, os.path.relpath(os.path.normpath(os.path.join("/x", spec["file"])), "/x/secrets"))
    dst = f"/run/secrets/{secret}"
    shutil.copyfile(src, dst)
    os.chown(dst, UID, GID)
    os.chmod(dst, 0o400)

# --- PostgreSQL, as the postgres image would set it up.
pg_env = env_of("postgres")
pg_bin = sorted(d for d in os.listdir("/usr/lib/postgresql"))[-1]
pg_bin = f"/usr/lib/postgresql/{pg_bin}/bin"
pgdata = os.path.join(scratch, "pgdata")
os.makedirs(pgdata)
os.chown(pgdata, UID, GID)
pwfile = pg_env["POSTGRES_PASSWORD_FILE"]
subprocess.run([f"{pg_bin}/initdb", "-D", pgdata, "-U", pg_env["POSTGRES_USER"], "--pwfile", pwfile,
                "--auth-host=scram-sha-256", "--auth-local=trust"],
               check=True, stdout=subprocess.DEVNULL, preexec_fn=as_service_user)
pg = start("postgres", [f"{pg_bin}/postgres", "-D", pgdata, "-c", f"listen_addresses={ADDRS['postgres']}",
                        "-c", f"unix_socket_directories={pgdata}"], {})
wait_for("postgres healthy", lambda: subprocess.run([f"{pg_bin}/pg_isready", "-q", "-h", ADDRS["postgres"]]).returncode == 0, pg)
subprocess.run([f"{pg_bin}/createdb", "-h", pgdata, "-U", pg_env["POSTGRES_USER"], pg_env["POSTGRES_DB"]],
               check=True, preexec_fn=as_service_user)
print("ok: postgres is healthy (the role, password and database of compose.yaml)")

# --- migrate, then the token-services (depends_on: service_completed_successfully).
if services["token-service-1"]["depends_on"]["migrate"]["condition"] != "service_completed_successfully":
    fail("token-service does not wait for migrate")
m = start("migrate", services["migrate"]["command"], env_of("migrate"))
if m.wait(120) != 0:
    fail("migrate failed")
print("ok: migrate completed successfully")

for name in ("token-service-1", "token-service-2"):
    env = env_of(name)
    env["TOKEN_SERVICE_ADDR"] = env["TOKEN_SERVICE_ADDR"].replace("0.0.0.0", ADDRS[name])
    env["DOORWARD_METRICS_ADDR"] = env["DOORWARD_METRICS_ADDR"].replace("0.0.0.0", ADDRS[name])
    start(name, services[name]["command"], env)
for name in ("token-service-1", "token-service-2"):
    metrics = f"http://{ADDRS[name]}:9464"
    port_open = lambda a=ADDRS[name]: subprocess.run(["bash", "-c", f"exec 3<>/dev/tcp/{a}/50051"], stderr=subprocess.DEVNULL).returncode == 0
    wait_for(f"{name} listening on gRPC", port_open, procs[name])
    wait_for(f"{name} ready on its metrics_addr", lambda m=metrics: answers(m + "/-/readiness"), procs[name])
    if not answers(metrics + "/-/liveness"):
        fail(f"{name}: /-/liveness on its metrics_addr does not answer 200")
    print(f"ok: {name} answers /-/readiness and /-/liveness on its metrics_addr")

for name in ("auth-web-1", "auth-web-2"):
    env = env_of(name)
    env["AUTH_WEB_ADDR"] = env["AUTH_WEB_ADDR"].replace("0.0.0.0", ADDRS[name])
    start(name, services[name]["command"], env)
for name in ("auth-web-1", "auth-web-2"):
    base = f"http://{ADDRS[name]}:3000"
    wait_for(f"{name} ready", lambda b=base: answers(b + "/-/readiness"), procs[name])
    if not answers(base + "/-/liveness"):
        fail(f"{name}: /-/liveness does not answer 200")
    print(f"ok: {name} answers /-/readiness and /-/liveness")

# --- The proxy, with compose's haproxy.cfg (Debian's haproxy; the image is 2.8).
cfg = open(haproxy_cfg).read()
if "option httpchk GET /-/readiness" not in cfg:
    fail("haproxy.cfg does not check auth-web's /-/readiness")
cfg_path = os.path.join(scratch, "haproxy.cfg")
open(cfg_path, "w").write(cfg)
os.chmod(cfg_path, 0o644)
start("proxy", ["haproxy", "-W", "-db", "-f", cfg_path], {})
ca = os.path.join(scratch, "ca.pem")
shutil.copyfile(os.path.join(secrets_dir, "tls", "ca.pem"), ca)
wait_for("the proxy serves HTTPS", lambda: http("https://localhost:8443/.well-known/openid-configuration", cafile=ca)[0] == 200, procs["proxy"])
print("ok: the proxy serves HTTPS for localhost (certificate from tls init, verified)")
status, _ = http("https://localhost:8443/-/metrics", cafile=ca)
if status != 404:
    fail(f"the proxy lets /-/metrics through ({status})")

# --- An operator creates a user and an application (as `compose exec token-service-1 ...`).
ts_cmd = services["token-service-1"]["command"]
cli_env = env_of("token-service-1")
def cli(*args, stdin=None):
    run = subprocess.run(ts_cmd + list(args), input=stdin, capture_output=True, text=True,
                         env={"PATH": f"{bin_dir}:/usr/bin:/bin", **cli_env}, preexec_fn=as_service_user)
    if run.returncode != 0:
        fail(f"token-service {' '.join(args)}: {run.stderr.strip()}")
    return run.stdout
password = "correct horse battery staple"
cli("users", "create", "--username", "jane", "--email", "jane@example.com", "--password-stdin", stdin=password + "\n")
app = json.loads(cli("apps", "create", "--name", "Compose test", "--redirect-uri", "http://127.0.0.1/cb", "--json"))
print("ok: the CLI created user jane and an application in PostgreSQL")

# --- The password grant through the proxy, several times: both auth-webs serve, each over
# mutual TLS to token-service. The token then works on each auth-web directly.
from urllib.parse import urlencode
form = urlencode({"grant_type": "password", "username": "jane", "password": password}).encode()
tokens = []
for _ in range(4):
    status, body = http("https://localhost:8443/oauth/token", data=form, auth=f"{app['uid']}:{app['secret']}", cafile=ca)
    if status != 200 or "access_token" not in body:
        fail(f"the password grant through the proxy answered {status}: {body}")
    tokens.append(json.loads(body)["access_token"])
for name in ("auth-web-1", "auth-web-2"):
    req = urllib.request.Request(f"http://{ADDRS[name]}:3000/api/v4/user", headers={"Authorization": f"Bearer {tokens[0]}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        if json.loads(r.read())["username"] != "jane":
            fail(f"{name} does not accept the token")
served = [n for n in ("auth-web-1", "auth-web-2") if "/oauth/token" in open(os.path.join(scratch, f"{n}.log")).read()]
if len(served) != 2:
    fail(f"the proxy sent every token request to {served}")
print("ok: the password grant through the proxy returns tokens (both auth-webs served; /api/v4/user accepts them on each)")


def samples(text, name, **labels):
    """The sum of NAME's samples carrying every label given, in Prometheus text format."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.split()[-1])
    return total


def metrics_of(url):
    status, body = http(url)
    if status != 200:
        fail(f"{url} answered {status}: {body[:200]}")
    return body


# The metrics: the four grants counted across the replicas.
granted = sum(samples(metrics_of(f"http://{ADDRS[n]}:9464/-/metrics"), "doorward_grants_total", grant_type="password")
              for n in ("token-service-1", "token-service-2"))
issued = sum(samples(metrics_of(f"http://{ADDRS[n]}:3000/-/metrics"), "doorward_web_token_responses_total",
                     grant_type="password", outcome="issued") for n in ("auth-web-1", "auth-web-2"))
if granted < 4 or issued < 4:
    fail(f"the metrics count {granted} password grants on token-service and {issued} on auth-web, expected 4")
print("ok: both services' /-/metrics count the four password grants")

# --- auth-web without a client certificate is refused by token-service (mutual TLS).
env = env_of("auth-web-1")
env["AUTH_WEB_ADDR"] = "127.0.0.6:3000"
for k in ("DOORWARD_TOKEN_SERVICE_TLS__CERT_FILE", "DOORWARD_TOKEN_SERVICE_TLS__KEY_FILE"):
    env.pop(k)
start("auth-web-no-cert", services["auth-web-1"]["command"], env)
wait_for("auth-web without a certificate is live", lambda: answers("http://127.0.0.6:3000/-/liveness"), procs["auth-web-no-cert"])
# Its readiness fails: token-service's health answers anyone, but the internal call that
# readiness also makes is refused without the client certificate, so no balancer sends it
# traffic.
status, body = http("http://127.0.0.6:3000/-/readiness")
if status != 503 or json.loads(body)["checks"]["token_service"] != "refused":
    fail(f"auth-web without its client certificate answered readiness {status} {body}")
print("ok: without its client certificate, auth-web is not ready (token_service: refused)")
status, body = http("http://127.0.0.6:3000/oauth/token", data=form, auth=f"{app['uid']}:{app['secret']}")
if status == 200:
    fail("token-service served auth-web without its client certificate")
print(f"ok: without its client certificate, auth-web's token request is refused ({status})")

stop_all()
for name in ("token-service-1", "token-service-2", "auth-web-1", "auth-web-2"):
    if procs[name].returncode != 0:
        fail(f"{name} exited with {procs[name].returncode} after SIGTERM")
print("compose stack test passed")
