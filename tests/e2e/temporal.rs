//! The real Temporal dev server (`temporal server start-dev`) and checks made through the
//! `temporal` CLI, independent of the operator's own code.

use std::{path::PathBuf, process::Command, time::Duration};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::procs::{Guarded, free_port};

pub struct DevServer {
    proc: Option<Guarded>,
    pub port: u16,
    db: Option<PathBuf>,
    dir: PathBuf,
    /// More `start-dev` arguments (dynamic config values).
    extra: Vec<String>,
}

impl DevServer {
    /// Starts a dev server on a free port; with `db`, state survives restarts.
    pub async fn start(dir: PathBuf, db: Option<PathBuf>) -> anyhow::Result<Self> {
        Self::start_with(dir, db, &[]).await
    }

    /// As [`DevServer::start`], with more `start-dev` arguments such as
    /// `--dynamic-config-value KEY=VALUE`.
    pub async fn start_with(dir: PathBuf, db: Option<PathBuf>, extra: &[&str]) -> anyhow::Result<Self> {
        let mut s = Self {
            proc: None,
            port: free_port(),
            db,
            dir,
            extra: extra.iter().map(|a| a.to_string()).collect(),
        };
        s.launch().await?;
        Ok(s)
    }

    async fn launch(&mut self) -> anyhow::Result<()> {
        let mut cmd = Command::new("temporal");
        cmd.args([
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--log-level",
            "warn",
            "--port",
        ])
        .arg(self.port.to_string());
        if let Some(db) = &self.db {
            cmd.arg("--db-filename").arg(db);
        }
        cmd.args(&self.extra);
        let log = self.dir.join(format!("temporal-{}.log", self.port));
        self.proc = Some(Guarded::spawn(cmd, &log).context("cannot start `temporal server start-dev`")?);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let ok = Command::new("temporal")
                .args(["operator", "cluster", "health", "--address", &self.address()])
                .output()
                .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("SERVING"))
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "Temporal dev server did not become healthy: {}",
                    self.proc.as_ref().map(|p| p.log_tail(20)).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub async fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(Duration::from_secs(10)).await;
        }
    }

    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.stop().await;
        self.launch().await
    }
}

/// Runs the `temporal` CLI against `address` and parses its JSON output.
pub fn cli_json(address: &str, args: &[&str]) -> anyhow::Result<Value> {
    let out = Command::new("temporal")
        .args(args)
        .args(["--address", address, "-o", "json"])
        .output()?;
    if !out.status.success() {
        bail!(
            "temporal {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).with_context(|| format!("temporal {}: not JSON: {text}", args.join(" ")))
}

/// Runs the `temporal` CLI and returns whether it succeeded (and its stderr).
pub fn cli(address: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new("temporal")
        .args(args)
        .args(["--address", address])
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

pub fn create_namespace(address: &str, namespace: &str) -> anyhow::Result<()> {
    cli(
        address,
        &[
            "operator",
            "namespace",
            "create",
            "--namespace",
            namespace,
            "--retention",
            "24h",
        ],
    )
    .map_err(|e| anyhow::anyhow!("cannot create namespace {namespace}: {e}"))?;
    // usable once the frontend's namespace cache has it
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while cli(address, &["workflow", "count", "--namespace", namespace]).is_err() {
        if std::time::Instant::now() > deadline {
            bail!("namespace {namespace} was created but is not usable after 30s");
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    Ok(())
}

/// `temporal schedule describe`, or `None` when the schedule does not exist.
///
/// A describe is a query on the schedule's workflow; while that workflow is busy (just created,
/// or starting runs) Temporal answers BUSY_WORKFLOW ("consistent query buffer is full"), which
/// the CLI does not retry. The operator waits that out (`temporal::limit`); so does this, for a
/// bounded few seconds.
pub fn describe(address: &str, namespace: &str, id: &str) -> anyhow::Result<Option<Value>> {
    let args = [
        "schedule",
        "describe",
        "--namespace",
        namespace,
        "--schedule-id",
        id,
    ];
    let mut tries = 0;
    loop {
        tries += 1;
        match cli_json(address, &args) {
            Ok(v) => return Ok(Some(v)),
            Err(e) if e.to_string().to_lowercase().contains("not found") => return Ok(None),
            Err(e) if tries < 20 && e.to_string().contains("query buffer is full") => {
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Schedule ids in a namespace.
pub fn schedule_ids(address: &str, namespace: &str) -> anyhow::Result<Vec<String>> {
    let v = cli_json(address, &["schedule", "list", "--namespace", namespace])?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["scheduleId"].as_str().map(String::from))
        .collect())
}

/// A structured calendar as "sec=0 min=30 hour=2 dom=1-31 month=1-12 dow=0-6".
pub fn calendar_summary(cal: &Value) -> String {
    let field = |name: &str| -> String {
        let ranges: Vec<String> = cal[name]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                let start = r["start"].as_i64().unwrap_or(0);
                let end = r["end"].as_i64().unwrap_or(start);
                let step = r["step"].as_i64().unwrap_or(1);
                let mut s = if end > start {
                    format!("{start}-{end}")
                } else {
                    start.to_string()
                };
                if step > 1 {
                    s.push_str(&format!("/{step}"));
                }
                s
            })
            .collect();
        if ranges.is_empty() {
            "0".into()
        } else {
            ranges.join(",")
        }
    };
    format!(
        "sec={} min={} hour={} dom={} month={} dow={}",
        field("second"),
        field("minute"),
        field("hour"),
        field("dayOfMonth"),
        field("month"),
        field("dayOfWeek")
    )
}

/// Decodes a JSON payload from the CLI's output (base64 data).
pub fn payload(p: &Value) -> Value {
    use base64::Engine;
    let data = p["data"].as_str().unwrap_or_default();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap_or_default();
    serde_json::from_slice(&bytes).unwrap_or(Value::Null)
}
