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
//! watch saw them). For DurableJobs also: Job done → run closed in Temporal p50/p99, from the
//! first watch event that showed the Job's pod succeeded (a one-pod Job's run ends then, before
//! the Job controller marks the Job Complete) and from the one that showed the Job Complete;
//! runs Temporal did not start (the DurableJobs' missedRunsByCause), the runner's and
//! operator's CPU seconds and peak RSS, every part's CPU over the slots on each side (API server,
//! etcd, controller manager, scheduler, kwok, Temporal, ours), Temporal's own requests and
//! persistence calls per Job (its /metrics), the operator's reconciles and Temporal calls per run (from
//! its /metrics), and the runner's API requests per run (GETs and all) from the API server's audit
//! log, counted up to the slot after the last measured one. `BENCH_N` (default 300) sets N;
//! `BENCH_SIDES` (`both`, `cronjob`, `durablejob`) which sides run; `BENCH_PAUSE_OPERATOR=1`
//! stops the operator (SIGSTOP) over the slots; `BENCH_TEMPORAL_CONFIG` passes
//! the dev server dynamic config values (`KEY=VALUE`, separated by `;`), e.g.
//! `worker.schedulerNamespaceStartWorkflowRPS=1000` (how many schedule actions Temporal
//! starts per second in a namespace, 30 by default).
//!
//! The cluster is one of the bench's own. Its kube-controller-manager runs with
//! `--kube-api-qps BENCH_CONTROLLER_QPS` (default 200, burst twice that; `0` keeps Kubernetes'
//! default of 20): the Job controller makes about 5.6 requests per 2-second Job, so at the default
//! it completes about 3.6 Jobs a second, fewer than 300 every-minute schedules need, for either
//! side. The bench prints the Job controller's requests per Job beside the rest.
//! Results and how they were taken: BENCHMARKS.md.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "../tests/e2e/operator.rs"]
mod operator;
#[path = "common/processes.rs"]
mod processes;
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
use common::{
    cpu_by_name, cpu_seconds, env_or, percentile, rss_kib, rss_peak_kib, server_work, work_between,
};
use durablejob::api::DurableJob;
use futures::StreamExt;
use k8s_openapi::api::{
    batch::v1::{CronJob, Job},
    core::v1::Pod,
};
use kube::{
    Api, ResourceExt,
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
    /// When the pod watch first showed one of its pods succeeded (the runner ends a run of a
    /// one-pod Job then, before the Job controller marks the Job Complete).
    pod_succeeded: Option<DateTime<Utc>>,
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
                    pod_succeeded: None,
                    workflow_id: annotations.get("durablejob.dev/workflow-id").cloned(),
                });
            if done && seen.finished.is_none() {
                seen.finished = Some(now);
            }
        }
    });
    (jobs, task)
}

/// Watches the pods of `namespace` and records, in `jobs`, when one of a Job's pods was first
/// seen succeeded (the first the watch showed of that Job's end when the Job is one pod's).
fn watch_pods(client: &kube::Client, namespace: &str, jobs: Jobs) -> tokio::task::JoinHandle<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, watcher::Config::default()).applied_objects());
        while let Some(Ok(pod)) = events.next().await {
            let now = Utc::now();
            let succeeded = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Succeeded");
            let job = pod.labels().get("batch.kubernetes.io/job-name").cloned();
            let (true, Some(job)) = (succeeded, job) else {
                continue;
            };
            if let Some(seen) = jobs.lock().expect("jobs").get_mut(&job) {
                seen.pod_succeeded.get_or_insert(now);
            }
        }
    })
}

/// "p50 s, p99 s, max s" of sorted `v`, with `digits` decimals.
fn spread(v: &[f64], digits: usize) -> String {
    let max = v.last().copied().unwrap_or(f64::NAN);
    [percentile(v, 0.5), percentile(v, 0.99), max]
        .map(|x| format!("{x:.digits$} s"))
        .join(", ")
}

/// The first whole minute at least `lead` from now.
fn next_minute(lead: Duration) -> DateTime<Utc> {
    let t = Utc::now() + chrono::Duration::from_std(lead).expect("lead");
    let secs = t.timestamp();
    DateTime::from_timestamp(secs - secs.rem_euclid(60) + 60, 0).expect("a time")
}

