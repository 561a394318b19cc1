//! Defaults the real server fills in when built-in objects are created.

use serde_json::{Value, json};

use crate::builtin::BuiltinKind;

fn default(obj: &mut Value, path: &[&str], value: Value) {
    let mut cur = obj;
    for seg in &path[..path.len() - 1] {
        if !cur[*seg].is_object() {
            cur[*seg] = json!({});
        }
        cur = &mut cur[*seg];
    }
    let last = path[path.len() - 1];
    if cur[last].is_null() {
        cur[last] = value;
    }
}

pub fn on_create(kind: BuiltinKind, obj: &mut Value) {
    match kind {
        BuiltinKind::Namespace => {
            let name = obj["metadata"]["name"].clone();
            default(obj, &["metadata", "labels", "kubernetes.io/metadata.name"], name);
            default(obj, &["spec", "finalizers"], json!(["kubernetes"]));
            default(obj, &["status", "phase"], json!("Active"));
        }
        BuiltinKind::Job => {
            let uid = obj["metadata"]["uid"].clone();
            let name = obj["metadata"]["name"].clone();
            if obj["spec"]["manualSelector"] != Value::Bool(true) {
                default(
                    obj,
                    &[
                        "spec",
                        "selector",
                        "matchLabels",
                        "batch.kubernetes.io/controller-uid",
                    ],
                    uid.clone(),
                );
                for (k, v) in [
                    ("batch.kubernetes.io/controller-uid", uid.clone()),
                    ("controller-uid", uid),
                    ("batch.kubernetes.io/job-name", name.clone()),
                    ("job-name", name),
                ] {
                    default(obj, &["spec", "template", "metadata", "labels", k], v);
                }
            }
            default(obj, &["spec", "backoffLimit"], json!(6));
            default(obj, &["spec", "completions"], json!(1));
            default(obj, &["spec", "parallelism"], json!(1));
            default(obj, &["spec", "completionMode"], json!("NonIndexed"));
            default(obj, &["spec", "suspend"], json!(false));
        }
        BuiltinKind::Deployment => {
            default(obj, &["spec", "replicas"], json!(1));
            default(obj, &["spec", "revisionHistoryLimit"], json!(10));
            default(obj, &["spec", "progressDeadlineSeconds"], json!(600));
            default(
                obj,
                &["spec", "strategy"],
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            );
        }
        BuiltinKind::CronJob => {
            default(obj, &["spec", "concurrencyPolicy"], json!("Allow"));
            default(obj, &["spec", "suspend"], json!(false));
            default(obj, &["spec", "successfulJobsHistoryLimit"], json!(3));
            default(obj, &["spec", "failedJobsHistoryLimit"], json!(1));
        }
        BuiltinKind::Pod => {
            default(obj, &["spec", "restartPolicy"], json!("Always"));
            default(obj, &["status", "phase"], json!("Pending"));
        }
        _ => {}
    }
}
