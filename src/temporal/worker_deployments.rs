//! Temporal's Worker Deployments (Worker Deployment Versioning), reduced to what the operator
//! uses for a user worker's versions: describe one deployment, make a version current, delete
//! a version and the deployment. [`WorkerDeployments`] is the trait the controller uses; it is
//! implemented on the SDK's raw gRPC calls here.

use std::future::Future;

use chrono::{DateTime, Utc};
use temporalio_client::{NamespacedClient, grpc::WorkflowService, tonic::IntoRequest};
use temporalio_common::protos::temporal::api::{
    common::v1::WorkflowType,
    deployment::v1::{WorkerDeploymentInfo, WorkerDeploymentVersion},
    enums::v1::{VersionDrainageStatus, WorkflowExecutionStatus},
    taskqueue::v1::TaskQueue,
    workflow::v1::{VersioningOverride, versioning_override},
    workflowservice::v1::{
        DeleteWorkerDeploymentRequest, DeleteWorkerDeploymentVersionRequest, DescribeWorkerDeploymentRequest,
        SetWorkerDeploymentCurrentVersionRequest, SetWorkerDeploymentRampingVersionRequest,
        StartWorkflowExecutionRequest,
    },
};

use super::TemporalError;
use super::sdk::{SdkSchedules, from_proto_time};

/// How far a version that is no longer current has drained of the pinned runs started on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drainage {
    /// Current, ramping, or never routed to: Temporal does not track it.
    NotDraining,
    /// Pinned runs that started on it may still be open.
    Draining,
    /// No open pinned run uses it any more.
    Drained,
}

/// One version of a Worker Deployment, as Temporal lists it (a version is listed once a worker
/// with its build id has polled).
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedVersion {
    pub build_id: String,
    pub drainage: Drainage,
    /// When Temporal last saw the drainage change.
    pub drainage_changed: Option<DateTime<Utc>>,
    pub created: Option<DateTime<Utc>>,
}

/// A Worker Deployment as Temporal describes it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ObservedWorkerDeployment {
    /// The build id new runs go to; `None`: unversioned workers get them.
    pub current: Option<String>,
    /// The build id a share of new runs goes to, and the share (0-100).
    pub ramping: Option<(String, f32)>,
    /// When the ramp's percentage last changed.
    pub ramping_since: Option<DateTime<Utc>>,
    /// When the current version, and the ramping one, became so.
    pub current_since: Option<DateTime<Utc>>,
    pub ramp_started: Option<DateTime<Utc>>,
    pub versions: Vec<ObservedVersion>,
    /// Guards a routing change against a concurrent one.
    pub conflict_token: Vec<u8>,
}

impl ObservedWorkerDeployment {
    pub fn version(&self, build_id: &str) -> Option<&ObservedVersion> {
        self.versions.iter().find(|v| v.build_id == build_id)
    }

    /// Since when new runs go (in full or in part) to `build_id`; `None` when they do not.
    pub fn routed_since(&self, build_id: &str) -> Option<DateTime<Utc>> {
        if self.current.as_deref() == Some(build_id) {
            return self.current_since;
        }
        self.ramping
            .as_ref()
            .filter(|(b, _)| b == build_id)
            .and(self.ramp_started.or(self.ramping_since))
    }
}

/// How a workflow the operator started (a rollout's gate) stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateOutcome {
    Running,
    Succeeded,
    /// Failed, timed out, canceled or terminated: the status says which.
    Failed(String),
}

