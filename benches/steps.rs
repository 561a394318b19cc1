//! `cargo bench --bench steps`: what multi-step runs cost on this machine. It starts the local
//! control plane (hack/cluster.sh, kube-controller-manager at `--kube-api-qps 200`) and a
//! Temporal dev server, the release `durablejob operator` and `durablejob runner` as separate
//! processes, and watches the Jobs. Then:
//! 1. **Steps.** A DurableJob of `BENCH_STEPS` (default 5) steps in order, each a Job of one
//!    second in the simulated kubelet, is triggered `BENCH_RUNS` times (default 5), one run after
//!    the other. It prints trigger → first step's Job created, and a step's Job finished (the
//!    watch event that shows its pod ended, or the Job finished, whichever came first) → the
//!    next step's Job created, p50/p99/max.
//! 2. **Fan-out.** A DurableJob whose one step runs `BENCH_ITEMS` items (default 1,000) of
//!    `BENCH_ITEM_SECS` seconds (default 2) at parallelism `BENCH_PARALLELISM` (default 20) is
//!    triggered once. It prints the run's wall time (trigger → closed in Temporal) beside the
//!    ideal (items × seconds ÷ parallelism), an item's Job finished → the next item's Job
//!    created, the run's history (events and bytes) beside Temporal's warning limits, and the
//!    runner's CPU seconds and peak RSS.
//!
//! Results and how they were taken: BENCHMARKS.md.

#[allow(dead_code)]
mod common;
#[allow(dead_code)]
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
use common::{cpu_seconds, env_or, percentile, rss_peak_kib};
use durablejob::api::DurableJob;
use futures::StreamExt;
use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};
use kube::{
    Api,
    api::PostParams,
    runtime::{WatchStreamExt, watcher},
};
use serde_json::{Value, json};

const NAMESPACE: &str = "steps";

/// What the watch saw of one Job.
#[derive(Debug, Clone)]
struct Seen {
    workflow_id: String,
    step: String,
    item: Option<u32>,
    created: DateTime<Utc>,
    finished: Option<DateTime<Utc>>,
}

type Jobs = Arc<Mutex<BTreeMap<String, Seen>>>;

/// Watches the Jobs of the bench's namespace and their pods: when each Job was first seen, and
/// first seen done: its pod ended (a Job of one pod is done then; the Job controller marks it
/// Complete a second later), or the Job finished, whichever the watches showed first.
fn watch_jobs(client: &kube::Client) -> (Jobs, tokio::task::JoinHandle<()>) {
    let api: Api<Job> = Api::namespaced(client.clone(), NAMESPACE);
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    let jobs: Jobs = Arc::default();
    let sink = jobs.clone();
    let job_events = watcher(api, watcher::Config::default())
        .applied_objects()
        .map(|j| j.map(futures::future::Either::Left));
    let pod_events = watcher(pods, watcher::Config::default())
        .applied_objects()
        .map(|p| p.map(futures::future::Either::Right));
    let task = tokio::spawn(async move {
        let mut events = std::pin::pin!(futures::stream::select(job_events, pod_events));
        while let Some(Ok(event)) = events.next().await {
            let now = Utc::now();
            let mut jobs = sink.lock().expect("jobs");
            let job = match event {
                futures::future::Either::Left(job) => job,
                futures::future::Either::Right(pod) => {
                    let ended = pod
                        .status
                        .as_ref()
                        .and_then(|s| s.phase.as_deref())
                        .is_some_and(|p| p == "Succeeded" || p == "Failed");
                    let of = pod
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("batch.kubernetes.io/job-name"));
                    if let Some(seen) = of.and_then(|j| jobs.get_mut(j)).filter(|_| ended) {
                        seen.finished.get_or_insert(now);
                    }
                    continue;
                }
            };
            let labels = job.metadata.labels.clone().unwrap_or_default();
            let annotations = job.metadata.annotations.clone().unwrap_or_default();
            let done = job.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .flatten()
                    .any(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
            });
            let seen = jobs
                .entry(job.metadata.name.clone().unwrap_or_default())
                .or_insert(Seen {
                    workflow_id: annotations
                        .get("durablejob.dev/workflow-id")
                        .cloned()
                        .unwrap_or_default(),
                    step: labels.get("durablejob.dev/step").cloned().unwrap_or_default(),
                    item: labels.get("durablejob.dev/item").and_then(|i| i.parse().ok()),
                    created: now,
                    finished: None,
                });
            if done {
                seen.finished.get_or_insert(now);
            }
        }
    });
    (jobs, task)
}

/// What the watch saw of the Jobs of run `workflow_id`.
fn jobs_of_run(jobs: &Jobs, workflow_id: &str) -> Vec<Seen> {
    let jobs = jobs.lock().expect("jobs");
    jobs.values()
        .filter(|s| s.workflow_id == workflow_id)
        .cloned()
        .collect()
}

