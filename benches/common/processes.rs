//! Starting `durablejob operator` and `durablejob runner` as separate processes on a bench's
//! cluster (benches that declare the e2e `procs` module include this file).

/// Starts `durablejob ARGS` (the release binary) against `cluster` and the dev server at
/// `address`, Temporal namespace `namespace`, its log in `dir`.
pub fn spawn(
    args: &[&str],
    cluster: &testsupport::PrivateCluster,
    address: &str,
    namespace: &str,
    dir: &std::path::Path,
) -> anyhow::Result<crate::procs::Guarded> {
    use crate::procs;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_durablejob"));
    cmd.args(args)
        .args(["--log-format", "json"])
        .arg("--metrics-addr")
        .arg(format!("127.0.0.1:{}", procs::free_port()))
        .arg("--health-addr")
        .arg(format!("127.0.0.1:{}", procs::free_port()))
        .env("KUBECONFIG", &cluster.kubeconfig)
        .env("TEMPORAL_ADDRESS", address)
        .env("TEMPORAL_NAMESPACE", namespace)
        .env("RUST_LOG", "warn");
    Ok(procs::Guarded::spawn(cmd, &dir.join(format!("{}.log", args[0])))?)
}
