//! The `DurableJob` custom resource: its spec, as users and GitOps write it.
//!
//! The schema generated from these types is the first line of validation: enums, patterns,
//! bounds and CEL rules refuse typical mistakes at `kubectl apply`. What a schema cannot
//! express (cron semantics, IANA zones, embedded Job/Pod templates) is checked by
//! [`crate::desired::validate`] and reported as `Ready=False`.
//!
//! Durations and timestamps are kept as the strings the user wrote: the operator never
//! writes the spec, and comparisons are made on parsed values, so GitOps tools see no drift.

#![allow(clippy::duplicated_attributes)] // kube-derive takes repeated printcolumn(...) attributes

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::schema_helpers::{any_value_map, duration_string, preserved_object, preserved_values};
use super::status::DurableJobStatus;

/// Workflow type of the built-in job runner.
pub const BUILTIN_WORKFLOW_TYPE: &str = "durablejob.run";

/// The longest DurableJob name. Its Jobs and pods carry the whole name in the label
/// `durablejob.dev/name` (every lookup of a DurableJob's Jobs selects on it), and a label value
/// is at most 63 characters; the CRD refuses longer names at apply time. (CronJob's limit is 52
/// for the same reason: its Job names add an 11-character suffix.)
pub const MAX_NAME_LENGTH: usize = 63;

/// Why a name is too long, or `None`.
pub fn name_too_long(name: &str) -> Option<String> {
    (name.len() > MAX_NAME_LENGTH).then(|| {
        format!(
            "metadata.name is {} characters; a DurableJob name may have at most {MAX_NAME_LENGTH}, because its Jobs carry it in the label durablejob.dev/name and a label value is at most 63 characters",
            name.len()
        )
    })
}

/// A schedule whose runs Temporal drives: retries with backoff, durable history, catch-up
/// after outages, and every run visible in `status`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "durablejob.dev",
    version = "v1alpha1",
    kind = "DurableJob",
    plural = "durablejobs",
    shortname = "dj",
    // not "durablejob": kubectl expands a category before a resource name, so that category
    // would turn `kubectl get durablejob NAME` into a lookup in every kind of the product
    category = "durablejob-all",
    namespaced,
    status = "DurableJobStatus",
    derive = "PartialEq",
    doc = "DurableJob runs a job on a Temporal Schedule: a CronJob replacement with retries, history, backfill and catch-up.",
    printcolumn(
        name = "Schedule",
        type_ = "string",
        json_path = ".status.schedule",
        description = "When runs start"
    ),
    printcolumn(name = "Suspend", type_ = "boolean", json_path = ".spec.suspend"),
    printcolumn(
        name = "Last Run",
        type_ = "date",
        json_path = ".status.lastScheduleTime",
        description = "Time since the last scheduled run"
    ),
    printcolumn(
        name = "Next Run",
        type_ = "string",
        json_path = ".status.nextRunTimes[0]",
        description = "Next scheduled start (UTC)"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "Schedule ID",
        type_ = "string",
        json_path = ".status.scheduleId",
        priority = 1
    ),
    printcolumn(
        name = "Build",
        type_ = "string",
        json_path = ".status.worker.currentBuildId",
        description = "The worker version new runs go to (versioned user workers)",
        priority = 1
    ),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.message",
        priority = 1
    ),
    selectable = ".spec.suspend"
)]
#[x_kube(
    validation = Rule::new("(has(self.jobTemplate) ? 1 : 0) + (has(self.steps) ? 1 : 0) + (has(self.worker) ? 1 : 0) == 1")
        .message("set exactly one of spec.jobTemplate (the built-in runner creates a Job per run), spec.steps (the built-in runner runs a Job per step) or spec.worker (your own Temporal worker runs spec.workflow.type)")
        .field_path(".jobTemplate")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(self.worker) || (has(self.workflow) && has(self.workflow.type))")
        .message("spec.worker needs spec.workflow.type: the workflow type your worker registers")
        .field_path(".workflow")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(self.suspendAfterFailures) || !has(self.pauseOnFailure) || !self.pauseOnFailure")
        .message("set either spec.pauseOnFailure (pause after one failed run) or spec.suspendAfterFailures (after N in a row), not both")
        .field_path(".suspendAfterFailures"),
    validation = Rule::new("!has(self.resumeAfter) || has(self.suspendAfterFailures)")
        .message("spec.resumeAfter resumes a pause made by spec.suspendAfterFailures: set that too, or remove resumeAfter")
        .field_path(".resumeAfter")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("has(self.worker) || !has(self.workflow) || !has(self.workflow.type) || self.workflow.type == 'durablejob.run'")
        .message("with spec.jobTemplate or spec.steps the built-in runner executes each run: leave spec.workflow.type unset (or durablejob.run), or use spec.worker for your own workflow type")
        .field_path(".workflow.type")
)]
// spec.workflow.args with a jobTemplate is refused by the operator (validate.rs), not here: its
// items are untyped JSON, and the API server does not expose such arrays to CEL rules.
#[serde(rename_all = "camelCase")]
pub struct DurableJobSpec {
    /// When runs start: cron entries and/or fixed intervals, in one time zone.
    pub schedule: ScheduleSpec,