/// The Worker Deployment calls the operator makes. `namespace` is the Temporal namespace,
/// `name` the deployment name.
pub trait WorkerDeployments: Send + Sync + 'static {
    /// `Ok(None)` when Temporal has no such deployment (no versioned worker polled yet).
    fn describe_deployment(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<Option<ObservedWorkerDeployment>, TemporalError>> + Send;

    /// Routes new runs to `build_id`, guarded by the token of the description it was decided on.
    fn set_current_version(
        &self,
        namespace: &str,
        name: &str,
        build_id: &str,
        conflict_token: &[u8],
    ) -> impl Future<Output = Result<(), TemporalError>> + Send;

    /// Sends `percentage` of new runs to `build_id` (an empty build id with 0: no ramp),
    /// guarded like [`WorkerDeployments::set_current_version`].
    fn set_ramping_version(
        &self,
        namespace: &str,
        name: &str,
        build_id: &str,
        percentage: f32,
        conflict_token: &[u8],
    ) -> impl Future<Output = Result<(), TemporalError>> + Send;

    /// Deletes a version that is neither current nor ramping and has no pollers; a version
    /// already gone is not an error. Temporal refuses a version still draining unless
    /// `skip_drainage` (the DurableJob itself is going).
    fn delete_version(
        &self,
        namespace: &str,
        name: &str,
        build_id: &str,
        skip_drainage: bool,
    ) -> impl Future<Output = Result<(), TemporalError>> + Send;

    /// Starts `workflow_type` as `workflow_id` on `task_queue`, pinned to version `build_id` of
    /// deployment `name` whatever the routing; one already started is not an error.
    fn start_pinned(
        &self,
        namespace: &str,
        workflow_id: &str,
        workflow_type: &str,
        task_queue: &str,
        name: &str,
        build_id: &str,
    ) -> impl Future<Output = Result<(), TemporalError>> + Send;

    /// How workflow `workflow_id` stands; `Ok(None)` when there is none.
    fn gate_outcome(
        &self,
        namespace: &str,
        workflow_id: &str,
    ) -> impl Future<Output = Result<Option<GateOutcome>, TemporalError>> + Send;

    /// Deletes a deployment that has no versions left; one already gone is not an error.
    fn delete_deployment(
        &self,
        namespace: &str,
        name: &str,
    ) -> impl Future<Output = Result<(), TemporalError>> + Send;
}

/// The operator's picture of a described deployment.
pub(super) fn observed_deployment(
    conflict_token: Vec<u8>,
    info: &WorkerDeploymentInfo,
) -> ObservedWorkerDeployment {
    let routing = info.routing_config.clone().unwrap_or_default();
    let build_id = |v: Option<WorkerDeploymentVersion>| v.map(|v| v.build_id).filter(|b| !b.is_empty());
    let versions = info
        .version_summaries
        .iter()
        .filter_map(|s| {
            let build_id = s.deployment_version.as_ref()?.build_id.clone();
            let info = s.drainage_info.unwrap_or_default();
            let status =
                VersionDrainageStatus::try_from(info.status).unwrap_or(VersionDrainageStatus::Unspecified);
            Some(ObservedVersion {
                build_id,
                drainage: match status {
                    VersionDrainageStatus::Draining => Drainage::Draining,
                    VersionDrainageStatus::Drained => Drainage::Drained,
                    VersionDrainageStatus::Unspecified => Drainage::NotDraining,
                },
                drainage_changed: info.last_changed_time.as_ref().and_then(from_proto_time),
                created: s.create_time.as_ref().and_then(from_proto_time),
            })
        })
        .collect();
    ObservedWorkerDeployment {
        current: build_id(routing.current_deployment_version),
        ramping: build_id(routing.ramping_deployment_version)
            .map(|b| (b, routing.ramping_version_percentage)),
        ramping_since: routing
            .ramping_version_percentage_changed_time
            .as_ref()
            .and_then(from_proto_time),
        current_since: routing
            .current_version_changed_time
            .as_ref()
            .and_then(from_proto_time),
        ramp_started: routing
            .ramping_version_changed_time
            .as_ref()
            .and_then(from_proto_time),
        versions,
        conflict_token,
    }
}

