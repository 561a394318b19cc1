//! Issue 23, versioned workers: the operator's Worker Deployment calls against the real dev
//! server, with real versioned workers (tests/e2e/test_worker.rs) polling as the versions.
//!
//! The scenario has a dev server of its own whose drainage and poller intervals are seconds,
//! not minutes (Temporal's defaults: drainage rechecked every 3 minutes after a 3-minute grace,
//! pollers remembered 5 minutes), so a version drains and becomes deletable within the test.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, ensure};
use durablejob::temporal::TemporalError;
use durablejob::temporal::connect::ClientPool;
use durablejob::temporal::sdk::SdkSchedules;
use durablejob::temporal::worker_deployments::{Drainage, ObservedWorkerDeployment, WorkerDeployments};

use crate::Shared;
use crate::env::wait_for;
use crate::temporal::{self, DevServer};
use crate::test_worker::{TestWorker, WorkerEnv};

scenarios!(a_version_that_polls_is_made_current_and_the_one_before_drains_and_goes,);

const T: Duration = Duration::from_secs(60);
const NAMESPACE: &str = "e2e-versions";
const DEPLOYMENT: &str = "e2e-versions/report";

/// Dynamic config of the scenario's dev server: drainage and pollers in seconds.
const FAST_VERSIONS: &[&str] = &[
    "--dynamic-config-value",
    r#"matching.wv.VersionDrainageStatusRefreshInterval="1s""#,
    "--dynamic-config-value",
    r#"matching.wv.VersionDrainageStatusVisibilityGracePeriod="1s""#,
    "--dynamic-config-value",
    r#"matching.PollerHistoryTTL="2s""#,
];

fn worker(address: &str, build_id: &str) -> WorkerEnv {
    WorkerEnv {
        address: address.into(),
        namespace: NAMESPACE.into(),
        task_queue: "versions-q".into(),
        deployment_name: DEPLOYMENT.into(),
        build_id: build_id.into(),
    }
}

/// The deployment once `pick` finds what the test waits for in it.
async fn described<F>(
    schedules: &SdkSchedules,
    what: &str,
    pick: F,
) -> anyhow::Result<ObservedWorkerDeployment>
where
    F: Fn(&ObservedWorkerDeployment) -> bool,
{
    wait_for(what, T, || async {
        let d = schedules
            .describe_deployment(NAMESPACE, DEPLOYMENT)
            .await
            .ok()??;
        pick(&d).then_some(d)
    })
    .await
}

/// Starts `e2e.Versioned` (it sleeps `seconds`) as workflow `id`.
fn start_run(address: &str, id: &str, seconds: u64) -> anyhow::Result<()> {
    let input = seconds.to_string();
    let args = [
        "workflow",
        "start",
        "--namespace",
        NAMESPACE,
        "--task-queue",
        "versions-q",
        "--type",
        "e2e.Versioned",
        "--workflow-id",
        id,
        "--input",
        &input,
    ];
    temporal::cli(address, &args).map_err(|e| anyhow::anyhow!("starting run {id}: {e}"))?;
    Ok(())
}

/// The build id run `id` finished on (what the workflow returns).
async fn result(address: &str, id: &str) -> anyhow::Result<String> {
    wait_for(&format!("run {id} to finish"), T, || async {
        let args = [
            "workflow",
            "result",
            "--namespace",
            NAMESPACE,
            "--workflow-id",
            id,
        ];
        let r = tokio::task::block_in_place(|| temporal::cli_json(address, &args)).ok()?;
        let value = r.get("result").cloned().unwrap_or(r);
        value.as_str().map(str::to_string)
    })
    .await
}

