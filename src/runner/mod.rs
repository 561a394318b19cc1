//! `durablejob runner`: the built-in runner. A Temporal worker for workflow `durablejob.run`
//! that runs each DurableJob run as a Kubernetes Job.

pub mod activities;
pub mod authorize;
pub mod exchange;
pub mod job;
pub mod progress;
pub mod watch;
pub mod workflow;

use std::{sync::Arc, time::Duration};

use temporalio_client::{Client, ClientOptions, Connection};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};
use tracing::{info, warn};

use crate::temporal::connect::{ClientPool, TemporalConfig};
use crate::temporal::sdk::SdkSchedules;

/// Errors that stop the runner.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("cannot connect to Temporal at {address}: {message}")]
    Connect { address: String, message: String },
    #[error("cannot start the Temporal worker: {0}")]
    Worker(String),
}

pub struct RunnerConfig {
    pub temporal: TemporalConfig,
    /// Temporal namespaces to poll; empty means the configured one only.
    pub namespaces: Vec<String>,
    /// Who the runner is in Temporal's history.
    pub identity: String,
    pub task_queue: String,
    /// Namespaces whose Jobs the runner watches; empty means every namespace.
    pub watch_namespaces: Vec<String>,
    /// Runs waiting on their Jobs at once (activity slots), per Temporal namespace.
    pub max_concurrent_activities: usize,
    /// Workflow tasks processed at once, per Temporal namespace.
    pub max_concurrent_workflow_tasks: usize,
    pub heartbeat_timeout: Duration,
    pub poll_interval: Duration,
    pub metrics: Arc<crate::metrics::runner::RunnerMetrics>,
    /// Where the Temporal SDK serves its worker metrics (`temporal_*`); `None` turns them off.
    pub sdk_metrics_addr: Option<std::net::SocketAddr>,
}

/// The SDK runtime, exporting the SDK's worker metrics in Prometheus format when asked.
fn sdk_runtime(addr: Option<std::net::SocketAddr>) -> Result<Runtime, RunnerError> {
    use temporalio_common::telemetry::{
        PrometheusExporterOptions, TelemetryOptions, start_prometheus_metric_exporter,
    };
    let telemetry = match addr {
        None => TelemetryOptions::default(),
        Some(addr) => {
            let exporter = start_prometheus_metric_exporter(
                PrometheusExporterOptions::builder()
                    .socket_addr(addr)
                    .counters_total_suffix(true)
                    .use_seconds_for_durations(true)
                    .unit_suffix(true)
                    .build(),
            )
            .map_err(|e| {
                RunnerError::Worker(format!(
                    "cannot serve the Temporal SDK metrics on {addr} (--sdk-metrics-addr): {e}"
                ))
            })?;
            info!(address = %exporter.bound_addr, "serving Temporal SDK worker metrics on /metrics");
            TelemetryOptions::builder()
                .metrics(exporter.meter as Arc<_>)
                .build()
        }
    };
    let options = temporalio_sdk::runtime::RuntimeOptions::builder()
        .telemetry_options(telemetry)
        .build()
        .map_err(RunnerError::Worker)?;
    Runtime::from_current_tokio(options).map_err(|e| RunnerError::Worker(e.to_string()))
}

/// Fixed slot counts: a run holds an activity slot while it waits for its Job (most of its
/// life), so the activity slots bound the runs in flight; workflow tasks are short.
fn slots(workflow_tasks: usize, activities: usize) -> temporalio_sdk::runtime::worker_tuner::WorkerTuner {
    use temporalio_sdk::runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder};
    TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(workflow_tasks))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(activities))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(workflow_tasks))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(1))
        .build()
        .into()
}

