//! Starting `durablejob operator` and `durablejob runner` as separate processes on a bench's
//! cluster (benches that declare the e2e `procs` module include this file).

/// Starts `durablejob ARGS` (the release binary) against `cluster` and the dev server at
/// `address`, Temporal namespace `namespace`, its log in `dir`; gives it with its metrics port.
pub fn spawn(
    args: &[&str],
    cluster: &testsupport::PrivateCluster,
    address: &str,
    namespace: &str,
    dir: &std::path::Path,
) -> anyhow::Result<Spawned> {
    use crate::procs;
    let metrics_port = procs::free_port();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_durablejob"));
    cmd.args(args)
        .args(["--log-format", "json"])
        .arg("--metrics-addr")
        .arg(format!("127.0.0.1:{metrics_port}"))
        .arg("--health-addr")
        .arg(format!("127.0.0.1:{}", procs::free_port()))
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env("TEMPORAL_ADDRESS", address)
        .env("TEMPORAL_NAMESPACE", namespace)
        .env("RUST_LOG", "warn");
    Ok(Spawned {
        process: procs::Guarded::spawn(cmd, &dir.join(format!("{}.log", args[0])))?,
        metrics_port,
    })
}

/// A started `durablejob` process and the port of its /metrics.
pub struct Spawned {
    pub process: crate::procs::Guarded,
    pub metrics_port: u16,
}

impl Spawned {
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }
}
