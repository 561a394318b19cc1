//! The CRD as a user meets it at `kubectl apply`: the samples are accepted, typical mistakes
//! are refused with a message that says what to fix. Judged by the real API server's schema
//! validation and CEL rules (the local control plane, one for this test binary).

use std::path::PathBuf;

use kube::{
    Api,
    api::PostParams,
    core::{ApiResource, DynamicObject, GroupVersionKind},
};
use serde_json::{Value, json};
use testsupport::{Cluster, Namespace};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A namespace of its own for the test, and DurableJobs in it.
async fn namespace(name: &str) -> (Namespace, Api<DynamicObject>) {
    let cluster = Cluster::shared();
    let ns = cluster.namespace(name).unwrap();
    let client = cluster.client().await.unwrap();
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("durablejob.dev", "v1alpha1", "DurableJob"),
        "durablejobs",
    );
    let api = Api::namespaced_with(client, &ns.name, &ar);
    (ns, api)
}

/// A DurableJob exactly as given (no jobTemplate is added: some cases leave it out on purpose).
fn dj(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({"apiVersion": "durablejob.dev/v1alpha1", "kind": "DurableJob", "metadata": {"name": name}, "spec": spec})).unwrap()
}

#[tokio::test]
async fn the_samples_apply_as_they_are() {
    // the samples name their namespace (default), as a user's manifests often do; they are
    // applied as the kustomize base users apply (`kubectl apply -k config/samples`)
    let samples = root().join("config/samples");
    let applied = Cluster::shared()
        .kubectl()
        .ok(&["apply", "-k", samples.to_str().unwrap()], None)
        .unwrap();
    assert!(applied.lines().count() >= 3, "{applied}");
}

#[tokio::test]
async fn defaults_are_the_documented_ones() {
    let (_ns, api) = namespace("crd-defaults").await;
    let made = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(testsupport::durable_job(
                "d",
                json!({"schedule": {"cron": ["@daily"]}}),
            ))
            .unwrap(),
        )
        .await
        .unwrap();
    let spec = &made.data["spec"];
    assert_eq!(spec["schedule"]["timeZone"], "UTC");
    assert_eq!(spec["overlapPolicy"], "Skip");
    assert_eq!(spec["catchupWindow"], "1m");
    assert_eq!(spec["successfulRunsHistoryLimit"], 3);
    assert_eq!(spec["failedRunsHistoryLimit"], 1);
    assert_eq!(spec["deletionPolicy"], "Delete");
    assert_eq!(spec["suspend"], false);
    assert!(
        spec.get("temporal").is_none(),
        "no default Temporal namespace in the CRD"
    );
}

