//! What the operator writes back: `DurableJob.status`.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of a DurableJob, taken from Temporal after each reconcile.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DurableJobStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Ready, ScheduleSynced, WorkerAvailable, Reconciling, Stalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::schema_helpers::conditions_schema")]
    pub conditions: Vec<Condition>,

    /// The Temporal schedule id: `temporal schedule describe --schedule-id <scheduleId>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_id: Option<String>,

    /// Temporal namespace holding the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal_namespace: Option<String>,

    /// Human-readable summary of when runs start, e.g. `0 9 * * 1-5 (Europe/Berlin)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,

    /// Whether the schedule is paused in Temporal.
    #[serde(default)]
    pub paused: bool,

    /// Why it is paused: Suspended (spec.suspend), RunFailed (pauseOnFailure),
    /// ConsecutiveFailures (spec.suspendAfterFailures) or Paused (in Temporal, by someone else,
    /// until the operator unpauses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,

    /// The schedule will start no more runs (endAt passed or runLimit used up).
    #[serde(default)]
    pub completed: bool,

    /// The next (up to five) scheduled start times.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next_run_times: Vec<DateTime<Utc>>,

    /// Scheduled time of the most recent run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<DateTime<Utc>>,

    /// Close time of the most recent successful run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<DateTime<Utc>>,

    /// Close time of the most recent failed run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure_time: Option<DateTime<Utc>>,

    /// The last (up to ten) runs, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_runs: Vec<RecentRun>,

    /// Runs going on now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub running_workflows: Vec<RunningWorkflow>,

    /// Runs Temporal skipped because they were later than catchupWindow.
    #[serde(default)]
    pub missed_runs: i64,

    /// Failed runs in a row (after their retries), with spec.suspendAfterFailures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<i64>,

    /// Runs Temporal did not start, by cause (its counts for the schedule); each one is also
    /// a Warning Event naming the slot.
    #[serde(default, skip_serializing_if = "MissedRuns::is_empty")]
    pub missed_runs_by_cause: MissedRuns,

    /// Runs the schedule has started in total (counts toward runLimit).
    #[serde(default)]
    pub action_count: i64,

    /// The user worker Deployment (spec.worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerStatus>,

    /// What needs attention, in one sentence; empty when all is well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,

    /// Run-control requests handled (`kubectl durablejob trigger|backfill|cancel|resume`),
    /// newest first: each request id is acted on once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<super::RequestRecord>,

    /// Bookkeeping of the last write to Temporal; see `sync` in the operator's docs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncRecord>,
}

/// Enough to tell "in sync" without re-implementing Temporal's normalization: a hash of the
/// schedule the operator built from the spec, and a fingerprint of Temporal's description
/// taken after the operator wrote it (right after an update; at the first describe after a
/// create, which until then is known by the conflict token Temporal answered it with).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncRecord {
    /// Hash of the desired schedule built from the spec.
    pub desired_hash: String,
    /// Fingerprint of the schedule as Temporal described it after the last write; empty while
    /// a schedule created since has not been described (see `createdConflictToken`).
    pub observed_fingerprint: String,
    /// The conflict token (hex) Temporal answered the operator's create with, kept until the
    /// first describe after it. Every write to a schedule moves its token, so a describe that
    /// shows this token, and the paused state and notes the operator wrote, shows the schedule
    /// as created; its fingerprint then becomes `observedFingerprint`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_conflict_token: Option<String>,
    /// Legacy: the last `durablejob.dev/resume` value an operator older than the request
    /// ledger (`status.requests`) acted on. Still read, and kept, so that value is not acted on
    /// again; no longer set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handled_resume: Option<String>,
    /// Digest of the runs Temporal's description showed when `recentRuns` was last read from
    /// its visibility store; while it is unchanged (and no run is in flight) that read is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_marker: Option<String>,
    /// What Temporal's schedule list showed of the schedule at the last describe (a hash); a
    /// sweep of `ListSchedules` that shows something else wakes the DurableJob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listing: Option<String>,
    /// The count of failed runs in a row toward spec.suspendAfterFailures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_streak: Option<FailureStreak>,
    /// Missed slots up to this time have been reported as Events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed_checked_at: Option<DateTime<Utc>>,
}

/// Failed runs in a row, carried from reconcile to reconcile.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct FailureStreak {
    /// Failed runs in a row so far.
    #[serde(default)]
    pub count: i64,
    /// The newest of them (workflow ids, newest first, at most ten).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<String>,
    /// Runs that started at or before this are counted already, or came before the last resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counted_until: Option<DateTime<Utc>>,
}

/// Runs Temporal did not start, by cause.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MissedRuns {
    /// Due longer ago than spec.catchupWindow when Temporal could start them (an outage).
    #[serde(default)]
    pub catchup_window_passed: i64,
    /// Due while a run was still going, with overlapPolicy Skip.
    #[serde(default)]
    pub overlap_skipped: i64,
    /// Due while the buffer of BufferOne/BufferAll was full.
    #[serde(default)]
    pub buffer_full: i64,
}

