//! Real Temporal SDK workers standing in for the worker pods kwok cannot run: each on a thread
//! of its own ([`Worker::spawn`]), and what a versioned worker pod of a Deployment the operator
//! made is told ([`WorkerEnv::of`]).

use std::{collections::BTreeMap, str::FromStr, time::Duration};

use anyhow::Context;
use k8s_openapi::api::apps::v1::Deployment;
use temporalio_common::worker::{VersioningBehavior, WorkerDeploymentOptions, WorkerDeploymentVersion};
use temporalio_sdk::WorkerOptions;

/// What a versioned worker reads from its environment (docs/workers.md).
#[derive(Debug, Clone)]
pub struct WorkerEnv {
    pub address: String,
    pub namespace: String,
    pub task_queue: String,
    pub deployment_name: String,
    pub build_id: String,
}

impl WorkerEnv {
    /// What a pod of the version Deployment `d` is told: its first container's env.
    pub fn of(d: &Deployment) -> anyhow::Result<Self> {
        let pod = d.spec.template.spec.as_ref();
        let c = pod
            .and_then(|p| p.containers.first())
            .context("a Deployment with a container")?;
        let env: BTreeMap<String, String> = c
            .env
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.name, e.value.unwrap_or_default()))
            .collect();
        let get = |n: &str| env.get(n).cloned().with_context(|| format!("{n} in {env:?}"));
        Ok(Self {
            address: get("TEMPORAL_ADDRESS")?,
            namespace: get("TEMPORAL_NAMESPACE")?,
            task_queue: get("TEMPORAL_TASK_QUEUE")?,
            deployment_name: get("TEMPORAL_DEPLOYMENT_NAME")?,
            build_id: get("TEMPORAL_WORKER_BUILD_ID")?,
        })
    }

    /// `options` (the caller's task queue and workflows) made to poll as this version,
    /// pinning the runs they start, as a worker that reads the variables does.
    pub fn versioned(&self, mut options: WorkerOptions) -> WorkerOptions {
        let version = WorkerDeploymentVersion::builder()
            .deployment_name(self.deployment_name.clone())
            .build_id(self.build_id.clone())
            .build();
        options.deployment_options = WorkerDeploymentOptions::new(version)
            .use_worker_versioning(true)
            .default_versioning_behavior(VersioningBehavior::Pinned)
            .build();
        options.graceful_shutdown_period = Some(Duration::from_secs(1));
        options
    }
}

/// A running worker; stopped when dropped.
pub struct Worker {
    stop: Option<Box<dyn Fn() + Send>>,
    /// The worker's end, sent by its thread.
    ended: std::sync::mpsc::Receiver<anyhow::Result<()>>,
}

/// How long a stopped worker may take to end (a poll in flight is answered or cancelled).
const STOP_GRACE: Duration = Duration::from_secs(15);

/// How long a worker may take to connect and be built.
const START_WITHIN: Duration = Duration::from_secs(30);

impl Worker {
    /// Starts a worker in Temporal namespace `namespace` at `address` with the options
    /// `options` makes (on the worker's thread); returns once it is built (it polls right
    /// after). Blocks: call it from a blocking context.
    pub fn spawn<F>(address: &str, namespace: &str, options: F) -> anyhow::Result<Self>
    where
        F: FnOnce() -> anyhow::Result<WorkerOptions> + Send + 'static,
    {
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<Box<dyn Fn() + Send>>();
        let (ended_tx, ended) = std::sync::mpsc::channel();
        let (address, namespace) = (address.to_string(), namespace.to_string());
        // the worker's future is not `Send`: a thread with a runtime of its own runs it
        std::thread::spawn(move || {
            let _ = ended_tx.send(run(&address, &namespace, options, stop_tx));
        });
        match stop_rx.recv_timeout(START_WITHIN) {
            Ok(stop) => Ok(Self {
                stop: Some(stop),
                ended,
            }),
            Err(_) => match ended.try_recv() {
                Ok(Err(e)) => anyhow::bail!("the worker did not start: {e:#}"),
                _ => anyhow::bail!("the worker did not start within {START_WITHIN:?}"),
            },
        }
    }

    /// Stops polling and waits (boundedly) for the worker to end. Blocks.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> anyhow::Result<()> {
        let Some(stop) = self.stop.take() else {
            return Ok(());
        };
        stop();
        match self.ended.recv_timeout(STOP_GRACE) {
            Ok(r) => r,
            Err(_) => anyhow::bail!("the worker did not end within {STOP_GRACE:?} of its stop"),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.shut_down();
    }
}

/// The worker's thread: connect, build the worker, hand out its stop, run.
fn run<F>(
    address: &str,
    namespace: &str,
    options: F,
    stop_tx: std::sync::mpsc::Sender<Box<dyn Fn() + Send>>,
) -> anyhow::Result<()>
where
    F: FnOnce() -> anyhow::Result<WorkerOptions>,
{
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let conn = temporalio_client::Connection::connect(
            temporalio_client::ConnectionOptions::new(temporalio_client::Url::from_str(&format!(
                "http://{address}"
            ))?)
            .build(),
        )
        .await?;
        let client = temporalio_client::Client::new(
            conn,
            temporalio_client::ClientOptions::new(namespace.to_string()).build(),
        )?;
        let runtime = temporalio_sdk::Runtime::from_current_tokio(Default::default())?;
        let mut worker =
            temporalio_sdk::Worker::new(&runtime, client, options()?).map_err(|e| anyhow::anyhow!("{e}"))?;
        let stop = worker.shutdown_handle();
        let _ = stop_tx.send(Box::new(stop));
        worker
            .run()
            .await
            .map_err(|e| anyhow::anyhow!("worker in {namespace}: {e}"))
    })
}
