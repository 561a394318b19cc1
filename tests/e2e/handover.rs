//! Issue 6: a live CronJob handed over to a DurableJob in the cluster, and back, with no slot
//! run twice and none skipped.

use std::{collections::BTreeMap, future::Future, pin::Pin, sync::Arc, time::Duration};

use anyhow::ensure;
use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use k8s_openapi::api::batch::v1::CronJob;
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::env::{Env, condition, wait_for};
use crate::operator::Runner;
use crate::temporal::{self, payload};
use crate::{Scenario, Shared};

pub const SCENARIOS: &[(&str, Scenario)] = &[(
    "a_live_cronjob_is_handed_over_without_gap_or_double_run_and_rolled_back",
    |s: Arc<Shared>| -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> { Box::pin(handover(s)) },
)];

fn minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::minutes(1)).unwrap()
}

/// Scheduled slots of the runs Temporal started for a schedule, with how often each ran.
fn slots(env: &Env, id: &str) -> anyhow::Result<BTreeMap<DateTime<Utc>, usize>> {
    let list = temporal::cli_json(
        &env.temporal,
        &[
            "workflow",
            "list",
            "--namespace",
            &env.namespace,
            "--query",
            &format!("TemporalScheduledById = '{id}'"),
        ],
    )?;
    let mut out = BTreeMap::new();
    for w in list.as_array().into_iter().flatten() {
        let slot = payload(&w["searchAttributes"]["indexedFields"]["TemporalScheduledStartTime"]);
        let t = slot
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&Utc));
        if let Some(t) = t {
            *out.entry(t).or_insert(0) += 1;
        }
    }
    Ok(out)
}

async fn handover(shared: Arc<Shared>) -> anyhow::Result<()> {
    let env = Env::new(&shared, "handover", &[]).await?;
    let _runner = Runner::start(
        &shared.dir.join("handover"),
        env.cluster.kubeconfig(),
        &env.temporal,
        &env.namespace,
    )?;
    let cronjobs: Api<CronJob> = Api::namespaced(env.client.clone(), "default");
    let cj: CronJob = serde_json::from_value(json!({
        "metadata": {"name": "every-minute", "labels": {"team": "ops"}},
        "spec": {"schedule": "* * * * *", "timeZone": "UTC", "startingDeadlineSeconds": 120, "jobTemplate": {
            "metadata": {"annotations": {"test.durablejob.dev/duration-ms": "100"}},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.36"}]}}}}}
    }))?;
    cronjobs.create(&PostParams::default(), &cj).await?;
    // the CronJob controller ran every slot up to T0, two minutes ago (written as it would)
    let t0 = minute(Utc::now()) - TimeDelta::minutes(2);
    let status = json!({"apiVersion": "batch/v1", "kind": "CronJob", "status": {"lastScheduleTime": t0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}});
    cronjobs
        .patch_status(
            "every-minute",
            &PatchParams::apply("kube-controller-manager").force(),
            &Patch::Apply(&status),
        )
        .await?;

    cronjobs
        .patch(
            "every-minute",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"durablejob.dev/migrate": "true"}}})),
        )
        .await?;
    let annotation = |cj: &CronJob, key: &str| {
        cj.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key).cloned())
            .unwrap_or_default()
    };
    let done = wait_for("the handover to finish", Duration::from_secs(60), || async {
        let c = cronjobs.get("every-minute").await.ok()?;
        (annotation(&c, "durablejob.dev/migrate-status") == "handed-over").then_some(c)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- operator ---\n{}", env.operator.log_tail(30)))?;
    ensure!(done.spec.suspend == Some(true), "the CronJob is suspended");
    let dj = env.djs.get("every-minute").await?;
    ensure!(!dj.spec.suspend, "the DurableJob runs");
    ensure!(
        dj.spec.overlap_policy == durablejob::api::OverlapPolicy::AllowAll && dj.spec.catchup_window == "2m",
        "{:?}",
        dj.spec
    );
    ensure!(
        dj.metadata
            .labels
            .as_ref()
            .is_some_and(|l| l["team"] == "ops" && l["durablejob.dev/migrated-from"] == "cronjob")
    );
    let ann = dj.metadata.annotations.clone().unwrap_or_default();
    let start = DateTime::parse_from_rfc3339(&ann["durablejob.dev/handover-start"])?.with_timezone(&Utc);
    ensure!(
        ann["durablejob.dev/handover-after"] == t0.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "{ann:?}"
    );

    // every slot after T0 up to now ran exactly once, T0 and earlier not at all
    let id = env.schedule_id("every-minute");
    let checked_until = start + TimeDelta::seconds(5);
    let seen = wait_for(
        "the backfilled runs to appear",
        Duration::from_secs(30),
        || async {
            let s = slots(&env, &id).ok()?;
            let expected: Vec<DateTime<Utc>> = (1..)
                .map(|i| t0 + TimeDelta::minutes(i))
                .take_while(|t| *t <= checked_until.min(Utc::now() - TimeDelta::seconds(3)))
                .collect();
            expected
                .iter()
                .all(|t| s.contains_key(t))
                .then_some((s, expected))
        },
    )
    .await
    .map_err(|e| {
        anyhow::anyhow!(
            "{e}: t0 {t0}, start {start}, seen {:?}\n--- operator ---\n{}",
            slots(&env, &id),
            env.operator.log_tail(15)
        )
    })?;
    let (seen, expected) = seen;
    ensure!(
        !expected.is_empty() && expected.len() >= 2,
        "slots to check: {expected:?}"
    );
    for t in &expected {
        ensure!(seen[t] == 1, "slot {t} ran {} times: {seen:?}", seen[t]);
    }
    ensure!(
        seen.keys().all(|t| *t > t0),
        "nothing at or before the CronJob's last slot ran again: {seen:?}"
    );
    ensure!(seen.values().all(|n| *n == 1), "no slot ran twice: {seen:?}");
    let s = env.wait_ready("every-minute").await?;
    ensure!(condition(&s, "Ready").is_some_and(|c| c.status == "True"));

    // and back
    cronjobs
        .patch(
            "every-minute",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"durablejob.dev/migrate": "rollback"}}})),
        )
        .await?;
    let back = wait_for("the rollback to finish", Duration::from_secs(40), || async {
        let c = cronjobs.get("every-minute").await.ok()?;
        (annotation(&c, "durablejob.dev/migrate-status") == "rolled-back").then_some(c)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n--- operator ---\n{}", env.operator.log_tail(30)))?;
    ensure!(back.spec.suspend == Some(false), "the CronJob runs again");
    let dj = env.djs.get("every-minute").await?;
    ensure!(dj.spec.suspend, "the DurableJob is suspended, not deleted");
    let last = dj.status.unwrap_or_default().last_schedule_time;
    let cron_last = back
        .status
        .and_then(|s| s.last_schedule_time)
        .map(|t| t.0.as_second());
    ensure!(
        last.map(|t| t.timestamp()) == cron_last,
        "the CronJob continues after the DurableJob's last slot: {last:?} vs {cron_last:?}"
    );
    ensure!(
        env.describe("every-minute")?
            .is_some_and(|d| d["schedule"]["state"]["paused"] == true),
        "the schedule is paused"
    );
    Ok(())
}
