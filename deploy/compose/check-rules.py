"""The rules of deploy/compose/compose.yaml that no schema knows.

Usage: check-rules.py RESOLVED_YAML COMPOSE_YAML [DOORWARD_BINARY SECRETS_DIR]

RESOLVED_YAML is `podman-compose config` output (anchors merged). With a binary and a
secrets folder from make-secrets.sh, each Doorward service's environment, with its
/run/secrets paths pointed at that folder, is loaded by the binary's configuration loader
(`doorward --config FILE tls init ...` loads the configuration and then writes into a
scratch folder), so a misspelt variable or key fails here rather than at `up`.
"""

import os
import subprocess
import sys
import tempfile

import yaml

resolved_path, compose_path = sys.argv[1], sys.argv[2]
binary = sys.argv[3] if len(sys.argv) > 3 and sys.argv[3] else None
secrets_dir = sys.argv[4] if len(sys.argv) > 4 and sys.argv[4] else None
compose = yaml.safe_load(open(resolved_path))
services = compose["services"]
errors = []


def err(msg):
    errors.append(msg)


def env_of(svc):
    env = svc.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.split("=", 1) for e in env)
    return {k: str(v) for k, v in env.items()}


expected = {"postgres", "migrate", "token-service-1", "token-service-2", "auth-web-1", "auth-web-2", "proxy"}
if set(services) != expected:
    err(f"services are {sorted(services)}, expected {sorted(expected)}")

declared_secrets = set(compose.get("secrets", {}))
doorward = {n: s for n, s in services.items() if "doorward" in str(s.get("image", ""))}
for name, svc in services.items():
    for secret in svc.get("secrets", []):
        secret = secret if isinstance(secret, str) else secret["source"]
        if secret not in declared_secrets:
            err(f"{name}: secret {secret} is not declared")
    for dep in svc.get("depends_on", {}):
        if dep not in services:
            err(f"{name}: depends on unknown service {dep}")
    if name != "proxy" and svc.get("ports"):
        err(f"{name}: publishes ports; only the proxy may")

for name, svc in doorward.items():
    if svc.get("read_only") is not True:
        err(f"{name}: root filesystem is not read-only")
    if str(svc.get("user")) != "10001:10001":
        err(f"{name}: runs as {svc.get('user')}, not 10001:10001")
    if svc.get("cap_drop") != ["ALL"]:
        err(f"{name}: capabilities are not all dropped")
    if not any("no-new-privileges" in o for o in svc.get("security_opt", [])):
        err(f"{name}: no-new-privileges is not set")
    env = env_of(svc)
    for key, value in env.items():
        if "KEY" in key and not value.startswith("/run/secrets/"):
            err(f"{name}: {key} is not a secret file")
    if any(k in env for k in ("SERVICE_TOKEN", "DATABASE_URL", "DOORWARD_WEB__SESSION_KEY")):
        err(f"{name}: a secret value is in the environment; use the secret config file")

if services.get("migrate", {}).get("command", [])[-1:] != ["migrate"]:
    err("migrate: does not run `migrate`")
for name in ("token-service-1", "token-service-2"):
    svc = services.get(name, {})
    cond = svc.get("depends_on", {}).get("migrate", {}).get("condition")
    if cond != "service_completed_successfully":
        err(f"{name}: does not wait for migrate to complete successfully (got {cond})")
    env = env_of(svc)
    for key in ("DOORWARD_GRPC_TLS__CERT_FILE", "DOORWARD_GRPC_TLS__KEY_FILE", "DOORWARD_GRPC_TLS__CLIENT_CA_FILE"):
        if key not in env:
            err(f"{name}: {key} is missing: the gRPC port must be mutual TLS")
    if "DOORWARD_METRICS_ADDR" not in env:
        err(f"{name}: no DOORWARD_METRICS_ADDR: its healthcheck reads the readiness there")
    if "token-service" not in (svc.get("networks", {}).get("internal") or {}).get("aliases", []):
        err(f"{name}: lacks the network alias token-service that auth-web dials")
    if not svc.get("healthcheck", {}).get("test"):
        err(f"{name}: no healthcheck")
for name in ("auth-web-1", "auth-web-2"):
    svc = services.get(name, {})
    env = env_of(svc)
    if not env.get("TOKEN_SERVICE_URL", "").startswith("https://"):
        err(f"{name}: TOKEN_SERVICE_URL is not https")
    for key in ("DOORWARD_TOKEN_SERVICE_TLS__CA_FILE", "DOORWARD_TOKEN_SERVICE_TLS__CERT_FILE", "DOORWARD_TOKEN_SERVICE_TLS__KEY_FILE"):
        if key not in env:
            err(f"{name}: {key} is missing: auth-web must present its client certificate")
    # The image's probe reads auth-web's /-/readiness unless HEALTHCHECK_URL says otherwise.
    test = " ".join(svc.get("healthcheck", {}).get("test", []))
    if "doorward-healthcheck" not in test or "HEALTHCHECK_URL" in env:
        err(f"{name}: the healthcheck is not the image's probe of auth-web's /-/readiness")
    if "auth-web.toml" not in svc.get("secrets", []):
        err(f"{name}: no auth-web.toml: the replicas would not share a session key")
proxy_ip = services.get("proxy", {}).get("networks", {}).get("internal", {}).get("ipv4_address")
for name in ("auth-web-1", "auth-web-2"):
    if proxy_ip and proxy_ip not in env_of(services.get(name, {})).get("DOORWARD_WEB__TRUSTED_PROXIES", ""):
        err(f"{name}: does not trust the proxy's address {proxy_ip}")

if secrets_dir:
    for secret, spec in compose.get("secrets", {}).items():
        # Paths in the resolved file are relative to compose.yaml's ./secrets.
        rel = os.path.relpath(os.path.join(os.path.dirname(compose_path), spec["file"]),
                              os.path.join(os.path.dirname(compose_path), "secrets"))
        if not os.path.isfile(os.path.join(secrets_dir, rel)):
            err(f"make-secrets.sh did not write {spec['file']} (secret {secret})")

if binary and secrets_dir and not errors:
    mounted = {}
    for secret, spec in compose["secrets"].items():
        rel = os.path.relpath(os.path.join(os.path.dirname(compose_path), spec["file"]),
                              os.path.join(os.path.dirname(compose_path), "secrets"))
        mounted[f"/run/secrets/{secret}"] = os.path.join(secrets_dir, rel)
    for name, svc in sorted(doorward.items()):
        command = [mounted.get(a, a) for a in svc["command"]]
        config = command[command.index("--config") + 1] if "--config" in command else None
        env = {k: mounted.get(v, v) for k, v in env_of(svc).items()}
        with tempfile.TemporaryDirectory() as scratch:
            args = [binary] + (["--config", config] if config else [])
            args += ["tls", "init", "--out", os.path.join(scratch, "tls"), "--host", "127.0.0.1"]
            clean_env = {k: v for k, v in os.environ.items() if not k.startswith("DOORWARD_")}
            run = subprocess.run(args, env={**clean_env, **env}, capture_output=True, text=True)
        if run.returncode != 0:
            err(f"{name}: its configuration does not load: {run.stderr.strip()}")
        else:
            print(f"{name}: environment and {os.path.basename(config or '-')} load")

if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
print(f"compose rules: {len(services)} services checked")
