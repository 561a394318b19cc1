//! The contract of the built-in runner's workflow `durablejob.run`: its input and the memo keys
//! it writes. In-flight workflows decode what was written when their schedule was built, so
//! these types are the wire format, versioned, and never the validation or spec types: a
//! rename elsewhere cannot change what a run decodes. A golden JSON test pins the format.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The contract version this build writes. Inputs without a version are version 1.
pub(crate) const VERSION: u32 = 1;

fn version_1() -> u32 {
    1
}

/// Input of the built-in runner's workflow, sent as the schedule action's only argument:
/// self-contained, so a run never needs to read the DurableJob (which may have changed or
/// gone) to know what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunInput {
    #[serde(default = "version_1")]
    pub version: u32,
    /// The DurableJob's namespace (where Jobs are created).
    pub namespace: String,
    /// The DurableJob's name.
    pub name: String,
    /// The DurableJob's uid (owner of the Jobs; part of their names).
    pub uid: String,
    /// batch/v1 JobTemplateSpec (null for a run of steps).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub job_template: Value,
    /// Whole-Job retries, counted by the workflow; `None` means one attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RunRetry>,
    pub successful_runs_history_limit: i32,
    pub failed_runs_history_limit: i32,
    /// The steps of a multi-step run, in order (empty: one Job from `job_template`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<RunStep>,
    /// A retry (`kubectl durablejob retry`): what the retried run finished, not run again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse: Option<Reuse>,
}

/// What a retry takes over from the run it retries.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Reuse {
    /// The workflow id of the retried run.
    pub of: String,
    /// By step name: the steps (or items of a fan-out) that succeeded there.
    pub steps: std::collections::BTreeMap<String, ReusedStep>,
}

/// A step the retried run finished: wholly (its result is taken over), or some of its items.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReusedStep {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// A fan-out whose items did not all succeed: the indexes of those that did (they are not
    /// run again). Absent: the whole step succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_done: Option<Vec<u32>>,
}

impl RunInput {
    /// The jobTemplate of `step`, or of the run when it has no steps.
    pub fn template_of(&self, step: Option<&str>) -> Option<&Value> {
        match step {
            None => Some(&self.job_template).filter(|t| !t.is_null()),
            Some(name) => self
                .steps
                .iter()
                .find(|s| s.name == name)
                .map(|s| &s.job_template),
        }
    }
}

/// One step of a multi-step run as the run carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunStep {
    pub name: String,
    /// batch/v1 JobTemplateSpec of the step's Job.
    pub job_template: Value,
    /// Whole-Job retries of this step; `None` means one attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RunRetry>,
    /// Longest one attempt may take; `None`: the Job's deadline plus a margin, or a week.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::util::duration::go_duration::option"
    )]
    pub timeout: Option<Duration>,
    /// The steps it waits for; when no step has any, the steps run in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Fan-out: one Job per item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<RunForEach>,
    /// With `for_each`: failed items do not fail the step; the run ends partially failed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_on_item_failure: bool,
}

/// A fan-out's items: literal, or an earlier step's result (a JSON array).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunForEach {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_step: Option<String>,
    pub parallelism: u32,
}

/// At most this many items in one fan-out step: each is an activity in the run's history
/// (about six events and 1.3 KiB; 1,000 items measured 5,880 events and 1.31 MiB, under
/// Temporal's warning of 10,240 events and 10 MiB: BENCHMARKS.md).
pub(crate) const MAX_ITEMS: usize = 1000;

impl RunInput {
    /// The input as an activity of a fan-out run gets it: without literal items (each
    /// activity carries its own), so the history does not hold the list once per item.
    pub fn without_items(&self) -> RunInput {
        let mut lean = self.clone();
        for s in &mut lean.steps {
            if let Some(f) = s.for_each.as_mut() {
                f.items = None;
            }
        }
        lean
    }
}

/// What a run returns when it completed (and, in a multi-step run that failed, the details of
/// its failure: the steps that ended, which a retry takes over).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RunOutcome {
    /// The last Job (of the last step), and its attempts.
    pub job_name: String,
    pub attempts: u32,
    /// In a multi-step run: each step's Job and attempts, in the order they finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepOutcome>,
}