#[tokio::test]
async fn typical_mistakes_are_refused_at_apply_time() {
    let (_ns, api) = namespace("crd-mistakes").await;
    let jt = testsupport::job_template(json!({}));
    let cases = [
        (
            json!({"schedule": {"cron": ["@daily"]}}),
            "set exactly one of spec.jobTemplate",
        ),
        (
            json!({"schedule": {"cron": ["@daily"]}, "jobTemplate": jt, "worker": {"image": "w"}}),
            "set exactly one of spec.jobTemplate",
        ),
        (
            json!({"schedule": {}, "jobTemplate": jt}),
            "needs at least one entry in cron or intervals",
        ),
        (
            json!({"schedule": {"cron": ["0 0 9 * * *"]}, "jobTemplate": jt}),
            "exactly five fields",
        ),
        (
            json!({"schedule": {"cron": ["CRON_TZ=UTC 0 9 * * *"]}, "jobTemplate": jt}),
            "spec.schedule.timeZone",
        ),
        (
            json!({"schedule": {"cron": ["@every 5m"]}, "jobTemplate": jt}),
            "spec.schedule.intervals",
        ),
        (
            json!({"schedule": {"intervals": [{"every": "1d"}]}, "jobTemplate": jt}),
            "should match",
        ),
        (
            json!({"schedule": {"intervals": [{"every": "500ms"}]}, "jobTemplate": jt}),
            "at least 1s",
        ),
        (
            json!({"schedule": {"intervals": [{"every": "10m", "offset": "15m"}]}, "jobTemplate": jt}),
            "offset must be shorter",
        ),
        (
            json!({"schedule": {"cron": ["@daily"]}, "overlapPolicy": "Replace", "jobTemplate": jt}),
            "supported values",
        ),
        (
            json!({"schedule": {"cron": ["@daily"]}, "catchupWindow": "5s", "jobTemplate": jt}),
            "at least 10s",
        ),
        (
            json!({"schedule": {"cron": ["@daily"]}, "runLimit": 0, "jobTemplate": jt}),
            "greater than or equal to 1",
        ),
        (
            json!({"schedule": {"cron": ["@daily"], "startAt": "tomorrow"}, "jobTemplate": jt}),
            "date-time",
        ),
        (
            json!({"schedule": {"cron": ["@daily"]}, "worker": {"image": "w"}}),
            "needs spec.workflow.type",
        ),
        (
            json!({"schedule": {"cron": ["@daily"]}, "workflow": {"type": "Other"}, "jobTemplate": jt}),
            "leave spec.workflow.type unset",
        ),
        (
            json!({"schedule": {"cron": ["@daily"]}, "deletionPolicy": "Keep", "jobTemplate": jt}),
            "supported values",
        ),
        (
            json!({"schedule": {"cron": ["@daily"]}, "workflow": {"retry": {"backoffCoefficient": 0.5}}, "jobTemplate": jt}),
            "greater than or equal to 1",
        ),
        (
            json!({"schedule": {"cron": ["@daily"], "exclude": {"dates": ["24.12.2026"]}}, "jobTemplate": jt}),
            "should match",
        ),
        (
            json!({"schedule": {"cron": ["@daily"], "exclude": {"cron": ["* * 0,6"]}}, "jobTemplate": jt}),
            "each exclude cron entry needs exactly five fields",
        ),
        (
            json!({"schedule": {"cron": ["@daily"], "excludeCalendars": ["Public Holidays"]}, "jobTemplate": jt}),
            "should match",
        ),
        (
            json!({"schedule": {"cron": ["@daily"]}, "pauseOnFailure": true, "suspendAfterFailures": 3, "jobTemplate": jt}),
            "not both",
        ),
        (
            json!({"schedule": {"cron": ["@daily"]}, "resumeAfter": "1h", "jobTemplate": jt}),
            "resumes a pause made by spec.suspendAfterFailures",
        ),
        (
            json!({"schedule": {"cron": ["@daily"]}, "suspendAfterFailures": 0, "jobTemplate": jt}),
            "greater than or equal to 1",
        ),
        (
            json!({"schedule": {"cron": ["@daily"]}, "jobTemplate": jt, "steps": [{"name": "a", "jobTemplate": jt}]}),
            "set exactly one of spec.jobTemplate",
        ),
        (
            json!({"schedule": {"cron": ["@daily"]}, "steps": []}),
            "should have at least 1 items",
        ),
        (
            json!({"schedule": {"cron": ["@daily"]}, "steps": [{"name": "a-step-name-over-twenty", "jobTemplate": jt}]}),
            "may not be more than 20",
        ),
        (
            json!({"schedule": {"cron": ["@daily"]}, "workflow": {"type": "Other"}, "steps": [{"name": "a", "jobTemplate": jt}]}),
            "leave spec.workflow.type unset",
        ),
    ];
    for (i, (spec, expected)) in cases.into_iter().enumerate() {
        let err = api
            .create(&PostParams::default(), &dj(&format!("bad-{i}"), spec.clone()))
            .await
            .unwrap_err();
        let kube::Error::Api(status) = err else {
            panic!("{spec}: not an API error")
        };
        assert_eq!(status.code, 422, "{spec}");
        assert!(
            status.message.contains(expected),
            "{spec}\n  expected {expected:?} in: {}",
            status.message
        );
    }
}

#[tokio::test]
async fn a_name_longer_than_a_label_value_is_refused_at_apply_time_and_63_characters_are_taken() {
    let (_ns, api) = namespace("crd-names").await;
    let spec = json!({"schedule": {"cron": ["@daily"]}, "jobTemplate": testsupport::job_template(json!({}))});
    // a valid DNS subdomain of 64 characters, and the longest name a label value can carry
    let long = format!("{}.x", "a".repeat(62));
    let err = api
        .create(&PostParams::default(), &dj(&long, spec.clone()))
        .await
        .unwrap_err();
    let kube::Error::Api(status) = err else {
        panic!("not an API error")
    };
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("metadata.name may have at most 63 characters")
            && status.message.contains("durablejob.dev/name"),
        "{}",
        status.message
    );
    let longest = "b".repeat(63);
    api.create(&PostParams::default(), &dj(&longest, spec))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_calendar_with_a_malformed_date_or_cron_is_refused_at_apply_time() {
    let cluster = Cluster::shared();
    let ns = cluster.namespace("crd-calendars").unwrap();
    let client = cluster.client().await.unwrap();
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("durablejob.dev", "v1alpha1", "DurableJobCalendar"),
        "durablejobcalendars",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client, &ns.name, &ar);
    let calendar = |name: &str, spec: Value| -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "durablejob.dev/v1alpha1", "kind": "DurableJobCalendar", "metadata": {"name": name}, "spec": spec})).unwrap()
    };
    api.create(
        &PostParams::default(),
        &calendar("ok", json!({"dates": ["2026-12-25"], "cron": ["* * 24 12 *"]})),
    )
    .await
    .unwrap();
    for (i, (spec, expected)) in [
        (json!({"dates": ["Dec 25"]}), "should match"),
        (json!({"cron": ["0 9 * *"]}), "exactly five fields"),
    ]
    .into_iter()
    .enumerate()
    {
        let err = api
            .create(
                &PostParams::default(),
                &calendar(&format!("bad-{i}"), spec.clone()),
            )
            .await
            .unwrap_err();
        let kube::Error::Api(status) = err else {
            panic!("{spec}: not an API error")
        };
        assert!(
            status.code == 422 && status.message.contains(expected),
            "{spec}: {}",
            status.message
        );
    }
}
