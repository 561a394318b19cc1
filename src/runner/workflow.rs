//! `durablejob.run`: one run of a DurableJob. Deterministic: every side effect is an activity,
//! every wait a workflow timer. Whole-Job retries are counted here (attempt n = 1, 2, ...), so a
//! retried activity for infrastructure errors reuses the same n and therefore the same Job.

use std::time::Duration;

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use temporalio_common::RetryPolicy;
use temporalio_common::search_attributes::{SearchAttributeKey, Timestamp};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityCancellationType, ActivityExecutionError, ActivityOptions, ApplicationFailure, MemoValue,
    WorkflowCancellationToken, WorkflowContext, WorkflowResult, WorkflowTermination,
};

use super::activities::{AttemptInput, CleanupInput, JobActivities};
use super::job::{self, failure};
use crate::run_contract::{RunInput, RunRetry, memo as run_memo};

/// The slot a scheduled run is for (the start time for manual triggers).
pub const SCHEDULED_START: SearchAttributeKey<Timestamp> =
    SearchAttributeKey::datetime("TemporalScheduledStartTime");

/// Settings of the runner that shape activity options (part of the worker, not the input).
#[derive(Debug, Clone, Copy)]
pub struct RunnerTimeouts {
    pub heartbeat: Duration,
}

/// Process-wide runner setting, fixed at start (workflow code reads it when scheduling activities).
static HEARTBEAT_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(30_000);

/// What a successful run returns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RunOutcome {
    pub job_name: String,
    pub attempts: u32,
}

#[workflow]
#[derive(Default)]
pub struct DurableJobRun;

/// The activity retry policy for infrastructure errors (API server unavailable, timeouts):
/// retried without limit within the attempt; the failure types of a Job are final.
fn infrastructure_retry() -> RetryPolicy {
    RetryPolicy::builder()
        .initial_interval(Duration::from_secs(1))
        .backoff_coefficient(2.0)
        .maximum_interval(Duration::from_secs(30))
        .maximum_attempts(0)
        .non_retryable_error_types([
            failure::JOB_FAILED,
            failure::JOB_DEADLINE_EXCEEDED,
            failure::INVALID_JOB_TEMPLATE,
            failure::FORBIDDEN,
        ])
        .build()
}

/// How long one attempt may take: the Job's own deadline plus a margin, or a week.
fn attempt_timeout(input: &RunInput) -> Duration {
    input.job_template["spec"]["activeDeadlineSeconds"]
        .as_u64()
        .map(|s| Duration::from_secs(s + 300))
        .unwrap_or(Duration::from_secs(7 * 24 * 3600))
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

#[workflow_methods]
impl DurableJobRun {
    #[run(name = "durablejob.run")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, input: RunInput) -> WorkflowResult<RunOutcome> {
        let slot = match ctx.search_attributes().get(&SCHEDULED_START) {
            Some(t) => t.seconds(),
            None => ctx
                .workflow_time()
                .map(|t| DateTime::<chrono::Utc>::from(t).timestamp())
                .unwrap_or(0),
        };
        let heartbeat = Duration::from_millis(HEARTBEAT_MS.load(std::sync::atomic::Ordering::Relaxed));
        let mut n: u32 = 1;
        loop {
            let job_name = job::job_name(
                &input.name,
                &input.uid,
                DateTime::from_timestamp(slot, 0).unwrap_or_default(),
                n,
            );
            ctx.upsert_memo([
                (run_memo::JOB_NAME, Some(MemoValue::new(job_name.clone()))),
                (run_memo::ATTEMPTS, Some(MemoValue::new(n))),
            ])?;
            let options = ActivityOptions::with_start_to_close_timeout(attempt_timeout(&input))
                .heartbeat_timeout(heartbeat)
                .retry_policy(infrastructure_retry())
                .cancellation_type(ActivityCancellationType::WaitCancellationCompleted)
                .build();
            let attempt = AttemptInput {
                run: input.clone(),
                slot,
                attempt: n,
            };
            match ctx
                .execute_activity(JobActivities::run_job, attempt, options)
                .await
            {
                Ok(done) => {
                    cleanup(ctx, &input).await;
                    return Ok(RunOutcome {
                        job_name: done.job_name,
                        attempts: n,
                    });
                }
                Err(ActivityExecutionError::Cancelled(_)) => {
                    // the workflow was cancelled (CancelOther, or a user): the activity deleted its Job
                    return Err(WorkflowTermination::cancelled());
                }
                Err(e) => {
                    let (type_name, message) = failure_of(&e);
                    if retries_after(input.retry.as_ref(), n, &type_name) {
                        let retry = input.retry.as_ref().expect("retries need a policy");
                        ctx.upsert_memo([(
                            run_memo::MESSAGE,
                            Some(MemoValue::new(format!("attempt {n}: {message}"))),
                        )])?;
                        n += 1;
                        ctx.timer(backoff(retry, n)).await;
                        continue;
                    }
                    ctx.upsert_memo([(run_memo::MESSAGE, Some(MemoValue::new(message.clone())))])?;
                    cleanup(ctx, &input).await;
                    return Err(ApplicationFailure::builder(message)
                        .type_name(type_name)
                        .non_retryable(true)
                        .build()
                        .into());
                }
            }
        }
    }
}

fn failure_of(e: &ActivityExecutionError) -> (String, String) {
    use temporalio_common::error::IncomingError;
    match e.cause() {
        Some(IncomingError::Application(a)) => (
            a.type_name().unwrap_or(failure::JOB_FAILED).to_string(),
            a.to_string(),
        ),
        Some(IncomingError::Timeout(t)) => (
            failure::JOB_FAILED.to_string(),
            format!("the attempt timed out: {t}"),
        ),
        Some(other) => (failure::JOB_FAILED.to_string(), other.to_string()),
        None => (failure::JOB_FAILED.to_string(), e.to_string()),
    }
}

/// Keeps finished Jobs within the history limits; runs even if the workflow is being cancelled.
async fn cleanup(ctx: &mut WorkflowContext<DurableJobRun>, input: &RunInput) {
    let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(60))
        .cancellation_token(WorkflowCancellationToken::new())
        .retry_policy(RetryPolicy::builder().maximum_attempts(5).build())
        .build();
    let cleanup = CleanupInput {
        namespace: input.namespace.clone(),
        name: input.name.clone(),
        uid: input.uid.clone(),
        successful_runs_history_limit: input.successful_runs_history_limit,
        failed_runs_history_limit: input.failed_runs_history_limit,
    };
    let _ = ctx
        .execute_activity(JobActivities::cleanup_jobs, cleanup, options)
        .await;
}

/// Sets the heartbeat timeout the workflow gives its activities (from `--heartbeat-timeout`).
pub fn set_timeouts(t: RunnerTimeouts) {
    HEARTBEAT_MS.store(
        t.heartbeat.as_millis() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
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
}
