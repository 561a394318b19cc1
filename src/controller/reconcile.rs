//! One reconcile of one DurableJob: validate → build → compare → write → status. The pure
//! steps live in [`crate::validate`], [`crate::schedule`], [`super::plan`] and [`super::status`];
//! this module only does the I/O between them.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Event, EventType},
    },
};
use serde_json::json;
use tracing::{info, warn};

use super::{
    Context, Error,
    plan::{self, Decision, PlanInput, WriteReason},
    status::conditions::reasons,
    status::{self, Problem, Report, WorkerReport},
};
use crate::api::{DeletionPolicy, DurableJob, DurableJobStatus, RESUME_ANNOTATION};
use crate::controller::build::schedule::{self, DesiredSchedule, ResourceRef, ScheduleLocation};
use crate::controller::build::worker;
use crate::controller::validate;
use crate::controller::validate::Runner;
use crate::temporal::{ObservedSchedule, Schedules, TemporalError};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::DeleteParams;

/// Field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "durablejob-operator";

fn problem_for(e: &TemporalError) -> Problem {
    let (reason, stalled) = match e {
        TemporalError::Unavailable(_) => (reasons::TEMPORAL_UNAVAILABLE, false),
        TemporalError::Rejected(_) => (reasons::TEMPORAL_REJECTED, true),
        TemporalError::Conflict(_) => (reasons::CONFLICT, false),
        TemporalError::NamespaceNotFound(_) => (reasons::NAMESPACE_NOT_FOUND, true),
        TemporalError::PermissionDenied(_) => (reasons::PERMISSION_DENIED, true),
        TemporalError::Other(_) => (reasons::TEMPORAL_ERROR, false),
    };
    Problem {
        reason,
        message: e.to_string(),
        stalled,
    }
}

