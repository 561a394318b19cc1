//! In-cluster handover of live CronJobs to DurableJobs (and back), driven by the
//! `durablejob.dev/migrate` annotation on the CronJob. The steps are decided in [`plan`]; this
//! module does the writes.

pub mod plan;
pub mod quiet;

use std::{sync::Arc, time::Duration};

use chrono::{SecondsFormat, Utc};
use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::{
    Api, Resource, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    runtime::{Controller, controller::Action, events::EventType, watcher},
};
use serde_json::{Value, json};
use tracing::{info, warn};

use self::plan::{
    BOUNDARY, CRONJOB_SCHEDULED, CronJobRuns, MIGRATE, MIGRATE_STATUS, MIGRATED_FROM, PHASE, START,
    SUSPEND_BEFORE, SUSPENDED_AT, Step,
};
use crate::api::DurableJob;
use crate::controller::build::schedule::ScheduleLocation;
use crate::controller::io::{Notice, kube as k8s};
use crate::controller::{Context, Error, reconcile::FIELD_MANAGER};
use crate::migrate::convert::{self, Options};
use crate::reason::Reason;
use crate::temporal::Schedules;

fn rfc3339(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

async fn event<S: Schedules, K: Resource<DynamicType = ()>>(
    ctx: &Context<S>,
    obj: &K,
    type_: EventType,
    reason: Reason,
    note: String,
) {
    let notice = Notice {
        type_,
        reason,
        action: "Handover",
        note,
    };
    k8s::publish(ctx, obj, &notice).await;
}

async fn annotate_cronjob(api: &Api<CronJob>, name: &str, values: Value) -> Result<(), Error> {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": values}})),
    )
    .await
    .map_err(Error::Kube)
    .map(|_| ())
}

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(format!("{FIELD_MANAGER}-handover")),
        ..Default::default()
    }
}

/// Changes DurableJob fields the handover owns (the operator created this DurableJob, so it may).
async fn update_dj(api: &Api<DurableJob>, name: &str, patch: Value) -> Result<DurableJob, Error> {
    api.patch(name, &params(), &Patch::Merge(patch))
        .await
        .map_err(Error::Kube)
}

/// The slots of the CronJob's own Jobs and those still running (its Jobs are those it controls).
async fn cronjob_runs<S: Schedules>(
    ctx: &Context<S>,
    cj: &CronJob,
    namespace: &str,
) -> Result<CronJobRuns, Error> {
    let uid = cj.uid().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    let mut runs = CronJobRuns::default();
    for job in jobs
        .list(&ListParams::default())
        .await
        .map_err(Error::Kube)?
        .items
    {
        if !job.owner_references().iter().any(|o| o.uid == uid) {
            continue;
        }
        let slot = job
            .annotations()
            .get(CRONJOB_SCHEDULED)
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc));
        runs.last_scheduled = runs.last_scheduled.max(slot);
        let finished = job
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
            });
        if !finished {
            runs.active.push(job.name_any());
        }
    }
    runs.active.sort();
    Ok(runs)
}

