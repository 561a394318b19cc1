//! `durablejob.run`: one run of a DurableJob. Deterministic: every side effect is an activity,
//! every wait a workflow timer. Whole-Job retries are counted here (attempt n = 1, 2, ...), so a
//! retried activity for infrastructure errors reuses the same n and therefore the same Job.

use std::time::Duration;

use chrono::DateTime;
use temporalio_common::RetryPolicy;
use temporalio_common::search_attributes::{SearchAttributeKey, Timestamp};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::CancellableFuture;
use temporalio_sdk::{
    ActivityCancellationType, ActivityExecutionError, ActivityOptions, ApplicationFailure,
    LocalActivityOptions, MemoValue, SyncWorkflowContext, WorkflowCancellationToken, WorkflowContext,
    WorkflowContextView, WorkflowResult, WorkflowTermination,
};

use super::activities::{AttemptInput, CleanupInput, ItemRef, JobActivities, JobDone};
use super::exchange::{JobProgress, RunStatus, backoff, retries_after};
use super::job::{self, failure};
use crate::metrics::runner::RunEnd;
use crate::run_contract::{RunInput, RunRetry, RunStep, memo as run_memo};

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

pub use crate::run_contract::{ItemFailure, ItemsOutcome, RunOutcome, StepOutcome};

#[workflow]
#[derive(Default)]
pub struct DurableJobRun {
    status: RunStatus,
    /// The progress last written to the memo, and when (workflow time, ms); `None` until then.
    published: Option<(crate::api::RunProgress, i64)>,
    /// Whether this run writes its progress to the memo (runs started before it did, replayed,
    /// do not: the patch marker tells them apart).
    writes_progress: bool,
}

/// The patch that added the progress memo to multi-step runs.
const PROGRESS_PATCH: &str = "durablejob.progress-memo";

/// The patch that made the end-of-run cleanup of finished Jobs a local activity.
const LOCAL_CLEANUP_PATCH: &str = "durablejob.local-cleanup";

/// How long the cleanup of finished Jobs may take (each of its tries).
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A fan-out's items rewrite the progress memo at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Writes the run's progress to its memo when [`super::exchange::progress_due`] says so.
fn publish_progress(ctx: &WorkflowContext<DurableJobRun>) -> Result<(), WorkflowTermination> {
    let now = ctx
        .workflow_time()
        .map(|t| DateTime::<chrono::Utc>::from(t).timestamp_millis())
        .unwrap_or(0);
    let next = ctx.state(|s| {
        let p = super::exchange::progress_of(&s.status)?;
        let due =
            s.writes_progress && super::exchange::progress_due(s.published.as_ref(), &p, now, PROGRESS_EVERY);
        due.then_some(p)
    });
    if let Some(p) = next {
        let value = serde_json::to_value(&p).unwrap_or_default();
        ctx.upsert_memo([(run_memo::PROGRESS, Some(MemoValue::new(value)))])?;
        ctx.state_mut(|s| s.published = Some((p, now)));
    }
    Ok(())
}

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

/// How long one attempt may take: the step's timeout, else the Job's own deadline plus a
/// margin, or a week.
fn attempt_timeout(template: &serde_json::Value, timeout: Option<Duration>) -> Duration {
    timeout.unwrap_or_else(|| {
        template["spec"]["activeDeadlineSeconds"]
            .as_u64()
            .map(|s| Duration::from_secs(s + 300))
            .unwrap_or(Duration::from_secs(7 * 24 * 3600))
    })
}

/// One Job's attempts within a run: the run's one Job, or a step's.
#[derive(Clone)]
struct Attempts<'a> {
    input: &'a RunInput,
    step: Option<&'a RunStep>,
    /// A fan-out step's item.
    item: Option<ItemRef>,
    /// The results of the steps before.
    results: std::collections::BTreeMap<String, serde_json::Value>,
    slot: i64,
    heartbeat: Duration,
    workflow_id: &'a str,
    run_id: &'a str,
}

