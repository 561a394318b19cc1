//! Builders for the objects tests create, as JSON manifests.

use serde_json::{Value, json};

/// A jobTemplate whose pods carry `pod_annotations` (the simulated kubelet's pod rule,
/// tests/cluster/README.md) and fail the Job on their first failure.
pub fn job_template(pod_annotations: Value) -> Value {
    json!({"spec": {"backoffLimit": 0, "template": {"metadata": {"annotations": pod_annotations}, "spec": {
        "restartPolicy": "Never", "containers": [{"name": "main", "image": "busybox:1.36", "command": ["true"]}]}}}})
}

/// A DurableJob manifest; a spec with none of `jobTemplate`, `steps` and `worker` gets a
/// jobTemplate.
pub fn durable_job(name: &str, spec: Value) -> Value {
    let mut spec = spec;
    if ["jobTemplate", "steps", "worker"]
        .iter()
        .all(|k| spec.get(k).is_none())
    {
        spec["jobTemplate"] = job_template(json!({}));
    }
    json!({"apiVersion": "durablejob.dev/v1alpha1", "kind": "DurableJob", "metadata": {"name": name}, "spec": spec})
}

/// A CronJob manifest whose pods carry `pod_annotations`.
pub fn cronjob(name: &str, spec: Value, pod_annotations: Value) -> Value {
    let mut spec = spec;
    spec["jobTemplate"] = job_template(pod_annotations);
    json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name}, "spec": spec})
}
