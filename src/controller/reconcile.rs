//! The driver of one reconcile of one DurableJob, the pipeline the README's "Architecture"
//! section describes: each step returns what it made or the [`Problem`] that stopped it; the
//! status is built once, from whatever the steps got to, and written once, here.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use kube::{ResourceExt, runtime::controller::Action};

use super::Context;
use super::follow;
use super::io::{self, Notice, k8s};
use super::pause::PauseState;
use super::run_events;
use super::status::{self, Observations, Problem, WorkerState};
use crate::api::{
    DeletionPolicy, DurableJob, DurableJobCalendar, DurableJobStatus, RequestVerb, RolloutStrategy,
};
use crate::controller::build::calendars;
use crate::desired::schedule::{DesiredSchedule, ResourceRef, ScheduleLocation};
use crate::desired::validate::Executor;
use crate::desired::{schedule, validate};
use crate::operator::events::publish;
use crate::operator::{Error, apply_status};
use crate::reason::Reason;
use crate::settings::Settings;
use crate::temporal::Schedules;

/// The spec, validated, and the schedule built from it.
pub(crate) struct Built {
    pub valid: validate::ValidSpec,
    pub desired: DesiredSchedule,
}

/// Validate and build: pure, given the DurableJobCalendars the spec names as they were found
/// (`None`: it does not exist).
pub(crate) fn build(
    dj: &DurableJob,
    settings: &Settings,
    calendars: &BTreeMap<String, Option<DurableJobCalendar>>,
) -> Result<Built, Problem> {
    if let Some(why) = crate::api::name_too_long(&dj.name_any()) {
        // made before the CRD refused such names: nothing can be run for it
        return Err(Problem {
            reason: Reason::InvalidSpec,
            message: format!("Invalid name: {why}; recreate it under a shorter name"),
            stalled: true,
        });
    }
    let valid = validate::validate(&dj.spec).map_err(|invalid| Problem {
        reason: Reason::InvalidSpec,
        message: format!("Invalid spec: {invalid}"),
        stalled: true,
    })?;
    let (namespace, name, uid) = (
        dj.namespace().unwrap_or_default(),
        dj.name_any(),
        dj.uid().unwrap_or_default(),
    );
    let resource = ResourceRef {
        namespace: &namespace,
        name: &name,
        uid: &uid,
    };
    let resolved = calendars::resolve(&namespace, &valid.exclude_calendars, calendars)?;
    let desired = schedule::desired(&resource, &valid, &resolved, settings);
    super::tenancy::check(&namespace, &valid, &desired, settings)?;
    Ok(Built { valid, desired })
}

/// When to look again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Requeue {
    /// After a transient problem, with the resource's growing backoff.
    Backoff,
    After(Duration),
}

/// What one reconcile decided: the status (built once), the Events, the writes it made and
/// when to look again.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub status: DurableJobStatus,
    pub problem: Option<Problem>,
    pub notices: Vec<Notice>,
    pub writes: Vec<Reason>,
    pub requeue: Requeue,
    /// Nothing is left to look at soon (no problem, no schedule gone right after its write, no
    /// request waiting on Temporal): a run's Job may be followed without a full look next.
    pub clean: bool,
}