/// How a Job's attempts ended when none succeeded.
enum Ended {
    /// The run was cancelled; with `cleanup`, during a backoff (no Job of it is left running).
    Cancelled {
        cleanup: bool,
    },
    /// The last attempt failed, and no retry is left or allowed; a fan-out step says how far
    /// its items got (a retry runs the rest).
    Failed {
        type_name: String,
        message: String,
        partial: Option<Box<StepOutcome>>,
    },
    Terminated(WorkflowTermination),
}

impl From<WorkflowTermination> for Ended {
    fn from(t: WorkflowTermination) -> Self {
        Ended::Terminated(t)
    }
}

#[workflow_methods]
impl DurableJobRun {
    /// Where the run stands: attempt, Job, the Job's conditions and pods, last heartbeat.
    #[query(name = "status")]
    pub fn status(&self, _ctx: &WorkflowContextView) -> RunStatus {
        self.status.clone()
    }

    /// Graceful cancel: the Job is deleted and the run ends Canceled.
    #[signal(name = "cancel")]
    pub fn cancel(&mut self, _ctx: &mut SyncWorkflowContext<Self>) {
        self.status.cancel_requested = true;
    }

    /// The activity's reading of the Job (only the current attempt's counts).
    #[signal(name = "durablejob.progress")]
    pub fn progress(&mut self, _ctx: &mut SyncWorkflowContext<Self>, p: JobProgress) {
        if p.job_name == self.status.job_name {
            let s = &mut self.status;
            s.job_conditions = p.conditions;
            s.pods = p.pods;
            s.last_heartbeat_time = Some(p.observed_at);
        }
    }

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
        let (workflow_id, run_id) = (ctx.workflow_id().to_string(), ctx.run_id().to_string());
        let started = ctx.workflow_time().map(DateTime::<chrono::Utc>::from);
        ctx.state_mut(|s| {
            s.status.scheduled_time = DateTime::from_timestamp(slot, 0);
            s.status.start_time = started;
        });
        let (workflow_id, run_id) = (workflow_id.as_str(), run_id.as_str());
        let one = Attempts {
            input: &input,
            step: None,
            item: None,
            results: Default::default(),
            slot,
            heartbeat,
            workflow_id,
            run_id,
        };
        if let Some(r) = &input.reuse {
            ctx.upsert_memo([(run_memo::RETRY_OF, Some(MemoValue::new(r.of.clone())))])?;
        }
        if !input.steps.is_empty() {
            let lean = input.without_items();
            return run_steps(ctx, &input, &Attempts { input: &lean, ..one }).await;
        }
        match run_job(ctx, &one).await {
            Ok((done, n)) => {
                cleanup(ctx, &input, None).await;
                Ok(RunOutcome {
                    job_name: done.job_name,
                    attempts: n,
                    steps: vec![],
                })
            }
            Err(ended) => end_run(ctx, &input, ended, None, None).await,
        }
    }
}

