//! Validation of what the CRD schema cannot check: cron semantics, IANA zones, durations,
//! timestamps and the embedded Job/Pod templates. Pure: no server is involved, and an invalid
//! spec never reaches Temporal.

use std::{collections::BTreeMap, fmt, str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use k8s_openapi::api::{batch::v1::JobTemplateSpec, core::v1::PodTemplateSpec};
use serde_json::Value;

use crate::api::{
    BUILTIN_WORKFLOW_TYPE, DeletionPolicy, DurableJobSpec, Exclusions, OverlapPolicy, ScheduleSpec,
};
use crate::cron::{self, ranges::Match};

/// Temporal refuses catch-up windows shorter than this.
pub const MIN_CATCHUP_WINDOW: Duration = Duration::from_secs(10);

/// One problem in a spec: the field path and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every problem found in a spec, reported together so a user fixes them in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSpec(pub Vec<FieldError>);

impl fmt::Display for InvalidSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for InvalidSpec {}

/// A spec that passed validation, with every value parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSpec {
    /// The entries as written (trimmed); `H` is expanded per resource when the schedule is built.
    pub cron: Vec<String>,
    /// From spec.schedule.exclude.
    pub exclude: Vec<Match>,
    /// Names of the DurableJobCalendars to exclude as well.
    pub exclude_calendars: Vec<String>,
    pub suspend_after_failures: Option<u32>,
    pub resume_after: Option<Duration>,
    pub intervals: Vec<ValidInterval>,
    pub time_zone: String,
    pub jitter: Option<Duration>,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub overlap_policy: OverlapPolicy,
    pub catchup_window: Duration,
    pub pause_on_failure: bool,
    pub suspend: bool,
    pub run_limit: Option<i64>,
    pub workflow: ValidWorkflow,
    pub executor: Executor,
    pub successful_runs_history_limit: i32,
    pub failed_runs_history_limit: i32,
    pub temporal_namespace: Option<String>,
    pub deletion_policy: DeletionPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidInterval {
    pub every: Duration,
    pub offset: Option<Duration>,
}

/// What one run is, parsed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ValidWorkflow {
    /// The workflow type as given; `None` means the built-in runner.
    pub type_: Option<String>,
    pub task_queue: Option<String>,
    pub args: Vec<Value>,
    pub execution_timeout: Option<Duration>,
    pub run_timeout: Option<Duration>,
    pub task_timeout: Option<Duration>,
    pub retry: Option<ValidRetry>,
    pub memo: BTreeMap<String, Value>,
    pub search_attributes: BTreeMap<String, Value>,
    /// Runs start with Temporal's auto-upgrade override (versionBehavior AutoUpgrade).
    pub auto_upgrade: bool,
}

/// A retry policy with Temporal's defaults filled in where the user left a field out.
/// Serialized only into the desired schedule's hash; the runner's wire type is
/// `crate::run_contract::RunRetry`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidRetry {
    #[serde(serialize_with = "crate::util::duration::go_duration::serialize")]
    pub initial_interval: Duration,
    pub backoff_coefficient: f64,
    #[serde(serialize_with = "crate::util::duration::go_duration::serialize")]
    pub maximum_interval: Duration,
    /// 0 means unlimited.
    pub maximum_attempts: i32,
    pub non_retryable_error_types: Vec<String>,
}

/// The retry policy as the run contract carries it to the runner.
impl From<&ValidRetry> for crate::run_contract::RunRetry {
    fn from(r: &ValidRetry) -> Self {
        let ValidRetry {
            initial_interval,
            backoff_coefficient,
            maximum_interval,
            maximum_attempts,
            non_retryable_error_types,
        } = r;
        Self {
            initial_interval: *initial_interval,
            backoff_coefficient: *backoff_coefficient,
            maximum_interval: *maximum_interval,
            maximum_attempts: *maximum_attempts,
            non_retryable_error_types: non_retryable_error_types.clone(),
        }
    }
}

/// Who executes the runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Executor {
    /// The built-in runner creates a Job from this (validated) batch/v1 JobTemplateSpec.
    BuiltinRunner { job_template: Value },
    /// The built-in runner runs these steps, a Job each, in order.
    Steps(Vec<ValidStep>),
    /// The user's own Temporal worker, run as a Deployment the operator manages.
    UserWorker(Box<ValidWorker>),
}

/// One step of a multi-step run, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidStep {
    pub name: String,
    pub job_template: Value,
    /// Its own retry, else spec.workflow.retry.
    pub retry: Option<ValidRetry>,
    pub timeout: Option<Duration>,
    /// The steps it waits for (empty when the steps run in order).
    pub depends_on: Vec<String>,
    pub for_each: Option<ValidForEach>,
    pub continue_on_item_failure: bool,
}

