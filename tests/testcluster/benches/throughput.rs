//! Throughput of the test API server: object writes per second with and without 200 open
//! watches, and whether every watch saw every write. Prints figures; asserts nothing about
//! speed (that belongs here, not in timed tests).
//!
//! `cargo bench -p testcluster --bench throughput`

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{
    Api,
    api::{ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
};
use serde_json::json;
use testcluster::TestCluster;

const WRITERS: usize = 16;

/// Runs `op(0..total)` on WRITERS concurrent tasks; returns operations per second.
async fn concurrently<F, Fut>(total: usize, op: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|_| {
            let (next, op) = (next.clone(), op.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        break;
                    }
                    op(i).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

async fn writes(cms: &Api<ConfigMap>, prefix: &str, total: usize) -> f64 {
    let (cms, prefix) = (cms.clone(), prefix.to_string());
    concurrently(total, move |i| {
        let (cms, prefix) = (cms.clone(), prefix.clone());
        async move {
            let cm: ConfigMap = serde_json::from_value(json!({
                "metadata": {"name": format!("{prefix}-{i}"), "labels": {"bench": prefix}},
                "data": {"i": i.to_string()}
            }))
            .unwrap();
            cms.create(&PostParams::default(), &cm).await.expect("create");
        }
    })
    .await
}

async fn patches(cms: &Api<ConfigMap>, prefix: &str, total: usize) -> f64 {
    let (cms, prefix) = (cms.clone(), prefix.to_string());
    concurrently(total, move |i| {
        let (cms, prefix) = (cms.clone(), prefix.clone());
        async move {
            let patch = Patch::Merge(json!({"data": {"patched": i.to_string()}}));
            cms.patch(&format!("{prefix}-{i}"), &PatchParams::default(), &patch)
                .await
                .expect("patch");
        }
    })
    .await
}

#[tokio::main]
async fn main() {
    let cluster = TestCluster::start_with(testcluster::Config {
        watch_history: 20_000,
        ..Default::default()
    })
    .await
    .unwrap();
    let client = cluster.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let n = 3000;
    let create_rate = writes(&cms, "plain", n).await;
    let patch_rate = patches(&cms, "plain", n).await;
    println!(
        "no watches:   {create_rate:>7.0} creates/s, {patch_rate:>7.0} merge patches/s ({WRITERS} concurrent writers, {n} objects)"
    );

    let watches = 200;
    let rv = cms
        .list(&ListParams::default().limit(1))
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    let received = Arc::new(AtomicUsize::new(0));
    let mut handles = vec![];
    for _ in 0..watches {
        let mut stream = cms
            .watch(&WatchParams::default().labels("bench=watched"), &rv)
            .await
            .unwrap()
            .boxed();
        let received = received.clone();
        handles.push(tokio::spawn(async move {
            while let Ok(Some(ev)) = stream.try_next().await {
                if matches!(ev, WatchEvent::Added(_)) {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let m = 2000;
    let watched_rate = writes(&cms, "watched", m).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while received.load(Ordering::Relaxed) < watches * m && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = received.load(Ordering::Relaxed);
    println!(
        "{watches} watches: {watched_rate:>7.0} creates/s while watched; {delivered} of {} events delivered ({:.1}%)",
        watches * m,
        100.0 * delivered as f64 / (watches * m) as f64
    );
    for h in handles {
        h.abort();
    }
}
