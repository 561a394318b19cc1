//! Issue 6 and 9: a live CronJob handed over to a DurableJob in the cluster, and back, against
//! the real CronJob controller across real minute boundaries. Every slot runs exactly once:
//! by the CronJob before the handover, by Temporal after it, by the CronJob again after the
//! rollback. Counted from the CronJob's Jobs, the runner's Jobs and Temporal's workflow list.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use anyhow::ensure;
use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
};
use serde_json::json;

use crate::Shared;
use crate::env::{Env, condition, wait_for};
use crate::operator::Runner;
use crate::temporal::{self, payload};

scenarios!(a_live_cronjob_is_handed_over_without_gap_or_double_run_and_rolled_back);

/// The longest the scenario waits for one step: a minute boundary plus the quiet window.
const STEP: Duration = Duration::from_secs(100);

fn parse(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Slots of the runs Temporal started for a schedule, with how often each ran.
fn temporal_slots(env: &Env, id: &str) -> anyhow::Result<BTreeMap<DateTime<Utc>, usize>> {
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
        if let Some(t) = slot.as_str().and_then(parse) {
            *out.entry(t).or_insert(0) += 1;
        }
    }
    Ok(out)
}

/// Slots of the Jobs the CronJob controller made (their scheduled-timestamp annotation) and of
/// the Jobs the runner made (their scheduled-time label).
async fn job_slots(
    env: &Env,
    cronjob_uid: &str,
) -> anyhow::Result<(BTreeMap<DateTime<Utc>, usize>, BTreeMap<DateTime<Utc>, usize>)> {
    let jobs: Api<Job> = env.api();
    let (mut by_cronjob, mut by_runner) = (BTreeMap::new(), BTreeMap::new());
    for job in jobs.list(&ListParams::default()).await?.items {
        if job.owner_references().iter().any(|o| o.uid == cronjob_uid) {
            if let Some(t) = job
                .annotations()
                .get("batch.kubernetes.io/cronjob-scheduled-timestamp")
                .and_then(|t| parse(t))
            {
                *by_cronjob.entry(t).or_insert(0) += 1;
            }
        } else if let Some(t) = job
            .labels()
            .get("durablejob.dev/scheduled-time")
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|s| DateTime::from_timestamp(s, 0))
        {
            *by_runner.entry(t).or_insert(0) += 1;
        }
    }
    Ok((by_cronjob, by_runner))
}

fn annotation(cj: &CronJob, key: &str) -> String {
    cj.annotations().get(key).cloned().unwrap_or_default()
}

async fn set_migrate(cronjobs: &Api<CronJob>, value: &str) -> anyhow::Result<()> {
    cronjobs
        .patch(
            "every-minute",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"durablejob.dev/migrate": value}}})),
        )
        .await?;
    Ok(())
}

