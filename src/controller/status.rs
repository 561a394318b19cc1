//! The status a reconcile writes, built without I/O from what the reconcile learned.

use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use super::conditions::{self, ConditionValue, reasons, types};
use crate::api::{DurableJobStatus, RecentRun, RunResult, RunningWorkflow, SyncRecord};
use crate::schedule::DesiredSchedule;
use crate::temporal::{ObservedSchedule, RunRecord};

/// At most this many `recentRuns`.
pub const RECENT_RUNS: usize = 10;
/// At most this many `nextRunTimes`.
pub const NEXT_RUNS: usize = 5;

/// Something that keeps the schedule from matching the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
    /// True when only a person can fix it (kstatus Stalled); false when retrying may.
    pub stalled: bool,
}

/// What one reconcile learned.
#[derive(Debug, Clone, Default)]
pub struct Report<'a> {
    pub desired: Option<&'a DesiredSchedule>,
    /// Temporal's description after any write.
    pub observed: Option<&'a ObservedSchedule>,
    /// Recent runs; `None` when they could not be read (the previous ones are kept).
    pub runs: Option<&'a [RunRecord]>,
    /// The new sync record; `None` keeps the previous one.
    pub sync: Option<SyncRecord>,
    pub problem: Option<Problem>,
    /// The schedule finished and Temporal no longer has it.
    pub completed: bool,
}

fn secs(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(TimeDelta::seconds(1)).unwrap_or(t)
}

/// The full status for this reconcile.
pub fn build(
    previous: &DurableJobStatus,
    generation: Option<i64>,
    now: DateTime<Utc>,
    r: &Report<'_>,
) -> DurableJobStatus {
    let mut s = previous.clone();
    s.observed_generation = generation;
    if let Some(sync) = &r.sync {
        s.sync = Some(sync.clone());
    }
    if let Some(d) = r.desired {
        s.schedule_id = Some(d.location.id.clone());
        s.temporal_namespace = Some(d.location.namespace.clone());
        s.schedule = Some(d.summary());
    }

    if let Some(o) = r.observed {
        s.paused = o.paused;
        s.paused_reason = if !o.paused {
            None
        } else if r.desired.is_some_and(|d| d.paused) {
            Some("Suspended".into())
        } else if o.paused_by_failure() {
            Some("RunFailed".into())
        } else {
            Some("Paused".into())
        };
        s.action_count = o.total_actions();
        s.missed_runs = o.missed_catchup_window;
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
        s.running_workflows = o
            .running
            .iter()
            .map(|run| RunningWorkflow {
                workflow_id: run.workflow_id.clone(),
                run_id: run.run_id.clone(),
                start_time: r
                    .runs
                    .and_then(|runs| runs.iter().find(|x| x.run.run_id == run.run_id))
                    .map(|x| secs(x.start_time))
                    .or_else(|| {
                        o.recent_actions
                            .iter()
                            .find(|a| a.run.run_id == run.run_id)
                            .map(|a| secs(a.actual_time))
                    }),
            })
            .collect();
    } else if r.completed {
        s.completed = true;
        s.paused = false;
        s.paused_reason = None;
        s.next_run_times.clear();
        s.running_workflows.clear();
    }

    if let Some(runs) = r.runs {
        s.recent_runs = runs.iter().take(RECENT_RUNS).map(recent_run).collect();
        for run in runs {
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
            if let Some(t) = run.scheduled_time {
                s.last_schedule_time = s.last_schedule_time.max(Some(secs(t)));
            }
        }
    }

    let failure_paused = r.observed.is_some_and(|o| o.paused_by_failure())
        && r.desired.is_some_and(|d| d.pause_on_failure && !d.paused);
    s.message = match (&r.problem, failure_paused) {
        (Some(p), _) => Some(p.message.clone()),
        (None, true) => Some(format!(
            "Paused by Temporal after a failed run ({}). To resume, set the annotation {} to a new value.",
            r.observed.map(|o| o.notes.as_str()).unwrap_or_default(),
            crate::api::RESUME_ANNOTATION
        )),
        (None, false) if s.completed => Some(
            "The schedule has finished: endAt has passed or runLimit is used up. Raise runLimit or move endAt to run again."
                .into(),
        ),
        _ => None,
    };

    let values = match &r.problem {
        None => {
            let ready_reason = if s.completed {
                reasons::COMPLETED
            } else if failure_paused {
                reasons::PAUSED_AFTER_FAILURE
            } else {
                reasons::SYNCED
            };
            let synced_message = match r.desired {
                Some(d) => format!(
                    "Temporal schedule {} in namespace {} matches the spec",
                    d.location.id, d.location.namespace
                ),
                None => String::new(),
            };
            vec![
                ConditionValue::new(
                    types::READY,
                    true,
                    ready_reason,
                    s.message.clone().unwrap_or_default(),
                ),
                ConditionValue::new(types::SCHEDULE_SYNCED, true, reasons::SYNCED, synced_message),
                ConditionValue::new(types::RECONCILING, false, reasons::AS_EXPECTED, ""),
                ConditionValue::new(types::STALLED, false, reasons::AS_EXPECTED, ""),
            ]
        }
        Some(p) => vec![
            ConditionValue::new(types::READY, false, p.reason, p.message.clone()),
            ConditionValue::new(types::SCHEDULE_SYNCED, false, p.reason, p.message.clone()),
            if p.stalled {
                ConditionValue::new(types::RECONCILING, false, reasons::AS_EXPECTED, "")
            } else {
                ConditionValue::new(types::RECONCILING, true, p.reason, p.message.clone())
            },
            if p.stalled {
                ConditionValue::new(types::STALLED, true, p.reason, p.message.clone())
            } else {
                ConditionValue::new(types::STALLED, false, reasons::AS_EXPECTED, "")
            },
        ],
    };
    s.conditions = conditions::merge(&previous.conditions, &values, generation, now);
    s
}

fn recent_run(r: &RunRecord) -> RecentRun {
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
    }
}

/// When to look again: every few seconds while runs are in flight, just after the next run
/// otherwise, and at least every resync interval.
pub fn requeue_after(status: &DurableJobStatus, now: DateTime<Utc>, resync: Duration) -> Duration {
    const IN_FLIGHT: Duration = Duration::from_secs(5);
    const AFTER_START: Duration = Duration::from_secs(2);
    if !status.running_workflows.is_empty() {
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