/// The steps of a multi-step run: in the order listed, or as the DAG their dependsOn make
/// (a step starts once those it waits for succeeded; independent ones run at the same time).
/// Each is one Job (or one per item) with its own attempts; a step that finished is never run
/// again in this run (the history holds its end). A failed step starts no more steps; the run
/// fails once those running ended. `base` is what every step's attempts share (the input
/// activities get: without items).
async fn run_steps<'a>(
    ctx: &WorkflowContext<DurableJobRun>,
    input: &'a RunInput,
    base: &Attempts<'a>,
) -> WorkflowResult<RunOutcome> {
    use futures::future::{FutureExt, LocalBoxFuture};
    let steps = &input.steps;
    let total = steps.len() as u32;
    let waits_for = waits_for(steps);
    let mut outcomes: Vec<StepOutcome> = Vec::new();
    let mut started = vec![false; steps.len()];
    let mut failure: Option<Ended> = None;
    let mut running: Vec<LocalBoxFuture<'_, (usize, Result<StepOutcome, Ended>)>> = Vec::new();
    let writes_progress = ctx.patched(PROGRESS_PATCH);
    ctx.state_mut(|s| s.writes_progress = writes_progress);
    loop {
        for (i, step) in steps.iter().enumerate() {
            let ready = waits_for[i].iter().all(|d| outcomes.iter().any(|o| &o.name == d));
            if failure.is_some() || started[i] || !ready {
                continue;
            }
            started[i] = true;
            let at = format!("{} ({}/{total})", step.name, i + 1);
            ctx.upsert_memo([(run_memo::STEP, Some(MemoValue::new(at)))])?;
            let ancestors = ancestors(steps, &waits_for, i);
            let results = outcomes
                .iter()
                .filter(|o| ancestors.contains(&o.name))
                .filter_map(|o| Some((o.name.clone(), o.result.clone()?)))
                .collect();
            let a = Attempts {
                step: Some(step),
                results,
                ..base.clone()
            };
            let reuse = input.reuse.as_ref().and_then(|r| r.steps.get(&step.name));
            running.push(async move { (i, run_step(ctx, a, step, reuse).await) }.boxed_local());
        }
        let now: Vec<String> = steps
            .iter()
            .enumerate()
            .filter(|(i, s)| started[*i] && !outcomes.iter().any(|o| o.name == s.name))
            .map(|(_, s)| s.name.clone())
            .collect();
        let done = outcomes.len() as u32;
        ctx.state_mut(|s| {
            s.status.step = (!now.is_empty()).then(|| now.join(","));
            s.status.steps_done = done;
            s.status.steps_total = total;
        });
        publish_progress(ctx)?;
        if running.is_empty() {
            break;
        }
        let ((i, ended), _, rest) = futures::future::select_all(running).await;
        running = rest;
        match ended {
            Ok(outcome) => outcomes.push(outcome),
            Err(Ended::Failed {
                type_name,
                message,
                partial,
            }) if failure.is_none() => {
                let message = format!("step {}: {message}", steps[i].name);
                failure = Some(Ended::Failed {
                    type_name,
                    message,
                    partial: None,
                });
                outcomes.extend(partial.map(|p| *p));
            }
            Err(Ended::Failed { partial, .. }) => outcomes.extend(partial.map(|p| *p)),
            Err(ended) => match failure {
                // a cancel or termination ends the run as such, whatever failed before
                Some(Ended::Failed { .. }) | None if !matches!(ended, Ended::Failed { .. }) => {
                    failure = Some(ended)
                }
                _ => {}
            },
        }
    }
    if let Some(ended) = failure {
        let so_far = RunOutcome {
            job_name: String::new(),
            attempts: 0,
            steps: outcomes,
        };
        return end_run(ctx, input, ended, Some(so_far), Some(base.slot)).await;
    }
    let end = match partly_failed(ctx, &outcomes)? {
        true => RunEnd::PartiallyFailed,
        false => RunEnd::Succeeded,
    };
    cleanup(ctx, input, Some((end, base.slot))).await;
    let last = outcomes.last().cloned();
    Ok(RunOutcome {
        job_name: last.as_ref().map(|o| o.job_name.clone()).unwrap_or_default(),
        attempts: last.map_or(0, |o| o.attempts),
        steps: outcomes,
    })
}

/// The names each step waits for: its dependsOn in a DAG, else the step before it.
fn waits_for(steps: &[RunStep]) -> Vec<Vec<String>> {
    let dag = steps.iter().any(|s| !s.depends_on.is_empty());
    steps
        .iter()
        .enumerate()
        .map(|(i, s)| match (dag, i) {
            (true, _) => s.depends_on.clone(),
            (false, 0) => vec![],
            (false, _) => vec![steps[i - 1].name.clone()],
        })
        .collect()
}