    /// What happens when a run is due while an earlier one is still going.
    /// Default Skip (Temporal's default); CronJob's default is Allow (here AllowAll).
    #[serde(default)]
    pub overlap_policy: OverlapPolicy,

    /// Runs missed while Temporal was unavailable are still started if they are at most this
    /// late (Go duration, at least 10s). Default 1m, unlike Temporal's one year, so an outage
    /// does not cause a burst of stale runs.
    #[serde(default = "default_catchup_window")]
    #[schemars(schema_with = "catchup_window_schema")]
    pub catchup_window: String,

    /// Pause the schedule when a run fails (after its retries). Resume it with the
    /// `durablejob.dev/resume` annotation.
    #[serde(default)]
    pub pause_on_failure: bool,

    /// Pause the schedule after this many consecutive failed runs (after their retries),
    /// counted from Temporal's recent runs: `status.pausedReason` ConsecutiveFailures and a
    /// Warning Event naming the runs. Resume with the `durablejob.dev/resume` annotation
    /// (`kubectl durablejob resume`), or let spec.resumeAfter do it. Use pauseOnFailure for 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub suspend_after_failures: Option<i32>,

    /// With suspendAfterFailures: resume by itself this long after the pause (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_string")]
    pub resume_after: Option<String>,

    /// Pause the schedule: no new runs start. Running ones are not stopped.
    #[serde(default)]
    pub suspend: bool,

    /// Stop after this many runs in total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub run_limit: Option<i64>,

    /// What one run is: workflow type, task queue, input, timeouts, retries, memo, search attributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<WorkflowSpec>,

    /// A batch/v1 JobTemplateSpec, as in a CronJob. The built-in runner creates one Job per run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserved_object")]
    pub job_template: Option<Value>,

    /// The steps of a multi-step run, instead of jobTemplate (the one-step form): each step is
    /// a Job the built-in runner runs, in order, with its own retries and timeout. A step that
    /// finished never runs again in that run (docs/steps.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 50))]
    pub steps: Option<Vec<StepSpec>>,

    /// Your own Temporal worker, run as a Deployment the operator manages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerSpec>,

    /// Successful runs whose Jobs the built-in runner keeps: a run's Jobs (attempts, steps,
    /// items) are kept or deleted together, and a run counts as what its last Job did.
    #[serde(default = "default_successful_limit")]
    #[schemars(range(min = 0))]
    pub successful_runs_history_limit: i32,

    /// Failed runs whose Jobs the built-in runner keeps (as successfulRunsHistoryLimit).
    #[serde(default = "default_failed_limit")]
    #[schemars(range(min = 0))]
    pub failed_runs_history_limit: i32,

    /// Temporal settings for this resource; unset fields use the operator's configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporal: Option<TemporalSpec>,

