//! What the run's workflow, its activities and `kubectl durablejob` exchange: the Job's
//! progress as an activity reads it, the answer to the `status` query, the signal and query
//! names, and the retry rule both sides apply. Below the workflow and the activities, so
//! neither imports the other for these.

use std::time::Duration;

use chrono::DateTime;
use serde::{Deserialize, Serialize};

use super::job::failure;
use crate::run_contract::RunRetry;

/// A Job's pods (`status.active`, `ready`, `succeeded`, `failed`).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PodCounts {
    #[serde(default)]
    pub active: i32,
    #[serde(default)]
    pub ready: i32,
    #[serde(default)]
    pub succeeded: i32,
    #[serde(default)]
    pub failed: i32,
}

/// Where a Job stands, as the run's activity last reported it (signal `durablejob.progress`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JobProgress {
    pub job_name: String,
    /// The Job's conditions, as `Type=Status (Reason: message)`.
    #[serde(default)]
    pub conditions: Vec<String>,
    /// The Job's pods.
    #[serde(flatten)]
    pub pods: PodCounts,
    /// When the activity took this reading (its latest heartbeat with news).
    pub observed_at: DateTime<chrono::Utc>,
}

/// The answer to the `status` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RunStatus {
    pub attempt: u32,
    pub job_name: String,
    /// The slot this run is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_time: Option<DateTime<chrono::Utc>>,
    /// When the run started, and when its current attempt did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<chrono::Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_start_time: Option<DateTime<chrono::Utc>>,
    /// Waiting for the backoff before the next attempt.
    #[serde(default)]
    pub backing_off: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub job_conditions: Vec<String>,
    /// The Job's pods.
    #[serde(flatten)]
    pub pods: PodCounts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat_time: Option<DateTime<chrono::Utc>>,
    /// A `cancel` signal arrived; the Job is being deleted.
    #[serde(default)]
    pub cancel_requested: bool,
    /// In a multi-step run: the step that runs now, and the steps finished of all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub steps_done: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub steps_total: u32,
    /// In a fan-out step: its items so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<ItemCounts>,
}

/// A fan-out step's items: how many, and how they stand.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ItemCounts {
    /// The fan-out step.
    #[serde(default)]
    pub step: String,
    pub total: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub running: u32,
}

/// The run's progress as the memo carries it (`durablejob.dev/progress`, read back into
/// `status.runningWorkflows` and `recentRuns`), from the `status` query's view; `None` for a
/// one-Job run.
pub fn progress_of(status: &RunStatus) -> Option<crate::api::RunProgress> {
    if status.steps_total == 0 {
        return None;
    }
    let n = |v: u32| v as i32;
    Some(crate::api::RunProgress {
        steps_done: n(status.steps_done),
        steps_total: n(status.steps_total),
        running: status
            .step
            .iter()
            .flat_map(|s| s.split(','))
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        items: status.items.as_ref().map(|i| crate::api::ItemProgress {
            step: i.step.clone(),
            total: n(i.total),
            succeeded: n(i.succeeded),
            failed: n(i.failed),
            running: n(i.running),
            pending: n(i.total.saturating_sub(i.succeeded + i.failed + i.running)),
        }),
    })
}

