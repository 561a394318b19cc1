//! `cargo bench --bench converge`: the operator at scale, black-box, on this machine. It starts
//! the local control plane (hack/cluster.sh) and a Temporal dev server, runs the release
//! `durablejob operator` as a separate process, applies N DurableJobs with 32 concurrent
//! creates and prints:
//! - the time until all are Ready, against an ideal controller on the same cluster and server
//!   that does, per DurableJob, only what any operator must (the user's create, a finalizer patch,
//!   CreateSchedule, a status patch) at the same concurrency with nothing read back. Its
//!   CreateSchedule and its status carry what the operator's do (read back from a probe
//!   DurableJob the operator reconciled first); like any controller it keeps a watch of its
//!   resources open, and both are timed by the same watch until every one is Ready. It runs
//!   before and again after the operator (each run's leftover work waited out), so the mean of
//!   its two runs faces the cluster and server the operator faced: operator time / that mean is
//!   the figure of merit. Beside it, a raw client making only the N CreateSchedule calls;
//! - the operator's Kubernetes requests per DurableJob while converging, by verb and resource
//!   (the API server's audit log);
//! - the operator's peak RSS (VmHWM);
//! - steady state: Temporal calls and Kubernetes writes per second while nothing changes;
//! - apply → Ready latency of single DurableJobs on the idle operator (p50, p99);
//! - schedule fire → Job created through the built-in runner (`BENCH_FIRE` DurableJobs firing
//!   every minute, two minutes; p50, p99, max), timed from the slot to the Job's ADDED event.
//!
//! - Temporal's own work per DurableJob in each phase (the dev server's `service_requests` and
//!   `persistence_requests` by service and operation), where the operator's differs from the
//!   ideal's.
//!
//! It prints the moment each phase starts. With `BENCH_PROFILE=DIR` (and the cluster started
//! with `DURABLEJOB_APISERVER_PROFILING=true`) it takes the API server's CPU profile in 10 s
//! windows throughout and files each under its phase (`DIR/operator-007.pb.gz`, ...).
//!
//! `BENCH_N` (default 1000), `BENCH_STEADY_SECS` (default 330, so that one sweep of the
//! schedule lists falls inside), `BENCH_CONCURRENCY` (default 32), `BENCH_FIRE` (default 20)
//! and `BENCH_OPERATOR_ARGS` (extra operator flags) tune it. Results and how they were taken: BENCHMARKS.md.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "../tests/e2e/operator.rs"]
mod operator;
#[allow(dead_code)]
#[path = "../tests/e2e/procs.rs"]
mod procs;
#[allow(dead_code)]
#[path = "../tests/e2e/temporal.rs"]
mod temporal;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{cpu_by_name, env_or, rss_peak_kib, server_work, work_between};

use durablejob::api::DurableJob;
use futures::StreamExt;
use kube::{Api, api::PostParams};
use serde_json::json;

fn manifest(name: &str) -> DurableJob {
    // a schedule whose first run is hours away: the benchmark measures the control loop
    serde_json::from_value(json!({
        "apiVersion": "durablejob.dev/v1alpha1", "kind": "DurableJob",
        "metadata": {"name": name},
        "spec": {"schedule": {"intervals": [{"every": "24h", "offset": "7h"}]},
                 "jobTemplate": testsupport::job_template(json!({}))}
    }))
    .expect("a DurableJob")
}

/// A DurableJob whose Job is created at every minute, by the built-in runner.
fn every_minute(name: &str) -> DurableJob {
    serde_json::from_value(json!({
        "apiVersion": "durablejob.dev/v1alpha1", "kind": "DurableJob",
        "metadata": {"name": name},
        "spec": {"schedule": {"cron": ["* * * * *"]},
                 "jobTemplate": testsupport::job_template(json!({}))}
    }))
    .expect("a DurableJob")
}