/// A fan-out's items and how many run at once.
#[derive(Debug, Clone, PartialEq)]
pub enum ValidItems {
    Literal(Vec<Value>),
    FromStep(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidForEach {
    pub items: ValidItems,
    pub parallelism: u32,
}

/// Items running at once when forEach.parallelism is not set.
pub const DEFAULT_PARALLELISM: u32 = 10;

/// At most this many characters in a step name (it is part of the step's Job names).
pub const MAX_STEP_NAME: usize = 20;

#[derive(Debug, Clone, PartialEq)]
pub struct ValidWorker {
    pub image: String,
    pub replicas: i32,
    pub env: Vec<k8s_openapi::api::core::v1::EnvVar>,
    pub resources: Option<k8s_openapi::api::core::v1::ResourceRequirements>,
    pub service_account_name: Option<String>,
    pub template: Option<PodTemplateSpec>,
    /// The build id the team stamped (checked); `None`: derived from the pod template.
    pub build_id: Option<String>,
    pub rollout: crate::api::RolloutStrategy,
    /// Progressive's ramp steps (empty otherwise).
    pub steps: Vec<super::worker_version::RampStep>,
    /// Failed runs on the new version that roll it back (rollbackOnFailure).
    pub rollback_after: Option<u32>,
    /// The gate's workflow type.
    pub gate: Option<String>,
    pub sunset: super::worker_version::Sunset,
}

/// Checks a spec completely and returns it parsed, or every problem found.
pub fn validate(spec: &DurableJobSpec) -> Result<ValidSpec, InvalidSpec> {
    let mut v = Collector::default();
    let s = &spec.schedule;
    let cron = cron_entries(s, &mut v);
    let exclude = s
        .exclude
        .as_ref()
        .map(|e| exclusions(e, "spec.schedule.exclude", &mut v.errors))
        .unwrap_or_default();
    exclude_calendars(s, &mut v);
    let (suspend_after_failures, resume_after) = failure_streak(spec, &mut v);
    let intervals = intervals(s, &mut v);
    let (jitter, start_at, end_at) = calendar_bounds(s, &mut v);
    let catchup_window = limits(spec, &mut v);
    let workflow = validate_workflow(spec, &mut v);
    let executor = validate_executor(spec, &mut v);
    let temporal_namespace = spec.temporal.as_ref().and_then(|t| t.namespace.clone());
    if let Some(ns) = &temporal_namespace
        && ns.trim().is_empty()
    {
        v.push(
            "spec.temporal.namespace".into(),
            "must not be empty when set".into(),
        );
    }

    if !v.errors.is_empty() {
        return Err(InvalidSpec(v.errors));
    }
    Ok(ValidSpec {
        cron,
        exclude,
        exclude_calendars: s.exclude_calendars.clone(),
        suspend_after_failures,
        resume_after,
        intervals,
        time_zone: s.time_zone.clone(),
        jitter,
        start_at,
        end_at,
        overlap_policy: spec.overlap_policy,
        catchup_window: catchup_window.unwrap_or(MIN_CATCHUP_WINDOW),
        pause_on_failure: spec.pause_on_failure,
        suspend: spec.suspend,
        run_limit: spec.run_limit,
        workflow,
        executor: executor.expect("an executor exists when no error was recorded"),
        successful_runs_history_limit: spec.successful_runs_history_limit,
        failed_runs_history_limit: spec.failed_runs_history_limit,
        temporal_namespace,
        deletion_policy: spec.deletion_policy,
    })
}

/// `spec.schedule.cron`, each entry checked (an `H` through an expansion: every resource's
/// expansion has the same shape).
fn cron_entries(s: &ScheduleSpec, v: &mut Collector) -> Vec<String> {
    let mut cron = Vec::new();
    for (i, entry) in s.cron.iter().enumerate() {
        let checked = cron::hash::expand(entry, "", "").and_then(|e| cron::check(&e));
        match checked {
            Ok(()) => cron.push(entry.trim().to_string()),
            Err(msg) => v.push(format!("spec.schedule.cron[{i}]"), msg),
        }
    }
    cron
}

/// `spec.schedule.excludeCalendars` names each calendar once.
fn exclude_calendars(s: &ScheduleSpec, v: &mut Collector) {
    let mut seen = std::collections::BTreeSet::new();
    for (i, name) in s.exclude_calendars.iter().enumerate() {
        if !seen.insert(name) {
            v.push(
                format!("spec.schedule.excludeCalendars[{i}]"),
                format!("{name:?} is listed twice"),
            );
        }
    }
}

/// `spec.suspendAfterFailures` (at least 1, not with `pauseOnFailure`) and the
/// `spec.resumeAfter` that needs it.
fn failure_streak(spec: &DurableJobSpec, v: &mut Collector) -> (Option<u32>, Option<Duration>) {
    let suspend_after_failures = match spec.suspend_after_failures {
        Some(n) if n < 1 => {
            v.push(
                "spec.suspendAfterFailures".into(),
                "must be at least 1 when set".into(),
            );
            None
        }
        Some(_) if spec.pause_on_failure => {
            v.push(
                "spec.suspendAfterFailures".into(),
                "set either spec.pauseOnFailure (one failed run) or spec.suspendAfterFailures (N in a row), not both".into(),
            );
            None
        }
        n => n.map(|n| n as u32),
    };
    let resume_after = spec
        .resume_after
        .as_deref()
        .and_then(|r| v.positive_duration("spec.resumeAfter", r));
    if resume_after.is_some() && suspend_after_failures.is_none() && spec.suspend_after_failures.is_none() {
        v.push(
            "spec.resumeAfter".into(),
            "resumes a pause made by spec.suspendAfterFailures: set that too, or remove resumeAfter".into(),
        );
    }
    (suspend_after_failures, resume_after)
}

/// `spec.schedule.intervals`: each at least a second, its offset shorter than it.
fn intervals(s: &ScheduleSpec, v: &mut Collector) -> Vec<ValidInterval> {
    let mut intervals = Vec::new();
    for (i, iv) in s.intervals.iter().enumerate() {
        let every = v.duration(&format!("spec.schedule.intervals[{i}].every"), &iv.every);
        let offset = iv
            .offset
            .as_deref()
            .and_then(|o| v.duration(&format!("spec.schedule.intervals[{i}].offset"), o));
        let Some(every) = every else {
            continue;
        };
        if every < Duration::from_secs(1) {
            v.push(
                format!("spec.schedule.intervals[{i}].every"),
                "must be at least 1s".into(),
            );
        }
        if let Some(offset) = offset
            && offset >= every
        {
            v.push(
                format!("spec.schedule.intervals[{i}].offset"),
                format!(
                    "{:?} must be shorter than every ({:?})",
                    iv.offset.as_deref().unwrap_or(""),
                    iv.every
                ),
            );
        }
        intervals.push(ValidInterval { every, offset });
    }
    intervals
}

/// That the schedule has an entry at all, its time zone, jitter, and start before end.
fn calendar_bounds(
    s: &ScheduleSpec,
    v: &mut Collector,
) -> (Option<Duration>, Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    if s.cron.is_empty() && s.intervals.is_empty() {
        v.push(
            "spec.schedule".into(),
            "needs at least one entry in cron or intervals".into(),
        );
    }
    if chrono_tz::Tz::from_str(&s.time_zone).is_err() {
        v.push(
            "spec.schedule.timeZone".into(),
            format!(
                "unknown time zone {:?}; use an IANA name such as UTC, Europe/Berlin or America/New_York",
                s.time_zone
            ),
        );
    }
    let jitter = s
        .jitter
        .as_deref()
        .and_then(|j| v.duration("spec.schedule.jitter", j));
    let start_at = s
        .start_at
        .as_deref()
        .and_then(|t| v.timestamp("spec.schedule.startAt", t));
    let end_at = s
        .end_at
        .as_deref()
        .and_then(|t| v.timestamp("spec.schedule.endAt", t));
    if let (Some(a), Some(b)) = (start_at, end_at)
        && a >= b
    {
        v.push(
            "spec.schedule.endAt".into(),
            "must be after spec.schedule.startAt".into(),
        );
    }
    (jitter, start_at, end_at)
}

/// The catch-up window (Temporal's minimum is 10s), the run limit and the history limits.
fn limits(spec: &DurableJobSpec, v: &mut Collector) -> Option<Duration> {
    let catchup_window = v.duration("spec.catchupWindow", &spec.catchup_window);
    if let Some(c) = catchup_window
        && c < MIN_CATCHUP_WINDOW
    {
        v.push(
            "spec.catchupWindow".into(),
            format!("{:?} is below Temporal's minimum of 10s", spec.catchup_window),
        );
    }
    if let Some(limit) = spec.run_limit
        && limit < 1
    {
        v.push("spec.runLimit".into(), "must be at least 1 when set".into());
    }
    if spec.successful_runs_history_limit < 0 {
        v.push(
            "spec.successfulRunsHistoryLimit".into(),
            "must not be negative".into(),
        );
    }
    if spec.failed_runs_history_limit < 0 {
        v.push(
            "spec.failedRunsHistoryLimit".into(),
            "must not be negative".into(),
        );
    }
    catchup_window
}

/// The exclusions of `spec.schedule.exclude` or of a DurableJobCalendar's spec (`path`
/// names where they are written), as Temporal's calendars; every bad entry is recorded.
pub fn exclusions(e: &Exclusions, path: &str, errors: &mut Vec<FieldError>) -> Vec<Match> {
    let mut out = Vec::new();
    for (i, entry) in e.cron.iter().enumerate() {
        let field = format!("{path}.cron[{i}]");
        if entry.contains('H') {
            errors.push(FieldError {
                field,
                message: format!("{entry:?} uses H; exclusions are fixed times, write the minutes and hours"),
            });
            continue;
        }
        match cron::ranges::cron(entry, field.clone()) {
            Ok(m) => out.push(m),
            Err(message) => errors.push(FieldError { field, message }),
        }
    }
    let mut days = Vec::new();
    for (i, date) in e.dates.iter().enumerate() {
        match chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d") {
            Ok(d) => days.push(d),
            Err(_) => errors.push(FieldError {
                field: format!("{path}.dates[{i}]"),
                message: format!("{date:?} is not a date; write YYYY-MM-DD, e.g. 2026-12-24"),
            }),
        }
    }
    out.extend(cron::ranges::dates(&days, &format!("{path}.dates")));
    out
}

fn validate_workflow(spec: &DurableJobSpec, v: &mut Collector) -> ValidWorkflow {
    let Some(w) = &spec.workflow else {
        return ValidWorkflow::default();
    };
    let retry = w
        .retry
        .as_ref()
        .map(|r| validate_retry("spec.workflow.retry", r, v));
    if let Some(t) = &w.type_
        && t.trim().is_empty()
    {
        v.push("spec.workflow.type".into(), "must not be empty when set".into());
    }
    if spec.job_template.is_some() || spec.steps.is_some() {
        if let Some(t) = &w.type_
            && t != BUILTIN_WORKFLOW_TYPE
        {
            v.push(
                "spec.workflow.type".into(),
                format!(
                    "{t:?} cannot run a jobTemplate: leave it unset (the built-in runner) or use spec.worker"
                ),
            );
        }
        if !w.args.is_empty() {
            v.push(
                "spec.workflow.args".into(),
                "only spec.worker workflows take args; the built-in runner's input is the jobTemplate".into(),
            );
        }
    }
    ValidWorkflow {
        auto_upgrade: auto_upgrade(spec, w, v),
        type_: w.type_.clone(),
        task_queue: w.task_queue.clone(),
        args: w.args.clone(),
        execution_timeout: w
            .execution_timeout
            .as_deref()
            .and_then(|d| v.positive_duration("spec.workflow.executionTimeout", d)),
        run_timeout: w
            .run_timeout
            .as_deref()
            .and_then(|d| v.positive_duration("spec.workflow.runTimeout", d)),
        task_timeout: w
            .task_timeout
            .as_deref()
            .and_then(|d| v.positive_duration("spec.workflow.taskTimeout", d)),
        retry,
        memo: w.memo.clone(),
        search_attributes: w.search_attributes.clone(),
    }
}

/// A retry policy (spec.workflow.retry, or a step's) with Temporal's defaults filled in.
fn validate_retry(path: &str, r: &crate::api::RetrySpec, v: &mut Collector) -> ValidRetry {
    let initial_interval = r
        .initial_interval
        .as_deref()
        .and_then(|d| v.duration(&format!("{path}.initialInterval"), d))
        .unwrap_or(Duration::from_secs(1));
    let maximum_interval = r
        .maximum_interval
        .as_deref()
        .and_then(|d| v.duration(&format!("{path}.maximumInterval"), d))
        .unwrap_or(initial_interval * 100);
    if maximum_interval < initial_interval {
        v.push(
            format!("{path}.maximumInterval"),
            "must not be shorter than initialInterval".into(),
        );
    }
    let backoff_coefficient = r.backoff_coefficient.unwrap_or(2.0);
    if !(backoff_coefficient >= 1.0 && backoff_coefficient.is_finite()) {
        v.push(format!("{path}.backoffCoefficient"), "must be at least 1".into());
    }
    let maximum_attempts = r.maximum_attempts.unwrap_or(0);
    if maximum_attempts < 0 {
        v.push(
            format!("{path}.maximumAttempts"),
            "must not be negative (0 means unlimited)".into(),
        );
    }
    ValidRetry {
        initial_interval,
        backoff_coefficient,
        maximum_interval,
        maximum_attempts,
        non_retryable_error_types: r.non_retryable_error_types.clone(),
    }
}

/// `spec.steps`: names, templates, retries and timeouts; the parts not built yet refused by name.
fn validate_steps(
    spec: &DurableJobSpec,
    steps: &[crate::api::StepSpec],
    v: &mut Collector,
) -> Vec<ValidStep> {
    let default_retry = spec.workflow.as_ref().and_then(|w| w.retry.as_ref());
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let path = format!("spec.steps[{i}]");
        let name = step.name.as_str();
        if let Some(problem) = step_name_problem(name) {
            v.push(format!("{path}.name"), problem);
        }
        if let Some(first) = seen.insert(name, i) {
            v.push(
                format!("{path}.name"),
                format!("{name:?} is also the name of spec.steps[{first}]; step names must be unique"),
            );
        }
        validate_job_template(&format!("{path}.jobTemplate"), &step.job_template, v);
        let retry = match &step.retry {
            Some(r) => Some(validate_retry(&format!("{path}.retry"), r, v)),
            None => default_retry.map(|r| validate_retry("spec.workflow.retry", r, v)),
        };
        let timeout = step
            .timeout
            .as_deref()
            .and_then(|d| v.positive_duration(&format!("{path}.timeout"), d));
        let ancestors = ancestors(steps, i);
        let for_each = step
            .for_each
            .as_ref()
            .and_then(|f| validate_for_each(&format!("{path}.forEach"), f, &ancestors, v));
        let continue_on_item_failure = step.continue_on_item_failure.unwrap_or(false);
        if continue_on_item_failure && step.for_each.is_none() {
            v.push(
                format!("{path}.continueOnItemFailure"),
                "applies to a step with forEach: remove it, or add forEach".into(),
            );
        }
        out.push(ValidStep {
            name: name.to_string(),
            job_template: step.job_template.clone(),
            retry,
            timeout,
            depends_on: step.depends_on.clone().unwrap_or_default(),
            for_each,
            continue_on_item_failure,
        });
    }
    validate_depends_on(steps, v);
    out
}

