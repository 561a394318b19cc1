//! The stop signal of a long-running process.

/// Resolves on SIGTERM (what Kubernetes sends a pod) or Ctrl-C.
pub async fn shutdown() {
    let mut term =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