/// The steps step `i` waits for, directly or not: whose results it gets.
fn ancestors(steps: &[RunStep], waits_for: &[Vec<String>], i: usize) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut todo = waits_for[i].clone();
    while let Some(name) = todo.pop() {
        if found.contains(&name) {
            continue;
        }
        if let Some(j) = steps.iter().position(|s| s.name == name) {
            todo.extend(waits_for[j].iter().cloned());
        }
        found.push(name);
    }
    found
}

/// One step: its Job's attempts, or its items' (less those a retried run finished), or, when
/// the retried run finished it, nothing: its result is taken over.
async fn run_step(
    ctx: &WorkflowContext<DurableJobRun>,
    a: Attempts<'_>,
    step: &RunStep,
    reuse: Option<&crate::run_contract::ReusedStep>,
) -> Result<StepOutcome, Ended> {
    if let Some(r) = reuse.filter(|r| r.items_done.is_none()) {
        return Ok(StepOutcome {
            name: step.name.clone(),
            job_name: String::new(),
            attempts: 0,
            reused: true,
            result: r.result.clone(),
            items: None,
        });
    }
    match &step.for_each {
        Some(f) => match items_of(f, &a.results, &step.name) {
            Ok(items) => {
                let done = reuse.and_then(|r| r.items_done.clone()).unwrap_or_default();
                run_items(ctx, &a, step, items, &done).await
            }
            Err(message) => Err(Ended::Failed {
                type_name: failure::INVALID_ITEMS.to_string(),
                message,
                partial: None,
            }),
        },
        None => run_job(ctx, &a).await.map(|(done, n)| StepOutcome {
            name: step.name.clone(),
            job_name: done.job_name,
            attempts: n,
            reused: false,
            result: done.result,
            items: None,
        }),
    }
}

/// A run whose fan-outs went on past failed items completes partially failed: the memo counts
/// and names them (the result lists them all).
fn partly_failed(
    ctx: &WorkflowContext<DurableJobRun>,
    outcomes: &[StepOutcome],
) -> Result<bool, WorkflowTermination> {
    let failed: Vec<(&str, &ItemsOutcome)> = outcomes
        .iter()
        .filter_map(|o| Some((o.name.as_str(), o.items.as_ref()?)))
        .filter(|(_, i)| !i.failed.is_empty())
        .collect();
    if failed.is_empty() {
        return Ok(false);
    }
    let count: usize = failed.iter().map(|(_, i)| i.failed.len()).sum();
    let message = failed
        .iter()
        .map(|(step, i)| format!("step {step}: {}", items_message(i)))
        .collect::<Vec<_>>()
        .join("; ");
    ctx.upsert_memo([
        (run_memo::FAILED_ITEMS, Some(MemoValue::new(count as i64))),
        (run_memo::MESSAGE, Some(MemoValue::new(message))),
    ])?;
    Ok(true)
}

/// `4 of 50 items failed: #3 "acct-3", #17 ...` (the first five named).
fn items_message(i: &ItemsOutcome) -> String {
    const NAMED: usize = 5;
    let named: Vec<String> = i
        .failed
        .iter()
        .take(NAMED)
        .map(|f| format!("#{} {}", f.index, f.item))
        .collect();
    let more = i.failed.len().saturating_sub(NAMED);
    format!(
        "{} of {} items failed: {}{}{}",
        i.failed.len(),
        i.total,
        named.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        },
        if !i.not_started.is_empty() {
            format!("; {} not started", i.not_started.len())
        } else {
            String::new()
        }
    )
}

