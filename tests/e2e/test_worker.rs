//! Test workers: real Temporal SDK workers on threads of their own ([`TestWorker::spawn`]),
//! and the versioned one ([`TestWorker::start`]), told what a versioned worker pod is told
//! (address, namespace, task queue, deployment name, build id). It plays the user's worker
//! pods, which kwok cannot run. Its workflow `e2e.Versioned` sleeps the seconds it is given
//! and returns the build id it ran on.

use std::{str::FromStr, time::Duration};

use temporalio_common::worker::{VersioningBehavior, WorkerDeploymentOptions, WorkerDeploymentVersion};
use temporalio_sdk::{Worker, WorkerOptions};

/// What a versioned worker reads from its environment.
#[derive(Debug, Clone)]
pub struct WorkerEnv {
    pub address: String,
    pub namespace: String,
    pub task_queue: String,
    pub deployment_name: String,
    pub build_id: String,
    /// Its workflows fail (a broken build).
    pub fail: bool,
}

pub mod versioned {
    use std::time::Duration;

    use temporalio_macros::{workflow, workflow_methods};
    use temporalio_sdk::{WorkflowContext, WorkflowResult};

    thread_local! {
        /// The build id of the worker whose thread this is (each worker has a thread and a
        /// single-threaded runtime of its own, so its workflows run here).
        pub static BUILD_ID: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        /// Whether this worker's workflows fail.
        pub static FAIL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    #[workflow]
    #[derive(Default)]
    pub struct Versioned;

    #[workflow_methods]
    impl Versioned {
        #[run(name = "e2e.Versioned")]
        pub async fn run(ctx: &mut WorkflowContext<Self>, seconds: u64) -> WorkflowResult<String> {
            ctx.timer(Duration::from_secs(seconds)).await;
            let build_id = BUILD_ID.with(|b| b.borrow().clone());
            if FAIL.with(|f| f.get()) {
                let broken = format!("build {build_id} is broken");
                return Err(temporalio_sdk::ApplicationFailure::non_retryable(broken).into());
            }
            Ok(build_id)
        }
    }

    /// A rollout's gate: passes on a sound build, fails on a broken one; no input.
    #[workflow]
    #[derive(Default)]
    pub struct Gate;

    #[workflow_methods]
    impl Gate {
        #[run(name = "e2e.Gate")]
        pub async fn run(_ctx: &mut WorkflowContext<Self>) -> WorkflowResult<String> {
            let build_id = BUILD_ID.with(|b| b.borrow().clone());
            if FAIL.with(|f| f.get()) {
                let broken = format!("gate: build {build_id} is broken");
                return Err(temporalio_sdk::ApplicationFailure::non_retryable(broken).into());
            }
            Ok(build_id)
        }
    }
}

/// A running test worker; stopped when dropped.
pub struct TestWorker {
    stop: Option<Box<dyn Fn() + Send>>,
    /// The worker's end, sent by its thread.
    ended: std::sync::mpsc::Receiver<anyhow::Result<()>>,
}

/// How long a stopped worker may take to end (a poll in flight is answered or cancelled).
const STOP_GRACE: Duration = Duration::from_secs(15);

impl TestWorker {
    /// Starts polling as version `env.build_id` of `env.deployment_name`, pinning the runs it
    /// starts; returns once the worker is built (it polls right after).
    pub fn start(env: WorkerEnv) -> anyhow::Result<Self> {
        let (address, namespace) = (env.address.clone(), env.namespace.clone());
        Self::spawn(&address, &namespace, move || {
            versioned::BUILD_ID.with(|b| *b.borrow_mut() = env.build_id.clone());
            versioned::FAIL.with(|f| f.set(env.fail));
            let version = WorkerDeploymentVersion::builder()
                .deployment_name(env.deployment_name.clone())
                .build_id(env.build_id.clone())
                .build();
            Ok(WorkerOptions::new(env.task_queue.clone())
                .deployment_options(
                    WorkerDeploymentOptions::new(version)
                        .use_worker_versioning(true)
                        .default_versioning_behavior(VersioningBehavior::Pinned)
                        .build(),
                )
                .register_workflow::<versioned::Versioned>()
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .register_workflow::<versioned::Gate>()
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .graceful_shutdown_period(Duration::from_secs(1))
                .build())
        })
    }

    /// Starts a worker in `namespace` with the options `options` makes (on the worker's
    /// thread); returns once it is built.
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
        match stop_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(stop) => Ok(Self {
                stop: Some(stop),
                ended,
            }),
            Err(_) => match ended.try_recv() {
                Ok(Err(e)) => anyhow::bail!("the test worker did not start: {e:#}"),
                _ => anyhow::bail!("the test worker did not start within 30 s"),
            },
        }
    }

    /// Stops polling and waits (boundedly) for the worker to end.
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
            Err(_) => anyhow::bail!("the test worker did not end within {STOP_GRACE:?} of its stop"),
        }
    }
}

impl Drop for TestWorker {
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
        let mut worker = Worker::new(&runtime, client, options()?).map_err(|e| anyhow::anyhow!("{e}"))?;
        let stop = worker.shutdown_handle();
        let _ = stop_tx.send(Box::new(stop));
        worker
            .run()
            .await
            .map_err(|e| anyhow::anyhow!("test worker in {namespace}: {e}"))
    })
}
