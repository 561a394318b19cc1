//! Installing as a user with a real cluster does: `helm install` of both charts into a cluster
//! of the scenario's own, then the operator and runner binaries run with the chart's
//! ServiceAccount tokens and exactly the args and env of the chart's Deployments (pods cannot
//! run without a kubelet, so the processes run outside). Two operator replicas elect a leader;
//! the audit log shows that only the leader writes, and killing it hands over within the
//! lease duration. `/metrics` of operator and runner show the run. `helm uninstall` leaves
//! nothing behind but the CRDs.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use durablejob::api::{DurableJob, RunResult};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, api::PostParams};
use serde_json::{Value, json};
use testsupport::{Cluster, durable_job, job_template, service_account_kubeconfig, wait_for};

use crate::{
    Shared,
    operator::scrape,
    procs::{Guarded, free_port},
};

scenarios!(helm_install_elects_a_leader_runs_a_sample_reports_metrics_and_uninstalls_cleanly);

const SYSTEM: &str = "durablejob-system";
const APPS: &str = "apps";

fn helm(cluster: &Path, dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(testsupport::repo_root().join(".tools/bin/helm"))
        .args(args)
        .current_dir(testsupport::repo_root())
        .env("KUBECONFIG", cluster)
        .env("HELM_CACHE_HOME", dir.join("helm/cache"))
        .env("HELM_CONFIG_HOME", dir.join("helm/config"))
        .env("HELM_DATA_HOME", dir.join("helm/data"))
        .output()
        .context("cannot run .tools/bin/helm (make cluster-tools builds it)")?;
    if !out.status.success() {
        bail!("helm {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One replica of a chart Deployment, run as a process: the container's args and env, with
/// the listen addresses moved to free loopback ports and the downward-API env filled in.
struct Replica {
    proc: Guarded,
    metrics_port: u16,
    sdk_metrics_port: Option<u16>,
}

impl Replica {
    fn start(deployment: &Value, kubeconfig: &Path, pod: &str, dir: &Path) -> anyhow::Result<Self> {
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let metrics_port = free_port();
        let mut sdk_metrics_port = None;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_durablejob"));
        for arg in container["args"].as_array().context("container args")? {
            let arg = arg.as_str().unwrap_or_default();
            let arg = match arg.split_once('=') {
                Some(("--metrics-addr", _)) => format!("--metrics-addr=127.0.0.1:{metrics_port}"),
                Some(("--health-addr", _)) => format!("--health-addr=127.0.0.1:{}", free_port()),
                Some(("--sdk-metrics-addr", _)) => {
                    let port = free_port();
                    sdk_metrics_port = Some(port);
                    format!("--sdk-metrics-addr=127.0.0.1:{port}")
                }
                _ => arg.to_string(),
            };
            cmd.arg(arg);
        }
        for env in container["env"].as_array().context("container env")? {
            if let Some(value) = env["value"].as_str() {
                cmd.env(env["name"].as_str().unwrap_or_default(), value);
            }
        }
        cmd.env("POD_NAME", pod)
            .env("POD_NAMESPACE", SYSTEM)
            .env("KUBECONFIG", kubeconfig)
            .env_remove("TEMPORAL_API_KEY");
        let proc = Guarded::spawn(cmd, &dir.join(format!("{pod}.log")))?;
        Ok(Self {
            proc,
            metrics_port,
            sdk_metrics_port,
        })
    }
}

fn holder(lease: &Lease) -> String {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .unwrap_or_default()
}

/// The first sample's value of a series whose line starts with `prefix`.
fn value(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

async fn helm_install_elects_a_leader_runs_a_sample_reports_metrics_and_uninstalls_cleanly(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let dir: PathBuf = shared.dir.join("helm");
    std::fs::create_dir_all(&dir)?;
    let cluster = tokio::task::block_in_place(|| Cluster::private("helm", &[]))?;
    let kc = cluster.kubeconfig.clone();
    let k = &cluster.kubectl;
    let temporal_ns = "e2e-helm";
    crate::temporal::create_namespace(&shared.temporal, temporal_ns)?;
    tokio::task::block_in_place(|| {
        k.ok(&["create", "namespace", APPS], None)?;
        helm(
            &kc,
            &dir,
            &[
                "install",
                "durablejob-crds",
                "charts/durablejob-crds",
                "-n",
                SYSTEM,
                "--create-namespace",
                "--wait",
            ],
        )?;
        let notes = helm(
            &kc,
            &dir,
            &[
                "install",
                "durablejob",
                "charts/durablejob",
                "-n",
                SYSTEM,
                "--set",
                &format!("temporal.address={}", shared.temporal),
                "--set",
                &format!("temporal.namespace={temporal_ns}"),
                "--set",
                &format!("watchNamespaces={{{APPS}}}"),
                "--set",
                "operator.leaderElection.leaseDuration=6s",
                "--set",
                "operator.leaderElection.renewDeadline=4s",
                "--set",
                "operator.leaderElection.retryPeriod=1s",
                "--set",
                "runner.heartbeatTimeout=5s",
                "--set",
                "operator.maxConcurrentReconciles=4",
            ],
        )?;
        ensure!(
            notes.contains("Watching: apps"),
            "NOTES say what was installed:\n{notes}"
        );
        anyhow::Ok(())
    })?;
    let manifest =
        tokio::task::block_in_place(|| helm(&kc, &dir, &["get", "manifest", "durablejob", "-n", SYSTEM]))?;
    let deployments: BTreeMap<String, Value> = manifest
        .split("\n---")
        .filter_map(|d| durablejob::yaml::document::<Value>(d).ok())
        .filter(|o| o["kind"] == "Deployment")
        .map(|o| (o["metadata"]["name"].as_str().unwrap_or_default().to_string(), o))
        .collect();
    let (operator_kc, runner_kc) = tokio::task::block_in_place(|| {
        anyhow::Ok((
            service_account_kubeconfig(k, SYSTEM, "durablejob-operator", &dir)?,
            service_account_kubeconfig(k, SYSTEM, "durablejob-runner", &dir)?,
        ))
    })?;
    let client = testsupport::client_for(&kc).await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), SYSTEM);

    // The first replica takes the Lease the chart created; the second stands by.
    let mut a = Replica::start(
        &deployments["durablejob-operator"],
        &operator_kc,
        "operator-a",
        &dir,
    )?;
    let leads = |pod: &'static str, timeout: Duration| {
        let leases = leases.clone();
        async move {
            wait_for(&format!("{pod} leads"), timeout, || async {
                let l = leases.get("durablejob-operator").await.ok()?;
                holder(&l).starts_with(&format!("{pod}_")).then_some(l)
            })
            .await
        }
    };
    let lease = leads("operator-a", Duration::from_secs(60)).await?;
    let spec = lease.spec.clone().unwrap_or_default();
    ensure!(
        spec.lease_duration_seconds == Some(6),
        "the chart's leaseDuration reaches the Lease: {spec:?}"
    );
    let b = Replica::start(
        &deployments["durablejob-operator"],
        &operator_kc,
        "operator-b",
        &dir,
    )?;
    let runner = Replica::start(&deployments["durablejob-runner"], &runner_kc, "runner-a", &dir)?;

    // A DurableJob in the watched namespace runs to a succeeded run.
    let djs: Api<DurableJob> = Api::namespaced(client.clone(), APPS);
    let manifest = durable_job(
        "tick",
        json!({"schedule": {"intervals": [{"every": "5s"}]}, "jobTemplate": job_template(json!({}))}),
    );
    djs.create(&PostParams::default(), &serde_json::from_value(manifest)?)
        .await?;
    wait_for(
        "a succeeded run of apps/tick",
        Duration::from_secs(90),
        || async {
            let dj = djs.get("tick").await.ok()?;
            let s = dj.status?;
            s.recent_runs
                .iter()
                .any(|r| r.result == RunResult::Succeeded)
                .then_some(())
        },
    )
    .await
    .with_context(|| {
        format!(
            "operator-a:\n{}\nrunner:\n{}",
            a.proc.log_tail(30),
            runner.proc.log_tail(30)
        )
    })?;

    // Metrics of the leader, the standby and the runner.
    let leader = scrape(a.metrics_port).await;
    let standby = scrape(b.metrics_port).await;
    ensure!(
        value(
            &leader,
            "leader_election_master_status{name=\"durablejob-operator\"}"
        ) == Some(1.0),
        "{leader}"
    );
    ensure!(
        value(
            &standby,
            "leader_election_master_status{name=\"durablejob-operator\"}"
        ) == Some(0.0),
        "{standby}"
    );
    ensure!(
        value(
            &leader,
            "controller_runtime_reconcile_total{controller=\"durablejob\",result=\"requeue_after\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{leader}"
    );
    ensure!(
        value(
            &leader,
            "controller_runtime_reconcile_time_seconds_count{controller=\"durablejob\"}"
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    ensure!(
        value(
            &leader,
            "controller_runtime_max_concurrent_reconciles{controller=\"durablejob\"}"
        ) == Some(4.0),
        "the chart's maxConcurrentReconciles reaches the operator: {leader}"
    );
    let info = "durablejob_info{namespace=\"apps\",name=\"tick\",schedule=\"@every 5s\",time_zone=\"UTC\",overlap_policy=\"Skip\"}";
    ensure!(value(&leader, info) == Some(1.0), "{leader}");
    let dj = djs.get("tick").await?;
    let last_success = dj
        .status
        .as_ref()
        .and_then(|s| s.last_successful_time)
        .context("lastSuccessfulTime")?;
    let scraped = value(
        &leader,
        "durablejob_status_last_successful_time{namespace=\"apps\",name=\"tick\"}",
    )
    .unwrap_or(0.0);
    ensure!(
        scraped as i64 >= last_success.timestamp(),
        "{scraped} vs {last_success}"
    );
    ensure!(
        value(
            &leader,
            "durablejob_spec_suspend{namespace=\"apps\",name=\"tick\"}"
        ) == Some(0.0)
    );
    ensure!(
        value(
            &leader,
            "durablejob_next_schedule_time{namespace=\"apps\",name=\"tick\"}"
        )
        .is_some()
    );
    ensure!(
        !standby.contains("durablejob_info{"),
        "the standby has no cache and reports no DurableJobs"
    );
    let r = scrape(runner.metrics_port).await;
    ensure!(
        value(
            &r,
            "durablejob_runs_total{namespace=\"apps\",name=\"tick\",result=\"Succeeded\"}"
        )
        .unwrap_or(0.0)
            >= 1.0,
        "{r}"
    );
    ensure!(
        value(
            &r,
            "durablejob_job_creations_total{namespace=\"apps\",name=\"tick\"}"
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    ensure!(
        value(
            &r,
            "durablejob_run_start_delay_seconds_count{namespace=\"apps\",name=\"tick\"}"
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    ensure!(
        value(
            &r,
            "durablejob_run_duration_seconds_count{namespace=\"apps\",name=\"tick\",result=\"Succeeded\"}"
        )
        .unwrap_or(0.0)
            >= 1.0
    );
    let sdk = scrape(runner.sdk_metrics_port.context("the chart serves SDK metrics")?).await;
    ensure!(
        sdk.contains("temporal_"),
        "the Temporal SDK's worker metrics: {sdk}"
    );

    // Only the leader wrote.
    let audit = cluster.audit();
    // The binaries' User-Agent ends with "(<role>; <POD_NAME>)".
    let writes_by = |pod: &str| {
        let agent = format!("; {pod})");
        audit.count(|e| e.is_write() && e.user_agent.contains(&agent) && e.object_ref.resource != "leases")
    };
    ensure!(writes_by("operator-a") > 0, "the leader wrote");
    ensure!(
        writes_by("operator-b") == 0,
        "the standby wrote nothing: {}",
        writes_by("operator-b")
    );

    // A killed leader is replaced within the lease duration (6s, renewed every second).
    let killed = Instant::now();
    a.proc.kill();
    let taken = leads("operator-b", Duration::from_secs(20)).await?;
    let took = killed.elapsed();
    let transitions = taken.spec.and_then(|s| s.lease_transitions).unwrap_or_default();
    ensure!(transitions >= 2, "a new term: {transitions} transitions");
    ensure!(took < Duration::from_secs(6 + 3), "handover took {took:?}");
    djs.patch(
        "tick",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"spec": {"suspend": true}})),
    )
    .await?;
    wait_for(
        "the new leader reconciles the edit",
        Duration::from_secs(30),
        || async {
            let dj = djs.get("tick").await.ok()?;
            let s = dj.status?;
            (s.observed_generation == dj.metadata.generation && s.paused).then_some(())
        },
    )
    .await
    .with_context(|| b.proc.log_tail(30))?;
    ensure!(writes_by("operator-b") > 0, "the new leader writes");
    drop((b, runner));

    // Uninstall: nothing the charts made is left, the CRD (and so the DurableJobs) is.
    tokio::task::block_in_place(|| {
        // The operator is gone, so the finalizer would hold the DurableJob forever; a user
        // deletes DurableJobs before uninstalling, or keeps them with the CRD as here.
        helm(&kc, &dir, &["uninstall", "durablejob", "-n", SYSTEM, "--wait"])?;
        helm(
            &kc,
            &dir,
            &["uninstall", "durablejob-crds", "-n", SYSTEM, "--wait"],
        )?;
        let left = k.ok(
            &[
                "get",
                "deployments,services,serviceaccounts,roles,rolebindings,leases,poddisruptionbudgets",
                "-n",
                SYSTEM,
                "-o",
                "name",
            ],
            None,
        )?;
        let left: Vec<&str> = left.lines().filter(|l| *l != "serviceaccount/default").collect();
        ensure!(left.is_empty(), "left in {SYSTEM}: {left:?}");
        let roles = k.ok(&["get", "roles,rolebindings", "-n", APPS, "-o", "name"], None)?;
        ensure!(roles.trim().is_empty(), "left in {APPS}: {roles}");
        let cluster_rbac = k.ok(&["get", "clusterroles,clusterrolebindings", "-o", "name"], None)?;
        ensure!(
            !cluster_rbac.contains("durablejob"),
            "cluster RBAC left: {cluster_rbac}"
        );
        ensure!(
            k.run(&["get", "crd", "durablejobs.durablejob.dev"], None).0,
            "the CRD is kept (helm.sh/resource-policy: keep)"
        );
        ensure!(
            k.run(&["get", "durablejob", "tick", "-n", APPS], None).0,
            "and the DurableJob with it"
        );
        anyhow::Ok(())
    })?;
    Ok(())
}
