//! The input of one `durablejob.run` workflow: self-contained, so a run never needs to read
//! the DurableJob (which may have changed or gone) to know what to do.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::controller::validate::ValidRetry;

/// Input of the built-in runner's workflow, sent as the schedule action's only argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunInput {
    /// The DurableJob's namespace (where Jobs are created).
    pub namespace: String,
    /// The DurableJob's name.
    pub name: String,
    /// The DurableJob's uid (owner of the Jobs; part of their names).
    pub uid: String,
    /// batch/v1 JobTemplateSpec.
    pub job_template: Value,
    /// Whole-Job retries, counted by the workflow; `None` means one attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<ValidRetry>,
    pub successful_runs_history_limit: i32,
    pub failed_runs_history_limit: i32,
}
