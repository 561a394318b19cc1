//! The Temporal steps of a reconcile, through the [`Schedules`] trait only: move, describe,
//! write and read runs for one DurableJob, and delete on cleanup. Each step returns what it
//! learned, or the [`Problem`] that stopped it; no Kubernetes call is made here, so these steps
//! run against an in-memory fake in tests.

use chrono::{DateTime, Utc};
use kube::runtime::events::EventType;
use tracing::info;

use super::Notice;
use crate::api::{DurableJobStatus, FailureStreak, RESUME_ANNOTATION, RunResult};
use crate::controller::pause::{PausedBy, paused_by};
use crate::controller::plan::{self, Decision, PlanInput, WriteReason};
use crate::controller::status::sync_record::{Reference, SyncFacts};
use crate::controller::status::{Problem, RECENT_RUNS};
use crate::controller::{missed, streak};
use crate::desired::schedule::{DesiredSchedule, Owner, ScheduleLocation};
use crate::reason::Reason;
use crate::temporal::{Created, ObservedSchedule, RunRecord, Schedules, TemporalError, WriteOptions};

/// The problem a Temporal failure is, and whether only a person can fix it.
pub(crate) fn problem_for(e: &TemporalError) -> Problem {
    Problem {
        reason: e.reason(),
        message: e.to_string(),
        stalled: e.needs_a_person(),
    }
}

/// What the schedule steps learned and did.
#[derive(Debug, Default)]
pub(crate) struct Synced {
    /// Temporal's description after any write; `None` when the schedule is gone.
    pub observed: Option<ObservedSchedule>,
    pub runs: Option<Vec<RunRecord>>,
    /// What was learned toward the sync record.
    pub sync: SyncFacts,
    pub completed: bool,
    /// Writes made, for the metrics.
    pub writes: Vec<Reason>,
    /// Events to publish.
    pub notices: Vec<Notice>,
    /// Written but gone right away: look again soon.
    pub vanished: bool,
}

/// What the resource says about itself that the schedule steps need.
pub(crate) struct Resource<'a> {
    pub uid: &'a str,
    pub prefix: &'a str,
    pub previous: &'a DurableJobStatus,
    /// The id of a resume request not handled yet.
    pub resume: Option<&'a str>,
}