/// The schedule step and the status, given what validate, build and the worker step gave.
/// Talks to Temporal through the trait only, so it runs against a fake in tests.
pub(crate) async fn schedule_and_status<S: Schedules>(
    dj: &DurableJob,
    schedules: &S,
    settings: &Settings,
    built: Result<&Built, Problem>,
    worker: Result<Option<WorkerState>, Problem>,
    now: DateTime<Utc>,
) -> Outcome {
    let previous = dj.status.clone().unwrap_or_default();
    let uid = dj.uid().unwrap_or_default();
    let desired = built.as_ref().ok().map(|b| &b.desired);
    let worker_state = worker.as_ref().ok().cloned().flatten();
    let worker_requeue = worker_state.as_ref().and_then(WorkerState::requeue);
    // a resume among the requests is carried out by the schedule step
    let pending = schedule_requests(dj, &previous, worker_state.as_ref());
    let resume = pending.iter().find_map(|p| match p {
        Ok(r) if r.verb == RequestVerb::Resume => Some(r.id.as_str()),
        _ => None,
    });
    let synced = match (built, worker) {
        (Err(p), _) | (_, Err(p)) => Err(p),
        (Ok(b), Ok(_)) => {
            let r = io::schedule_sync::Resource {
                uid: &uid,
                prefix: &settings.schedule_id_prefix,
                previous: &previous,
                resume,
            };
            io::schedule_sync::sync(schedules, &b.desired, &r, now).await
        }
    };
    let (mut synced, problem) = match synced {
        Ok(s) => (Some(s), None),
        Err(p) => (None, Some(p)),
    };
    if let Some(s) = synced.as_mut()
        && let Some(runs) = &s.runs
    {
        let ended = run_events::notices(&previous, runs, settings.run_events);
        s.notices.extend(ended);
    }
    let requests = match (&mut synced, desired) {
        (Some(s), Some(d)) => {
            let target = io::requests::Target {
                desired: d,
                observed: s.observed.as_ref(),
                resumed: s.writes.contains(&Reason::ScheduleResumed),
            };
            let handled = io::requests::handle(schedules, &target, pending, now).await;
            s.notices.extend(handled.notices.iter().cloned());
            Some(handled)
        }
        _ => None,
    };
    let s = synced.as_ref();
    let observations = Observations {
        desired,
        observed: s.and_then(|s| s.observed.as_ref()),
        runs: s.and_then(|s| s.runs.as_deref()),
        sync: s.map(|s| s.sync.clone()).unwrap_or_default(),
        problem: problem.clone(),
        completed: s.is_some_and(|s| s.completed),
        requests: handled_requests(worker_state.as_ref(), requests.as_ref()),
        worker: worker_state,
    };
    let status = status::build(&previous, dj.metadata.generation, now, &observations);
    let requeue = match &problem {
        Some(p) if p.stalled => Requeue::After(settings.resync_interval),
        Some(_) => Requeue::Backoff,
        None if s.is_some_and(|s| s.vanished) => Requeue::After(Duration::from_secs(1)),
        // a run was started or stopped: show it soon; a request waits for Temporal
        None if requests.as_ref().is_some_and(|h| h.acted) => Requeue::After(Duration::from_secs(2)),
        None if requests.as_ref().is_some_and(|h| h.waiting > 0) => Requeue::Backoff,
        // between runs, the sweep of the schedule lists finds changes made in Temporal
        None => {
            let mut after = status::requeue_after(&status, now, settings.full_resync_interval);
            // a rollout that waits on Temporal, or a version's sunset
            after = worker_requeue.map_or(after, |r| after.min(r));
            // a pause for failed runs that spec.resumeAfter ends is looked at when it ends
            let observed = s.and_then(|s| s.observed.as_ref());
            if let Some(at) = observed.and_then(|o| PauseState::of(desired, o).resume_at) {
                let until = (at - now).to_std().unwrap_or_default() + Duration::from_millis(500);
                after = after.min(until);
            }
            Requeue::After(after)
        }
    };
    let clean = problem.is_none()
        && !s.is_some_and(|s| s.vanished)
        && requests.as_ref().is_none_or(|h| h.waiting == 0);
    let (notices, writes) = synced.map(|s| (s.notices, s.writes)).unwrap_or_default();
    Outcome {
        status,
        problem,
        notices,
        writes,
        requeue,
        clean,
    }
}

/// A reconcile that follows the runs alone ([`super::follow`]): the runs read from
/// visibility, laid over the status, and the Events of the runs that ended. `None` when the
/// schedule must be looked at in full after all: the runs cannot be read, one ended other
/// than successfully, or the read shows nothing new and nothing in flight (a Job appeared for a
/// run the visibility store does not show yet: the description lists it, and no requeue while
/// in flight would look again).
pub(crate) async fn follow_runs<S: Schedules>(
    dj: &DurableJob,
    schedules: &S,
    settings: &Settings,
    desired: &DesiredSchedule,
    now: DateTime<Utc>,
) -> Option<Outcome> {
    let previous = dj.status.clone().unwrap_or_default();
    let runs = schedules
        .recent_runs(&desired.location, status::RECENT_RUNS)
        .await
        .ok()?;
    if follow::needs_a_look(&previous, &runs) {
        return None;
    }
    let status = status::follow_runs(&previous, &runs);
    if status == previous && status.running_workflows.is_empty() {
        return None;
    }
    let after = status::requeue_after(&status, now, settings.full_resync_interval);
    Some(Outcome {
        notices: run_events::notices(&previous, &runs, settings.run_events),
        status,
        problem: None,
        writes: vec![],
        requeue: Requeue::After(after),
        clean: true,
    })
}