/// A fan-out's items: its own, or the result (a JSON array) of the earlier step it names.
fn items_of(
    f: &crate::run_contract::RunForEach,
    results: &std::collections::BTreeMap<String, serde_json::Value>,
    step: &str,
) -> Result<Vec<serde_json::Value>, String> {
    use crate::run_contract::MAX_ITEMS;
    let items = match (&f.items, &f.from_step) {
        (Some(items), _) => items.clone(),
        (None, Some(from)) => match results.get(from) {
            Some(serde_json::Value::Array(items)) => items.clone(),
            Some(other) => {
                return Err(format!(
                    "the items of step {step} are step {from}'s result, which is not a JSON array: {other}"
                ));
            }
            None => {
                return Err(format!(
                    "the items of step {step} are step {from}'s result, and it left none (its container writes a JSON array to /dev/termination-log)"
                ));
            }
        },
        (None, None) => vec![],
    };
    if items.len() > MAX_ITEMS {
        return Err(format!("{} items; a step takes at most {MAX_ITEMS}", items.len()));
    }
    Ok(items)
}

/// How one item's attempts ended: its index, the item, and the end.
type ItemEnd = (u32, serde_json::Value, Result<(JobDone, u32), Ended>);

/// A fan-out step: one Job's attempts per item, at most `parallelism` at a time, in item
/// order. Without continueOnItemFailure the first failed item stops new ones from starting
/// and, once those running end, fails the step; with it, every item runs and the failed ones
/// are recorded. A cancel stops them all (each deletes its Job).
async fn run_items(
    ctx: &WorkflowContext<DurableJobRun>,
    base: &Attempts<'_>,
    step: &RunStep,
    items: Vec<serde_json::Value>,
    done: &[u32],
) -> Result<StepOutcome, Ended> {
    use futures::future::{FutureExt, LocalBoxFuture};
    let parallelism = step.for_each.as_ref().map_or(1, |f| f.parallelism);
    let total = items.len() as u32;
    let reused = (0..total).filter(|i| done.contains(i)).count() as u32;
    let mut outcome = ItemsOutcome {
        total,
        succeeded: reused,
        reused,
        ..Default::default()
    };
    let mut stop: Option<Ended> = None;
    let mut last_job = String::new();
    let mut next = 0usize;
    let mut running: Vec<LocalBoxFuture<'_, ItemEnd>> = Vec::new();
    loop {
        let go_on = stop.is_none() && (outcome.failed.is_empty() || step.continue_on_item_failure);
        while go_on && running.len() < parallelism.max(1) as usize && next < items.len() {
            if done.contains(&(next as u32)) {
                next += 1;
                continue;
            }
            let (index, value) = (next as u32, items[next].clone());
            let a = Attempts {
                item: Some(ItemRef {
                    index,
                    value: value.clone(),
                }),
                ..base.clone()
            };
            running.push(async move { (index, value, run_job(ctx, &a).await) }.boxed_local());
            next += 1;
        }
        let counts = (
            outcome.succeeded,
            outcome.failed.len() as u32,
            running.len() as u32,
        );
        ctx.state_mut(|s| {
            s.status.items = Some(crate::runner::exchange::ItemCounts {
                step: step.name.clone(),
                total,
                succeeded: counts.0,
                failed: counts.1,
                running: counts.2,
            })
        });
        publish_progress(ctx)?;
        if running.is_empty() {
            break;
        }
        let ((index, item, ended), _, rest) = futures::future::select_all(running).await;
        running = rest;
        match ended {
            Ok((done, _)) => {
                outcome.succeeded += 1;
                last_job = done.job_name;
            }
            Err(Ended::Failed { message, .. }) => outcome.failed.push(ItemFailure { index, item, message }),
            Err(other) => {
                stop.get_or_insert(other);
            }
        }
    }
    if let Some(ended) = stop {
        return Err(ended);
    }
    outcome.not_started = (next as u32..total).filter(|i| !done.contains(i)).collect();
    let message = items_message(&outcome);
    let ended = StepOutcome {
        name: step.name.clone(),
        job_name: last_job,
        attempts: 1,
        reused: false,
        result: None,
        items: Some(outcome),
    };
    if ended.items.as_ref().is_some_and(|i| !i.failed.is_empty()) && !step.continue_on_item_failure {
        return Err(Ended::Failed {
            type_name: failure::JOB_FAILED.to_string(),
            message,
            partial: Some(Box::new(ended)),
        });
    }
    Ok(ended)
}

