//! The status a reconcile writes, built without I/O from what the reconcile learned.

use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

pub(crate) mod conditions;
pub(crate) mod sync_record;

use self::conditions::ConditionValue;
use crate::api::{DurableJobStatus, RecentRun, RunResult, RunningWorkflow};
use crate::controller::pause::PauseState;
use crate::desired::schedule::DesiredSchedule;
use crate::reason::{ConditionType, Reason};
use crate::temporal::{ObservedSchedule, RunRecord};

/// At most this many `recentRuns`.
pub(crate) const RECENT_RUNS: usize = 10;
/// At most this many `nextRunTimes`.
pub(crate) const NEXT_RUNS: usize = 5;

/// Something that keeps the schedule from matching the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub reason: Reason,
    pub message: String,
    /// True when only a person can fix it (kstatus Stalled); false when retrying may.
    pub stalled: bool,
}

/// What one reconcile learned.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observations<'a> {
    pub desired: Option<&'a DesiredSchedule>,
    /// Temporal's description after any write.
    pub observed: Option<&'a ObservedSchedule>,
    /// Recent runs; `None` when they could not be read (the previous ones are kept).
    pub runs: Option<&'a [RunRecord]>,
    /// What the steps learned toward the sync record ([`sync_record::next`] builds it).
    pub sync: sync_record::SyncFacts,
    pub problem: Option<Problem>,
    /// The schedule finished and Temporal no longer has it.
    pub completed: bool,
    /// The user worker Deployment (spec.worker).
    pub worker: Option<WorkerState>,
    /// Run-control requests handled in this reconcile, in order.
    pub requests: Vec<crate::api::RequestRecord>,
}

/// The state of a user worker Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkerState {
    /// The Deployment serving new runs (the current version's when versioned).
    pub deployment: String,
    pub health: crate::controller::build::worker::WorkerHealth,
    /// With a versioned rollout: where it stands.
    pub versioned: Option<VersionedWorker>,
}

impl WorkerState {
    /// When a versioned worker's rollout wants to look again.
    pub(crate) fn requeue(&self) -> Option<Duration> {
        self.versioned.as_ref().and_then(|v| v.requeue)
    }
}

/// A versioned user worker's rollout, as this reconcile left it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VersionedWorker {
    /// The Temporal Worker Deployment's name.
    pub deployment_name: String,
    pub target: String,
    pub current: Option<String>,
    pub versions: Vec<crate::api::WorkerVersionStatus>,
    /// Why the target is not current yet: the reason and a sentence.
    pub waiting: Option<(Reason, String)>,
    /// When the rollout wants to look again (a wait on Temporal, a sunset deadline).
    pub requeue: Option<Duration>,
    /// Held by `rollout pause`.
    pub paused: bool,
    /// The build a `rollout rollback` routed away from, and since when.
    pub rolled_back: Option<String>,
    pub rolled_back_time: Option<DateTime<Utc>>,
    /// Rollout requests handled in this reconcile.
    pub requests: Vec<crate::api::RequestRecord>,
}

fn secs(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::seconds(1)).unwrap_or(t)
}

/// The full status for this reconcile: the previous one, with what this reconcile learned
/// laid over it, one part at a time.
pub(crate) fn build(
    previous: &DurableJobStatus,
    generation: Option<i64>,
    now: DateTime<Utc>,
    r: &Observations<'_>,
) -> DurableJobStatus {
    let mut s = previous.clone();
    s.observed_generation = generation;
    if !r.requests.is_empty() {
        s.requests = crate::api::record(&previous.requests, r.requests.clone());
    }
    s.sync = sync_record::next(previous.sync.as_ref(), &r.sync);
    if let Some(d) = r.desired {
        s.schedule_id = Some(d.location.id.clone());
        s.temporal_namespace = Some(d.location.namespace.clone());
        s.schedule = Some(d.summary());
    }
    let pause = r.observed.map(|o| PauseState::of(r.desired, o));
    match (r.observed, pause) {
        (Some(o), Some(pause)) => show_schedule(&mut s, o, &pause, r, now),
        _ if r.completed => show_finished(&mut s),
        _ => {}
    }
    if let Some(runs) = r.runs {
        show_runs(&mut s, runs);
    }
    let kept = pause.and_then(|p| p.kept());
    s.message = message(&s, r, kept, pause.and_then(|p| p.resume_at));
    s.worker = r.worker.as_ref().map(worker_status);
    let values = condition_values(&s, r, kept);
    s.conditions = conditions::merge(&previous.conditions, &values, generation, now);
    s
}