/// When a side stops being watched: 100 s after its last slot.
fn watched_until(first: DateTime<Utc>, slots: usize) -> DateTime<Utc> {
    first + chrono::Duration::minutes(slots as i64 - 1) + chrono::Duration::seconds(100)
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

/// One run as Temporal's visibility store lists it.
struct Listed {
    status: String,
    started: Option<DateTime<Utc>>,
    closed: Option<DateTime<Utc>>,
}

/// The runs of `namespace` as Temporal's visibility store lists them, by workflow id.
fn runs(address: &str, namespace: &str) -> BTreeMap<String, Listed> {
    let listed = temporal::cli_json(
        address,
        &["workflow", "list", "--namespace", namespace, "--limit", "100000"],
    )
    .unwrap_or(Value::Null);
    listed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| {
            let id = w["execution"]["workflowId"].as_str()?.to_string();
            let time = |field: &str| {
                w[field]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc))
            };
            let listed = Listed {
                status: w["status"].as_str().unwrap_or("?").to_string(),
                started: time("startTime"),
                closed: time("closeTime"),
            };
            Some((id, listed))
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
    let qps = env_or("BENCH_CONTROLLER_QPS", 200);
    let temporal_config: Vec<String> = std::env::var("BENCH_TEMPORAL_CONFIG")
        .unwrap_or_default()
        .split(';')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect();
    let sides = Sides::from_env()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run(n, slots, job_secs, qps, &temporal_config, sides))
}