/// Waits until every Temporal namespace the runner serves answers DescribeNamespace (retrying
/// every 5 s and saying which does not), so `/readyz` reports a runner that can take runs.
async fn wait_for_namespaces(clients: &[(String, Client)]) {
    use temporalio_client::{grpc::WorkflowService, tonic::IntoRequest};
    use temporalio_common::protos::temporal::api::workflowservice::v1::DescribeNamespaceRequest;
    for (namespace, client) in clients {
        loop {
            let request = DescribeNamespaceRequest {
                namespace: namespace.clone(),
                ..Default::default()
            };
            match WorkflowService::describe_namespace(&mut client.clone(), request.into_request()).await {
                Ok(_) => break,
                Err(e) => {
                    warn!(temporal_namespace = %namespace, error = %e.message(), "Temporal namespace does not answer yet; not ready, retrying in 5s");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            }
        }
    }
}

/// Runs the worker until SIGTERM or Ctrl-C, retrying the Temporal connection until it works;
/// `ready` is set once every Temporal namespace it serves answers.
pub async fn run(
    config: RunnerConfig,
    kube: kube::Client,
    ready: crate::health::Readiness,
) -> Result<(), RunnerError> {
    workflow::set_timeouts(workflow::RunnerTimeouts {
        heartbeat: config.heartbeat_timeout,
    });
    let connection = loop {
        match Connection::connect(config.temporal.options.clone()).await {
            Ok(c) => break c,
            Err(e) => {
                warn!(address = %config.temporal.address, error = %e, "Temporal is not reachable yet; retrying in 5s");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    () = crate::signal::shutdown() => return Ok(()),
                }
            }
        }
    };
    let runtime = sdk_runtime(config.sdk_metrics_addr)?;
    let namespaces = if config.namespaces.is_empty() {
        vec![config.temporal.namespace.clone()]
    } else {
        config.namespaces.clone()
    };
    let schedules = Arc::new(SdkSchedules::new(
        Arc::new(ClientPool::new(config.temporal.clone())),
        config.identity.clone(),
        None,
    ));
    let scopes: Vec<Option<String>> = if config.watch_namespaces.is_empty() {
        vec![None]
    } else {
        config.watch_namespaces.iter().cloned().map(Some).collect()
    };
    let job_watch = watch::JobWatch::start(&kube, &scopes);
    let mut workers = Vec::with_capacity(namespaces.len());
    let mut clients = Vec::with_capacity(namespaces.len());
    for namespace in &namespaces {
        let client =
            Client::new(connection.clone(), ClientOptions::new(namespace.clone()).build()).map_err(|e| {
                RunnerError::Connect {
                    address: config.temporal.address.clone(),
                    message: e.to_string(),
                }
            })?;
        clients.push((namespace.clone(), client.clone()));
        let activities = activities::JobActivities {
            client: kube.clone(),
            temporal_namespace: namespace.clone(),
            schedules: schedules.clone(),
            watch: job_watch.clone(),
            poll_interval: config.poll_interval,
            metrics: config.metrics.clone(),
            progress: Some(progress::Reporter {
                client: client.clone(),
                identity: config.identity.clone(),
            }),
        };
        let options = WorkerOptions::new(config.task_queue.clone())
            .register_workflow::<workflow::DurableJobRun>()
            .map_err(|e| RunnerError::Worker(e.to_string()))?
            .register_activities(activities)
            .tuner(slots(
                config.max_concurrent_workflow_tasks,
                config.max_concurrent_activities,
            ))
            // every waiting run's workflow stays cached: no replay when its Job finishes
            .max_cached_workflows(config.max_concurrent_activities.max(1000))
            .graceful_shutdown_period(Duration::from_secs(10))
            .build();
        let worker = Worker::new(&runtime, client, options)
            .map_err(|e| RunnerError::Worker(format!("namespace {namespace}: {e}")))?;
        workers.push(worker);
    }
    let stops: Vec<_> = workers.iter().map(|w| Arc::new(w.shutdown_handle())).collect();
    tokio::spawn(async move {
        crate::signal::shutdown().await;
        info!("shutting down the runner");
        for stop in stops {
            stop();
        }
    });
    info!(task_queue = %config.task_queue, namespaces = ?namespaces, "runner started");
    let readiness = async {
        wait_for_namespaces(&clients).await;
        info!("every Temporal namespace answers; ready");
        ready.set_ready();
    };
    let (results, ()) = tokio::join!(
        futures::future::join_all(workers.iter_mut().map(|w| w.run())),
        readiness
    );
    for (namespace, r) in namespaces.iter().zip(results) {
        r.map_err(|e| RunnerError::Worker(format!("namespace {namespace}: {e}")))?;
    }
    Ok(())
}
