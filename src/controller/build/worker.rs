//! The Deployment that runs a user's worker (`spec.worker`), built by a pure function.

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};

use crate::desired::validate::ValidWorker;
use crate::desired::worker_version;
use crate::util::digest::{canonical_json, hex_sha256};

/// Annotation with the hash of what the operator last applied, to skip no-op applies.
pub(crate) const SPEC_HASH_ANNOTATION: &str = "durablejob.dev/spec-hash";
/// Label on the Deployment and its pods.
pub(crate) const WORKER_LABEL: &str = "durablejob.dev/worker";

/// What the worker needs to reach Temporal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkerTarget<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
    pub temporal_address: &'a str,
    pub temporal_namespace: &'a str,
    pub task_queue: &'a str,
    /// TLS and API key material, as the admin configured it for workers.
    pub connection: &'a crate::settings::WorkerConnection,
}

/// `<name>-worker`, shortened to fit a DNS label.
pub(crate) fn deployment_name(name: &str) -> String {
    let mut base: String = name.chars().take(63 - "-worker".len()).collect();
    while base.ends_with(['-', '.']) {
        base.pop();
    }
    format!("{base}-worker")
}

/// The Deployment, as JSON for server-side apply; `spec.worker.template` overrides the
/// generated pod template field by field (containers matched by name).
pub(crate) fn desired(t: &WorkerTarget<'_>, w: &ValidWorker) -> Value {
    let pod = pod_template(t, w);
    deployment(t, w, &deployment_name(t.name), labels(t), pod)
}

/// The labels of a worker's Deployment and pods.
fn labels(t: &WorkerTarget<'_>) -> Value {
    json!({
        WORKER_LABEL: t.name,
        "app.kubernetes.io/name": "durablejob-worker",
        "app.kubernetes.io/instance": t.name,
        "app.kubernetes.io/managed-by": "durablejob",
    })
}

/// The worker's pod template: the image with the Temporal settings, the spec's env,
/// resources and service account, then `spec.worker.template` laid over it.
fn pod_template(t: &WorkerTarget<'_>, w: &ValidWorker) -> Value {
    let mut env = vec![
        json!({"name": "TEMPORAL_ADDRESS", "value": t.temporal_address}),
        json!({"name": "TEMPORAL_NAMESPACE", "value": t.temporal_namespace}),
        json!({"name": "TEMPORAL_TASK_QUEUE", "value": t.task_queue}),
    ];
    env.extend(t.connection.worker_env());
    for e in &w.env {
        let e = serde_json::to_value(e).expect("EnvVar serializes");
        env.retain(|x| x["name"] != e["name"]);
        env.push(e);
    }
    let mut container = json!({"name": "worker", "image": w.image, "env": env});
    if let Some(r) = &w.resources {
        container["resources"] = serde_json::to_value(r).expect("resources serialize");
    }
    let mut pod = json!({"metadata": {"labels": labels(t)}, "spec": {"containers": [container]}});
    if let Some(sa) = &w.service_account_name {
        pod["spec"]["serviceAccountName"] = Value::from(sa.clone());
    }
    if let Some(secret) = &t.connection.tls_secret {
        pod["spec"]["volumes"] = json!([{"name": TLS_VOLUME, "secret": {"secretName": secret}}]);
        pod["spec"]["containers"][0]["volumeMounts"] =
            json!([{"name": TLS_VOLUME, "mountPath": crate::settings::WORKER_TLS_DIR, "readOnly": true}]);
    }
    if let Some(user) = &w.template {
        let user = serde_json::to_value(user).expect("PodTemplateSpec serializes");
        overlay(&mut pod, &user);
    }
    pod
}

/// A Deployment of `pod`, owned by the DurableJob, selecting by `labels`' worker label (and
/// build id, for a version), with the hash of the whole body as an annotation.
fn deployment(t: &WorkerTarget<'_>, w: &ValidWorker, name: &str, labels: Value, pod: Value) -> Value {
    let mut selector = json!({WORKER_LABEL: t.name});
    if let Some(b) = labels.get(BUILD_ID_LABEL) {
        selector[BUILD_ID_LABEL] = b.clone();
    }
    let mut d = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": t.namespace,
            "labels": labels,
            "ownerReferences": [{
                "apiVersion": "durablejob.dev/v1alpha1", "kind": "DurableJob", "name": t.name, "uid": t.uid,
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "replicas": w.replicas,
            "selector": {"matchLabels": selector},
            "template": pod,
        },
    });
    let hash = hex_sha256(&canonical_json(&d))[..16].to_string();
    d["metadata"]["annotations"] = json!({SPEC_HASH_ANNOTATION: hash});
    d
}