/// Reconciles a DurableJob that is not being deleted.
pub async fn apply<S: Schedules>(dj: Arc<DurableJob>, ctx: Arc<Context<S>>) -> Result<Action, Error> {
    let now = Utc::now();
    let namespace = dj.namespace().ok_or(Error::NotNamespaced)?;
    let name = dj.name_any();
    let uid = dj.uid().unwrap_or_default();
    let previous = dj.status.clone().unwrap_or_default();
    let generation = dj.metadata.generation;
    let resync = ctx.settings.resync_interval;

    // 1. validate (no Temporal call for an invalid spec)
    let valid = match validate::validate(&dj.spec) {
        Ok(v) => v,
        Err(invalid) => {
            let problem = Problem {
                reason: reasons::INVALID_SPEC,
                message: format!("Invalid spec: {invalid}"),
                stalled: true,
            };
            let report = Report {
                problem: Some(problem.clone()),
                ..Default::default()
            };
            let new = status::build(&previous, generation, now, &report);
            finish(&dj, &ctx, &previous, new, Some(problem)).await?;
            return Ok(Action::requeue(resync));
        }
    };

    // 2. build
    let resource = ResourceRef {
        namespace: &namespace,
        name: &name,
        uid: &uid,
    };
    let desired = schedule::desired(&resource, &valid, &ctx.settings);
    let desired_hash = desired.hash();

    // 3. the user's worker Deployment (spec.worker), or none
    let worker = match sync_worker(&dj, &ctx, &valid, &desired).await {
        Ok(w) => w,
        Err(e) => return Err(e),
    };

    // 4. move the schedule if its namespace or id changed (spec.temporal.namespace, --schedule-id-prefix)
    if let (Some(id), Some(ns)) = (&previous.schedule_id, &previous.temporal_namespace) {
        let old = ScheduleLocation {
            namespace: ns.clone(),
            id: id.clone(),
        };
        if old != desired.location
            && let Err(e) = delete_if_ours(&ctx, &old, &uid).await
        {
            return temporal_failed(&dj, &ctx, &previous, now, &desired, worker.clone(), e).await;
        }
    }

    // 5. compare
    let observed = match ctx.schedules.describe(&desired.location).await {
        Ok(o) => o,
        Err(e) => return temporal_failed(&dj, &ctx, &previous, now, &desired, worker.clone(), e).await,
    };
    let resume_value = dj.annotations().get(RESUME_ANNOTATION).cloned();
    let handled_resume = previous.sync.as_ref().and_then(|s| s.handled_resume.clone());
    let resume_requested = resume_value
        .as_deref()
        .filter(|v| Some(*v) != handled_resume.as_deref());
    let decision = plan::decide(&PlanInput {
        desired: &desired,
        desired_hash: &desired_hash,
        previous: &previous,
        observed: observed.as_ref(),
        resume_requested,
        now,
    });
    let handled_resume = resume_value.or(handled_resume);

    // 6. write
    let mut report = Report {
        desired: Some(&desired),
        worker: worker.clone(),
        ..Default::default()
    };
    let after: Option<ObservedSchedule>;
    match &decision {
        Decision::Create { options, reason } => {
            if let Err(e) = ctx.schedules.create(&desired, options).await {
                return temporal_failed(&dj, &ctx, &previous, now, &desired, worker.clone(), e).await;
            }
            after = match describe_after_write(&ctx, &desired).await {
                Ok(o) => o,
                Err(e) => {
                    return temporal_failed(&dj, &ctx, &previous, now, &desired, worker.clone(), e).await;
                }
            };
            announce_write(&dj, &ctx, &desired, *reason).await;
        }
        Decision::Update {
            options,
            conflict_token,
            reason,
        } => {
            if let Err(e) = ctx.schedules.update(&desired, options, conflict_token).await {
                return temporal_failed(&dj, &ctx, &previous, now, &desired, worker.clone(), e).await;
            }
            after = match describe_after_write(&ctx, &desired).await {
                Ok(o) => o,
                Err(e) => {
                    return temporal_failed(&dj, &ctx, &previous, now, &desired, worker.clone(), e).await;
                }
            };
            announce_write(&dj, &ctx, &desired, *reason).await;
        }
        Decision::InSync { record_fingerprint } => {
            if let Some(fp) = record_fingerprint {
                report.sync = Some(plan::sync_record(&desired_hash, fp, handled_resume.clone()));
                if !previous.paused {
                    publish(&dj, &ctx, EventType::Warning, reasons::PAUSED_AFTER_FAILURE, "Pause",
                        format!("Temporal paused schedule {} after a failed run; set annotation {RESUME_ANNOTATION} to a new value to resume", desired.location.id)).await;
                }
            } else if previous
                .sync
                .as_ref()
                .is_some_and(|s| s.handled_resume != handled_resume)
            {
                let mut sync = previous.sync.clone().unwrap_or_default();
                sync.handled_resume = handled_resume.clone();
                report.sync = Some(sync);
            }
            after = observed;
        }
        Decision::Completed => {
            after = None;
            report.completed = true;
            if !previous.completed {
                publish(
                    &dj,
                    &ctx,
                    EventType::Normal,
                    reasons::COMPLETED,
                    "Complete",
                    format!(
                        "Schedule {} has finished and is no longer in Temporal; it is not recreated",
                        desired.location.id
                    ),
                )
                .await;
            }
        }
        Decision::Foreign { owner } => {
            let whose = match owner {
                Some(o) => format!(
                    "by operator prefix {:?} for {} (uid {})",
                    o.prefix, o.resource, o.uid
                ),
                None => "outside durablejob".to_string(),
            };
            let problem = Problem {
                reason: reasons::OWNED_ELSEWHERE,
                message: format!(
                    "Temporal schedule {} in namespace {} was created {whose}; the operator leaves it alone. Delete it (temporal schedule delete --schedule-id '{}') or change --schedule-id-prefix",
                    desired.location.id, desired.location.namespace, desired.location.id
                ),
                stalled: true,
            };
            report.problem = Some(problem.clone());
            let new = status::build(&previous, generation, now, &report);
            finish(&dj, &ctx, &previous, new, Some(problem)).await?;
            return Ok(Action::requeue(resync));
        }
    }
    if matches!(decision, Decision::Create { .. } | Decision::Update { .. }) {
        match &after {
            Some(o) => {
                report.sync = Some(plan::sync_record(
                    &desired_hash,
                    &o.fingerprint,
                    handled_resume.clone(),
                ))
            }
            None => {
                // Written but gone right away: look again soon.
                return Ok(Action::requeue(Duration::from_secs(1)));
            }
        }
    }

    // 7. status
    let runs = match &after {
        Some(_) => ctx
            .schedules
            .recent_runs(&desired.location, status::RECENT_RUNS)
            .await
            .ok(),
        None => None,
    };
    report.observed = after.as_ref();
    report.runs = runs.as_deref();
    let new = status::build(&previous, generation, now, &report);
    let requeue = status::requeue_after(&new, now, resync);
    finish(&dj, &ctx, &previous, new, None).await?;
    ctx.reset_backoff(&dj);
    Ok(Action::requeue(requeue))
}

