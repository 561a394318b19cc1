//! The `durablejob operator` binary as a user runs it: a separate process with a kubeconfig.

use std::{path::Path, process::Command};

use crate::procs::{Guarded, free_port};

pub struct Operator {
    proc: Option<Guarded>,
    pub metrics_port: u16,
    dir: std::path::PathBuf,
    kubeconfig: std::path::PathBuf,
    temporal: String,
    namespace: String,
    extra: Vec<String>,
    starts: usize,
}

impl Operator {
    pub fn start(
        dir: &Path,
        kubeconfig: &Path,
        temporal: &str,
        namespace: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let mut o = Self {
            proc: None,
            metrics_port: free_port(),
            dir: dir.to_path_buf(),
            kubeconfig: kubeconfig.to_path_buf(),
            temporal: temporal.into(),
            namespace: namespace.into(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            starts: 0,
        };
        o.launch()?;
        Ok(o)
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        let health_port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_durablejob"));
        cmd.arg("operator")
            .args(["--log-format", "text", "--metrics-addr"])
            .arg(format!("127.0.0.1:{}", self.metrics_port))
            .arg("--health-addr")
            .arg(format!("127.0.0.1:{health_port}"))
            .args(&self.extra)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("TEMPORAL_ADDRESS", &self.temporal)
            .env("TEMPORAL_NAMESPACE", &self.namespace)
            .env("RUST_LOG", "info,durablejob=debug")
            .env("NO_COLOR", "1")
            .env_remove("TEMPORAL_API_KEY");
        let log = if self.starts == 1 {
            self.dir.join("operator.log")
        } else {
            self.dir.join(format!("operator-{}.log", self.starts))
        };
        self.proc = Some(Guarded::spawn(cmd, &log)?);
        Ok(())
    }

    /// Stops the operator (SIGTERM, as a rollout does); [`Operator::resume`] starts it again.
    pub async fn stop(&mut self) {
        if let Some(p) = self.proc.as_mut() {
            p.stop(std::time::Duration::from_secs(5)).await;
        }
        self.proc = None;
    }

    /// SIGKILL, as a node failure would; [`Operator::resume`] starts it again.
    pub fn kill(&mut self) {
        if let Some(p) = self.proc.as_mut() {
            p.kill();
        }
        self.proc = None;
    }

    /// Starts a stopped operator again, with the same flags.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        self.launch()
    }

    /// The Prometheus text from /metrics.
    pub async fn metrics(&self) -> String {
        scrape(self.metrics_port).await
    }

    /// Reconciles of the DurableJob controller so far.
    pub async fn reconciles(&self) -> f64 {
        reconciles_in(&self.metrics().await)
    }

    /// Successful schedule writes (create, update, delete) the operator made.
    pub async fn temporal_writes(&self) -> u64 {
        let m = self.metrics().await;
        m.lines()
            .filter(|l| l.starts_with("durablejob_temporal_requests_total"))
            .filter(|l| {
                ["create", "update", "delete"]
                    .iter()
                    .any(|op| l.contains(&format!("operation=\"{op}\"")))
            })
            .filter(|l| l.contains("outcome=\"ok\""))
            .filter_map(|l| l.rsplit(' ').next().and_then(|n| n.parse::<f64>().ok()))
            .sum::<f64>() as u64
    }

    /// Temporal calls of one operation (`describe`, `list_schedules`, ...) so far, any outcome.
    pub async fn temporal_requests(&self, operation: &str) -> f64 {
        temporal_requests_by_operation(&self.metrics().await)
            .get(operation)
            .copied()
            .unwrap_or(0.0)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.proc.as_ref().map(|p| p.log_tail(lines)).unwrap_or_default()
    }
}

/// Reconciles of the DurableJob controller counted on a /metrics page.
pub fn reconciles_in(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("controller_runtime_reconcile_total{controller=\"durablejob\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
}

/// `durablejob_temporal_requests_total` summed by operation (any outcome) from a /metrics page.
pub fn temporal_requests_by_operation(metrics: &str) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for l in metrics.lines() {
        let Some(rest) = l.strip_prefix("durablejob_temporal_requests_total{operation=\"") else {
            continue;
        };
        let op = rest.split('"').next().unwrap_or_default().to_string();
        let n: f64 = l.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
        *out.entry(op).or_insert(0.0) += n;
    }
    out
}

/// The text a GET of /metrics on a loopback port returns (empty when nothing answers). HTTP/1.0,
/// so the streamed body comes without chunk framing, up to the close.
pub async fn scrape(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n").await;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}

/// The built-in runner (`durablejob runner`) as a separate process.
pub struct Runner {
    proc: Option<Guarded>,
    dir: std::path::PathBuf,
    kubeconfig: std::path::PathBuf,
    temporal: String,
    namespace: String,
    extra: Vec<String>,
    pub starts: usize,
    pub metrics_port: u16,
    pub sdk_metrics_port: u16,
}

impl Runner {
    pub fn start(dir: &Path, kubeconfig: &Path, temporal: &str, namespace: &str) -> anyhow::Result<Self> {
        Self::start_with(dir, kubeconfig, temporal, namespace, &[])
    }

    /// Like [`Runner::start`], with more flags.
    pub fn start_with(
        dir: &Path,
        kubeconfig: &Path,
        temporal: &str,
        namespace: &str,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        let mut r = Self {
            extra: extra.iter().map(|s| s.to_string()).collect(),
            proc: None,
            dir: dir.to_path_buf(),
            kubeconfig: kubeconfig.to_path_buf(),
            temporal: temporal.into(),
            namespace: namespace.into(),
            starts: 0,
            metrics_port: free_port(),
            sdk_metrics_port: free_port(),
        };
        r.launch()?;
        Ok(r)
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_durablejob"));
        cmd.arg("runner")
            .args([
                "--log-format",
                "text",
                "--heartbeat-timeout",
                "3s",
                "--job-poll-interval",
                "200ms",
                "--health-addr",
            ])
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{}", self.metrics_port))
            .arg("--sdk-metrics-addr")
            .arg(format!("127.0.0.1:{}", self.sdk_metrics_port))
            .args(&self.extra)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("TEMPORAL_ADDRESS", &self.temporal)
            .env("TEMPORAL_NAMESPACE", &self.namespace)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1");
        self.proc = Some(Guarded::spawn(
            cmd,
            &self.dir.join(format!("runner-{}.log", self.starts)),
        )?);
        Ok(())
    }

    /// Kills the runner with SIGKILL, as a node failure would.
    pub fn kill(&mut self) {
        self.proc = None;
    }

    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.launch()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.proc.as_ref().map(|p| p.log_tail(lines)).unwrap_or_default()
    }
}