/// The requests handled in this reconcile: the worker's rollout verbs, then the schedule's.
fn handled_requests(
    worker: Option<&WorkerState>,
    schedule: Option<&io::requests::Handled>,
) -> Vec<crate::api::RequestRecord> {
    let rollout = worker
        .and_then(|w| w.versioned.as_ref())
        .map(|v| v.requests.iter());
    let runs = schedule.map(|h| h.records.iter());
    rollout
        .into_iter()
        .flatten()
        .chain(runs.into_iter().flatten())
        .cloned()
        .collect()
}

/// The requests the schedule step acts on: those not handled yet (the ledger in
/// status.requests says which were), less the rollout verbs a versioned worker's step took.
fn schedule_requests(
    dj: &DurableJob,
    previous: &DurableJobStatus,
    worker: Option<&WorkerState>,
) -> Vec<Result<crate::api::Request, crate::api::BadRequest>> {
    let versioned = worker.is_some_and(|w| w.versioned.is_some());
    io::requests::pending(dj.annotations(), previous)
        .into_iter()
        .filter(|p| !(versioned && p.as_ref().map_or_else(|b| b.verb, |r| r.verb).is_rollout()))
        .collect()
}

/// Reconciles a DurableJob that is not being deleted: build → worker → schedule → status.
pub(crate) async fn apply<S: Schedules>(dj: Arc<DurableJob>, ctx: Arc<Context<S>>) -> Result<Action, Error> {
    let now = Utc::now();
    let wake = ctx.wakes.take(&dj);
    let found = k8s::calendars(&ctx, &dj).await;
    let built = match found.and_then(|found| build(&dj, &ctx.settings, &found)) {
        Ok(b) => io::dry_run::check_job(&ctx.client, &dj, &b.desired)
            .await
            .map(|()| b),
        Err(p) => Err(p),
    };
    if let Ok(b) = &built {
        let previous = dj.status.clone().unwrap_or_default();
        let requests = !io::requests::pending(dj.annotations(), &previous).is_empty();
        let looked = ctx.wakes.has_looked(&dj);
        if follow::may_follow(wake, looked, &dj, &b.desired, requests)
            && let Some(outcome) = follow_runs(&dj, &ctx.schedules, &ctx.settings, &b.desired, now).await
        {
            return conclude(&dj, &ctx, outcome, vec![]).await;
        }
    }
    let mut notices = vec![];
    let worker = match &built {
        Ok(b) => match &b.valid.executor {
            Executor::UserWorker(w) if w.rollout != RolloutStrategy::None => {
                io::worker_versions::sync(&dj, &ctx, w, &b.desired, &mut notices).await
            }
            _ => k8s::sync_worker(&dj, &ctx, &b.valid, &b.desired, &mut notices).await,
        },
        Err(p) => Err(p.clone()),
    };
    let outcome = schedule_and_status(
        &dj,
        &ctx.schedules,
        &ctx.settings,
        built.as_ref().map_err(Clone::clone),
        worker,
        now,
    )
    .await;
    conclude(&dj, &ctx, outcome, notices).await
}

/// Publishes and writes what a reconcile decided (the steps' Events before the outcome's),
/// remembers whether it ended cleanly, and says when to look again.
async fn conclude<S: Schedules>(
    dj: &DurableJob,
    ctx: &Context<S>,
    mut outcome: Outcome,
    mut notices: Vec<Notice>,
) -> Result<Action, Error> {
    notices.append(&mut outcome.notices);
    for w in &outcome.writes {
        ctx.metrics.write(*w);
    }
    let previous = dj.status.clone().unwrap_or_default();
    let written = finish(
        dj,
        ctx,
        &previous,
        &outcome.status,
        outcome.problem.as_ref(),
        &notices,
    )
    .await;
    // a status that was not written leaves the next reconcile to look in full
    match outcome.clean && written.is_ok() {
        true => ctx.wakes.looked(dj),
        false => ctx.wakes.forget(dj),
    }
    written?;
    Ok(match outcome.requeue {
        Requeue::Backoff => Action::requeue(ctx.next_backoff(dj)),
        Requeue::After(d) => {
            if outcome.problem.is_none() {
                ctx.reset_backoff(dj);
            }
            Action::requeue(d)
        }
    })
}

