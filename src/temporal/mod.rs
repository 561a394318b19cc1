//! The Temporal side, behind a small trait of the operator's own. The SDK implementation
//! lives in [`sdk`]; everything else sees only the types here.

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::api::{OverlapPolicy, RunResult};
use crate::desired::schedule::{DesiredSchedule, Owner, ScheduleLocation};
use crate::reason::Reason;

pub mod connect;
#[cfg(test)]
pub mod fake;
pub mod limit;
pub mod retries;
pub mod sdk;
pub mod worker_deployments;

/// Errors talking to Temporal, classified by what the reconcile should do about them.
#[derive(Debug, thiserror::Error)]
pub enum TemporalError {
    /// Temporal could not be reached (connection refused, timeout, unavailable).
    #[error("Temporal is unreachable: {0}")]
    Unavailable(String),
    /// Temporal refused the request as invalid (bad cron, unknown search attribute, ...).
    #[error("Temporal rejected the schedule: {0}")]
    Rejected(String),
    /// The schedule changed between describe and update (conflict token) or was created concurrently.
    #[error("the schedule changed concurrently: {0}")]
    Conflict(String),
    /// The namespace does not exist.
    #[error("Temporal namespace {0:?} does not exist")]
    NamespaceNotFound(String),
    /// Credentials were refused.
    #[error("Temporal refused the operator's credentials: {0}")]
    PermissionDenied(String),
    /// Anything else.
    #[error("Temporal request failed: {0}")]
    Other(String),
}

impl TemporalError {
    /// The reason this failure is reported and counted under.
    pub fn reason(&self) -> Reason {
        match self {
            TemporalError::Unavailable(_) => Reason::TemporalUnavailable,
            TemporalError::Rejected(_) => Reason::TemporalRejected,
            TemporalError::Conflict(_) => Reason::Conflict,
            TemporalError::NamespaceNotFound(_) => Reason::NamespaceNotFound,
            TemporalError::PermissionDenied(_) => Reason::PermissionDenied,
            TemporalError::Other(_) => Reason::TemporalError,
        }
    }

    /// Whether only a person can fix it (retrying will not).
    pub fn needs_a_person(&self) -> bool {
        matches!(
            self,
            TemporalError::Rejected(_)
                | TemporalError::NamespaceNotFound(_)
                | TemporalError::PermissionDenied(_)
        )
    }
}

/// A schedule as Temporal describes it, reduced to what the operator uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedSchedule {
    /// Hash of the schedule definition (spec, action, policies, paused state and notes), taken
    /// over a canonical form so two describes of an unchanged schedule give the same value.
    pub fingerprint: String,
    /// Owner recorded in the memo; `None` if the schedule was not made by this operator.
    pub owner: Option<Owner>,
    /// Runs started by earlier incarnations, from the memo.
    pub action_count_base: i64,
    /// Hash of the desired schedule it was created from, from the memo (`None` on schedules
    /// created before the operator recorded it).
    pub created_hash: Option<String>,
    pub paused: bool,
    pub notes: String,
    pub conflict_token: Vec<u8>,
    pub action_count: i64,
    pub missed_catchup_window: i64,
    /// Runs skipped because one was still going (overlap policy Skip).
    pub overlap_skipped: i64,
    /// Runs dropped because the buffer (BufferOne/BufferAll) was full.
    pub buffer_dropped: i64,
    pub limited_actions: bool,
    pub remaining_actions: i64,
    pub running: Vec<RunRef>,
    pub recent_actions: Vec<RecentAction>,
    pub future_action_times: Vec<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    /// What `ListSchedules` shows of this schedule (spec, workflow type, paused, newest run),
    /// hashed the same way from either answer: a sweep whose listing differs from the one
    /// recorded at the last describe knows the schedule changed since.
    pub listing: String,
}

impl ObservedSchedule {
    /// Runs started in total, across re-creations of the schedule.
    pub fn total_actions(&self) -> i64 {
        self.action_count_base + self.action_count
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRef {
    pub workflow_id: String,
    pub run_id: String,
}

/// One entry of the schedule's recent actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentAction {
    pub scheduled_time: DateTime<Utc>,
    pub actual_time: DateTime<Utc>,
    pub run: RunRef,
    pub result: Option<RunResult>,
}

/// One workflow run started by a schedule, from Temporal's visibility store.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub run: RunRef,
    pub scheduled_time: Option<DateTime<Utc>>,
    pub start_time: DateTime<Utc>,
    pub close_time: Option<DateTime<Utc>>,
    pub result: RunResult,
    /// Run details the built-in runner records in the workflow memo.
    pub job_name: Option<String>,
    pub attempts: Option<i32>,
    pub message: Option<String>,
    /// The worker version the run started on (versioned user workers), from visibility.
    pub build_id: Option<String>,
    /// A multi-step run: the step that started last (memo `durablejob.dev/step`).
    pub step: Option<String>,
    /// A multi-step run: how far it got (memo `durablejob.dev/progress`).
    pub progress: Option<crate::api::RunProgress>,
}