/// Runs one Job's attempts (the run's, or a step's) until one succeeds, the retries are spent,
/// or the run is cancelled. Whole-Job retries are counted here: a retried activity for
/// infrastructure errors reuses the same n and therefore the same Job.
async fn run_job(ctx: &WorkflowContext<DurableJobRun>, a: &Attempts<'_>) -> Result<(JobDone, u32), Ended> {
    let (template, timeout, retry) = match a.step {
        Some(s) => (&s.job_template, s.timeout, s.retry.as_ref()),
        None => (&a.input.job_template, None, a.input.retry.as_ref()),
    };
    let step = a.step.map(|s| s.name.clone());
    let part = job::part(step.as_deref(), a.item.as_ref().map(|i| i.index));
    let mut n: u32 = 1;
    loop {
        // an item's attempts are not the run's memo (a fan-out would write it per item)
        begin_attempt(ctx, a.input, part.as_deref(), a.slot, n, a.item.is_none())?;
        let attempt = AttemptInput {
            run: a.input.clone(),
            slot: a.slot,
            attempt: n,
            workflow_id: a.workflow_id.to_string(),
            run_id: a.run_id.to_string(),
            step: step.clone(),
            results: a.results.clone(),
            item: a.item.clone(),
        };
        let options = attempt_options(attempt_timeout(template, timeout), a.heartbeat);
        let result = run_attempt(ctx, attempt, options).await;
        if ctx.state(|s| s.status.cancel_requested) && result.is_err() {
            return Err(Ended::Cancelled { cleanup: false });
        }
        let e = match result {
            Ok(done) => return Ok((done, n)),
            // the workflow was cancelled (CancelOther, or a user): the activity deleted its Job
            Err(ActivityExecutionError::Cancelled(_)) => return Err(Ended::Cancelled { cleanup: false }),
            Err(e) => e,
        };
        let (type_name, message) = failure_of(&e);
        if let Some(retry) = retry.filter(|_| retries_after(retry, n, &type_name)) {
            ctx.upsert_memo([(
                run_memo::MESSAGE,
                Some(MemoValue::new(format!("attempt {n}: {message}"))),
            )])
            .map_err(WorkflowTermination::from)?;
            n += 1;
            if back_off(ctx, retry, n).await {
                return Err(Ended::Cancelled { cleanup: true });
            }
            continue;
        }
        return Err(Ended::Failed {
            type_name,
            message,
            partial: None,
        });
    }
}

/// Ends a run whose Job (or step) did not succeed: cancelled, or failed with the reason in
/// its memo and failure; finished Jobs are kept within the history limits.
/// `so_far` (a multi-step run): the steps that ended, carried in the failure's details so a
/// retry knows what not to run again.
async fn end_run(
    ctx: &WorkflowContext<DurableJobRun>,
    input: &RunInput,
    ended: Ended,
    so_far: Option<RunOutcome>,
    steps_slot: Option<i64>,
) -> WorkflowResult<RunOutcome> {
    // a multi-step run's end is counted by its cleanup; a one-Job run's by its attempt
    let counted = |end: RunEnd| steps_slot.map(|slot| (end, slot));
    match ended {
        Ended::Terminated(t) => Err(t),
        Ended::Cancelled { cleanup: false } => {
            // runs that write their progress clean up (and count) after a cancel as well
            if counted(RunEnd::Canceled).is_some() && ctx.state(|s| s.writes_progress) {
                cleanup(ctx, input, counted(RunEnd::Canceled)).await;
            }
            Err(WorkflowTermination::cancelled())
        }
        Ended::Cancelled { cleanup: true } => {
            cleanup(ctx, input, counted(RunEnd::Canceled)).await;
            Err(WorkflowTermination::cancelled())
        }
        Ended::Failed {
            type_name, message, ..
        } => {
            ctx.upsert_memo([(run_memo::MESSAGE, Some(MemoValue::new(message.clone())))])?;
            cleanup(ctx, input, counted(RunEnd::Failed)).await;
            Err(ApplicationFailure::builder(message)
                .type_name(type_name)
                .non_retryable(true)
                .maybe_details(so_far)
                .build()
                .into())
        }
    }
}