/// Whether the steps form a DAG (some step names dependsOn): otherwise they run in order.
fn is_dag(steps: &[crate::api::StepSpec]) -> bool {
    steps
        .iter()
        .any(|s| s.depends_on.as_ref().is_some_and(|d| !d.is_empty()))
}

/// The names of the steps step `i` waits for, directly or not: those before it when the steps
/// run in order, its dependsOn and theirs in a DAG.
fn ancestors(steps: &[crate::api::StepSpec], i: usize) -> Vec<String> {
    if !is_dag(steps) {
        return steps[..i].iter().map(|s| s.name.clone()).collect();
    }
    let mut found: Vec<String> = Vec::new();
    let mut todo: Vec<String> = steps[i].depends_on.clone().unwrap_or_default();
    while let Some(name) = todo.pop() {
        if found.contains(&name) || name == steps[i].name {
            continue;
        }
        if let Some(s) = steps.iter().find(|s| s.name == name) {
            todo.extend(s.depends_on.clone().unwrap_or_default());
        }
        found.push(name);
    }
    found
}

/// dependsOn names steps of this DurableJob, not the step itself, once each, and no cycle.
fn validate_depends_on(steps: &[crate::api::StepSpec], v: &mut Collector) {
    let index: BTreeMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut broken = false;
    for (i, s) in steps.iter().enumerate() {
        let mut seen: Vec<&str> = Vec::new();
        for (j, d) in s.depends_on.iter().flatten().enumerate() {
            let field = format!("spec.steps[{i}].dependsOn[{j}]");
            if d == &s.name {
                v.push(field, format!("step {d:?} cannot wait for itself"));
                broken = true;
            } else if !index.contains_key(d.as_str()) {
                let known: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
                v.push(
                    field,
                    format!(
                        "{d:?} is not a step of this DurableJob (steps: {})",
                        known.join(", ")
                    ),
                );
                broken = true;
            } else if seen.contains(&d.as_str()) {
                v.push(field, format!("{d:?} is listed twice"));
            }
            seen.push(d);
        }
    }
    if broken {
        return;
    }
    if let Some(cycle) = find_cycle(steps, &index) {
        let at = index[cycle[0].as_str()];
        v.push(
            format!("spec.steps[{at}].dependsOn"),
            format!(
                "the steps wait for each other in a cycle: {}; remove one dependsOn entry of it",
                cycle.join(" -> ")
            ),
        );
    }
}

/// A cycle of dependsOn, as the names around it (the first again at the end).
fn find_cycle(steps: &[crate::api::StepSpec], index: &BTreeMap<&str, usize>) -> Option<Vec<String>> {
    // 0 unvisited, 1 on the path, 2 done
    fn visit(
        i: usize,
        steps: &[crate::api::StepSpec],
        index: &BTreeMap<&str, usize>,
        mark: &mut Vec<u8>,
        path: &mut Vec<usize>,
    ) -> Option<Vec<String>> {
        mark[i] = 1;
        path.push(i);
        for d in steps[i].depends_on.iter().flatten() {
            let j = index[d.as_str()];
            if mark[j] == 1 {
                let from = path.iter().position(|p| *p == j).unwrap_or(0);
                let mut names: Vec<String> = path[from..].iter().map(|p| steps[*p].name.clone()).collect();
                names.push(steps[j].name.clone());
                return Some(names);
            }
            if mark[j] == 0
                && let Some(c) = visit(j, steps, index, mark, path)
            {
                return Some(c);
            }
        }
        path.pop();
        mark[i] = 2;
        None
    }
    let mut mark = vec![0u8; steps.len()];
    (0..steps.len()).find_map(|i| {
        if mark[i] != 0 {
            return None;
        }
        visit(i, steps, index, &mut mark, &mut Vec::new())
    })
}

