//! The desired Temporal schedule, built from a validated spec by pure functions.
//!
//! These types are the operator's own: the Temporal layer translates them to protobuf, and
//! nothing else in the crate sees protobuf types.

use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::api::{BUILTIN_WORKFLOW_TYPE, OverlapPolicy};
use crate::cron::{self, ranges::Match};
use crate::desired::validate::{Executor, ValidInterval, ValidRetry, ValidSpec};
use crate::run_contract::{RunInput, RunRetry};
use crate::settings::Settings;
use crate::util::{digest, duration};

/// What spec.suspendAfterFailures and spec.resumeAfter ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StreakPolicy {
    /// Failed runs in a row that pause the schedule.
    pub after: u32,
    /// Resume by itself this long after the pause.
    pub resume_after: Option<std::time::Duration>,
}

/// Memo keys the operator writes on every schedule it creates.
pub(crate) mod memo {
    /// uid of the owning DurableJob.
    pub(crate) const OWNER_UID: &str = "durablejob.dev/owner-uid";
    /// The operator's schedule-id prefix.
    pub(crate) const PREFIX: &str = "durablejob.dev/prefix";
    /// `<namespace>/<name>` of the owning DurableJob.
    pub(crate) const RESOURCE: &str = "durablejob.dev/resource";
    /// Runs started by earlier incarnations of the schedule (counted toward runLimit).
    pub(crate) const ACTION_COUNT_BASE: &str = "durablejob.dev/action-count-base";
    /// Hash of the desired schedule it was created from: a create whose status write was lost
    /// is recognised as the operator's own (the memo cannot change after create).
    pub(crate) const DESIRED_HASH: &str = "durablejob.dev/desired-hash";
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
    /// spec.suspendAfterFailures: the operator's own policy, not part of Temporal's schedule
    /// (so not hashed: changing it writes nothing to Temporal).
    #[serde(skip)]
    pub streak: Option<StreakPolicy>,
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
    /// No run starts at a time any of these match: the spec's exclusions, then each
    /// referenced calendar's.
    pub exclude: Vec<Match>,
}

/// A DurableJobCalendar a spec references, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResolvedCalendar {
    pub name: String,
    pub matches: Vec<Match>,
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
    /// Start runs with Temporal's auto-upgrade versioning override (left out of the hash when
    /// off, so schedules written before it existed are not rewritten).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub auto_upgrade: bool,
}

/// Identity of the resource a schedule is built for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ResourceRef<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub uid: &'a str,
}

/// A step as the run contract carries it.
fn run_step(s: &crate::desired::validate::ValidStep) -> crate::run_contract::RunStep {
    crate::run_contract::RunStep {
        name: s.name.clone(),
        job_template: s.job_template.clone(),
        retry: s.retry.as_ref().map(RunRetry::from),
        timeout: s.timeout,
        depends_on: s.depends_on.clone(),
        for_each: s.for_each.as_ref().map(|f| {
            use crate::desired::validate::ValidItems;
            let (items, from_step) = match &f.items {
                ValidItems::Literal(items) => (Some(items.clone()), None),
                ValidItems::FromStep(step) => (None, Some(step.clone())),
            };
            crate::run_contract::RunForEach {
                items,
                from_step,
                parallelism: f.parallelism,
            }
        }),
        continue_on_item_failure: s.continue_on_item_failure,
    }
}