/// `status.worker`: the serving Deployment and, when versioned, every version.
fn worker_status(w: &WorkerState) -> crate::api::WorkerStatus {
    let v = w.versioned.as_ref();
    crate::api::WorkerStatus {
        deployment: w.deployment.clone(),
        ready_replicas: w.health.ready_replicas,
        deployment_name: v.map(|v| v.deployment_name.clone()),
        current_build_id: v.and_then(|v| v.current.clone()),
        target_build_id: v.map(|v| v.target.clone()),
        versions: v.map(|v| v.versions.clone()).unwrap_or_default(),
        rollout_paused: v.is_some_and(|v| v.paused),
        rolled_back_build_id: v.and_then(|v| v.rolled_back.clone()),
        rolled_back_time: v.and_then(|v| v.rolled_back_time),
    }
}

/// What Temporal's description says: pause, counts, next runs, runs in flight.
fn show_schedule(
    s: &mut DurableJobStatus,
    o: &ObservedSchedule,
    pause: &PauseState,
    r: &Observations<'_>,
    now: DateTime<Utc>,
) {
    s.paused = o.paused;
    s.paused_reason = pause.reason().map(|r| r.to_string());
    s.action_count = o.total_actions();
    s.missed_runs = o.missed_catchup_window;
    s.missed_runs_by_cause = crate::controller::missed::counts(o);
    s.consecutive_failures = s
        .sync
        .as_ref()
        .and_then(|x| x.failure_streak.as_ref())
        .filter(|_| r.desired.is_some_and(|d| d.streak.is_some()))
        .map(|x| x.count);
    s.completed = o.future_action_times.is_empty()
        && ((o.limited_actions && o.remaining_actions <= 0) || o.end_at.is_some_and(|e| e <= now));
    s.next_run_times = if o.paused {
        Vec::new()
    } else {
        o.future_action_times
            .iter()
            .take(NEXT_RUNS)
            .map(|t| secs(*t))
            .collect()
    };
    if let Some(latest) = o.recent_actions.iter().map(|a| a.scheduled_time).max() {
        s.last_schedule_time = Some(secs(latest));
    }
    s.running_workflows = running_workflows(o, r.runs);
}

/// A schedule that finished and is gone from Temporal: nothing runs or will.
fn show_finished(s: &mut DurableJobStatus) {
    s.completed = true;
    s.paused = false;
    s.paused_reason = None;
    s.next_run_times.clear();
    s.running_workflows.clear();
}

/// The recent runs, and the last times a run was scheduled, succeeded and failed.
fn show_runs(s: &mut DurableJobStatus, runs: &[RunRecord]) {
    s.recent_runs = runs.iter().take(RECENT_RUNS).map(recent_run).collect();
    for run in runs {
        if let Some(t) = run.scheduled_time {
            s.last_schedule_time = s.last_schedule_time.max(Some(secs(t)));
        }
        let Some(closed) = run.close_time.map(secs) else {
            continue;
        };
        match run.result {
            RunResult::Succeeded => s.last_successful_time = s.last_successful_time.max(Some(closed)),
            RunResult::Failed | RunResult::TimedOut => {
                s.last_failure_time = s.last_failure_time.max(Some(closed))
            }
            _ => {}
        }
    }
}

/// `status.message`: the problem, else a kept pause and how to end it, else a finished
/// schedule, else an unavailable worker.
fn message(
    s: &DurableJobStatus,
    r: &Observations<'_>,
    kept: Option<Reason>,
    resume_at: Option<DateTime<Utc>>,
) -> Option<String> {
    let notes = r.observed.map(|o| o.notes.as_str()).unwrap_or_default();
    if let Some(p) = &r.problem {
        return Some(p.message.clone());
    }
    if let Some(w) = r.worker.as_ref().filter(|w| !w.health.available) {
        return Some(format!(
            "Worker Deployment {}: {}",
            w.deployment, w.health.message
        ));
    }
    match kept {
        Some(Reason::ConsecutiveFailures) => Some(streak_message(notes, resume_at)),
        Some(_) => Some(format!(
            "Paused by Temporal after a failed run ({notes}). To resume, set the annotation {} to a new value.",
            crate::api::RESUME_ANNOTATION
        )),
        None if s.completed => Some(
            "The schedule has finished: endAt has passed or runLimit is used up. Raise runLimit or move endAt to run again."
                .into(),
        ),
        None => None,
    }
}

