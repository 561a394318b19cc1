//! How a run learns where its Job stands, for the `status` query: the activity reads the Job
//! and signals the reading to its own workflow when something changed (and at least every
//! [`REFRESH`], so the heartbeat time stays fresh), never on every poll: a week-long Job adds
//! about two thousand signals to its history, far below Temporal's limits.
//!
//! Each signal costs the run a workflow task (and Temporal a history write and a dispatch), so
//! the readings are also held to [`SETTLE`]: none in a Job's first seconds, none closer together
//! than that. A Job that ends sooner reports through its run's end alone: a fleet of short Jobs
//! firing at the top of the hour sends no progress at all, where each used to send three or four
//! (pending, running, done) into the same storm of starts.

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use temporalio_client::{Client, NamespacedClient, grpc::WorkflowService, tonic::IntoRequest};
use temporalio_common::protos::{
    coresdk::AsJsonPayloadExt,
    temporal::api::{
        common::v1::{Payloads, WorkflowExecution},
        workflowservice::v1::SignalWorkflowExecutionRequest,
    },
};
use temporalio_sdk::activities::ActivityContext;
use tracing::debug;

use super::exchange::{JobProgress, names};

/// Longest time between two readings sent while nothing changes.
pub const REFRESH: chrono::TimeDelta = chrono::TimeDelta::seconds(300);

/// The Job as the run reports it.
pub fn reading(job: &Job, now: DateTime<Utc>) -> JobProgress {
    let status = job.status.clone().unwrap_or_default();
    let conditions = status
        .conditions
        .iter()
        .flatten()
        .map(|c| {
            let mut line = format!("{}={}", c.type_, c.status);
            match (c.reason.as_deref(), c.message.as_deref()) {
                (Some(r), Some(m)) if !m.is_empty() => line.push_str(&format!(" ({r}: {m})")),
                (Some(r), _) if !r.is_empty() => line.push_str(&format!(" ({r})")),
                _ => {}
            }
            line
        })
        .collect();
    JobProgress {
        job_name: job.metadata.name.clone().unwrap_or_default(),
        conditions,
        pods: super::exchange::PodCounts {
            active: status.active.unwrap_or(0),
            ready: status.ready.unwrap_or(0),
            succeeded: status.succeeded.unwrap_or(0),
            failed: status.failed.unwrap_or(0),
        },
        observed_at: now,
    }
}

/// How long a Job is followed before its first reading goes to the run, and the least time
/// between two readings.
pub const SETTLE: chrono::TimeDelta = chrono::TimeDelta::seconds(10);

/// What to do with a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// Send it.
    Now,
    /// It is news, but too soon: look again at this time (a reading taken then is sent).
    NotBefore(DateTime<Utc>),
    /// Nothing new.
    Nothing,
}

/// Whether to send `new`, given the reading sent `last` and when the activity began following
/// the Job: news (anything but the time changed, or the last one is [`REFRESH`] old) goes out
/// once the Job has been followed for [`SETTLE`] and the last reading is that old.
pub fn when_to_report(
    last: Option<&JobProgress>,
    new: &JobProgress,
    following_since: DateTime<Utc>,
) -> Report {
    let news = last.is_none_or(|last| {
        let same = JobProgress {
            observed_at: last.observed_at,
            ..new.clone()
        } == *last;
        !same || new.observed_at - last.observed_at >= REFRESH
    });
    if !news {
        return Report::Nothing;
    }
    let earliest = (following_since + SETTLE).max(last.map_or(following_since, |l| l.observed_at + SETTLE));
    if new.observed_at >= earliest {
        Report::Now
    } else {
        Report::NotBefore(earliest)
    }
}

/// Signals readings to the workflow that runs the activity.
#[derive(Clone)]
pub struct Reporter {
    pub client: Client,
    pub identity: String,
}

impl Reporter {
    /// Best effort: a lost reading only makes the `status` query older.
    pub async fn report(&self, ctx: &ActivityContext, reading: &JobProgress) {
        let info = ctx.info();
        let (Some(workflow_id), Some(run_id)) = (info.workflow_id.clone(), info.workflow_run_id.clone())
        else {
            return;
        };
        let Ok(payload) = serde_json::to_value(reading).map(|v| v.as_json_payload()) else {
            return;
        };
        let Ok(payload) = payload else {
            return;
        };
        let req = SignalWorkflowExecutionRequest {
            namespace: self.client.namespace(),
            workflow_execution: Some(WorkflowExecution { workflow_id, run_id }),
            signal_name: names::PROGRESS_SIGNAL.into(),
            input: Some(Payloads {
                payloads: vec![payload],
            }),
            identity: self.identity.clone(),
            ..Default::default()
        };
        if let Err(e) =
            WorkflowService::signal_workflow_execution(&mut self.client.clone(), req.into_request()).await
        {
            debug!(error = %e, "could not report Job progress to the run");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(active: i32, conditions: serde_json::Value) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "report-ab-1"}, "status": {"active": active, "ready": active, "conditions": conditions}}))
            .unwrap()
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn a_reading_has_the_jobs_conditions_and_pod_counts() {
        let r = reading(
            &job(
                1,
                json!([{"type": "Suspended", "status": "False", "reason": "JobResumed", "message": "resumed"}]),
            ),
            at(0),
        );
        assert_eq!(r.job_name, "report-ab-1");
        assert_eq!(r.conditions, vec!["Suspended=False (JobResumed: resumed)"]);
        let p = r.pods;
        assert_eq!((p.active, p.ready, p.succeeded, p.failed), (1, 1, 0, 0));
        let wire = serde_json::to_value(&r).unwrap();
        assert_eq!(
            (wire["active"].clone(), wire["failed"].clone()),
            (json!(1), json!(0)),
            "the counts sit at the top level"
        );
    }

    #[test]
    fn only_news_or_a_stale_reading_is_reported() {
        let since = at(-60);
        let first = reading(&job(1, json!([])), at(0));
        assert_eq!(when_to_report(None, &first, since), Report::Now);
        assert_eq!(
            when_to_report(Some(&first), &reading(&job(1, json!([])), at(15)), since),
            Report::Nothing
        );
        assert_eq!(
            when_to_report(Some(&first), &reading(&job(0, json!([])), at(15)), since),
            Report::Now
        );
        assert_eq!(
            when_to_report(Some(&first), &reading(&job(1, json!([])), at(300)), since),
            Report::Now
        );
    }

    #[test]
    fn a_short_job_sends_nothing_and_news_waits_out_the_settling_time() {
        // the Job was followed from 0: its first seconds send nothing, and say when to look again
        let early = reading(&job(1, json!([])), at(3));
        assert_eq!(when_to_report(None, &early, at(0)), Report::NotBefore(at(10)));
        assert_eq!(
            when_to_report(None, &reading(&job(1, json!([])), at(10)), at(0)),
            Report::Now
        );
        // news right after a reading waits until that reading is SETTLE old
        let sent = reading(&job(1, json!([])), at(20));
        assert_eq!(
            when_to_report(Some(&sent), &reading(&job(0, json!([])), at(24)), at(0)),
            Report::NotBefore(at(30))
        );
        // nothing new is not held for later
        assert_eq!(
            when_to_report(Some(&sent), &reading(&job(1, json!([])), at(24)), at(0)),
            Report::Nothing
        );
    }
}
