//! In-cluster handover of live CronJobs to DurableJobs (and back), driven by the
//! `durablejob.dev/migrate` annotation on the CronJob. The steps are decided in [`steps`], turned
//! into writes, Events and a requeue by the planner in [`writes`]; this module only reads what
//! the planner needs and executes what it planned.

pub mod quiet;
pub mod steps;
pub mod writes;

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams, PostParams},
    runtime::{Controller, controller::Action, watcher},
};
use tracing::warn;

use self::steps::{CRONJOB_SCHEDULED, CronJobRuns};
use self::writes::{Inputs, Target, Write};
use crate::api::DurableJob;
use crate::desired::schedule::ScheduleLocation;
use crate::operator::events::publish;
use crate::operator::{Core, Error, FIELD_MANAGER, log_outcome};
use crate::temporal::Schedules;

fn merge() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

/// The slots of the CronJob's own Jobs and those still running (its Jobs are those it controls).
async fn cronjob_runs<S: Schedules>(
    ctx: &Core<S>,
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

/// One reconcile of one CronJob: read what the planner needs (nothing for a CronJob that asks
/// for nothing), plan, execute.
pub async fn reconcile<S: Schedules>(cj: Arc<CronJob>, ctx: Arc<Core<S>>) -> Result<Action, Error> {
    let _slot = ctx.slot().await;
    let running = ctx.metrics.start(crate::metrics::HANDOVER_CONTROLLER);
    let result = step(cj, &ctx).await;
    running.done(crate::metrics::result_of(&result));
    result
}

async fn step<S: Schedules>(cj: Arc<CronJob>, ctx: &Arc<Core<S>>) -> Result<Action, Error> {
    let namespace = cj.namespace().ok_or(Error::NotNamespaced)?;
    let name = cj.name_any();
    let cronjobs: Api<CronJob> = Api::namespaced(ctx.client.clone(), &namespace);
    let djs: Api<DurableJob> = Api::namespaced(ctx.client.clone(), &namespace);
    if !writes::asks(&cj) {
        return Ok(Action::await_change());
    }
    let dj = djs.get_opt(&name).await.map_err(Error::Kube)?;
    let needs = writes::needs(&cj, dj.as_ref()).unwrap_or_default();
    let runs = if needs.jobs {
        cronjob_runs(ctx, &cj, &namespace).await?
    } else {
        CronJobRuns::default()
    };
    let schedule = match (&dj, needs.schedule) {
        (Some(d), true) => ctx.schedules.describe(&location(d)).await?,
        _ => None,
    };
    let plan = writes::plan(&Inputs {
        cronjob: &cj,
        durable_job: dj.as_ref(),
        runs: &runs,
        schedule: schedule.as_ref(),
        default_time_zone: &ctx.settings.handover_time_zone,
        now: Utc::now(),
    });
    let mut current = dj;
    for w in plan.writes {
        match w {
            Write::CreateDurableJob(new) => {
                let pp = PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..Default::default()
                };
                current = Some(djs.create(&pp, &new).await.map_err(Error::Kube)?);
            }
            Write::PatchCronJob(patch) => {
                cronjobs
                    .patch(&name, &merge(), &Patch::Merge(patch))
                    .await
                    .map_err(Error::Kube)?;
            }
            Write::ApplyCronJobStatus(status) => {
                cronjobs
                    .patch_status(
                        &name,
                        &PatchParams::apply(FIELD_MANAGER).force(),
                        &Patch::Apply(&status),
                    )
                    .await
                    .map_err(Error::Kube)?;
            }
            Write::PatchDurableJob(patch) => {
                current = Some(
                    djs.patch(&name, &merge(), &Patch::Merge(patch))
                        .await
                        .map_err(Error::Kube)?,
                );
            }
            Write::Backfill { from, to } => {
                let Some(d) = &current else {
                    return Err(Error::Invalid("a backfill needs the DurableJob".into()));
                };
                ctx.schedules.backfill(&location(d), from, to).await?;
            }
        }
    }
    for (target, notice) in &plan.events {
        match (target, &current) {
            (Target::CronJob, _) => publish(&ctx.recorder, &*cj, notice).await,
            (Target::DurableJob, Some(d)) => publish(&ctx.recorder, d, notice).await,
            (Target::DurableJob, None) => {}
        }
    }
    Ok(match plan.requeue {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

fn location(dj: &DurableJob) -> ScheduleLocation {
    let status = dj.status.clone().unwrap_or_default();
    ScheduleLocation {
        namespace: status.temporal_namespace.unwrap_or_default(),
        id: status.schedule_id.unwrap_or_default(),
    }
}

fn error_policy<S: Schedules>(cj: Arc<CronJob>, e: &Error, _: Arc<Core<S>>) -> Action {
    warn!(cronjob = %cj.name_any(), error = %e, "handover step failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// Watches CronJobs (all namespaces or the given ones) for the migrate annotation.
pub async fn run<S: Schedules>(ctx: Arc<Core<S>>, namespace: Option<String>) {
    let api: Api<CronJob> = match &namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    Controller::new(api, watcher::Config::default().any_semantic())
        .with_config(
            kube::runtime::controller::Config::default().concurrency(ctx.max_concurrent_reconciles()),
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|outcome| log_outcome("CronJob", outcome))
        .await;
}