impl MissedRuns {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A status condition (the shape of metav1.Condition).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Ready, ScheduleSynced, WorkerAvailable, Reconciling or Stalled.
    #[serde(rename = "type")]
    pub type_: String,
    /// True, False or Unknown.
    pub status: String,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable details.
    #[serde(default)]
    pub message: String,
    /// When status last changed.
    pub last_transition_time: DateTime<Utc>,
    /// The generation this condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One run of the schedule.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RecentRun {
    pub workflow_id: String,
    pub run_id: String,
    /// The slot this run is for.
    pub scheduled_time: DateTime<Utc>,
    pub start_time: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close_time: Option<DateTime<Utc>>,
    pub result: RunResult,
    /// Job created by the built-in runner for the last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// Attempts made (built-in runner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
    /// Why it failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The worker version the run started on (versioned user workers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    /// A multi-step run: how far its steps and its last fan-out got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<RunProgress>,
}

/// How far a multi-step run got, as the built-in runner last wrote it to the run's memo
/// (`durablejob.dev/progress`): when a step starts and ends, and at most every 5 seconds while
/// a fan-out's items end.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RunProgress {
    pub steps_done: i32,
    pub steps_total: i32,
    /// The steps running now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub running: Vec<String>,
    /// The fan-out running now, or the last one that ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<ItemProgress>,
}

/// A fan-out step's items: how many, and where they stand.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ItemProgress {
    pub step: String,
    pub total: i32,
    pub succeeded: i32,
    pub failed: i32,
    pub running: i32,
    /// Not started yet (or, once the step ended, never started: a failed item stopped it).
    pub pending: i32,
}

impl RunProgress {
    /// `2/3 steps (b running); items of fan: 20 succeeded, 2 failed, 5 running, 23 pending`.
    pub fn summary(&self) -> String {
        let mut s = format!("{}/{} steps", self.steps_done, self.steps_total);
        if !self.running.is_empty() {
            s.push_str(&format!(" ({} running)", self.running.join(", ")));
        }
        if let Some(i) = &self.items {
            s.push_str(&format!(
                "; {} items of {}: {} succeeded, {} failed, {} running, {} pending",
                i.total, i.step, i.succeeded, i.failed, i.running, i.pending
            ));
        }
        s
    }
}

/// Outcome of a run.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunResult {
    Running,
    Succeeded,
    /// Completed, but items of a fan-out step with continueOnItemFailure failed (the message
    /// names them; `kubectl durablejob retry` runs them again).
    PartiallyFailed,
    Failed,
    Canceled,
    Terminated,
    TimedOut,
}

/// A run in flight.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RunningWorkflow {
    pub workflow_id: String,
    pub run_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<DateTime<Utc>>,
    /// The attempt in progress (built-in runner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<i32>,
    /// The Job of that attempt (built-in runner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_name: Option<String>,
    /// A multi-step run: the step that started last, as `name (k/n)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// A multi-step run: steps done of all, the steps running, and the items of its fan-out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<RunProgress>,
}

/// State of the user worker Deployment.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatus {
    /// The Deployment that serves new runs: the current version's, or `<name>-worker` (with
    /// rollout None, or before a version became current).
    pub deployment: String,
    #[serde(default)]
    pub ready_replicas: i32,
    /// The Temporal Worker Deployment the versions belong to (`<namespace>/<name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_name: Option<String>,
    /// The build id new runs go to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_build_id: Option<String>,
    /// The build id the spec asks for; differs from currentBuildId while it rolls out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_build_id: Option<String>,
    /// Every version that still has a Deployment or a Temporal version, the target first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<WorkerVersionStatus>,
    /// `kubectl durablejob rollout pause` holds the rollout where it stands until `resume`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollout_paused: bool,
    /// The build id `rollout rollback` routed away from; it is not routed to again until the
    /// spec asks for another build or `rollout resume`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_build_id: Option<String>,
    /// When it was rolled back; its pods are scaled down `sunset.scaledownDelay` later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolled_back_time: Option<DateTime<Utc>>,
}

/// One version of a versioned user worker.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkerVersionStatus {
    pub build_id: String,
    /// Its Deployment; absent once deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    pub state: WorkerVersionState,
    #[serde(default)]
    pub ready_replicas: i32,
    /// Temporal has seen its workers poll.
    #[serde(default)]
    pub polled: bool,
    /// While Ramping: the percent of new runs it gets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ramp_percentage: Option<i32>,
    /// The schedule's runs still open on it, among `recentRuns` (a Draining version waits for
    /// its pinned runs to finish).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub open_runs: i32,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// Where a worker version stands.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WorkerVersionState {
    /// Deployed, not routed to (yet).
    #[default]
    Inactive,
    /// A share of new runs goes to it (Progressive).
    Ramping,
    /// New runs go to it.
    Current,
    /// No longer current; runs pinned to it may still be open.
    Draining,
    /// No open run uses it; it is scaled down and deleted on the sunset's schedule.
    Drained,
}
