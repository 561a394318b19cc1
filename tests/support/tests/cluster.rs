//! The test cluster itself: the simulated kubelet's pod rule (tests/cluster/README.md) with the
//! real Job controller, 410 Gone from the real API server without its watch cache, and the
//! fault proxy.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::{batch::v1::Job, core::v1::ConfigMap};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams, WatchEvent, WatchParams},
};
use serde_json::json;
use testsupport::{Cluster, FailRule, FaultProxy, client_for};

fn job(name: &str, attempt: Option<u32>, annotations: serde_json::Value) -> Job {
    let labels = match attempt {
        Some(a) => json!({"durablejob.dev/attempt": a.to_string()}),
        None => json!({}),
    };
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {
            "metadata": {"labels": labels, "annotations": annotations},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.36"}]}}}
    }))
    .unwrap()
}

/// Polls until the Job is Complete or Failed; its condition type and how long it took.
async fn finished(api: &Api<Job>, name: &str, timeout: Duration) -> (String, Duration) {
    let started = Instant::now();
    loop {
        let j = api.get(name).await.unwrap();
        let done = j
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True");
        if let Some(c) = done {
            return (c.type_, started.elapsed());
        }
        assert!(
            started.elapsed() < timeout,
            "Job {name} did not finish within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn the_pod_rule_gives_each_attempt_its_outcome_and_duration() {
    let cluster = Cluster::shared();
    let ns = cluster.namespace("pod-rule").unwrap();
    let api: Api<Job> = Api::namespaced(cluster.client().await.unwrap(), &ns.name);
    let outcomes = json!({"test.durablejob.dev/outcomes": "fail, fail, succeed"});
    let cases = [
        ("plain", None, json!({}), "Complete"),
        ("first", Some(1), outcomes.clone(), "Failed"),
        ("second", Some(2), outcomes.clone(), "Failed"),
        ("third", Some(3), outcomes.clone(), "Complete"),
        ("fourth", Some(4), outcomes.clone(), "Complete"),
        (
            "repeat",
            Some(5),
            json!({"test.durablejob.dev/outcomes": "succeed,fail"}),
            "Failed",
        ),
        (
            "slow",
            None,
            json!({"test.durablejob.dev/duration": "4s"}),
            "Complete",
        ),
    ];
    for (name, attempt, ann, _) in &cases {
        api.create(&PostParams::default(), &job(name, *attempt, ann.clone()))
            .await
            .unwrap();
    }
    for (name, _, _, expected) in &cases {
        let (outcome, took) = finished(&api, name, Duration::from_secs(30)).await;
        assert_eq!(&outcome, expected, "Job {name}");
        if *name == "slow" {
            assert!(
                took >= Duration::from_secs(3),
                "the slow pod ran its 4s: {took:?}"
            );
        }
    }
    // the Job controller's own reasons, from pods the simulated kubelet failed
    let failed = api
        .get("first")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .unwrap();
    assert!(
        failed
            .iter()
            .any(|c| c.type_ == "Failed" && c.reason.as_deref() == Some("BackoffLimitExceeded")),
        "{failed:?}"
    );
}

#[tokio::test]
async fn a_watch_resumed_from_a_compacted_resource_version_gets_410_from_the_real_api_server() {
    let cluster = Cluster::private("gone", &["--no-watch-cache"]).unwrap();
    let client = client_for(&cluster.kubeconfig).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "c"}, "data": {"n": "0"}})).unwrap();
    let first = api
        .create(&PostParams::default(), &cm)
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    for n in 1..=5 {
        api.patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"n": n.to_string()}})),
        )
        .await
        .unwrap();
    }
    // the API server compacts etcd every 5s in this mode; a watch from the first version
    // then finds its history gone
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let mut stream = api
            .watch(&WatchParams::default().timeout(2), &first)
            .await
            .unwrap()
            .boxed();
        let mut gone = false;
        while let Ok(Some(ev)) = stream.try_next().await {
            if let WatchEvent::Error(e) = ev {
                assert_eq!(e.code, 410, "{e:?}");
                gone = true;
                break;
            }
        }
        if gone {
            break;
        }
        assert!(Instant::now() < deadline, "no 410 Gone within 40s");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn the_fault_proxy_fails_what_it_is_told_and_keeps_the_clients_identity() {
    let cluster = Cluster::shared();
    let mut ns = cluster.namespace("faults").unwrap();
    let dir = std::env::temp_dir().join(format!("durablejob-faults-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // the operator's role may list and watch Jobs but not read ConfigMaps
    let operator = ns
        .service_account("durablejob-operator", "durablejob-operator", &dir)
        .unwrap();
    let proxy = FaultProxy::start(cluster.kubeconfig()).await.unwrap();
    let through = proxy
        .kubeconfig_for(&operator, &dir.join("through-proxy.kubeconfig"))
        .unwrap();
    let client = client_for(&through).await.unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), &ns.name);
    jobs.list(&Default::default())
        .await
        .expect("allowed by the operator's role");
    let cms: Api<ConfigMap> = Api::namespaced(client, &ns.name);
    let err = cms.list(&Default::default()).await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 403),
        "RBAC judges the client, not the proxy: {err}"
    );

    // (kube's client retries 503s by itself, so the test injects 500s)
    proxy.fail(FailRule::next("GET", "/jobs", 500, 2));
    for _ in 0..2 {
        let err = jobs.list(&Default::default()).await.unwrap_err();
        assert!(matches!(&err, kube::Error::Api(s) if s.code == 500), "{err}");
    }
    jobs.list(&Default::default()).await.expect("the rule is used up");
    assert_eq!(proxy.injected(), 2);

    // a dropped watch ends its stream
    let stream = jobs
        .watch(&WatchParams::default().timeout(60), "0")
        .await
        .unwrap();
    let started = Instant::now();
    let drain = tokio::spawn(async move { stream.boxed().collect::<Vec<_>>().await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.drop_watches();
    tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .expect("the watch ended when dropped")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    let _ = std::fs::remove_dir_all(&dir);
}

/// `hack/cluster.sh start` with one bad option: its exit code and stderr, and whether it
/// started anything.
fn start_with(option: &str, value: &str) -> (Option<i32>, String, bool) {
    let dir = std::env::temp_dir().join(format!("durablejob-cluster-bad{option}-{}", std::process::id()));
    let out = std::process::Command::new(testsupport::repo_root().join("hack/cluster.sh"))
        .arg("start")
        .arg(&dir)
        .args([option, value])
        .output()
        .unwrap();
    let started = dir.join("pids").exists();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr, started)
}

