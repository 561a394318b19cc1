//! Part 2 of the test API server: garbage collection, simulated Job and Deployment
//! controllers, bounded watch history, initial events, many watches, fault injection.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::{apps::v1::Deployment, batch::v1::Job, core::v1::ConfigMap};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
};
use serde_json::{Value, json};
use testcluster::TestCluster;

async fn setup() -> (TestCluster, Client) {
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.client().await.unwrap();
    (cluster, client)
}

async fn eventually<T>(what: &str, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn cm(name: &str, owners: Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": owners}})).unwrap()
}

fn owner_ref(o: &ConfigMap) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "name": o.name_any(), "uid": o.uid().unwrap(), "blockOwnerDeletion": true})
}

#[tokio::test]
async fn background_deletion_removes_dependents_recursively() {
    let (_c, client) = setup().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!(null)))
        .await
        .unwrap();
    let child = cms
        .create(&PostParams::default(), &cm("child", json!([owner_ref(&owner)])))
        .await
        .unwrap();
    cms.create(
        &PostParams::default(),
        &cm("grandchild", json!([owner_ref(&child)])),
    )
    .await
    .unwrap();
    let shared = cms
        .create(&PostParams::default(), &cm("other-owner", json!(null)))
        .await
        .unwrap();
    cms.create(
        &PostParams::default(),
        &cm("two-owners", json!([owner_ref(&owner), owner_ref(&shared)])),
    )
    .await
    .unwrap();
    cms.delete("owner", &DeleteParams::background()).await.unwrap();
    eventually("dependents to go", async || {
        let names: Vec<String> = cms
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .iter()
            .map(|c| c.name_any())
            .collect();
        (names == vec!["other-owner", "two-owners"]).then_some(())
    })
    .await;
    let survivor = cms.get("two-owners").await.unwrap();
    assert_eq!(
        survivor.owner_references().len(),
        1,
        "the dangling reference is dropped, the live owner kept"
    );
}

#[tokio::test]
async fn foreground_deletion_waits_for_dependents_and_orphan_keeps_them() {
    let (_c, client) = setup().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let owner = cms
        .create(&PostParams::default(), &cm("fg", json!(null)))
        .await
        .unwrap();
    let mut held = cm("fg-child", json!([owner_ref(&owner)]));
    held.metadata.finalizers = Some(vec!["example.dev/hold".into()]);
    cms.create(&PostParams::default(), &held).await.unwrap();
    cms.delete("fg", &DeleteParams::foreground()).await.unwrap();
    let o = cms.get("fg").await.unwrap();
    assert!(
        o.metadata.deletion_timestamp.is_some() && o.finalizers().contains(&"foregroundDeletion".to_string())
    );
    eventually("the dependent to be deleting", async || {
        cms.get("fg-child")
            .await
            .ok()?
            .metadata
            .deletion_timestamp
            .map(|_| ())
    })
    .await;
    assert!(
        cms.get_opt("fg").await.unwrap().is_some(),
        "the owner waits for its dependent"
    );
    cms.patch(
        "fg-child",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .unwrap();
    eventually("the owner to go after its dependent", async || {
        cms.get_opt("fg").await.ok()?.is_none().then_some(())
    })
    .await;

    let owner = cms
        .create(&PostParams::default(), &cm("orphaner", json!(null)))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &cm("orphan", json!([owner_ref(&owner)])))
        .await
        .unwrap();
    cms.delete("orphaner", &DeleteParams::orphan()).await.unwrap();
    eventually("the owner to go", async || {
        cms.get_opt("orphaner").await.ok()?.is_none().then_some(())
    })
    .await;
    let orphan = cms.get("orphan").await.unwrap();
    assert!(
        orphan.owner_references().is_empty(),
        "orphaned dependents lose the reference and stay"
    );
}

fn job(name: &str, annotations: Value, owner_uid: &str) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations,
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}]},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap()
}

fn job_state(j: &Job) -> Option<&'static str> {
    let conds = j.status.as_ref()?.conditions.as_ref()?;
    if conds.iter().any(|c| c.type_ == "Complete" && c.status == "True") {
        Some("Complete")
    } else if conds.iter().any(|c| c.type_ == "Failed" && c.status == "True") {
        Some("Failed")
    } else {
        None
    }
}