/// Applies the worker Deployment for `spec.worker` (only when what the operator would apply
/// changed) and reports its health; removes the operator's Deployment when there is no worker.
async fn sync_worker<S: Schedules>(
    dj: &DurableJob,
    ctx: &Context<S>,
    valid: &validate::ValidSpec,
    desired: &DesiredSchedule,
) -> Result<Option<WorkerReport>, Error> {
    let namespace = dj.namespace().unwrap_or_default();
    let name = dj.name_any();
    let uid = dj.uid().unwrap_or_default();
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let deployment = worker::deployment_name(&name);
    let existing = api.get_opt(&deployment).await.map_err(Error::Kube)?;
    let ours = |d: &Deployment| d.metadata.owner_references.iter().flatten().any(|o| o.uid == uid);
    let Runner::Worker(w) = &valid.runner else {
        if existing.as_ref().is_some_and(ours) {
            api.delete(&deployment, &DeleteParams::background())
                .await
                .map_err(Error::Kube)?;
            publish(
                dj,
                ctx,
                EventType::Normal,
                "WorkerDeleted",
                "Delete",
                format!("Deleted worker Deployment {deployment}: the resource no longer has spec.worker"),
            )
            .await;
        }
        return Ok(None);
    };
    let target = worker::WorkerTarget {
        namespace: &namespace,
        name: &name,
        uid: &uid,
        temporal_address: &ctx.settings.temporal_address,
        temporal_namespace: &desired.location.namespace,
        task_queue: &desired.action.task_queue,
    };
    let want = worker::desired(&target, w);
    let want_hash = want["metadata"]["annotations"][worker::SPEC_HASH_ANNOTATION]
        .as_str()
        .map(String::from);
    let current = match &existing {
        Some(d) if d.annotations().get(worker::SPEC_HASH_ANNOTATION) == want_hash.as_ref() => d.clone(),
        _ => {
            let applied = api
                .patch(
                    &deployment,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&want),
                )
                .await
                .map_err(Error::Kube)?;
            let verb = if existing.is_some() { "Updated" } else { "Created" };
            publish(
                dj,
                ctx,
                EventType::Normal,
                &format!("Worker{verb}"),
                "Sync",
                format!("{verb} worker Deployment {deployment}"),
            )
            .await;
            applied
        }
    };
    Ok(Some(WorkerReport {
        deployment,
        health: worker::health(&current),
    }))
}

async fn describe_after_write<S: Schedules>(
    ctx: &Context<S>,
    desired: &DesiredSchedule,
) -> Result<Option<ObservedSchedule>, TemporalError> {
    ctx.schedules.describe(&desired.location).await
}

async fn announce_write<S: Schedules>(
    dj: &DurableJob,
    ctx: &Context<S>,
    desired: &DesiredSchedule,
    reason: WriteReason,
) {
    let (event_reason, note) = match reason {
        WriteReason::Created => ("ScheduleCreated", "Created"),
        WriteReason::Recreated => ("ScheduleRecreated", "Recreated (it had been deleted in Temporal)"),
        WriteReason::SpecChanged => ("ScheduleUpdated", "Updated to match the spec"),
        WriteReason::DriftRepaired => ("DriftRepaired", "Repaired a change made directly in Temporal"),
        WriteReason::Adopted => (
            "ScheduleAdopted",
            "Took over (no record of an earlier write) and updated",
        ),
        WriteReason::Resumed => (
            "ScheduleResumed",
            "Resumed after the pause that followed a failed run",
        ),
    };
    ctx.metrics.write(event_reason);
    info!(schedule = %desired.location.id, temporal_namespace = %desired.location.namespace, reason = event_reason, "schedule written");
    let kind = if matches!(reason, WriteReason::DriftRepaired) {
        EventType::Warning
    } else {
        EventType::Normal
    };
    publish(
        dj,
        ctx,
        kind,
        event_reason,
        "Sync",
        format!(
            "{note}: Temporal schedule {} in namespace {}",
            desired.location.id, desired.location.namespace
        ),
    )
    .await;
}

/// Records a Temporal failure in status and retries with backoff.
async fn temporal_failed<S: Schedules>(
    dj: &DurableJob,
    ctx: &Context<S>,
    previous: &DurableJobStatus,
    now: chrono::DateTime<Utc>,
    desired: &DesiredSchedule,
    worker: Option<WorkerReport>,
    e: TemporalError,
) -> Result<Action, Error> {
    let problem = problem_for(&e);
    warn!(error = %e, "Temporal step failed");
    let report = Report {
        desired: Some(desired),
        problem: Some(problem.clone()),
        worker,
        ..Default::default()
    };
    let new = status::build(previous, dj.metadata.generation, now, &report);
    finish(dj, ctx, previous, new, Some(problem.clone())).await?;
    if problem.stalled {
        return Ok(Action::requeue(ctx.settings.resync_interval));
    }
    Ok(Action::requeue(ctx.next_backoff(dj)))
}

