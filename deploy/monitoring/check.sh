#!/usr/bin/env bash
# Checks the monitoring artefacts:
#   - promtool check config / check rules: prometheus.yml and alerts.yml parse, every
#     expression is valid PromQL;
#   - promtool test rules: each alert fires on a synthetic failing series and stays quiet
#     on a healthy one (alerts.test.yml);
#   - every alert in alerts.yml has a firing case in alerts.test.yml;
#   - grafana-dashboard.json is valid JSON, every panel query is valid PromQL (promtool),
#     and every metric it or alerts.yml queries is one Doorward exports (metrics.txt),
#     histograms only through _bucket/_sum/_count.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

if ! command -v promtool >/dev/null 2>&1; then
  apt-get update -qq
  # Debian's prometheus package ships promtool; the server it installs is not started here.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
promtool --version 2>&1 | head -1

echo "== promtool check config prometheus.yml"
promtool check config prometheus.yml
echo "== promtool check rules alerts.yml"
promtool check rules alerts.yml
echo "== promtool test rules alerts.test.yml"
promtool test rules alerts.test.yml

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
echo "== dashboard and metric names"
python3 - "$scratch/dashboard-rules.yml" <<'PY'
import json, re, sys

out = sys.argv[1]
known = {}
for line in open("metrics.txt"):
    line = line.split("#", 1)[0].split()
    if line:
        known[line[0]] = line[1]

# PromQL identifiers that are not metric names.
keywords = {
    "sum", "min", "max", "avg", "count", "rate", "irate", "increase", "by", "without", "and",
    "or", "unless", "on", "ignoring", "group_left", "group_right", "histogram_quantile",
    "time", "bool", "offset", "le", "abs", "label_values", "topk", "bottomk", "clamp_min",
    "humanizePercentage", "humanizeDuration", "printf", "value",
}

def metric_names(expr):
    # Strip label matchers and strings, then take the identifiers left.
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    return {t for t in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", expr) if t not in keywords}

def check(expr, where):
    errors = []
    for name in metric_names(expr):
        base, suffix = name, ""
        for s in ("_bucket", "_sum", "_count"):
            if name.endswith(s) and name[: -len(s)] in known:
                base, suffix = name[: -len(s)], s
        if base not in known:
            errors.append(f"{where}: {name} is not a Doorward metric (metrics.txt)")
        elif suffix and known[base] != "histogram":
            errors.append(f"{where}: {name}: {base} is a {known[base]}, not a histogram")
        elif not suffix and known[base] == "histogram":
            errors.append(f"{where}: {name} is a histogram: query its _bucket, _sum or _count")
    return errors

errors = []
dashboard = json.load(open("grafana-dashboard.json"))
exprs = []
ids = set()
def walk(panels):
    for p in panels:
        if p["id"] in ids:
            errors.append(f"panel id {p['id']} is used twice")
        ids.add(p["id"])
        if p.get("type") != "row" and not p.get("targets"):
            errors.append(f"panel {p['title']!r} queries nothing")
        for t in p.get("targets", []):
            exprs.append((p["title"], t["expr"]))
        walk(p.get("panels", []))
walk(dashboard["panels"])
for var in dashboard.get("templating", {}).get("list", []):
    q = var.get("query")
    if isinstance(q, dict):
        inner = re.match(r"label_values\((.*),\s*\w+\)$", q["query"])
        exprs.append((f"variable {var['name']}", inner.group(1) if inner else q["query"]))
for where, expr in exprs:
    errors += check(expr, f"dashboard {where!r}")

# Alerts, read without a YAML library: every `expr:` (one line or a `|` block).
lines = open("alerts.yml").read().splitlines()
alerts = []
i = 0
while i < len(lines):
    m = re.match(r"\s*- alert: (\S+)", lines[i])
    if m:
        alerts.append(m.group(1))
    m = re.match(r"(\s*)expr: (.*)", lines[i])
    if m:
        indent, text = len(m.group(1)), m.group(2)
        if text.strip() == "|":
            block = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                block.append(lines[i])
                i += 1
            text = "\n".join(block)
            i -= 1
        errors += check(text, f"alerts.yml ({alerts[-1]})")
    i += 1

tests = open("alerts.test.yml").read()
for alert in alerts:
    # A firing case: the alert named with a non-empty exp_alerts list.
    if not re.search(rf"alertname: {alert}\n\s+exp_alerts:\n\s+- exp_labels", tests):
        errors.append(f"alerts.test.yml has no case where {alert} fires")

# The dashboard's queries as recording rules, so that promtool parses each one. Grafana's
# variables become what Grafana would put there.
with open(out, "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for n, (where, expr) in enumerate(exprs):
        expr = expr.replace("$__rate_interval", "5m").replace("$instance", ".*")
        f.write(f"      - record: dashboard:query{n}\n        expr: {json.dumps(expr)}\n")

if errors:
    print("\n".join(errors), file=sys.stderr)
    sys.exit(1)
print(f"dashboard: {len(exprs)} queries, alerts: {len(alerts)} rules; every metric is in metrics.txt")
PY
promtool check rules "$scratch/dashboard-rules.yml" >/dev/null
echo "dashboard: every query is valid PromQL"
