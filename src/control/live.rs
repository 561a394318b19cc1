//! `signal` and `query`: live calls to Temporal with the `temporal` CLI's connection settings
//! (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*, then flags), on a
//! run that belongs to the DurableJob.

use kube::ResourceExt;
use serde_json::Value;
use temporalio_client::{Client, ClientOptions, Connection, grpc::WorkflowService, tonic::IntoRequest};
use temporalio_common::protos::{
    coresdk::{AsJsonPayloadExt, FromJsonPayloadExt},
    temporal::api::{
        common::v1::{Payloads, WorkflowExecution},
        query::v1::WorkflowQuery,
        workflowservice::v1::{QueryWorkflowRequest, SignalWorkflowExecutionRequest},
    },
};

use super::{ControlError, Result, usage};
use crate::api::DurableJob;
use crate::temporal::connect::TemporalArgs;

/// A run of a DurableJob in Temporal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Run {
    pub namespace: String,
    pub workflow_id: String,
}

impl Run {
    /// The run `workflow_id` of `dj`: its id must be one the DurableJob's schedule gives,
    /// `<schedule id>-<RFC 3339 time>`, exactly (a prefix match would let `report` reach the
    /// runs of `report-x`, whose schedule id is `<prefix>:<namespace>/report-x`).
    pub(super) fn of(dj: &DurableJob, workflow_id: &str) -> Result<Run> {
        let status = dj.status.clone().unwrap_or_default();
        let (Some(schedule), Some(namespace)) = (status.schedule_id, status.temporal_namespace) else {
            return Err(usage(format!(
                "durablejob {} has no Temporal schedule yet (see kubectl durablejob status {})",
                dj.name_any(),
                dj.name_any()
            )));
        };
        let slot = workflow_id
            .strip_prefix(&format!("{schedule}-"))
            .filter(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok());
        if slot.is_none() {
            return Err(usage(format!(
                "unknown run {workflow_id:?}: runs of durablejob {} have workflow ids \"{schedule}-<time>\", such as \"{schedule}-2026-12-01T09:00:00Z\" (kubectl durablejob runs {} lists them)",
                dj.name_any(),
                dj.name_any()
            )));
        }
        Ok(Run {
            namespace,
            workflow_id: workflow_id.into(),
        })
    }
}

async fn client(args: &TemporalArgs, namespace: &str) -> Result<Client> {
    let config = args
        .resolve(&format!("kubectl-durablejob@{}", std::process::id()))
        .map_err(usage)?;
    let connection = Connection::connect(config.options.clone())
        .await
        .map_err(|e| usage(format!("cannot connect to Temporal at {}: {e}", config.address)))?;
    Client::new(connection, ClientOptions::new(namespace.to_string()).build()).map_err(usage)
}

fn payloads(input: Option<&Value>) -> Result<Option<Payloads>> {
    input
        .map(|v| {
            v.as_json_payload()
                .map(|p| Payloads { payloads: vec![p] })
                .map_err(|e| usage(format!("cannot encode --input: {e}")))
        })
        .transpose()
}

fn refused(what: &str, run: &Run, s: temporalio_client::tonic::Status) -> ControlError {
    use temporalio_client::tonic::Code;
    match s.code() {
        Code::NotFound => usage(format!(
            "run {} not found in Temporal namespace {} (it may have ended and been removed): {}",
            run.workflow_id,
            run.namespace,
            s.message()
        )),
        _ => ControlError::Refused(format!("{what} {}: {}", run.workflow_id, s.message())),
    }
}

pub(super) async fn signal(args: &TemporalArgs, run: &Run, name: &str, input: Option<&Value>) -> Result<()> {
    let c = client(args, &run.namespace).await?;
    let req = SignalWorkflowExecutionRequest {
        namespace: run.namespace.clone(),
        workflow_execution: Some(WorkflowExecution {
            workflow_id: run.workflow_id.clone(),
            run_id: String::new(),
        }),
        signal_name: name.to_string(),
        input: payloads(input)?,
        identity: format!("kubectl-durablejob@{}", std::process::id()),
        ..Default::default()
    };
    WorkflowService::signal_workflow_execution(&mut c.clone(), req.into_request())
        .await
        .map(|_| ())
        .map_err(|s| refused("cannot signal", run, s))
}

pub(super) async fn query(
    args: &TemporalArgs,
    run: &Run,
    name: &str,
    input: Option<&Value>,
) -> Result<Value> {
    let c = client(args, &run.namespace).await?;
    let req = QueryWorkflowRequest {
        namespace: run.namespace.clone(),
        execution: Some(WorkflowExecution {
            workflow_id: run.workflow_id.clone(),
            run_id: String::new(),
        }),
        query: Some(WorkflowQuery {
            query_type: name.to_string(),
            query_args: payloads(input)?,
            header: None,
        }),
        ..Default::default()
    };
    let resp = WorkflowService::query_workflow(&mut c.clone(), req.into_request())
        .await
        .map_err(|s| refused("cannot query", run, s))?
        .into_inner();
    if let Some(rejected) = resp.query_rejected {
        return Err(ControlError::Refused(format!(
            "run {} rejected the query (workflow status {:?})",
            run.workflow_id, rejected.status
        )));
    }
    let Some(first) = resp.query_result.and_then(|p| p.payloads.into_iter().next()) else {
        return Ok(Value::Null);
    };
    Value::from_json_payload(&first).map_err(|e| usage(format!("the answer is not JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_durablejobs_own_runs_are_signalled_or_queried() {
        let mut dj = DurableJob::test("report");
        let s = dj.status.get_or_insert_with(Default::default);
        s.schedule_id = Some("durablejob:default/report".into());
        s.temporal_namespace = Some("jobs".into());
        let run = Run::of(&dj, "durablejob:default/report-2026-12-01T09:00:00Z").unwrap();
        assert_eq!(run.namespace, "jobs");
        for theirs in [
            "durablejob:default/reporter-2026-12-01T09:00:00Z",
            "durablejob:default/report-x-2026-12-01T09:00:00Z",
            "durablejob:default/report-",
            "durablejob:default/report-2026-12-01T09:00:00Z-forged",
        ] {
            let e = Run::of(&dj, theirs).unwrap_err().to_string();
            assert!(
                e.contains("unknown run") && e.contains("\"durablejob:default/report-<time>\""),
                "{theirs}: {e}"
            );
        }
        dj.status = None;
        assert!(
            Run::of(&dj, "x")
                .unwrap_err()
                .to_string()
                .contains("no Temporal schedule yet")
        );
    }
}