/// The conditions' values (before transition times): a problem, an unavailable worker, or
/// Ready with the reason that says how.
fn condition_values(s: &DurableJobStatus, r: &Observations<'_>, kept: Option<Reason>) -> Vec<ConditionValue> {
    let synced_message = r
        .desired
        .map(|d| {
            format!(
                "Temporal schedule {} in namespace {} matches the spec",
                d.location.id, d.location.namespace
            )
        })
        .unwrap_or_default();
    let worker_down = r.worker.as_ref().is_some_and(|w| !w.health.available);
    let message = s.message.clone().unwrap_or_default();
    let mut values = match &r.problem {
        Some(p) => problem_values(p),
        None if worker_down => vec![
            ConditionValue::new(
                ConditionType::Ready,
                false,
                Reason::WorkerUnavailable,
                message.clone(),
            ),
            ConditionValue::new(
                ConditionType::ScheduleSynced,
                true,
                Reason::Synced,
                synced_message,
            ),
            ConditionValue::new(
                ConditionType::Reconciling,
                true,
                Reason::WorkerUnavailable,
                message,
            ),
            ConditionValue::new(ConditionType::Stalled, false, Reason::AsExpected, ""),
        ],
        None => {
            let ready_reason = match kept {
                _ if s.completed => Reason::Completed,
                Some(reason) => reason,
                None => Reason::Synced,
            };
            vec![
                ConditionValue::new(ConditionType::Ready, true, ready_reason, message),
                ConditionValue::new(
                    ConditionType::ScheduleSynced,
                    true,
                    Reason::Synced,
                    synced_message,
                ),
                ConditionValue::new(ConditionType::Reconciling, false, Reason::AsExpected, ""),
                ConditionValue::new(ConditionType::Stalled, false, Reason::AsExpected, ""),
            ]
        }
    };
    if let Some(w) = &r.worker {
        let (status, reason) = if w.health.available {
            (true, Reason::WorkerAvailable)
        } else {
            (false, Reason::WorkerUnavailable)
        };
        values.push(ConditionValue::new(
            ConditionType::WorkerAvailable,
            status,
            reason,
            w.health.message.clone(),
        ));
        if let Some(v) = &w.versioned {
            values.push(match &v.waiting {
                Some((reason, message)) => {
                    ConditionValue::new(ConditionType::RolloutProgressing, true, *reason, message.clone())
                }
                None => ConditionValue::new(
                    ConditionType::RolloutProgressing,
                    false,
                    Reason::AsExpected,
                    format!("build {} is current", v.target),
                ),
            });
        }
    }
    values
}

/// A problem stops Ready and ScheduleSynced; it is Stalled when only a person can fix it, and
/// Reconciling while retrying may.
fn problem_values(p: &Problem) -> Vec<ConditionValue> {
    let m = p.message.clone();
    vec![
        ConditionValue::new(ConditionType::Ready, false, p.reason, m.clone()),
        ConditionValue::new(ConditionType::ScheduleSynced, false, p.reason, m.clone()),
        if p.stalled {
            ConditionValue::new(ConditionType::Reconciling, false, Reason::AsExpected, "")
        } else {
            ConditionValue::new(ConditionType::Reconciling, true, p.reason, m.clone())
        },
        if p.stalled {
            ConditionValue::new(ConditionType::Stalled, true, p.reason, m)
        } else {
            ConditionValue::new(ConditionType::Stalled, false, Reason::AsExpected, "")
        },
    ]
}

pub(crate) fn recent_run(r: &RunRecord) -> RecentRun {
    RecentRun {
        workflow_id: r.run.workflow_id.clone(),
        run_id: r.run.run_id.clone(),
        scheduled_time: secs(r.scheduled_time.unwrap_or(r.start_time)),
        start_time: secs(r.start_time),
        close_time: r.close_time.map(secs),
        result: r.result,
        job_name: r.job_name.clone(),
        attempts: r.attempts,
        message: r.message.clone(),
        build_id: r.build_id.clone(),
        progress: r.progress.clone(),
    }
}