/// The volume of the worker TLS Secret (`--worker-temporal-tls-secret`).
const TLS_VOLUME: &str = "temporal-tls";

/// Label on a version's Deployment and pods: its build id.
pub(crate) const BUILD_ID_LABEL: &str = "durablejob.dev/build-id";

/// One version of a versioned worker: its names in Temporal and in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    /// The Temporal Worker Deployment (`<namespace>/<name>`).
    pub deployment_name: String,
    pub build_id: String,
    /// The version's Deployment.
    pub name: String,
}

/// The version this spec's pod template is: the stamped build id, or one derived from the
/// image and the hash of the pod template (so any change of image, env, resources or the
/// template override is a new version, and the replicas are not).
pub(crate) fn version(t: &WorkerTarget<'_>, w: &ValidWorker) -> Version {
    let build_id = w.build_id.clone().unwrap_or_else(|| {
        let template_hash = hex_sha256(&canonical_json(&pod_template(t, w)));
        worker_version::build_id(&w.image, &template_hash)
    });
    Version {
        deployment_name: worker_version::deployment_name(t.namespace, t.name),
        name: worker_version::version_deployment_name(t.name, &build_id),
        build_id,
    }
}

/// A version's Deployment: the pod template labelled with the build id, and every container
/// told where to poll and as which version (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
/// TEMPORAL_TASK_QUEUE, TEMPORAL_DEPLOYMENT_NAME, TEMPORAL_WORKER_BUILD_ID; these win over
/// the spec's env of the same names).
pub(crate) fn desired_version(t: &WorkerTarget<'_>, w: &ValidWorker, v: &Version) -> Value {
    let mut labels = labels(t);
    labels[BUILD_ID_LABEL] = Value::from(v.build_id.clone());
    let mut pod = pod_template(t, w);
    pod["metadata"]["labels"] = labels.clone();
    let mut told: Vec<Value> = [
        ("TEMPORAL_ADDRESS", t.temporal_address),
        ("TEMPORAL_NAMESPACE", t.temporal_namespace),
        ("TEMPORAL_TASK_QUEUE", t.task_queue),
        ("TEMPORAL_DEPLOYMENT_NAME", v.deployment_name.as_str()),
        ("TEMPORAL_WORKER_BUILD_ID", v.build_id.as_str()),
    ]
    .iter()
    .map(|(n, value)| json!({"name": n, "value": value}))
    .collect();
    told.extend(t.connection.worker_env());
    let mount = json!({"name": TLS_VOLUME, "mountPath": crate::settings::WORKER_TLS_DIR, "readOnly": true});
    for c in pod["spec"]["containers"].as_array_mut().into_iter().flatten() {
        let mut env: Vec<Value> = c["env"].as_array().cloned().unwrap_or_default();
        env.retain(|e| !told.iter().any(|x| e["name"] == x["name"]));
        env.extend(told.iter().cloned());
        c["env"] = Value::Array(env);
        if t.connection.tls_secret.is_some() {
            let mut mounts: Vec<Value> = c["volumeMounts"].as_array().cloned().unwrap_or_default();
            mounts.retain(|m| m["name"] != TLS_VOLUME);
            mounts.push(mount.clone());
            c["volumeMounts"] = Value::Array(mounts);
        }
    }
    let mut d = deployment(t, w, &v.name, labels, pod);
    d["metadata"]["annotations"][WORKER_DEPLOYMENT_ANNOTATION] = Value::from(v.deployment_name.clone());
    d
}

/// Annotation on a version's Deployment: the Temporal Worker Deployment it belongs to.
pub(crate) const WORKER_DEPLOYMENT_ANNOTATION: &str = "durablejob.dev/worker-deployment";