/// How one step of a multi-step run ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StepOutcome {
    pub name: String,
    pub job_name: String,
    pub attempts: u32,
    /// Taken over from the retried run, not run again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reused: bool,
    /// What the step's container left in its termination message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// A fan-out step: how its items ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<ItemsOutcome>,
}

/// How a fan-out step's items ended: every failed one named.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ItemsOutcome {
    pub total: u32,
    pub succeeded: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<ItemFailure>,
    /// Items never started (the step stopped at a failed item), by index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_started: Vec<u32>,
    /// Of the succeeded: taken over from the retried run.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub reused: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One item that failed, after its retries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ItemFailure {
    pub index: u32,
    pub item: serde_json::Value,
    pub message: String,
}

/// Whole-Job retries as the run carries them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRetry {
    #[serde(with = "crate::util::duration::go_duration")]
    pub initial_interval: Duration,
    pub backoff_coefficient: f64,
    #[serde(with = "crate::util::duration::go_duration")]
    pub maximum_interval: Duration,
    /// 0 means unlimited.
    pub maximum_attempts: i32,
    pub non_retryable_error_types: Vec<String>,
}

/// Memo keys the built-in runner sets on its workflows, read back into `recentRuns`.
pub(crate) mod memo {
    pub(crate) const JOB_NAME: &str = "durablejob.dev/job-name";
    pub(crate) const ATTEMPTS: &str = "durablejob.dev/attempts";
    pub(crate) const MESSAGE: &str = "durablejob.dev/message";
    /// A run with `continueOnItemFailure` whose items failed: how many (it completed, partially
    /// failed).
    pub(crate) const FAILED_ITEMS: &str = "durablejob.dev/failed-items";
    /// A multi-step run: the step that runs now (`name (k/n)`).
    pub(crate) const STEP: &str = "durablejob.dev/step";
    /// A retry: the workflow id of the run it retries.
    pub(crate) const RETRY_OF: &str = "durablejob.dev/retry-of";
    /// A multi-step run: how far it got ([`crate::api::RunProgress`] as JSON).
    pub(crate) const PROGRESS: &str = "durablejob.dev/progress";
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn golden_path() -> std::path::PathBuf {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run-contract-v1.json")
    }

    fn input() -> RunInput {
        RunInput {
            version: VERSION,
            namespace: "team".into(),
            name: "nightly-report".into(),
            uid: "0b7c1a9e-uid".into(),
            job_template: json!({"spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox:1.36"}]}}}}),
            retry: Some(RunRetry {
                initial_interval: Duration::from_secs(30),
                backoff_coefficient: 2.0,
                maximum_interval: Duration::from_secs(600),
                maximum_attempts: 3,
                non_retryable_error_types: vec!["JobDeadlineExceeded".into()],
            }),
            successful_runs_history_limit: 3,
            failed_runs_history_limit: 1,
            steps: vec![],
            reuse: None,
        }
    }

    #[test]
    fn the_input_is_written_and_read_exactly_as_the_golden_file_says() {
        let golden: Value = serde_json::from_str(&std::fs::read_to_string(golden_path()).unwrap()).unwrap();
        assert_eq!(
            serde_json::to_value(input()).unwrap(),
            golden,
            "the wire format changed"
        );
        assert_eq!(serde_json::from_value::<RunInput>(golden).unwrap(), input());
    }

    #[test]
    fn an_input_written_before_versioning_is_version_1() {
        let mut old = serde_json::to_value(input()).unwrap();
        old.as_object_mut().unwrap().remove("version");
        assert_eq!(serde_json::from_value::<RunInput>(old).unwrap().version, 1);
    }

    #[test]
    fn the_memo_keys_are_pinned() {
        assert_eq!(
            [
                memo::JOB_NAME,
                memo::ATTEMPTS,
                memo::MESSAGE,
                memo::FAILED_ITEMS,
                memo::STEP,
                memo::RETRY_OF,
                memo::PROGRESS
            ],
            [
                "durablejob.dev/job-name",
                "durablejob.dev/attempts",
                "durablejob.dev/message",
                "durablejob.dev/failed-items",
                "durablejob.dev/step",
                "durablejob.dev/retry-of",
                "durablejob.dev/progress"
            ]
        );
    }
}
