//! `durablejob migrate` on a corpus shaped like a GitOps repository: golden outputs (reviewed
//! by eye; `UPDATE_GOLDEN=1` rewrites them), every output accepted by the CRD's schema, the
//! output modes, and random CronJobs that always convert into valid DurableJobs.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use durablejob::api::OverlapPolicy;
use durablejob::migrate::{self, Output, Request, convert::Options, report::Report};
use kube::{
    Api,
    api::PostParams,
    core::{ApiResource, DynamicObject, GroupVersionKind},
};
use proptest::prelude::*;
use serde_json::{Value, json};
use testsupport::Cluster;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn repo() -> PathBuf {
    PathBuf::from("tests/fixtures/migrate/repo")
}

fn run(req: &Request) -> (i32, String, Report) {
    std::env::set_current_dir(root()).unwrap();
    let mut out = vec![];
    let mut report = Report::default();
    let code = migrate::run(req, &mut std::io::empty(), &mut out, &mut report);
    (code, String::from_utf8(out).unwrap(), report)
}

fn request(paths: Vec<PathBuf>, output: Output) -> Request {
    Request {
        paths,
        output,
        force: false,
        passthrough: false,
        options: Options::default(),
    }
}

fn golden(name: &str, actual: &str) {
    let path = root().join("tests/fixtures/migrate/expected").join(name);
    if std::env::var("UPDATE_GOLDEN").is_ok() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{name} differs from the golden file (UPDATE_GOLDEN=1 to accept):\n{actual}"
    );
}

#[test]
fn the_corpus_converts_to_the_reviewed_golden_output_and_report() {
    let (code, out, report) = run(&request(vec![repo()], Output::Stdout));
    golden("all.yaml", &out);
    golden("report.txt", &report.text());
    golden("report.json", &serde_json::to_string_pretty(&report).unwrap());
    assert_eq!(code, 1, "broken.yaml fails, the rest converts");
    assert_eq!(report.counts(), (8, 1, 3));
}

/// Dry-run creates every DurableJob in `yaml` on the real API server; what it refused.
async fn apply_all(yaml: &str) -> Vec<String> {
    let cluster = Cluster::shared();
    let client = cluster.client().await.unwrap();
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("durablejob.dev", "v1alpha1", "DurableJob"),
        "durablejobs",
    );
    let mut refused = vec![];
    let mut namespaces = vec![];
    for doc in durablejob::yaml::documents::<Value>(yaml).unwrap() {
        let items = if doc["kind"] == "List" {
            doc["items"].as_array().unwrap().clone()
        } else {
            vec![doc]
        };
        for item in items.into_iter().filter(|i| i["kind"] == "DurableJob") {
            let ns = item["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string();
            if ns != "default" && !namespaces.iter().any(|n: &testsupport::Namespace| n.name == ns) {
                namespaces.push(cluster.namespace(&ns).unwrap());
            }
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
            let obj: DynamicObject = serde_json::from_value(item.clone()).unwrap();
            if let Err(e) = api
                .create(
                    &PostParams {
                        dry_run: true,
                        field_manager: None,
                    },
                    &obj,
                )
                .await
            {
                refused.push(format!("{}: {e}", item["metadata"]["name"]));
            }
        }
    }
    refused
}

#[tokio::test]
async fn every_converted_manifest_is_accepted_by_the_crd_schema() {
    let (_, out, _) = tokio::task::spawn_blocking(|| run(&request(vec![repo()], Output::Stdout)))
        .await
        .unwrap();
    assert!(out.matches("kind: DurableJob").count() >= 6);
    let refused = apply_all(&out).await;
    assert!(refused.is_empty(), "{refused:?}");
}

/// Every leaf of `ours` (a converted jobTemplate) has the same value at the same place in
/// `kubernetes` (what the API server made of the CronJob, with its defaults added); the paths
/// that differ.
fn differences(ours: &Value, kubernetes: &Value, path: &str, out: &mut Vec<String>) {
    match (ours, kubernetes) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                differences(v, b.get(k).unwrap_or(&Value::Null), &format!("{path}.{k}"), out);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differences(x, y, &format!("{path}[{i}]"), out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: ours {a}, Kubernetes {b}")),
    }
}

