//! The runner's activities: create (or adopt) the Job of one attempt and wait for it, and
//! keep the finished Jobs within the history limits. All Kubernetes I/O of the runner is here.

use std::time::Duration;

use chrono::DateTime;
use k8s_openapi::api::batch::v1::Job;
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams, PostParams},
};
use serde::{Deserialize, Serialize};
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use tracing::{info, warn};

use super::authorize::{self, Claim, Evidence, Origin, Refusal, ScheduleFacts};
use super::job::{self, JobState, failure};
use super::progress::Report;
use super::watch::{JobWatch, Seen, Subscription};
use crate::api::DurableJob;
use crate::desired::schedule::ScheduleLocation;
use crate::metrics::runner::{RunEnd, RunnerMetrics};
use crate::run_contract::RunInput;
use crate::temporal::{RunRef, Schedules, sdk::SdkSchedules};

/// Input of one attempt.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptInput {
    pub run: RunInput,
    /// The slot (scheduled time) in Unix seconds.
    pub slot: i64,
    pub attempt: u32,
    /// The Temporal run (empty in inputs written before these fields existed).
    #[serde(default)]
    pub workflow_id: String,
    #[serde(default)]
    pub run_id: String,
    /// The step this attempt runs, in a multi-step run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The results of the run's earlier steps, by step name (their Jobs see them as env).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub results: std::collections::BTreeMap<String, serde_json::Value>,
    /// A fan-out step's item this attempt runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<ItemRef>,
}

/// One item of a fan-out step.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ItemRef {
    /// Its index in the step's items, from 0.
    pub index: u32,
    pub value: serde_json::Value,
}

impl AttemptInput {
    /// The retry policy this attempt is counted against: its step's, or the run's.
    pub fn retry(&self) -> Option<&crate::run_contract::RunRetry> {
        match &self.step {
            Some(name) => self.run.steps.iter().find(|s| &s.name == name)?.retry.as_ref(),
            None => self.run.retry.as_ref(),
        }
    }

    /// The step and item part of its Job names.
    fn part(&self) -> Option<String> {
        job::part(self.step.as_deref(), self.item.as_ref().map(|i| i.index))
    }
}

/// A Job that succeeded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JobDone {
    pub job_name: String,
    /// A step's result: its pod's termination message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

/// Whose Jobs to keep within the history limits: the run's DurableJob (the limits are that
/// DurableJob's own; the fields here are kept for runs that began before, and ignored).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupInput {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub successful_runs_history_limit: i32,
    pub failed_runs_history_limit: i32,
    /// A multi-step run's end and slot, for the runner's run metrics (its steps' attempts and
    /// items do not count the run: a fan-out's failed items are not the run's end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_end: Option<(RunEnd, i64)>,
}

pub struct JobActivities {
    pub client: Client,
    /// The Temporal namespace this worker polls (every activity task it gets is from there).
    pub temporal_namespace: String,
    /// Describes the schedule a DurableJob's status names, to bind runs to it.
    pub schedules: std::sync::Arc<SdkSchedules>,
    /// The shared watch of the runner's Jobs: how a run learns its Job's progress.
    pub watch: std::sync::Arc<JobWatch>,
    /// Longest wait between two looks at a waited-on Job when the watch shows no change.
    pub poll_interval: Duration,
    pub metrics: std::sync::Arc<RunnerMetrics>,
    /// Reports Job progress to the run (its `status` query); `None` reports nothing.
    pub progress: Option<super::progress::Reporter>,
}

impl JobActivities {
    /// Records the end of an attempt; it ends the run unless the workflow retries it.
    fn attempt_ended(&self, input: &AttemptInput, slot: DateTime<chrono::Utc>, failure: Option<&str>) {
        if input.step.is_some() {
            // a multi-step run's end is counted by its cleanup (CleanupInput::run_end)
            return;
        }
        let end = match failure {
            None => RunEnd::Succeeded,
            Some(t) if super::exchange::retries_after(input.retry(), input.attempt, t) => return,
            Some(_) => RunEnd::Failed,
        };
        self.run_ended(input, slot, end);
    }

    /// Records the end of a step's Job (the metric per step), when the attempt is a step's.
    fn step_ended(&self, input: &AttemptInput, end: RunEnd, took: Duration) {
        if let Some(step) = &input.step {
            let run = &input.run;
            self.metrics
                .step_job_ended(&run.namespace, &run.name, step, end, took);
        }
    }

    fn run_ended(&self, input: &AttemptInput, slot: DateTime<chrono::Utc>, end: RunEnd) {
        let took = (chrono::Utc::now() - slot).to_std().unwrap_or_default();
        self.metrics
            .run_ended(&input.run.namespace, &input.run.name, end, took);
    }
}