fn streak_message(notes: &str, resume_at: Option<DateTime<Utc>>) -> String {
    let how = match resume_at {
        Some(t) => format!(
            "It resumes by itself at {} (spec.resumeAfter), or sooner with `kubectl durablejob resume`.",
            t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        None => format!(
            "To resume, run `kubectl durablejob resume` or set the annotation {} to a new value.",
            crate::api::RESUME_ANNOTATION
        ),
    };
    format!("{notes}. {how}")
}

/// The runs in flight, from one observation: those the schedule lists as running (unless the
/// runs read after the description show them closed) and those the runs show running that the
/// schedule does not list (Temporal does not track a run started with overlap AllowAll, as a
/// manual trigger is), so `runningWorkflows` always agrees with `recentRuns`.
fn running_workflows(o: &ObservedSchedule, runs: Option<&[RunRecord]>) -> Vec<RunningWorkflow> {
    let record = |run_id: &str| runs.and_then(|runs| runs.iter().find(|x| x.run.run_id == run_id));
    let closed = |run_id: &str| record(run_id).is_some_and(|x| x.result != RunResult::Running);
    let listed = o.running.iter().filter(|run| !closed(&run.run_id)).map(|run| {
        let record = record(&run.run_id);
        RunningWorkflow {
            workflow_id: run.workflow_id.clone(),
            run_id: run.run_id.clone(),
            attempt: record.and_then(|x| x.attempts),
            job_name: record.and_then(|x| x.job_name.clone()),
            step: record.and_then(|x| x.step.clone()),
            progress: record.and_then(|x| x.progress.clone()),
            start_time: record.map(|x| secs(x.start_time)).or_else(|| {
                o.recent_actions
                    .iter()
                    .find(|a| a.run.run_id == run.run_id)
                    .map(|a| secs(a.actual_time))
            }),
        }
    });
    let unlisted = runs
        .into_iter()
        .flatten()
        .filter(|x| x.result == RunResult::Running)
        .filter(|x| !o.running.iter().any(|run| run.run_id == x.run.run_id))
        .map(in_flight);
    listed.chain(unlisted).collect()
}

/// A run the runs read show running, as `runningWorkflows` lists it.
fn in_flight(x: &RunRecord) -> RunningWorkflow {
    RunningWorkflow {
        workflow_id: x.run.workflow_id.clone(),
        run_id: x.run.run_id.clone(),
        attempt: x.attempts,
        job_name: x.job_name.clone(),
        step: x.step.clone(),
        progress: x.progress.clone(),
        start_time: Some(secs(x.start_time)),
    }
}

/// The status after a reconcile that followed the runs alone ([`crate::controller::follow`]):
/// the previous one with the runs laid over it. Runs in flight are the previous ones, less
/// those the runs show closed, plus those the runs show running; what only the schedule's
/// description says (pause, counts, next times, conditions) stays as the last full look left
/// it.
pub(crate) fn follow_runs(previous: &DurableJobStatus, runs: &[RunRecord]) -> DurableJobStatus {
    let mut s = previous.clone();
    show_runs(&mut s, runs);
    let record = |run_id: &str| runs.iter().find(|x| x.run.run_id == run_id);
    let still = previous
        .running_workflows
        .iter()
        .filter(|w| record(&w.run_id).is_none_or(|x| x.result == RunResult::Running))
        .map(|w| match record(&w.run_id) {
            Some(x) => RunningWorkflow {
                attempt: x.attempts.or(w.attempt),
                job_name: x.job_name.clone().or_else(|| w.job_name.clone()),
                step: x.step.clone().or_else(|| w.step.clone()),
                progress: x.progress.clone().or_else(|| w.progress.clone()),
                start_time: w.start_time.or(Some(secs(x.start_time))),
                ..w.clone()
            },
            None => w.clone(),
        });
    let started = runs
        .iter()
        .filter(|x| x.result == RunResult::Running)
        .filter(|x| {
            !previous
                .running_workflows
                .iter()
                .any(|w| w.run_id == x.run.run_id)
        })
        .map(in_flight);
    s.running_workflows = still.chain(started).collect();
    s
}

/// A retry the operator started (within the hour) whose end `recentRuns` does not show yet:
/// the schedule's description does not list it, so its runs are read until it does.
pub(crate) fn retry_unseen(status: &DurableJobStatus, now: DateTime<Utc>) -> bool {
    use crate::api::{RequestResult, RequestVerb};
    let recent = now - chrono::TimeDelta::hours(1);
    status
        .requests
        .iter()
        .filter(|r| r.verb == RequestVerb::Retry && r.result == RequestResult::Succeeded)
        .filter(|r| r.handled_time > recent)
        .flat_map(|r| r.workflow_ids.iter())
        .any(|w| {
            !status
                .recent_runs
                .iter()
                .any(|x| &x.workflow_id == w && x.result != RunResult::Running)
        })
}

/// When to look again: every few seconds while runs are in flight, just after the next run
/// otherwise, and at least every resync interval.
pub(crate) fn requeue_after(status: &DurableJobStatus, now: DateTime<Utc>, resync: Duration) -> Duration {
    const IN_FLIGHT: Duration = Duration::from_secs(5);
    const AFTER_START: Duration = Duration::from_secs(2);
    // a run Temporal's visibility store still lists as Running though the schedule no longer
    // does (visibility lags by a moment) would otherwise stay Running until the resync
    let lagging = status.recent_runs.iter().any(|r| r.result == RunResult::Running);
    if !status.running_workflows.is_empty() || lagging || retry_unseen(status, now) {
        return IN_FLIGHT.min(resync);
    }
    match status.next_run_times.first() {
        Some(next) => {
            let until = (*next - now).to_std().unwrap_or(Duration::ZERO) + AFTER_START;
            until.clamp(Duration::from_secs(1), resync)
        }
        None => resync,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DurableJob, SyncRecord};
    use crate::temporal::{RecentAction, RunRef};
    use chrono::TimeZone;

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, h, m, s).unwrap()
    }

    fn run(id: &str, scheduled: DateTime<Utc>, close: Option<DateTime<Utc>>, result: RunResult) -> RunRecord {
        RunRecord {
            progress: None,
            run: RunRef {
                workflow_id: format!("wf-{id}"),
                run_id: id.into(),
            },
            scheduled_time: Some(scheduled),
            start_time: scheduled + TimeDelta::milliseconds(1500),
            close_time: close,
            result,
            job_name: Some(format!("job-{id}")),
            attempts: Some(1),
            message: None,
            build_id: None,
            step: None,
        }
    }

    fn observed(running: &[&str]) -> ObservedSchedule {
        ObservedSchedule {
            overlap_skipped: 0,
            buffer_dropped: 0,
            created_hash: None,
            listing: "listed".into(),
            fingerprint: "fp".into(),
            owner: None,
            action_count_base: 1,
            paused: false,
            notes: String::new(),
            conflict_token: vec![],
            action_count: 3,
            missed_catchup_window: 1,
            limited_actions: false,
            remaining_actions: 0,
            running: running
                .iter()
                .map(|r| RunRef {
                    workflow_id: format!("wf-{r}"),
                    run_id: r.to_string(),
                })
                .collect(),
            recent_actions: vec![RecentAction {
                scheduled_time: t(11, 0, 0),
                actual_time: t(11, 0, 0) + TimeDelta::milliseconds(20),
                run: RunRef {
                    workflow_id: "wf-c".into(),
                    run_id: "c".into(),
                },
                result: Some(RunResult::Running),
            }],
            future_action_times: (1..=7)
                .map(|i| t(11 + i, 0, 0) + TimeDelta::milliseconds(250))
                .collect(),
            end_at: None,
        }
    }

    #[test]
    fn a_synced_schedule_reports_ready_runs_and_next_times() {
        let d = DurableJob::test("x").desired_schedule();
        let runs = vec![
            run("c", t(11, 0, 0), None, RunResult::Running),
            run("b", t(10, 0, 0), Some(t(10, 5, 0)), RunResult::Failed),
            run("a", t(9, 0, 0), Some(t(9, 1, 0)), RunResult::Succeeded),
        ];
        let obs = observed(&["c"]);
        let sync = SyncRecord {
            desired_hash: "h".into(),
            observed_fingerprint: "fp".into(),
            handled_resume: None,
            ..Default::default()
        };
        let r = Observations {
            desired: Some(&d),
            observed: Some(&obs),
            runs: Some(&runs),
            sync: sync_record::SyncFacts {
                reference: Some(sync_record::Reference {
                    desired_hash: "h".into(),
                    fingerprint: "fp".into(),
                    created_token: None,
                }),
                listing: Some(obs.listing.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        let s = build_status(&r);
        assert_eq!(s.observed_generation, Some(4));
        assert_eq!(s.schedule_id.as_deref(), Some("durablejob:default/x"));
        assert_eq!(s.temporal_namespace.as_deref(), Some("default"));
        assert_eq!(s.schedule.as_deref(), Some("0 9 * * 1-5"));
        assert_eq!(
            s.next_run_times,
            (1..=5).map(|i| t(11 + i, 0, 0)).collect::<Vec<_>>(),
            "five, whole seconds"
        );
        assert_eq!(s.last_schedule_time, Some(t(11, 0, 0)));
        assert_eq!(s.last_successful_time, Some(t(9, 1, 0)));
        assert_eq!(s.last_failure_time, Some(t(10, 5, 0)));
        assert_eq!(s.recent_runs.len(), 3);
        assert_eq!(s.recent_runs[1].job_name.as_deref(), Some("job-b"));
        assert_eq!(s.recent_runs[1].start_time, t(10, 0, 1));
        assert_eq!(
            s.running_workflows,
            vec![RunningWorkflow {
                progress: None,
                workflow_id: "wf-c".into(),
                run_id: "c".into(),
                start_time: Some(t(11, 0, 1)),
                attempt: Some(1),
                job_name: Some("job-c".into()),
                step: None,
            }],
            "a running run says which attempt and Job it is at"
        );
        assert_eq!((s.action_count, s.missed_runs), (4, 1));
        assert_eq!(
            s.sync,
            Some(SyncRecord {
                listing: Some("listed".into()),
                ..sync
            }),
            "the description's listing is recorded for the sweep"
        );
        assert_eq!(s.message, None);
        let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "Synced"));
        let stalled = s.conditions.iter().find(|c| c.type_ == "Stalled").unwrap();
        assert_eq!(stalled.status, "False");
    }

    fn build_status(r: &Observations<'_>) -> DurableJobStatus {
        build(&DurableJobStatus::default(), Some(4), t(11, 30, 0), r)
    }

    #[test]
    fn a_run_the_later_read_shows_closed_is_not_running() {
        let d = DurableJob::test("x").desired_schedule();
        let runs = vec![
            run("c", t(11, 0, 0), None, RunResult::Running),
            run("b", t(10, 0, 0), Some(t(10, 5, 0)), RunResult::Canceled),
        ];
        let obs = observed(&["c", "b"]);
        let s = build_status(&Observations {
            desired: Some(&d),
            observed: Some(&obs),
            runs: Some(&runs),
            ..Default::default()
        });
        let running: Vec<&str> = s.running_workflows.iter().map(|w| w.run_id.as_str()).collect();
        assert_eq!(running, vec!["c"]);
    }

    #[test]
    fn a_run_the_schedule_does_not_track_is_running_as_the_runs_show_it() {
        // a manual trigger starts with overlap AllowAll: Temporal's description does not list it
        // among the running workflows, the runs read from visibility do
        let d = DurableJob::test("x").desired_schedule();
        let runs = vec![
            run("manual", t(11, 20, 0), None, RunResult::Running),
            run("c", t(11, 0, 0), None, RunResult::Running),
            run("b", t(10, 0, 0), Some(t(10, 5, 0)), RunResult::Succeeded),
        ];
        let obs = observed(&["c"]);
        let s = build_status(&Observations {
            desired: Some(&d),
            observed: Some(&obs),
            runs: Some(&runs),
            ..Default::default()
        });
        let running: Vec<(&str, Option<&str>)> = s
            .running_workflows
            .iter()
            .map(|w| (w.run_id.as_str(), w.job_name.as_deref()))
            .collect();
        assert_eq!(
            running,
            vec![("c", Some("job-c")), ("manual", Some("job-manual"))]
        );
        let recent_running: Vec<&str> = s
            .recent_runs
            .iter()
            .filter(|r| r.result == RunResult::Running)
            .map(|r| r.run_id.as_str())
            .collect();
        assert!(
            recent_running
                .iter()
                .all(|id| running.iter().any(|(r, _)| r == id)),
            "every run recentRuns shows running is in runningWorkflows: {recent_running:?}"
        );
        assert_eq!(
            requeue_after(&s, t(11, 30, 0), Duration::from_secs(3600)),
            Duration::from_secs(5),
            "runs in flight are looked at every few seconds"
        );
    }

    #[test]
    fn an_invalid_spec_is_stalled_with_the_message() {
        let p = Problem {
            reason: Reason::InvalidSpec,
            message: "Invalid spec: spec.schedule.timeZone: unknown".into(),
            stalled: true,
        };
        let s = build_status(&Observations {
            problem: Some(p),
            ..Default::default()
        });
        let get = |ty: &str| s.conditions.iter().find(|c| c.type_ == ty).unwrap().clone();
        assert_eq!(
            (get("Ready").status.as_str(), get("Ready").reason.as_str()),
            ("False", "InvalidSpec")
        );
        assert_eq!(get("Stalled").status, "True");
        assert_eq!(get("Reconciling").status, "False");
        assert!(s.message.unwrap().contains("spec.schedule.timeZone"));
    }

    #[test]
    fn an_outage_is_reconciling_not_stalled_and_keeps_what_was_known() {
        let previous = DurableJobStatus {
            next_run_times: vec![t(12, 0, 0)],
            action_count: 9,
            ..Default::default()
        };
        let d = DurableJob::test("x").desired_schedule();
        let p = Problem {
            reason: Reason::TemporalUnavailable,
            message: "Temporal is unreachable".into(),
            stalled: false,
        };
        let s = build(
            &previous,
            Some(1),
            t(11, 0, 0),
            &Observations {
                desired: Some(&d),
                problem: Some(p),
                ..Default::default()
            },
        );
        let get = |ty: &str| s.conditions.iter().find(|c| c.type_ == ty).unwrap().clone();
        assert_eq!(get("Reconciling").status, "True");
        assert_eq!(get("Stalled").status, "False");
        assert_eq!((s.next_run_times.len(), s.action_count), (1, 9));
    }

    #[test]
    fn a_suspended_schedule_shows_no_next_runs() {
        let d = DurableJob::test("x").suspended().desired_schedule();
        let obs = ObservedSchedule {
            paused: true,
            ..observed(&[])
        };
        let s = build_status(&Observations {
            desired: Some(&d),
            observed: Some(&obs),
            ..Default::default()
        });
        assert!(s.paused && s.next_run_times.is_empty());
        assert_eq!(s.paused_reason.as_deref(), Some("Suspended"));
    }

    #[test]
    fn a_pause_made_in_temporal_by_someone_else_is_named_by_a_reason_too() {
        let d = DurableJob::test("x").desired_schedule();
        let obs = ObservedSchedule {
            paused: true,
            notes: "paused by hand in the UI".into(),
            ..observed(&[])
        };
        let s = build_status(&Observations {
            desired: Some(&d),
            observed: Some(&obs),
            ..Default::default()
        });
        assert!(s.paused);
        assert_eq!(s.paused_reason.as_deref(), Some(Reason::Paused.as_str()));
        assert_eq!(
            Reason::Paused.as_str(),
            "Paused",
            "the value status showed before"
        );
    }

    #[test]
    fn a_failure_pause_tells_how_to_resume() {
        let mut dj = DurableJob::test("x");
        dj.spec.pause_on_failure = true;
        let d = dj.desired_schedule();
        let obs = ObservedSchedule {
            paused: true,
            notes: "paused due to workflow failure: w: boom".into(),
            ..observed(&[])
        };
        let s = build_status(&Observations {
            desired: Some(&d),
            observed: Some(&obs),
            ..Default::default()
        });
        assert_eq!(s.paused_reason.as_deref(), Some("RunFailed"));
        assert!(s.message.as_deref().unwrap().contains("durablejob.dev/resume"));
        let ready = s.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "PausedAfterFailure"),
            "a failed run never makes Ready false"
        );
    }

    #[test]
    fn a_used_up_schedule_is_completed() {
        let d = DurableJob::test("x").desired_schedule();
        let obs = ObservedSchedule {
            limited_actions: true,
            remaining_actions: 0,
            future_action_times: vec![],
            ..observed(&[])
        };
        let s = build_status(&Observations {
            desired: Some(&d),
            observed: Some(&obs),
            ..Default::default()
        });
        assert!(s.completed);
        let gone = build_status(&Observations {
            desired: Some(&d),
            completed: true,
            ..Default::default()
        });
        assert!(gone.completed);
        assert_eq!(
            gone.conditions
                .iter()
                .find(|c| c.type_ == "Ready")
                .unwrap()
                .reason,
            "Completed"
        );
    }

    #[test]
    fn an_unchanged_reconcile_builds_an_identical_status() {
        let d = DurableJob::test("x").desired_schedule();
        let obs = observed(&[]);
        let r = Observations {
            desired: Some(&d),
            observed: Some(&obs),
            runs: Some(&[]),
            ..Default::default()
        };
        let first = build(&DurableJobStatus::default(), Some(1), t(11, 0, 0), &r);
        let second = build(&first, Some(1), t(11, 0, 30), &r);
        assert_eq!(first, second, "nothing to write when only the clock moved");
    }

    #[test]
    fn a_retry_is_looked_for_until_recent_runs_show_it_ended() {
        use crate::api::{RequestRecord, RequestResult, RequestVerb};
        let now = t(11, 0, 0);
        let retry = |handled| RequestRecord {
            id: "re".into(),
            verb: RequestVerb::Retry,
            handled_time: handled,
            result: RequestResult::Succeeded,
            message: String::new(),
            workflow_ids: vec!["wf-retry".into()],
            run_ids: vec!["r".into()],
        };
        let mut s = DurableJobStatus {
            requests: vec![retry(t(10, 59, 0))],
            ..Default::default()
        };
        assert!(retry_unseen(&s, now), "started, not listed yet");
        assert_eq!(
            requeue_after(&s, now, Duration::from_secs(300)),
            Duration::from_secs(5)
        );
        s.recent_runs = vec![recent_run(&run("retry", t(10, 59, 0), None, RunResult::Running))];
        assert!(retry_unseen(&s, now), "listed, still running");
        s.recent_runs = vec![recent_run(&run(
            "retry",
            t(10, 59, 0),
            Some(now),
            RunResult::Succeeded,
        ))];
        assert!(!retry_unseen(&s, now), "seen ended");
        s.recent_runs.clear();
        s.requests = vec![retry(t(9, 0, 0))];
        assert!(!retry_unseen(&s, now), "an old retry is not looked for for ever");
    }

    #[test]
    fn requeue_follows_runs_and_the_next_start() {
        let resync = Duration::from_secs(300);
        let now = t(11, 0, 0);
        let busy = DurableJobStatus {
            running_workflows: vec![RunningWorkflow {
                progress: None,
                workflow_id: "w".into(),
                run_id: "r".into(),
                start_time: None,
                attempt: None,
                job_name: None,
                step: None,
            }],
            ..Default::default()
        };
        assert_eq!(requeue_after(&busy, now, resync), Duration::from_secs(5));
        let soon = DurableJobStatus {
            next_run_times: vec![t(11, 0, 40)],
            ..Default::default()
        };
        assert_eq!(requeue_after(&soon, now, resync), Duration::from_secs(42));
        let later = DurableJobStatus {
            next_run_times: vec![t(15, 0, 0)],
            ..Default::default()
        };
        assert_eq!(requeue_after(&later, now, resync), resync);
        assert_eq!(requeue_after(&DurableJobStatus::default(), now, resync), resync);
        let lagging = DurableJobStatus {
            recent_runs: vec![recent_run(&run("a", t(10, 0, 0), None, RunResult::Running))],
            ..later
        };
        assert_eq!(
            requeue_after(&lagging, now, resync),
            Duration::from_secs(5),
            "a run the visibility store still calls Running is looked at again soon"
        );
    }

    #[test]
    fn following_the_runs_alone_moves_runs_in_and_out_of_flight_and_keeps_what_the_description_said() {
        let d = DurableJob::test("x").desired_schedule();
        let obs = observed(&["c"]);
        let looked = build_status(&Observations {
            desired: Some(&d),
            observed: Some(&obs),
            runs: Some(&[run("c", t(11, 0, 0), None, RunResult::Running)]),
            ..Default::default()
        });
        // c's Job finished and the next slot's run d started: the runs alone show both
        let runs = vec![
            run("d", t(11, 20, 0), None, RunResult::Running),
            run("c", t(11, 0, 0), Some(t(11, 21, 0)), RunResult::Succeeded),
        ];
        let s = follow_runs(&looked, &runs);
        let running: Vec<(&str, Option<&str>)> = s
            .running_workflows
            .iter()
            .map(|w| (w.run_id.as_str(), w.job_name.as_deref()))
            .collect();
        assert_eq!(running, vec![("d", Some("job-d"))]);
        assert_eq!(s.recent_runs.len(), 2);
        assert_eq!(s.last_successful_time, Some(t(11, 21, 0)));
        assert_eq!(s.last_schedule_time, Some(t(11, 20, 0)));
        assert_eq!(
            (&s.next_run_times, s.action_count, &s.conditions, s.paused),
            (
                &looked.next_run_times,
                looked.action_count,
                &looked.conditions,
                looked.paused
            ),
            "what only the description says stays as the full look left it"
        );

        // a run the read does not show (visibility lags, or it is beyond the recent ones) stays
        let s = follow_runs(&looked, &[]);
        assert_eq!(s.running_workflows, looked.running_workflows);
        assert_eq!(follow_runs(&s, &[]), s, "nothing new: nothing to write");
    }
}
