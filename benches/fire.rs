//! `cargo bench --bench fire`: hundreds of schedules firing at the same minute, side by side
//! with CronJob, on this machine. It starts the local control plane (hack/cluster.sh) and a
//! Temporal dev server, then, one side after the other (the other side idle):
//! 1. N CronJobs firing every minute (the real kube-controller-manager's CronJob controller);
//! 2. N DurableJobs with the same schedule and job template, through the release `durablejob
//!    operator` and `durablejob runner` as separate processes (each with the shipped roles'
//!    powers through the admin kubeconfig).
//!
//! Each Job runs `BENCH_JOB_SECS` (default 2) in the simulated kubelet. For each side and each
//! of `BENCH_SLOTS` (default 3) slots it prints Jobs expected, created and missing, and slot →
//! Job created p50/p99/max (from this process's watch receive time and the Job's slot
//! annotation), and how long the cluster took to run the Jobs (created → finished as the
//! watch saw them). For DurableJobs also: Job complete (the watch event that shows it) → run closed
//! in Temporal p50/p99, runs Temporal did not start (the DurableJobs' missedRunsByCause), the
//! runner's and operator's CPU seconds and peak RSS, and the runner's API requests per run
//! (GETs and all) from the API server's audit log. `BENCH_N` (default 300) sets N.
//! Results and how they were taken: BENCHMARKS.md.

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

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use common::{env_or, rss_peak_kib};
use durablejob::api::DurableJob;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::{
    Api,
    api::{DeleteParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Value, json};

/// What the watch saw of one Job.
#[derive(Debug, Clone)]
struct Seen {
    slot: DateTime<Utc>,
    created: DateTime<Utc>,
    /// When the watch first showed it complete or failed.
    finished: Option<DateTime<Utc>>,
    /// The Temporal workflow run (DurableJob Jobs only).
    workflow_id: Option<String>,
}

type Jobs = Arc<Mutex<BTreeMap<String, Seen>>>;

/// Watches the Jobs of `namespace` and records, per Job, its slot (from `slot_annotation`),
/// when this process first saw it and when it first saw it finished.
fn watch_jobs(
    client: &kube::Client,
    namespace: &str,
    slot_annotation: &'static str,
) -> (Jobs, tokio::task::JoinHandle<()>) {
    let api: Api<Job> = Api::namespaced(client.clone(), namespace);
    let jobs: Jobs = Arc::default();
    let sink = jobs.clone();
    let task = tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
        while let Some(Ok(job)) = events.next().await {
            let now = Utc::now();
            let annotations = job.metadata.annotations.clone().unwrap_or_default();
            let Some(slot) = annotations
                .get(slot_annotation)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            else {
                continue;
            };
            let done = job.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .flatten()
                    .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
            });
            let mut jobs = sink.lock().expect("jobs");
            let seen = jobs
                .entry(job.metadata.name.clone().unwrap_or_default())
                .or_insert(Seen {
                    slot: slot.with_timezone(&Utc),
                    created: now,
                    finished: None,
                    workflow_id: annotations.get("durablejob.dev/workflow-id").cloned(),
                });
            if done && seen.finished.is_none() {
                seen.finished = Some(now);
            }
        }
    });
    (jobs, task)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The first whole minute at least `lead` from now.
fn next_minute(lead: Duration) -> DateTime<Utc> {
    let t = Utc::now() + chrono::Duration::from_std(lead).expect("lead");
    let secs = t.timestamp();
    DateTime::from_timestamp(secs - secs.rem_euclid(60) + 60, 0).expect("a time")
}

async fn sleep_until(t: DateTime<Utc>) {
    let wait = (t - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait).await;
}

/// Per slot: Jobs created and slot → Job created seconds; prints the table rows of one side.
fn report_slots(side: &str, n: usize, first: DateTime<Utc>, slots: usize, jobs: &Jobs) -> usize {
    let jobs = jobs.lock().expect("jobs");
    let mut total = 0;
    for k in 0..slots {
        let slot = first + chrono::Duration::minutes(k as i64);
        let mut delays: Vec<f64> = jobs
            .values()
            .filter(|s| s.slot == slot)
            .map(|s| (s.created - s.slot).num_milliseconds() as f64 / 1000.0)
            .collect();
        delays.sort_by(f64::total_cmp);
        // how long the cluster took to run each Job: seen created -> seen finished
        let mut running: Vec<f64> = jobs
            .values()
            .filter(|s| s.slot == slot)
            .filter_map(|s| Some((s.finished? - s.created).num_milliseconds() as f64 / 1000.0))
            .collect();
        running.sort_by(f64::total_cmp);
        total += delays.len();
        println!(
            "| {side} | {} | {n} | {} | {} | {:.1} s | {:.1} s | {:.1} s | {} | {:.1} s | {:.1} s |",
            slot.format("%H:%M"),
            delays.len(),
            n.saturating_sub(delays.len()),
            percentile(&delays, 0.5),
            percentile(&delays, 0.99),
            delays.last().copied().unwrap_or(f64::NAN),
            running.len(),
            percentile(&running, 0.5),
            percentile(&running, 0.99),
        );
    }
    total
}

fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    let Some(close) = stat.rfind(')') else {
        return f64::NAN;
    };
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// Close times of the runs in `namespace` by workflow id, from Temporal's visibility store.
fn close_times(address: &str, namespace: &str) -> BTreeMap<String, DateTime<Utc>> {
    let listed = temporal::cli_json(
        address,
        &[
            "workflow",
            "list",
            "--namespace",
            namespace,
            "--query",
            "ExecutionStatus != 'Running'",
            "--limit",
            "100000",
        ],
    )
    .unwrap_or(Value::Null);
    listed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| {
            let id = w["execution"]["workflowId"].as_str()?.to_string();
            let closed = DateTime::parse_from_rfc3339(w["closeTime"].as_str()?).ok()?;
            Some((id, closed.with_timezone(&Utc)))
        })
        .collect()
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let n = env_or("BENCH_N", 300);
    let slots = env_or("BENCH_SLOTS", 3);
    let job_secs = env_or("BENCH_JOB_SECS", 2);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(n, slots, job_secs))
}

async fn run(n: usize, slots: usize, job_secs: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("durablejob-fire-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cluster = tokio::task::block_in_place(testsupport::Cluster::shared);
    let mut server = temporal::DevServer::start(dir.clone(), None).await?;
    let address = server.address();
    temporal::create_namespace(&address, "fire")?;
    let _cron_ns = tokio::task::block_in_place(|| cluster.namespace("fire-cron"))?;
    let _dj_ns = tokio::task::block_in_place(|| cluster.namespace("fire"))?;
    let client = cluster.client().await?;
    let pods = json!({"test.durablejob.dev/duration": format!("{job_secs}s")});
    println!(
        "fire: N={n} every minute, {slots} slots each side, Jobs of {job_secs} s, Temporal dev server at {address}\n"
    );
    println!(
        "| side | slot | Jobs expected | created | missing | slot → Job p50 | p99 | max | finished | Job created → finished p50 | p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");

    // 1. CronJobs
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), "fire-cron");
    let (cron_jobs, cron_watch) = watch_jobs(
        &client,
        "fire-cron",
        "batch.kubernetes.io/cronjob-scheduled-timestamp",
    );
    let first = next_minute(Duration::from_secs(20));
    for i in 0..n {
        let cj = testsupport::cronjob(
            &format!("cron-{i:04}"),
            json!({"schedule": "* * * * *", "concurrencyPolicy": "Forbid"}),
            pods.clone(),
        );
        cronjobs
            .create(&PostParams::default(), &serde_json::from_value(cj)?)
            .await?;
    }
    sleep_until(first + chrono::Duration::minutes(slots as i64 - 1) + chrono::Duration::seconds(100)).await;
    let _ = cronjobs
        .delete_collection(&DeleteParams::background(), &Default::default())
        .await;
    cron_watch.abort();
    report_slots("CronJob", n, first, slots, &cron_jobs);

    // 2. DurableJobs, through the operator and the runner
    let operator = spawn(
        &["operator", "--watch-namespaces", "fire"],
        cluster,
        &address,
        &dir,
    )?;
    let runner = spawn(&["runner", "--sdk-metrics-addr", "off"], cluster, &address, &dir)?;
    let runner_pid = runner.pid();
    let audit_before = cluster.audit().map(|a| runner_requests(&a));
    let djs: Api<DurableJob> = Api::namespaced(client.clone(), "fire");
    let (dj_jobs, dj_watch) = watch_jobs(&client, "fire", "durablejob.dev/scheduled-time");
    let first = next_minute(Duration::from_secs(45));
    let created = Instant::now();
    for i in 0..n {
        let spec = json!({"schedule": {"cron": ["* * * * *"]}, "overlapPolicy": "Skip", "jobTemplate": testsupport::job_template(pods.clone())});
        djs.create(
            &PostParams::default(),
            &serde_json::from_value(testsupport::durable_job(&format!("dj-{i:04}"), spec))?,
        )
        .await?;
    }
    let applied = created.elapsed();
    let (operator_cpu, runner_cpu) = (cpu_seconds(operator.pid()), cpu_seconds(runner_pid));
    sleep_until(first + chrono::Duration::minutes(slots as i64 - 1) + chrono::Duration::seconds(100)).await;
    dj_watch.abort();
    let total = report_slots("DurableJob", n, first, slots, &dj_jobs);
    let (operator_cpu, runner_cpu) = (
        cpu_seconds(operator.pid()) - operator_cpu,
        cpu_seconds(runner_pid) - runner_cpu,
    );

    // Job complete -> run closed
    let closed = close_times(&address, "fire");
    let mut closing: Vec<f64> = dj_jobs
        .lock()
        .expect("jobs")
        .values()
        .filter_map(|s| {
            let done = s.finished?;
            let at = closed.get(s.workflow_id.as_ref()?)?;
            Some((*at - done).num_milliseconds() as f64 / 1000.0)
        })
        .collect();
    closing.sort_by(f64::total_cmp);
    // runs Temporal did not start
    let mut missed: BTreeMap<String, i64> = BTreeMap::new();
    for dj in djs.list(&Default::default()).await?.items {
        let causes = serde_json::to_value(dj.status.unwrap_or_default())?["missedRunsByCause"].clone();
        for (cause, count) in causes.as_object().into_iter().flatten() {
            *missed.entry(cause.clone()).or_default() += count.as_i64().unwrap_or(0);
        }
    }
    println!();
    println!("| DurableJob figure | value |");
    println!("|---|---|");
    println!(
        "| {n} DurableJobs created in | {:.1} s (the first slot was {}) |",
        applied.as_secs_f64(),
        first.format("%H:%M:%S")
    );
    println!(
        "| Job complete → run closed (p50, p99, max; {} runs) | {:.2} s, {:.2} s, {:.2} s |",
        closing.len(),
        percentile(&closing, 0.5),
        percentile(&closing, 0.99),
        closing.last().copied().unwrap_or(f64::NAN)
    );
    println!("| runs Temporal did not start, by cause | {missed:?} |");
    println!("| runner CPU over the slots | {runner_cpu:.1} s |");
    println!("| operator CPU over the slots | {operator_cpu:.1} s |");
    println!(
        "| runner peak RSS | {:.0} MiB |",
        rss_peak_kib(runner_pid).map_or(f64::NAN, |k| k as f64 / 1024.0)
    );
    println!(
        "| operator peak RSS | {:.0} MiB |",
        rss_peak_kib(operator.pid()).map_or(f64::NAN, |k| k as f64 / 1024.0)
    );
    if let (Some(before), Some(audit)) = (audit_before, cluster.audit()) {
        let after = runner_requests(&audit);
        let runs = total.max(1) as f64;
        for (verb, count) in after {
            let delta = count - before.get(&verb).copied().unwrap_or(0);
            println!(
                "| runner API requests per run: {verb} | {:.2} |",
                delta as f64 / runs
            );
        }
    }
    drop(runner);
    drop(operator);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// `durablejob ROLE ARGS` as a separate process against the bench's cluster and Temporal
