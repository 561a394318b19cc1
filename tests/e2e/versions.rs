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

use durablejob::api::{DurableJobStatus, WorkerVersionState, WorkerVersionStatus};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use serde_json::{Value, json};

use crate::Shared;
use crate::env::{Env, condition, manifest, quiet_schedule, wait_for};
use crate::temporal::{self, DevServer};
use crate::test_worker::{self, TestWorker, WorkerEnv};

scenarios!(
    a_version_that_polls_is_made_current_and_the_one_before_drains_and_goes,
    a_new_image_takes_over_once_it_polls_while_the_pinned_run_finishes_on_the_old,
    a_progressive_rollout_ramps_by_its_steps_and_a_manual_one_waits_for_a_person,
    a_new_version_whose_runs_fail_is_rolled_back_on_the_evidence,
    a_gate_workflow_runs_on_each_new_version_and_a_failed_one_stops_the_rollout,
    durablejobs_sharing_one_worker_image_each_roll_their_own_versions,
);

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
    start_in(address, NAMESPACE, "versions-q", id, seconds)
}

/// Starts `e2e.Versioned` on the task queue of the rollout scenario's DurableJob.
fn start_on(address: &str, namespace: &str, id: &str, seconds: u64) -> anyhow::Result<()> {
    start_in(
        address,
        namespace,
        &format!("durablejob.{namespace}.report"),
        id,
        seconds,
    )
}

fn start_in(address: &str, namespace: &str, queue: &str, id: &str, seconds: u64) -> anyhow::Result<()> {
    let input = seconds.to_string();
    let args = [
        "workflow",
        "start",
        "--namespace",
        namespace,
        "--task-queue",
        queue,
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
    result_in(address, NAMESPACE, id).await
}

async fn result_in(address: &str, namespace: &str, id: &str) -> anyhow::Result<String> {
    let value = result_value(address, namespace, id).await?;
    value
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("run {id} returned {value}"))
}