/// Schedule fire → Job created: `count` DurableJobs firing every minute, over two minutes,
/// each Job timed from its slot (the scheduled-time annotation) to its ADDED watch event here.
async fn fire_to_job(
    client: &kube::Client,
    djs: &Api<DurableJob>,
    count: usize,
) -> anyhow::Result<Vec<Duration>> {
    use k8s_openapi::api::batch::v1::Job;
    use kube::runtime::{WatchStreamExt, watcher};
    let jobs: Api<Job> = Api::namespaced(client.clone(), "bench");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Duration>::new()));
    let (sink, stream_jobs) = (seen.clone(), jobs.clone());
    let watch = tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(stream_jobs, watcher::Config::default()).applied_objects());
        let mut names = std::collections::HashSet::new();
        while let Some(Ok(job)) = events.next().await {
            let at = chrono::Utc::now();
            let slot = job
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("durablejob.dev/scheduled-time"))
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
            if let (Some(slot), Some(name)) = (slot, job.metadata.name.clone())
                && names.insert(name)
            {
                let delay = (at - slot.with_timezone(&chrono::Utc))
                    .to_std()
                    .unwrap_or_default();
                sink.lock().expect("fire latencies").push(delay);
            }
        }
    });
    for i in 0..count {
        djs.create(&PostParams::default(), &every_minute(&format!("fire-{i:03}")))
            .await?;
    }
    let deadline = Instant::now() + Duration::from_secs(200);
    while seen.lock().expect("fire latencies").len() < 2 * count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    watch.abort();
    for i in 0..count {
        let _ = djs.delete(&format!("fire-{i:03}"), &Default::default()).await;
    }
    let mut out = seen.lock().expect("fire latencies").clone();
    anyhow::ensure!(
        out.len() >= 2 * count,
        "only {} of {} Jobs within 200 s",
        out.len(),
        2 * count
    );
    out.sort();
    Ok(out)
}