async fn a_live_cronjob_is_handed_over_without_gap_or_double_run_and_rolled_back(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let env = Env::new(&shared, "handover", &[]).await?;
    let runner = Runner::start(&env.dir, &env.runner_kubeconfig, &env.temporal, &env.namespace)?;
    let cronjobs: Api<CronJob> = env.api();
    let mut manifest = testsupport::cronjob(
        "every-minute",
        json!({"schedule": "*/1 * * * *", "timeZone": "UTC", "startingDeadlineSeconds": 120,
            "successfulJobsHistoryLimit": 20, "failedJobsHistoryLimit": 20}),
        json!({"test.durablejob.dev/duration": "2s"}),
    );
    manifest["metadata"]["labels"] = json!({"team": "ops"});
    let cj: CronJob = serde_json::from_value(manifest)?;
    let uid = cronjobs
        .create(&PostParams::default(), &cj)
        .await?
        .uid()
        .unwrap_or_default();
    let log = |e: anyhow::Error| {
        anyhow::anyhow!(
            "{e}\n--- operator ---\n{}\n--- runner ---\n{}",
            env.operator.log_tail(25),
            runner.log_tail(10)
        )
    };

    // the real CronJob controller runs its first slot at the next minute boundary
    wait_for("the CronJob's first Job", STEP, || async {
        let (c, _) = job_slots(&env, &uid).await.ok()?;
        (!c.is_empty()).then_some(())
    })
    .await?;

    set_migrate(&cronjobs, "true").await?;
    let done = wait_for("the handover to finish", STEP, || async {
        let c = cronjobs.get("every-minute").await.ok()?;
        (annotation(&c, "durablejob.dev/migrate-status") == "handed-over").then_some(c)
    })
    .await
    .map_err(log)?;
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
    let ann = dj.annotations().clone();
    let t = parse(&ann["durablejob.dev/handover-after"]);
    let (cron_before, _) = job_slots(&env, &uid).await?;
    ensure!(
        t.is_some() && t == cron_before.keys().next_back().copied(),
        "T is the CronJob's last slot, read after the suspend: {ann:?}, CronJob slots {cron_before:?}"
    );
    let t = t.expect("checked");

    // Temporal runs the next slots itself
    let id = env.schedule_id("every-minute");
    wait_for("a slot run by Temporal", STEP, || async {
        let s = temporal_slots(&env, &id).ok()?;
        (s.keys().any(|slot| *slot > t)).then_some(())
    })
    .await
    .map_err(log)?;
    ensure!(
        env.wait_ready("every-minute")
            .await
            .is_ok_and(|s| condition(&s, "Ready").is_some_and(|c| c.status == "True"))
    );

    // and back
    set_migrate(&cronjobs, "rollback").await?;
    let back = wait_for("the rollback to finish", STEP, || async {
        let c = cronjobs.get("every-minute").await.ok()?;
        (annotation(&c, "durablejob.dev/migrate-status") == "rolled-back").then_some(c)
    })
    .await
    .map_err(log)?;
    ensure!(back.spec.suspend == Some(false), "the CronJob runs again");
    let dj = env.djs.get("every-minute").await?;
    ensure!(dj.spec.suspend, "the DurableJob is suspended, not deleted");
    ensure!(
        env.describe("every-minute")?
            .is_some_and(|d| d["schedule"]["state"]["paused"] == true),
        "the schedule is paused"
    );
    let handed_back = dj.status.unwrap_or_default().last_schedule_time;
    wait_for("the CronJob to run a slot again", STEP, || async {
        let (c, _) = job_slots(&env, &uid).await.ok()?;
        c.keys().any(|slot| Some(*slot) > handed_back).then_some(())
    })
    .await
    .map_err(log)?;

    // every minute from the first slot to the last ran exactly once, on one side or the other
    tokio::time::sleep(Duration::from_secs(2)).await;
    let by_temporal = temporal_slots(&env, &id)?;
    let (by_cronjob, by_runner) = job_slots(&env, &uid).await?;
    ensure!(
        by_runner == by_temporal,
        "one runner Job per Temporal run: Jobs {by_runner:?}, runs {by_temporal:?}"
    );
    let mut all: BTreeMap<DateTime<Utc>, Vec<&str>> = BTreeMap::new();
    for (slot, n) in &by_cronjob {
        all.entry(*slot)
            .or_default()
            .extend(std::iter::repeat_n("cronjob", *n));
    }
    for (slot, n) in &by_temporal {
        all.entry(*slot)
            .or_default()
            .extend(std::iter::repeat_n("temporal", *n));
    }
    let first = *all.keys().next().expect("slots");
    let last = *all.keys().next_back().expect("slots");
    let minutes = (last - first).num_minutes();
    for i in 0..=minutes {
        let slot = first + TimeDelta::minutes(i);
        let ran = all.get(&slot).cloned().unwrap_or_default();
        ensure!(ran.len() == 1, "slot {slot} ran {ran:?}; all slots: {all:?}");
    }
    let temporal_range = (
        *by_temporal.keys().next().expect("a Temporal slot"),
        *by_temporal.keys().next_back().expect("a Temporal slot"),
    );
    ensure!(
        by_cronjob.keys().all(|s| *s <= t || *s > temporal_range.1)
            && temporal_range.0 > t
            && Some(temporal_range.1) == handed_back,
        "the CronJob ran up to T ({t}) and after the DurableJob's last slot ({handed_back:?}); Temporal in between: {all:?}"
    );
    Ok(())
}
