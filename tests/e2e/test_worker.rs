//! The e2e workflows of the versioned test worker ([`start`]), which plays the user's worker
//! pods kwok cannot run, told what a versioned worker pod is told (testsupport's
//! [`WorkerEnv`]). Its workflow `e2e.Versioned` sleeps the seconds it is given and returns the
//! build id it ran on; `e2e.Gate` passes, unless the build is broken.

use temporalio_sdk::WorkerOptions;
pub use testsupport::worker::{Worker as TestWorker, WorkerEnv};

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

/// Starts polling as version `env.build_id` of `env.deployment_name`, pinning the runs it
/// starts; with `fail`, a broken build whose workflows fail. Returns once the worker is built.
pub fn start(env: WorkerEnv, fail: bool) -> anyhow::Result<TestWorker> {
    let (address, namespace) = (env.address.clone(), env.namespace.clone());
    TestWorker::spawn(&address, &namespace, move || {
        versioned::BUILD_ID.with(|b| *b.borrow_mut() = env.build_id.clone());
        versioned::FAIL.with(|f| f.set(fail));
        let options = WorkerOptions::new(env.task_queue.clone())
            .register_workflow::<versioned::Versioned>()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .register_workflow::<versioned::Gate>()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .build();
        Ok(env.versioned(options))
    })
}
