"""Validates deploy/kubernetes offline: renders the base and every overlay (render.py) and
checks each manifest

  1. against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: an unknown or
     misplaced field is an error), for the oldest and newest Kubernetes versions supported;
  2. against the rules this deployment promises: restricted pod security (non-root,
     read-only root, no privilege escalation, every capability dropped, RuntimeDefault
     seccomp), requests and a memory limit, httpGet probes on declared ports, Services and
     PodDisruptionBudgets that select existing pods, a NetworkPolicy that lets only
     auth-web and resource servers reach gRPC and only Prometheus the metrics port, and
     every ConfigMap a pod reads present; in an overlay, the namespace and the image set
     on everything;
  3. with a doorward binary: each workload's environment (its ConfigMaps, with stand-ins
     for Secret values) loads in Doorward's own configuration loader, so a misspelt
     DOORWARD_* variable fails here instead of crash-looping in a cluster.

Usage: check.py KUBE_DIR [DOORWARD_BINARY]
"""

import os
import subprocess
import sys
import tempfile

import kubernetes_validate
from kubernetes_validate.utils import ValidationError, validate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from render import RenderError, pod_specs, render  # noqa: E402

# The range of Kubernetes releases the manifests must be valid for.
KUBE_VERSIONS = ["1.29.0", "1.37.0"]
# Secret values the manifests reference: made by the operator, never in the repository.
SECRET_STAND_INS = {
    ("doorward-database", "url"): "postgres://doorward@postgres.example/doorward",
    ("doorward-web", "session-key"): "A" * 86 + "==",
}
EXTERNAL_SECRETS = {"doorward-database", "doorward-web", "doorward-tls", "login-example-org-tls"}

kube_dir = sys.argv[1]
binary = sys.argv[2] if len(sys.argv) > 2 else None
errors = []


