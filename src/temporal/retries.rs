//! Retrying a run of the built-in runner (`kubectl durablejob retry`): how the run ended and
//! what it finished (its close event: the result, or a failure's details), and starting the
//! retry as a run listed with the schedule's. [`Retries`] is the trait the controller uses; it
//! is implemented on the SDK's raw gRPC calls here.

use std::future::Future;

use serde_json::Value;
use temporalio_client::{NamespacedClient, grpc::WorkflowService, tonic::IntoRequest};
use temporalio_common::protos::temporal::api::{
    common::v1::{Memo, Payloads, SearchAttributes, WorkflowExecution, WorkflowType},
    enums::v1::HistoryEventFilterType,
    failure::v1::failure::FailureInfo,
    history::v1::history_event::Attributes,
    taskqueue::v1::TaskQueue,
    workflowservice::v1::{GetWorkflowExecutionHistoryRequest, StartWorkflowExecutionRequest},
};

use super::TemporalError;
use super::sdk::{SdkSchedules, json_payload, memo_i64, payload_value, run_result};
use crate::api::{BUILTIN_WORKFLOW_TYPE, RunResult};
use crate::run_contract::memo as run_memo;

/// A run of the built-in runner, as a retry looks at it.
#[derive(Debug, Clone, PartialEq)]
pub struct EndedRun {
    pub run_id: String,
    /// `Running` while it is still going.
    pub result: RunResult,
    /// What it finished (the runner's `RunOutcome` as JSON): its result when it completed, its
    /// failure's details when it failed; `None` otherwise.
    pub outcome: Option<Value>,
}

/// A retry to start.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryStart<'a> {
    pub namespace: &'a str,
    /// The schedule whose runs it is listed with (`TemporalScheduledById`).
    pub schedule_id: &'a str,
    pub workflow_id: &'a str,
    pub task_queue: &'a str,
    pub input: &'a Value,
    /// The workflow id of the run it retries (memo `durablejob.dev/retry-of`).
    pub retry_of: &'a str,
    /// The same request id is the same start.
    pub request_id: &'a str,
}

/// What the controller needs from Temporal to retry a run.
pub trait Retries {
    /// The latest run of workflow `workflow_id`; `Ok(None)` when there is none.
    fn ended_run(
        &self,
        namespace: &str,
        workflow_id: &str,
    ) -> impl Future<Output = Result<Option<EndedRun>, TemporalError>> + Send;

    /// Starts the retry; gives its run id (a start made before with the same request id is the
    /// same run).
    fn start_retry(&self, r: &RetryStart<'_>) -> impl Future<Output = Result<String, TemporalError>> + Send;
}

impl Retries for SdkSchedules {
    async fn ended_run(&self, namespace: &str, workflow_id: &str) -> Result<Option<EndedRun>, TemporalError> {
        let described = self
            .describe_execution(namespace, "describe_run", workflow_id)
            .await?;
        let Some(info) = described else {
            return Ok(None);
        };
        let run_id = info
            .execution
            .as_ref()
            .map(|e| e.run_id.clone())
            .unwrap_or_default();
        let result = match run_result(info.status) {
            Some(RunResult::Succeeded)
                if memo_i64(&info.memo, run_memo::FAILED_ITEMS).is_some_and(|n| n > 0) =>
            {
                RunResult::PartiallyFailed
            }
            Some(r) => r,
            None => RunResult::Running,
        };
        if result == RunResult::Running {
            return Ok(Some(EndedRun {
                run_id,
                result,
                outcome: None,
            }));
        }
        let close = self
            .rpc(namespace, "run_close_event", None, |mut c| {
                let req = GetWorkflowExecutionHistoryRequest {
                    namespace: c.namespace(),
                    execution: Some(WorkflowExecution {
                        workflow_id: workflow_id.to_string(),
                        run_id: run_id.clone(),
                    }),
                    history_event_filter_type: HistoryEventFilterType::CloseEvent as i32,
                    ..Default::default()
                };
                async move {
                    let history = WorkflowService::get_workflow_execution_history(&mut c, req.into_request())
                        .await?
                        .into_inner()
                        .history
                        .unwrap_or_default();
                    Ok(history.events.into_iter().last().and_then(|e| e.attributes))
                }
            })
            .await?;
        let first = |p: Option<Payloads>| p.and_then(|p| p.payloads.first().and_then(payload_value));
        let outcome = match close {
            Some(Attributes::WorkflowExecutionCompletedEventAttributes(a)) => first(a.result),
            Some(Attributes::WorkflowExecutionFailedEventAttributes(a)) => {
                match a.failure.and_then(|f| f.failure_info) {
                    Some(FailureInfo::ApplicationFailureInfo(i)) => first(i.details),
                    _ => None,
                }
            }
            _ => None,
        };
        Ok(Some(EndedRun {
            run_id,
            result,
            outcome,
        }))
    }

    async fn start_retry(&self, r: &RetryStart<'_>) -> Result<String, TemporalError> {
        let input = json_payload(r.input)?;
        let retry_of = json_payload(&Value::String(r.retry_of.to_string()))?;
        let scheduled_by = json_payload(&Value::String(r.schedule_id.to_string()))?;
        self.rpc(r.namespace, "start_retry", None, |mut c| {
            let req = StartWorkflowExecutionRequest {
                namespace: c.namespace(),
                workflow_id: r.workflow_id.to_string(),
                workflow_type: Some(WorkflowType {
                    name: BUILTIN_WORKFLOW_TYPE.to_string(),
                }),
                task_queue: Some(TaskQueue {
                    name: r.task_queue.to_string(),
                    ..Default::default()
                }),
                input: Some(Payloads {
                    payloads: vec![input.clone()],
                }),
                identity: self.identity.clone(),
                request_id: r.request_id.to_string(),
                memo: Some(Memo {
                    fields: [(run_memo::RETRY_OF.to_string(), retry_of.clone())].into(),
                }),
                search_attributes: Some(SearchAttributes {
                    indexed_fields: [("TemporalScheduledById".to_string(), scheduled_by.clone())].into(),
                }),
                ..Default::default()
            };
            async move {
                let started = WorkflowService::start_workflow_execution(&mut c, req.into_request()).await?;
                Ok(started.into_inner().run_id)
            }
        })
        .await
    }
}