    /// What happens to the Temporal schedule when this resource is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// When runs start.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(
    validation = Rule::new("(has(self.cron) ? size(self.cron) : 0) + (has(self.intervals) ? size(self.intervals) : 0) > 0")
        .message("spec.schedule needs at least one entry in cron or intervals")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("!has(self.startAt) || !has(self.endAt) || self.startAt < self.endAt")
        .message("spec.schedule.startAt must be before spec.schedule.endAt")
)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleSpec {
    /// Five-field cron expressions (minute hour day-of-month month day-of-week) or one of
    /// @yearly @annually @monthly @weekly @daily @midnight @hourly. As in Temporal, when both
    /// day-of-month and day-of-week are restricted, both must match. `H` in the minute or hour
    /// field (H, H(0-29), H/15) is a value derived from the resource's namespace and name, so
    /// many schedules spread out; status.schedule shows the concrete entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20), inner(length(max = 128)))]
    #[x_kube(
        validation = Rule::new("self.all(c, !c.startsWith('CRON_TZ=') && !c.startsWith('TZ='))")
            .message("a cron entry must not start with CRON_TZ= or TZ=: put the zone in spec.schedule.timeZone"),
        validation = Rule::new("self.all(c, !c.startsWith('@every'))")
            .message("@every is not a cron entry here: use spec.schedule.intervals, e.g. {every: 1h}"),
        validation = Rule::new("self.all(c, c.startsWith('@') || c.matches('^\\\\s*\\\\S+(\\\\s+\\\\S+){4}\\\\s*$'))")
            .message("each cron entry needs exactly five fields (minute hour day-of-month month day-of-week); seconds and years are not supported")
    )]
    pub cron: Vec<String>,

    /// When no run starts, read in timeZone: cron entries (every minute they match) and dates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Exclusions>,

    /// Names of DurableJobCalendars in this namespace whose dates and cron entries are excluded
    /// too (for example public holidays shared by many DurableJobs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 20),
        inner(
            length(min = 1, max = 253),
            regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
        )
    )]
    pub exclude_calendars: Vec<String>,

    /// Fixed intervals, e.g. every 1h at offset 5m (runs at :05 each hour, counted from the Unix epoch).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    pub intervals: Vec<IntervalSpec>,

    /// IANA time zone the cron entries are read in, e.g. Europe/Berlin. Default UTC.
    #[serde(default = "default_time_zone")]
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*$")
    )]
    pub time_zone: String,

    /// Random delay of up to this much added to each start (Go duration), to spread load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_string")]
    pub jitter: Option<String>,

    /// No runs before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema_helpers::date_time_string")]
    pub start_at: Option<String>,

    /// No runs after this time (RFC 3339). A schedule past endAt is reported as completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema_helpers::date_time_string")]
    pub end_at: Option<String>,
}

/// Times when no run starts: in `spec.schedule.exclude` and in a DurableJobCalendar.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Exclusions {
    /// Five-field cron entries: no run starts in any minute they match, e.g. `* * * * 0,6`
    /// (weekends) or `* 0-5 * * *` (the night). `H` is not allowed here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 50), inner(length(max = 128)))]
    #[x_kube(
        validation = Rule::new("self.all(c, c.startsWith('@') || c.matches('^\\\\s*\\\\S+(\\\\s+\\\\S+){4}\\\\s*$'))")
            .message("each exclude cron entry needs exactly five fields (minute hour day-of-month month day-of-week)")
    )]
    pub cron: Vec<String>,

    /// Whole days (YYYY-MM-DD) on which no run starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000), inner(regex(pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")))]
    pub dates: Vec<String>,
}

/// A run every `every`, shifted by `offset`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(
    validation = Rule::new("duration(self.every) >= duration('1s')")
        .message("intervals[].every must be at least 1s"),
    validation = Rule::new("!has(self.offset) || duration(self.offset) < duration(self.every)")
        .message("intervals[].offset must be shorter than every")
)]
#[serde(rename_all = "camelCase")]
pub struct IntervalSpec {
    /// Go duration, e.g. 15m or 1h30m.
    #[schemars(schema_with = "duration_string")]
    pub every: String,
    /// Go duration shorter than `every`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_string")]
    pub offset: Option<String>,
}

/// Temporal's schedule overlap policies.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OverlapPolicy {
    /// Do not start a run while one is going (Temporal's default).
    #[default]
    Skip,
    /// Start one more run after the current one; drop further ones.
    BufferOne,
    /// Start every due run, one after another.
    BufferAll,
    /// Cancel the running run, then start the new one.
    CancelOther,
    /// Terminate the running run, then start the new one (like CronJob's Replace).
    TerminateOther,
    /// Start runs regardless (like CronJob's Allow).
    AllowAll,
}

/// What happens to the Temporal schedule when the DurableJob is deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Delete the schedule (running workflows are left to finish).
    #[default]
    Delete,
    /// Leave the schedule in Temporal.
    Orphan,
}

