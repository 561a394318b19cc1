//! `durablejob worker`: the built-in runner. A Temporal worker for workflow `durablejob.run`
//! that runs each DurableJob run as a Kubernetes Job.

pub mod activities;
pub mod job;
pub mod workflow;

use std::{sync::Arc, time::Duration};

use temporalio_client::{Client, ClientOptions, Connection};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};
use tracing::{info, warn};

use crate::temporal::connect::TemporalConfig;

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
    pub task_queue: String,
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

/// Runs the worker until SIGTERM or Ctrl-C, retrying the Temporal connection until it works.
pub async fn run(config: RunnerConfig, kube: kube::Client) -> Result<(), RunnerError> {
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
    let client = Client::new(
        connection,
        ClientOptions::new(config.temporal.namespace.clone()).build(),
    )
    .map_err(|e| RunnerError::Connect {
        address: config.temporal.address.clone(),
        message: e.to_string(),
    })?;
    let runtime = sdk_runtime(config.sdk_metrics_addr)?;
    let activities = activities::JobActivities {
        client: kube,
        poll_interval: config.poll_interval,
        metrics: config.metrics.clone(),
    };
    let options = WorkerOptions::new(config.task_queue.clone())
        .register_workflow::<workflow::DurableJobRun>()
        .map_err(|e| RunnerError::Worker(e.to_string()))?
        .register_activities(activities)
        .graceful_shutdown_period(Duration::from_secs(10))
        .build();
    let mut worker =
        Worker::new(&runtime, client, options).map_err(|e| RunnerError::Worker(e.to_string()))?;
    let stop = Arc::new(worker.shutdown_handle());
    let stopper = stop.clone();
    tokio::spawn(async move {
        crate::signal::shutdown().await;
        info!("shutting down the runner");
        stopper();
    });
    info!(task_queue = %config.task_queue, namespace = %config.temporal.namespace, "runner started");
    worker.run().await.map_err(|e| RunnerError::Worker(e.to_string()))
}
