//! The worker pods kwok cannot run, played by real Temporal workers: [`play`] lists the
//! Deployments labelled `durablejob.dev/build-id` every two seconds and keeps one worker per
//! Ready replica, each told exactly what that Deployment's pods are told (TEMPORAL_ADDRESS,
//! TEMPORAL_NAMESPACE, TEMPORAL_TASK_QUEUE, TEMPORAL_DEPLOYMENT_NAME,
//! TEMPORAL_WORKER_BUILD_ID), stopping them when the Deployment scales down or goes. The
//! playground runs it (the `worker-pods` binary) and so does an e2e scenario.
//!
//! The workers serve the workflows of the sample worker (config/samples/user-worker.yaml):
//! `InvoiceSync` (a few seconds; returns the build id it ran on) and its gate
//! `InvoiceSyncSmokeTest`.

use std::{collections::BTreeMap, future::Future, time::Duration};

use k8s_openapi::api::apps::v1::Deployment;
use kube::{Api, ResourceExt, api::ListParams};
use temporalio_sdk::WorkerOptions;

use crate::worker::{Worker, WorkerEnv};

/// The label the operator puts on each version's Deployment.
const BUILD_ID_LABEL: &str = "durablejob.dev/build-id";
/// How often the Deployments are listed.
const EVERY: Duration = Duration::from_secs(2);
/// At most this many workers per Deployment, whatever its replicas.
const MAX_PER_DEPLOYMENT: usize = 4;

mod invoices {
    use std::time::Duration;

    use temporalio_macros::{workflow, workflow_methods};
    use temporalio_sdk::{WorkflowContext, WorkflowResult};

    thread_local! {
        /// The build id of the worker whose thread this is (each worker has a thread and a
        /// single-threaded runtime of its own, so its workflows run here).
        pub static BUILD_ID: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }

    fn build_id() -> String {
        BUILD_ID.with(|b| b.borrow().clone())
    }

    /// The sample's workflow: five seconds of work, then what it ran on.
    #[workflow]
    #[derive(Default)]
    pub struct InvoiceSync;

    #[workflow_methods]
    impl InvoiceSync {
        #[run(name = "InvoiceSync")]
        pub async fn run(
            ctx: &mut WorkflowContext<Self>,
            input: serde_json::Value,
        ) -> WorkflowResult<serde_json::Value> {
            ctx.timer(Duration::from_secs(5)).await;
            Ok(serde_json::json!({"buildId": build_id(), "input": input, "invoices": 42}))
        }
    }

    /// The sample's gate: passes.
    #[workflow]
    #[derive(Default)]
    pub struct InvoiceSyncSmokeTest;

    #[workflow_methods]
    impl InvoiceSyncSmokeTest {
        #[run(name = "InvoiceSyncSmokeTest")]
        pub async fn run(_ctx: &mut WorkflowContext<Self>) -> WorkflowResult<String> {
            Ok(format!("smoke test passed on {}", build_id()))
        }
    }
}

/// The workers playing one Deployment's Ready replicas.
struct Pods {
    uid: String,
    workers: Vec<Worker>,
}

/// Plays the worker pods of the Deployments `api` lists until `until` resolves, then stops
/// every worker. Needs a multi-threaded runtime (starting a worker blocks).
pub async fn play(api: Api<Deployment>, until: impl Future<Output = ()>) {
    let mut pods: BTreeMap<String, Pods> = BTreeMap::new();
    tokio::pin!(until);
    loop {
        match api.list(&ListParams::default().labels(BUILD_ID_LABEL)).await {
            Ok(list) => tokio::task::block_in_place(|| follow(&mut pods, &list.items)),
            Err(e) => eprintln!("worker-pods: listing Deployments: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = &mut until => break,
        }
    }
    tokio::task::block_in_place(|| follow(&mut pods, &[]));
}

/// Starts and stops workers so each Deployment in `deployments` has one per Ready replica and
/// the others none.
fn follow(pods: &mut BTreeMap<String, Pods>, deployments: &[Deployment]) {
    let mut wanted: BTreeMap<String, (&Deployment, usize)> = BTreeMap::new();
    for d in deployments {
        let ready = d.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0);
        let key = format!("{}/{}", d.namespace().unwrap_or_default(), d.name_any());
        wanted.insert(
            key,
            (d, usize::try_from(ready).unwrap_or(0).min(MAX_PER_DEPLOYMENT)),
        );
    }
    // a Deployment that went, or was made again under the same name, loses its workers
    pods.retain(|key, p| {
        let same = wanted
            .get(key)
            .is_some_and(|(d, _)| d.uid().as_deref() == Some(&p.uid));
        if !same {
            stop_all(key, std::mem::take(&mut p.workers));
        }
        same
    });
    for (key, (d, ready)) in wanted {
        let p = pods.entry(key.clone()).or_insert_with(|| Pods {
            uid: d.uid().unwrap_or_default(),
            workers: Vec::new(),
        });
        if p.workers.len() > ready {
            let extra = p.workers.split_off(ready);
            stop_all(&key, extra);
        }
        while p.workers.len() < ready {
            match start(d) {
                Ok(w) => p.workers.push(w),
                Err(e) => {
                    eprintln!("worker-pods: {key}: {e:#}");
                    break;
                }
            }
        }
    }
}

fn start(d: &Deployment) -> anyhow::Result<Worker> {
    let env = WorkerEnv::of(d)?;
    let (address, namespace) = (env.address.clone(), env.namespace.clone());
    let what = format!(
        "{}/{}: a worker polls {} as build {} of {}",
        d.namespace().unwrap_or_default(),
        d.name_any(),
        env.task_queue,
        env.build_id,
        env.deployment_name
    );
    let w = Worker::spawn(&address, &namespace, move || {
        invoices::BUILD_ID.with(|b| *b.borrow_mut() = env.build_id.clone());
        let options = WorkerOptions::new(env.task_queue.clone())
            .register_workflow::<invoices::InvoiceSync>()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .register_workflow::<invoices::InvoiceSyncSmokeTest>()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .build();
        Ok(env.versioned(options))
    })?;
    println!("worker-pods: {what}");
    Ok(w)
}

fn stop_all(key: &str, workers: Vec<Worker>) {
    for w in workers {
        match w.stop() {
            Ok(()) => println!("worker-pods: {key}: a worker stopped"),
            Err(e) => eprintln!("worker-pods: {key}: {e:#}"),
        }
    }
}
