//! A kube-rs Controller with the finalizer helper and server-side-applied status, running
//! against the test cluster as it would against a real one.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::{Controller, controller::Action, finalizer, watcher},
};
use serde_json::json;
use testcluster::TestCluster;
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct E(String);

#[derive(Default)]
struct Seen {
    applied: Vec<String>,
    cleaned: Vec<String>,
}

#[tokio::test]
async fn a_controller_with_a_finalizer_reconciles_writes_status_and_cleans_up() {
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let seen = Arc::new(Mutex::new(Seen::default()));

    let ctx = (cms.clone(), seen.clone());
    let controller = Controller::new(cms.clone(), watcher::Config::default())
        .run(
            |cm: Arc<ConfigMap>, ctx: Arc<(Api<ConfigMap>, Arc<Mutex<Seen>>)>| async move {
                let (api, seen) = &*ctx;
                finalizer::finalizer(api, "example.dev/cleanup", cm, |event| async move {
                    match event {
                        finalizer::Event::Apply(cm) => {
                            seen.lock().await.applied.push(cm.name_any());
                            // annotate through server-side apply: a no-op the second time
                            let patch = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"annotations": {"seen": "yes"}}});
                            api.patch(&cm.name_any(), &PatchParams::apply("ctl"), &Patch::Apply(&patch))
                                .await
                                .map_err(|e| E(e.to_string()))?;
                            Ok::<_, E>(Action::requeue(Duration::from_secs(300)))
                        }
                        finalizer::Event::Cleanup(cm) => {
                            seen.lock().await.cleaned.push(cm.name_any());
                            Ok(Action::await_change())
                        }
                    }
                })
                .await
                .map_err(|e| E(e.to_string()))
            },
            |_, _, _| Action::requeue(Duration::from_secs(1)),
            Arc::new(ctx),
        )
        .for_each(|_| async {});
    let handle = tokio::spawn(controller);

    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "one"}})).unwrap(),
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let cm = cms.get("one").await.unwrap();
        if cm.annotations().get("seen").map(String::as_str) == Some("yes")
            && cm.finalizers() == ["example.dev/cleanup"]
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "controller never annotated: {cm:?} {:#?}",
            cluster
                .requests()
                .all()
                .iter()
                .map(|r| format!("{} {} {}", r.method, r.path, r.code))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cms.delete("one", &DeleteParams::default()).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cms.get_opt("one").await.unwrap().is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "finalizer was never removed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen.lock().await.cleaned, vec!["one"]);
    handle.abort();
}

#[tokio::test]
async fn a_controller_recovers_from_dropped_watches_and_forced_410s() {
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    let controller = Controller::new(cms.clone(), watcher::Config::default())
        .run(
            |cm: Arc<ConfigMap>, seen: Arc<Arc<Mutex<Seen>>>| async move {
                let mut s = seen.lock().await;
                if !s.applied.contains(&cm.name_any()) {
                    s.applied.push(cm.name_any());
                }
                Ok::<_, E>(Action::await_change())
            },
            |_, _, _| Action::requeue(Duration::from_millis(200)),
            Arc::new(s2),
        )
        .for_each(|_| async {});
    let handle = tokio::spawn(controller);
    let wait_for = |name: &'static str| {
        let seen = seen.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
            while !seen.lock().await.applied.iter().any(|n| n == name) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{name} was never reconciled"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let make = |name: &str| serde_json::from_value::<ConfigMap>(json!({"metadata": {"name": name}})).unwrap();
    cms.create(&PostParams::default(), &make("before")).await.unwrap();
    wait_for("before").await;

    // the watch is cut: the controller re-watches from its last version
    cluster.faults().drop_watches();
    cms.create(&PostParams::default(), &make("after-drop"))
        .await
        .unwrap();
    wait_for("after-drop").await;

    // history forgotten and the watch cut: the resume gets 410 and the controller relists
    cluster.forget_watch_history();
    cluster.faults().drop_watches();
    cms.create(&PostParams::default(), &make("after-410"))
        .await
        .unwrap();
    wait_for("after-410").await;
    assert!(
        cluster
            .requests()
            .count(|r| r.verb == "list" && r.resource == "configmaps")
            >= 2,
        "the 410 made it list again: {:?}",
        cluster.requests().summary()
    );
    handle.abort();
}