#[tokio::test]
async fn jobs_run_and_end_as_their_annotations_say_per_owner() {
    let (_c, client) = setup().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!(null)))
        .await
        .unwrap();
    let uid = owner.uid().unwrap();
    let jobs: Api<Job> = Api::namespaced(client, "default");
    let ann = json!({"test.durablejob.dev/outcomes": "fail,fail,succeed", "test.durablejob.dev/duration-ms": "100"});
    let mut results = vec![];
    for i in 0..4 {
        let created = jobs
            .create(&PostParams::default(), &job(&format!("j{i}"), ann.clone(), &uid))
            .await
            .unwrap();
        assert!(
            created.spec.as_ref().unwrap().selector.is_some(),
            "the server generates the selector"
        );
        let name = format!("j{i}");
        eventually("startTime", async || {
            jobs.get(&name).await.ok()?.status?.start_time.map(|_| ())
        })
        .await;
        let done = eventually("the job to finish", async || {
            let j = jobs.get(&name).await.ok()?;
            job_state(&j).map(String::from)
        })
        .await;
        results.push(done);
    }
    assert_eq!(
        results,
        vec!["Failed", "Failed", "Complete", "Complete"],
        "n-th job takes the n-th outcome; the last repeats"
    );
    let other = cms
        .create(&PostParams::default(), &cm("other", json!(null)))
        .await
        .unwrap();
    jobs.create(
        &PostParams::default(),
        &job("plain", json!(null), &other.uid().unwrap()),
    )
    .await
    .unwrap();
    eventually("an unannotated job to succeed", async || {
        (job_state(&jobs.get("plain").await.ok()?) == Some("Complete")).then_some(())
    })
    .await;
    let failed = jobs.get("j0").await.unwrap();
    assert_eq!(failed.status.unwrap().failed, Some(1));
}

#[tokio::test]
async fn a_job_past_its_active_deadline_fails_with_deadline_exceeded() {
    let (_c, client) = setup().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!(null)))
        .await
        .unwrap();
    let jobs: Api<Job> = Api::namespaced(client, "default");
    let mut j = job(
        "slow",
        json!({"test.durablejob.dev/duration-ms": "60000"}),
        &owner.uid().unwrap(),
    );
    j.spec.as_mut().unwrap().active_deadline_seconds = Some(1);
    jobs.create(&PostParams::default(), &j).await.unwrap();
    let reason = eventually("the deadline", async || {
        let j = jobs.get("slow").await.ok()?;
        let c = j.status?.conditions?.into_iter().find(|c| c.type_ == "Failed")?;
        c.reason
    })
    .await;
    assert_eq!(reason, "DeadlineExceeded");
}

fn deployment(name: &str, image: &str, annotations: Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": [{"name": "c", "image": image}]}}}
    }))
    .unwrap()
}

#[tokio::test]
async fn deployments_become_available_and_roll_on_change() {
    let (_c, client) = setup().await;
    let deps: Api<Deployment> = Api::namespaced(client, "default");
    deps.create(&PostParams::default(), &deployment("w", "w:1", json!(null)))
        .await
        .unwrap();
    let available = |d: &Deployment| {
        let s = d.status.as_ref()?;
        let cond = s
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_.as_deref() == Some("Available"))?;
        Some((
            s.observed_generation?,
            s.ready_replicas.unwrap_or(0),
            cond.status.clone().unwrap_or_default(),
        ))
    };
    eventually("available", async || {
        (available(&deps.get("w").await.ok()?)? == (1, 2, "True".to_string())).then_some(())
    })
    .await;
    deps.patch(
        "w",
        &PatchParams::default(),
        &Patch::Strategic(
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "w:2"}]}}}}),
        ),
    )
    .await
    .unwrap();
    eventually("the new generation to be available", async || {
        (available(&deps.get("w").await.ok()?)? == (2, 2, "True".to_string())).then_some(())
    })
    .await;
    deps.create(
        &PostParams::default(),
        &deployment(
            "broken",
            "b:1",
            json!({"test.durablejob.dev/unavailable": "true"}),
        ),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let b = deps.get("broken").await.unwrap();
    assert_eq!(available(&b), Some((1, 0, "False".to_string())));
}