/// A fan-out: literal items or an earlier step's result, and its parallelism.
fn validate_for_each(
    path: &str,
    f: &crate::api::ForEachSpec,
    earlier: &[String],
    v: &mut Collector,
) -> Option<ValidForEach> {
    use crate::run_contract::MAX_ITEMS;
    let parallelism = f.parallelism.unwrap_or(DEFAULT_PARALLELISM as i32);
    if !(1..=100).contains(&parallelism) {
        v.push(
            format!("{path}.parallelism"),
            format!("{parallelism} is out of range: 1 to 100 items at a time"),
        );
    }
    let items = match (&f.items, &f.from_step) {
        (Some(items), None) if items.len() > MAX_ITEMS => {
            v.push(
                format!("{path}.items"),
                format!(
                    "{} items; a step takes at most {MAX_ITEMS}: split the list over several steps or DurableJobs",
                    items.len()
                ),
            );
            return None;
        }
        (Some(items), None) if items.is_empty() => {
            v.push(format!("{path}.items"), "is empty: give at least one item".into());
            return None;
        }
        (Some(items), None) => ValidItems::Literal(items.clone()),
        (None, Some(from)) => {
            if !earlier.iter().any(|s| s == from) {
                v.push(
                    format!("{path}.fromStep"),
                    format!("{from:?} is not the name of a step before this one (in a DAG: one it waits for): the items come from an earlier step's result"),
                );
                return None;
            }
            ValidItems::FromStep(from.clone())
        }
        _ => {
            v.push(
                path.to_string(),
                "set exactly one of items (the list) or fromStep (an earlier step whose result is the list)"
                    .into(),
            );
            return None;
        }
    };
    Some(ValidForEach {
        items,
        parallelism: parallelism.clamp(1, 100) as u32,
    })
}

/// Why `name` cannot name a step (it becomes part of Job names and label values).
fn step_name_problem(name: &str) -> Option<String> {
    let fine = name.len() <= MAX_STEP_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    (!fine).then(|| {
        format!(
            "{name:?} is not a step name: use lowercase letters, digits and '-', starting with a letter and not ending with '-', at most {MAX_STEP_NAME} characters (e.g. extract)"
        )
    })
}

fn validate_executor(spec: &DurableJobSpec, v: &mut Collector) -> Option<Executor> {
    match (&spec.job_template, &spec.steps, &spec.worker) {
        (Some(template), None, None) => {
            validate_job_template("spec.jobTemplate", template, v);
            Some(Executor::BuiltinRunner {
                job_template: template.clone(),
            })
        }
        (None, Some(steps), None) => Some(Executor::Steps(validate_steps(spec, steps, v))),
        (None, None, Some(worker)) => {
            if spec.workflow.as_ref().and_then(|w| w.type_.as_ref()).is_none() {
                v.push(
                    "spec.workflow.type".into(),
                    "is required with spec.worker: the workflow type your worker registers".into(),
                );
            }
            let env = worker
                .env
                .iter()
                .enumerate()
                .filter_map(|(i, e)| v.typed(&format!("spec.worker.env[{i}]"), e))
                .collect();
            let resources = worker
                .resources
                .as_ref()
                .and_then(|r| v.typed("spec.worker.resources", r));
            let template: Option<PodTemplateSpec> = worker
                .template
                .as_ref()
                .and_then(|t| v.typed("spec.worker.template", t));
            if worker.image.trim().is_empty() {
                v.push("spec.worker.image".into(), "must name a container image".into());
            }
            Some(Executor::UserWorker(Box::new(ValidWorker {
                image: worker.image.clone(),
                replicas: worker.replicas.unwrap_or(1),
                env,
                resources,
                service_account_name: worker.service_account_name.clone(),
                template,
                build_id: stamped_build_id(worker, v),
                rollout: worker.rollout.as_ref().map(|r| r.strategy).unwrap_or_default(),
                steps: ramp_steps(worker, v),
                rollback_after: rollback_after(worker, v),
                gate: gate(worker, v),
                sunset: sunset(worker, v),
            })))
        }
        _ => {
            v.push(
                "spec".into(),
                "set exactly one of jobTemplate (one Job per run), steps (a Job per step) or worker (your own Temporal worker)"
                    .into(),
            );
            None
        }
    }
}

/// Whether runs start with the auto-upgrade override; a versioning behavior is for the runs
/// of a versioned worker only.
fn auto_upgrade(spec: &DurableJobSpec, w: &crate::api::WorkflowSpec, v: &mut Collector) -> bool {
    let versioned = spec.worker.as_ref().is_some_and(|w| {
        w.rollout
            .as_ref()
            .is_none_or(|r| r.strategy != crate::api::RolloutStrategy::None)
    });
    if w.versioning_behavior.is_some() && !versioned {
        v.push(
            "spec.workflow.versioningBehavior".into(),
            "applies to the runs of a versioned spec.worker (rollout AllAtOnce) only: remove it, or use a versioned worker".into(),
        );
    }
    w.versioning_behavior == Some(crate::api::VersioningBehavior::AutoUpgrade)
}

/// A build id the team stamps must be a label value; with `rollout: None` there are no
/// versions to name.
fn stamped_build_id(worker: &crate::api::WorkerSpec, v: &mut Collector) -> Option<String> {
    let id = worker.build_id.as_ref()?;
    if let Err(why) = super::worker_version::check_build_id(id) {
        v.push("spec.worker.buildId".into(), why);
    }
    let unversioned = worker
        .rollout
        .as_ref()
        .is_some_and(|r| r.strategy == crate::api::RolloutStrategy::None);
    if unversioned {
        v.push(
            "spec.worker.buildId".into(),
            "is only used by a versioned rollout; remove it, or set spec.worker.rollout.strategy to AllAtOnce".into(),
        );
    }
    Some(id.clone())
}

/// The gate's workflow type: not empty, not the built-in runner's, and not with Manual (a
/// person promotes) or None (no versions).
fn gate(worker: &crate::api::WorkerSpec, v: &mut Collector) -> Option<String> {
    use crate::api::RolloutStrategy;
    let r = worker.rollout.as_ref()?;
    let g = r.gate.as_ref()?;
    let field = "spec.worker.rollout.gate";
    if matches!(r.strategy, RolloutStrategy::Manual | RolloutStrategy::None) {
        v.push(
            field.into(),
            format!(
                "does not apply to {:?}: remove it or use AllAtOnce or Progressive",
                r.strategy
            ),
        );
        return None;
    }
    if g.workflow_type.trim().is_empty() || g.workflow_type == BUILTIN_WORKFLOW_TYPE {
        v.push(
            format!("{field}.workflowType"),
            "must name a workflow type your worker registers (not the built-in runner's)".into(),
        );
        return None;
    }
    Some(g.workflow_type.clone())
}

/// rollbackOnFailure's threshold; routing in Manual is a person's, so it is refused there.
fn rollback_after(worker: &crate::api::WorkerSpec, v: &mut Collector) -> Option<u32> {
    use crate::api::RolloutStrategy;
    let r = worker.rollout.as_ref()?;
    let on = r.rollback_on_failure.as_ref()?;
    if matches!(r.strategy, RolloutStrategy::Manual | RolloutStrategy::None) {
        v.push(
            "spec.worker.rollout.rollbackOnFailure".into(),
            format!(
                "does not apply to {:?}: with Manual a person routes, with None there are no versions; remove it or use AllAtOnce or Progressive",
                r.strategy
            ),
        );
        return None;
    }
    let n = on.failed_runs.unwrap_or(1);
    if !(1..=100).contains(&n) {
        v.push(
            "spec.worker.rollout.rollbackOnFailure.failedRuns".into(),
            format!("{n} must be 1-100"),
        );
        return None;
    }
    Some(n as u32)
}