/// namespace `fire`, logging to `DIR/ROLE.log`.
fn spawn(
    args: &[&str],
    cluster: &testsupport::Cluster,
    address: &str,
    dir: &std::path::Path,
) -> anyhow::Result<procs::Guarded> {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_durablejob"));
    cmd.args(args)
        .args(["--log-format", "json"])
        .arg("--metrics-addr")
        .arg(format!("127.0.0.1:{}", procs::free_port()))
        .arg("--health-addr")
        .arg(format!("127.0.0.1:{}", procs::free_port()))
        .env("KUBECONFIG", cluster.kubeconfig())
        .env("TEMPORAL_ADDRESS", address)
        .env("TEMPORAL_NAMESPACE", "fire")
        .env("RUST_LOG", "warn");
    Ok(procs::Guarded::spawn(cmd, &dir.join(format!("{}.log", args[0])))?)
}

/// Requests the runner made, by verb and resource (`get jobs`, `get durablejobs`, ...): the
/// runner runs with the admin credentials here, so it is told apart by its user agent.
fn runner_requests(audit: &testsupport::AuditLog) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for e in audit.events() {
        if e.user_agent.contains("(runner;") {
            *out.entry(format!("{} {}", e.verb, e.object_ref.resource))
                .or_default() += 1;
        }
    }
    out
}