/// Moves, describes, plans, writes and reads runs: the schedule side of one reconcile.
pub(crate) async fn sync<S: Schedules>(
    schedules: &S,
    desired: &DesiredSchedule,
    r: &Resource<'_>,
    now: DateTime<Utc>,
) -> Result<Synced, Problem> {
    let fail = |e: TemporalError| problem_for(&e);
    let mut out = Synced::default();
    move_if_relocated(schedules, desired, r, &mut out)
        .await
        .map_err(fail)?;
    let desired_hash = desired.hash();
    let resume_requested = r.resume;
    // A DurableJob that never recorded a write creates its schedule straight away; only when
    // Temporal answers that it exists (an earlier write whose status was lost, or someone
    // else's) is it described and decided again. A new schedule costs a create alone when what
    // Temporal holds can be known without a describe (see `controller::created`).
    let optimistic = r.previous.sync.is_none() && r.previous.schedule_id.is_none();
    let observed = if optimistic {
        None
    } else {
        schedules.describe(&desired.location).await.map_err(fail)?
    };
    let (early, counted) = count_streak(schedules, desired, r.previous, observed.as_ref()).await;
    let planned = PlanInput {
        desired,
        desired_hash: &desired_hash,
        previous: r.previous,
        observed: None,
        failure_streak: counted.as_ref(),
        resume_requested,
        now,
    };
    let (decision, written, observed, created) = decide_and_write(schedules, &planned, observed, optimistic)
        .await
        .map_err(fail)?;
    out.sync.failure_streak = Some(kept_streak(desired, r.previous, counted, written, now));
    let reference = |fp: &str| {
        Some(Reference {
            desired_hash: desired_hash.clone(),
            fingerprint: fp.to_string(),
            created_token: None,
        })
    };
    match &decision {
        Decision::Create { options, .. } | Decision::Update { options, .. } => {
            let reason = written.expect("a create or update was written");
            out.writes.push(reason.reason());
            out.notices.push(announce(desired, reason, options));
            let known = created.as_ref().and_then(|c| {
                Some((
                    c,
                    crate::controller::created::as_created(desired, options, c, now)?,
                ))
            });
            if let Some((c, o)) = known {
                out.sync.reference = Some(Reference {
                    desired_hash: desired_hash.clone(),
                    fingerprint: String::new(),
                    created_token: Some(plan::hex_token(&c.conflict_token)),
                });
                after_describe(schedules, desired, r.previous, &o, early, now, &mut out).await;
                out.observed = Some(o);
                return Ok(out);
            }
            out.observed = schedules.describe(&desired.location).await.map_err(fail)?;
            match &out.observed {
                Some(o) => out.sync.reference = reference(&o.fingerprint),
                None => {
                    // gone right away: the record stays as it was
                    out.sync = SyncFacts::default();
                    out.vanished = true;
                    return Ok(out);
                }
            }
        }
        Decision::InSync { record_fingerprint } => {
            if let Some(fp) = record_fingerprint {
                out.sync.reference = reference(fp);
                let by_failure = observed.as_ref().and_then(paused_by) == Some(PausedBy::Failure);
                if !r.previous.paused && by_failure {
                    out.notices.push(failure_pause_notice(desired));
                }
            }
            out.observed = observed;
        }
        Decision::Completed => {
            // the record stays as it was
            out.sync = SyncFacts::default();
            out.completed = true;
            if !r.previous.completed {
                out.notices.push(completed_notice(desired));
            }
        }
        Decision::Foreign { owner } => return Err(owned_elsewhere(desired, owner.as_ref())),
    }
    if let Some(o) = out.observed.take() {
        after_describe(schedules, desired, r.previous, &o, early, now, &mut out).await;
        out.observed = Some(o);
    }
    Ok(out)
}

/// The failure streak to keep: kept while suspendAfterFailures is set; a resume starts it afresh.
fn kept_streak(
    desired: &DesiredSchedule,
    previous: &DurableJobStatus,
    counted: Option<FailureStreak>,
    written: Option<WriteReason>,
    now: DateTime<Utc>,
) -> Option<FailureStreak> {
    let previous_streak = previous.sync.as_ref().and_then(|s| s.failure_streak.as_ref());
    match desired.streak {
        None => None,
        Some(_) if written == Some(WriteReason::Resumed) => Some(streak::fresh(now)),
        Some(_) => counted.or_else(|| previous_streak.cloned()),
    }
}

/// With the schedule described: the listing, the runs (read before deciding, or now) and the
/// missed slots.
async fn after_describe<S: Schedules>(
    schedules: &S,
    desired: &DesiredSchedule,
    previous: &DurableJobStatus,
    o: &ObservedSchedule,
    early: Option<RunsRead>,
    now: DateTime<Utc>,
    out: &mut Synced,
) {
    out.sync.listing = Some(o.listing.clone());
    (out.runs, out.sync.runs_marker) = match early {
        Some(read) => read,
        None => read_runs(schedules, desired, previous, o).await,
    };
    report_missed(
        schedules,
        desired,
        previous,
        o,
        out.runs.as_deref(),
        now,
        &mut out.notices,
    )
    .await;
    if out.notices.iter().any(|n| missed::is_missed(n.reason)) {
        out.sync.missed_checked_at = Some(now);
    }
}