fn secs(d: chrono::TimeDelta) -> f64 {
    d.num_milliseconds() as f64 / 1000.0
}

fn figures(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!(
        "{:.2} s, {:.2} s, {:.2} s ({} samples)",
        percentile(&v, 0.5),
        percentile(&v, 0.99),
        v.last().copied().unwrap_or(f64::NAN),
        v.len()
    )
}

/// Triggers `name`'s schedule and waits (at most `within`) for the run it started to close;
/// gives the workflow id and when the trigger was sent.
async fn trigger_and_wait(
    address: &str,
    name: &str,
    within: Duration,
) -> anyhow::Result<(String, DateTime<Utc>)> {
    let schedule = format!("durablejob:{NAMESPACE}/{name}");
    let before: Vec<String> = runs_of(address, name).into_keys().collect();
    let sent = Utc::now();
    temporal::cli(
        address,
        &[
            "schedule",
            "trigger",
            "--namespace",
            NAMESPACE,
            "--schedule-id",
            &schedule,
        ],
    )
    .map_err(|e| anyhow::anyhow!("trigger: {e}"))?;
    let deadline = Instant::now() + within;
    loop {
        let runs = runs_of(address, name);
        let new = runs.iter().find(|(id, _)| !before.contains(id));
        if let Some((id, status)) = new
            && status != "Running"
        {
            anyhow::ensure!(status == "Completed", "run {id} ended {status}");
            return Ok((id.clone(), sent));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the run of {name} did not end within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The runs of DurableJob `name`, by workflow id, with their status.
fn runs_of(address: &str, name: &str) -> BTreeMap<String, String> {
    let query = format!("TemporalScheduledById = 'durablejob:{NAMESPACE}/{name}'");
    let listed = temporal::cli_json(
        address,
        &[
            "workflow",
            "list",
            "--namespace",
            NAMESPACE,
            "--query",
            &query,
            "--limit",
            "1000",
        ],
    )
    .unwrap_or(Value::Null);
    listed
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|w| {
            let id = w["execution"]["workflowId"].as_str()?.to_string();
            Some((
                id,
                w["status"]
                    .as_str()
                    .unwrap_or("?")
                    .trim_start_matches("WORKFLOW_EXECUTION_STATUS_")
                    .to_string(),
            ))
        })
        .map(|(id, s)| (id, capitalized(&s)))
        .collect()
}

/// `COMPLETED` or `Completed` as `Completed`.
fn capitalized(s: &str) -> String {
    let lower = s.to_ascii_lowercase();
    let mut c = lower.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

fn quiet() -> Value {
    json!({"intervals": [{"every": "24h", "offset": "7h"}]})
}

fn job(seconds: f64) -> Value {
    testsupport::job_template(
        json!({"test.durablejob.dev/duration": format!("{}ms", (seconds * 1000.0) as u64)}),
    )
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let (steps, runs) = (env_or("BENCH_STEPS", 5), env_or("BENCH_RUNS", 5));
    let (items, item_secs, parallelism) = (
        env_or("BENCH_ITEMS", 1000),
        env_or("BENCH_ITEM_SECS", 2),
        env_or("BENCH_PARALLELISM", 20),
    );
    let dir = std::env::temp_dir().join(format!("durablejob-steps-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let cluster = tokio::task::block_in_place(|| {
        testsupport::Cluster::private_with_durablejob("steps", &["--controller-qps", "200"])
    })?;
    let mut server = temporal::DevServer::start_with(dir.clone(), None, &[]).await?;
    let address = server.address();
    temporal::create_namespace(&address, NAMESPACE)?;
    let _ns = tokio::task::block_in_place(|| cluster.namespace(NAMESPACE))?;
    let client = cluster.client().await?;
    let _operator = processes::spawn(
        &["operator", "--watch-namespaces", NAMESPACE],
        &cluster,
        &address,
        NAMESPACE,
        &dir,
    )?;
    let runner = processes::spawn(
        &["runner", "--sdk-metrics-addr", "off"],
        &cluster,
        &address,
        NAMESPACE,
        &dir,
    )?;
    let djs: Api<DurableJob> = Api::namespaced(client.clone(), NAMESPACE);
    let (jobs, watch) = watch_jobs(&client);
    let create = |name: &str, spec: Value| {
        let djs = djs.clone();
        let dj: DurableJob =
            serde_json::from_value(testsupport::durable_job(name, spec)).expect("a DurableJob");
        async move { djs.create(&PostParams::default(), &dj).await }
    };
    let ready = |name: &'static str| {
        let djs = djs.clone();
        async move {
            for _ in 0..120 {
                let dj = djs.get(name).await?;
                if dj.status.and_then(|s| s.schedule_id).is_some() {
                    return anyhow::Ok(());
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            anyhow::bail!("{name} got no schedule")
        }
    };
    println!(
        "steps: {steps} steps of 1 s × {runs} runs; a fan-out of {items} items of {item_secs} s at parallelism {parallelism}; Temporal dev server at {address}\n"
    );

    // 1. steps in order
    let chain: Vec<Value> = (0..steps)
        .map(|i| json!({"name": format!("s{i}"), "jobTemplate": job(1.0)}))
        .collect();
    create("chain", json!({"schedule": quiet(), "steps": chain})).await?;
    ready("chain").await?;
    let mut first_job = vec![];
    let mut next_step = vec![];
    for _ in 0..runs {
        let (id, sent) = trigger_and_wait(&address, "chain", Duration::from_secs(120)).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut of_run = jobs_of_run(&jobs, &id);
        of_run.sort_by_key(|s| s.step.clone());
        anyhow::ensure!(of_run.len() == steps, "{} Jobs for {steps} steps", of_run.len());
        first_job.push(secs(of_run[0].created - sent));
        for pair in of_run.windows(2) {
            if let Some(done) = pair[0].finished {
                next_step.push(secs(pair[1].created - done));
            }
        }
    }
    println!("| steps figure | p50, p99, max |");
    println!("|---|---|");
    println!("| trigger → first step's Job created | {} |", figures(first_job));
    println!(
        "| step's Job finished → next step's Job created | {} |",
        figures(next_step)
    );

    // 2. a fan-out
    let fan = json!({"name": "each", "jobTemplate": job(item_secs as f64),
        "forEach": {"items": (0..items).collect::<Vec<usize>>(), "parallelism": parallelism}});
    create("fan", json!({"schedule": quiet(), "steps": [fan]})).await?;
    ready("fan").await?;
    let cpu_before = cpu_seconds(runner.pid());
    let began = Instant::now();
    let (id, _) = trigger_and_wait(&address, "fan", Duration::from_secs(1800)).await?;
    let wall = began.elapsed().as_secs_f64();
    let runner_cpu = cpu_seconds(runner.pid()) - cpu_before;
    tokio::time::sleep(Duration::from_millis(500)).await;
    watch.abort();
    let seen = jobs_of_run(&jobs, &id);
    let ideal = (items * item_secs) as f64 / parallelism as f64;
    let span = match (
        seen.iter().map(|s| s.created).min(),
        seen.iter().filter_map(|s| s.finished).max(),
    ) {
        (Some(a), Some(b)) => secs(b - a),
        _ => f64::NAN,
    };
    // an item's Job finished → the Job of an item started after it: the gap a slot stays empty
    let mut by_item: Vec<&Seen> = seen.iter().filter(|s| s.item.is_some()).collect();
    by_item.sort_by_key(|s| s.item);
    let mut finishes: Vec<DateTime<Utc>> = by_item.iter().filter_map(|s| s.finished).collect();
    finishes.sort();
    let mut refill = vec![];
    for s in by_item.iter().skip(parallelism) {
        // the finish that freed the slot this item took: the latest one before its creation
        if let Some(freed) = finishes.iter().rfind(|f| **f <= s.created) {
            refill.push(secs(s.created - *freed));
        }
    }
    let described = temporal::cli_json(
        &address,
        &[
            "workflow",
            "describe",
            "--namespace",
            NAMESPACE,
            "--workflow-id",
            &id,
        ],
    )?;
    let info = &described["workflowExecutionInfo"];
    let number = |v: &Value| {
        v.as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .or(v.as_f64())
            .unwrap_or(f64::NAN)
    };
    let (events, bytes) = (number(&info["historyLength"]), number(&info["historySizeBytes"]));
    println!();
    println!("| fan-out figure | value |");
    println!("|---|---|");
    println!("| Jobs | {} for {items} items |", seen.len());
    println!(
        "| run wall time (trigger → closed) | {wall:.1} s, {:.2} × the ideal {ideal:.0} s |",
        wall / ideal
    );
    println!("| first item's Job created → last one finished | {span:.1} s |");
    println!(
        "| item's Job finished → next item's Job created (p50, p99, max) | {} |",
        figures(refill)
    );
    println!(
        "| history | {events:.0} events ({:.0} % of the 10,240 warning), {:.2} MiB ({:.1} % of 10 MiB) |",
        events / 10_240.0 * 100.0,
        bytes / 1_048_576.0,
        bytes / 10_485_760.0 * 100.0
    );
    println!(
        "| runner | {runner_cpu:.1} CPU s during the fan-out, peak RSS {} MiB |",
        rss_peak_kib(runner.pid()).unwrap_or(0) / 1024
    );
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