/// What a reconcile reports: the Events to publish, in order, and whether the status is
/// written.
#[derive(Debug, PartialEq)]
pub(crate) struct Report {
    pub events: Vec<Notice>,
    pub write_status: bool,
}

/// The steps' Events, then a problem's Warning only when its message is new (a problem that
/// persists is one Warning, not one per retry); the status only when it changed (a describe
/// confirming a create alone waits for the next change).
pub(crate) fn report(
    previous: &DurableJobStatus,
    new: &DurableJobStatus,
    problem: Option<&Problem>,
    notices: &[Notice],
) -> Report {
    let mut events = notices.to_vec();
    if let Some(p) = problem
        && previous.message.as_deref() != Some(p.message.as_str())
    {
        events.push(k8s::warning_for(p));
    }
    Report {
        events,
        write_status: new != previous
            && !crate::controller::status::sync_record::only_confirmed(previous, new),
    }
}

/// Publishes what [`report`] says and writes the status when it changed.
async fn finish<S: Schedules>(
    dj: &DurableJob,
    ctx: &Context<S>,
    previous: &DurableJobStatus,
    new: &DurableJobStatus,
    problem: Option<&Problem>,
    notices: &[Notice],
) -> Result<(), Error> {
    if let Some(p) = problem {
        ctx.metrics.failure(p.reason);
        tracing::warn!(reason = p.reason.as_str(), message = %p.message, "reconcile step failed");
    }
    let report = report(previous, new, problem, notices);
    // the Events (in order) and the status go out side by side: the status does not wait for
    // the Events' round trips
    let events = async {
        for n in &report.events {
            publish(&ctx.recorder, dj, n).await;
        }
    };
    let status = async {
        match report.write_status {
            true => apply_status(&ctx.client, dj, new).await,
            false => Ok(()),
        }
    };
    let ((), written) = tokio::join!(events, status);
    written
}

/// Where the schedule of this resource may be: where its id and namespace are derived to be
/// from the spec and the settings (whatever the spec's validity, and whether or not a status
/// was ever written) when the resource's namespace may use that Temporal namespace, and where
/// the status last saw it. Empty when neither: then no schedule was ever made for it.
pub(crate) fn schedule_locations(dj: &DurableJob, settings: &Settings) -> Vec<ScheduleLocation> {
    let previous = dj.status.clone().unwrap_or_default();
    let namespace = dj.namespace().unwrap_or_default();
    let derived = ScheduleLocation {
        namespace: dj
            .spec
            .temporal
            .as_ref()
            .and_then(|t| t.namespace.clone())
            .unwrap_or_else(|| settings.default_temporal_namespace.clone()),
        id: settings.schedule_id(&namespace, &dj.name_any()),
    };
    let mut out = vec![];
    if settings.may_use(&namespace, &derived.namespace) {
        out.push(derived);
    }
    if let (Some(id), Some(namespace)) = (previous.schedule_id, previous.temporal_namespace) {
        let recorded = ScheduleLocation { namespace, id };
        if !out.contains(&recorded) {
            out.push(recorded);
        }
    }
    out
}