/// The runs read from visibility and the failure streak counted with them, when the spec has
/// `suspendAfterFailures` and the schedule was described. A streak is counted with the newest
/// runs, so they are read before deciding (a pause write does not change which runs there are).
async fn count_streak<S: Schedules>(
    schedules: &S,
    desired: &DesiredSchedule,
    previous: &DurableJobStatus,
    observed: Option<&ObservedSchedule>,
) -> (Option<RunsRead>, Option<FailureStreak>) {
    let (Some(o), Some(_)) = (observed, desired.streak) else {
        return (None, None);
    };
    let read = read_runs(schedules, desired, previous, o).await;
    let recorded: Vec<crate::api::RecentRun> = match &read.0 {
        Some(runs) => runs.iter().map(crate::controller::status::recent_run).collect(),
        None => previous.recent_runs.clone(),
    };
    let before = previous.sync.as_ref().and_then(|s| s.failure_streak.as_ref());
    let counted = streak::advance(before, &o.recent_actions, &recorded);
    (Some(read), Some(counted))
}

/// The runs read from visibility (`None`: keep the previous ones) and their digest.
type RunsRead = (Option<Vec<RunRecord>>, Option<String>);

/// What [`decide_and_write`] decided and did: the decision, the reason written (if any), the
/// description it was decided on, and Temporal's answer to a create.
type Written = (
    Decision,
    Option<WriteReason>,
    Option<ObservedSchedule>,
    Option<Created>,
);

/// Decides (`p` with each description in turn), and makes the write decided: a create
/// Temporal refuses as existing (made earlier, its status lost) is described and decided again.
async fn decide_and_write<S: Schedules>(
    schedules: &S,
    p: &PlanInput<'_>,
    mut observed: Option<ObservedSchedule>,
    mut optimistic: bool,
) -> Result<Written, TemporalError> {
    loop {
        let decision = plan::decide(&PlanInput {
            observed: observed.as_ref(),
            ..p.clone()
        });
        if !matches!(decision, Decision::Create { .. } | Decision::Update { .. }) {
            return Ok((decision, None, observed, None));
        }
        match write(schedules, p.desired, &decision).await {
            Err(TemporalError::Conflict(_)) if optimistic => {
                optimistic = false;
                observed = schedules.describe(&p.desired.location).await?;
            }
            done => {
                let (reason, created) = done?;
                return Ok((decision, Some(reason), observed, created));
            }
        }
    }
}

/// The Warning when Temporal has paused the schedule after a failed run.
fn failure_pause_notice(desired: &DesiredSchedule) -> Notice {
    Notice::warning(
        Reason::PausedAfterFailure,
        "Pause",
        format!(
            "Temporal paused schedule {} after a failed run; set annotation {RESUME_ANNOTATION} to a new value to resume",
            desired.location.id
        ),
    )
}

/// The Event when the schedule has finished and Temporal removed it.
fn completed_notice(desired: &DesiredSchedule) -> Notice {
    Notice::normal(
        Reason::Completed,
        "Complete",
        format!(
            "Schedule {} has finished and is no longer in Temporal; it is not recreated",
            desired.location.id
        ),
    )
}

/// The problem when the schedule id is taken by a schedule this resource did not make.
fn owned_elsewhere(desired: &DesiredSchedule, owner: Option<&Owner>) -> Problem {
    let whose = match owner {
        Some(o) => format!(
            "by operator prefix {:?} for {} (uid {})",
            o.prefix, o.resource, o.uid
        ),
        None => "outside durablejob".to_string(),
    };
    Problem {
        reason: Reason::ScheduleOwnedElsewhere,
        message: format!(
            "Temporal schedule {} in namespace {} was created {whose}; the operator leaves it alone. Delete it (temporal schedule delete --schedule-id '{}') or change --schedule-id-prefix",
            desired.location.id, desired.location.namespace, desired.location.id
        ),
        stalled: true,
    }
}

