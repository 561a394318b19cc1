//! The desired Temporal schedule, built from a validated spec by pure functions.
//!
//! These types are the operator's own: the Temporal layer translates them to protobuf, and
//! nothing else in the crate sees protobuf types.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::api::{BUILTIN_WORKFLOW_TYPE, OverlapPolicy};
use crate::run_contract::RunInput;
use crate::settings::Settings;
use crate::validate::{Runner, ValidInterval, ValidRetry, ValidSpec};

/// Memo keys the operator writes on every schedule it creates.
pub mod memo {
    /// uid of the owning DurableJob.
    pub const OWNER_UID: &str = "durablejob.dev/owner-uid";
    /// The operator's schedule-id prefix.
    pub const PREFIX: &str = "durablejob.dev/prefix";
    /// `<namespace>/<name>` of the owning DurableJob.
    pub const RESOURCE: &str = "durablejob.dev/resource";
    /// Runs started by earlier incarnations of the schedule (counted toward runLimit).
    pub const ACTION_COUNT_BASE: &str = "durablejob.dev/action-count-base";
}

/// Where a schedule lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduleLocation {
    pub namespace: String,
    pub id: String,
}

/// Who a schedule belongs to, as recorded in its memo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub uid: String,
    pub prefix: String,
    pub resource: String,
}

/// The schedule the operator wants Temporal to have for one DurableJob.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DesiredSchedule {
    pub location: ScheduleLocation,
    pub owner: Owner,
    pub calendar: Calendar,
    pub action: StartWorkflow,
    pub overlap_policy: OverlapPolicy,
    pub catchup_window: Duration,
    pub pause_on_failure: bool,
    /// Paused because of `spec.suspend`.
    pub paused: bool,
    pub run_limit: Option<i64>,
}

/// When runs start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calendar {
    pub cron: Vec<String>,
    pub intervals: Vec<Interval>,
    pub time_zone: String,
    pub jitter: Option<Duration>,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Interval {
    pub every: Duration,
    pub offset: Option<Duration>,
}

impl From<ValidInterval> for Interval {
    fn from(v: ValidInterval) -> Self {
        Self {
            every: v.every,
            offset: v.offset,
        }
    }
}

/// The schedule's action: start one workflow.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StartWorkflow {
    /// Temporal appends the scheduled time to it for each run.
    pub workflow_id: String,
    pub workflow_type: String,
    pub task_queue: String,
    pub args: Vec<Value>,
    pub execution_timeout: Option<Duration>,
    pub run_timeout: Option<Duration>,
    pub task_timeout: Option<Duration>,
    /// Temporal's workflow retry policy (user workflows only: the built-in runner counts
    /// whole-Job attempts itself, from its input).
    pub retry: Option<ValidRetry>,
    pub memo: BTreeMap<String, Value>,
    pub search_attributes: BTreeMap<String, Value>,
}

/// Identity of the resource a schedule is built for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRef<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
}

/// Builds the desired schedule. Infallible: everything that could fail was validated.
pub fn desired(resource: &ResourceRef<'_>, spec: &ValidSpec, settings: &Settings) -> DesiredSchedule {
    let location = ScheduleLocation {
        namespace: spec
            .temporal_namespace
            .clone()
            .unwrap_or_else(|| settings.default_temporal_namespace.clone()),
        id: settings.schedule_id(resource.namespace, resource.name),
    };
    let wf = &spec.workflow;
    let (workflow_type, task_queue, args, retry) = match &spec.runner {
        Runner::Builtin { job_template } => {
            let input = RunInput {
                namespace: resource.namespace.into(),
                name: resource.name.into(),
                uid: resource.uid.into(),
                job_template: job_template.clone(),
                retry: wf.retry.clone(),
                successful_runs_history_limit: spec.successful_runs_history_limit,
                failed_runs_history_limit: spec.failed_runs_history_limit,
            };
            (
                BUILTIN_WORKFLOW_TYPE.to_string(),
                wf.task_queue
                    .clone()
                    .unwrap_or_else(|| settings.runner_task_queue.clone()),
                vec![serde_json::to_value(input).expect("RunInput serializes")],
                None,
            )
        }
        Runner::Worker(_) => (
            wf.type_.clone().unwrap_or_default(),
            wf.task_queue
                .clone()
                .unwrap_or_else(|| user_task_queue(resource.namespace, resource.name)),
            wf.args.clone(),
            wf.retry.clone(),
        ),
    };
    DesiredSchedule {
        owner: Owner {
            uid: resource.uid.into(),
            prefix: settings.schedule_id_prefix.clone(),
            resource: format!("{}/{}", resource.namespace, resource.name),
        },
        calendar: Calendar {
            cron: spec.cron.clone(),
            intervals: spec.intervals.iter().copied().map(Interval::from).collect(),
            time_zone: spec.time_zone.clone(),
            jitter: spec.jitter,
            start_at: spec.start_at,
            end_at: spec.end_at,
        },
        action: StartWorkflow {
            workflow_id: location.id.clone(),
            workflow_type,
            task_queue,
            args,
            execution_timeout: wf.execution_timeout,
            run_timeout: wf.run_timeout,
            task_timeout: wf.task_timeout,
            retry,
            memo: wf.memo.clone(),
            search_attributes: wf.search_attributes.clone(),
        },
        location,
        overlap_policy: spec.overlap_policy,
        catchup_window: spec.catchup_window,
        pause_on_failure: spec.pause_on_failure,
        paused: spec.suspend,
        run_limit: spec.run_limit,
    }
}

/// Default task queue of a user worker: `durablejob.<namespace>.<name>`.
pub fn user_task_queue(namespace: &str, name: &str) -> String {
    format!("durablejob.{namespace}.{name}")
}

impl DesiredSchedule {
    /// A stable hash of everything the operator would send, so a spec change is noticed even
    /// when Temporal's normalized description cannot be compared field by field.
    pub fn hash(&self) -> String {
        let json = serde_json::to_value(self).expect("DesiredSchedule serializes");
        hex_sha256(&canonical_json(&json))
    }

    /// One line for `status.schedule` and the printer column.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self.calendar.cron.clone();
        for iv in &self.calendar.intervals {
            let mut s = format!("every {}", format_duration(iv.every));
            if let Some(o) = iv.offset.filter(|o| !o.is_zero()) {
                s.push_str(&format!(" +{}", format_duration(o)));
            }
            parts.push(s);
        }
        let mut out = parts.join(", ");
        if !self.calendar.cron.is_empty() && self.calendar.time_zone != "UTC" {
            out.push_str(&format!(" ({})", self.calendar.time_zone));
        }
        out
    }
}

/// Formats a duration the Go way (`1h30m`, `90s` → `1m30s`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    kube::core::Duration::from(d).to_string()
}

/// JSON with object keys sorted at every level, so equal values hash equally whatever the
/// map implementation's iteration order.
pub fn canonical_json(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(serde_json::to_vec(k).expect("string serializes"));
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
        Value::Array(a) => {
            out.push(b'[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(v, out);
            }
            out.push(b']');
        }
        other => out.extend(serde_json::to_vec(other).expect("scalar serializes")),
    }
}

pub fn hex_sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