/// Whether the run's progress is written to its memo now (each write is one event in its
/// history): a step started or ended, or a fan-out began, at once; a fan-out's items as they
/// end, at most once per `every` (written at `last.1`, now `now`).
pub fn progress_due(
    last: Option<&(crate::api::RunProgress, i64)>,
    next: &crate::api::RunProgress,
    now_ms: i64,
    every: Duration,
) -> bool {
    let Some((last, at)) = last else {
        return true;
    };
    let step_of = |p: &crate::api::RunProgress| p.items.as_ref().map(|i| i.step.clone());
    let steps_moved =
        last.steps_done != next.steps_done || last.running != next.running || step_of(last) != step_of(next);
    last != next && (steps_moved || now_ms - at >= every.as_millis() as i64)
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Signal and query names of `durablejob.run`.
pub mod names {
    pub const STATUS_QUERY: &str = "status";
    pub const CANCEL_SIGNAL: &str = "cancel";
    pub const PROGRESS_SIGNAL: &str = "durablejob.progress";
}

/// Wait before attempt `next` (2, 3, ...).
pub fn backoff(retry: &RunRetry, next: u32) -> Duration {
    let exp = retry.backoff_coefficient.powi(next.saturating_sub(2) as i32);
    let secs = retry.initial_interval.as_secs_f64() * exp;
    Duration::from_secs_f64(secs.min(retry.maximum_interval.as_secs_f64()))
}

/// Whether attempt `n` that failed with `type_name` is retried.
pub fn retries_after(retry: Option<&RunRetry>, n: u32, type_name: &str) -> bool {
    match retry {
        None => false,
        Some(r) => {
            let attempts_left = r.maximum_attempts == 0 || n < r.maximum_attempts as u32;
            let retryable = !r.non_retryable_error_types.iter().any(|t| t == type_name)
                && type_name != failure::INVALID_JOB_TEMPLATE
                && type_name != failure::FORBIDDEN;
            attempts_left && retryable
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(max: i32, non_retryable: &[&str]) -> RunRetry {
        RunRetry {
            initial_interval: Duration::from_secs(1),
            backoff_coefficient: 2.0,
            maximum_interval: Duration::from_secs(5),
            maximum_attempts: max,
            non_retryable_error_types: non_retryable.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn attempts_are_retried_until_maximum_attempts() {
        let r = retry(3, &[]);
        assert!(retries_after(Some(&r), 1, "JobFailed"));
        assert!(retries_after(Some(&r), 2, "JobFailed"));
        assert!(!retries_after(Some(&r), 3, "JobFailed"));
        assert!(
            retries_after(Some(&retry(0, &[])), 100, "JobFailed"),
            "0 means unlimited"
        );
        assert!(
            !retries_after(None, 1, "JobFailed"),
            "no policy: one attempt, like a CronJob"
        );
    }

    #[test]
    fn listed_and_permanent_failure_types_are_not_retried() {
        let r = retry(5, &["JobDeadlineExceeded"]);
        assert!(!retries_after(Some(&r), 1, "JobDeadlineExceeded"));
        assert!(!retries_after(Some(&r), 1, "InvalidJobTemplate"));
        assert!(!retries_after(Some(&r), 1, "Forbidden"));
        assert!(retries_after(Some(&r), 1, "JobFailed"));
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let r = retry(10, &[]);
        let waits: Vec<u64> = (2..=6).map(|n| backoff(&r, n).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 5, 5]);
    }

    fn status(done: u32, running: &str, items: Option<(u32, u32, u32)>) -> RunStatus {
        RunStatus {
            step: (!running.is_empty()).then(|| running.to_string()),
            steps_done: done,
            steps_total: 3,
            items: items.map(|(succeeded, failed, running)| ItemCounts {
                step: "migrate".into(),
                total: 50,
                succeeded,
                failed,
                running,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn progress_names_the_running_steps_and_counts_the_pending_items() {
        assert_eq!(progress_of(&RunStatus::default()), None, "a one-Job run has none");
        let p = progress_of(&status(1, "migrate,report", Some((20, 2, 5)))).unwrap();
        assert_eq!(p.running, ["migrate", "report"]);
        assert_eq!((p.steps_done, p.steps_total), (1, 3));
        let items = p.items.clone().unwrap();
        assert_eq!(
            (items.succeeded, items.failed, items.running, items.pending),
            (20, 2, 5, 23)
        );
        assert_eq!(
            p.summary(),
            "1/3 steps (migrate, report running); 50 items of migrate: 20 succeeded, 2 failed, 5 running, 23 pending"
        );
    }

    #[test]
    fn progress_is_written_at_once_for_steps_and_at_most_every_interval_for_items() {
        let every = Duration::from_secs(5);
        let p = |done, running, items| progress_of(&status(done, running, items)).unwrap();
        let first = p(0, "list", None);
        assert!(progress_due(None, &first, 0, every));
        let last = (first.clone(), 0);
        assert!(!progress_due(Some(&last), &first, 60_000, every), "nothing new");
        assert!(
            progress_due(Some(&last), &p(1, "migrate", None), 100, every),
            "a step ended and one began"
        );
        let fan = (p(1, "migrate", Some((0, 0, 5))), 1_000);
        assert!(
            progress_due(Some(&(p(1, "migrate", None), 900)), &fan.0, 1_000, every),
            "a fan-out began"
        );
        assert!(!progress_due(
            Some(&fan),
            &p(1, "migrate", Some((3, 1, 5))),
            5_999,
            every
        ));
        assert!(progress_due(
            Some(&fan),
            &p(1, "migrate", Some((3, 1, 5))),
            6_000,
            every
        ));
        assert!(
            progress_due(Some(&fan), &p(2, "report", Some((46, 4, 0))), 1_001, every),
            "the fan-out's step ended"
        );
    }
}