/// The result of workflow `id`, once it finished.
async fn result_value(address: &str, namespace: &str, id: &str) -> anyhow::Result<Value> {
    wait_for(&format!("run {id} to finish"), T, || async {
        let args = [
            "workflow",
            "result",
            "--namespace",
            namespace,
            "--workflow-id",
            id,
        ];
        let r = tokio::task::block_in_place(|| temporal::cli_json(address, &args)).ok()?;
        Some(r.get("result").cloned().unwrap_or(r))
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

    let v1 = tokio::task::block_in_place(|| test_worker::start(worker(&address, "v1"), false))?;
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
    let v2 = tokio::task::block_in_place(|| test_worker::start(worker(&address, "v2"), false))?;
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

/// A test worker for each Ready replica of the version Deployment `name` (kwok runs no
/// containers): one here, as the spec asks for one replica.
async fn serve(env: &Env, name: &str) -> anyhow::Result<(TestWorker, String)> {
    serve_as(env, name, false).await
}

/// Like [`serve`]; with `fail`, a broken build whose workflows fail.
async fn serve_as(env: &Env, name: &str, fail: bool) -> anyhow::Result<(TestWorker, String)> {
    let deployments: Api<Deployment> = env.api();
    let d = wait_for(&format!("Deployment {name} to be Ready"), T, || async {
        let d = deployments.get_opt(name).await.ok()??;
        (d.status.as_ref()?.ready_replicas? >= 1).then_some(d)
    })
    .await?;
    let told = WorkerEnv::of(&d)?;
    let build_id = told.build_id.clone();
    let w = tokio::task::block_in_place(|| test_worker::start(told, fail))?;
    Ok((w, build_id))
}

fn version<'a>(s: &'a DurableJobStatus, build_id: &str) -> Option<&'a WorkerVersionStatus> {
    s.worker
        .as_ref()?
        .versions
        .iter()
        .find(|v| v.build_id == build_id)
}

/// The workflow id of the run the schedule started last (visibility lists it).
async fn scheduled_run(
    address: &str,
    namespace: &str,
    schedule_id: &str,
    not: &[String],
) -> anyhow::Result<String> {
    let query = format!("TemporalScheduledById = '{schedule_id}'");
    wait_for("the triggered run to be listed", T, || async {
        let args = ["workflow", "list", "--namespace", namespace, "--query", &query];
        let listed = tokio::task::block_in_place(|| temporal::cli_json(address, &args)).ok()?;
        let items: Vec<Value> = match listed {
            Value::Array(a) => a,
            other => vec![other],
        };
        items
            .iter()
            .filter_map(|r| r["execution"]["workflowId"].as_str())
            .find(|id| !not.iter().any(|n| n == id))
            .map(str::to_string)
    })
    .await
}

async fn a_new_image_takes_over_once_it_polls_while_the_pinned_run_finishes_on_the_old(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let dir = shared.dir.join("rollout-temporal");
    std::fs::create_dir_all(&dir)?;
    let mut server = DevServer::start_with(dir, None, FAST_VERSIONS).await?;
    let address = server.address();
    let env = Env::with_temporal(&shared, "rollout", &address, &[]).await?;
    let ns = env.namespace.clone();
    let deployments: Api<Deployment> = env.api();
    env.create(manifest(
        "report",
        json!({"schedule": quiet_schedule(), "workflow": {"type": "e2e.Versioned", "args": [0]},
               "worker": {"image": "example/report:1", "sunset": {"scaledownDelay": "1s", "deleteDelay": "40s"}}}),
    ))
    .await?;

    // the first version: its pods are Ready, but nothing routes to it until it polls
    let s = env
        .wait_status("report", "the rollout to wait for pollers", T, |s| {
            condition(s, "RolloutProgressing").is_some_and(|c| c.reason == "WaitingForPollers")
        })
        .await?;
    let c = condition(&s, "Ready").context("Ready")?;
    ensure!(c.status == "False", "nothing serves yet: {:?}", s.conditions);
    let waiting = &condition(&s, "RolloutProgressing")
        .context("RolloutProgressing")?
        .message;
    ensure!(
        waiting.contains("TEMPORAL_DEPLOYMENT_NAME") && waiting.contains("TEMPORAL_WORKER_BUILD_ID"),
        "the wait names what the worker must read: {waiting}"
    );
    let w = s.worker.clone().context("status.worker")?;
    ensure!(
        w.deployment_name.as_deref() == Some(format!("{ns}/report").as_str()),
        "{w:?}"
    );
    let v1_name = w.versions[0].deployment.clone().context("v1's Deployment")?;
    let (v1_worker, v1) = serve(&env, &v1_name).await?;
    ensure!(Some(&v1) == w.target_build_id.as_ref(), "{w:?}");
    let s = env
        .wait_status("report", "v1 to be current", T, |s| {
            s.worker
                .as_ref()
                .is_some_and(|w| w.current_build_id.as_ref() == Some(&v1))
        })
        .await?;
    ensure!(
        s.worker.as_ref().is_some_and(|w| w.deployment == v1_name),
        "{:?}",
        s.worker
    );
    env.wait_ready("report").await?;

    // a long run starts on v1 and is pinned to it
    start_on(&address, &ns, "pinned", 8)?;

    // a new image is a new version; v1 keeps serving (and the resource Ready) until v2 polls
    env.edit("report", json!({"worker": {"image": "example/report:2"}}))
        .await?;
    let s = env
        .wait_status("report", "v2 to wait for pollers", T, |s| {
            s.worker
                .as_ref()
                .is_some_and(|w| w.target_build_id.as_ref() != Some(&v1))
                && condition(s, "RolloutProgressing").is_some_and(|c| c.reason == "WaitingForPollers")
        })
        .await?;
    ensure!(
        condition(&s, "Ready").is_some_and(|c| c.status == "True"),
        "v1 still serves: {:?}",
        s.conditions
    );
    let w = s.worker.clone().context("status.worker")?;
    let v2 = w.target_build_id.clone().context("target")?;
    let v2_name = version(&s, &v2)
        .and_then(|v| v.deployment.clone())
        .context("v2's Deployment")?;
    ensure!(v2_name != v1_name && v2.starts_with("2-"), "{w:?}");
    let (v2_worker, polled_as) = serve(&env, &v2_name).await?;
    ensure!(polled_as == v2);
    env.wait_status("report", "v2 current, v1 draining", T, |s| {
        s.worker
            .as_ref()
            .is_some_and(|w| w.current_build_id.as_ref() == Some(&v2))
            && version(s, &v1).is_some_and(|v| v.state != WorkerVersionState::Current)
    })
    .await?;
    // a run of the schedule now lands on v2; the pinned one finishes on v1
    let schedule_id = env.schedule_id("report");
    tokio::task::block_in_place(|| {
        temporal::cli(
            &address,
            &[
                "schedule",
                "trigger",
                "--namespace",
                &ns,
                "--schedule-id",
                &schedule_id,
            ],
        )
    })
    .map_err(|e| anyhow::anyhow!("trigger: {e}"))?;
    let after = scheduled_run(&address, &ns, &schedule_id, &[]).await?;
    for (id, on) in [("pinned", &v1), (after.as_str(), &v2)] {
        let ran_on = result_in(&address, &ns, id).await?;
        ensure!(&ran_on == on, "run {id} ran on {ran_on}, not {on}");
    }

    // v1 drains, is scaled to zero (its test worker stops with it), then goes; the operator
    // asks Temporal about a draining version every 30 s, so the delete delay is longer
    wait_for("v1's Deployment to be scaled to zero", T, || async {
        let d = deployments.get_opt(&v1_name).await.ok()??;
        (d.spec.replicas == Some(0)).then_some(())
    })
    .await?;
    tokio::task::block_in_place(|| v1_worker.stop())?;
    env.wait_status("report", "v1 to be gone", T, |s| version(s, &v1).is_none())
        .await?;
    ensure!(
        deployments.get_opt(&v1_name).await?.is_none(),
        "v1's Deployment is deleted"
    );
    let events = env.events("report").await;
    for reason in ["VersionCurrent", "VersionScaledDown", "VersionDeleted"] {
        ensure!(
            events.iter().any(|e| e.contains(reason)),
            "no {reason} Event: {events:?}"
        );
    }

    // AutoUpgrade runs: the schedule's action carries Temporal's override, which the server keeps
    env.edit(
        "report",
        json!({"workflow": {"versioningBehavior": "AutoUpgrade"}}),
    )
    .await?;
    wait_for("the schedule to carry the auto-upgrade override", T, || async {
        let d = tokio::task::block_in_place(|| env.describe("report")).ok()??;
        let o = &d["schedule"]["action"]["startWorkflow"]["versioningOverride"];
        o.to_string().contains("autoUpgrade").then_some(())
    })
    .await?;

    // leaving versioning is refused, naming the builds, and changes nothing
    env.edit(
        "report",
        json!({"workflow": {"versioningBehavior": null}, "worker": {"rollout": {"strategy": "None"}}}),
    )
    .await?;
    let s = env
        .wait_status("report", "leaving versions to be refused", T, |s| {
            condition(s, "Stalled").is_some_and(|c| c.status == "True" && c.reason == "InvalidSpec")
        })
        .await?;
    let said = s.message.clone().unwrap_or_default();
    ensure!(said.contains(&v2) && said.contains("AllAtOnce"), "{said}");
    ensure!(
        deployments.get_opt("report-worker").await?.is_none(),
        "no unversioned Deployment is made"
    );
    env.edit(
        "report",
        json!({"worker": {"rollout": {"strategy": "AllAtOnce"}}}),
    )
    .await?;
    env.wait_ready("report").await?;

    // deleting the DurableJob removes v2's Deployment, then its Temporal versions and deployment
    env.djs.delete("report", &Default::default()).await?;
    wait_for("v2's Deployment to be deleted", T, || async {
        deployments.get_opt(&v2_name).await.ok()?.is_none().then_some(())
    })
    .await?;
    tokio::task::block_in_place(|| v2_worker.stop())?;
    env.wait_gone("report", T).await?;
    let config = durablejob::temporal::connect::TemporalArgs {
        temporal_address: Some(address.clone()),
        temporal_namespace: Some(ns.clone()),
        ..Default::default()
    }
    .resolve("e2e-rollout")?;
    let schedules = SdkSchedules::new(Arc::new(ClientPool::new(config)), "e2e-rollout".into(), None);
    let left = schedules
        .describe_deployment(&ns, &format!("{ns}/report"))
        .await?;
    ensure!(left.is_none(), "the Temporal worker deployment is left: {left:?}");
    server.stop().await;
    Ok(())
}

/// A rollout scenario's stage: a dev server of its own (drainage and pollers in seconds), the
/// namespace and operator for it, and the operator's Temporal client for what the test reads
/// from (or does as a person in) Temporal directly. The DurableJob is `report`.
struct Stage {
    server: DevServer,
    address: String,
    env: Env,
    ns: String,
    deployment_name: String,
    temporal: SdkSchedules,
}

impl Stage {
    async fn start(shared: &Shared, name: &str) -> anyhow::Result<Self> {
        let dir = shared.dir.join(format!("{name}-temporal"));
        std::fs::create_dir_all(&dir)?;
        let server = DevServer::start_with(dir, None, FAST_VERSIONS).await?;
        let address = server.address();
        let env = Env::with_temporal(shared, name, &address, &[]).await?;
        let ns = env.namespace.clone();
        Ok(Self {
            temporal: client_for(&address, &ns)?,
            deployment_name: format!("{ns}/report"),
            server,
            address,
            env,
            ns,
        })
    }

    /// `report`: a quiet schedule of `e2e.Versioned` run by the worker `worker` describes.
    async fn create(&self, worker: Value) -> anyhow::Result<()> {
        self.env
            .create(manifest(
                "report",
                json!({"schedule": quiet_schedule(), "workflow": {"type": "e2e.Versioned", "args": [0]}, "worker": worker}),
            ))
            .await?;
        Ok(())
    }

    /// The first version: its Deployment served by a test worker, and current.
    async fn first_version(&self) -> anyhow::Result<(TestWorker, String)> {
        let s = self
            .env
            .wait_status("report", "v1's Deployment", T, |s| {
                s.worker.as_ref().is_some_and(|w| !w.versions.is_empty())
            })
            .await?;
        let name = s
            .worker
            .as_ref()
            .and_then(|w| w.versions[0].deployment.clone())
            .context("v1")?;
        let (worker, v1) = serve(&self.env, &name).await?;
        self.env
            .wait_status("report", "v1 current", T, |s| {
                s.worker
                    .as_ref()
                    .is_some_and(|w| w.current_build_id.as_ref() == Some(&v1))
            })
            .await?;
        Ok((worker, v1))
    }

    /// A new image: the new version's build id and Deployment, once the status names them
    /// (not served yet).
    async fn new_image(&self, image: &str, before: &str) -> anyhow::Result<(String, String)> {
        self.env
            .edit("report", json!({"worker": {"image": image}}))
            .await?;
        let s = self
            .env
            .wait_status("report", "the new version's Deployment", T, |s| {
                s.worker
                    .as_ref()
                    .is_some_and(|w| w.target_build_id.as_deref().is_some_and(|t| t != before))
            })
            .await?;
        let build = s
            .worker
            .as_ref()
            .and_then(|w| w.target_build_id.clone())
            .context("target")?;
        let name = version(&s, &build)
            .and_then(|v| v.deployment.clone())
            .context("the new version's Deployment")?;
        Ok((build, name))
    }

    /// Deletes `report`: its version Deployments go, then the test workers that played them
    /// stop, and the finalizer ends once Temporal has let go of the versions.
    async fn finish(mut self, workers: Vec<TestWorker>) -> anyhow::Result<()> {
        self.env.djs.delete("report", &Default::default()).await?;
        let deployments: Api<Deployment> = self.env.api();
        wait_for("every version Deployment to be deleted", T, || async {
            deployments
                .list(&Default::default())
                .await
                .ok()?
                .items
                .is_empty()
                .then_some(())
        })
        .await?;
        for w in workers {
            tokio::task::block_in_place(|| w.stop())?;
        }
        self.env.wait_gone("report", T).await?;
        self.server.stop().await;
        Ok(())
    }
}

/// The operator's Temporal client, for what the test reads from (or does as a person in)
/// Temporal directly.
fn client_for(address: &str, namespace: &str) -> anyhow::Result<SdkSchedules> {
    let config = durablejob::temporal::connect::TemporalArgs {
        temporal_address: Some(address.to_string()),
        temporal_namespace: Some(namespace.to_string()),
        ..Default::default()
    }
    .resolve("e2e-ramp")?;
    Ok(SdkSchedules::new(
        Arc::new(ClientPool::new(config)),
        "e2e-ramp".into(),
        None,
    ))
}

async fn a_progressive_rollout_ramps_by_its_steps_and_a_manual_one_waits_for_a_person(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let mut st = Stage::start(&shared, "ramp").await?;
    let plugin = crate::control::Plugin::new(&mut st.env)?;
    let (ns, deployment_name) = (st.ns.clone(), st.deployment_name.clone());
    let (env, temporal) = (&st.env, &st.temporal);
    st.create(
        json!({"image": "example/report:1", "sunset": {"scaledownDelay": "5m", "deleteDelay": "10m"},
                          "rollout": {"strategy": "Progressive", "steps": [
                              {"rampPercentage": 25, "pauseDuration": "3s"},
                              {"rampPercentage": 75, "pauseDuration": "3s"}]}}),
    )
    .await?;
    let (v1_worker, v1) = st.first_version().await?;

    // v2 ramps 25 %, then 75 %, as Temporal reads back, then becomes current
    let (v2, v2_name) = st.new_image("example/report:2", &v1).await?;
    let (v2_worker, _) = serve(env, &v2_name).await?;
    let seen = std::sync::Mutex::new(Vec::<u32>::new());
    let seen_ramps = wait_for("v2 to ramp 25 % then 75 % and become current", T, || async {
        let d = temporal.describe_deployment(&ns, &deployment_name).await.ok()??;
        let mut seen = seen.lock().expect("ramps seen");
        if let Some((b, pct)) = &d.ramping
            && b == &v2
            && seen.last() != Some(&(pct.round() as u32))
        {
            seen.push(pct.round() as u32);
        }
        (d.current.as_ref() == Some(&v2)).then(|| seen.clone())
    })
    .await?;
    ensure!(
        seen_ramps == vec![25, 75],
        "ramps read back from Temporal: {seen_ramps:?}"
    );
    let s = env
        .wait_status("report", "v2 current in status", T, |s| {
            s.worker
                .as_ref()
                .is_some_and(|w| w.current_build_id.as_ref() == Some(&v2))
        })
        .await?;
    ensure!(
        condition(&s, "RolloutProgressing").is_some_and(|c| c.status == "False"),
        "{:?}",
        s.conditions
    );
    let events = env.events("report").await;
    // (repeats of one reason on one object are a series of one Event, as Kubernetes keeps them)
    ensure!(
        events
            .iter()
            .any(|e| e.contains("VersionRamping") && e.contains("% of new runs")),
        "a VersionRamping Event: {events:?}"
    );

    // Manual: v3 is deployed and polls, and nothing routes to it until a person does
    env.edit(
        "report",
        json!({"worker": {"image": "example/report:3", "rollout": {"strategy": "Manual", "steps": null}}}),
    )
    .await?;
    let s = env
        .wait_status("report", "v3 to wait for a person", T, |s| {
            condition(s, "RolloutProgressing").is_some_and(|c| c.reason == "WaitingForPollers")
        })
        .await?;
    let v3 = s
        .worker
        .as_ref()
        .and_then(|w| w.target_build_id.clone())
        .context("v3")?;
    let v3_name = version(&s, &v3)
        .and_then(|v| v.deployment.clone())
        .context("v3's Deployment")?;
    let (v3_worker, _) = serve(env, &v3_name).await?;
    let s = env
        .wait_status("report", "v3 ready for promotion", T, |s| {
            condition(s, "RolloutProgressing").is_some_and(|c| c.reason == "WaitingForPromotion")
        })
        .await?;
    let said = &condition(&s, "RolloutProgressing").context("condition")?.message;
    ensure!(
        said.contains("set-current-version") && said.contains(&v3),
        "{said}"
    );
    tokio::time::sleep(Duration::from_secs(6)).await;
    let d = temporal
        .describe_deployment(&ns, &deployment_name)
        .await?
        .context("deployment")?;
    ensure!(
        d.current.as_ref() == Some(&v2),
        "Manual routed nothing by itself: {d:?}"
    );
    // a person promotes v3 in Temporal; the operator follows and v2 drains
    temporal
        .set_current_version(&ns, &deployment_name, &v3, &d.conflict_token)
        .await?;
    env.wait_status("report", "v3 current, v2 draining", T, |s| {
        s.worker
            .as_ref()
            .is_some_and(|w| w.current_build_id.as_ref() == Some(&v3))
            && version(s, &v2).is_some_and(|v| {
                matches!(
                    v.state,
                    WorkerVersionState::Draining | WorkerVersionState::Drained
                )
            })
    })
    .await?;

    // the rollout verbs, as a user with the edit role sends them
    let said = plugin.ok(&["rollout", "rollback", "report", "--wait"])?;
    ensure!(
        said.contains(&format!("new runs go to build {v2} again")),
        "{said}"
    );
    let d = temporal
        .describe_deployment(&ns, &deployment_name)
        .await?
        .context("deployment")?;
    ensure!(d.current.as_ref() == Some(&v2), "rolled back in Temporal: {d:?}");
    let s = env
        .wait_status("report", "v3 held after the rollback", T, |s| {
            s.worker
                .as_ref()
                .is_some_and(|w| w.rolled_back_build_id.as_ref() == Some(&v3))
                && condition(s, "RolloutProgressing").is_some_and(|c| c.reason == "RolloutHeld")
        })
        .await?;
    ensure!(
        deployments_named(env, &v3_name).await?,
        "a rolled-back version keeps its Deployment for inspection: {:?}",
        s.worker
    );
    let shown = plugin.ok(&["rollout", "status", "report"])?;
    ensure!(shown.contains(&format!("build {v3} rolled back")), "{shown}");
    plugin.ok(&["rollout", "pause", "report", "--wait"])?;
    env.wait_status("report", "the rollout paused", T, |s| {
        s.worker.as_ref().is_some_and(|w| w.rollout_paused)
    })
    .await?;
    plugin.ok(&["rollout", "resume", "report", "--wait"])?;
    let said = plugin.ok(&["rollout", "promote", "report", "--wait"])?;
    ensure!(said.contains("Succeeded"), "{said}");
    let s = env
        .wait_status("report", "v3 current again, nothing held", T, |s| {
            s.worker.as_ref().is_some_and(|w| {
                w.current_build_id.as_ref() == Some(&v3)
                    && !w.rollout_paused
                    && w.rolled_back_build_id.is_none()
            })
        })
        .await?;
    let verbs: Vec<&str> = s.requests.iter().map(|r| r.verb.as_str()).collect();
    for verb in ["rollback", "pause-rollout", "resume-rollout", "promote"] {
        ensure!(
            verbs.contains(&verb),
            "{verb} recorded in status.requests: {verbs:?}"
        );
    }
    let e = plugin.fails(&["rollout", "promote", "nope"])?;
    ensure!(e.contains("nope"), "{e}");

    st.finish(vec![v1_worker, v2_worker, v3_worker]).await
}

/// Whether a Deployment of that name exists.
async fn deployments_named(env: &Env, name: &str) -> anyhow::Result<bool> {
    let deployments: Api<Deployment> = env.api();
    Ok(deployments.get_opt(name).await?.is_some())
}

async fn a_new_version_whose_runs_fail_is_rolled_back_on_the_evidence(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let st = Stage::start(&shared, "evidence").await?;
    let (address, ns, deployment_name) = (st.address.clone(), st.ns.clone(), st.deployment_name.clone());
    let (env, temporal) = (&st.env, &st.temporal);
    st.create(
        json!({"image": "example/report:1", "sunset": {"scaledownDelay": "40s", "deleteDelay": "10m"},
                          "rollout": {"strategy": "AllAtOnce", "rollbackOnFailure": {"failedRuns": 1}}}),
    )
    .await?;
    let (v1_worker, v1) = st.first_version().await?;

    // v2 is broken: it becomes current, its first run fails, and the operator routes back
    let (v2, v2_name) = st.new_image("example/report:2", &v1).await?;
    let (v2_worker, _) = serve_as(env, &v2_name, true).await?;
    env.wait_status("report", "v2 current", T, |s| {
        s.worker
            .as_ref()
            .is_some_and(|w| w.current_build_id.as_ref() == Some(&v2))
    })
    .await?;
    let schedule_id = env.schedule_id("report");
    let trigger = || {
        tokio::task::block_in_place(|| {
            temporal::cli(
                &address,
                &[
                    "schedule",
                    "trigger",
                    "--namespace",
                    &ns,
                    "--schedule-id",
                    &schedule_id,
                ],
            )
        })
        .map_err(|e| anyhow::anyhow!("trigger: {e}"))
    };
    trigger()?;
    let s = env
        .wait_status(
            "report",
            "the failed run to roll v2 back",
            Duration::from_secs(90),
            |s| {
                s.worker.as_ref().is_some_and(|w| {
                    w.rolled_back_build_id.as_ref() == Some(&v2) && w.current_build_id.as_ref() == Some(&v1)
                })
            },
        )
        .await?;
    ensure!(
        s.recent_runs
            .iter()
            .any(|r| r.build_id.as_ref() == Some(&v2) && r.result == durablejob::api::RunResult::Failed),
        "the evidence is in recentRuns with its build: {:?}",
        s.recent_runs
    );
    ensure!(
        condition(&s, "RolloutProgressing").is_some_and(|c| c.reason == "RolloutHeld"),
        "{:?}",
        s.conditions
    );
    let d = temporal
        .describe_deployment(&ns, &deployment_name)
        .await?
        .context("deployment")?;
    ensure!(d.current.as_ref() == Some(&v1), "routed back in Temporal: {d:?}");
    let warning = env.wait_event("report", "VersionRolledBack").await?;
    ensure!(
        warning.contains("rollbackOnFailure") && warning.contains(&v2),
        "{warning}"
    );
    ensure!(
        deployments_named(env, &v2_name).await?,
        "v2 keeps its Deployment for inspection"
    );
    // the next run lands on v1 and succeeds
    let before: Vec<String> = s.recent_runs.iter().map(|r| r.workflow_id.clone()).collect();
    trigger()?;
    let next = scheduled_run(&address, &ns, &schedule_id, &before).await?;
    ensure!(
        result_in(&address, &ns, &next).await? == v1,
        "the run after the rollback ran on v1"
    );
    // the held version's pods go once the scale-down delay after the rollback has passed
    let deployments: Api<Deployment> = env.api();
    wait_for("v2's Deployment to be scaled down after the delay", T, || async {
        let d = deployments.get_opt(&v2_name).await.ok()??;
        (d.spec.replicas == Some(0)).then_some(())
    })
    .await?;

    st.finish(vec![v1_worker, v2_worker]).await
}

async fn a_gate_workflow_runs_on_each_new_version_and_a_failed_one_stops_the_rollout(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let st = Stage::start(&shared, "gate").await?;
    let (address, ns, deployment_name) = (st.address.clone(), st.ns.clone(), st.deployment_name.clone());
    let (env, temporal) = (&st.env, &st.temporal);
    st.create(json!({"image": "example/report:1",
                          "rollout": {"strategy": "AllAtOnce", "gate": {"workflowType": "e2e.Gate"}}}))
        .await?;
    let (v1_worker, v1) = st.first_version().await?;
    let gate = format!("{}-gate-{v1}-current", env.schedule_id("report"));
    ensure!(
        result_in(&address, &ns, &gate).await? == v1,
        "the gate ran pinned to v1"
    );

    // v2 is broken: its gate fails, nothing is routed to it, and the rollout stops
    let (v2, v2_name) = st.new_image("example/report:2", &v1).await?;
    let (v2_worker, _) = serve_as(env, &v2_name, true).await?;
    let s = env
        .wait_status("report", "v2 held after its gate failed", T, |s| {
            s.worker
                .as_ref()
                .is_some_and(|w| w.rolled_back_build_id.as_ref() == Some(&v2))
        })
        .await?;
    ensure!(
        s.worker
            .as_ref()
            .is_some_and(|w| w.current_build_id.as_ref() == Some(&v1)),
        "v1 keeps the runs: {:?}",
        s.worker
    );
    let d = temporal
        .describe_deployment(&ns, &deployment_name)
        .await?
        .context("deployment")?;
    ensure!(d.current.as_ref() == Some(&v1) && d.ramping.is_none(), "{d:?}");
    let warning = env.wait_event("report", "GateFailed").await?;
    ensure!(warning.contains("e2e.Gate") && warning.contains(&v2), "{warning}");

    st.finish(vec![v1_worker, v2_worker]).await
}

/// Two DurableJobs with one worker image, their pods played by `worker-pods` (what the
/// playground runs): each has a Temporal Worker Deployment and versions of its own, each run
/// lands on its own DurableJob's version, and a new image for one leaves the other alone.
async fn durablejobs_sharing_one_worker_image_each_roll_their_own_versions(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let mut st = Stage::start(&shared, "shared").await?;
    let (address, ns) = (st.address.clone(), st.ns.clone());
    let (env, temporal) = (&st.env, &st.temporal);
    const NAMES: [&str; 2] = ["report", "audit"];
    for name in NAMES {
        let spec = json!({"schedule": quiet_schedule(),
            "workflow": {"type": "InvoiceSync", "args": [{"source": name}]},
            "worker": {"image": "example/invoice-worker:1"}});
        env.create(manifest(name, spec)).await?;
    }
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let pods = tokio::spawn(testsupport::worker_pods::play(env.api(), async {
        let _ = stopped.await;
    }));
    let mut first = std::collections::BTreeMap::new();
    for name in NAMES {
        let s = env
            .wait_status(name, "its first version current", T, |s| {
                s.worker.as_ref().is_some_and(|w| w.current_build_id.is_some())
            })
            .await?;
        let w = s.worker.context("status.worker")?;
        first.insert(name, (w.current_build_id.context("current")?, w.deployment));
    }
    ensure!(
        first["report"].1 != first["audit"].1,
        "one Deployment for both: {first:?}"
    );
    // each has its own Temporal Worker Deployment, and a run of each lands on its own version
    for name in NAMES {
        let build = &first[name].0;
        let d = temporal
            .describe_deployment(&ns, &format!("{ns}/{name}"))
            .await?
            .with_context(|| format!("{name}'s worker deployment"))?;
        ensure!(d.current.as_ref() == Some(build), "{name}: {d:?}");
        let schedule_id = env.schedule_id(name);
        let args = [
            "schedule",
            "trigger",
            "--namespace",
            &ns,
            "--schedule-id",
            &schedule_id,
        ];
        tokio::task::block_in_place(|| temporal::cli(&address, &args))
            .map_err(|e| anyhow::anyhow!("trigger: {e}"))?;
        let run = scheduled_run(&address, &ns, &schedule_id, &[]).await?;
        let result = result_value(&address, &ns, &run).await?;
        ensure!(
            result["buildId"] == json!(build) && result["input"]["source"] == json!(name),
            "{name}'s run: {result}"
        );
    }
    // a new image for report only: audit's version and Deployment stay as they were
    let deployments: Api<Deployment> = env.api();
    let audit_before = deployments.get(&first["audit"].1).await?;
    env.edit("report", json!({"worker": {"image": "example/invoice-worker:2"}}))
        .await?;
    let report_v1 = first["report"].0.clone();
    env.wait_status("report", "report's new version current", T, |s| {
        s.worker
            .as_ref()
            .and_then(|w| w.current_build_id.as_ref())
            .is_some_and(|c| c != &report_v1)
    })
    .await?;
    let audit = env.djs.get("audit").await?;
    let audit_current = audit
        .status
        .and_then(|s| s.worker)
        .and_then(|w| w.current_build_id);
    ensure!(
        audit_current.as_ref() == Some(&first["audit"].0),
        "{audit_current:?}"
    );
    let audit_after = deployments.get(&first["audit"].1).await?;
    ensure!(
        audit_after.metadata.generation == audit_before.metadata.generation,
        "audit's Deployment was changed"
    );
    // deleting both leaves no Deployment and no Temporal Worker Deployment
    for name in NAMES {
        env.djs.delete(name, &Default::default()).await?;
    }
    wait_for("every version Deployment to be deleted", T, || async {
        deployments
            .list(&Default::default())
            .await
            .ok()?
            .items
            .is_empty()
            .then_some(())
    })
    .await?;
    let _ = stop.send(());
    pods.await?;
    for name in NAMES {
        env.wait_gone(name, T).await?;
        let left = temporal.describe_deployment(&ns, &format!("{ns}/{name}")).await?;
        ensure!(left.is_none(), "{name}'s worker deployment is left: {left:?}");
    }
    st.server.stop().await;
    Ok(())
}