#[test]
fn octal_hex_and_yaml_1_1_booleans_convert_to_what_kubectl_apply_makes_of_them() {
    let file = repo().join("infra/wildcard-cert-renew.yaml");
    let (code, out, report) = run(&request(vec![file.clone()], Output::Stdout));
    assert_eq!(code, 0, "{}", report.text());
    assert!(
        !report.text().contains("warning  spec.jobTemplate") && !report.text().contains("error"),
        "nothing surprising: {}",
        report.text()
    );
    let dj = durablejob::yaml::documents::<Value>(&out)
        .unwrap()
        .into_iter()
        .find(|d| d["kind"] == "DurableJob")
        .expect("a DurableJob");
    let kubectl = Cluster::shared().kubectl();
    let served = kubectl
        .ok(
            &[
                "apply",
                "--dry-run=server",
                "-o",
                "json",
                "-f",
                &root().join(&file).to_string_lossy(),
            ],
            None,
        )
        .unwrap();
    let served: Value = serde_json::from_str(&served).unwrap();
    let template = &dj["spec"]["jobTemplate"];
    assert_eq!(
        template["spec"]["template"]["spec"]["volumes"][0]["secret"]["defaultMode"],
        256
    );
    let mut diffs = vec![];
    differences(
        template,
        &served["spec"]["jobTemplate"],
        "spec.jobTemplate",
        &mut diffs,
    );
    assert!(
        diffs.is_empty(),
        "the converted jobTemplate is what Kubernetes stores: {diffs:#?}"
    );
    assert_eq!(dj["spec"]["suspend"], served["spec"]["suspend"]);
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("durablejob-migrate-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap().path();
        let target = to.join(e.file_name().unwrap());
        if e.is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&e, &target);
        } else {
            std::fs::copy(&e, &target).unwrap();
        }
    }
}