fn fail(type_name: &str, message: String) -> ActivityError {
    ActivityError::application(
        ApplicationFailure::builder(message)
            .type_name(type_name.to_string())
            .non_retryable(true)
            .build(),
    )
}

/// Kubernetes errors: what the retry policy may retry (5xx, timeouts, conflicts) and what it
/// must not (an invalid template, missing permissions).
fn classify(e: kube::Error, what: &str) -> ActivityError {
    match &e {
        kube::Error::Api(s) if s.code == 422 || s.code == 400 => fail(
            failure::INVALID_JOB_TEMPLATE,
            format!("{what}: the API server refused the Job: {}", s.message),
        ),
        kube::Error::Api(s) if s.code == 403 || s.code == 401 => fail(
            failure::FORBIDDEN,
            format!(
                "{what}: the runner is not allowed to: {} (check its RBAC)",
                s.message
            ),
        ),
        _ => ActivityError::from(anyhow::anyhow!("{what}: {e}")),
    }
}

/// How long a run that is not yet proven to be its DurableJob's (the operator has not recorded
/// the schedule yet, or Temporal does not list the run it has just started) is asked again
/// before it is refused.
const BIND_PATIENCE: Duration = Duration::from_secs(10);

/// The run an activity belongs to, from the activity task as Temporal delivered it.
fn origin(ctx: &ActivityContext, temporal_namespace: &str) -> Origin {
    let info = ctx.info();
    Origin {
        temporal_namespace: temporal_namespace.to_string(),
        workflow_type: info.workflow_type.clone(),
        run: match (&info.workflow_id, &info.workflow_run_id) {
            (Some(w), Some(r)) => Some(RunRef {
                workflow_id: w.clone(),
                run_id: r.clone(),
            }),
            _ => None,
        },
    }
}

impl JobActivities {
    /// Proves that the activity's workflow is a run of the DurableJob `claim` names, started by
    /// that DurableJob's schedule ([`authorize::bind`]), and gives the DurableJob as the API
    /// server has it. Evidence is read cheapest first: `jobs` (Jobs of the DurableJob the caller
    /// already read: a run the runner made a Job for needs no more), then the schedule the
    /// status names, then `own_job` (the Job this attempt would have, read once: a resumed
    /// attempt of a long run that the schedule no longer lists). Refuses (`Forbidden`, touching
    /// nothing) what it cannot prove within [`BIND_PATIENCE`].
    async fn bind(
        &self,
        ctx: &ActivityContext,
        claim: Claim<'_>,
        jobs: &[Job],
        own_job: Option<&str>,
    ) -> Result<DurableJob, ActivityError> {
        let origin = self.own_run(ctx)?;
        let djs: Api<DurableJob> = Api::namespaced(self.client.clone(), claim.namespace);
        let deadline = tokio::time::Instant::now() + BIND_PATIENCE;
        let mut read: Vec<Job> = jobs.to_vec();
        let mut own_job = own_job;
        loop {
            let dj = djs.get_opt(claim.name).await.map_err(|e| {
                classify(
                    e,
                    &format!("reading DurableJob {}/{}", claim.namespace, claim.name),
                )
            })?;
            let mut facts = None;
            let decide = |facts: Option<&ScheduleFacts>, jobs: &[Job]| {
                let ev = Evidence {
                    dj: dj.as_ref(),
                    schedule: facts,
                    jobs,
                };
                authorize::bind(&origin, &claim, &ev)
            };
            let mut decision = decide(None, &read);
            if let (Err(Refusal::NotYet(_)), Some(at)) = (&decision, recorded_schedule(dj.as_ref(), &origin))
            {
                let observed = self.schedules.describe(&at).await.map_err(|e| {
                    ActivityError::from(anyhow::anyhow!("describing Temporal schedule {}: {e}", at.id))
                })?;
                facts = observed.as_ref().map(ScheduleFacts::from);
                decision = decide(facts.as_ref(), &read);
            }
            if let (Err(Refusal::NotYet(_)), Some(name)) = (&decision, own_job.take()) {
                let jobs: Api<Job> = Api::namespaced(self.client.clone(), claim.namespace);
                if let Some(j) = jobs
                    .get_opt(name)
                    .await
                    .map_err(|e| classify(e, &format!("reading Job {name}")))?
                {
                    read.push(j);
                    decision = decide(facts.as_ref(), &read);
                }
            }
            match decision {
                Ok(()) => return Ok(dj.expect("a bound run has its DurableJob")),
                Err(Refusal::NotYet(_)) if tokio::time::Instant::now() < deadline => {
                    // the wait is the activity's work: heartbeat, or Temporal times it out and retries
                    let _ = ctx.record_heartbeat(String::from("binding the run")).await;
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = ctx.cancelled() => return Err(ActivityError::cancelled()),
                    }
                }
                Err(r) => return Err(self.refuse(&origin, r.message())),
            }
        }
    }

    /// The run the activity task belongs to, refused (`Forbidden`) before anything is read when
    /// it is not one of the runner's own workflow `durablejob.run`.
    fn own_run(&self, ctx: &ActivityContext) -> Result<Origin, ActivityError> {
        let origin = origin(ctx, &self.temporal_namespace);
        match authorize::run_of(&origin) {
            Ok(_) => Ok(origin),
            Err(r) => Err(self.refuse(&origin, r.message())),
        }
    }

    /// A `Forbidden` failure; logs what was refused (never the input's values) and counts it.
    fn refuse(&self, origin: &Origin, why: &str) -> ActivityError {
        let (workflow_id, run_id) = origin
            .run
            .as_ref()
            .map(|r| (r.workflow_id.as_str(), r.run_id.as_str()))
            .unwrap_or_default();
        warn!(temporal_namespace = %origin.temporal_namespace, workflow_id, run_id, "refused a run: {why}");
        self.metrics.refused(&origin.temporal_namespace);
        fail(failure::FORBIDDEN, format!("refused: {why}"))
    }
}