/// The runs from Temporal's visibility store, and the runs digest they were read for.
/// Visibility (ListWorkflowExecutions) is read only when the description shows other runs than
/// last time, or a run was still in flight: an idle schedule costs one describe. The runs are
/// a view; when they cannot be read (or need not be) `None` keeps the previous ones.
async fn read_runs<S: Schedules>(
    schedules: &S,
    desired: &DesiredSchedule,
    previous: &DurableJobStatus,
    o: &ObservedSchedule,
) -> (Option<Vec<RunRecord>>, Option<String>) {
    let marker = runs_marker(o);
    let seen = previous.sync.as_ref().and_then(|s| s.runs_marker.as_deref()) == Some(marker.as_str());
    let in_flight = previous
        .recent_runs
        .iter()
        .any(|x| x.result == RunResult::Running)
        || crate::controller::status::retry_unseen(previous, chrono::Utc::now());
    // a schedule that never started a run (a new one) has none to read
    let never_ran = o.total_actions() == 0 && o.recent_actions.is_empty() && o.running.is_empty();
    if never_ran && previous.recent_runs.is_empty() {
        return (Some(vec![]), Some(marker));
    }
    if seen && !in_flight {
        return (None, None);
    }
    match schedules.recent_runs(&desired.location, RECENT_RUNS).await {
        Ok(runs) => (Some(runs), Some(marker)),
        Err(_) => (None, None),
    }
}

/// Runs Temporal did not start since the last reconcile: one Warning Event per missed slot.
/// The slots come from `ListScheduleMatchingTimes`, asked only when a count grew; when it
/// cannot be read the misses are still reported, without their times.
async fn report_missed<S: Schedules>(
    schedules: &S,
    desired: &DesiredSchedule,
    previous: &DurableJobStatus,
    o: &ObservedSchedule,
    runs: Option<&[RunRecord]>,
    now: DateTime<Utc>,
    notices: &mut Vec<Notice>,
) {
    let misses = missed::new_misses(&previous.missed_runs_by_cause, &missed::counts(o));
    if misses.is_empty() {
        return;
    }
    let earliest = now - chrono::TimeDelta::hours(1);
    let from = previous
        .sync
        .as_ref()
        .and_then(|s| s.missed_checked_at)
        .map_or(earliest, |t| t.max(earliest));
    // a slot of the last second may be starting right now: not a miss
    let to = now - chrono::TimeDelta::seconds(1);
    let matching = if from < to {
        // the last check ended a second before `from`: this one includes `from` itself
        schedules
            .matching_times(&desired.location, from - chrono::TimeDelta::seconds(1), to)
            .await
            .unwrap_or_default()
    } else {
        vec![]
    };
    let ran: std::collections::BTreeSet<DateTime<Utc>> = o
        .recent_actions
        .iter()
        .map(|a| a.scheduled_time)
        .chain(previous.recent_runs.iter().map(|r| r.scheduled_time))
        .chain(runs.into_iter().flatten().filter_map(|r| r.scheduled_time))
        .collect();
    for (reason, slot) in missed::slots(&misses, &matching, &ran) {
        notices.push(Notice::warning(
            reason,
            "Skip",
            missed::note(reason, slot, &desired.location.id),
        ));
    }
}

/// What the description says about runs: how many started, which ran recently with what
/// result, which are running.
pub(crate) fn runs_marker(o: &ObservedSchedule) -> String {
    let mut text = format!("{}|", o.total_actions());
    for a in &o.recent_actions {
        text.push_str(&format!("{}={:?};", a.run.run_id, a.result));
    }
    text.push('|');
    for r in &o.running {
        text.push_str(&r.run_id);
        text.push(';');
    }
    crate::util::digest::hex_sha256(text.as_bytes())[..16].to_string()
}

/// Creates or updates the schedule as decided; the reason it was written, and Temporal's
/// answer to a create.
async fn write<S: Schedules>(
    schedules: &S,
    desired: &DesiredSchedule,
    decision: &Decision,
) -> Result<(WriteReason, Option<Created>), TemporalError> {
    match decision {
        Decision::Create { options, reason } => {
            let created = schedules.create(desired, options).await?;
            Ok((*reason, Some(created)))
        }
        Decision::Update {
            options,
            conflict_token,
            reason,
        } => {
            schedules.update(desired, options, conflict_token).await?;
            Ok((*reason, None))
        }
        _ => unreachable!("only creates and updates are written"),
    }
}

