//! `worker-pods [--namespace NS]`: plays the pods of the versioned worker Deployments the
//! operator makes, which kwok (the playground's kubelet) cannot run, in KUBECONFIG's cluster
//! (every namespace, or NS); testsupport's `worker_pods` says how. Ctrl-C or SIGTERM stops
//! every worker it started.

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let namespace = match args.as_slice() {
        [] => None,
        [flag, ns] if flag == "--namespace" => Some(ns.clone()),
        _ => anyhow::bail!("usage: worker-pods [--namespace NAMESPACE] (got {args:?})"),
    };
    let client = kube::Client::try_default().await?;
    let api: Api<Deployment> = match &namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    println!(
        "worker-pods: playing the Ready replicas of versioned worker Deployments in {}",
        namespace.as_deref().unwrap_or("every namespace")
    );
    let stop = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    testsupport::worker_pods::play(api, stop).await;
    Ok(())
}
