//! Issue 25: the dashboard against a real Prometheus. Debian's pinned Prometheus (put into
//! `.tools/bin/` by `make prometheus-tools`) scrapes the scenario's operator and runner every
//! second while runs succeed, fail and are skipped, a DurableJob is suspended, and every panel's
//! query of charts/durablejob/files/durablejob-dashboard.json must return data.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use testsupport::job_template;

use crate::Shared;
use crate::env::{Env, manifest, quiet_schedule, wait_for};
use crate::operator::Runner;
use crate::procs::{Guarded, free_port};

scenarios!(every_dashboard_panel_has_data_in_a_real_prometheus_scraping_the_operator_and_runner,);

/// A GET of `path` on a loopback port, HTTP/1.0 (the body up to the close); `None` when
/// nothing answers.
async fn get(port: u16, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// How many series (or samples) the instant query `q` returns now.
async fn results(port: u16, q: &str) -> Option<usize> {
    let body = get(port, &format!("/api/v1/query?query={}", encode(q))).await?;
    let v: Value = serde_json::from_str(&body).ok()?;
    (v["status"] == "success").then(|| v["data"]["result"].as_array().map_or(0, Vec::len))
}

async fn every_dashboard_panel_has_data_in_a_real_prometheus_scraping_the_operator_and_runner(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let env = Env::new(&shared, "dashboard", &[]).await?;
    let runner = Runner::start(&env.dir, &env.runner_kubeconfig, &env.temporal, &env.namespace)?;
    let prometheus_bin = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".tools/bin/prometheus");
    ensure!(
        prometheus_bin.exists(),
        "{} is missing: make prometheus-tools (part of make test) puts it there",
        prometheus_bin.display()
    );
    // one that succeeds, one that fails (with a streak), one suspended, one whose runs overlap
    let ok = job_template(json!({"test.durablejob.dev/duration": "100ms"}));
    let bad = job_template(
        json!({"test.durablejob.dev/outcomes": "fail", "test.durablejob.dev/duration": "100ms"}),
    );
    let slow = job_template(json!({"test.durablejob.dev/duration": "6s"}));
    env.create(manifest(
        "ok",
        json!({"schedule": quiet_schedule(), "jobTemplate": ok}),
    ))
    .await?;
    env.create(manifest(
        "bad",
        json!({"schedule": quiet_schedule(), "jobTemplate": bad, "suspendAfterFailures": 5}),
    ))
    .await?;
    env.create(manifest(
        "held",
        json!({"schedule": quiet_schedule(), "suspend": true}),
    ))
    .await?;
    env.create(manifest(
        "busy",
        json!({"schedule": {"intervals": [{"every": "4s"}]}, "overlapPolicy": "Skip", "jobTemplate": slow}),
    ))
    .await?;
    for name in ["ok", "bad", "busy"] {
        env.wait_ready(name).await?;
    }
    for name in ["ok", "bad"] {
        crate::runs::trigger(&env, name, None)?;
    }

    // Prometheus scrapes the operator and the runner every second
    let port = free_port();
    let config = env.dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n- job_name: operator\n  static_configs: [{{targets: ['127.0.0.1:{}']}}]\n- job_name: runner\n  static_configs: [{{targets: ['127.0.0.1:{}']}}]\n",
            env.operator.metrics_port, runner.metrics_port
        ),
    )?;
    let mut cmd = std::process::Command::new(&prometheus_bin);
    cmd.arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            env.dir.join("prometheus").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"));
    let _prometheus = Guarded::spawn(cmd, &env.dir.join("prometheus.log"))?;
    wait_for(
        "Prometheus to scrape both targets",
        Duration::from_secs(30),
        || async { (results(port, "up == 1").await? == 2).then_some(()) },
    )
    .await?;

    // each panel's queries, as Grafana sends them with this namespace and every DurableJob
    let file = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("charts/durablejob/files/durablejob-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(file)?)?;
    let namespace = env.namespace.as_str();
    let queries: Vec<(String, String)> = dashboard["panels"]
        .as_array()
        .context("panels")?
        .iter()
        .filter(|p| p["type"] != "row")
        .flat_map(|p| {
            let title = p["title"].as_str().unwrap_or_default().to_string();
            p["targets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |t| {
                    let q = t["expr"]
                        .as_str()
                        .unwrap_or_default()
                        // a namespace is a DNS label: as a regex it matches only itself
                        .replace("$namespace", namespace)
                        .replace("$name", ".*")
                        .replace("$__rate_interval", "10m");
                    (title.clone(), q)
                })
        })
        .collect();
    // the panels whose query returns no series yet
    let empty = || async {
        let mut empty = vec![];
        for (title, q) in &queries {
            if results(port, q).await.unwrap_or(0) == 0 {
                empty.push(format!("{title}: {q}"));
            }
        }
        empty
    };
    let filled = wait_for(
        "every panel's query to return data",
        Duration::from_secs(120),
        || async { empty().await.is_empty().then_some(()) },
    )
    .await;
    if filled.is_err() {
        anyhow::bail!(
            "panels without data after 120s:\n{}\n--- runner ---\n{}",
            empty().await.join("\n"),
            runner.log_tail(10)
        );
    }
    Ok(())
}