/// Where the DurableJob's status says its schedule is, when that is the activity's namespace.
fn recorded_schedule(dj: Option<&DurableJob>, origin: &Origin) -> Option<ScheduleLocation> {
    let status = dj?.status.as_ref()?;
    let (id, namespace) = (status.schedule_id.clone()?, status.temporal_namespace.clone()?);
    (namespace == origin.temporal_namespace).then_some(ScheduleLocation { namespace, id })
}

/// How long a Job the runner just created (or adopted) may be missing from the watch before the
/// runner asks the API server for it.
const WATCH_GRACE: Duration = Duration::from_secs(5);

fn deleted(name: &str) -> ActivityError {
    fail(
        failure::JOB_FAILED,
        format!("Job {name} was deleted before it finished"),
    )
}

impl JobActivities {
    /// Heartbeats (the SDK sends at most one per 0.8 heartbeat timeouts), then waits until the
    /// watch shows a change of the Job, the run is cancelled, or `at_most` passed (the poll
    /// interval, or sooner when a progress reading is held back until then).
    async fn wait(&self, ctx: &ActivityContext, watched: &mut Subscription, name: &str, at_most: Duration) {
        let _ = ctx.record_heartbeat(name.to_string()).await;
        tokio::select! {
            _ = watched.changed(at_most) => {}
            _ = ctx.cancelled() => {}
        }
    }
}

impl JobActivities {
    /// The attempt's Job, once the run is bound to its DurableJob and the template it carries
    /// is the one the DurableJob has (or the first attempt's, for a retry).
    async fn authorized_job(
        &self,
        ctx: &ActivityContext,
        jobs: &Api<Job>,
        input: &AttemptInput,
        slot: DateTime<chrono::Utc>,
    ) -> Result<Job, ActivityError> {
        let (run, step, part) = (&input.run, input.step.as_deref(), input.part());
        let first = if input.attempt > 1 {
            jobs.get_opt(&job::job_name(&run.name, &run.uid, slot, part.as_deref(), 1))
                .await
                .map_err(|e| classify(e, "reading the run's first Job"))?
        } else {
            None
        };
        let own = job::job_name(&run.name, &run.uid, slot, part.as_deref(), input.attempt);
        let dj = self
            .bind(ctx, Claim::from(run), first.as_slice(), Some(&own))
            .await?;
        let origin = origin(ctx, &self.temporal_namespace);
        if let Err(why) = authorize::template(run, step, &dj, input.attempt, first.as_ref()) {
            return Err(self.refuse(&origin, &format!("refused to create a Job: {why}")));
        }
        let bound = origin.run.unwrap_or_else(|| RunRef {
            workflow_id: String::new(),
            run_id: String::new(),
        });
        let job_run = job::JobRun {
            slot,
            step: input.step.clone(),
            results: input.results.clone(),
            item: input.item.as_ref().map(|i| (i.index, i.value.clone())),
            attempt: input.attempt,
            manual: authorize::is_manual(&dj, slot),
            workflow_id: bound.workflow_id,
            run_id: bound.run_id,
        };
        job::build(run, &job_run).map_err(|m| fail(failure::INVALID_JOB_TEMPLATE, m))
    }