async fn run(
    n: usize,
    slots: usize,
    job_secs: usize,
    qps: usize,
    temporal_config: &[String],
    sides: Sides,
) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("durablejob-fire-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let qps_arg = qps.to_string();
    let options: &[&str] = if qps == 0 {
        &[]
    } else {
        &["--controller-qps", &qps_arg]
    };
    let cluster =
        tokio::task::block_in_place(|| testsupport::Cluster::private_with_durablejob("fire", options))?;
    let cluster = &cluster;
    let server_args: Vec<&str> = temporal_config
        .iter()
        .flat_map(|v| ["--dynamic-config-value", v.as_str()])
        .collect();
    let temporal_metrics = procs::free_port();
    let temporal_metrics_arg = temporal_metrics.to_string();
    let server_args: Vec<&str> = server_args
        .into_iter()
        .chain(["--metrics-port", temporal_metrics_arg.as_str()])
        .collect();
    let mut server = temporal::DevServer::start_with(dir.clone(), None, &server_args).await?;
    let address = server.address();
    temporal::create_namespace(&address, "fire")?;
    let _cron_ns = tokio::task::block_in_place(|| cluster.namespace("fire-cron"))?;
    let _dj_ns = tokio::task::block_in_place(|| cluster.namespace("fire"))?;
    let client = cluster.client().await?;
    let pods = json!({"test.durablejob.dev/duration": format!("{job_secs}s")});
    let controller = if qps == 0 {
        "Kubernetes' default client rate (20/s)".to_string()
    } else {
        format!("--kube-api-qps {qps}")
    };
    println!(
        "fire: N={n} every minute, {slots} slots each side, Jobs of {job_secs} s, kube-controller-manager with {controller}, Temporal dev server at {address} (dynamic config: {})\n",
        if temporal_config.is_empty() {
            "defaults".to_string()
        } else {
            temporal_config.join("; ")
        }
    );
    println!(
        "| side | slot | Jobs expected | created | missing | slot → Job p50 | p99 | max | finished | Job created → finished p50 | p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");

    // 1. CronJobs (skipped with BENCH_SIDES=durablejob)
    let (cron_total, cron_job_controller, cron_cpu) = if sides.cronjob {
        cron_side(cluster, &client, n, slots, &pods).await?
    } else {
        (0, BTreeMap::new(), vec![])
    };

    // 2. DurableJobs, through the operator and the runner
    if !sides.durablejob {
        server.stop().await;
        let _ = std::fs::remove_dir_all(&dir);
        return Ok(());
    }
    let operator = processes::spawn(
        &["operator", "--watch-namespaces", "fire"],
        cluster,
        &address,
        "fire",
        &dir,
    )?;
    let runner = processes::spawn(
        &["runner", "--sdk-metrics-addr", "off"],
        cluster,
        &address,
        "fire",
        &dir,
    )?;
    let runner_pid = runner.pid();
    let djs: Api<DurableJob> = Api::namespaced(client.clone(), "fire");
    let (dj_jobs, dj_watch) = watch_jobs(&client, "fire", "durablejob.dev/scheduled-time");
    let pod_watch = watch_pods(&client, "fire", dj_jobs.clone());
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
    sleep_until(first - chrono::Duration::seconds(2)).await;
    let (operator_cpu, runner_cpu) = (cpu_seconds(operator.pid()), cpu_seconds(runner_pid));
    let cpu_before = cpu_by_name(PARTS);
    let temporal_work = server_work(&operator::scrape(temporal_metrics).await);
    let operator_metrics = operator::scrape(operator.metrics_port).await;
    // BENCH_PAUSE_OPERATOR=1: the operator is stopped (SIGSTOP) over the slots, to measure what
    // its reconciles of the runs' Jobs cost the storm; it goes on (SIGCONT) before the figures
    let paused = std::env::var("BENCH_PAUSE_OPERATOR").is_ok_and(|v| v == "1");
    let signal = |sig: &str| {
        let _ = std::process::Command::new("kill")
            .args([sig, &operator.pid().to_string()])
            .status();
    };
    if paused {
        signal("-STOP");
    }
    let idle_rss = rss_kib(runner_pid).unwrap_or(0);
    // the runner's resident size beside the runs waiting on a Job at that moment
    let mut most_waiting = (0usize, idle_rss);
    let end = watched_until(first, slots);
    while Utc::now() < end {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let waiting = dj_jobs
            .lock()
            .expect("jobs")
            .values()
            .filter(|s| s.finished.is_none())
            .count();
        if waiting >= most_waiting.0 {
            most_waiting = (waiting, rss_kib(runner_pid).unwrap_or(0));
        }
    }
    let dj_cpu = cpu_between(&cpu_before);
    let temporal_work = work_between(
        &temporal_work,
        &server_work(&operator::scrape(temporal_metrics).await),
    );
    dj_watch.abort();
    pod_watch.abort();
    let total = report_slots("DurableJob", n, first, slots, &dj_jobs);
    if paused {
        signal("-CONT");
    }
    let (operator_cpu, runner_cpu) = (
        cpu_seconds(operator.pid()) - operator_cpu,
        cpu_seconds(runner_pid) - runner_cpu,
    );
    // what the runs cost the operator: its reconciles and Temporal calls over the slots
    let (before, after) = (operator_metrics, operator::scrape(operator.metrics_port).await);
    let operator_reconciles = operator::reconciles_in(&after) - operator::reconciles_in(&before);
    let mut operator_calls = operator::temporal_requests_by_operation(&after);
    for (op, n) in operator::temporal_requests_by_operation(&before) {
        *operator_calls.entry(op).or_default() -= n;
    }
    operator_calls.retain(|_, n| *n > 0.0);

    // Job done -> run closed, from the Job's Complete condition and from its pod's success
    let listed = runs(&address, "fire");
    let closing_after = |done: fn(&Seen) -> Option<DateTime<Utc>>| -> Vec<f64> {
        let mut v: Vec<f64> = dj_jobs
            .lock()
            .expect("jobs")
            .values()
            .filter_map(|s| {
                let at = listed.get(s.workflow_id.as_ref()?)?.closed?;
                Some((at - done(s)?).num_milliseconds() as f64 / 1000.0)
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let closing = closing_after(|s| s.finished);
    let closing_pod = closing_after(|s| [s.pod_succeeded, s.finished].into_iter().flatten().min());
    // slot -> Temporal started the run -> the run's Job was created: where slot -> Job goes
    let (mut to_start, mut to_job): (Vec<f64>, Vec<f64>) = dj_jobs
        .lock()
        .expect("jobs")
        .values()
        .filter_map(|s| {
            let started = listed.get(s.workflow_id.as_ref()?)?.started?;
            Some((
                (started - s.slot).num_milliseconds() as f64 / 1000.0,
                (s.created - started).num_milliseconds() as f64 / 1000.0,
            ))
        })
        .unzip();
    to_start.sort_by(f64::total_cmp);
    to_job.sort_by(f64::total_cmp);
    // every run Temporal started, by status, and those that never got a Job
    let with_job: std::collections::BTreeSet<String> = dj_jobs
        .lock()
        .expect("jobs")
        .values()
        .filter_map(|s| s.workflow_id.clone())
        .collect();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for run in listed.values() {
        *by_status.entry(run.status.clone()).or_default() += 1;
    }
    let jobless = listed.keys().filter(|id| !with_job.contains(*id)).count();
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
        "| Job done (its pod succeeded, or the Job Complete if seen first) → run closed (p50, p99, max; {} runs) | {} |",
        closing_pod.len(),
        spread(&closing_pod, 2)
    );
    println!(
        "| Job Complete (the condition) → run closed (p50, p99, max; {} runs) | {} |",
        closing.len(),
        spread(&closing, 2)
    );
    println!(
        "| slot → Temporal started the run (p50, p99, max) | {} |",
        spread(&to_start, 1)
    );
    println!(
        "| run started → its Job created (p50, p99, max) | {} |",
        spread(&to_job, 1)
    );
    println!("| runs Temporal did not start, by cause | {missed:?} |");
    println!("| runs Temporal started, by status at the end | {by_status:?} |");
    println!("| runs Temporal started that have no Job (the window's last slot included) | {jobless} |");
    println!("| runner CPU over the slots | {runner_cpu:.1} s |");
    for (side, cpu, jobs) in [("CronJob", &cron_cpu, cron_total), ("DurableJob", &dj_cpu, total)] {
        if cpu.is_empty() {
            continue;
        }
        let all: f64 = cpu.iter().map(|(_, s)| s).sum();
        let parts: Vec<String> = cpu.iter().map(|(p, s)| format!("{p} {s:.1}")).collect();
        println!(
            "| CPU seconds over the slots, {side} side | {all:.1} s, {:.0} ms per Job: {} |",
            all * 1000.0 / jobs.max(1) as f64,
            parts.join(", ")
        );
    }
    let mut work: Vec<(&String, &f64)> = temporal_work
        .iter()
        .filter(|(_, n)| **n / total.max(1) as f64 >= 0.2)
        .collect();
    work.sort_by(|a, b| b.1.total_cmp(a.1));
    let work: Vec<String> = work
        .into_iter()
        .map(|(op, n)| format!("{op} {:.1}", n / total.max(1) as f64))
        .collect();
    println!(
        "| Temporal's own work per Job over the slots (its service_requests and persistence_requests, 0.2 a Job or more) | {} |",
        work.join(", ")
    );
    println!("| operator CPU over the slots | {operator_cpu:.1} s |");
    let from = first - chrono::Duration::seconds(2);
    let in_window = listed
        .values()
        .filter(|r| r.started.is_some_and(|t| t >= from && t <= end))
        .count()
        .max(1) as f64;
    println!(
        "| operator reconciles per run ({in_window} runs started while measured) | {:.2} |",
        operator_reconciles / in_window
    );
    for (op, n) in &operator_calls {
        println!("| operator Temporal calls per run: {op} | {:.2} |", n / in_window);
    }
    println!(
        "| runner peak RSS | {:.0} MiB |",
        rss_peak_kib(runner_pid).map_or(f64::NAN, |k| k as f64 / 1024.0)
    );
    println!(
        "| operator peak RSS | {:.0} MiB |",
        rss_peak_kib(operator.pid()).map_or(f64::NAN, |k| k as f64 / 1024.0)
    );
    let (waiting, rss) = most_waiting;
    println!(
        "| runner RSS before the first slot / with the most runs waiting on a Job ({waiting}) | {:.0} MiB / {:.0} MiB ({:.1} KiB per waiting run) |",
        idle_rss as f64 / 1024.0,
        rss as f64 / 1024.0,
        (rss as f64 - idle_rss as f64) / waiting.max(1) as f64
    );
    let window = (first, first + chrono::Duration::minutes(slots as i64));
    // the audit log is read once: it holds every request of both sides by now
    let audit = cluster.audit().events();
    let runs = total.max(1) as f64;
    for (verb, count) in runner_requests(&audit, window) {
        println!(
            "| runner API requests per run: {verb} | {:.2} |",
            count as f64 / runs
        );
    }
    let per_job = |counts: BTreeMap<String, i64>, jobs: usize| {
        let all: i64 = counts.values().sum();
        format!("{:.2} ({counts:?})", all as f64 / jobs.max(1) as f64)
    };
    println!(
        "| the Job controller's requests per Job: CronJob side / DurableJob side | {} / {} |",
        per_job(cron_job_controller, cron_total),
        per_job(job_controller_requests(&audit, "fire", window), total)
    );
    drop(runner);
    drop(operator);
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The CronJob side: N CronJobs (Forbid) firing every minute for `slots` slots; prints its rows
/// and returns its Jobs, the Job controller's requests in the window and the CPU seconds of each
/// part of the system over the slots.
async fn cron_side(
    cluster: &testsupport::PrivateCluster,
    client: &kube::Client,
    n: usize,
    slots: usize,
    pods: &Value,
) -> anyhow::Result<(usize, BTreeMap<String, i64>, Vec<(String, f64)>)> {
    let cronjobs: Api<CronJob> = Api::namespaced(client.clone(), "fire-cron");
    let (cron_jobs, cron_watch) = watch_jobs(
        client,
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
    sleep_until(first - chrono::Duration::seconds(2)).await;
    let cpu_before = cpu_by_name(PARTS);
    sleep_until(watched_until(first, slots)).await;
    let cpu = cpu_between(&cpu_before);
    let _ = cronjobs
        .delete_collection(&DeleteParams::background(), &Default::default())
        .await;
    cron_watch.abort();
    let total = report_slots("CronJob", n, first, slots, &cron_jobs);
    let window = (first, first + chrono::Duration::minutes(slots as i64));
    Ok((
        total,
        job_controller_requests(&cluster.audit().events(), "fire-cron", window),
        cpu,
    ))
}

/// The parts of the system whose CPU the bench reports per side, by command name.
const PARTS: &[&str] = &[
    "kube-apiserver",
    "etcd",
    "kube-controller",
    "kube-scheduler",
    "kwok",
    "temporal",
    "durablejob",
];

/// The CPU seconds each of [`PARTS`] used since `before` (a [`cpu_by_name`] of them).
fn cpu_between(before: &[(String, f64)]) -> Vec<(String, f64)> {
    cpu_by_name(PARTS)
        .into_iter()
        .zip(before)
        .map(|((name, after), (_, before))| (name, after - before))
        .collect()
}

/// Which sides run (`BENCH_SIDES`: `both`, the default, `cronjob` or `durablejob`).
struct Sides {
    cronjob: bool,
    durablejob: bool,
}

impl Sides {
    fn from_env() -> anyhow::Result<Self> {
        match std::env::var("BENCH_SIDES").as_deref() {
            Err(_) | Ok("both") | Ok("") => Ok(Self {
                cronjob: true,
                durablejob: true,
            }),
            Ok("cronjob") => Ok(Self {
                cronjob: true,
                durablejob: false,
            }),
            Ok("durablejob") => Ok(Self {
                cronjob: false,
                durablejob: true,
            }),
            Ok(other) => anyhow::bail!("BENCH_SIDES={other:?}: use both, cronjob or durablejob"),
        }
    }
}

/// From the first measured slot to the slot after the last one (runs of later slots do not count).
type Window = (DateTime<Utc>, DateTime<Utc>);

fn within(e: &testsupport::AuditEvent, (from, to): Window) -> bool {
    e.received().is_some_and(|t| t >= from && t < to)
}

/// Requests the runner made in the window, by verb and resource (`get jobs`, `get durablejobs`,
/// ...): the runner runs with the admin credentials here, so it is told apart by its user agent.
fn runner_requests(audit: &[testsupport::AuditEvent], window: Window) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for e in audit {
        if e.user_agent.contains("(runner;") && within(e, window) {
            *out.entry(format!("{} {}", e.verb, e.object_ref.resource))
                .or_default() += 1;
        }
    }
    out
}

/// Requests the kube-controller-manager's Job controller made in `namespace` in the window, by
/// verb and resource: the cluster's own cost per Job, the same for both sides.
fn job_controller_requests(
    audit: &[testsupport::AuditEvent],
    namespace: &str,
    window: Window,
) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for e in audit {
        if e.is_service_account("kube-system", "job-controller")
            && e.object_ref.namespace == namespace
            && within(e, window)
        {
            let what = match e.object_ref.subresource.as_str() {
                "" => e.object_ref.resource.clone(),
                sub => format!("{}/{sub}", e.object_ref.resource),
            };
            *out.entry(format!("{} {what}", e.verb)).or_default() += 1;
        }
    }
    out
}