/// Deep merge of a user's pod template onto the generated one: objects merge, `containers`
/// (and `initContainers`, `env`, `volumes`) merge by name, other lists and values replace.
fn overlay(base: &mut Value, user: &Value) {
    match (base, user) {
        (Value::Object(b), Value::Object(u)) => {
            for (k, v) in u {
                if v.is_null() {
                    continue;
                }
                let by_name = matches!(
                    k.as_str(),
                    "containers" | "initContainers" | "env" | "volumes" | "volumeMounts"
                );
                match b.get_mut(k) {
                    Some(Value::Array(existing)) if by_name && v.is_array() => {
                        for item in v.as_array().into_iter().flatten() {
                            match existing
                                .iter_mut()
                                .find(|e| e["name"] == item["name"] && !item["name"].is_null())
                            {
                                Some(e) => overlay(e, item),
                                None => existing.push(item.clone()),
                            }
                        }
                    }
                    Some(existing) if existing.is_object() && v.is_object() => overlay(existing, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, u) => *b = u.clone(),
    }
}

/// What the Deployment's status says about the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkerHealth {
    pub ready_replicas: i32,
    pub available: bool,
    pub message: String,
}

pub(crate) fn health(d: &Deployment) -> WorkerHealth {
    let generation = d.metadata.generation.unwrap_or(0);
    let status = d.status.clone().unwrap_or_default();
    let ready = status.ready_replicas.unwrap_or(0);
    let wanted = d.spec.replicas.unwrap_or(1);
    let current = status.observed_generation.unwrap_or(0) >= generation;
    let available_cond = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_.as_deref() == Some("Available"))
        .is_some_and(|c| c.status.as_deref() == Some("True"));
    let available = current && available_cond && (wanted == 0 || ready > 0);
    let message = if !current {
        "the Deployment's latest change is not observed yet".to_string()
    } else if available {
        format!("{ready}/{wanted} worker replicas ready")
    } else {
        format!("{ready}/{wanted} worker replicas ready; the Deployment is not available")
    };
    WorkerHealth {
        ready_replicas: ready,
        available,
        message,
    }
}

/// What to do with the worker Deployment, decided from the Deployment wanted (`None`: the
/// spec has no worker) and the one found under its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WorkerPlan<'a> {
    /// A Deployment of that name is someone else's: left untouched, and why.
    NameTaken { owner: String },
    /// No worker is wanted and the operator's own is left over: delete it.
    Delete,
    /// Nothing to write: no worker and none left over, or the Deployment is as wanted.
    Keep,
    /// Apply the wanted Deployment; `created` when there was none.
    Apply { want: &'a Value, created: bool },
}

/// Decides the worker step for the DurableJob `uid`: its own Deployment is the one it
/// controls (owner reference), and one whose spec hash matches what is wanted needs no write.
pub(crate) fn plan<'a>(uid: &str, want: Option<&'a Value>, existing: Option<&Deployment>) -> WorkerPlan<'a> {
    let ours = existing.is_some_and(|d| {
        d.metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.uid == uid && o.controller == Some(true))
    });
    let Some(want) = want else {
        return if ours {
            WorkerPlan::Delete
        } else {
            WorkerPlan::Keep
        };
    };
    let Some(d) = existing else {
        return WorkerPlan::Apply { want, created: true };
    };
    if !ours {
        let owner = d
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| format!("it is controlled by {} {}", o.kind, o.name))
            .unwrap_or_else(|| "it has no controlling owner".into());
        return WorkerPlan::NameTaken { owner };
    }
    let want_hash = want["metadata"]["annotations"][SPEC_HASH_ANNOTATION].as_str();
    let have_hash = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SPEC_HASH_ANNOTATION))
        .map(String::as_str);
    if want_hash.is_some() && want_hash == have_hash {
        WorkerPlan::Keep
    } else {
        WorkerPlan::Apply { want, created: false }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EnvVar, PodTemplateSpec};

    fn target() -> WorkerTarget<'static> {
        WorkerTarget {
            namespace: "team",
            name: "invoice-sync",
            uid: "uid-1",
            temporal_address: "temporal:7233",
            temporal_namespace: "jobs",
            task_queue: "durablejob.team.invoice-sync",
            connection: &NO_CONNECTION,
        }
    }

    static NO_CONNECTION: crate::settings::WorkerConnection = crate::settings::WorkerConnection {
        tls: false,
        tls_server_name: None,
        tls_secret: None,
        api_key_secret: None,
    };

    #[test]
    fn the_connection_the_admin_configured_reaches_every_worker_container_from_secrets() {
        let connection = crate::settings::WorkerConnection {
            tls: true,
            tls_server_name: Some("temporal.internal".into()),
            tls_secret: Some("temporal-client".into()),
            api_key_secret: Some(("temporal-key".into(), "key".into())),
        };
        let t = WorkerTarget {
            connection: &connection,
            ..target()
        };
        let mut w = worker();
        w.template = Some(
            serde_json::from_value(
                json!({"spec": {"containers": [{"name": "sidecar", "image": "proxy:1"}]}}),
            )
            .unwrap(),
        );
        let plain = desired(&t, &w);
        let v = version(&t, &w);
        for d in [&plain, &desired_version(&t, &w, &v)] {
            let typed: Deployment = serde_json::from_value(d.clone()).expect("a valid Deployment");
            let pod = typed.spec.template.spec.unwrap();
            let volume = &pod.volumes.unwrap()[0];
            assert_eq!(
                volume.secret.as_ref().unwrap().secret_name.as_deref(),
                Some("temporal-client")
            );
            let worker = &pod.containers[0];
            let env = env_of(&serde_json::to_value(worker).unwrap());
            assert_eq!(env["TEMPORAL_TLS"], "true");
            assert_eq!(env["TEMPORAL_TLS_SERVER_NAME"], "temporal.internal");
            assert_eq!(env["TEMPORAL_TLS_CLIENT_CERT_PATH"], "/etc/temporal/tls/tls.crt");
            assert_eq!(
                env["TEMPORAL_TLS_SERVER_CA_CERT_PATH"],
                "/etc/temporal/tls/ca.crt"
            );
            let key = worker
                .env
                .as_ref()
                .unwrap()
                .iter()
                .find(|e| e.name == "TEMPORAL_API_KEY")
                .unwrap();
            assert_eq!(key.value, None, "the key is never copied");
            let r = key.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
            assert_eq!((r.name.as_str(), r.key.as_str()), ("temporal-key", "key"));
            assert_eq!(
                worker.volume_mounts.as_ref().unwrap()[0].mount_path,
                "/etc/temporal/tls"
            );
        }
        // a version tells its sidecars too
        let d = desired_version(&t, &w, &v);
        let sidecar = &d["spec"]["template"]["spec"]["containers"][1];
        assert_eq!(
            env_of(sidecar)["TEMPORAL_TLS_CLIENT_KEY_PATH"],
            "/etc/temporal/tls/tls.key"
        );
        assert_eq!(sidecar["volumeMounts"][0]["name"], "temporal-tls");
    }

    fn worker() -> ValidWorker {
        ValidWorker {
            image: "example/worker:1".into(),
            replicas: 2,
            env: vec![EnvVar {
                name: "LOG".into(),
                value: Some("debug".into()),
                ..Default::default()
            }],
            resources: None,
            service_account_name: Some("worker-sa".into()),
            template: None,
            build_id: None,
            rollout: crate::api::RolloutStrategy::AllAtOnce,
            steps: vec![],
            rollback_after: None,
            gate: None,
            sunset: Default::default(),
        }
    }

    fn env_of(c: &Value) -> std::collections::BTreeMap<String, String> {
        c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["value"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn a_version_runs_as_its_own_deployment_and_every_container_is_told_which_it_is() {
        let mut w = worker();
        w.template = Some(
            serde_json::from_value(
                json!({"spec": {"containers": [{"name": "sidecar", "image": "proxy:1"}]}}),
            )
            .unwrap(),
        );
        w.env.push(EnvVar {
            name: "TEMPORAL_WORKER_BUILD_ID".into(),
            value: Some("mine".into()),
            ..Default::default()
        });
        let v = version(&target(), &w);
        assert_eq!(v.deployment_name, "team/invoice-sync");
        assert!(v.build_id.starts_with("1-"), "{}", v.build_id);
        let d = desired_version(&target(), &w, &v);
        let typed: Deployment = serde_json::from_value(d.clone()).expect("a valid Deployment");
        assert_eq!(typed.metadata.name.as_deref(), Some(v.name.as_str()));
        assert_ne!(
            v.name, "invoice-sync-worker",
            "a version never takes the unversioned name"
        );
        let selector = typed.spec.selector.match_labels.unwrap();
        assert_eq!(selector[BUILD_ID_LABEL], v.build_id);
        assert_eq!(selector[WORKER_LABEL], "invoice-sync");
        let pod_labels = typed.spec.template.metadata.unwrap().labels.unwrap();
        assert_eq!(pod_labels[BUILD_ID_LABEL], v.build_id);
        assert_eq!(
            typed.metadata.annotations.unwrap()[WORKER_DEPLOYMENT_ANNOTATION],
            "team/invoice-sync"
        );
        let containers = d["spec"]["template"]["spec"]["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 2);
        for c in containers {
            let env = env_of(c);
            assert_eq!(
                env["TEMPORAL_DEPLOYMENT_NAME"], "team/invoice-sync",
                "{}",
                c["name"]
            );
            assert_eq!(
                env["TEMPORAL_WORKER_BUILD_ID"], v.build_id,
                "the operator's build id wins"
            );
            assert_eq!(env["TEMPORAL_ADDRESS"], "temporal:7233");
            assert_eq!(env["TEMPORAL_NAMESPACE"], "jobs");
            assert_eq!(env["TEMPORAL_TASK_QUEUE"], "durablejob.team.invoice-sync");
        }
        assert_eq!(env_of(&containers[0])["LOG"], "debug");
    }

    #[test]
    fn the_pod_template_makes_the_version_and_the_replicas_do_not() {
        let base = version(&target(), &worker());
        let mut more = worker();
        more.replicas = 5;
        assert_eq!(version(&target(), &more), base, "scaling is not a new version");
        let mut env = worker();
        env.env[0].value = Some("info".into());
        assert_ne!(version(&target(), &env).build_id, base.build_id);
        let mut image = worker();
        image.image = "example/worker:2".into();
        let v2 = version(&target(), &image);
        assert!(v2.build_id.starts_with("2-") && v2.build_id != base.build_id);
        let mut stamped = worker();
        stamped.build_id = Some("release-42".into());
        let v = version(&target(), &stamped);
        assert_eq!(v.build_id, "release-42");
        assert_eq!(v.name, "invoice-sync-release-42");
    }

    #[test]
    fn the_deployment_runs_the_image_with_temporal_settings_and_is_owned() {
        let d = desired(&target(), &worker());
        let typed: Deployment = serde_json::from_value(d.clone()).expect("a valid Deployment");
        assert_eq!(typed.metadata.name.as_deref(), Some("invoice-sync-worker"));
        assert_eq!(typed.metadata.owner_references.unwrap()[0].uid, "uid-1");
        let spec = typed.spec;
        assert_eq!(spec.replicas, Some(2));
        let pod = spec.template.spec.unwrap();
        assert_eq!(pod.service_account_name.as_deref(), Some("worker-sa"));
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("example/worker:1"));
        let env: Vec<(String, String)> = c
            .env
            .clone()
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.value.unwrap_or_default()))
            .collect();
        assert_eq!(
            env,
            vec![
                ("TEMPORAL_ADDRESS".into(), "temporal:7233".into()),
                ("TEMPORAL_NAMESPACE".into(), "jobs".into()),
                (
                    "TEMPORAL_TASK_QUEUE".into(),
                    "durablejob.team.invoice-sync".into()
                ),
                ("LOG".into(), "debug".into()),
            ]
        );
        let selector = spec.selector.match_labels.unwrap();
        assert_eq!(
            spec.template.metadata.unwrap().labels.unwrap()[WORKER_LABEL],
            selector[WORKER_LABEL]
        );
    }

    #[test]
    fn the_users_pod_template_overrides_generated_fields() {
        let mut w = worker();
        w.template = Some(
            serde_json::from_value::<PodTemplateSpec>(json!({
                "metadata": {"annotations": {"prometheus.io/scrape": "true"}},
                "spec": {"nodeSelector": {"pool": "jobs"}, "containers": [{"name": "worker", "image": "example/worker:2", "args": ["--fast"]}]}
            }))
            .unwrap(),
        );
        let d: Deployment = serde_json::from_value(desired(&target(), &w)).unwrap();
        let t = d.spec.template;
        assert_eq!(
            t.metadata.unwrap().annotations.unwrap()["prometheus.io/scrape"],
            "true"
        );
        let pod = t.spec.unwrap();
        assert_eq!(pod.node_selector.unwrap()["pool"], "jobs");
        assert_eq!(pod.containers.len(), 1, "merged by name");
        assert_eq!(pod.containers[0].image.as_deref(), Some("example/worker:2"));
        assert_eq!(
            pod.containers[0].args.as_deref(),
            Some(&["--fast".to_string()][..])
        );
        assert_eq!(
            pod.containers[0].env.as_ref().unwrap().len(),
            4,
            "generated env kept"
        );
    }

    #[test]
    fn the_hash_annotation_changes_with_the_spec() {
        let a = desired(&target(), &worker());
        let mut w = worker();
        w.image = "example/worker:2".into();
        let b = desired(&target(), &w);
        assert_ne!(
            a["metadata"]["annotations"][SPEC_HASH_ANNOTATION],
            b["metadata"]["annotations"][SPEC_HASH_ANNOTATION]
        );
        assert_eq!(a, desired(&target(), &worker()));
    }

    #[test]
    fn names_fit_a_dns_label() {
        assert_eq!(deployment_name(&"a".repeat(80)).len(), 63);
        assert_eq!(deployment_name("x"), "x-worker");
    }

    #[test]
    fn health_needs_the_latest_generation_available() {
        let d = |generation: i64, observed: i64, ready: i32, available: &str| -> Deployment {
            serde_json::from_value(json!({"metadata": {"name": "w", "generation": generation}, "spec": {"replicas": 2, "selector": {}, "template": {}},
                "status": {"observedGeneration": observed, "readyReplicas": ready, "conditions": [{"type": "Available", "status": available}]}}))
            .unwrap()
        };
        assert!(health(&d(1, 1, 2, "True")).available);
        assert!(
            !health(&d(2, 1, 2, "True")).available,
            "the change is not rolled out yet"
        );
        assert!(!health(&d(1, 1, 0, "False")).available);
        assert_eq!(health(&d(1, 1, 2, "True")).message, "2/2 worker replicas ready");
    }

    fn found(owner_uid: Option<&str>, hash: &str) -> Deployment {
        serde_json::from_value(json!({
            "metadata": {
                "name": "r-worker",
                "annotations": {SPEC_HASH_ANNOTATION: hash},
                "ownerReferences": owner_uid.map(|uid| vec![json!({
                    "apiVersion": "durablejob.dev/v1alpha1", "kind": "DurableJob", "name": "r",
                    "uid": uid, "controller": true
                })]).unwrap_or_default(),
            }
        }))
        .expect("a Deployment")
    }

    #[test]
    fn the_worker_step_is_decided_from_what_is_wanted_and_what_is_found() {
        let want = json!({"metadata": {"annotations": {SPEC_HASH_ANNOTATION: "h1"}}});
        let mine = found(Some("uid-1"), "h1");
        let stale = found(Some("uid-1"), "h0");
        let theirs = found(Some("other"), "h1");
        let unowned = found(None, "h1");
        let rows: Vec<(&str, Option<&Value>, Option<&Deployment>, WorkerPlan)> = vec![
            ("no worker, none found", None, None, WorkerPlan::Keep),
            ("no worker, ours left over", None, Some(&mine), WorkerPlan::Delete),
            ("no worker, someone else's", None, Some(&theirs), WorkerPlan::Keep),
            (
                "a worker, none found",
                Some(&want),
                None,
                WorkerPlan::Apply {
                    want: &want,
                    created: true,
                },
            ),
            (
                "a worker, ours as wanted",
                Some(&want),
                Some(&mine),
                WorkerPlan::Keep,
            ),
            (
                "a worker, ours changed",
                Some(&want),
                Some(&stale),
                WorkerPlan::Apply {
                    want: &want,
                    created: false,
                },
            ),
            (
                "a worker, the name another's",
                Some(&want),
                Some(&theirs),
                WorkerPlan::NameTaken {
                    owner: "it is controlled by DurableJob r".into(),
                },
            ),
            (
                "a worker, the name unowned",
                Some(&want),
                Some(&unowned),
                WorkerPlan::NameTaken {
                    owner: "it has no controlling owner".into(),
                },
            ),
        ];
        for (name, want, existing, expected) in rows {
            assert_eq!(plan("uid-1", want, existing), expected, "{name}");
        }
    }
}