    /// Creates the Job, or adopts the one of that name when it is this run's (a retried or
    /// resumed attempt); a Job of that name that is someone else's fails the attempt.
    async fn create_or_adopt(
        &self,
        jobs: &Api<Job>,
        desired: &Job,
        input: &AttemptInput,
        slot: DateTime<chrono::Utc>,
    ) -> Result<(), ActivityError> {
        let name = desired.metadata.name.clone().unwrap_or_default();
        match jobs.create(&PostParams::default(), desired).await {
            Ok(_) => {
                info!(job = %name, namespace = %input.run.namespace, attempt = input.attempt, "created Job");
                let delay = (chrono::Utc::now() - slot).to_std().unwrap_or_default();
                self.metrics
                    .job_created(&input.run.namespace, &input.run.name, input.attempt, delay);
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                let existing = jobs
                    .get(&name)
                    .await
                    .map_err(|e| classify(e, "reading the existing Job"))?;
                if !job::is_ours(&existing, &input.run) {
                    return Err(fail(
                        failure::JOB_FAILED,
                        format!(
                            "a Job named {name} already exists in {} and does not belong to this DurableJob",
                            input.run.namespace
                        ),
                    ));
                }
                info!(job = %name, "adopted the existing Job (a retried or resumed attempt)");
                Ok(())
            }
            Err(e) => Err(classify(e, &format!("creating Job {name}"))),
        }
    }

    /// Follows the Job until it finishes, reporting progress as it changes; a cancelled run
    /// deletes it. `by_pod`: the Job is done once its pod succeeded ([`job::done_by_its_pod`]).
    async fn follow(
        &self,
        ctx: &ActivityContext,
        jobs: &Api<Job>,
        name: &str,
        by_pod: bool,
        input: &AttemptInput,
        slot: DateTime<chrono::Utc>,
    ) -> Result<JobDone, ActivityError> {
        let mut reported: Option<super::exchange::JobProgress> = None;
        let mut watched = self.watch.subscribe(&input.run.namespace, name);
        let mut shown = false;
        let since = tokio::time::Instant::now();
        let following_since = chrono::Utc::now();
        loop {
            if ctx.is_cancelled() {
                delete(jobs, name).await;
                self.step_ended(input, RunEnd::Canceled, since.elapsed());
                if input.step.is_none() {
                    self.run_ended(input, slot, RunEnd::Canceled);
                }
                return Err(ActivityError::cancelled());
            }
            let current = match watched.seen() {
                Seen::Present(j) => {
                    shown = true;
                    j
                }
                Seen::Absent if shown => return Err(deleted(name)),
                // just created, and the watch has not delivered it yet: wait for it
                Seen::Absent if since.elapsed() < WATCH_GRACE => {
                    self.wait(ctx, &mut watched, name, self.poll_interval).await;
                    continue;
                }
                // the watch is not listing (yet), or has not shown the Job for a while: ask
                Seen::Absent | Seen::Unknown => match jobs.get_opt(name).await {
                    Ok(Some(j)) => std::sync::Arc::new(j),
                    Ok(None) => return Err(deleted(name)),
                    Err(e) => return Err(classify(e, &format!("reading Job {name}"))),
                },
            };
            // the pods matter for a Job done by its pod, and for a step's result; a scan of the
            // pod cache on every wake of every other Job would be wasted
            let result_wanted = input.step.is_some() && input.item.is_none();
            let pods = (by_pod || result_wanted)
                .then(|| watched.pods(current.uid().as_deref().unwrap_or_default()))
                .flatten();
            match job::state_with_pods(&current, pods.as_deref().unwrap_or_default(), by_pod) {
                JobState::Succeeded => {
                    // a step's result; an item's is not kept (a fan-out records outcomes)
                    let result = match (&input.step, &input.item) {
                        (Some(_), None) => match &pods {
                            Some(pods) => job::result_of(pods.iter().map(|p| p.as_ref())),
                            None => self.result(&input.run.namespace, name).await?,
                        },
                        _ => None,
                    };
                    self.attempt_ended(input, slot, None);
                    self.step_ended(input, RunEnd::Succeeded, since.elapsed());
                    return Ok(JobDone {
                        job_name: name.to_string(),
                        result,
                    });
                }
                JobState::Failed { deadline, message } => {
                    let type_name = if deadline {
                        failure::JOB_DEADLINE_EXCEEDED
                    } else {
                        failure::JOB_FAILED
                    };
                    self.attempt_ended(input, slot, Some(type_name));
                    self.step_ended(input, RunEnd::Failed, since.elapsed());
                    return Err(fail(type_name, format!("Job {name} failed: {message}")));
                }
                JobState::Running => {}
            }
            // an item's progress is not signalled: a fan-out of 1,000 would put thousands of
            // signals in the run's history (the status query counts the items)
            let mut look_again = self.poll_interval;
            if let Some(reporter) = self.progress.as_ref().filter(|_| input.item.is_none()) {
                let reading = super::progress::reading(&current, chrono::Utc::now());
                match super::progress::when_to_report(reported.as_ref(), &reading, following_since) {
                    Report::Now => {
                        reporter.report(ctx, &reading).await;
                        reported = Some(reading);
                    }
                    Report::NotBefore(at) => {
                        let wait = (at - reading.observed_at).to_std().unwrap_or_default();
                        look_again = look_again.min(wait);
                    }
                    Report::Nothing => {}
                }
            }
            self.wait(ctx, &mut watched, name, look_again).await;
        }
    }
}