#[test]
fn a_bad_option_is_refused_by_name_before_anything_starts() {
    for (option, value, says) in [
        ("--controller-qps", "fast", "'fast'"),
        (
            "--crds",
            "/nonexistent/crds",
            "'/nonexistent/crds' is not a folder",
        ),
    ] {
        let (code, stderr, started) = start_with(option, value);
        assert_eq!(code, Some(2), "{option}: {stderr}");
        assert!(
            stderr.contains(option) && stderr.contains(says),
            "{option}: {stderr}"
        );
        assert!(!started, "{option}: nothing was started");
    }
}

/// The garbage collector learns of a CRD installed after it started only at its 30-second
/// discovery sync, and then collects late (about 40 s in a measurement); the test cluster
/// installs the CRDs before the controller manager, so a DurableJob's dependents go with it
/// from the first second. This runs as the binary's cluster has just started.
#[tokio::test]
async fn what_a_durablejob_owns_is_collected_at_once_even_right_after_the_cluster_started() {
    let cluster = Cluster::shared();
    let ns = cluster.namespace("gc-owner").unwrap();
    let kubectl = cluster.kubectl();
    let dj = json!({"apiVersion": "durablejob.dev/v1alpha1", "kind": "DurableJob",
        "metadata": {"name": "owner", "namespace": ns.name},
        "spec": {"schedule": {"cron": ["0 3 * * *"]}, "jobTemplate": {"spec": {"template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.36"}]}}}}}});
    kubectl.ok(&["create", "-f", "-"], Some(&dj.to_string())).unwrap();
    let uid = kubectl
        .ok(
            &[
                "get",
                "durablejob",
                "owner",
                "-n",
                &ns.name,
                "-o",
                "jsonpath={.metadata.uid}",
            ],
            None,
        )
        .unwrap();
    let owned: Api<ConfigMap> = Api::namespaced(cluster.client().await.unwrap(), &ns.name);
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "owned", "ownerReferences": [
        {"apiVersion": "durablejob.dev/v1alpha1", "kind": "DurableJob", "name": "owner", "uid": uid.trim()}]}}))
    .unwrap();
    owned.create(&PostParams::default(), &cm).await.unwrap();
    kubectl
        .ok(&["delete", "durablejob", "owner", "-n", &ns.name], None)
        .unwrap();
    let deleted = Instant::now();
    while owned.get_opt("owned").await.unwrap().is_some() {
        assert!(
            deleted.elapsed() < Duration::from_secs(10),
            "the ConfigMap a deleted DurableJob owned was not collected within 10 s: does the garbage collector know DurableJobs?"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