#[test]
fn a_mirrored_folder_keeps_other_documents_byte_for_byte_and_refuses_to_overwrite() {
    let out = tempdir("mirror");
    let dest = out.join("converted/");
    let mut req = request(vec![repo()], Output::Dir(dest.clone()));
    req.passthrough = true;
    let (_, _, report) = run(&req);
    assert!(
        report
            .written
            .iter()
            .any(|w| w.ends_with("apps/reports/report-mailer.yaml")),
        "{:?}",
        report.written
    );
    let mailer = std::fs::read_to_string(dest.join("apps/reports/report-mailer.yaml")).unwrap();
    let original =
        std::fs::read_to_string(root().join("tests/fixtures/migrate/repo/apps/reports/report-mailer.yaml"))
            .unwrap();
    let config_map = original.split("---\n").next().unwrap();
    assert!(
        mailer.starts_with(config_map),
        "the ConfigMap and its comment are kept byte for byte:\n{mailer}"
    );
    assert!(mailer.contains("kind: DurableJob") && !mailer.contains("kind: CronJob"));
    assert_eq!(
        std::fs::read(dest.join("infra/kustomization.yaml")).unwrap(),
        std::fs::read(root().join("tests/fixtures/migrate/repo/infra/kustomization.yaml")).unwrap(),
        "kustomization files are copied, not parsed"
    );
    // a second run refuses to overwrite, and writes nothing
    let before = std::fs::read_to_string(dest.join("apps/cleanup.yaml")).unwrap();
    std::fs::write(dest.join("apps/cleanup.yaml"), "edited by hand\n").unwrap();
    let (code, _, report) = run(&req);
    assert_eq!(code, 1);
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.contains("not overwriting") && e.contains("--force")),
        "{:?}",
        report.errors
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("apps/cleanup.yaml")).unwrap(),
        "edited by hand\n"
    );
    req.force = true;
    run(&req);
    assert_eq!(
        std::fs::read_to_string(dest.join("apps/cleanup.yaml")).unwrap(),
        before
    );
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn in_place_rewrites_only_cronjob_documents() {
    let dir = tempdir("inplace");
    copy_tree(&root().join("tests/fixtures/migrate/repo"), &dir);
    let broken_before = std::fs::read(dir.join("apps/broken.yaml")).unwrap();
    let (code, _, _) = run(&request(vec![dir.clone()], Output::InPlace));
    assert_eq!(code, 1, "broken.yaml still fails");
    let mailer = std::fs::read_to_string(dir.join("apps/reports/report-mailer.yaml")).unwrap();
    assert!(
        mailer.starts_with(
            "# The weekday sales report, sent at 08:00 New York time.\napiVersion: v1\nkind: ConfigMap"
        ),
        "{mailer}"
    );
    assert!(mailer.contains("kind: DurableJob"));
    assert_eq!(
        std::fs::read(dir.join("apps/broken.yaml")).unwrap(),
        broken_before,
        "a file with nothing converted is not touched"
    );
    let (code, out, report) = run(&request(vec![dir.join("infra")], Output::Stdout));
    assert_eq!(
        (code, out.as_str()),
        (0, ""),
        "already converted: nothing left to do; {}",
        report.text()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_command_reads_stdin_writes_a_json_report_and_sets_the_exit_code() {
    let dir = tempdir("cli");
    let report_path = dir.join("report.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_durablejob"))
        .args([
            "migrate",
            "--replace-as",
            "cancel-other",
            "--retries",
            "3",
            "--default-time-zone",
            "Europe/Paris",
            "--report",
        ])
        .arg(&report_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: r}\nspec:\n  schedule: '@hourly'\n  concurrencyPolicy: Replace\n  jobTemplate: {spec: {template: {spec: {restartPolicy: Never, containers: [{name: c, image: i}]}}}}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(
        yaml.contains("overlapPolicy: CancelOther")
            && yaml.contains("maximumAttempts: 3")
            && yaml.contains("timeZone: Europe/Paris"),
        "{yaml}"
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["files"][0]["documents"][0]["outcome"], "converted");
    let bad = Command::new(env!("CARGO_BIN_EXE_durablejob"))
        .args(["migrate", "--default-time-zone", "Moon/Base", "-"])
        .output()
        .unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--default-time-zone"));
    let missing = Command::new(env!("CARGO_BIN_EXE_durablejob"))
        .args(["migrate", "no/such/path"])
        .output()
        .unwrap();
    assert!(!missing.status.success() && String::from_utf8_lossy(&missing.stderr).contains("no/such/path"));
    let _ = std::fs::remove_dir_all(&dir);
}

fn cronjob_strategy() -> impl Strategy<Value = Value> {
    let minute = prop_oneof![
        Just("*".to_string()),
        (0..60u32).prop_map(|m| m.to_string()),
        (1..30u32).prop_map(|s| format!("*/{s}"))
    ];
    let hour = prop_oneof![
        Just("*".to_string()),
        (0..24u32).prop_map(|h| h.to_string()),
        (0..12u32).prop_map(|h| format!("{h}-{}", h + 8))
    ];
    let dom = prop_oneof![
        Just("*".to_string()),
        Just("?".to_string()),
        (1..29u32).prop_map(|d| d.to_string()),
        Just("1,15".to_string())
    ];
    let month = prop_oneof![
        Just("*".to_string()),
        Just("JAN-JUN".to_string()),
        (1..13u32).prop_map(|m| m.to_string())
    ];
    let dow = prop_oneof![
        Just("*".to_string()),
        Just("MON-FRI".to_string()),
        (0..7u32).prop_map(|d| d.to_string())
    ];
    let schedule = prop_oneof![
        8 => (minute, hour, dom, month, dow).prop_map(|(a, b, c, d, e)| format!("{a} {b} {c} {d} {e}")),
        1 => prop::sample::select(vec!["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@every 90m"]).prop_map(String::from),
        1 => (0..60u32).prop_map(|m| format!("CRON_TZ=America/Chicago {m} 4 * * *")),
    ];
    let policy = prop::option::of(prop::sample::select(vec!["Allow", "Forbid", "Replace"]));
    let deadline = prop::option::of(0..100_000i64);
    let zone = prop::option::of(prop::sample::select(vec![
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "Australia/Sydney",
        "Etc/GMT-5",
    ]));
    let limits = (
        prop::option::of(0..10i64),
        prop::option::of(0..10i64),
        any::<bool>(),
    );
    (schedule, policy, deadline, zone, limits).prop_map(|(schedule, policy, deadline, zone, (ok, failed, suspend))| {
        let zone = if schedule.starts_with("CRON_TZ") { None } else { zone };
        let mut spec = json!({"schedule": schedule, "suspend": suspend, "jobTemplate": {"spec": {"backoffLimit": 1, "template": {"spec": {
            "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox:1.36"}]}}}}});
        for (k, v) in [("concurrencyPolicy", policy.map(Value::from)), ("startingDeadlineSeconds", deadline.map(Value::from)),
            ("timeZone", zone.map(Value::from)), ("successfulJobsHistoryLimit", ok.map(Value::from)), ("failedJobsHistoryLimit", failed.map(Value::from))] {
            if let Some(v) = v {
                spec[k] = v;
            }
        }
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "random", "namespace": "default"}, "spec": spec})
    })
}