async fn a_version_that_polls_is_made_current_and_the_one_before_drains_and_goes(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let dir = shared.dir.join("versions");
    std::fs::create_dir_all(&dir)?;
    let mut server = DevServer::start_with(dir, None, FAST_VERSIONS).await?;
    let address = server.address();
    tokio::task::block_in_place(|| temporal::create_namespace(&address, NAMESPACE))?;
    // as the operator connects: its timeouts and retries
    let config = durablejob::temporal::connect::TemporalArgs {
        temporal_address: Some(address.clone()),
        temporal_namespace: Some(NAMESPACE.into()),
        ..Default::default()
    }
    .resolve("e2e-versions")?;
    let schedules = SdkSchedules::new(Arc::new(ClientPool::new(config)), "e2e-versions".into(), None);
    ensure!(
        schedules
            .describe_deployment(NAMESPACE, DEPLOYMENT)
            .await?
            .is_none(),
        "no deployment before a versioned worker polls"
    );

    let v1 = tokio::task::block_in_place(|| TestWorker::start(worker(&address, "v1")))?;
    let d = described(&schedules, "v1 to be listed", |d| d.version("v1").is_some()).await?;
    ensure!(
        d.current.is_none(),
        "a version that polls routes nothing by itself: {d:?}"
    );
    let before_v1_current = d.conflict_token.clone();
    schedules
        .set_current_version(NAMESPACE, DEPLOYMENT, "v1", &d.conflict_token)
        .await?;
    let d = schedules
        .describe_deployment(NAMESPACE, DEPLOYMENT)
        .await?
        .context("the deployment")?;
    ensure!(d.current.as_deref() == Some("v1"), "{d:?}");

    // a run that starts on v1 is pinned to it
    start_run(&address, "pinned", 4)?;
    let v2 = tokio::task::block_in_place(|| TestWorker::start(worker(&address, "v2")))?;
    let d = described(&schedules, "v2 to be listed", |d| d.version("v2").is_some()).await?;
    // a change decided on an old picture is refused
    let stale = schedules
        .set_current_version(NAMESPACE, DEPLOYMENT, "v2", &before_v1_current)
        .await;
    ensure!(stale.is_err(), "a stale conflict token was accepted");
    schedules
        .set_current_version(NAMESPACE, DEPLOYMENT, "v2", &d.conflict_token)
        .await?;
    let d = described(&schedules, "v1 to drain once v2 is current", |d| {
        d.current.as_deref() == Some("v2")
            && d.version("v1")
                .is_some_and(|v| v.drainage != Drainage::NotDraining)
    })
    .await?;
    ensure!(
        d.version("v2").map(|v| v.drainage) == Some(Drainage::NotDraining),
        "{d:?}"
    );
    // the pinned run finishes on v1 although v2 is current; a new run goes to v2
    start_run(&address, "after", 0)?;
    for (id, on) in [("pinned", "v1"), ("after", "v2")] {
        let ran_on = result(&address, id).await?;
        ensure!(ran_on == on, "run {id} ran on {ran_on}, not {on}");
    }
    // with its pinned run done, v1 is drained; with its worker gone, it can be deleted
    described(&schedules, "v1 to be drained", |d| {
        d.version("v1").is_some_and(|v| v.drainage == Drainage::Drained)
    })
    .await?;
    tokio::task::block_in_place(|| v1.stop())?;
    wait_for("v1 to be deleted once its workers stopped", T, || async {
        schedules
            .delete_version(NAMESPACE, DEPLOYMENT, "v1", false)
            .await
            .ok()
    })
    .await?;
    let d = described(&schedules, "v1 to be gone", |d| d.version("v1").is_none()).await?;
    ensure!(d.current.as_deref() == Some("v2"), "{d:?}");

    // a version that is not there is not an error; a deployment with versions cannot go
    schedules
        .delete_version(NAMESPACE, DEPLOYMENT, "never-polled", false)
        .await?;
    let refused = schedules.delete_deployment(NAMESPACE, DEPLOYMENT).await;
    ensure!(
        matches!(
            refused,
            Err(TemporalError::Conflict(_) | TemporalError::Rejected(_))
        ),
        "a deployment that still has versions was deleted: {refused:?}"
    );
    tokio::task::block_in_place(|| v2.stop())?;
    server.stop().await;
    Ok(())
}
