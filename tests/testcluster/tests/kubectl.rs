//! kubectl against the test API server, for the commands a user types. Runs with each kubectl
//! named in `TESTCLUSTER_KUBECTL` (paths separated by `:`; `make test` puts Debian's
//! kubernetes-client 1.20 there, and any newer kubectl found on PATH), or else with `kubectl`
//! from PATH; says so and passes trivially where there is none.

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::json;
use testcluster::TestCluster;

/// The kubectl binaries to run: those `TESTCLUSTER_KUBECTL` names (each must work), or
/// `kubectl` from PATH where there is one.
fn kubectls() -> Vec<String> {
    let version = |bin: &str| {
        Command::new(bin)
            .args(["version", "--client"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
    };
    match std::env::var("TESTCLUSTER_KUBECTL") {
        Ok(list) if !list.trim().is_empty() => list
            .split(':')
            .filter(|b| !b.is_empty())
            .map(|bin| {
                let v = version(bin)
                    .unwrap_or_else(|| panic!("TESTCLUSTER_KUBECTL names {bin}, which does not run"));
                eprintln!("kubectl {bin}: {v}");
                bin.to_string()
            })
            .collect(),
        _ => match version("kubectl") {
            Some(v) => {
                eprintln!("kubectl from PATH: {v}");
                vec!["kubectl".into()]
            }
            None => {
                eprintln!("kubectl is not installed: skipping the kubectl tests");
                Vec::new()
            }
        },
    }
}

fn kubectl(bin: &str, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(bin);
    cmd.env("KUBECONFIG", kubeconfig)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().expect("kubectl starts");
    if let Some(text) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.example.dev}
spec:
  group: example.dev
  names: {kind: Gadget, plural: gadgets, shortNames: [gd]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"#;

fn gadget(size: i64) -> String {
    format!("apiVersion: example.dev/v1\nkind: Gadget\nmetadata:\n  name: g1\nspec:\n  size: {size}\n")
}

#[tokio::test]
async fn kubectl_apply_get_describe_patch_and_delete() {
    for bin in kubectls() {
        apply_get_describe_patch_and_delete(bin).await;
    }
}

async fn apply_get_describe_patch_and_delete(bin: String) {
    let cluster = TestCluster::start().await.unwrap();
    let kc = cluster.kubeconfig().to_path_buf();
    let run = |args: Vec<&'static str>, stdin: Option<String>| {
        let (kc, bin) = (kc.clone(), bin.clone());
        tokio::task::spawn_blocking(move || kubectl(&bin, &kc, &args, stdin.as_deref()))
    };
    let (ok, out) = run(vec!["apply", "-f", "-"], Some(CRD.into())).await.unwrap();
    assert!(ok, "{out}");
    let (ok, out) = run(vec!["apply", "-f", "-"], Some(gadget(3))).await.unwrap();
    assert!(ok && out.contains("gadget.example.dev/g1 created"), "{out}");
    let (ok, out) = run(vec!["apply", "-f", "-"], Some(gadget(5))).await.unwrap();
    assert!(ok && out.contains("configured"), "{out}");
    let (ok, out) = run(vec!["apply", "-f", "-"], Some(gadget(5) + "  unknownField: 1\n"))
        .await
        .unwrap();
    assert!(
        !ok && out.contains("unknown field") && out.contains("unknownField"),
        "strict validation (on the client before kubectl 1.27, on the server after): {out}"
    );
    let (ok, out) = run(vec!["get", "gd"], None).await.unwrap();
    assert!(ok, "{out}");
    let header = out.lines().next().unwrap_or_default();
    assert!(
        header.contains("NAME")
            && header.contains("SIZE")
            && header.contains("READY")
            && header.contains("AGE"),
        "{out}"
    );
    assert!(
        out.lines().nth(1).unwrap_or_default().split_whitespace().nth(1) == Some("5"),
        "{out}"
    );

    // get -w sees a change
    let (kc2, bin2) = (kc.clone(), bin.clone());
    let watcher = std::thread::spawn(move || {
        let mut child = Command::new(&bin2)
            .env("KUBECONFIG", &kc2)
            .args(["get", "gadgets", "-w", "--request-timeout=8s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(3));
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (ok, out) = run(
        vec![
            "patch",
            "gadget",
            "g1",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"size":7}}"#,
        ],
        None,
    )
    .await
    .unwrap();
    assert!(ok && out.contains("patched"), "{out}");
    let watched = watcher.join().unwrap();
    assert!(
        watched
            .lines()
            .any(|l| l.starts_with("g1") && l.split_whitespace().nth(1) == Some("7")),
        "get -w showed the change:\n{watched}"
    );

    let (ok, out) = run(vec!["apply", "--server-side", "-f", "-"], Some(gadget(9)))
        .await
        .unwrap();
    assert!(
        !ok && out.contains("conflict with \"kubectl-patch\""),
        "kubectl patch owns spec.size now: {out}"
    );
    let (ok, out) = run(
        vec!["apply", "--server-side", "--force-conflicts", "-f", "-"],
        Some(gadget(9)),
    )
    .await
    .unwrap();
    assert!(ok && out.contains("serverside-applied"), "{out}");

    // describe shows the object and its Events (found by kind, name, namespace and uid)
    let (_, uid) = run(
        vec!["get", "gadget", "g1", "-o", "jsonpath={.metadata.uid}"],
        None,
    )
    .await
    .unwrap();
    let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "g1.1", "namespace": "default"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "regarding": {"apiVersion": "example.dev/v1", "kind": "Gadget", "name": "g1", "namespace": "default", "uid": uid},
        "reason": "Tested", "note": "hello from the test", "type": "Normal", "action": "Test",
        "reportingController": "tester", "reportingInstance": "tester-1"});
    cluster.apply_value(&ev).unwrap();
    let (ok, out) = run(vec!["describe", "gadget", "g1"], None).await.unwrap();
    assert!(
        ok && out.contains("Size:  9") && out.contains("hello from the test"),
        "{out}"
    );

    let (ok, out) = run(vec!["delete", "gadget", "g1"], None).await.unwrap();
    assert!(ok && out.contains("deleted"), "{out}");
    let (ok, out) = run(vec!["get", "gadget", "g1"], None).await.unwrap();
    assert!(!ok && out.contains("NotFound"), "{out}");
    let (ok, out) = run(
        vec!["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n".into()),
    )
    .await
    .unwrap();
    assert!(ok, "built-in kinds apply too: {out}");
}