/// Builds the desired schedule. Infallible: everything that could fail was validated, and
/// `calendars` are the spec's excludeCalendars, found and checked.
pub(crate) fn desired(
    resource: &ResourceRef<'_>,
    spec: &ValidSpec,
    calendars: &[ResolvedCalendar],
    settings: &Settings,
) -> DesiredSchedule {
    let location = ScheduleLocation {
        namespace: spec
            .temporal_namespace
            .clone()
            .unwrap_or_else(|| settings.default_temporal_namespace.clone()),
        id: settings.schedule_id(resource.namespace, resource.name),
    };
    let wf = &spec.workflow;
    let (workflow_type, task_queue, args, retry) = match &spec.executor {
        Executor::BuiltinRunner { .. } | Executor::Steps(_) => {
            let (job_template, steps) = match &spec.executor {
                Executor::Steps(steps) => (Value::Null, steps.iter().map(run_step).collect()),
                Executor::BuiltinRunner { job_template } => (job_template.clone(), vec![]),
                Executor::UserWorker(_) => unreachable!("matched above"),
            };
            let input = RunInput {
                version: crate::run_contract::VERSION,
                namespace: resource.namespace.into(),
                name: resource.name.into(),
                uid: resource.uid.into(),
                job_template,
                retry: wf.retry.as_ref().map(RunRetry::from),
                successful_runs_history_limit: spec.successful_runs_history_limit,
                failed_runs_history_limit: spec.failed_runs_history_limit,
                steps,
                reuse: None,
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
        Executor::UserWorker(_) => (
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
        calendar: calendar(resource.namespace, resource.name, spec, calendars),
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
            auto_upgrade: wf.auto_upgrade,
        },
        location,
        overlap_policy: spec.overlap_policy,
        catchup_window: spec.catchup_window,
        pause_on_failure: spec.pause_on_failure,
        paused: spec.suspend,
        run_limit: spec.run_limit,
        streak: spec.suspend_after_failures.map(|after| StreakPolicy {
            after,
            resume_after: spec.resume_after,
        }),
    }
}

/// When runs start: the spec's times with `H` resolved for `namespace/name`, its exclusions,
/// then each referenced calendar's.
pub(crate) fn calendar(
    namespace: &str,
    name: &str,
    spec: &ValidSpec,
    calendars: &[ResolvedCalendar],
) -> Calendar {
    Calendar {
        cron: concrete_cron(&spec.cron, namespace, name),
        intervals: spec.intervals.iter().copied().map(Interval::from).collect(),
        time_zone: spec.time_zone.clone(),
        jitter: spec.jitter,
        start_at: spec.start_at,
        end_at: spec.end_at,
        exclude: spec
            .exclude
            .iter()
            .cloned()
            .chain(calendars.iter().flat_map(|c| c.matches.iter().cloned()))
            .collect(),
    }
}

/// The cron entries with `H` replaced for this resource (validated entries expand).
pub(crate) fn concrete_cron(entries: &[String], namespace: &str, name: &str) -> Vec<String> {
    entries
        .iter()
        .map(|e| cron::hash::expand(e, namespace, name).unwrap_or_else(|_| e.clone()))
        .collect()
}

/// Default task queue of a user worker: `durablejob.<namespace>.<name>`.
pub(crate) fn user_task_queue(namespace: &str, name: &str) -> String {
    format!("durablejob.{namespace}.{name}")
}

impl DesiredSchedule {
    /// A stable hash of everything the operator would send, so a spec change is noticed even
    /// when Temporal's normalized description cannot be compared field by field.
    pub fn hash(&self) -> String {
        let json = serde_json::to_value(self).expect("DesiredSchedule serializes");
        digest::hex_sha256(&digest::canonical_json(&json))
    }

    /// One line for `status.schedule` and the printer column.
    pub fn summary(&self) -> String {
        self.calendar.summary()
    }
}

impl Calendar {
    /// One line: the cron entries and intervals, and the time zone when it is not UTC.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self.cron.clone();
        for iv in &self.intervals {
            let mut s = format!("every {}", duration::format(iv.every));
            if let Some(o) = iv.offset.filter(|o| !o.is_zero()) {
                s.push_str(&format!(" +{}", duration::format(o)));
            }
            parts.push(s);
        }
        let mut out = parts.join(", ");
        if !self.cron.is_empty() && self.time_zone != "UTC" {
            out.push_str(&format!(" ({})", self.time_zone));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DurableJob;
    use chrono::TimeZone;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    #[test]
    fn every_spec_field_reaches_the_desired_schedule() {
        let d = DurableJob::test_full("nightly").desired_schedule();
        let expected = DesiredSchedule {
            location: ScheduleLocation {
                namespace: "jobs".into(),
                id: "durablejob:default/nightly".into(),
            },
            owner: Owner {
                uid: "uid-1".into(),
                prefix: "durablejob".into(),
                resource: "default/nightly".into(),
            },
            calendar: Calendar {
                cron: vec!["30 2 * * *".into(), "@hourly".into()],
                intervals: vec![Interval {
                    every: Duration::from_secs(5400),
                    offset: Some(Duration::from_secs(300)),
                }],
                time_zone: "Europe/Berlin".into(),
                jitter: Some(Duration::from_secs(30)),
                start_at: Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()),
                end_at: Some(Utc.with_ymd_and_hms(2026, 12, 31, 23, 0, 0).unwrap()),
                exclude: vec![
                    cron::ranges::cron("* * * * 0,6", "spec.schedule.exclude.cron[0]".into()).unwrap(),
                ]
                .into_iter()
                .chain(cron::ranges::dates(
                    &[chrono::NaiveDate::from_ymd_opt(2026, 12, 24).unwrap()],
                    "spec.schedule.exclude.dates",
                ))
                .collect(),
            },
            action: StartWorkflow {
                workflow_id: "durablejob:default/nightly".into(),
                workflow_type: "durablejob.run".into(),
                task_queue: "custom-runner".into(),
                args: vec![json!({
                    "version": 1,
                    "namespace": "default",
                    "name": "nightly",
                    "uid": "uid-1",
                    "jobTemplate": DurableJob::test("x").spec.job_template.unwrap(),
                    "retry": {
                        "initialInterval": "10s",
                        "backoffCoefficient": 3.0,
                        "maximumInterval": "5m",
                        "maximumAttempts": 4,
                        "nonRetryableErrorTypes": ["InvalidJobTemplate"],
                    },
                    "successfulRunsHistoryLimit": 5,
                    "failedRunsHistoryLimit": 2,
                })],
                execution_timeout: Some(Duration::from_secs(7200)),
                run_timeout: Some(Duration::from_secs(3600)),
                task_timeout: Some(Duration::from_secs(20)),
                retry: None,
                memo: [("team".to_string(), json!("billing"))].into(),
                search_attributes: [("CustomKeywordField".to_string(), json!("nightly"))].into(),
                auto_upgrade: false,
            },
            overlap_policy: OverlapPolicy::BufferAll,
            catchup_window: Duration::from_secs(5400),
            pause_on_failure: true,
            paused: true,
            run_limit: Some(10),
            streak: None,
        };
        assert_eq!(d, expected);
    }

    #[test]
    fn a_user_worker_gets_its_own_task_queue_args_and_workflow_retry_policy() {
        let mut dj = DurableJob::test("sync").with_worker("InvoiceSync");
        let wf = dj.spec.workflow.as_mut().unwrap();
        wf.args = vec![json!({"full": true}), json!(3)];
        wf.retry = Some(crate::api::RetrySpec {
            maximum_attempts: Some(5),
            ..Default::default()
        });
        let d = dj.desired_schedule();
        assert_eq!(d.action.workflow_type, "InvoiceSync");
        assert_eq!(d.action.task_queue, "durablejob.default.sync");
        assert_eq!(d.action.args, vec![json!({"full": true}), json!(3)]);
        assert_eq!(d.action.retry.as_ref().map(|r| r.maximum_attempts), Some(5));
        assert_eq!(
            d.location.namespace, "default",
            "the operator's namespace when the spec names none"
        );
    }

    #[test]
    fn the_hash_changes_with_the_spec_and_not_with_how_durations_are_written() {
        let a = DurableJob::test("x").desired_schedule();
        let mut same = DurableJob::test("x");
        same.spec.catchup_window = "60s".into();
        assert_eq!(
            a.hash(),
            same.desired_schedule().hash(),
            "1m and 60s are the same window"
        );
        let b = DurableJob::test("x")
            .with_cron(&["0 10 * * 1-5"])
            .desired_schedule();
        assert_ne!(a.hash(), b.hash());
        let c = DurableJob::test("x").suspended().desired_schedule();
        assert_ne!(a.hash(), c.hash());
    }

    #[test]
    fn the_summary_reads_like_a_schedule() {
        assert_eq!(DurableJob::test("x").desired_schedule().summary(), "0 9 * * 1-5");
        assert_eq!(
            DurableJob::test_full("x").desired_schedule().summary(),
            "30 2 * * *, @hourly, every 1h30m +5m (Europe/Berlin)"
        );
    }
}
