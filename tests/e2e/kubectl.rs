//! The commands a user types, with the real `kubectl` built with the cluster, against a
//! DurableJob the operator reconciles: apply (client-side, then server-side), wait for Ready,
//! get with the printer columns, get -w, describe with the operator's Events, explain.

use std::{
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::ensure;
use testsupport::Kubectl;

use crate::Shared;
use crate::env::{Env, cluster};

scenarios!(kubectl_applies_waits_for_gets_watches_describes_and_explains_durablejobs);

fn manifest(namespace: &str, every: &str, extra: &str) -> String {
    format!(
        "apiVersion: durablejob.dev/v1alpha1\nkind: DurableJob\nmetadata:\n  name: report\n  namespace: {namespace}\nspec:\n  schedule:\n    intervals: [{{every: {every}}}]\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{{name: main, image: busybox:1.36}}]\n{extra}"
    )
}

async fn kubectl_applies_waits_for_gets_watches_describes_and_explains_durablejobs(
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let env = Env::new(&shared, "kubectl", &[]).await?;
    let k: Kubectl = cluster().kubectl().clone();
    let ns = env.namespace.clone();
    let run = |args: Vec<String>, stdin: Option<String>| {
        let k = k.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            k.run(&args, stdin.as_deref())
        })
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();

    let (ok, out) = run(args(&["apply", "-f", "-"]), Some(manifest(&ns, "1h", ""))).await?;
    ensure!(
        ok && out.contains("durablejob.durablejob.dev/report created"),
        "{out}"
    );
    let (ok, out) = run(
        args(&[
            "wait",
            "--for=condition=Ready",
            "-n",
            &ns,
            "dj/report",
            "--timeout=60s",
        ]),
        None,
    )
    .await?;
    ensure!(ok && out.contains("condition met"), "kubectl wait: {out}");

    let (ok, out) = run(args(&["get", "dj", "-n", &ns]), None).await?;
    ensure!(ok, "{out}");
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split("  ")
        .filter(|c| !c.is_empty())
        .map(str::trim)
        .collect();
    for column in [
        "NAME", "SCHEDULE", "SUSPEND", "LAST RUN", "NEXT RUN", "READY", "AGE",
    ] {
        ensure!(header.contains(&column), "column {column} in {header:?}:\n{out}");
    }
    let row = out.lines().nth(1).unwrap_or_default();
    ensure!(
        row.starts_with("report") && row.contains("every 1h") && row.contains("True"),
        "{out}"
    );

    // a mistake is refused by the server's schema, naming the field
    let (ok, out) = run(
        args(&["apply", "-f", "-"]),
        Some(manifest(&ns, "1h", "  unknownField: 1\n")),
    )
    .await?;
    ensure!(
        !ok && out.contains("unknown field") && out.contains("unknownField"),
        "{out}"
    );
    let (ok, out) = run(args(&["apply", "-f", "-"]), Some(manifest(&ns, "1d", ""))).await?;
    ensure!(!ok && out.contains("spec.schedule.intervals[0].every"), "{out}");

    // get -w shows the change a server-side apply makes
    let (kw, nsw) = (k.clone(), ns.clone());
    let watcher = std::thread::spawn(move || {
        let mut child = kw
            .command()
            .args(["get", "dj", "-n", &nsw, "-w", "--request-timeout=20s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("kubectl get -w");
        std::thread::sleep(Duration::from_secs(6));
        let _ = child.kill();
        let out = child.wait_with_output().expect("kubectl output");
        String::from_utf8_lossy(&out.stdout).into_owned()
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ok, out) = run(
        args(&["apply", "--server-side", "-f", "-"]),
        Some(manifest(&ns, "2h", "  suspend: true\n")),
    )
    .await?;
    ensure!(
        !ok && out.contains("conflict with \"kubectl-client-side-apply\""),
        "fields the client-side apply set belong to it: {out}"
    );
    let (ok, out) = run(
        args(&["apply", "--server-side", "--force-conflicts", "-f", "-"]),
        Some(manifest(&ns, "2h", "  suspend: true\n")),
    )
    .await?;
    ensure!(ok && out.contains("serverside-applied"), "{out}");
    let watched = tokio::task::spawn_blocking(move || watcher.join().expect("watcher")).await?;
    ensure!(
        watched
            .lines()
            .any(|l| l.starts_with("report") && l.contains("every 2h") && l.contains("true")),
        "get -w showed the change:\n{watched}"
    );

    // describe shows the spec and the operator's Events
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, out) = run(args(&["describe", "dj", "report", "-n", &ns]), None).await?;
        if ok && out.contains("ScheduleCreated") && out.contains("Every:") {
            break;
        }
        ensure!(Instant::now() < deadline, "describe shows the Events:\n{out}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let (ok, out) = run(args(&["explain", "durablejob.spec.schedule"]), None).await?;
    ensure!(
        ok && ["cron", "intervals", "timeZone", "jitter"]
            .iter()
            .all(|f| out.contains(f)),
        "kubectl explain: {out}"
    );
    Ok(())
}