/// Writes the status when it changed, and an Event when a problem appears or changes.
async fn finish<S: Schedules>(
    dj: &DurableJob,
    ctx: &Context<S>,
    previous: &DurableJobStatus,
    new: DurableJobStatus,
    problem: Option<Problem>,
) -> Result<(), Error> {
    if let Some(p) = &problem {
        ctx.metrics.failure(p.reason);
        if previous.message.as_deref() != Some(p.message.as_str()) {
            publish(
                dj,
                ctx,
                EventType::Warning,
                p.reason,
                "Reconcile",
                p.message.clone(),
            )
            .await;
        }
    }
    if &new != previous {
        write_status(dj, ctx, &new).await?;
    }
    Ok(())
}

async fn write_status<S: Schedules>(
    dj: &DurableJob,
    ctx: &Context<S>,
    status: &DurableJobStatus,
) -> Result<(), Error> {
    let api: Api<DurableJob> = Api::namespaced(ctx.client.clone(), &dj.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": "durablejob.dev/v1alpha1",
        "kind": "DurableJob",
        "status": status,
    });
    api.patch_status(
        &dj.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::Kube)?;
    Ok(())
}

pub(super) async fn publish<S: Schedules>(
    dj: &DurableJob,
    ctx: &Context<S>,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let ev = Event {
        type_,
        reason: reason.into(),
        note: Some(truncate(note, 1000)),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &dj.object_ref(&())).await {
        warn!(error = %e, reason, "could not publish Event");
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Deletes a schedule if this resource owns it; a missing schedule counts as deleted and a
/// schedule owned by someone else is left alone.
async fn delete_if_ours<S: Schedules>(
    ctx: &Context<S>,
    at: &ScheduleLocation,
    uid: &str,
) -> Result<bool, TemporalError> {
    match ctx.schedules.describe(at).await? {
        None => Ok(false),
        Some(o)
            if o.owner
                .as_ref()
                .is_some_and(|owner| owner.uid == uid && owner.prefix == ctx.settings.schedule_id_prefix) =>
        {
            ctx.schedules.delete(at).await?;
            ctx.metrics.write("ScheduleDeleted");
            Ok(true)
        }
        Some(_) => Ok(false),
    }
}

/// Finalizer cleanup: delete the schedule (or leave it, with deletionPolicy Orphan). Works
/// whatever the spec's validity, and treats an already-missing schedule as done.
pub async fn cleanup<S: Schedules>(dj: Arc<DurableJob>, ctx: Arc<Context<S>>) -> Result<Action, Error> {
    let namespace = dj.namespace().ok_or(Error::NotNamespaced)?;
    let name = dj.name_any();
    let uid = dj.uid().unwrap_or_default();
    let previous = dj.status.clone().unwrap_or_default();
    let location = ScheduleLocation {
        namespace: previous.temporal_namespace.clone().unwrap_or_else(|| {
            dj.spec
                .temporal
                .as_ref()
                .and_then(|t| t.namespace.clone())
                .unwrap_or_else(|| ctx.settings.default_temporal_namespace.clone())
        }),
        id: previous
            .schedule_id
            .clone()
            .unwrap_or_else(|| ctx.settings.schedule_id(&namespace, &name)),
    };
    if dj.spec.deletion_policy == DeletionPolicy::Orphan {
        publish(
            &dj,
            &ctx,
            EventType::Normal,
            "ScheduleOrphaned",
            "Delete",
            format!(
                "deletionPolicy Orphan: Temporal schedule {} in namespace {} is left in place",
                location.id, location.namespace
            ),
        )
        .await;
        return Ok(Action::await_change());
    }
    // A resource whose spec never validated never reached Temporal.
    if previous.schedule_id.is_none() && validate::validate(&dj.spec).is_err() {
        return Ok(Action::await_change());
    }
    match delete_if_ours(&ctx, &location, &uid).await {
        Ok(deleted) => {
            if deleted {
                publish(
                    &dj,
                    &ctx,
                    EventType::Normal,
                    "ScheduleDeleted",
                    "Delete",
                    format!(
                        "Deleted Temporal schedule {} in namespace {}",
                        location.id, location.namespace
                    ),
                )
                .await;
            }
            Ok(Action::await_change())
        }
        Err(e) => {
            let problem = Problem {
                reason: reasons::DELETE_FAILED,
                message: format!(
                    "Cannot delete Temporal schedule {} yet ({e}); the finalizer {} stays until it is deleted. To leave the schedule instead, set spec.deletionPolicy: Orphan",
                    location.id,
                    crate::api::FINALIZER
                ),
                stalled: false,
            };
            let report = Report {
                problem: Some(problem.clone()),
                ..Default::default()
            };
            let new = status::build(&previous, dj.metadata.generation, Utc::now(), &report);
            finish(&dj, &ctx, &previous, new, Some(problem)).await?;
            Err(Error::Temporal(e))
        }
    }
}