/// Starts attempt `n` in the run's state (queries see it at once) and memo.
fn begin_attempt(
    ctx: &WorkflowContext<DurableJobRun>,
    input: &RunInput,
    part: Option<&str>,
    slot: i64,
    n: u32,
    memo: bool,
) -> Result<(), WorkflowTermination> {
    let job_name = job::job_name(
        &input.name,
        &input.uid,
        DateTime::from_timestamp(slot, 0).unwrap_or_default(),
        part,
        n,
    );
    let now = ctx.workflow_time().map(DateTime::<chrono::Utc>::from);
    ctx.state_mut(|s| {
        s.status = RunStatus {
            attempt: n,
            job_name: job_name.clone(),
            attempt_start_time: now,
            cancel_requested: s.status.cancel_requested,
            scheduled_time: s.status.scheduled_time,
            start_time: s.status.start_time,
            step: s.status.step.clone(),
            steps_done: s.status.steps_done,
            steps_total: s.status.steps_total,
            items: s.status.items.clone(),
            ..Default::default()
        }
    });
    if memo {
        ctx.upsert_memo([
            (run_memo::JOB_NAME, Some(MemoValue::new(job_name))),
            (run_memo::ATTEMPTS, Some(MemoValue::new(n))),
        ])?;
    }
    Ok(())
}

fn attempt_options(timeout: Duration, heartbeat: Duration) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(timeout)
        .heartbeat_timeout(heartbeat)
        .retry_policy(infrastructure_retry())
        .cancellation_type(ActivityCancellationType::WaitCancellationCompleted)
        .build()
}

/// Runs one attempt's activity; a `cancel` signal cancels it (the activity deletes its Job and
/// reports cancelled).
async fn run_attempt(
    ctx: &WorkflowContext<DurableJobRun>,
    attempt: AttemptInput,
    options: ActivityOptions,
) -> Result<JobDone, ActivityExecutionError> {
    let activity = ctx.execute_activity(JobActivities::run_job, attempt, options);
    futures::pin_mut!(activity);
    let asked = ctx.wait_condition(|s: &DurableJobRun| s.status.cancel_requested);
    futures::pin_mut!(asked);
    temporalio_sdk::workflows::select! {
        r = activity.as_mut() => r,
        _ = asked => {
            activity.cancel();
            activity.await
        }
    }
}