/// Finalizer cleanup: delete the schedule (or leave it, with deletionPolicy Orphan). As the
/// finalizer contract asks, it works even if apply never succeeded: it describes every place
/// the schedule may be and deletes what the memo says is this resource's, treating a missing
/// schedule as done.
pub(crate) async fn cleanup<S: Schedules>(
    dj: Arc<DurableJob>,
    ctx: Arc<Context<S>>,
) -> Result<Action, Error> {
    ctx.wakes.forget(&dj);
    let uid = dj.uid().unwrap_or_default();
    let locations = schedule_locations(&dj, &ctx.settings);
    let Some(at) = locations.last() else {
        return Ok(Action::await_change());
    };
    if dj.spec.deletion_policy == DeletionPolicy::Orphan {
        let notice = Notice::normal(
            Reason::ScheduleOrphaned,
            "Delete",
            format!(
                "deletionPolicy Orphan: Temporal schedule {} in namespace {} is left in place",
                at.id, at.namespace
            ),
        );
        publish(&ctx.recorder, &*dj, &notice).await;
        return Ok(Action::await_change());
    }
    let prefix = &ctx.settings.schedule_id_prefix;
    let result = io::schedule_sync::delete_everywhere(&ctx.schedules, &locations, &uid, prefix).await;
    let deleted = match &result {
        Ok(d) => d.clone(),
        Err((d, _, _)) => d.clone(),
    };
    for at in &deleted {
        ctx.metrics.write(Reason::ScheduleDeleted);
        let notice = Notice::normal(
            Reason::ScheduleDeleted,
            "Delete",
            format!(
                "Deleted Temporal schedule {} in namespace {}",
                at.id, at.namespace
            ),
        );
        publish(&ctx.recorder, &*dj, &notice).await;
    }
    let Err((_, at, e)) = result else {
        return cleanup_versions(&dj, &ctx).await;
    };
    let problem = Problem {
        reason: Reason::DeleteFailed,
        message: format!(
            "Cannot delete Temporal schedule {} yet ({e}); the finalizer {} stays until it is deleted. To leave the schedule instead, set spec.deletionPolicy: Orphan",
            at.id,
            crate::api::FINALIZER
        ),
        stalled: false,
    };
    hold(&dj, &ctx, &problem).await?;
    Err(Error::Temporal(e))
}

/// The finalizer stays: the status says why.
async fn hold<S: Schedules>(dj: &DurableJob, ctx: &Context<S>, problem: &Problem) -> Result<(), Error> {
    let previous = dj.status.clone().unwrap_or_default();
    let observations = Observations {
        problem: Some(problem.clone()),
        ..Default::default()
    };
    let new = status::build(&previous, dj.metadata.generation, Utc::now(), &observations);
    finish(dj, ctx, &previous, &new, Some(problem), &[]).await
}

/// A versioned worker's Temporal Worker Deployment, when the DurableJob has (or had) one:
/// (Temporal namespace, deployment name).
fn versioned_worker(dj: &DurableJob, settings: &Settings) -> Option<(String, String)> {
    let status = dj.status.clone().unwrap_or_default();
    let recorded = status.worker.and_then(|w| w.deployment_name);
    let versioned = dj.spec.worker.as_ref().is_some_and(|w| {
        w.rollout
            .as_ref()
            .is_none_or(|r| r.strategy != crate::api::RolloutStrategy::None)
    });
    let name = recorded.or_else(|| {
        versioned.then(|| {
            crate::desired::worker_version::deployment_name(
                &dj.namespace().unwrap_or_default(),
                &dj.name_any(),
            )
        })
    })?;
    let tns = status.temporal_namespace.or_else(|| {
        schedule_locations(dj, settings)
            .first()
            .map(|l| l.namespace.clone())
    })?;
    Some((tns, name))
}

/// After the schedule: a versioned worker's versions, their Deployments and its Temporal
/// Worker Deployment. The finalizer waits while Temporal still remembers the stopped workers.
async fn cleanup_versions<S: Schedules>(dj: &DurableJob, ctx: &Context<S>) -> Result<Action, Error> {
    let Some((tns, name)) = versioned_worker(dj, &ctx.settings) else {
        return Ok(Action::await_change());
    };
    let problem = match io::worker_versions::cleanup(ctx, dj, &tns, &name).await {
        Ok(true) => {
            let notice = Notice::normal(
                Reason::VersionDeleted,
                "Delete",
                format!("Deleted the worker's versions and Temporal worker deployment {name}"),
            );
            publish(&ctx.recorder, dj, &notice).await;
            return Ok(Action::await_change());
        }
        Ok(false) => Problem {
            reason: Reason::Deleting,
            message: format!(
                "Waiting for Temporal to forget the stopped workers of worker deployment {name} before deleting its versions (Temporal remembers pollers for up to 5 minutes); the finalizer {} stays until then",
                crate::api::FINALIZER
            ),
            stalled: false,
        },
        Err(p) => Problem {
            reason: Reason::DeleteFailed,
            message: format!(
                "Cannot delete the worker's versions in Temporal worker deployment {name} yet ({}); the finalizer {} stays until they are deleted. To leave them instead, set spec.deletionPolicy: Orphan",
                p.message,
                crate::api::FINALIZER
            ),
            stalled: false,
        },
    };
    hold(dj, ctx, &problem).await?;
    Err(Error::Waiting(problem.message))
}
