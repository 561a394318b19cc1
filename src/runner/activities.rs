//! The runner's activities: create (or adopt) the Job of one attempt and wait for it, and
//! keep the finished Jobs within the history limits. All Kubernetes I/O of the runner is here.

use std::time::Duration;

use chrono::DateTime;
use k8s_openapi::api::batch::v1::Job;
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, PostParams},
};
use serde::{Deserialize, Serialize};
use temporalio_macros::activities;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use tracing::{info, warn};

use super::job::{self, JobState, failure};
use crate::api::DurableJob;
use crate::metrics::runner::{RunEnd, RunnerMetrics};
use crate::run_contract::RunInput;

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
}

/// A Job that succeeded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JobDone {
    pub job_name: String,
}

/// Which Jobs to keep.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupInput {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub successful_runs_history_limit: i32,
    pub failed_runs_history_limit: i32,
}

pub struct JobActivities {
    pub client: Client,
    pub poll_interval: Duration,
    pub metrics: std::sync::Arc<RunnerMetrics>,
    /// Reports Job progress to the run (its `status` query); `None` reports nothing.
    pub progress: Option<super::progress::Reporter>,
}

impl JobActivities {
    /// Records the end of an attempt; it ends the run unless the workflow retries it.
    fn attempt_ended(&self, input: &AttemptInput, slot: DateTime<chrono::Utc>, failure: Option<&str>) {
        let end = match failure {
            None => RunEnd::Succeeded,
            Some(t) if super::workflow::retries_after(input.run.retry.as_ref(), input.attempt, t) => return,
            Some(_) => RunEnd::Failed,
        };
        self.run_ended(input, slot, end);
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

impl JobActivities {
    /// Reads the DurableJob the input names and refuses (`Forbidden`) an input that is not its
    /// own; whether the run was started by a trigger.
    async fn authorize(
        &self,
        input: &AttemptInput,
        slot: DateTime<chrono::Utc>,
    ) -> Result<bool, ActivityError> {
        let run = &input.run;
        let djs: Api<DurableJob> = Api::namespaced(self.client.clone(), &run.namespace);
        let dj = djs
            .get_opt(&run.name)
            .await
            .map_err(|e| classify(e, &format!("reading DurableJob {}/{}", run.namespace, run.name)))?;
        let first = if input.attempt > 1 {
            let jobs: Api<Job> = Api::namespaced(self.client.clone(), &run.namespace);
            jobs.get_opt(&job::job_name(&run.name, &run.uid, slot, 1))
                .await
                .map_err(|e| classify(e, "reading the run's first Job"))?
        } else {
            None
        };
        if let Err(why) = super::authorize::authorize(run, dj.as_ref(), input.attempt, first.as_ref()) {
            warn!(namespace = %run.namespace, name = %run.name, workflow_id = %input.workflow_id, "refused a run: {why}");
            self.metrics.refused(&run.namespace, &run.name);
            return Err(fail(
                failure::FORBIDDEN,
                format!("refused to create a Job: {why}"),
            ));
        }
        Ok(dj.is_some_and(|dj| super::authorize::is_manual(&dj, slot)))
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
        let slot = DateTime::from_timestamp(input.slot, 0).unwrap_or_default();
        let manual = self.authorize(&input, slot).await?;
        let run = job::JobRun {
            slot,
            attempt: input.attempt,
            manual,
            workflow_id: input.workflow_id.clone(),
            run_id: input.run_id.clone(),
        };
        let desired = job::build(&input.run, &run).map_err(|m| fail(failure::INVALID_JOB_TEMPLATE, m))?;
        let name = desired.metadata.name.clone().unwrap_or_default();
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &input.run.namespace);
        match jobs.create(&PostParams::default(), &desired).await {
            Ok(_) => {
                info!(job = %name, namespace = %input.run.namespace, attempt = input.attempt, "created Job");
                let delay = (chrono::Utc::now() - slot).to_std().unwrap_or_default();
                self.metrics
                    .job_created(&input.run.namespace, &input.run.name, input.attempt, delay);
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
            }
            Err(e) => return Err(classify(e, &format!("creating Job {name}"))),
        }
        let mut reported: Option<super::workflow::JobProgress> = None;
        loop {
            if ctx.is_cancelled() {
                delete(&jobs, &name).await;
                self.run_ended(&input, slot, RunEnd::Canceled);
                return Err(ActivityError::cancelled());
            }
            let current = match jobs.get_opt(&name).await {
                Ok(Some(j)) => j,
                Ok(None) => {
                    return Err(fail(
                        failure::JOB_FAILED,
                        format!("Job {name} was deleted before it finished"),
                    ));
                }
                Err(e) => return Err(classify(e, &format!("reading Job {name}"))),
            };
            match job::state(&current) {
                JobState::Succeeded => {
                    self.attempt_ended(&input, slot, None);
                    return Ok(JobDone { job_name: name });
                }
                JobState::Failed { deadline, message } => {
                    let type_name = if deadline {
                        failure::JOB_DEADLINE_EXCEEDED
                    } else {
                        failure::JOB_FAILED
                    };
                    self.attempt_ended(&input, slot, Some(type_name));
                    return Err(fail(type_name, format!("Job {name} failed: {message}")));
                }
                JobState::Running => {}
            }
            if let Some(reporter) = &self.progress {
                let now = chrono::Utc::now();
                let reading = super::progress::reading(&current, now);
                if super::progress::worth_reporting(reported.as_ref(), &reading) {
                    reporter.report(&ctx, &reading).await;
                    reported = Some(reading);
                }
            }
            let _ = ctx.record_heartbeat(name.clone()).await;
            tokio::select! {
                _ = tokio::time::sleep(self.poll_interval) => {}
                _ = ctx.cancelled() => {}
            }
        }
    }

    /// Deletes finished Jobs beyond the history limits.
    #[activity(name = "durablejob.cleanupJobs")]
    pub async fn cleanup_jobs(
        self: std::sync::Arc<Self>,
        _ctx: ActivityContext,
        input: CleanupInput,
    ) -> Result<Vec<String>, ActivityError> {
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &input.namespace);
        let list = jobs
            .list(&ListParams::default().labels(&format!("{}={}", job::LABEL_NAME, input.name)))
            .await
            .map_err(|e| classify(e, "listing Jobs"))?;
        let ours: Vec<Job> = list
            .items
            .into_iter()
            .filter(|j| {
                j.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.uid == input.uid)
            })
            .collect();
        let doomed = job::beyond_history(
            &ours,
            input.successful_runs_history_limit,
            input.failed_runs_history_limit,
        );
        for name in &doomed {
            delete(&jobs, name).await;
        }
        Ok(doomed)
    }

    /// Deletes one Job (when a run is cancelled).
    #[activity(name = "durablejob.deleteJob")]
    pub async fn delete_job(
        self: std::sync::Arc<Self>,
        _ctx: ActivityContext,
        input: (String, String),
    ) -> Result<(), ActivityError> {
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &input.0);
        delete(&jobs, &input.1).await;
        Ok(())
    }
}

async fn delete(jobs: &Api<Job>, name: &str) {
    match jobs.delete(name, &DeleteParams::background()).await {
        Ok(_) => info!(job = %name, "deleted Job"),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => warn!(job = %name, error = %e, "could not delete Job"),
    }
}