impl WorkerDeployments for SdkSchedules {
    async fn describe_deployment(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<ObservedWorkerDeployment>, TemporalError> {
        self.rpc(namespace, "describe_worker_deployment", Some(None), |mut c| {
            let req = DescribeWorkerDeploymentRequest {
                namespace: c.namespace(),
                deployment_name: name.to_string(),
            };
            async move {
                let resp = WorkflowService::describe_worker_deployment(&mut c, req.into_request())
                    .await?
                    .into_inner();
                let info = resp.worker_deployment_info.unwrap_or_default();
                Ok(Some(observed_deployment(resp.conflict_token, &info)))
            }
        })
        .await
    }

    async fn set_current_version(
        &self,
        namespace: &str,
        name: &str,
        build_id: &str,
        conflict_token: &[u8],
    ) -> Result<(), TemporalError> {
        self.rpc(namespace, "set_current_version", None, |mut c| {
            let req = SetWorkerDeploymentCurrentVersionRequest {
                namespace: c.namespace(),
                deployment_name: name.to_string(),
                build_id: build_id.to_string(),
                conflict_token: conflict_token.to_vec(),
                identity: self.identity.clone(),
                ..Default::default()
            };
            async move {
                WorkflowService::set_worker_deployment_current_version(&mut c, req.into_request()).await?;
                Ok(())
            }
        })
        .await
    }

    async fn set_ramping_version(
        &self,
        namespace: &str,
        name: &str,
        build_id: &str,
        percentage: f32,
        conflict_token: &[u8],
    ) -> Result<(), TemporalError> {
        self.rpc(namespace, "set_ramping_version", None, |mut c| {
            let req = SetWorkerDeploymentRampingVersionRequest {
                namespace: c.namespace(),
                deployment_name: name.to_string(),
                build_id: build_id.to_string(),
                percentage,
                conflict_token: conflict_token.to_vec(),
                identity: self.identity.clone(),
                ..Default::default()
            };
            async move {
                WorkflowService::set_worker_deployment_ramping_version(&mut c, req.into_request()).await?;
                Ok(())
            }
        })
        .await
    }

    async fn delete_version(
        &self,
        namespace: &str,
        name: &str,
        build_id: &str,
        skip_drainage: bool,
    ) -> Result<(), TemporalError> {
        self.rpc(namespace, "delete_version", Some(()), |mut c| {
            let req = DeleteWorkerDeploymentVersionRequest {
                namespace: c.namespace(),
                deployment_version: Some(WorkerDeploymentVersion {
                    build_id: build_id.to_string(),
                    deployment_name: name.to_string(),
                }),
                skip_drainage,
                identity: self.identity.clone(),
                ..Default::default()
            };
            async move {
                WorkflowService::delete_worker_deployment_version(&mut c, req.into_request()).await?;
                Ok(())
            }
        })
        .await
    }

    async fn start_pinned(
        &self,
        namespace: &str,
        workflow_id: &str,
        workflow_type: &str,
        task_queue: &str,
        name: &str,
        build_id: &str,
    ) -> Result<(), TemporalError> {
        let started = self
            .rpc(namespace, "start_gate", None, |mut c| {
                let req = StartWorkflowExecutionRequest {
                    namespace: c.namespace(),
                    workflow_id: workflow_id.to_string(),
                    workflow_type: Some(WorkflowType {
                        name: workflow_type.to_string(),
                    }),
                    task_queue: Some(TaskQueue {
                        name: task_queue.to_string(),
                        ..Default::default()
                    }),
                    identity: self.identity.clone(),
                    request_id: workflow_id.to_string(),
                    versioning_override: Some(VersioningOverride {
                        r#override: Some(versioning_override::Override::Pinned(
                            versioning_override::PinnedOverride {
                                behavior: versioning_override::PinnedOverrideBehavior::Pinned as i32,
                                version: Some(WorkerDeploymentVersion {
                                    build_id: build_id.to_string(),
                                    deployment_name: name.to_string(),
                                }),
                            },
                        )),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                async move {
                    WorkflowService::start_workflow_execution(&mut c, req.into_request()).await?;
                    Ok(())
                }
            })
            .await;
        match started {
            // started before (its id is the version's and the step's)
            Err(TemporalError::Conflict(_)) => Ok(()),
            other => other,
        }
    }

    async fn gate_outcome(
        &self,
        namespace: &str,
        workflow_id: &str,
    ) -> Result<Option<GateOutcome>, TemporalError> {
        let Some(info) = self
            .describe_execution(namespace, "describe_gate", workflow_id)
            .await?
        else {
            return Ok(None);
        };
        let status =
            WorkflowExecutionStatus::try_from(info.status).unwrap_or(WorkflowExecutionStatus::Unspecified);
        Ok(Some(match status {
            WorkflowExecutionStatus::Running | WorkflowExecutionStatus::Unspecified => GateOutcome::Running,
            WorkflowExecutionStatus::Completed => GateOutcome::Succeeded,
            other => GateOutcome::Failed(other.as_str_name().to_string()),
        }))
    }

    async fn delete_deployment(&self, namespace: &str, name: &str) -> Result<(), TemporalError> {
        self.rpc(namespace, "delete_worker_deployment", Some(()), |mut c| {
            let req = DeleteWorkerDeploymentRequest {
                namespace: c.namespace(),
                deployment_name: name.to_string(),
                identity: self.identity.clone(),
            };
            async move {
                WorkflowService::delete_worker_deployment(&mut c, req.into_request()).await?;
                Ok(())
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_common::protos::temporal::api::deployment::v1::{
        RoutingConfig, VersionDrainageInfo, worker_deployment_info::WorkerDeploymentVersionSummary,
    };

    fn version(build_id: &str) -> Option<WorkerDeploymentVersion> {
        Some(WorkerDeploymentVersion {
            build_id: build_id.into(),
            deployment_name: "apps/report".into(),
        })
    }

    fn summary(build_id: &str, drainage: VersionDrainageStatus) -> WorkerDeploymentVersionSummary {
        WorkerDeploymentVersionSummary {
            deployment_version: version(build_id),
            drainage_info: Some(VersionDrainageInfo {
                status: drainage as i32,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_description_gives_routing_and_each_versions_drainage() {
        let info = WorkerDeploymentInfo {
            name: "apps/report".into(),
            version_summaries: vec![
                summary("v1", VersionDrainageStatus::Drained),
                summary("v2", VersionDrainageStatus::Draining),
                summary("v3", VersionDrainageStatus::Unspecified),
            ],
            routing_config: Some(RoutingConfig {
                current_deployment_version: version("v3"),
                ramping_deployment_version: version("v4"),
                ramping_version_percentage: 25.0,
                ..Default::default()
            }),
            ..Default::default()
        };
        let o = observed_deployment(vec![7], &info);
        assert_eq!(o.current.as_deref(), Some("v3"));
        assert_eq!(o.ramping, Some(("v4".to_string(), 25.0)));
        assert_eq!(o.conflict_token, vec![7]);
        let drainage: Vec<_> = o
            .versions
            .iter()
            .map(|v| (v.build_id.as_str(), v.drainage))
            .collect();
        assert_eq!(
            drainage,
            vec![
                ("v1", Drainage::Drained),
                ("v2", Drainage::Draining),
                ("v3", Drainage::NotDraining)
            ]
        );
        assert_eq!(o.version("v2").map(|v| v.drainage), Some(Drainage::Draining));
    }

    #[test]
    fn no_routing_means_unversioned_workers_get_the_runs() {
        let o = observed_deployment(vec![], &WorkerDeploymentInfo::default());
        assert_eq!((o.current, o.ramping), (None, None));
        let empty = WorkerDeploymentInfo {
            routing_config: Some(RoutingConfig {
                current_deployment_version: Some(WorkerDeploymentVersion::default()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(observed_deployment(vec![], &empty).current, None);
    }
}