/// One reconcile of one CronJob.
pub async fn reconcile<S: Schedules>(cj: Arc<CronJob>, ctx: Arc<Context<S>>) -> Result<Action, Error> {
    let namespace = cj.namespace().ok_or(Error::NotNamespaced)?;
    let name = cj.name_any();
    if !cj.annotations().contains_key(MIGRATE) {
        return Ok(Action::await_change());
    }
    let cronjobs: Api<CronJob> = Api::namespaced(ctx.client.clone(), &namespace);
    let djs: Api<DurableJob> = Api::namespaced(ctx.client.clone(), &namespace);
    let value = serde_json::to_value(&*cj).expect("a CronJob serializes");
    let dj = djs.get_opt(&name).await.map_err(Error::Kube)?;
    // the CronJob's Jobs matter only while the handover is under way
    let finished = matches!(
        cj.annotations().get(MIGRATE_STATUS).map(String::as_str),
        Some("handed-over" | "rolled-back")
    );
    let runs = if finished {
        CronJobRuns::default()
    } else {
        cronjob_runs(&ctx, &cj, &namespace).await?
    };
    let step = plan::plan(&value, dj.as_ref(), &runs, Utc::now());
    match step {
        Step::Nothing => Ok(Action::await_change()),
        Step::Wait { why, retry } => {
            info!(cronjob = %name, "handover waits for {why}");
            Ok(Action::requeue(retry.to_std().unwrap_or(Duration::from_secs(1))))
        }
        Step::Refuse(message) => {
            if plan_status(&value) != Some(format!("error: {message}")) {
                annotate_cronjob(
                    &cronjobs,
                    &name,
                    json!({MIGRATE_STATUS: format!("error: {message}")}),
                )
                .await?;
                event(&ctx, &*cj, EventType::Warning, Reason::HandoverRefused, message).await;
            }
            Ok(Action::await_change())
        }
        Step::CreateDurableJob => {
            let opts = Options {
                default_time_zone: ctx.settings.handover_time_zone.clone(),
                ..Options::default()
            };
            let mut source = value.clone();
            source["apiVersion"] = json!("batch/v1");
            source["kind"] = json!("CronJob");
            let (mut manifest, _) = match convert::convert(&source, &opts) {
                Ok(m) => m,
                Err(e) => {
                    let message = format!("cannot convert the CronJob: {e}");
                    annotate_cronjob(
                        &cronjobs,
                        &name,
                        json!({MIGRATE_STATUS: format!("error: {message}")}),
                    )
                    .await?;
                    event(&ctx, &*cj, EventType::Warning, Reason::HandoverRefused, message).await;
                    return Ok(Action::await_change());
                }
            };
            manifest["metadata"]["labels"][MIGRATED_FROM] = json!("cronjob");
            manifest["metadata"]["annotations"][PHASE] = json!("paused");
            manifest["spec"]["suspend"] = json!(true);
            let dj: DurableJob =
                serde_json::from_value(manifest).map_err(|e| Error::Invalid(e.to_string()))?;
            let pp = kube::api::PostParams {
                field_manager: Some(format!("{FIELD_MANAGER}-handover")),
                ..Default::default()
            };
            let created = djs.create(&pp, &dj).await.map_err(Error::Kube)?;
            event(
                &ctx,
                &*cj,
                EventType::Normal,
                Reason::HandoverStarted,
                format!("Created DurableJob {name} with its schedule paused"),
            )
            .await;
            event(
                &ctx,
                &created,
                EventType::Normal,
                Reason::HandoverStarted,
                format!("Created from CronJob {name}; paused until the CronJob is suspended"),
            )
            .await;
            Ok(Action::requeue(Duration::from_secs(1)))
        }
        Step::SuspendCronJob { was_suspended } => {
            cronjobs
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"annotations": {SUSPEND_BEFORE: was_suspended.to_string(), SUSPENDED_AT: rfc3339(Utc::now()), MIGRATE_STATUS: "suspended"}}, "spec": {"suspend": true}})),
                )
                .await
                .map_err(Error::Kube)?;
            event(
                &ctx,
                &*cj,
                EventType::Normal,
                Reason::HandoverSuspended,
                format!("Suspended: DurableJob {name} takes over"),
            )
            .await;
            Ok(Action::requeue(Duration::from_millis(500)))
        }
        Step::Unpause {
            after,
            keep_suspended,
        } => {
            let active = &runs.active;
            let dj = update_dj(
                &djs,
                &name,
                json!({
                    "metadata": {"annotations": {PHASE: "unpaused", BOUNDARY: after.map(rfc3339).unwrap_or_default()}},
                    "spec": {"suspend": keep_suspended},
                }),
            )
            .await?;
            let mut note = format!(
                "Unpaused; the CronJob's last slot was {}",
                after.map(rfc3339).unwrap_or_else(|| "none".into())
            );
            if !active.is_empty() {
                note.push_str(&format!(
                    "; the CronJob's Job(s) {} are still running beside it (overlap policy AllowAll)",
                    active.join(", ")
                ));
            }
            event(&ctx, &dj, EventType::Normal, Reason::HandoverUnpaused, note).await;
            Ok(Action::requeue(Duration::from_secs(1)))
        }
        Step::FindFirstOwnSlot => {
            let dj = dj.expect("this step has a DurableJob");
            let at = location(&dj);
            let Some(observed) = ctx.schedules.describe(&at).await? else {
                return Ok(Action::requeue(Duration::from_secs(1)));
            };
            // the earliest slot the schedule itself ran or will run after the unpause
            let first = observed
                .recent_actions
                .iter()
                .map(|a| a.scheduled_time)
                .chain(observed.future_action_times.iter().copied())
                .min();
            let Some(first) = first else {
                // a suspended or finished schedule runs nothing itself: nothing can be run twice
                update_dj(
                    &djs,
                    &name,
                    json!({"metadata": {"annotations": {PHASE: "backfilling", START: rfc3339(Utc::now())}}}),
                )
                .await?;
                return Ok(Action::requeue(Duration::from_millis(200)));
            };
            update_dj(
                &djs,
                &name,
                json!({"metadata": {"annotations": {PHASE: "backfilling", START: rfc3339(first)}}}),
            )
            .await?;
            Ok(Action::requeue(Duration::from_millis(200)))
        }
        Step::Backfill { from, to } => {
            let dj = dj.expect("a backfill step has a DurableJob");
            ctx.schedules.backfill(&location(&dj), from, to).await?;
            update_dj(&djs, &name, json!({"metadata": {"annotations": {PHASE: "done"}}})).await?;
            event(
                &ctx,
                &dj,
                EventType::Normal,
                Reason::HandoverBackfilled,
                format!(
                    "Ran the slots between {} and {} that neither the CronJob nor the schedule ran",
                    rfc3339(from),
                    rfc3339(to)
                ),
            )
            .await;
            Ok(Action::requeue(Duration::from_millis(200)))
        }
        Step::MarkDone => {
            update_dj(&djs, &name, json!({"metadata": {"annotations": {PHASE: "done"}}})).await?;
            Ok(Action::requeue(Duration::from_millis(200)))
        }
        Step::MarkHandedOver => {
            annotate_cronjob(&cronjobs, &name, json!({MIGRATE_STATUS: "handed-over"})).await?;
            event(&ctx, &*cj, EventType::Normal, Reason::HandedOver, format!("DurableJob {name} runs this schedule now; the CronJob stays suspended (nothing was deleted)")).await;
            Ok(Action::await_change())
        }
        Step::SuspendDurableJob => {
            update_dj(&djs, &name, json!({"spec": {"suspend": true}})).await?;
            event(
                &ctx,
                &*cj,
                EventType::Normal,
                Reason::RollbackStarted,
                format!("Suspended DurableJob {name}"),
            )
            .await;
            Ok(Action::requeue(Duration::from_millis(500)))
        }
        Step::HandBack { last, suspend } => {
            if let Some(last) = last {
                let status = json!({"apiVersion": "batch/v1", "kind": "CronJob", "status": {"lastScheduleTime": rfc3339(last)}});
                cronjobs
                    .patch_status(
                        &name,
                        &PatchParams::apply(&format!("{FIELD_MANAGER}-handover")).force(),
                        &Patch::Apply(&status),
                    )
                    .await
                    .map_err(Error::Kube)?;
            }
            cronjobs
                .patch(&name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {MIGRATE_STATUS: "rolled-back"}}, "spec": {"suspend": suspend}})))
                .await
                .map_err(Error::Kube)?;
            update_dj(
                &djs,
                &name,
                json!({"metadata": {"annotations": {PHASE: "rolled-back"}}}),
            )
            .await?;
            event(
                &ctx,
                &*cj,
                EventType::Normal,
                Reason::RolledBack,
                format!(
                    "The CronJob runs this schedule again after {}; DurableJob {name} stays suspended (nothing was deleted)",
                    last.map(rfc3339).unwrap_or_else(|| "now".into())
                ),
            )
            .await;
            Ok(Action::await_change())
        }
    }
}

fn location(dj: &DurableJob) -> ScheduleLocation {
    let status = dj.status.clone().unwrap_or_default();
    ScheduleLocation {
        namespace: status.temporal_namespace.unwrap_or_default(),
        id: status.schedule_id.unwrap_or_default(),
    }
}

fn plan_status(v: &Value) -> Option<String> {
    v["metadata"]["annotations"][MIGRATE_STATUS]
        .as_str()
        .map(String::from)
}

fn error_policy<S: Schedules>(cj: Arc<CronJob>, e: &Error, _: Arc<Context<S>>) -> Action {
    warn!(cronjob = %cj.name_any(), error = %e, "handover step failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Watches CronJobs (all namespaces or the given ones) for the migrate annotation.
pub async fn run<S: Schedules>(ctx: Arc<Context<S>>, namespace: Option<String>) {
    let api: Api<CronJob> = match &namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    Controller::new(api, watcher::Config::default().any_semantic())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}