/// One schedule as a `ListSchedules` page shows it: its id and its listing hash (see
/// [`ObservedSchedule::listing`]), not a description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSchedule {
    pub id: String,
    pub listing: String,
}

/// One page of `ListSchedules`; an empty token means it was the last.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchedulePage {
    pub schedules: Vec<ListedSchedule>,
    pub next_page_token: Vec<u8>,
}

/// What Temporal answered to a create: enough to record the new schedule without describing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The conflict token Temporal gave the new schedule. Every later write to the schedule
    /// (an update, a pause or unpause, a pause after a failed run, a run counted against
    /// remaining actions) moves it, so a describe that still shows it shows the schedule as
    /// created.
    pub conflict_token: Vec<u8>,
    /// The listing hash (see [`ObservedSchedule::listing`]) that `ListSchedules` shows for the
    /// schedule as created, worked out from the request: a sweep that lists anything else wakes
    /// the DurableJob, which then describes it.
    pub listing: String,
}

/// How a write to a schedule is done.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteOptions {
    /// Paused state to send (the spec's suspend, or a pause Temporal made that is respected).
    pub paused: bool,
    /// Notes to send.
    pub notes: String,
    /// Remaining actions when runLimit is set.
    pub remaining_actions: Option<i64>,
    /// Runs started by earlier incarnations (memo, on create only).
    pub action_count_base: i64,
}

/// The schedule operations the operator needs, and the Worker Deployment calls of versioned
/// user workers.
pub trait Schedules:
    worker_deployments::WorkerDeployments + retries::Retries + Send + Sync + 'static
{
    /// `Ok(None)` when the schedule does not exist.
    fn describe(
        &self,
        at: &ScheduleLocation,
    ) -> impl Future<Output = Result<Option<ObservedSchedule>, TemporalError>> + Send;

    fn create(
        &self,
        desired: &DesiredSchedule,
        options: &WriteOptions,
    ) -> impl Future<Output = Result<Created, TemporalError>> + Send;

    /// Replaces the whole schedule, guarded by the conflict token from describe.
    fn update(
        &self,
        desired: &DesiredSchedule,
        options: &WriteOptions,
        conflict_token: &[u8],
    ) -> impl Future<Output = Result<(), TemporalError>> + Send;

    /// Deletes the schedule; a schedule that is already gone counts as deleted.
    fn delete(&self, at: &ScheduleLocation) -> impl Future<Output = Result<(), TemporalError>> + Send;

    /// The most recent runs the schedule started, newest first.
    fn recent_runs(
        &self,
        at: &ScheduleLocation,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<RunRecord>, TemporalError>> + Send;

    /// Starts one run now, as the schedule's action, for the slot `scheduled_time` (which names
    /// the workflow: `<action id>-<time>`); `overlap` overrides the schedule's policy.
    /// `request_id` makes a retried call one request.
    fn trigger(
        &self,
        at: &ScheduleLocation,
        overlap: Option<OverlapPolicy>,
        scheduled_time: DateTime<Utc>,
        request_id: &str,
    ) -> impl Future<Output = Result<(), TemporalError>> + Send;

    /// Runs every slot in `[start, end]` (both inclusive) with `overlap` (default: the
    /// schedule's); `request_id` makes a retried call one request.
    fn backfill_slots(
        &self,
        at: &ScheduleLocation,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        overlap: Option<OverlapPolicy>,
        request_id: &str,
    ) -> impl Future<Output = Result<(), TemporalError>> + Send;

    /// Cancels (gracefully) or terminates one run; `Ok(false)` when it had already ended.
    fn stop_run(
        &self,
        namespace: &str,
        run: &RunRef,
        terminate: bool,
        reason: &str,
        request_id: &str,
    ) -> impl Future<Output = Result<bool, TemporalError>> + Send;

    /// The times in `(start, end]` the schedule's spec matches (exclusions applied, whether
    /// or not a run started then): strictly after `start`, to the second, as Temporal's
    /// `ListScheduleMatchingTimes` answers (ask from a second before to include `start`).
    fn matching_times(
        &self,
        at: &ScheduleLocation,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<DateTime<Utc>>, TemporalError>> + Send;

    /// One page of the namespace's schedules (up to 1,000), from `page_token` (empty: the
    /// first page).
    fn list_page(
        &self,
        namespace: &str,
        page_token: &[u8],
    ) -> impl Future<Output = Result<SchedulePage, TemporalError>> + Send;

    /// Runs every slot of the schedule in `[start, end]`, one after another (BufferAll).
    fn backfill(
        &self,
        at: &ScheduleLocation,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> impl Future<Output = Result<(), TemporalError>> + Send;
}