def err(where, msg):
    errors.append(f"{where}: {msg}")


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def check_pod(where, spec, is_server):
    psc = spec.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True:
        err(where, "pod securityContext.runAsNonRoot is not true")
    if psc.get("runAsUser") != 10001:
        err(where, "pod does not run as the image's UID 10001")
    if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        err(where, "pod seccompProfile is not RuntimeDefault")
    if spec.get("automountServiceAccountToken") is not False:
        err(where, "the pod mounts a service account token it never uses")
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        cw = f"{where}/{c['name']}"
        sc = c.get("securityContext", {})
        if sc.get("readOnlyRootFilesystem") is not True:
            err(cw, "readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            err(cw, "allowPrivilegeEscalation is not false")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            err(cw, "capabilities are not all dropped")
        res = c.get("resources", {})
        if not res.get("requests", {}).get("cpu") or not res.get("requests", {}).get("memory"):
            err(cw, "no CPU and memory requests")
        if not res.get("limits", {}).get("memory"):
            err(cw, "no memory limit")
        if is_server:
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            for probe in ("livenessProbe", "readinessProbe"):
                get = c.get(probe, {}).get("httpGet")
                if not get:
                    err(cw, f"no httpGet {probe}")
                    continue
                if get["port"] not in ports:
                    err(cw, f"{probe} port {get['port']} is not a declared container port")
            want = {"livenessProbe": "/-/liveness", "readinessProbe": "/-/readiness"}
            for probe, path in want.items():
                if c.get(probe, {}).get("httpGet", {}).get("path") != path:
                    err(cw, f"{probe} does not read {path}")
            if c["name"] == "token-service":
                for probe in ("livenessProbe", "readinessProbe"):
                    if c.get(probe, {}).get("httpGet", {}).get("port") != "metrics":
                        err(cw, f"{probe} is not on the plain-HTTP metrics port (gRPC is mutual TLS)")


def check_rendered(name, docs, overlay):
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
        where = f"{name}: {d['kind']}/{d['metadata']['name']}"
        for version in KUBE_VERSIONS:
            try:
                validate(d, version, strict=True)
            except ValidationError as e:
                err(where, f"invalid for Kubernetes {version}: {e.message} at {'.'.join(map(str, e.path))}")
            except Exception as e:  # schema not found: an unknown kind or apiVersion
                err(where, f"cannot be validated for Kubernetes {version}: {e}")
        if overlay and d["kind"] != "Namespace" and d["metadata"].get("namespace") != overlay["namespace"]:
            err(where, f"is not in namespace {overlay['namespace']}")

    configmaps = {d["metadata"]["name"] for d in by_kind.get("ConfigMap", [])}
    pods = []  # (workload, template labels, pod spec)
    for d in docs:
        for spec in pod_specs(d):
            where = f"{name}: {d['kind']}/{d['metadata']['name']}"
            labels = d["spec"]["template"]["metadata"]["labels"] if "template" in d["spec"] else {}
            if d["kind"] == "Deployment" and not selects(d["spec"]["selector"]["matchLabels"], labels):
                err(where, "its selector does not match its own pod template")
            check_pod(where, spec, d["kind"] == "Deployment")
            pods.append((d, labels, spec))
            for c in spec["containers"]:
                for src in c.get("envFrom", []):
                    ref = src.get("configMapRef", {}).get("name")
                    if ref and ref not in configmaps:
                        err(where, f"reads ConfigMap {ref}, which is not rendered")
                for e in c.get("env", []):
                    ref = e.get("valueFrom", {}).get("secretKeyRef", {})
                    if ref and (ref["name"], ref["key"]) not in SECRET_STAND_INS:
                        err(where, f"reads Secret {ref['name']}/{ref['key']}, which deploy/README.md does not list")
                if overlay and any(c["image"].startswith(i["name"] + ":") or c["image"] == i["name"] for i in overlay.get("images", [])):
                    err(where, f"still uses the base image {c['image']}")
            for v in spec.get("volumes", []):
                if "secret" in v and v["secret"]["secretName"] not in EXTERNAL_SECRETS:
                    err(where, f"mounts unknown Secret {v['secret']['secretName']}")

    for kind in ("Service", "PodDisruptionBudget"):
        for d in by_kind.get(kind, []):
            sel = d["spec"]["selector"] if kind == "Service" else d["spec"]["selector"]["matchLabels"]
            if not any(selects(sel, labels) for w, labels, _ in pods if w["kind"] == "Deployment"):
                err(f"{name}: {kind}/{d['metadata']['name']}", "selects no Deployment's pods")
    for want in ("token-service", "auth-web"):
        if not any(d["metadata"]["name"] == want for d in by_kind.get("PodDisruptionBudget", [])):
            err(name, f"no PodDisruptionBudget for {want}")
    if not by_kind.get("Job"):
        err(name, "no migration Job")
    elif by_kind["Job"][0]["spec"]["template"]["spec"]["containers"][0]["command"][-1] != "migrate":
        err(name, "the Job does not run `migrate`")

    # The token-service NetworkPolicy: gRPC from auth-web and resource servers only,
    # metrics from Prometheus only, and nothing else.
    policies = [p for p in by_kind.get("NetworkPolicy", []) if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name") == "token-service"]
    if len(policies) != 1:
        err(name, "expected one NetworkPolicy for token-service")
    else:
        rules = {}
        for rule in policies[0]["spec"].get("ingress", []):
            for port in rule.get("ports", []):
                rules[port["port"]] = rule.get("from", [])
        if set(rules) != {"grpc", "metrics"}:
            err(name, f"token-service's NetworkPolicy opens {sorted(rules)}, expected grpc and metrics")
        grpc_from = [f.get("podSelector", {}).get("matchLabels", {}) for f in rules.get("grpc", [])]
        if sorted(map(str, grpc_from)) != sorted(map(str, [{"app.kubernetes.io/name": "auth-web"}, {"doorward.dev/resource-server": "true"}])):
            err(name, f"gRPC is open to {grpc_from}, expected auth-web and resource servers only")
        if not rules.get("grpc") or any(not f.get("podSelector") for f in rules.get("grpc", [])):
            err(name, "gRPC is open to a whole namespace or everyone")
        metrics_from = rules.get("metrics", [])
        if not metrics_from or any(f.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name") != "prometheus" for f in metrics_from):
            err(name, "the metrics port is open to something other than Prometheus")

    if binary:
        env_of_cm = {d["metadata"]["name"]: d.get("data", {}) for d in by_kind.get("ConfigMap", [])}
        for d, _, spec in pods:
            for c in spec["containers"]:
                env = {}
                for src in c.get("envFrom", []):
                    env.update(env_of_cm.get(src.get("configMapRef", {}).get("name"), {}))
                for e in c.get("env", []):
                    ref = e.get("valueFrom", {}).get("secretKeyRef")
                    env[e["name"]] = SECRET_STAND_INS.get((ref["name"], ref["key"]), "x") if ref else e["value"]
                clean = {k: v for k, v in os.environ.items() if not k.startswith("DOORWARD_")}
                with tempfile.TemporaryDirectory() as scratch:
                    run = subprocess.run([binary, "tls", "init", "--out", os.path.join(scratch, "t"), "--host", "127.0.0.1"],
                                         env={**clean, **env}, capture_output=True, text=True)
                if run.returncode != 0:
                    err(f"{name}: {d['kind']}/{d['metadata']['name']}/{c['name']}", f"its environment does not load: {run.stderr.strip()}")


targets = [("base", None)]
overlays = os.path.join(kube_dir, "overlays")
for o in sorted(os.listdir(overlays)):
    targets.append((f"overlays/{o}", o))
for rel, overlay in targets:
    try:
        docs = render(os.path.join(kube_dir, rel))
    except (RenderError, OSError, KeyError) as e:
        err(rel, f"does not render: {e}")
        continue
    spec = None
    if overlay:
        import yaml
        spec = yaml.safe_load(open(os.path.join(kube_dir, rel, "kustomization.yaml")))
    check_rendered(rel, docs, spec)
    if not errors:
        kinds = sorted({d["kind"] for d in docs})
        print(f"{rel}: {len(docs)} manifests valid for Kubernetes {' and '.join(KUBE_VERSIONS)} ({', '.join(kinds)})")

if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
print(f"kubernetes-validate {kubernetes_validate.__version__ if hasattr(kubernetes_validate, '__version__') else ''}: all rules hold")
