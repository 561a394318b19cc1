//! Issue 23, versioned workers: the operator's Worker Deployment calls against the real dev
//! server, with real versioned workers (tests/e2e/test_worker.rs) polling as the versions.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, ensure};
use durablejob::temporal::TemporalError;
use durablejob::temporal::connect::ClientPool;
use durablejob::temporal::sdk::SdkSchedules;
use durablejob::temporal::worker_deployments::{Drainage, ObservedWorkerDeployment, WorkerDeployments};

use crate::Shared;
use crate::env::wait_for;
use crate::temporal;
use crate::test_worker::{TestWorker, WorkerEnv};

scenarios!(a_version_that_polls_is_made_current_and_the_one_before_drains,);

const T: Duration = Duration::from_secs(60);

fn worker(shared: &Shared, namespace: &str, build_id: &str) -> WorkerEnv {
    WorkerEnv {
        address: shared.temporal.clone(),
        namespace: namespace.into(),
        task_queue: "versions-q".into(),
        deployment_name: "e2e-versions/report".into(),
        build_id: build_id.into(),
    }
}

/// The deployment once Temporal lists `build_id` among its versions (its worker polled).
async fn listed(
    schedules: &SdkSchedules,
    namespace: &str,
    build_id: &str,
) -> anyhow::Result<ObservedWorkerDeployment> {
    wait_for(&format!("version {build_id} to be listed"), T, || async {
        let d = schedules
            .describe_deployment(namespace, "e2e-versions/report")
            .await
            .ok()??;
        d.version(build_id).is_some().then_some(d)
    })
    .await
}

/// Starts `e2e.Versioned` (it sleeps `seconds`) as workflow `id`.
fn start_run(shared: &Shared, namespace: &str, id: &str, seconds: u64) -> anyhow::Result<()> {
    let input = seconds.to_string();
    let args = [
        "workflow",
        "start",
        "--namespace",
        namespace,
        "--task-queue",
        "versions-q",
        "--type",
        "e2e.Versioned",
        "--workflow-id",
        id,
        "--input",
        &input,
    ];
    temporal::cli(&shared.temporal, &args).map_err(|e| anyhow::anyhow!("starting run {id}: {e}"))?;
    Ok(())
}

/// The build id run `id` finished on (what the workflow returns).
async fn result(shared: &Shared, namespace: &str, id: &str) -> anyhow::Result<String> {
    wait_for(&format!("run {id} to finish"), T, || async {
        let args = [
            "workflow",
            "result",
            "--namespace",
            namespace,
            "--workflow-id",
            id,
        ];
        let r = tokio::task::block_in_place(|| temporal::cli_json(&shared.temporal, &args)).ok()?;
        let value = r.get("result").cloned().unwrap_or(r);
        value.as_str().map(str::to_string)
    })
    .await
}

async fn a_version_that_polls_is_made_current_and_the_one_before_drains(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let namespace = "e2e-versions";
    tokio::task::block_in_place(|| temporal::create_namespace(&shared.temporal, namespace))?;
    // as the operator connects: its timeouts and retries
    let config = durablejob::temporal::connect::TemporalArgs {
        temporal_address: Some(shared.temporal.clone()),
        temporal_namespace: Some(namespace.into()),
        ..Default::default()
    }
    .resolve("e2e-versions")?;
    let schedules = SdkSchedules::new(Arc::new(ClientPool::new(config)), "e2e-versions".into(), None);
    ensure!(
        schedules
            .describe_deployment(namespace, "e2e-versions/report")
            .await?
            .is_none(),
        "no deployment before a versioned worker polls"
    );
    let v1 = tokio::task::block_in_place(|| TestWorker::start(worker(&shared, namespace, "v1")))?;
    let d = listed(&schedules, namespace, "v1").await?;
    ensure!(
        d.current.is_none(),
        "a version that polls routes nothing by itself: {d:?}"
    );
    let before_v1_current = d.conflict_token.clone();
    schedules
        .set_current_version(namespace, "e2e-versions/report", "v1", &d.conflict_token)
        .await?;
    let d = schedules
        .describe_deployment(namespace, "e2e-versions/report")
        .await?
        .context("the deployment")?;
    ensure!(d.current.as_deref() == Some("v1"), "{d:?}");

    // a run that starts on v1 is pinned to it
    start_run(&shared, namespace, "pinned", 4)?;
    let v2 = tokio::task::block_in_place(|| TestWorker::start(worker(&shared, namespace, "v2")))?;
    let d = listed(&schedules, namespace, "v2").await?;
    // a change decided on an old picture is refused (the token of the description before v1
    // became current)
    let stale = schedules
        .set_current_version(namespace, "e2e-versions/report", "v2", &before_v1_current)
        .await;
    ensure!(stale.is_err(), "a stale conflict token was accepted");
    schedules
        .set_current_version(namespace, "e2e-versions/report", "v2", &d.conflict_token)
        .await?;
    let d = wait_for("v1 to drain once v2 is current", T, || async {
        let d = schedules
            .describe_deployment(namespace, "e2e-versions/report")
            .await
            .ok()??;
        let v1 = d.version("v1")?;
        (d.current.as_deref() == Some("v2") && v1.drainage != Drainage::NotDraining).then_some(d)
    })
    .await?;
    ensure!(
        d.version("v2").map(|v| v.drainage) == Some(Drainage::NotDraining),
        "{d:?}"
    );
    // the pinned run finishes on v1 although v2 is current; a new run goes to v2
    start_run(&shared, namespace, "after", 0)?;
    for (id, on) in [("pinned", "v1"), ("after", "v2")] {
        let ran_on = result(&shared, namespace, id).await?;
        ensure!(ran_on == on, "run {id} ran on {ran_on}, not {on}");
    }

    // a version that is not there is not an error; a deployment with versions cannot go
    schedules
        .delete_version(namespace, "e2e-versions/report", "never-polled")
        .await?;
    let refused = schedules
        .delete_deployment(namespace, "e2e-versions/report")
        .await;
    ensure!(
        matches!(
            refused,
            Err(TemporalError::Conflict(_) | TemporalError::Rejected(_))
        ),
        "a deployment that still has versions was deleted: {refused:?}"
    );
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        v1.stop()?;
        v2.stop()
    })?;
    Ok(())
}