#[tokio::test]
async fn a_compacted_resource_version_gets_410_gone() {
    let cluster = TestCluster::start_with(testcluster::Config {
        watch_history: 5,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = cluster.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let first = cms
        .create(&PostParams::default(), &cm("c0", json!(null)))
        .await
        .unwrap();
    for i in 1..10 {
        cms.create(&PostParams::default(), &cm(&format!("c{i}"), json!(null)))
            .await
            .unwrap();
    }
    let mut stream = cms
        .watch(&WatchParams::default(), &first.resource_version().unwrap())
        .await
        .unwrap()
        .boxed();
    match stream.try_next().await.unwrap() {
        Some(WatchEvent::Error(e)) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
    // a recent version still resumes
    let latest = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = cms.watch(&WatchParams::default(), &latest).await.unwrap().boxed();
    cms.create(&PostParams::default(), &cm("after", json!(null)))
        .await
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        Some(WatchEvent::Added(c)) => assert_eq!(c.name_any(), "after"),
        other => panic!("{other:?}"),
    }
    // forgetting the history makes every earlier version too old, until a fresh list
    let before = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    cluster.forget_watch_history();
    let mut stream = cms.watch(&WatchParams::default(), &before).await.unwrap().boxed();
    assert!(matches!(stream.try_next().await.unwrap(), Some(WatchEvent::Error(e)) if e.code == 410));
    let fresh = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = cms.watch(&WatchParams::default(), &fresh).await.unwrap().boxed();
    cms.create(&PostParams::default(), &cm("later", json!(null)))
        .await
        .unwrap();
    assert!(matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap(),
        Some(WatchEvent::Added(_))
    ));
}

#[tokio::test]
async fn send_initial_events_ends_with_the_initial_events_end_bookmark() {
    let (_c, client) = setup().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cms.create(&PostParams::default(), &cm("a", json!(null)))
        .await
        .unwrap();
    let mut stream = cms
        .watch(&WatchParams::streaming_lists(), "")
        .await
        .unwrap()
        .boxed();
    let mut seen = vec![];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.try_next())
            .await
            .unwrap()
            .unwrap()
        {
            Some(WatchEvent::Added(c)) => seen.push(c.name_any()),
            Some(WatchEvent::Bookmark(b)) => {
                assert_eq!(
                    b.metadata
                        .annotations
                        .get("k8s.io/initial-events-end")
                        .map(String::as_str),
                    Some("true")
                );
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(seen.contains(&"a".to_string()));
}

#[tokio::test]
async fn two_hundred_watches_each_see_a_change() {
    let (_c, client) = setup().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut streams = vec![];
    for _ in 0..200 {
        streams.push(cms.watch(&WatchParams::default(), &rv).await.unwrap().boxed());
    }
    cms.create(&PostParams::default(), &cm("broadcast", json!(null)))
        .await
        .unwrap();
    let got = futures::future::join_all(streams.iter_mut().map(|s| async move {
        matches!(
            tokio::time::timeout(Duration::from_secs(10), s.try_next()).await,
            Ok(Ok(Some(WatchEvent::Added(_))))
        )
    }))
    .await;
    assert_eq!(got.iter().filter(|ok| **ok).count(), 200);
}

#[tokio::test]
async fn injected_faults_fail_requests_add_latency_and_drop_watches() {
    let (cluster, client) = setup().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cluster
        .faults()
        .fail_next(Some("list"), Some("configmaps"), 500, 2);
    for _ in 0..2 {
        let Err(kube::Error::Api(s)) = cms.list(&ListParams::default()).await else {
            panic!("expected a failure")
        };
        assert_eq!(s.code, 500);
    }
    // kube-rs retries 503s by itself: two injected 503s are absorbed
    cluster
        .faults()
        .fail_next(Some("list"), Some("configmaps"), 503, 2);
    assert!(cms.list(&ListParams::default()).await.is_ok());
    assert_eq!(cluster.requests().count(|r| r.verb == "list" && r.code == 503), 2);
    assert!(
        cms.list(&ListParams::default()).await.is_ok(),
        "only the next two fail"
    );

    cluster.faults().set_latency(Duration::from_millis(150));
    let t = std::time::Instant::now();
    cms.list(&ListParams::default()).await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(150));
    cluster.faults().set_latency(Duration::ZERO);

    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = cms.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    cluster.faults().drop_watches();
    let end = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap()
        .unwrap();
    assert!(end.is_none(), "the stream ended: {end:?}");
}

#[tokio::test]
async fn the_admin_endpoint_injects_faults_too() {
    let (cluster, client) = setup().await;
    let http = client.clone();
    let req = http::Request::post("/testcluster/faults")
        .header("content-type", "application/json")
        .body(
            serde_json::to_vec(
                &json!({"failNext": {"verb": "get", "path": "configmaps/x", "code": 500, "count": 1}}),
            )
            .unwrap(),
        )
        .unwrap();
    let resp: Value = http.request(req).await.unwrap();
    assert_eq!(resp["status"], "ok");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("x", json!(null)))
        .await
        .unwrap();
    let Err(kube::Error::Api(s)) = cms.get("x").await else {
        panic!()
    };
    assert_eq!(s.code, 500);
    assert!(cms.get("x").await.is_ok());
    let bad = http::Request::post("/testcluster/faults")
        .header("content-type", "application/json")
        .body(b"{\"failnext\": 1}".to_vec())
        .unwrap();
    let Err(kube::Error::Api(s)) = http.request::<Value>(bad).await else {
        panic!()
    };
    assert_eq!(
        s.code, 400,
        "a malformed fault request is refused with what to send"
    );
    let _ = cluster;
}

#[tokio::test]
async fn a_restart_keeps_objects_and_clients_reconnect() {
    let (cluster, client) = setup().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("kept", json!(null)))
        .await
        .unwrap();
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = cms.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    cluster.restart(Duration::from_millis(300)).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap();
    assert!(
        !matches!(end, Ok(Some(_))),
        "the watch ended with the restart: {end:?}"
    );
    let c = eventually("the server to answer again", async || cms.get("kept").await.ok()).await;
    assert_eq!(c.name_any(), "kept");

    // the admin endpoint restarts it too, after answering
    let rv = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let mut stream = cms.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    let req = http::Request::post("/testcluster/faults")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&json!({"restartMs": 200})).unwrap())
        .unwrap();
    let resp: Value = client.request(req).await.unwrap();
    assert_eq!(resp["status"], "ok");
    let end = tokio::time::timeout(Duration::from_secs(5), stream.try_next())
        .await
        .unwrap();
    assert!(
        !matches!(end, Ok(Some(_))),
        "the watch ended with the admin restart: {end:?}"
    );
    eventually("the server to answer after the admin restart", async || {
        cms.get("kept").await.ok()
    })
    .await;
}