/// What one run is.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSpec {
    /// Workflow type. Default durablejob.run (the built-in runner); required with spec.worker.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1000))]
    pub type_: Option<String>,

    /// Task queue. Default: the built-in runner's queue with jobTemplate,
    /// `durablejob.<namespace>.<name>` with spec.worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1000))]
    pub task_queue: Option<String>,

    /// Workflow input, one JSON value per argument (spec.worker only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "preserved_values")]
    pub args: Vec<Value>,

    /// Limit on one run including its retries (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_string")]
    pub execution_timeout: Option<String>,

    /// Limit on a single attempt of a run (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_string")]
    pub run_timeout: Option<String>,

    /// Limit on one workflow task (Go duration; Temporal's default is 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_string")]
    pub task_timeout: Option<String>,

    /// Retries of a failed run. Without it a run is attempted once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,

    /// Memo attached to each run (JSON values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "any_value_map")]
    pub memo: BTreeMap<String, Value>,

    /// Search attributes set on each run; they must be registered in the Temporal namespace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "any_value_map")]
    pub search_attributes: BTreeMap<String, Value>,

    /// How the runs of a versioned spec.worker take worker versions. Pinned (default): a run
    /// finishes on the version it started on, as your worker declares with its default
    /// versioning behavior (docs/workers.md). AutoUpgrade: the schedule starts each run with
    /// Temporal's auto-upgrade override, so it moves to the current version at its next step,
    /// whatever the worker declares (its code must then replay across versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versioning_behavior: Option<VersioningBehavior>,
}

/// How a run takes worker versions.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum VersioningBehavior {
    #[default]
    Pinned,
    AutoUpgrade,
}

/// One step of a multi-step run (`spec.steps`).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct StepSpec {
    /// Unique in spec.steps: lowercase letters, digits and '-', starting with a letter, at most
    /// 20 characters (it is part of the step's Job names and labels).
    #[schemars(length(min = 1, max = 20))]
    pub name: String,
    /// The batch/v1 JobTemplateSpec of this step's Job, as spec.jobTemplate.
    #[schemars(schema_with = "preserved_object")]
    pub job_template: Value,
    /// Retries of this step's Job; default spec.workflow.retry (one attempt without it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetrySpec>,
    /// Longest one attempt of this step may take (Go duration); default the Job's own
    /// activeDeadlineSeconds, else a week.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_string")]
    pub timeout: Option<String>,
    /// The steps this one waits for. When no step names any, the steps run in the order
    /// listed; otherwise they form a DAG: a step starts once those it names succeeded, steps
    /// without dependsOn at once, and independent branches run at the same time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depends_on: Option<Vec<String>>,
    /// Fan-out: one Job per item (its container gets the item as DURABLEJOB_ITEM), at most
    /// `parallelism` at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<ForEachSpec>,
    /// With forEach: the run goes on when items fail (after their retries) and ends partially
    /// failed, naming them; without it, the first failed item fails the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_on_item_failure: Option<bool>,
}

/// The items of a fan-out step: given here, or an earlier step's result (a JSON array).
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ForEachSpec {
    /// The items, any JSON values (a string reaches the container as is, others as JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserved_values")]
    pub items: Option<Vec<Value>>,
    /// The name of an earlier step whose result is the JSON array of items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_step: Option<String>,
    /// Items running at once (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub parallelism: Option<i32>,
}

/// Retry policy of a run (Temporal's RetryPolicy).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[x_kube(
    validation = Rule::new("!has(self.initialInterval) || !has(self.maximumInterval) || duration(self.initialInterval) <= duration(self.maximumInterval)")
        .message("retry.maximumInterval must not be shorter than retry.initialInterval")
)]
#[serde(rename_all = "camelCase")]
pub struct RetrySpec {
    /// Wait before the first retry (Go duration; default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_string")]
    pub initial_interval: Option<String>,
    /// Each wait is the previous one times this (default 2.0, at least 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0))]
    pub backoff_coefficient: Option<f64>,
    /// Longest wait between attempts (Go duration; default 100 × initialInterval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_string")]
    pub maximum_interval: Option<String>,
    /// Attempts in total, the first included; 0 means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub maximum_attempts: Option<i32>,
    /// Failure types that are not retried. The built-in runner's types are JobFailed,
    /// JobDeadlineExceeded, InvalidJobTemplate and Forbidden.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub non_retryable_error_types: Vec<String>,
}

/// A user worker: a Deployment running your Temporal worker image.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkerSpec {
    /// Container image of your worker.
    #[schemars(length(min = 1))]
    pub image: String,
    /// Worker replicas (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub replicas: Option<i32>,
    /// Extra environment variables (core/v1 EnvVar list).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "super::schema_helpers::preserved_objects")]
    pub env: Vec<Value>,
    /// Container resources (core/v1 ResourceRequirements).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserved_object")]
    pub resources: Option<Value>,
    /// Service account the worker pods run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// A core/v1 PodTemplateSpec whose fields override the generated ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "preserved_object")]
    pub template: Option<Value>,
    /// The build id of this pod template's version, for teams that stamp their own (a label
    /// value: at most 63 letters, digits, '-', '_' or '.'). Default: derived,
    /// `<image tag>-<10 hex of the pod template's hash>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub build_id: Option<String>,
    /// How a new version of the worker takes over from the one before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutSpec>,
    /// When a version that no longer gets runs is scaled down and deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sunset: Option<SunsetSpec>,
}