fn ready(dj: &DurableJob) -> bool {
    dj.status.as_ref().is_some_and(|s| {
        s.observed_generation == dj.metadata.generation
            && s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

const PROCESSES: &[&str] = &[
    "durablejob",
    "kube-apiserver",
    "etcd",
    "temporal",
    "kube-controller",
    "kwok",
];

/// Waits until the processes above are idle together (under 15 % of one core in a second, twice
/// in a row) or `max` has passed, and says how long that took. Temporal runs each new schedule's
/// own workflow after CreateSchedule has answered, so a phase leaves work queued behind it;
/// waiting it out keeps that work off the next phase's clock and CPU figures.
async fn settle(max: Duration) -> Duration {
    let started = Instant::now();
    let total = || cpu_by_name(PROCESSES).iter().map(|(_, s)| s).sum::<f64>();
    let (mut before, mut quiet) = (total(), 0);
    while quiet < 2 && started.elapsed() < max {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = total();
        quiet = if now - before < 0.15 { quiet + 1 } else { 0 };
        before = now;
    }
    started.elapsed()
}

/// The operator's Temporal calls so far (all operations and outcomes).
async fn temporal_calls(port: u16) -> f64 {
    operator::scrape(port)
        .await
        .lines()
        .filter(|l| l.starts_with("durablejob_temporal_requests_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `durablejob_temporal_requests_total` by operation (any outcome).
async fn temporal_calls_by_operation(port: u16) -> std::collections::BTreeMap<String, f64> {
    operator::temporal_requests_by_operation(&operator::scrape(port).await)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// N raw CreateSchedule calls at `concurrency`, in a namespace of their own.
async fn raw_baseline(
    address: &str,
    namespace: &str,
    n: usize,
    concurrency: usize,
    content: &Content,
) -> anyhow::Result<(Duration, usize)> {
    let client = raw_client(address, namespace).await?;
    Ok(timed(n, concurrency, |i| {
        let c = client.clone();
        async move { create_schedule(c, &format!("raw-{i}"), content).await.is_ok() }
    })
    .await)
}

/// Runs `task(0..n)`, `concurrency` at a time; the time it took and how many returned false.
async fn timed<F: std::future::Future<Output = bool>>(
    n: usize,
    concurrency: usize,
    task: impl FnMut(usize) -> F,
) -> (Duration, usize) {
    let started = Instant::now();
    let failed = futures::stream::iter(0..n)
        .map(task)
        .buffer_unordered(concurrency)
        .filter(|ok| futures::future::ready(!*ok))
        .count()
        .await;
    (started.elapsed(), failed)
}

/// What the operator sent and wrote for one DurableJob (the probe), for the ideal controller
/// to send and write the same: its CreateSchedule request's schedule and memo, and its status.
struct Content {
    schedule: temporalio_common::protos::temporal::api::schedule::v1::Schedule,
    memo: Option<temporalio_common::protos::temporal::api::common::v1::Memo>,
    status: serde_json::Value,
}

/// Reads back what the operator made for `name` in namespace `probe`: the schedule from a
/// describe (Temporal stores the spec the operator sends), its memo, and the status.
async fn probe_content(kube: &kube::Client, address: &str, name: &str) -> anyhow::Result<Content> {
    use temporalio_client::{NamespacedClient, grpc::WorkflowService, tonic::IntoRequest};
    use temporalio_common::protos::temporal::api::workflowservice::v1::DescribeScheduleRequest;
    let djs: Api<DurableJob> = Api::namespaced(kube.clone(), "probe");
    let deadline = Instant::now() + Duration::from_secs(60);
    let dj = loop {
        let dj = djs.get(name).await?;
        if ready(&dj) {
            break dj;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the probe DurableJob is not Ready after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let status = dj.status.clone().unwrap_or_default();
    let id = status.schedule_id.clone().unwrap_or_default();
    let mut c = raw_client(address, "bench").await?;
    let req = DescribeScheduleRequest {
        namespace: c.namespace(),
        schedule_id: id,
    };
    let described = WorkflowService::describe_schedule(&mut c, req.into_request())
        .await?
        .into_inner();
    Ok(Content {
        schedule: described.schedule.unwrap_or_default(),
        memo: described.memo,
        status: serde_json::to_value(status)?,
    })
}

/// The DurableJobs in `api` whose status says Ready for their generation, as a watch shows
/// them (a polled list would load the API server the controllers need).
fn watch_ready(api: Api<DurableJob>) -> (tokio::task::JoinHandle<()>, Arc<Mutex<BTreeSet<String>>>) {
    let ready_names = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let sink = ready_names.clone();
    let watch = tokio::spawn(async move {
        use kube::runtime::{WatchStreamExt, watcher};
        let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
        while let Some(Ok(dj)) = events.next().await {
            if ready(&dj) {
                sink.lock()
                    .expect("ready")
                    .insert(dj.metadata.name.clone().unwrap_or_default());
            }
        }
    });
    (watch, ready_names)
}

/// Waits until `count` names are in `ready_names`; the time since `started`.
async fn all_ready(
    ready_names: &Mutex<BTreeSet<String>>,
    count: usize,
    started: Instant,
    dir: &std::path::Path,
) -> anyhow::Result<Duration> {
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let ready_now = ready_names.lock().expect("ready").len();
        if ready_now >= count {
            return Ok(started.elapsed());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "only {ready_now} of {count} Ready after 30 minutes; see {}",
                dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The ideal controller: the user's creates of `n` DurableJobs, `creates` at a time as in the
/// operator's phase, and for each DurableJob created, `reconciles` at a time (the operator's
/// reconcile concurrency) a finalizer patch, the CreateSchedule the operator sends and a status
/// patch writing the status the operator writes (both from the probe), nothing read back. Like
/// any controller it keeps a watch of its resources open; it is timed as the operator is, from
/// the first create until the measuring watch sees every one Ready.
#[allow(clippy::too_many_arguments)]
async fn ideal_baseline(
    kube: &kube::Client,
    address: &str,
    namespace: &str,
    n: usize,
    creates: usize,
    reconciles: usize,
    content: &Content,
    dir: &std::path::Path,
) -> anyhow::Result<(Duration, usize)> {
    use kube::api::{Patch, PatchParams};
    let temporal = raw_client(address, namespace).await?;
    let djs: Api<DurableJob> = Api::namespaced(kube.clone(), namespace);
    let (informer, _) = watch_ready(djs.clone());
    let (measure, ready_names) = watch_ready(djs.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let (created_tx, created_rx) = tokio::sync::mpsc::channel::<String>(n.max(1));
    let creating = {
        let djs = djs.clone();
        async move {
            futures::stream::iter(0..n)
                .map(|i| {
                    let (djs, tx) = (djs.clone(), created_tx.clone());
                    async move {
                        let name = format!("dj-{i:05}");
                        let ok = djs.create(&PostParams::default(), &manifest(&name)).await.is_ok();
                        if ok {
                            let _ = tx.send(name).await;
                        }
                        ok
                    }
                })
                .buffer_unordered(creates)
                .filter(|ok| futures::future::ready(!*ok))
                .count()
                .await
        }
    };
    let reconciling = futures::stream::unfold(created_rx, |mut rx| async move {
        rx.recv().await.map(|name| (name, rx))
    })
    .map(|name| {
        let (djs, temporal) = (djs.clone(), temporal.clone());
        async move {
            let steps = async {
                djs.patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"finalizers": ["durablejob.dev/schedule"]}})),
                )
                .await?;
                let id = format!("{namespace}-{name}");
                create_schedule(temporal, &id, content).await?;
                let mut status = content.status.clone();
                status["scheduleId"] = json!(id);
                djs.patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": status })),
                )
                .await?;
                anyhow::Ok(())
            };
            steps.await.is_ok()
        }
    })
    .buffer_unordered(reconciles)
    .filter(|ok| futures::future::ready(!*ok))
    .count();
    let (not_created, failed) = tokio::join!(creating, reconciling);
    let took = all_ready(&ready_names, n - not_created - failed, started, dir).await;
    measure.abort();
    informer.abort();
    Ok((took?, not_created + failed))
}

/// The operator's reconcile concurrency: `--max-concurrent-reconciles` in `extra` (its extra
/// flags), or its default.
fn reconcile_concurrency(extra: &str) -> usize {
    let flags: Vec<&str> = extra.split_whitespace().collect();
    flags
        .iter()
        .position(|f| *f == "--max-concurrent-reconciles")
        .and_then(|i| flags.get(i + 1)?.parse().ok())
        .unwrap_or(durablejob::operator::DEFAULT_MAX_CONCURRENT_RECONCILES as usize)
}

type RawClient = temporalio_client::Client;

async fn raw_client(address: &str, namespace: &str) -> anyhow::Result<RawClient> {
    use std::str::FromStr;
    use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, Url};
    let conn =
        Connection::connect(ConnectionOptions::new(Url::from_str(&format!("http://{address}"))?).build())
            .await?;
    Ok(Client::new(
        conn,
        ClientOptions::new(namespace.to_string()).build(),
    )?)
}

/// One CreateSchedule call carrying what the operator's carries (`content`, from the probe),
/// under schedule and workflow id `id`.
async fn create_schedule(mut c: RawClient, id: &str, content: &Content) -> anyhow::Result<()> {
    use temporalio_client::{NamespacedClient, grpc::WorkflowService, tonic::IntoRequest};
    use temporalio_common::protos::temporal::api::{
        schedule::v1::schedule_action::Action, workflowservice::v1::CreateScheduleRequest,
    };
    let mut schedule = content.schedule.clone();
    if let Some(Action::StartWorkflow(w)) = schedule.action.as_mut().and_then(|a| a.action.as_mut()) {
        w.workflow_id = id.to_string();
    }
    let req = CreateScheduleRequest {
        namespace: c.namespace(),
        schedule_id: id.to_string(),
        schedule: Some(schedule),
        memo: content.memo.clone(),
        request_id: id.to_string(),
        ..Default::default()
    };
    WorkflowService::create_schedule(&mut c, req.into_request()).await?;
    Ok(())
}

/// The operator's requests by verb and resource (`patch durablejobs/status`, `create events`,
/// ...; a dry run is counted apart): it runs with the admin credentials here, so it is told apart
/// by its user agent.
fn operator_requests(audit: &testsupport::AuditLog) -> std::collections::BTreeMap<String, i64> {
    let mut out = std::collections::BTreeMap::new();
    for e in audit.events() {
        if e.user_agent.contains("(operator;") && e.verb != "watch" {
            let mut what = format!("{} {}", e.verb, e.object_ref.resource);
            if !e.object_ref.subresource.is_empty() {
                what = format!("{what}/{}", e.object_ref.subresource);
            }
            if e.is_dry_run() {
                what.push_str(" (dry run)");
            }
            *out.entry(what).or_default() += 1;
        }
    }
    out
}

/// The rows of Temporal's work per DurableJob where the operator's phase differs from the
/// ideal controller's runs (the mean of the two) by at least 0.05 calls per DurableJob, the
/// largest difference first, as table rows: operation, ideal before, operator, ideal after.
fn work_rows(
    n: usize,
    ideal: &std::collections::BTreeMap<String, f64>,
    operator: &std::collections::BTreeMap<String, f64>,
    ideal_after: &std::collections::BTreeMap<String, f64>,
) -> Vec<String> {
    let per =
        |m: &std::collections::BTreeMap<String, f64>, k: &str| m.get(k).copied().unwrap_or(0.0) / n as f64;
    let keys: BTreeSet<&String> = ideal
        .keys()
        .chain(operator.keys())
        .chain(ideal_after.keys())
        .collect();
    let mut rows: Vec<(f64, String)> = keys
        .into_iter()
        .map(|k| {
            let (a, o, b) = (per(ideal, k), per(operator, k), per(ideal_after, k));
            (o - (a + b) / 2.0, format!("| {k} | {a:.2} | {o:.2} | {b:.2} |"))
        })
        .filter(|(d, _)| d.abs() >= 0.05)
        .collect();
    rows.sort_by(|x, y| y.0.abs().total_cmp(&x.0.abs()));
    rows.into_iter().map(|(_, r)| r).collect()
}

/// With `BENCH_PROFILE` set to a directory, takes the API server's CPU profile in back-to-back
/// 10 s windows for as long as the bench runs, each saved as `<phase>-<i>.pb.gz` under that
/// directory when the whole window fell in one phase (`mixed-<i>.pb.gz` otherwise); the phase is
/// what [`Phases::enter`] last set. Needs the cluster started with
/// `DURABLEJOB_APISERVER_PROFILING=true`. Merge one phase's windows with
/// `go tool pprof -proto DIR/operator-*.pb.gz > operator.pb.gz`.
#[derive(Clone, Default)]
struct Phases(Arc<Mutex<&'static str>>);

impl Phases {
    fn enter(&self, phase: &'static str) {
        *self.0.lock().expect("phase") = phase;
        println!(
            "durablejob-bench: phase {phase} at {}",
            chrono::Utc::now().format("%H:%M:%S%.3f")
        );
    }

    fn now(&self) -> &'static str {
        *self.0.lock().expect("phase")
    }

    fn profile_api_server(&self, kubeconfig: std::path::PathBuf) -> Option<tokio::task::JoinHandle<()>> {
        let out = std::path::PathBuf::from(std::env::var_os("BENCH_PROFILE")?);
        std::fs::create_dir_all(&out).ok()?;
        println!("durablejob-bench: API server profiles in {}", out.display());
        let phases = self.clone();
        Some(tokio::task::spawn_blocking(move || {
            for i in 0.. {
                let before = phases.now();
                let got = std::process::Command::new("kubectl")
                    .arg("--kubeconfig")
                    .arg(&kubeconfig)
                    .args(["get", "--raw", "/debug/pprof/profile?seconds=10"])
                    .output();
                let Ok(got) = got.map_err(|e| eprintln!("durablejob-bench: kubectl: {e}")) else {
                    return;
                };
                if !got.status.success() {
                    eprintln!(
                        "durablejob-bench: no API server profile (started without DURABLEJOB_APISERVER_PROFILING=true?): {}",
                        String::from_utf8_lossy(&got.stderr).trim()
                    );
                    return;
                }
                let phase = if phases.now() == before { before } else { "mixed" };
                let _ = std::fs::write(out.join(format!("{phase}-{i:03}.pb.gz")), got.stdout);
                if phases.now() == "done" {
                    return;
                }
            }
        }))
    }
}

fn main() -> anyhow::Result<()> {
    let n = env_or("BENCH_N", 1000);
    let steady_secs = env_or("BENCH_STEADY_SECS", 330) as u64;
    let concurrency = env_or("BENCH_CONCURRENCY", 32);
    let fire = env_or("BENCH_FIRE", 20);
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(n, steady_secs, concurrency, fire))
}

async fn run(n: usize, steady_secs: u64, concurrency: usize, fire: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("durablejob-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cluster = tokio::task::block_in_place(testsupport::Cluster::shared);
    let temporal_metrics = procs::free_port();
    let temporal_metrics_arg = temporal_metrics.to_string();
    let mut server =
        temporal::DevServer::start_with(dir.clone(), None, &["--metrics-port", &temporal_metrics_arg])
            .await?;
    let address = server.address();
    temporal::create_namespace(&address, "bench")?;
    temporal::create_namespace(&address, "raw")?;
    temporal::create_namespace(&address, "ideal")?;
    temporal::create_namespace(&address, "ideal-after")?;
    let _ns = tokio::task::block_in_place(|| cluster.namespace("bench"))?;
    let _ideal_ns = tokio::task::block_in_place(|| cluster.namespace("ideal"))?;
    let _probe_ns = tokio::task::block_in_place(|| cluster.namespace("probe"))?;
    let _after_ns = tokio::task::block_in_place(|| cluster.namespace("ideal-after"))?;
    let client = cluster.client().await?;
    let phases = Phases::default();
    phases.enter("setup");
    let profiler = phases.profile_api_server(cluster.kubeconfig().to_path_buf());
    let djs: Api<DurableJob> = Api::namespaced(client.clone(), "bench");
    println!("durablejob-bench: N={n}, {concurrency} concurrent creates, Temporal dev server at {address}");

    let metrics_port = procs::free_port();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_durablejob"));
    let extra = std::env::var("BENCH_OPERATOR_ARGS").unwrap_or_default();
    let reconciles = reconcile_concurrency(&extra);
    cmd.args([
        "operator",
        "--log-format",
        "json",
        "--watch-namespaces",
        "bench,probe",
    ])
    .args(extra.split_whitespace())
    .arg("--metrics-addr")
    .arg(format!("127.0.0.1:{metrics_port}"))
    .arg("--health-addr")
    .arg(format!("127.0.0.1:{}", procs::free_port()))
    .env("KUBECONFIG", cluster.kubeconfig())
    .env("TEMPORAL_ADDRESS", &address)
    .env("TEMPORAL_NAMESPACE", "bench")
    .env("RUST_LOG", "warn");
    let operator = procs::Guarded::spawn(cmd, &dir.join("operator.log"))?;
    let pid = operator.pid();
    // the probe: one DurableJob of the benchmark's kind, whose CreateSchedule and status the
    // ideal controller sends and writes in the same form
    Api::<DurableJob>::namespaced(client.clone(), "probe")
        .create(&PostParams::default(), &manifest("probe"))
        .await?;
    let content = probe_content(&client, &address, "probe").await?;
    let calls_before_converge = temporal_calls(metrics_port).await;

    // the ideal controller first, on the idle cluster and server; its CPU figures include the
    // work it left queued, up to the point everything is idle again
    settle(Duration::from_secs(120)).await;
    phases.enter("ideal");
    let work_before_ideal = server_work(&operator::scrape(temporal_metrics).await);
    let cpu_before_ideal = cpu_by_name(PROCESSES);
    let (ideal, ideal_errors) = ideal_baseline(
        &client,
        &address,
        "ideal",
        n,
        concurrency,
        reconciles,
        &content,
        &dir,
    )
    .await?;
    let ideal_tail = settle(Duration::from_secs(300)).await;
    let work_ideal = work_between(
        &work_before_ideal,
        &server_work(&operator::scrape(temporal_metrics).await),
    );
    phases.enter("between");
    let cpu_ideal: Vec<String> = cpu_by_name(PROCESSES)
        .into_iter()
        .zip(cpu_before_ideal)
        .map(|((n, after), (_, before))| format!("{n} {:.1}", after - before))
        .collect();

    // converge: timed by the same watch as the ideal controller
    let (watch, ready_names) = watch_ready(djs.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    phases.enter("operator");
    let work_before_operator = server_work(&operator::scrape(temporal_metrics).await);
    let cpu_before = cpu_by_name(PROCESSES);
    let operator_requests_before = cluster.audit().map(|a| operator_requests(&a));
    let started = Instant::now();
    let (applied, refused) = timed(n, concurrency, |i| {
        let djs = djs.clone();
        async move {
            djs.create(&PostParams::default(), &manifest(&format!("dj-{i:05}")))
                .await
                .is_ok()
        }
    })
    .await;
    let created = n - refused;
    let converged = all_ready(&ready_names, created, started, &dir).await?;
    watch.abort();
    let operator_tail = settle(Duration::from_secs(300)).await;
    let work_operator = work_between(
        &work_before_operator,
        &server_work(&operator::scrape(temporal_metrics).await),
    );
    phases.enter("between");
    let peak_after_converge = rss_peak_kib(pid).unwrap_or(0);
    let cpu_converge: Vec<(String, f64)> = cpu_by_name(PROCESSES)
        .into_iter()
        .zip(cpu_before)
        .map(|((n, after), (_, before))| (n, after - before))
        .collect();
    let calls_converge = temporal_calls(metrics_port).await - calls_before_converge;
    let operator_requests_converge: Vec<String> = match (operator_requests_before, cluster.audit()) {
        (Some(before), Some(audit)) => operator_requests(&audit)
            .into_iter()
            .map(|(what, count)| (what.clone(), count - before.get(&what).copied().unwrap_or(0)))
            .filter(|(_, count)| *count > 0)
            .map(|(what, count)| format!("{what} {:.2}", count as f64 / n as f64))
            .collect(),
        _ => vec![],
    };

    // the ideal controller again, now that the cluster and the server hold the operator's
    // DurableJobs too: the operator converged holding the ideal's first thousand, so the mean of
    // the two ideal runs faces what it faced
    phases.enter("ideal-after");
    let work_before_after = server_work(&operator::scrape(temporal_metrics).await);
    let cpu_before_after = cpu_by_name(PROCESSES);
    let (ideal_after, ideal_after_errors) = ideal_baseline(
        &client,
        &address,
        "ideal-after",
        n,
        concurrency,
        reconciles,
        &content,
        &dir,
    )
    .await?;
    settle(Duration::from_secs(300)).await;
    let work_ideal_after = work_between(
        &work_before_after,
        &server_work(&operator::scrape(temporal_metrics).await),
    );
    phases.enter("steady");
    let cpu_ideal_after: Vec<String> = cpu_by_name(PROCESSES)
        .into_iter()
        .zip(cpu_before_after)
        .map(|((n, after), (_, before))| format!("{n} {:.1}", after - before))
        .collect();

    // steady state: the sweep lists the schedules every resync interval (5m)
    let by_op_before = temporal_calls_by_operation(metrics_port).await;
    let audit_before = cluster
        .audit()
        .map(|a| a.count(|e| e.object_ref.namespace == "bench" && e.is_write()));
    let calls_before = temporal_calls(metrics_port).await;
    tokio::time::sleep(Duration::from_secs(steady_secs)).await;
    let calls_steady = temporal_calls(metrics_port).await - calls_before;
    let by_op_after = temporal_calls_by_operation(metrics_port).await;
    let steady_by_op: Vec<String> = by_op_after
        .iter()
        .map(|(op, n)| (op, n - by_op_before.get(op).copied().unwrap_or(0.0)))
        .filter(|(_, n)| *n > 0.0)
        .map(|(op, n)| format!("{op} {n:.0}"))
        .collect();
    let audit_after = cluster
        .audit()
        .map(|a| a.count(|e| e.object_ref.namespace == "bench" && e.is_write()));
    let writes_steady = match (audit_before, audit_after) {
        (Some(b), Some(a)) => Some(a - b),
        _ => None,
    };

    // apply -> Ready on the idle operator
    let mut latencies = vec![];
    for i in 0..50 {
        let name = format!("single-{i:02}");
        let t0 = Instant::now();
        djs.create(&PostParams::default(), &manifest(&name)).await?;
        loop {
            if djs.get(&name).await.map(|d| ready(&d)).unwrap_or(false) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(t0.elapsed());
    }
    latencies.sort();

    // schedule fire -> Job, through the built-in runner (admin credentials, as the operator)
    let runner = operator::Runner::start(&dir, cluster.kubeconfig(), &address, "bench")?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fired = fire_to_job(&client, &djs, fire).await?;
    drop(runner);
    let peak = rss_peak_kib(pid).unwrap_or(0);

    // the raw client on the same server, same concurrency
    let (raw, raw_errors) = raw_baseline(&address, "raw", n, concurrency, &content).await?;

    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| DurableJobs created (kubectl-equivalent creates, {concurrency} at a time) | {created} in {:.1} s |",
        applied.as_secs_f64()
    );
    println!(
        "| all Ready | {:.1} s ({:.0}/s) |",
        converged.as_secs_f64(),
        rate(converged)
    );
    println!(
        "| ideal controller (creates {concurrency} at a time; finalizer patch, CreateSchedule, status patch {reconciles} at a time, as the operator reconciles) | {:.1} s ({:.0}/s), {ideal_errors} failed |",
        ideal.as_secs_f64(),
        rate(ideal)
    );
    println!(
        "| the ideal controller again, after the operator | {:.1} s ({:.0}/s), {ideal_after_errors} failed |",
        ideal_after.as_secs_f64(),
        rate(ideal_after)
    );
    println!(
        "| operator time / ideal time (the mean of the two ideal runs) | {:.2} (before: {:.2}, after: {:.2}; target: at most 1.25) |",
        converged.as_secs_f64() / ((ideal + ideal_after).as_secs_f64() / 2.0),
        converged.as_secs_f64() / ideal.as_secs_f64(),
        converged.as_secs_f64() / ideal_after.as_secs_f64()
    );
    println!(
        "| CPU seconds for the ideal controller's work, up to idle ({:.0} s after its last status patch) | {} |",
        ideal_tail.as_secs_f64(),
        cpu_ideal.join(", ")
    );
    println!(
        "| the same for the ideal controller's run after the operator | {} |",
        cpu_ideal_after.join(", ")
    );
    println!(
        "| operator's Kubernetes requests per DurableJob while converging | {} |",
        operator_requests_converge.join(", ")
    );
    println!(
        "| raw CreateSchedule, same N and concurrency | {:.1} s ({:.0}/s), {raw_errors} errors |",
        raw.as_secs_f64(),
        rate(raw)
    );
    println!(
        "| operator / raw | {:.2} |",
        raw.as_secs_f64() / converged.as_secs_f64()
    );
    println!(
        "| Temporal calls to converge | {:.0} ({:.2} per DurableJob) |",
        calls_converge,
        calls_converge / n as f64
    );
    let cpu: Vec<String> = cpu_converge.iter().map(|(n, s)| format!("{n} {s:.1}")).collect();
    println!(
        "| CPU seconds for converging, up to idle ({:.0} s after the last Ready) | {} |",
        operator_tail.as_secs_f64(),
        cpu.join(", ")
    );
    println!(
        "| peak RSS after converging / at the end | {} MiB / {} MiB |",
        peak_after_converge / 1024,
        peak / 1024
    );
    println!(
        "| steady state over {steady_secs} s: Temporal calls | {:.0} ({:.3}/s per 1,000 DurableJobs): {} |",
        calls_steady,
        calls_steady / steady_secs as f64 / (n as f64 / 1000.0),
        if steady_by_op.is_empty() {
            "none".to_string()
        } else {
            steady_by_op.join(", ")
        }
    );
    println!(
        "| steady state, modelled: a list page per 1,000 every 5m + a describe each per hour | {:.3}/s per 1,000 DurableJobs |",
        (1.0 / 300.0) + 1000.0 / 3600.0
    );
    match writes_steady {
        Some(w) => println!("| steady state over {steady_secs} s: Kubernetes writes | {w} |"),
        None => println!("| steady state: Kubernetes writes | (no audit log) |"),
    }
    println!(
        "| apply → Ready, idle operator, 50 in a row | p50 {} ms, p99 {} ms |",
        percentile(&latencies, 0.5).as_millis(),
        percentile(&latencies, 0.99).as_millis()
    );
    println!(
        "| schedule fire → Job created, {fire} DurableJobs every minute, {} Jobs | p50 {} ms, p99 {} ms, max {} ms |",
        fired.len(),
        percentile(&fired, 0.5).as_millis(),
        percentile(&fired, 0.99).as_millis(),
        fired.last().copied().unwrap_or_default().as_millis()
    );
    println!();
    println!(
        "Temporal's own work per DurableJob where the operator's phase differs from the ideal's (the dev server's service_requests and persistence_requests, up to idle):"
    );
    println!();
    println!("| Temporal service, operation | ideal before | operator | ideal after |");
    println!("|---|---|---|---|");
    for row in work_rows(n, &work_ideal, &work_operator, &work_ideal_after) {
        println!("{row}");
    }
    phases.enter("done");
    if let Some(profiler) = profiler {
        let _ = tokio::time::timeout(Duration::from_secs(15), profiler).await;
    }
    drop(operator);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
