"""Renders a kustomization the way `kustomize build` does, for the features deploy/kubernetes
uses, so that CI can validate the exact manifests an overlay produces without kustomize or
kubectl (neither is packaged for this machine).

Usage: python3 render.py DIR > manifests.yaml

Supported, as kustomize defines them: resources (files and kustomization folders),
namespace, labels (pairs, includeSelectors: false), images (name -> newName/newTag),
replicas, and patches given by `path` (strategic merge: maps merge, lists of named items
merge by name, other lists are replaced). Anything else in a kustomization is an error, as
is a patch, image or replica entry that matches nothing: a renderer that skipped what it
does not know would validate something other than what kubectl applies.
"""

import copy
import os
import sys

import yaml

SUPPORTED = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "replicas", "patches"}
# Kinds that have no namespace; every other kind used here is namespaced.
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass"}
NAMESPACED = {"ConfigMap", "Secret", "ServiceAccount", "Service", "Deployment", "Job", "CronJob",
              "PodDisruptionBudget", "NetworkPolicy", "Ingress", "StatefulSet", "Role", "RoleBinding"}


class RenderError(Exception):
    pass


def load_docs(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def key(doc):
    return (doc.get("kind"), doc.get("metadata", {}).get("name"))


def merge(base, patch, where):
    """Strategic merge of `patch` into `base` (both plain data), returning the result."""
    if isinstance(base, dict) and isinstance(patch, dict):
        if any(k.startswith("$") for k in patch):
            raise RenderError(f"{where}: strategic merge directives ($patch, ...) are not supported")
        out = dict(base)
        for k, v in patch.items():
            out[k] = merge(base[k], v, f"{where}.{k}") if k in base else copy.deepcopy(v)
        return out
    if isinstance(base, list) and isinstance(patch, list):
        named = all(isinstance(i, dict) and "name" in i for i in base + patch)
        if not named:
            return copy.deepcopy(patch)
        out = [copy.deepcopy(i) for i in base]
        for item in patch:
            for n, existing in enumerate(out):
                if existing["name"] == item["name"]:
                    out[n] = merge(existing, item, f"{where}[{item['name']}]")
                    break
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def pod_specs(doc):
    spec = doc.get("spec", {})
    if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        yield spec["template"]["spec"]
    elif doc["kind"] == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]


def image_name(ref):
    """registry/repo:tag@digest -> registry/repo (a registry's :port is not a tag)."""
    ref = ref.split("@")[0]
    head, _, last = ref.rpartition("/")
    last = last.split(":")[0]
    return f"{head}/{last}" if head else last


def render(directory):
    path = os.path.join(directory, "kustomization.yaml")
    if not os.path.isfile(path):
        raise RenderError(f"{directory}: no kustomization.yaml")
    k = load_docs(path)[0]
    unknown = set(k) - SUPPORTED
    if unknown:
        raise RenderError(f"{path}: unsupported fields {sorted(unknown)}")

    docs = []
    for res in k.get("resources", []):
        target = os.path.normpath(os.path.join(directory, res))
        docs += render(target) if os.path.isdir(target) else load_docs(target)
    seen = set()
    for d in docs:
        if key(d) in seen:
            raise RenderError(f"{directory}: {key(d)} is defined twice")
        seen.add(key(d))

    for patch in k.get("patches", []):
        if set(patch) != {"path"}:
            raise RenderError(f"{path}: only `path:` patches are supported, got {patch}")
        for p in load_docs(os.path.join(directory, patch["path"])):
            matches = [n for n, d in enumerate(docs) if key(d) == key(p)]
            if len(matches) != 1:
                raise RenderError(f"{path}: patch {patch['path']} for {key(p)} matches {len(matches)} resources")
            docs[matches[0]] = merge(docs[matches[0]], p, f"{patch['path']}:{key(p)}")

    for image in k.get("images", []):
        hits = 0
        for d in docs:
            for spec in pod_specs(d):
                for c in spec.get("containers", []) + spec.get("initContainers", []):
                    name = image_name(c["image"])
                    if name == image["name"]:
                        c["image"] = image.get("newName", name) + (f":{image['newTag']}" if "newTag" in image else "")
                        hits += 1
        if not hits:
            raise RenderError(f"{path}: image {image['name']} is used by no container")

    for rep in k.get("replicas", []):
        hits = [d for d in docs if d.get("metadata", {}).get("name") == rep["name"] and "replicas" in d.get("spec", {})]
        if not hits:
            raise RenderError(f"{path}: replicas for {rep['name']}: no such workload")
        for d in hits:
            d["spec"]["replicas"] = rep["count"]

    for entry in k.get("labels", []):
        if entry.get("includeSelectors", False) or entry.get("includeTemplates", False):
            raise RenderError(f"{path}: labels with includeSelectors/includeTemplates are not supported")
        for d in docs:
            d.setdefault("metadata", {}).setdefault("labels", {}).update(entry["pairs"])

    if "namespace" in k:
        for d in docs:
            if d["kind"] in CLUSTER_SCOPED:
                continue
            if d["kind"] not in NAMESPACED:
                raise RenderError(f"{path}: does not know whether {d['kind']} is namespaced")
            d["metadata"]["namespace"] = k["namespace"]
    return docs


if __name__ == "__main__":
    try:
        out = render(sys.argv[1])
    except (RenderError, OSError, KeyError) as e:
        print(f"render: {e}", file=sys.stderr)
        sys.exit(1)
    yaml.safe_dump_all(out, sys.stdout, sort_keys=False)