/// The Event for a write.
fn announce(desired: &DesiredSchedule, reason: WriteReason, options: &WriteOptions) -> Notice {
    if reason == WriteReason::FailureStreak {
        info!(schedule = %desired.location.id, notes = %options.notes, "schedule paused after consecutive failed runs");
        let note = format!(
            "{}; schedule {} is paused: resume with `kubectl durablejob resume` or the {RESUME_ANNOTATION} annotation{}",
            options.notes,
            desired.location.id,
            match desired.streak.and_then(|p| p.resume_after) {
                Some(after) => format!(
                    ", or wait: it resumes by itself after {}",
                    crate::util::duration::format(after)
                ),
                None => String::new(),
            }
        );
        return Notice::warning(Reason::ConsecutiveFailures, "Pause", note);
    }
    let note = match reason {
        WriteReason::Created => "Created",
        WriteReason::Recreated => "Recreated (it had been deleted in Temporal)",
        WriteReason::SpecChanged => "Updated to match the spec",
        WriteReason::DriftRepaired => "Repaired a change made directly in Temporal",
        WriteReason::Adopted => "Took over (no record of an earlier write) and updated",
        WriteReason::Resumed => "Resumed after the pause that followed failed runs",
        WriteReason::FailureStreak => unreachable!("announced above"),
    };
    info!(schedule = %desired.location.id, temporal_namespace = %desired.location.namespace, reason = reason.reason().as_str(), "schedule written");
    let type_ = if reason == WriteReason::DriftRepaired {
        EventType::Warning
    } else {
        EventType::Normal
    };
    Notice {
        type_,
        reason: reason.reason(),
        action: "Sync",
        note: format!(
            "{note}: Temporal schedule {} in namespace {}",
            desired.location.id, desired.location.namespace
        ),
    }
}

/// Deletes the schedule the status names when the spec now puts it elsewhere (another
/// Temporal namespace, another id prefix).
async fn move_if_relocated<S: Schedules>(
    schedules: &S,
    desired: &DesiredSchedule,
    r: &Resource<'_>,
    out: &mut Synced,
) -> Result<(), TemporalError> {
    let (Some(id), Some(ns)) = (&r.previous.schedule_id, &r.previous.temporal_namespace) else {
        return Ok(());
    };
    let old = ScheduleLocation {
        namespace: ns.clone(),
        id: id.clone(),
    };
    if old != desired.location && delete_if_ours(schedules, &old, r.uid, r.prefix).await? {
        out.writes.push(Reason::ScheduleDeleted);
    }
    Ok(())
}

/// Deletes a schedule if the memo says this resource owns it; a missing schedule counts as
/// deleted and a schedule owned by someone else is left alone. Whether it deleted one.
pub(crate) async fn delete_if_ours<S: Schedules>(
    schedules: &S,
    at: &ScheduleLocation,
    uid: &str,
    prefix: &str,
) -> Result<bool, TemporalError> {
    match schedules.describe(at).await? {
        Some(o)
            if o.owner
                .as_ref()
                .is_some_and(|w| w.uid == uid && w.prefix == prefix) =>
        {
            schedules.delete(at).await?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Deletes this resource's schedule wherever it may be. What it deleted, or that and where it
/// stopped.
#[allow(clippy::type_complexity)]
pub(crate) async fn delete_everywhere<S: Schedules>(
    schedules: &S,
    locations: &[ScheduleLocation],
    uid: &str,
    prefix: &str,
) -> Result<Vec<ScheduleLocation>, (Vec<ScheduleLocation>, ScheduleLocation, TemporalError)> {
    let mut deleted = vec![];
    for at in locations {
        match delete_if_ours(schedules, at, uid, prefix).await {
            Ok(true) => deleted.push(at.clone()),
            Ok(false) => {}
            Err(e) => return Err((deleted, at.clone(), e)),
        }
    }
    Ok(deleted)
}