impl JobActivities {
    /// The result a step's succeeded Job left, when the pod watch has not listed yet: its pods
    /// are listed once.
    async fn result(&self, namespace: &str, job: &str) -> Result<Option<serde_json::Value>, ActivityError> {
        let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(self.client.clone(), namespace);
        let selector = format!("batch.kubernetes.io/job-name={job}");
        let listed = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| classify(e, &format!("listing the pods of Job {job} for its result")))?;
        Ok(job::result_of(&listed.items))
    }
}

#[activities]
impl JobActivities {
    /// Creates the attempt's Job (adopting it if it already exists) and waits for it to finish.
    #[activity(name = "durablejob.runJob")]
    pub async fn run_job(
        self: std::sync::Arc<Self>,
        ctx: ActivityContext,
        input: AttemptInput,
    ) -> Result<JobDone, ActivityError> {
        self.own_run(&ctx)?;
        let slot = DateTime::from_timestamp(input.slot, 0).unwrap_or_default();
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &input.run.namespace);
        let desired = self.authorized_job(&ctx, &jobs, &input, slot).await?;
        let name = desired.metadata.name.clone().unwrap_or_default();
        self.create_or_adopt(&jobs, &desired, &input, slot).await?;
        let by_pod = job::done_by_its_pod(&desired);
        self.follow(&ctx, &jobs, &name, by_pod, &input, slot).await
    }

    /// Deletes finished Jobs of the run's DurableJob beyond that DurableJob's own history
    /// limits: only Jobs the runner made for it (its labels and the DurableJob as controlling
    /// owner), and only once the run is bound to it.
    #[activity(name = "durablejob.cleanupJobs")]
    pub async fn cleanup_jobs(
        self: std::sync::Arc<Self>,
        ctx: ActivityContext,
        input: CleanupInput,
    ) -> Result<Vec<String>, ActivityError> {
        self.own_run(&ctx)?;
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &input.namespace);
        let selector = format!(
            "{}={},{},{}",
            job::LABEL_NAME,
            input.name,
            job::LABEL_SCHEDULED_TIME,
            job::LABEL_ATTEMPT
        );
        let listed = jobs
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| classify(e, "listing Jobs"))?
            .items;
        let claim = Claim {
            namespace: &input.namespace,
            name: &input.name,
            uid: &input.uid,
        };
        let dj = self.bind(&ctx, claim, &listed, None).await?;
        let uid = dj.uid().unwrap_or_default();
        let ours: Vec<Job> = listed
            .into_iter()
            .filter(|j| {
                j.owner_references()
                    .iter()
                    .any(|o| o.uid == uid && o.controller == Some(true))
            })
            .collect();
        let pods = self.watch.pods_in(&input.namespace);
        let doomed = job::beyond_history(
            &ours,
            &pods,
            dj.spec.successful_runs_history_limit,
            dj.spec.failed_runs_history_limit,
        );
        for name in &doomed {
            delete(&jobs, name).await;
        }
        // the end of the multi-step run this cleanup closes
        if let Some((end, slot)) = input.run_end {
            let slot = DateTime::from_timestamp(slot, 0).unwrap_or_default();
            let took = (chrono::Utc::now() - slot).to_std().unwrap_or_default();
            self.metrics.run_ended(&input.namespace, &input.name, end, took);
        }
        Ok(doomed)
    }
}

async fn delete(jobs: &Api<Job>, name: &str) {
    match jobs.delete(name, &DeleteParams::background()).await {
        Ok(_) => info!(job = %name, "deleted Job"),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => warn!(job = %name, error = %e, "could not delete Job"),
    }
}
