//! Issue 13's fault bar: the operator SIGKILLed mid-convergence, and bad DurableJobs among good
//! ones. Counts come from Temporal (schedule list), the operator's metrics and its Events.

use std::{sync::Arc, time::Duration};

use anyhow::ensure;
use durablejob::api::DurableJob;
use kube::api::{ListParams, PostParams};
use serde_json::{Value, json};

use crate::Shared;
use crate::env::{Env, manifest, wait_for};
use crate::temporal;

scenarios!(
    an_operator_killed_mid_convergence_leaves_exactly_one_schedule_each_and_adopts_none,
    bad_durablejobs_among_good_ones_are_reported_by_field_and_never_reach_temporal,
);

fn quiet() -> Value {
    json!({"intervals": [{"every": "24h", "offset": "7h"}]})
}

async fn ready_count(env: &Env) -> anyhow::Result<usize> {
    Ok(env
        .djs
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|d| {
            d.status.as_ref().is_some_and(|s| {
                s.observed_generation == d.metadata.generation
                    && s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
            })
        })
        .count())
}

async fn an_operator_killed_mid_convergence_leaves_exactly_one_schedule_each_and_adopts_none(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    const N: usize = 150;
    let mut env = Env::new(&shared, "killed", &[]).await?;
    let creates = futures::future::join_all((0..N).map(|i| {
        let dj: DurableJob =
            serde_json::from_value(manifest(&format!("dj-{i:02}"), json!({"schedule": quiet()})))
                .expect("a DurableJob");
        let djs = env.djs.clone();
        async move { djs.create(&PostParams::default(), &dj).await.map(|_| ()) }
    }))
    .await;
    for c in creates {
        c?;
    }
    // let it get some way, then kill it as a node failure would
    wait_for("a first schedule", Duration::from_secs(30), || async {
        (ready_count(&env).await.ok()? > 0).then_some(())
    })
    .await?;
    env.operator.kill();
    let before = ready_count(&env).await?;
    ensure!(
        before < N,
        "the kill came after convergence ({before} Ready); nothing was tested"
    );
    env.operator.resume()?;
    wait_for(&format!("all {N} Ready"), Duration::from_secs(90), || async {
        (ready_count(&env).await.ok()? == N).then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- operator ---\n{}", env.operator.log_tail(20)))?;
    let ids = temporal::schedule_ids(&env.temporal, &env.namespace)?;
    ensure!(ids.len() == N, "exactly {N} schedules, not {}", ids.len());
    let mut adopted = 0;
    for i in 0..N {
        adopted += env
            .events(&format!("dj-{i:02}"))
            .await
            .iter()
            .filter(|e| e.starts_with("ScheduleAdopted:"))
            .count();
    }
    ensure!(
        adopted == 0,
        "{adopted} ScheduleAdopted Events: the operator's own schedules were not recognised ({before} were Ready at the kill)"
    );
    Ok(())
}

async fn bad_durablejobs_among_good_ones_are_reported_by_field_and_never_reach_temporal(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let env = Env::new(&shared, "bad-good", &[]).await?;
    let pod = |spec: Value| json!({"spec": {"backoffLimit": 0, "template": {"spec": spec}}});
    let bad: Vec<(Value, &str)> = vec![
        (
            pod(json!({"restartPolicy": "Never", "containers": []})),
            "spec.jobTemplate.spec.template.spec.containers",
        ),
        (
            pod(json!({"restartPolicy": "Always", "containers": [{"name": "c", "image": "busybox"}]})),
            "restartPolicy",
        ),
        (
            pod(
                json!({"restartPolicy": "Never", "containers": [{"name": "Not_A_Label", "image": "busybox"}]}),
            ),
            "spec.jobTemplate",
        ),
        (
            json!({"spec": {"backoffLimit": "many", "template": {}}}),
            "spec.jobTemplate",
        ),
        (json!({"metadata": {"labels": "not-a-map"}}), "spec.jobTemplate"),
    ];
    const GOOD: usize = 30;
    const BAD: usize = 30;
    for i in 0..GOOD {
        env.create(manifest(&format!("good-{i:02}"), json!({"schedule": quiet()})))
            .await?;
    }
    for i in 0..BAD {
        let (template, _) = &bad[i % bad.len()];
        env.create(manifest(
            &format!("bad-{i:02}"),
            json!({"schedule": quiet(), "jobTemplate": template}),
        ))
        .await?;
    }
    wait_for(
        "every good one Ready and every bad one Ready=False",
        Duration::from_secs(90),
        || async {
            let list = env.djs.list(&ListParams::default()).await.ok()?;
            let settled = list.items.iter().all(|d| {
                d.status.as_ref().is_some_and(|s| {
                    s.observed_generation == d.metadata.generation
                        && s.conditions
                            .iter()
                            .any(|c| c.type_ == "Ready" && c.status != "Unknown")
                })
            });
            (settled && list.items.len() == GOOD + BAD).then_some(())
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- operator ---\n{}", env.operator.log_tail(20)))?;
    let list = env.djs.list(&ListParams::default()).await?;
    for d in &list.items {
        let name = d.metadata.name.clone().unwrap_or_default();
        let ready = d
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .cloned()
            .expect("a Ready condition");
        if name.starts_with("good-") {
            ensure!(ready.status == "True", "{name}: {ready:?}");
        } else {
            let i: usize = name.trim_start_matches("bad-").parse()?;
            let (_, field) = &bad[i % bad.len()];
            ensure!(
                ready.status == "False" && ready.reason == "InvalidSpec" && ready.message.contains(field),
                "{name} names {field}: {ready:?}"
            );
        }
    }
    let mut ids = temporal::schedule_ids(&env.temporal, &env.namespace)?;
    ids.sort();
    ensure!(
        ids.len() == GOOD && ids.iter().all(|id| id.contains("/good-")),
        "only the good ones reached Temporal: {ids:?}"
    );
    // no retry loop: an invalid spec waits for a change
    let reconciles = || env.operator.reconciles();
    let settled = reconciles().await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let later = reconciles().await;
    ensure!(
        later - settled <= 2.0,
        "{} reconciles in 10 s with nothing changing: a retry loop",
        later - settled
    );
    Ok(())
}