/// Progressive's steps: at least one, rising percentages of 1-99; steps belong to Progressive only.
fn ramp_steps(worker: &crate::api::WorkerSpec, v: &mut Collector) -> Vec<super::worker_version::RampStep> {
    use crate::api::RolloutStrategy;
    let Some(r) = &worker.rollout else { return vec![] };
    let field = "spec.worker.rollout.steps";
    match (r.strategy, r.steps.is_empty()) {
        (RolloutStrategy::Progressive, true) => {
            v.push(
                field.into(),
                "Progressive needs at least one step, e.g. [{rampPercentage: 10, pauseDuration: 5m}]".into(),
            );
            return vec![];
        }
        (RolloutStrategy::Progressive, false) => {}
        (_, true) => return vec![],
        (other, false) => {
            v.push(
                field.into(),
                format!(
                    "only Progressive takes steps, not {other:?}: remove them or set strategy: Progressive"
                ),
            );
            return vec![];
        }
    }
    let mut out: Vec<super::worker_version::RampStep> = vec![];
    for (i, s) in r.steps.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let pause = v.duration(&format!("{at}.pauseDuration"), &s.pause_duration);
        let rising = out
            .last()
            .is_none_or(|l| i32::from(l.percentage) < s.ramp_percentage);
        if !(1..=99).contains(&s.ramp_percentage) || !rising {
            v.push(
                format!("{at}.rampPercentage"),
                format!(
                    "{} must be 1-99 and higher than the step before (the last step's pause ends in 100%: current)",
                    s.ramp_percentage
                ),
            );
            continue;
        }
        if let Some(pause) = pause {
            out.push(super::worker_version::RampStep {
                percentage: s.ramp_percentage as u8,
                pause,
            });
        }
    }
    out
}

/// The sunset delays: the defaults, or the spec's; deletion never comes before the scale-down.
fn sunset(worker: &crate::api::WorkerSpec, v: &mut Collector) -> super::worker_version::Sunset {
    let mut out = super::worker_version::Sunset::default();
    let Some(s) = &worker.sunset else { return out };
    if let Some(d) = s.scaledown_delay.as_deref() {
        out.scaledown_delay = v
            .duration("spec.worker.sunset.scaledownDelay", d)
            .unwrap_or(out.scaledown_delay);
    }
    if let Some(d) = s.delete_delay.as_deref() {
        out.delete_delay = v
            .duration("spec.worker.sunset.deleteDelay", d)
            .unwrap_or(out.delete_delay);
    }
    if out.delete_delay < out.scaledown_delay {
        v.push(
            "spec.worker.sunset.deleteDelay".into(),
            format!(
                "{:?} is shorter than scaledownDelay {:?}; a version is deleted only after it was scaled down",
                out.delete_delay, out.scaledown_delay
            ),
        );
    }
    out
}

/// A jobTemplate must be a JobTemplateSpec a Kubernetes API server would accept for a Job.
fn validate_job_template(path: &str, template: &Value, v: &mut Collector) {
    let Some(parsed) = v.typed::<JobTemplateSpec>(path, template) else {
        return;
    };
    let Some(job_spec) = parsed.spec else {
        v.push(
            format!("{path}.spec"),
            "is required: the Job's spec with its pod template".into(),
        );
        return;
    };
    let Some(pod) = job_spec.template.spec else {
        v.push(
            format!("{path}.spec.template.spec"),
            "is required: the pod spec with at least one container".into(),
        );
        return;
    };
    if pod.containers.is_empty() {
        v.push(
            format!("{path}.spec.template.spec.containers"),
            "needs at least one container".into(),
        );
    }
    for (i, c) in pod.containers.iter().enumerate() {
        if c.name.is_empty() {
            v.push(
                format!("{path}.spec.template.spec.containers[{i}].name"),
                "is required".into(),
            );
        }
        if c.image.as_deref().unwrap_or("").is_empty() {
            v.push(
                format!("{path}.spec.template.spec.containers[{i}].image"),
                "is required".into(),
            );
        }
    }
    match pod.restart_policy.as_deref() {
        Some("Never") | Some("OnFailure") => {}
        other => v.push(
            format!("{path}.spec.template.spec.restartPolicy"),
            format!(
                "must be Never or OnFailure for a Job (got {}), as in a CronJob's jobTemplate",
                other.map_or("nothing, which means Always".to_string(), |p| format!("{p:?}"))
            ),
        ),
    }
}

#[derive(Default)]
struct Collector {
    errors: Vec<FieldError>,
}

impl Collector {
    fn push(&mut self, field: String, message: String) {
        self.errors.push(FieldError { field, message });
    }

    fn duration(&mut self, field: &str, text: &str) -> Option<Duration> {
        match kube::core::Duration::from_str(text) {
            Ok(d) if d.is_negative() => {
                self.push(field.into(), format!("{text:?} is negative"));
                None
            }
            Ok(d) => Some(d.into()),
            Err(e) => {
                self.push(
                    field.into(),
                    format!("{text:?} is not a duration ({e}); write e.g. 90s, 15m or 1h30m"),
                );
                None
            }
        }
    }

    fn positive_duration(&mut self, field: &str, text: &str) -> Option<Duration> {
        let d = self.duration(field, text)?;
        if d.is_zero() {
            self.push(
                field.into(),
                "must be longer than 0 (leave it out for no limit)".into(),
            );
            return None;
        }
        Some(d)
    }