/// How a new worker version takes over.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// AllAtOnce (default): each pod template is a Worker Deployment Version with a Deployment
    /// of its own, made current once its pods are Ready and Temporal sees them poll; runs
    /// pinned to the version before finish on it. Progressive: the same, through ramp steps.
    /// Manual: deployed and registered, made current by a person. None: one Deployment updated in place, for
    /// workers that do not read TEMPORAL_DEPLOYMENT_NAME and TEMPORAL_WORKER_BUILD_ID (runs in
    /// flight then replay on the new code).
    #[serde(default)]
    pub strategy: RolloutStrategy,
    /// Progressive only: the share of new runs the new version gets at each step, and how long
    /// each step lasts before the next (the last step's pause ends in making it current).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub steps: Vec<RampStepSpec>,
    /// Route new runs back to the version before when runs that started on the new version
    /// fail (AllAtOnce and Progressive; Manual leaves routing to people).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_on_failure: Option<RollbackOnFailureSpec>,
    /// A workflow run on the new version, pinned to it, before new runs go to it (and before
    /// each Progressive step); routing waits for it, and a failed gate stops the rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateSpec>,
}

/// The gate of a rollout.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GateSpec {
    /// The workflow type your worker registers for the check (it gets no input; it reads
    /// TEMPORAL_WORKER_BUILD_ID like the worker does).
    #[schemars(length(min = 1, max = 1000))]
    pub workflow_type: String,
}

/// When a new version is rolled back on its runs' evidence.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RollbackOnFailureSpec {
    /// Failed or timed-out runs that started on the new version, since it began to get runs,
    /// that roll it back (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub failed_runs: Option<i32>,
}

/// The rollout strategies.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RolloutStrategy {
    #[default]
    AllAtOnce,
    /// Ramp the new version through spec.worker.rollout.steps, then make it current.
    Progressive,
    /// Deploy and register the new version; route nothing to it until a person does (Temporal's
    /// CLI or UI: `temporal worker deployment set-current-version`).
    Manual,
    None,
}

/// One step of a Progressive rollout.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RampStepSpec {
    /// Percent of new runs that go to the new version (1-99, rising from step to step).
    #[schemars(range(min = 1, max = 99))]
    pub ramp_percentage: i32,
    /// How long the step lasts (Go duration).
    #[schemars(schema_with = "duration_string")]
    pub pause_duration: String,
}

/// The sunset of versions that no longer get new runs.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SunsetSpec {
    /// How long after a version drained (no open run uses it) its Deployment is scaled to
    /// zero (Go duration; default 1h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_string")]
    pub scaledown_delay: Option<String>,
    /// How long after a version drained its Deployment and its Temporal version are deleted
    /// (Go duration; default 24h, at least scaledownDelay).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "duration_string")]
    pub delete_delay: Option<String>,
}

/// Temporal settings of one DurableJob.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct TemporalSpec {
    /// Temporal namespace of the schedule. Default: the operator's TEMPORAL_NAMESPACE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1000))]
    pub namespace: Option<String>,
}

/// Default catch-up window, written by the CRD's defaulting.
pub const DEFAULT_CATCHUP_WINDOW: &str = "1m";
/// Default time zone.
pub const DEFAULT_TIME_ZONE: &str = "UTC";

fn default_catchup_window() -> String {
    DEFAULT_CATCHUP_WINDOW.to_string()
}
fn default_time_zone() -> String {
    DEFAULT_TIME_ZONE.to_string()
}
fn default_successful_limit() -> i32 {
    3
}
fn default_failed_limit() -> i32 {
    1
}

fn catchup_window_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = duration_string(generator);
    let obj = schema.ensure_object();
    obj.insert("default".into(), DEFAULT_CATCHUP_WINDOW.into());
    obj.insert(
        "x-kubernetes-validations".into(),
        serde_json::json!([{
            "rule": "duration(self) >= duration('10s')",
            "message": "catchupWindow must be at least 10s (Temporal's minimum)"
        }]),
    );
    schema
}