/// Waits out the backoff before attempt `n`; true when a `cancel` signal came meanwhile.
async fn back_off(ctx: &WorkflowContext<DurableJobRun>, retry: &RunRetry, n: u32) -> bool {
    ctx.state_mut(|s| s.status.backing_off = true);
    let wait = ctx.timer(backoff(retry, n));
    futures::pin_mut!(wait);
    let asked = ctx.wait_condition(|s: &DurableJobRun| s.status.cancel_requested);
    futures::pin_mut!(asked);
    temporalio_sdk::workflows::select! {
        _ = wait => false,
        _ = asked => true,
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
async fn cleanup(ctx: &WorkflowContext<DurableJobRun>, input: &RunInput, run_end: Option<(RunEnd, i64)>) {
    let cleanup = CleanupInput {
        namespace: input.namespace.clone(),
        name: input.name.clone(),
        uid: input.uid.clone(),
        successful_runs_history_limit: input.successful_runs_history_limit,
        failed_runs_history_limit: input.failed_runs_history_limit,
        run_end,
    };
    let retry = RetryPolicy::builder().maximum_attempts(5).build();
    // A local activity: it runs in the workflow task that ends the run, so the run closes one
    // task sooner after its Job and Temporal dispatches one task less per run. Runs started
    // before that (no patch marker in their history) replay with the activity they scheduled.
    if ctx.patched(LOCAL_CLEANUP_PATCH) {
        let options = LocalActivityOptions::builder()
            .start_to_close_timeout(CLEANUP_TIMEOUT)
            .cancellation_token(WorkflowCancellationToken::new())
            .retry_policy(retry)
            .build();
        let _ = ctx
            .execute_local_activity(JobActivities::cleanup_jobs, cleanup, options)
            .await;
        return;
    }
    let options = ActivityOptions::with_start_to_close_timeout(CLEANUP_TIMEOUT)
        .cancellation_token(WorkflowCancellationToken::new())
        .retry_policy(retry)
        .build();
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
    use crate::run_contract::RunForEach;
    use serde_json::json;

    #[test]
    fn a_fan_outs_items_are_its_own_or_an_earlier_steps_json_array() {
        let literal = RunForEach {
            items: Some(vec![json!("a"), json!("b")]),
            from_step: None,
            parallelism: 2,
        };
        let none = Default::default();
        assert_eq!(
            items_of(&literal, &none, "m").unwrap(),
            vec![json!("a"), json!("b")]
        );
        let from = RunForEach {
            items: None,
            from_step: Some("list".into()),
            parallelism: 2,
        };
        let results = [("list".to_string(), json!([1, 2, 3]))].into();
        assert_eq!(items_of(&from, &results, "m").unwrap().len(), 3);
        let object = [("list".to_string(), json!({"accounts": [1]}))].into();
        assert!(
            items_of(&from, &object, "m")
                .unwrap_err()
                .contains("not a JSON array")
        );
        assert!(items_of(&from, &none, "m").unwrap_err().contains("left none"));
        let many = [("list".to_string(), json!(vec![0; 1001]))].into();
        assert!(items_of(&from, &many, "m").unwrap_err().contains("1001 items"));
    }

    #[test]
    fn steps_wait_for_the_one_before_or_for_their_dependson_and_see_their_ancestors() {
        let step = |name: &str, on: &[&str]| RunStep {
            name: name.into(),
            job_template: json!({}),
            retry: None,
            timeout: None,
            depends_on: on.iter().map(|s| s.to_string()).collect(),
            for_each: None,
            continue_on_item_failure: false,
        };
        let in_order = [step("a", &[]), step("b", &[]), step("c", &[])];
        let w = waits_for(&in_order);
        assert_eq!(w, vec![vec![], vec!["a".to_string()], vec!["b".to_string()]]);
        assert_eq!(ancestors(&in_order, &w, 2).len(), 2);
        let dag = [
            step("root", &[]),
            step("left", &["root"]),
            step("right", &["root"]),
            step("join", &["left", "right"]),
            step("aside", &[]),
        ];
        let w = waits_for(&dag);
        assert!(w[4].is_empty() && w[0].is_empty(), "roots start at once");
        let mut seen = ancestors(&dag, &w, 3);
        seen.sort();
        assert_eq!(seen, vec!["left", "right", "root"]);
        assert!(ancestors(&dag, &w, 4).is_empty());
    }

    #[test]
    fn failed_items_are_counted_and_the_first_five_named() {
        let failure = |index: u32| ItemFailure {
            index,
            item: json!(format!("acct-{index}")),
            message: "Job failed".into(),
        };
        let outcome = ItemsOutcome {
            total: 50,
            succeeded: 43,
            failed: (1..=7).map(failure).collect(),
            not_started: vec![],
            reused: 0,
        };
        assert_eq!(
            items_message(&outcome),
            r#"7 of 50 items failed: #1 "acct-1", #2 "acct-2", #3 "acct-3", #4 "acct-4", #5 "acct-5" and 2 more"#
        );
        let stopped = ItemsOutcome {
            total: 50,
            succeeded: 3,
            failed: vec![failure(3)],
            not_started: (4..50).collect(),
            reused: 0,
        };
        assert!(items_message(&stopped).ends_with("; 46 not started"));
    }
}
