//! `testcluster --port P --kubeconfig FILE [--apply PATH...]`: runs the test API server in
//! the foreground until Ctrl-C or SIGTERM.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "testcluster",
    about = "A strict local Kubernetes API server for durablejob's tests and playground"
)]
struct Args {
    /// Loopback port (0 picks a free one; the chosen address is printed).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Where to write the kubeconfig.
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Manifests (files or folders) to create at start, CRDs first.
    #[arg(long, num_args = 1..)]
    apply: Vec<PathBuf>,
    /// Watch events kept for resuming watches.
    #[arg(long, default_value_t = 1_000)]
    watch_history: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let config = testcluster::Config {
        port: args.port,
        kubeconfig: Some(args.kubeconfig.clone()),
        watch_history: args.watch_history,
        bookmark_interval: Duration::from_secs(2),
    };
    let mut cluster = match testcluster::TestCluster::start_with(config).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("testcluster: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !args.apply.is_empty() {
        match cluster.apply_paths(&args.apply) {
            Ok(done) => {
                for d in done {
                    eprintln!("testcluster: applied {d}");
                }
            }
            Err(e) => {
                eprintln!("testcluster: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!(
        "testcluster listening on {} (kubeconfig {})",
        cluster.base_url(),
        cluster.kubeconfig().display()
    );
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    cluster.stop();
    ExitCode::SUCCESS
}