    fn timestamp(&mut self, field: &str, text: &str) -> Option<DateTime<Utc>> {
        match DateTime::parse_from_rfc3339(text) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                self.push(
                    field.into(),
                    format!("{text:?} is not an RFC 3339 time ({e}); write e.g. 2026-01-31T09:00:00Z"),
                );
                None
            }
        }
    }

    /// Deserializes an embedded Kubernetes object, naming the exact field that is wrong.
    fn typed<T: serde::de::DeserializeOwned>(&mut self, field: &str, value: &Value) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(t) => Some(t),
            Err(e) => {
                let path = e.path().to_string();
                let at = if path == "." || path.is_empty() {
                    field.to_string()
                } else {
                    format!("{field}.{path}")
                };
                self.push(at, e.into_inner().to_string());
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DurableJob;
    use serde_json::json;
    use std::time::Duration;

    fn errors(dj: &DurableJob) -> Vec<(String, String)> {
        validate(&dj.spec)
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect()
    }

    fn has(errs: &[(String, String)], field: &str, text: &str) -> bool {
        errs.iter().any(|(f, m)| f == field && m.contains(text))
    }

    #[test]
    fn a_full_spec_is_parsed_into_typed_values() {
        let v = validate(&DurableJob::test_full("x").spec).unwrap();
        assert_eq!(v.cron, vec!["30 2 * * *", "@hourly"]);
        assert_eq!(
            v.intervals,
            vec![ValidInterval {
                every: Duration::from_secs(5400),
                offset: Some(Duration::from_secs(300))
            }]
        );
        assert_eq!(v.time_zone, "Europe/Berlin");
        assert_eq!(v.jitter, Some(Duration::from_secs(30)));
        assert_eq!(v.start_at.unwrap().to_rfc3339(), "2026-01-01T00:00:00+00:00");
        assert_eq!(
            v.end_at.unwrap().to_rfc3339(),
            "2026-12-31T23:00:00+00:00",
            "offsets are normalized to UTC"
        );
        assert_eq!(v.overlap_policy, OverlapPolicy::BufferAll);
        assert_eq!(v.catchup_window, Duration::from_secs(5400));
        assert!(v.pause_on_failure && v.suspend);
        assert_eq!(v.run_limit, Some(10));
        assert_eq!(v.workflow.task_queue.as_deref(), Some("custom-runner"));
        assert_eq!(v.workflow.execution_timeout, Some(Duration::from_secs(7200)));
        assert_eq!(v.workflow.run_timeout, Some(Duration::from_secs(3600)));
        assert_eq!(v.workflow.task_timeout, Some(Duration::from_secs(20)));
        assert_eq!(
            v.workflow.retry,
            Some(ValidRetry {
                initial_interval: Duration::from_secs(10),
                backoff_coefficient: 3.0,
                maximum_interval: Duration::from_secs(300),
                maximum_attempts: 4,
                non_retryable_error_types: vec!["InvalidJobTemplate".into()],
            })
        );
        assert_eq!(v.workflow.memo["team"], json!("billing"));
        assert_eq!(
            v.workflow.search_attributes["CustomKeywordField"],
            json!("nightly")
        );
        assert!(matches!(v.executor, Executor::BuiltinRunner { .. }));
        assert_eq!(
            (v.successful_runs_history_limit, v.failed_runs_history_limit),
            (5, 2)
        );
        assert_eq!(v.temporal_namespace.as_deref(), Some("jobs"));
        assert_eq!(v.deletion_policy, DeletionPolicy::Orphan);
    }

    #[test]
    fn retry_fields_left_out_get_temporals_defaults() {
        let mut dj = DurableJob::test("x");
        dj.spec.workflow = Some(crate::api::WorkflowSpec {
            retry: Some(crate::api::RetrySpec {
                maximum_attempts: Some(3),
                ..Default::default()
            }),
            ..Default::default()
        });
        let r = validate(&dj.spec).unwrap().workflow.retry.unwrap();
        assert_eq!(r.initial_interval, Duration::from_secs(1));
        assert_eq!(r.backoff_coefficient, 2.0);
        assert_eq!(r.maximum_interval, Duration::from_secs(100));
        assert_eq!(r.maximum_attempts, 3);
    }

    #[test]
    fn an_unknown_time_zone_names_the_field_and_suggests_a_fix() {
        let errs = errors(&DurableJob::test("x").with_time_zone("Mars/Olympus"));
        assert!(
            has(
                &errs,
                "spec.schedule.timeZone",
                "unknown time zone \"Mars/Olympus\""
            ),
            "{errs:?}"
        );
        assert!(has(&errs, "spec.schedule.timeZone", "Europe/Berlin"));
    }

    #[test]
    fn bad_cron_durations_and_timestamps_are_all_reported_together() {
        let mut dj = DurableJob::test("x").with_cron(&["0 0 9 * * *", "@every 5m"]);
        dj.spec.schedule.jitter = Some("5 minutes".into());
        dj.spec.schedule.start_at = Some("yesterday".into());
        dj.spec.catchup_window = "5s".into();
        dj.spec.schedule.intervals = vec![crate::api::IntervalSpec {
            every: "10m".into(),
            offset: Some("10m".into()),
        }];
        let errs = errors(&dj);
        assert!(
            has(
                &errs,
                "spec.schedule.cron[0]",
                "seconds and years are not supported"
            ),
            "{errs:?}"
        );
        assert!(has(&errs, "spec.schedule.cron[1]", "intervals"));
        assert!(has(&errs, "spec.schedule.jitter", "is not a duration"));
        assert!(has(&errs, "spec.schedule.startAt", "RFC 3339"));
        assert!(has(&errs, "spec.catchupWindow", "minimum of 10s"));
        assert!(has(
            &errs,
            "spec.schedule.intervals[0].offset",
            "shorter than every"
        ));
        assert_eq!(errs.len(), 6);
    }

    #[test]
    fn start_must_come_before_end() {
        let mut dj = DurableJob::test("x");
        dj.spec.schedule.start_at = Some("2026-02-01T00:00:00Z".into());
        dj.spec.schedule.end_at = Some("2026-01-01T00:00:00Z".into());
        assert!(has(
            &errors(&dj),
            "spec.schedule.endAt",
            "after spec.schedule.startAt"
        ));
    }

    #[test]
    fn an_empty_schedule_is_refused() {
        let dj = DurableJob::test("x").with_cron(&[]);
        assert!(has(&errors(&dj), "spec.schedule", "at least one entry"));
    }

    #[test]
    fn exactly_one_executor_is_required() {
        let mut both = DurableJob::test("x");
        both.spec.worker = Some(crate::api::WorkerSpec {
            image: "w".into(),
            ..Default::default()
        });
        assert!(has(&errors(&both), "spec", "exactly one of jobTemplate"));
        let mut neither = DurableJob::test("x");
        neither.spec.job_template = None;
        assert!(has(&errors(&neither), "spec", "exactly one of jobTemplate"));
    }

    #[test]
    fn a_worker_needs_a_workflow_type_and_typed_overrides() {
        let mut dj = DurableJob::test("x").with_worker("Sync");
        dj.spec.workflow.as_mut().unwrap().type_ = None;
        dj.spec.worker.as_mut().unwrap().env = vec![json!({"name": 5})];
        let errs = errors(&dj);
        assert!(
            has(&errs, "spec.workflow.type", "required with spec.worker"),
            "{errs:?}"
        );
        assert!(
            errs.iter().any(|(f, _)| f.starts_with("spec.worker.env[0]")),
            "{errs:?}"
        );
        let ok = validate(&DurableJob::test("x").with_worker("Sync").spec).unwrap();
        assert!(
            matches!(ok.executor, Executor::UserWorker(w) if w.replicas == 1 && w.image == "example/worker:1")
        );
    }

    #[test]
    fn a_versioned_worker_takes_a_stamped_build_id_and_sunset_delays_that_make_sense() {
        use crate::api::{RolloutSpec, RolloutStrategy, SunsetSpec};
        let ok = validate(&DurableJob::test("x").with_worker("Sync").spec).unwrap();
        let Executor::UserWorker(w) = ok.executor else {
            panic!("a worker")
        };
        assert_eq!(
            (w.rollout, w.build_id.clone()),
            (RolloutStrategy::AllAtOnce, None)
        );
        assert_eq!(w.sunset, crate::desired::worker_version::Sunset::default());

        let mut dj = DurableJob::test("x").with_worker("Sync");
        let worker = dj.spec.worker.as_mut().unwrap();
        worker.build_id = Some("-release 1".into());
        worker.sunset = Some(SunsetSpec {
            scaledown_delay: Some("2h".into()),
            delete_delay: Some("30m".into()),
        });
        let errs = errors(&dj);
        assert!(
            has(&errs, "spec.worker.buildId", "not a usable build id"),
            "{errs:?}"
        );
        assert!(
            has(
                &errs,
                "spec.worker.sunset.deleteDelay",
                "shorter than scaledownDelay"
            ),
            "{errs:?}"
        );

        let worker = dj.spec.worker.as_mut().unwrap();
        worker.build_id = Some("release-1".into());
        worker.rollout = Some(RolloutSpec {
            strategy: RolloutStrategy::None,
            steps: vec![],
            rollback_on_failure: None,
            gate: None,
        });
        worker.sunset = Some(SunsetSpec {
            scaledown_delay: Some("soon".into()),
            delete_delay: None,
        });
        let errs = errors(&dj);
        assert!(
            has(&errs, "spec.worker.buildId", "only used by a versioned rollout"),
            "{errs:?}"
        );
        assert!(
            has(&errs, "spec.worker.sunset.scaledownDelay", "not a duration"),
            "{errs:?}"
        );

        let worker = dj.spec.worker.as_mut().unwrap();
        worker.rollout = None;
        worker.sunset = Some(SunsetSpec {
            scaledown_delay: Some("10m".into()),
            delete_delay: Some("2h".into()),
        });
        let ok = validate(&dj.spec).unwrap();
        let Executor::UserWorker(w) = ok.executor else {
            panic!("a worker")
        };
        assert_eq!(w.build_id.as_deref(), Some("release-1"));
        assert_eq!(
            (w.sunset.scaledown_delay, w.sunset.delete_delay),
            (Duration::from_secs(600), Duration::from_secs(7200))
        );
    }

    #[test]
    fn progressive_takes_rising_steps_and_only_progressive_takes_steps() {
        use crate::api::{RampStepSpec, RolloutSpec, RolloutStrategy};
        let step = |pct, pause: &str| RampStepSpec {
            ramp_percentage: pct,
            pause_duration: pause.into(),
        };
        let with = |strategy, steps| {
            let mut dj = DurableJob::test("x").with_worker("Sync");
            dj.spec.worker.as_mut().unwrap().rollout = Some(RolloutSpec {
                strategy,
                steps,
                rollback_on_failure: None,
                gate: None,
            });
            dj
        };
        let ok =
            validate(&with(RolloutStrategy::Progressive, vec![step(10, "5m"), step(50, "1h")]).spec).unwrap();
        let Executor::UserWorker(w) = ok.executor else {
            panic!("a worker")
        };
        assert_eq!(w.steps.len(), 2);
        assert_eq!(
            (w.steps[1].percentage, w.steps[1].pause),
            (50, Duration::from_secs(3600))
        );

        let errs = errors(&with(RolloutStrategy::Progressive, vec![]));
        assert!(
            has(&errs, "spec.worker.rollout.steps", "at least one step"),
            "{errs:?}"
        );
        let errs = errors(&with(
            RolloutStrategy::Progressive,
            vec![step(50, "5m"), step(20, "5m"), step(100, "1m"), step(60, "later")],
        ));
        assert!(
            has(
                &errs,
                "spec.worker.rollout.steps[1].rampPercentage",
                "higher than the step before"
            ),
            "{errs:?}"
        );
        assert!(
            has(&errs, "spec.worker.rollout.steps[2].rampPercentage", "1-99"),
            "{errs:?}"
        );
        assert!(
            has(
                &errs,
                "spec.worker.rollout.steps[3].pauseDuration",
                "not a duration"
            ),
            "{errs:?}"
        );
        let errs = errors(&with(RolloutStrategy::Manual, vec![step(10, "5m")]));
        assert!(
            has(&errs, "spec.worker.rollout.steps", "only Progressive takes steps"),
            "{errs:?}"
        );
        // rollbackOnFailure: a threshold, never with Manual
        let mut dj = with(RolloutStrategy::AllAtOnce, vec![]);
        dj.spec
            .worker
            .as_mut()
            .unwrap()
            .rollout
            .as_mut()
            .unwrap()
            .rollback_on_failure = Some(crate::api::RollbackOnFailureSpec { failed_runs: None });
        let Executor::UserWorker(w) = validate(&dj.spec).unwrap().executor else {
            panic!("a worker")
        };
        assert_eq!(w.rollback_after, Some(1));
        let rollout = dj.spec.worker.as_mut().unwrap().rollout.as_mut().unwrap();
        rollout.strategy = RolloutStrategy::Manual;
        rollout.rollback_on_failure = Some(crate::api::RollbackOnFailureSpec { failed_runs: Some(0) });
        let errs = errors(&dj);
        assert!(
            has(
                &errs,
                "spec.worker.rollout.rollbackOnFailure",
                "does not apply to Manual"
            ),
            "{errs:?}"
        );
        let rollout = dj.spec.worker.as_mut().unwrap().rollout.as_mut().unwrap();
        rollout.strategy = RolloutStrategy::AllAtOnce;
        let errs = errors(&dj);
        assert!(
            has(&errs, "spec.worker.rollout.rollbackOnFailure.failedRuns", "1-100"),
            "{errs:?}"
        );
    }

    #[test]
    fn a_versioning_behavior_is_for_the_runs_of_a_versioned_worker() {
        use crate::api::{RolloutSpec, RolloutStrategy, VersioningBehavior};
        let mut dj = DurableJob::test("x").with_worker("Sync");
        dj.spec.workflow.as_mut().unwrap().versioning_behavior = Some(VersioningBehavior::AutoUpgrade);
        assert!(validate(&dj.spec).unwrap().workflow.auto_upgrade);
        dj.spec.workflow.as_mut().unwrap().versioning_behavior = Some(VersioningBehavior::Pinned);
        assert!(!validate(&dj.spec).unwrap().workflow.auto_upgrade);
        dj.spec.worker.as_mut().unwrap().rollout = Some(RolloutSpec {
            strategy: RolloutStrategy::None,
            steps: vec![],
            rollback_on_failure: None,
            gate: None,
        });
        let errs = errors(&dj);
        assert!(
            has(&errs, "spec.workflow.versioningBehavior", "versioned spec.worker"),
            "{errs:?}"
        );
        let mut runner = DurableJob::test("x");
        runner.spec.workflow = Some(crate::api::WorkflowSpec {
            versioning_behavior: Some(VersioningBehavior::AutoUpgrade),
            ..Default::default()
        });
        assert!(has(
            &errors(&runner),
            "spec.workflow.versioningBehavior",
            "versioned spec.worker"
        ));
    }

    #[test]
    fn the_builtin_runner_refuses_other_workflow_types_and_args() {
        let mut dj = DurableJob::test("x");
        dj.spec.workflow = Some(crate::api::WorkflowSpec {
            type_: Some("Other".into()),
            args: vec![json!(1)],
            ..Default::default()
        });
        let errs = errors(&dj);
        assert!(has(&errs, "spec.workflow.type", "cannot run a jobTemplate"));
        assert!(has(
            &errs,
            "spec.workflow.args",
            "only spec.worker workflows take args"
        ));
    }

    #[test]
    fn steps_are_checked_by_name_template_retry_and_what_is_not_built_yet() {
        let step = |name: &str| crate::api::StepSpec {
            name: name.into(),
            job_template: json!({"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}}}}),
            ..Default::default()
        };
        let mut dj = DurableJob::test("x");
        dj.spec.job_template = None;
        dj.spec.workflow = Some(crate::api::WorkflowSpec {
            retry: Some(crate::api::RetrySpec {
                maximum_attempts: Some(3),
                ..Default::default()
            }),
            ..Default::default()
        });
        let own_retry = crate::api::RetrySpec {
            maximum_attempts: Some(5),
            ..Default::default()
        };
        dj.spec.steps = Some(vec![
            step("extract"),
            crate::api::StepSpec {
                retry: Some(own_retry),
                timeout: Some("10m".into()),
                ..step("load")
            },
        ]);
        let valid = validate(&dj.spec).unwrap();
        let Executor::Steps(steps) = &valid.executor else {
            panic!("{:?}", valid.executor)
        };
        let attempts: Vec<i32> = steps
            .iter()
            .map(|s| s.retry.as_ref().unwrap().maximum_attempts)
            .collect();
        assert_eq!(
            attempts,
            vec![3, 5],
            "a step's own retry, else spec.workflow.retry"
        );
        assert_eq!(steps[1].timeout, Some(Duration::from_secs(600)));

        let mut bad = dj.clone();
        let mut broken = step("Load_2");
        broken.job_template["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        bad.spec.steps = Some(vec![
            step("extract"),
            step("extract"),
            broken,
            crate::api::StepSpec {
                depends_on: Some(vec!["extract".into()]),
                for_each: Some(crate::api::ForEachSpec {
                    from_step: Some("later".into()),
                    parallelism: Some(500),
                    ..Default::default()
                }),
                ..step("fan")
            },
            crate::api::StepSpec {
                for_each: Some(crate::api::ForEachSpec {
                    items: Some(vec![json!(1); 1001]),
                    ..Default::default()
                }),
                ..step("many")
            },
            crate::api::StepSpec {
                for_each: Some(crate::api::ForEachSpec {
                    items: Some(vec![json!(1)]),
                    from_step: Some("extract".into()),
                    ..Default::default()
                }),
                ..step("both")
            },
            crate::api::StepSpec {
                continue_on_item_failure: Some(true),
                ..step("later")
            },
        ]);
        let errs = errors(&bad);
        assert!(
            has(&errs, "spec.steps[1].name", "also the name of spec.steps[0]"),
            "{errs:?}"
        );
        assert!(has(&errs, "spec.steps[2].name", "not a step name"), "{errs:?}");
        assert!(has(
            &errs,
            "spec.steps[2].jobTemplate.spec.template.spec.restartPolicy",
            "Never or OnFailure"
        ));
        assert!(has(
            &errs,
            "spec.steps[3].forEach.fromStep",
            "not the name of a step before this one"
        ));
        assert!(
            has(&errs, "spec.steps[3].forEach.parallelism", "1 to 100"),
            "{errs:?}"
        );
        assert!(has(
            &errs,
            "spec.steps[4].forEach.items",
            "1001 items; a step takes at most 1000"
        ));
        assert!(
            has(&errs, "spec.steps[5].forEach", "exactly one of items"),
            "{errs:?}"
        );
        assert!(has(
            &errs,
            "spec.steps[6].continueOnItemFailure",
            "applies to a step with forEach"
        ));

        // a DAG: unknown names, itself, and a cycle (named) are refused
        let waits = |name: &str, on: &[&str]| crate::api::StepSpec {
            depends_on: Some(on.iter().map(|s| s.to_string()).collect()),
            ..step(name)
        };
        let mut dag = dj.clone();
        dag.spec.steps = Some(vec![
            waits("a", &["c"]),
            waits("b", &["a"]),
            waits("c", &["b"]),
            waits("d", &["d", "nope"]),
        ]);
        let errs = errors(&dag);
        assert!(
            has(&errs, "spec.steps[3].dependsOn[0]", "cannot wait for itself"),
            "{errs:?}"
        );
        assert!(
            has(&errs, "spec.steps[3].dependsOn[1]", "\"nope\" is not a step"),
            "{errs:?}"
        );
        dag.spec.steps = Some(vec![
            waits("a", &["c"]),
            waits("b", &["a"]),
            waits("c", &["b"]),
            step("d"),
        ]);
        let errs = errors(&dag);
        assert!(
            has(&errs, "spec.steps[0].dependsOn", "cycle: a -> c -> b -> a"),
            "{errs:?}"
        );
        // two branches after a root, joined; fromStep must be a step it waits for
        let fan_from = |from: &str| {
            let mut s = waits("join", &["left", "right"]);
            s.for_each = Some(crate::api::ForEachSpec {
                from_step: Some(from.into()),
                ..Default::default()
            });
            s
        };
        dag.spec.steps = Some(vec![
            step("root"),
            waits("left", &["root"]),
            waits("right", &["root"]),
            fan_from("root"),
            waits("aside", &[]),
        ]);
        let valid = validate(&dag.spec).unwrap();
        let Executor::Steps(steps) = &valid.executor else {
            panic!()
        };
        assert_eq!(steps[3].depends_on, vec!["left", "right"]);
        let mut aside = dag.clone();
        aside.spec.steps.as_mut().unwrap()[3] = fan_from("aside");
        assert!(has(
            &errors(&aside),
            "spec.steps[3].forEach.fromStep",
            "one it waits for"
        ));

        // a fan-out over an earlier step's result
        let mut fan = dj.clone();
        fan.spec.steps = Some(vec![
            step("list"),
            crate::api::StepSpec {
                for_each: Some(crate::api::ForEachSpec {
                    from_step: Some("list".into()),
                    ..Default::default()
                }),
                continue_on_item_failure: Some(true),
                ..step("migrate")
            },
        ]);
        let valid = validate(&fan.spec).unwrap();
        let Executor::Steps(steps) = &valid.executor else {
            panic!()
        };
        assert_eq!(
            steps[1].for_each,
            Some(ValidForEach {
                items: ValidItems::FromStep("list".into()),
                parallelism: DEFAULT_PARALLELISM
            })
        );
        assert!(steps[1].continue_on_item_failure);

        let mut both = dj.clone();
        both.spec.job_template = DurableJob::test("x").spec.job_template;
        assert!(has(&errors(&both), "spec", "exactly one of jobTemplate"));
    }

    #[test]
    fn a_job_template_is_checked_as_kubernetes_would_with_the_field_path() {
        let mut dj = DurableJob::test("x");
        dj.spec.job_template =
            Some(json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}}));
        assert!(has(
            &errors(&dj),
            "spec.jobTemplate.spec.template.spec.restartPolicy",
            "Never or OnFailure"
        ));
        dj.spec.job_template =
            Some(json!({"spec": {"template": {"spec": {"restartPolicy": "Never", "containers": []}}}}));
        assert!(has(
            &errors(&dj),
            "spec.jobTemplate.spec.template.spec.containers",
            "at least one container"
        ));
        dj.spec.job_template = Some(json!({"spec": {"backoffLimit": "six", "template": {}}}));
        let errs = errors(&dj);
        assert!(
            errs.iter()
                .any(|(f, _)| f == "spec.jobTemplate.spec.backoffLimit"),
            "{errs:?}"
        );
    }

    #[test]
    fn zero_timeouts_are_refused() {
        let mut dj = DurableJob::test("x");
        dj.spec.workflow = Some(crate::api::WorkflowSpec {
            run_timeout: Some("0s".into()),
            ..Default::default()
        });
        assert!(has(&errors(&dj), "spec.workflow.runTimeout", "longer than 0"));
    }

    #[test]
    fn exclusions_h_and_failure_streaks_are_checked_with_the_field_named() {
        let mut dj = DurableJob::test("x").with_cron(&["H H(8-17) * * 1-5", "H/x * * * *"]);
        dj.spec.schedule.exclude = Some(crate::api::Exclusions {
            cron: vec!["* * * * 0,6".into(), "H * * * *".into(), "0 9 * *".into()],
            dates: vec!["2026-12-24".into(), "2026-02-30".into()],
        });
        dj.spec.schedule.exclude_calendars = vec!["holidays".into(), "holidays".into()];
        dj.spec.suspend_after_failures = Some(0);
        dj.spec.resume_after = Some("soon".into());
        let e = errors(&dj);
        assert!(has(&e, "spec.schedule.cron[1]", "only (a-b) or /step"), "{e:?}");
        assert!(
            !e.iter().any(|(f, _)| f == "spec.schedule.cron[0]"),
            "H forms are valid: {e:?}"
        );
        assert!(
            has(&e, "spec.schedule.exclude.cron[1]", "exclusions are fixed times"),
            "{e:?}"
        );
        assert!(has(&e, "spec.schedule.exclude.cron[2]", "five"), "{e:?}");
        assert!(has(&e, "spec.schedule.exclude.dates[1]", "YYYY-MM-DD"), "{e:?}");
        assert!(
            has(&e, "spec.schedule.excludeCalendars[1]", "listed twice"),
            "{e:?}"
        );
        assert!(has(&e, "spec.suspendAfterFailures", "at least 1"), "{e:?}");
        assert!(has(&e, "spec.resumeAfter", "not a duration"), "{e:?}");

        let mut ok = DurableJob::test("x");
        ok.spec.suspend_after_failures = Some(2);
        ok.spec.resume_after = Some("10m".into());
        let v = validate(&ok.spec).unwrap();
        assert_eq!(
            (v.suspend_after_failures, v.resume_after),
            (Some(2), Some(Duration::from_secs(600)))
        );
        let mut alone = DurableJob::test("x");
        alone.spec.resume_after = Some("10m".into());
        assert!(has(&errors(&alone), "spec.resumeAfter", "set that too"));
        let mut both = ok.clone();
        both.spec.pause_on_failure = true;
        assert!(has(&errors(&both), "spec.suspendAfterFailures", "not both"));
    }
}
