#!/usr/bin/env python3
"""What each kind of request a DurableJob's creation makes costs the API server (and etcd), in
CPU milliseconds per request: 1,000 of each, 32 at a time, on a cluster of hack/cluster.sh.

    hack/cluster.sh start /tmp/costs --crds crds
    hack/api-costs.py /tmp/costs/kubeconfig
    hack/cluster.sh stop /tmp/costs

CPU comes from /proc (user + system) of the kube-apiserver and etcd processes on this machine,
read 3 s before and after each batch, so run it with nothing else busy. docs/scaling.md quotes
its figures.
"""
import http.client
import json
import os
import ssl
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

N, CONCURRENCY, NS = 1000, 32, "api-costs"


def kubeconfig(path):
    text = open(path).read()
    server = text.split("server: https://")[1].split()[0]
    token = text.split("token: ")[1].split()[0]
    return server, token


SERVER, TOKEN = kubeconfig(sys.argv[1] if len(sys.argv) > 1 else os.environ["KUBECONFIG"])
TLS = ssl._create_unverified_context()  # loopback test cluster only
LOCAL = threading.local()


def request(method, path, body=None, content_type="application/json"):
    if getattr(LOCAL, "conn", None) is None:
        LOCAL.conn = http.client.HTTPSConnection(SERVER, context=TLS)
    headers = {"Authorization": "Bearer " + TOKEN, "Content-Type": content_type}
    LOCAL.conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    r = LOCAL.conn.getresponse()
    data = r.read()
    if r.status >= 300:
        raise RuntimeError(f"{method} {path}: {r.status} {data[:300]!r}")


def cpu(name):
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        if stat[stat.find("(") + 1 : stat.rfind(")")].startswith(name):
            fields = stat[stat.rfind(")") + 2 :].split()
            total += (int(fields[11]) + int(fields[12])) / 100
    return total


def measure(label, one):
    time.sleep(3)
    api, etcd, started = cpu("kube-apiserver"), cpu("etcd"), time.time()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, range(N)))
    took = time.time() - started
    time.sleep(3)
    api, etcd = (cpu("kube-apiserver") - api) / N * 1000, (cpu("etcd") - etcd) / N * 1000
    print(f"| {label} | {api:.1f} | {etcd:.2f} | {took:.1f} s |", flush=True)


def main():
    request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    template = {"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
        {"name": "main", "image": "busybox:1.36", "command": ["true"]}]}}}}
    djs = f"/apis/durablejob.dev/v1alpha1/namespaces/{NS}/durablejobs"
    name = lambda i: f"dj-{i:05}"
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def condition(type_, status, reason):
        return {"type": type_, "status": status, "reason": reason, "message": "Schedule durablejob:x is in sync",
                "lastTransitionTime": now, "observedGeneration": 1}

    def first_status(i):  # the shape of the operator's first status
        return {"observedGeneration": 1, "scheduleId": f"durablejob:{NS}/{name(i)}", "temporalNamespace": "default",
                "conditions": [condition("Ready", "True", "Synced"), condition("ScheduleSynced", "True", "Synced"),
                               condition("Reconciling", "False", "AsExpected"), condition("Stalled", "False", "AsExpected")],
                "nextRunTimes": [now] * 5,
                "sync": {"desiredHash": "a" * 64, "observedFingerprint": "", "createdConflictToken": "0" * 15 + "1",
                         "listing": "b" * 32}}

    print("| request (1,000, 32 at a time) | API server CPU ms each | etcd CPU ms each | took |")
    print("|---|---|---|---|")
    measure("create a DurableJob", lambda i: request("POST", djs, {
        "apiVersion": "durablejob.dev/v1alpha1", "kind": "DurableJob", "metadata": {"name": name(i)},
        "spec": {"schedule": {"intervals": [{"every": "24h", "offset": "7h"}]}, "jobTemplate": template}}))
    measure("finalizer merge patch", lambda i: request("PATCH", f"{djs}/{name(i)}",
        {"metadata": {"finalizers": ["durablejob.dev/schedule"]}}, "application/merge-patch+json"))
    measure("status merge patch, one condition", lambda i: request("PATCH", f"{djs}/{name(i)}/status",
        {"status": {"observedGeneration": 1, "conditions": [condition("Ready", "True", "Synced")]}},
        "application/merge-patch+json"))
    measure("status server-side apply, the operator's first status", lambda i: request(
        "PATCH", f"{djs}/{name(i)}/status?fieldManager=durablejob-operator&force=true",
        {"apiVersion": "durablejob.dev/v1alpha1", "kind": "DurableJob", "status": first_status(i)},
        "application/apply-patch+yaml"))
    # the same first status on DurableJobs that have none yet, written three ways
    for way, path, body, content_type in [
        ("server-side apply", "?fieldManager=durablejob-operator&force=true",
         lambda i: {"apiVersion": "durablejob.dev/v1alpha1", "kind": "DurableJob", "status": first_status(i)},
         "application/apply-patch+yaml"),
        ("merge patch", "?fieldManager=durablejob-operator",
         lambda i: {"status": first_status(i)}, "application/merge-patch+json"),
        ("JSON patch (add /status)", "?fieldManager=durablejob-operator",
         lambda i: [{"op": "add", "path": "/status", "value": first_status(i)}], "application/json-patch+json"),
    ]:
        fresh = lambda i, way=way: f"{name(i)}-{way.split()[0].lower()}"
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            list(pool.map(lambda i: request("POST", djs, {
                "apiVersion": "durablejob.dev/v1alpha1", "kind": "DurableJob", "metadata": {"name": fresh(i)},
                "spec": {"schedule": {"intervals": [{"every": "24h", "offset": "7h"}]}, "jobTemplate": template}}), range(N)))
        measure(f"first status, {way}, on a DurableJob without one", lambda i, fresh=fresh, path=path, body=body, ct=content_type: request(
            "PATCH", f"{djs}/{fresh(i)}/status{path}", body(i), ct))
    measure("dry-run Job create", lambda i: request("POST", f"/apis/batch/v1/namespaces/{NS}/jobs?dryRun=All", {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": f"{name(i)}-check"}, "spec": template["spec"]}))
    measure("Event create (events.k8s.io/v1)", lambda i: request("POST", f"/apis/events.k8s.io/v1/namespaces/{NS}/events", {
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": f"{name(i)}.created"},
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime()),
        "reportingController": "durablejob-operator", "reportingInstance": "costs", "action": "Create",
        "reason": "ScheduleCreated", "note": "Created schedule", "type": "Normal",
        "regarding": {"apiVersion": "durablejob.dev/v1alpha1", "kind": "DurableJob", "namespace": NS, "name": name(i)}}))


if __name__ == "__main__":
    main()