#[test]
fn every_valid_cronjob_converts_to_a_durablejob_the_schema_and_the_operator_accept() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
    let converted = std::cell::RefCell::new(vec![]);
    runner
        .run(&proptest::collection::vec(cronjob_strategy(), 1), |cjs| {
            let opts = Options {
                replace_as: OverlapPolicy::TerminateOther,
                ..Options::default()
            };
            let (dj, _) = migrate::convert::convert(&cjs[0], &opts)
                .map_err(|e| TestCaseError::fail(format!("{}: {e}", cjs[0])))?;
            let typed: durablejob::api::DurableJob =
                serde_json::from_value(dj.clone()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            durablejob::desired::validate::validate(&typed.spec)
                .map_err(|e| TestCaseError::fail(format!("{}: {e}", cjs[0]["spec"]["schedule"])))?;
            converted.borrow_mut().push(dj);
            Ok(())
        })
        .unwrap();
    let yaml: String = converted
        .borrow()
        .iter()
        .enumerate()
        .map(|(i, dj)| {
            let mut dj = dj.clone();
            dj["metadata"]["name"] = Value::from(format!("random-{i}"));
            format!("---\n{}", serde_saphyr::to_string(&dj).unwrap())
        })
        .collect();
    let refused = tokio::runtime::Runtime::new().unwrap().block_on(apply_all(&yaml));
    assert!(refused.is_empty(), "{refused:?}");
}

#[test]
fn a_job_template_the_operator_would_refuse_fails_naming_file_document_and_field() {
    let dir = tempdir("refused");
    let file = dir.join("jobs.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: first}\n---\napiVersion: batch/v1\nkind: CronJob\nmetadata: {name: forever}\nspec:\n  schedule: \"0 * * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Always\n          containers: [{name: c, image: busybox}]\n",
    )
    .unwrap();
    let (code, out, report) = run(&request(vec![file.clone()], Output::Stdout));
    assert_eq!(code, 1, "a document that cannot be converted fails the run");
    assert!(
        !out.contains("kind: DurableJob"),
        "nothing the operator would refuse is written:\n{out}"
    );
    let text = report.text();
    let line = text.lines().find(|l| l.contains("FAILED")).unwrap_or_default();
    assert!(
        line.contains("jobs.yaml#2")
            && line.contains("CronJob forever")
            && line.contains("spec.jobTemplate.spec.template.spec.restartPolicy"),
        "{text}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
