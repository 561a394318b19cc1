//! The protocol through real HTTP with kube-rs: CRDs, validation, verbs, status, patches,
//! finalizers, watches.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
    core::{ApiResource, DynamicObject, GroupVersionKind},
};
use serde_json::{Value, json};
use testcluster::TestCluster;

fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.dev"},
        "spec": {
            "group": "example.dev",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "shortNames": ["wg"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [{"name": "Size", "type": "integer", "jsonPath": ".spec.size"}],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["size"],
                            "x-kubernetes-validations": [{"rule": "self.size <= self.max", "message": "size must not exceed max"}],
                            "properties": {
                                "size": {"type": "integer", "minimum": 1},
                                "max": {"type": "integer", "default": 10},
                                "color": {"type": "string", "enum": ["red", "blue"]},
                                "name": {"type": "string", "pattern": "^[a-z]+$", "maxLength": 8},
                                "port": {"x-kubernetes-int-or-string": true},
                                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                                "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
                                "note": {"type": "string", "nullable": true}
                            }
                        },
                        "status": {
                            "type": "object",
                            "properties": {
                                "phase": {"type": "string"},
                                "conditions": {
                                    "type": "array",
                                    "x-kubernetes-list-type": "map",
                                    "x-kubernetes-list-map-keys": ["type"],
                                    "items": {"type": "object", "required": ["type", "status"], "properties": {
                                        "type": {"type": "string"}, "status": {"type": "string"}}}
                                }
                            }
                        }
                    }
                }}
            }]
        }
    })
}

async fn cluster_with_widgets() -> (TestCluster, Client, Api<DynamicObject>) {
    let cluster = TestCluster::start().await.unwrap();
    let client = cluster.client().await.unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(
        &PostParams::default(),
        &serde_json::from_value(widget_crd()).unwrap(),
    )
    .await
    .unwrap();
    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("example.dev", "v1", "Widget"), "widgets");
    let widgets = Api::namespaced_with(client.clone(), "default", &ar);
    (cluster, client, widgets)
}

fn widget(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(
        json!({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}),
    )
    .unwrap()
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other}"),
    }
}

#[tokio::test]
async fn a_crd_becomes_servable_and_established_with_discovery() {
    let (cluster, client, _) = cluster_with_widgets().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds.get("widgets.example.dev").await.unwrap();
    let conds = crd.status.unwrap().conditions.unwrap();
    assert!(
        conds
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
    let discovery = kube::Discovery::new(client.clone()).run().await.unwrap();
    let (ar, caps) = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(ar, _)| ar.kind == "Widget")
        .expect("Widget is discoverable");
    assert_eq!(ar.plural, "widgets");
    assert!(
        caps.subresources
            .iter()
            .any(|(s, _)| s.plural.ends_with("status")),
        "{:?}",
        caps.subresources
    );
    let legacy: Value = reqwest_get(&cluster, "/apis/example.dev/v1").await;
    assert_eq!(legacy["resources"][0]["shortNames"], json!(["wg"]));
    assert!(
        legacy["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "widgets/status")
    );
}

async fn reqwest_get(cluster: &TestCluster, path: &str) -> Value {
    raw(cluster, "GET", path, None, "").await.1
}

/// A raw HTTP request, for what kube-rs does not expose.
async fn raw(
    cluster: &TestCluster,
    method: &str,
    path: &str,
    body: Option<Value>,
    content_type: &str,
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(cluster.addr()).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        cluster.token(),
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let code: u16 = out[9..12].parse().unwrap();
    let (_, rest) = out.split_once("\r\n\r\n").unwrap();
    let body = if out.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (code, serde_json::from_str(&body).unwrap_or(Value::String(body)))
}

fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

#[tokio::test]
async fn schema_defaults_prunes_and_refuses_with_field_causes() {
    let (_c, _client, widgets) = cluster_with_widgets().await;
    let created = widgets
        .create(
            &PostParams::default(),
            &widget(
                "a",
                json!({"size": 2, "unknown": 1, "extra": {"x": {"y": 1}}, "port": "http"}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(created.data["spec"]["max"], 10, "default applied");
    assert!(
        created.data["spec"].get("unknown").is_none(),
        "unknown field pruned"
    );
    assert_eq!(
        created.data["spec"]["extra"],
        json!({"x": {"y": 1}}),
        "preserve-unknown-fields kept"
    );
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());

    for (spec, field, reason) in [
        (json!({}), "spec.size", "FieldValueRequired"),
        (json!({"size": 0}), "spec.size", "FieldValueInvalid"),
        (
            json!({"size": 1, "color": "green"}),
            "spec.color",
            "FieldValueNotSupported",
        ),
        (
            json!({"size": 1, "name": "ABC"}),
            "spec.name",
            "FieldValueInvalid",
        ),
        (
            json!({"size": 1, "name": "abcdefghij"}),
            "spec.name",
            "FieldValueTooLong",
        ),
        (json!({"size": "big"}), "spec.size", "FieldValueTypeInvalid"),
        (
            json!({"size": 1, "port": 1.5}),
            "spec.port",
            "FieldValueTypeInvalid",
        ),
        (
            json!({"size": 1, "tags": ["a", "a"]}),
            "spec.tags[1]",
            "FieldValueDuplicate",
        ),
        (json!({"size": 20}), "spec", "FieldValueInvalid"),
    ] {
        let err = api_error(
            widgets
                .create(&PostParams::default(), &widget("bad", spec.clone()))
                .await
                .unwrap_err(),
        );
        assert_eq!(err.code, 422, "{spec}: {err:?}");
        assert_eq!(err.reason, "Invalid");
        let causes = err.details.unwrap().causes;
        assert!(
            causes.iter().any(|c| c.field == field && c.reason == reason),
            "{spec}: {causes:?}"
        );
    }
    let err = api_error(
        widgets
            .create(&PostParams::default(), &widget("bad", json!({"size": 20})))
            .await
            .unwrap_err(),
    );
    assert!(
        err.message.contains("size must not exceed max"),
        "CEL message: {}",
        err.message
    );
    let nullable = widgets
        .create(
            &PostParams::default(),
            &widget("n", json!({"size": 1, "note": null})),
        )
        .await;
    assert!(nullable.is_ok(), "nullable accepts null");
}

#[tokio::test]
async fn strict_field_validation_refuses_unknown_fields() {
    let (cluster, _client, _) = cluster_with_widgets().await;
    let (code, status) = raw(
        &cluster,
        "POST",
        "/apis/example.dev/v1/namespaces/default/widgets?fieldValidation=Strict",
        Some(json!({"apiVersion": "example.dev/v1", "kind": "Widget", "metadata": {"name": "s"}, "spec": {"size": 1, "sise": 2}})),
        "application/json",
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("unknown field \"spec.sise\""),
        "{status}"
    );
}

#[tokio::test]
async fn verbs_follow_resource_version_and_generation_rules() {
    let (_c, _client, widgets) = cluster_with_widgets().await;
    let w = widgets
        .create(&PostParams::default(), &widget("a", json!({"size": 1})))
        .await
        .unwrap();
    let err = api_error(
        widgets
            .create(&PostParams::default(), &widget("a", json!({"size": 1})))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));

    let mut stale = w.clone();
    let mut fresh = w.clone();
    fresh.data["spec"]["size"] = json!(2);
    let updated = widgets
        .replace("a", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_eq!(updated.metadata.generation, Some(2));
    stale.data["spec"]["size"] = json!(3);
    let err = api_error(
        widgets
            .replace("a", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));

    // an unchanged write keeps the resourceVersion
    let same = widgets
        .replace("a", &PostParams::default(), &updated)
        .await
        .unwrap();
    assert_eq!(same.metadata.resource_version, updated.metadata.resource_version);

    // labels are metadata: no generation bump
    let labelled = widgets
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "x"}}})),
        )
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(2));

    let err = api_error(widgets.get("missing").await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    let err = api_error(
        widgets
            .patch(
                "a",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"bad key!": "x"}}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
}

#[tokio::test]
async fn the_status_subresource_is_separate_from_the_main_resource() {
    let (_c, _client, widgets) = cluster_with_widgets().await;
    widgets
        .create(&PostParams::default(), &widget("a", json!({"size": 1})))
        .await
        .unwrap();
    // the main endpoint ignores status
    let w = widgets
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Main"}, "spec": {"size": 2}})),
        )
        .await
        .unwrap();
    assert!(w.data.get("status").is_none());
    // /status ignores everything else and does not bump generation
    let w = widgets
        .patch_status(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready"}, "spec": {"size": 5}})),
        )
        .await
        .unwrap();
    assert_eq!(w.data["status"]["phase"], "Ready");
    assert_eq!(w.data["spec"]["size"], 2);
    assert_eq!(w.metadata.generation, Some(2));
}

#[tokio::test]
async fn server_side_apply_owns_fields_merges_map_lists_and_detects_conflicts() {
    let (_c, _client, widgets) = cluster_with_widgets().await;
    let apply = |m: &str| PatchParams::apply(m);
    let w = widgets
        .patch(
            "a",
            &apply("alice"),
            &Patch::Apply(widget("a", json!({"size": 1, "color": "red"}))),
        )
        .await
        .unwrap();
    assert_eq!(w.data["spec"]["color"], "red");
    let mf = w.metadata.managed_fields.clone().unwrap();
    assert_eq!(mf[0].manager.as_deref(), Some("alice"));
    assert_eq!(mf[0].operation.as_deref(), Some("Apply"));

    // another manager changing alice's field conflicts, unless forced
    let err = api_error(
        widgets
            .patch(
                "a",
                &apply("bob"),
                &Patch::Apply(widget("a", json!({"size": 1, "color": "blue"}))),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    assert!(
        err.message.contains("conflict with \"alice\"") && err.message.contains(".spec.color"),
        "{}",
        err.message
    );
    widgets
        .patch(
            "a",
            &apply("bob").force(),
            &Patch::Apply(widget("a", json!({"size": 1, "color": "blue"}))),
        )
        .await
        .unwrap();

    // alice stops applying size: bob also applied it, so it stays; color was taken by bob
    let w = widgets
        .patch(
            "a",
            &apply("alice"),
            &Patch::Apply(widget("a", json!({"name": "abc"}))),
        )
        .await
        .unwrap();
    assert_eq!(w.data["spec"]["size"], 1);
    assert_eq!(w.data["spec"]["color"], "blue");

    // status apply with conditions merged by type
    let status = |conds: Value| json!({"apiVersion": "example.dev/v1", "kind": "Widget", "status": {"conditions": conds}});
    widgets
        .patch_status(
            "a",
            &apply("ctl-a").force(),
            &Patch::Apply(status(json!([{"type": "A", "status": "True"}]))),
        )
        .await
        .unwrap();
    let w = widgets
        .patch_status(
            "a",
            &apply("ctl-b").force(),
            &Patch::Apply(status(json!([{"type": "B", "status": "False"}]))),
        )
        .await
        .unwrap();
    assert_eq!(
        w.data["status"]["conditions"],
        json!([{"type": "A", "status": "True"}, {"type": "B", "status": "False"}])
    );
    // a no-op apply does not change the resourceVersion
    let again = widgets
        .patch_status(
            "a",
            &apply("ctl-b").force(),
            &Patch::Apply(status(json!([{"type": "B", "status": "False"}]))),
        )
        .await
        .unwrap();
    assert_eq!(again.metadata.resource_version, w.metadata.resource_version);
    // ctl-b dropping its condition removes it
    let w = widgets
        .patch_status("a", &apply("ctl-b").force(), &Patch::Apply(status(json!([]))))
        .await
        .unwrap();
    assert_eq!(
        w.data["status"]["conditions"],
        json!([{"type": "A", "status": "True"}])
    );
}

#[tokio::test]
async fn json_and_strategic_patches_and_their_errors() {
    let (_c, client, widgets) = cluster_with_widgets().await;
    widgets
        .create(
            &PostParams::default(),
            &widget("a", json!({"size": 1, "tags": ["x"]})),
        )
        .await
        .unwrap();
    let p: json_patch::Patch = serde_json::from_value(json!([{"op": "test", "path": "/spec/size", "value": 1}, {"op": "replace", "path": "/spec/size", "value": 3}])).unwrap();
    let w = widgets
        .patch("a", &PatchParams::default(), &Patch::Json::<()>(p))
        .await
        .unwrap();
    assert_eq!(w.data["spec"]["size"], 3);
    let p: json_patch::Patch =
        serde_json::from_value(json!([{"op": "test", "path": "/spec/size", "value": 1}])).unwrap();
    let err = api_error(
        widgets
            .patch("a", &PatchParams::default(), &Patch::Json::<()>(p))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422, "failed JSON patch test");
    let err = api_error(
        widgets
            .patch(
                "a",
                &PatchParams::default(),
                &Patch::Strategic(json!({"spec": {"size": 2}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 415, "no strategic merge for custom resources");

    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "c", "finalizers": ["a.dev/x"]}, "data": {"k": "v"}}),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let c = cms
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Strategic(
                json!({"metadata": {"finalizers": ["b.dev/y"]}, "data": {"k": null, "k2": "v2"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(c.metadata.finalizers.unwrap(), vec!["a.dev/x", "b.dev/y"]);
    assert_eq!(
        c.data.unwrap().into_iter().collect::<Vec<_>>(),
        vec![("k2".to_string(), "v2".to_string())]
    );
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let (_c, _client, widgets) = cluster_with_widgets().await;
    let mut w = widget("a", json!({"size": 1}));
    w.metadata.finalizers = Some(vec!["example.dev/hold".into()]);
    widgets.create(&PostParams::default(), &w).await.unwrap();
    widgets.delete("a", &DeleteParams::default()).await.unwrap();
    let w = widgets.get("a").await.unwrap();
    assert!(w.metadata.deletion_timestamp.is_some());
    let err = api_error(
        widgets
            .create(&PostParams::default(), &widget("a", json!({"size": 1})))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 409);
    widgets
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    let err = api_error(widgets.get("a").await.unwrap_err());
    assert_eq!(err.code, 404);
}

#[tokio::test]
async fn objects_need_an_existing_namespace_and_valid_names() {
    let (_c, client, widgets) = cluster_with_widgets().await;
    let other: Api<ConfigMap> = Api::namespaced(client.clone(), "nowhere");
    let err = api_error(
        other
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "c"}})).unwrap(),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 404);
    let err = api_error(
        widgets
            .create(&PostParams::default(), &widget("Bad_Name", json!({"size": 1})))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    let mut g = widget("", json!({"size": 1}));
    g.metadata.name = None;
    g.metadata.generate_name = Some("gen-".into());
    let made = widgets.create(&PostParams::default(), &g).await.unwrap();
    assert!(made.metadata.name.unwrap().starts_with("gen-"));
}

#[tokio::test]
async fn list_pages_and_selects() {
    let (_c, client, _) = cluster_with_widgets().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for i in 0..7 {
        let cm = json!({"metadata": {"name": format!("c{i}"), "labels": {"parity": if i % 2 == 0 { "even" } else { "odd" }}}});
        cms.create(&PostParams::default(), &serde_json::from_value(cm).unwrap())
            .await
            .unwrap();
    }
    let page = cms.list(&ListParams::default().limit(3)).await.unwrap();
    assert_eq!(page.items.len(), 3);
    let token = page.metadata.continue_.clone().unwrap();
    let next = cms
        .list(&ListParams::default().limit(3).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(next.items[0].metadata.name.as_deref(), Some("c3"));
    let even = cms
        .list(&ListParams::default().labels("parity=even"))
        .await
        .unwrap();
    assert_eq!(even.items.len(), 4);
    let named = cms
        .list(&ListParams::default().fields("metadata.name=c5"))
        .await
        .unwrap();
    assert_eq!(named.items.len(), 1);
    let err = api_error(
        cms.list(&ListParams::default().fields("data.k=v"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
}

#[tokio::test]
async fn watches_resume_from_a_resource_version_and_send_bookmarks() {
    let (_c, client, _) = cluster_with_widgets().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let first = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "w1"}})).unwrap(),
        )
        .await
        .unwrap();
    let rv = first.metadata.resource_version.clone().unwrap();
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "w2"}})).unwrap(),
    )
    .await
    .unwrap();
    let mut stream = cms
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap()
        .boxed();
    let mut seen = vec![];
    let mut bookmark = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    while tokio::time::Instant::now() < deadline && !(bookmark && seen.len() >= 2) {
        let Ok(Some(ev)) = tokio::time::timeout(Duration::from_secs(3), stream.try_next())
            .await
            .map(|r| r.unwrap())
        else {
            break;
        };
        match ev {
            WatchEvent::Added(cm) => {
                seen.push(cm.metadata.name.unwrap());
                if seen.len() == 1 {
                    cms.delete("w1", &DeleteParams::default()).await.unwrap();
                }
            }
            WatchEvent::Deleted(cm) => seen.push(format!("-{}", cm.metadata.name.unwrap())),
            WatchEvent::Bookmark(_) => bookmark = true,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(seen, vec!["w2", "-w1"], "resumed after w1's version, then live");
    assert!(bookmark, "bookmarks arrive");
}

#[tokio::test]
async fn errors_are_status_objects_and_a_wrong_token_is_refused() {
    let (cluster, _client, _) = cluster_with_widgets().await;
    let (code, body) = raw(
        &cluster,
        "GET",
        "/apis/example.dev/v1/namespaces/default/gadgets",
        None,
        "",
    )
    .await;
    assert_eq!(code, 404);
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["reason"], "NotFound");
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(cluster.addr()).await.unwrap();
    s.write_all(b"GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 401"), "{out}");
}

#[tokio::test]
async fn the_request_log_counts_calls() {
    let (cluster, client, _) = cluster_with_widgets().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cms.list(&ListParams::default()).await.unwrap();
    cms.list(&ListParams::default()).await.unwrap();
    assert_eq!(cluster.requests().count_verb("list", "configmaps"), 2);
    assert_eq!(
        cluster
            .requests()
            .count_verb("create", "customresourcedefinitions"),
        1
    );
}

#[tokio::test]
async fn events_written_through_events_k8s_io_are_read_through_core_v1() {
    let (_c, client, _) = cluster_with_widgets().await;
    let new_api: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "default");
    let ev = json!({
        "metadata": {"name": "w.1"},
        "eventTime": "2026-01-01T00:00:00.000000Z",
        "regarding": {"kind": "Widget", "name": "a", "namespace": "default"},
        "reason": "Synced", "note": "all good", "type": "Normal", "action": "Sync",
        "reportingController": "ctl", "reportingInstance": "ctl-1"
    });
    new_api
        .create(&PostParams::default(), &serde_json::from_value(ev).unwrap())
        .await
        .unwrap();
    let core: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "default");
    let found = core
        .list(&ListParams::default().fields("involvedObject.name=a,involvedObject.kind=Widget"))
        .await
        .unwrap();
    assert_eq!(found.items.len(), 1);
    assert_eq!(found.items[0].message.as_deref(), Some("all good"));
    assert_eq!(found.items[0].reporting_component.as_deref(), Some("ctl"));
    let err = api_error(
        new_api
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "bad"}, "type": "Normal"})).unwrap(),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422, "events.k8s.io validation still applies");
}

#[tokio::test]
async fn openapi_v2_is_served_as_json_or_protobuf_as_accept_asks() {
    let (_cluster, client, _) = cluster_with_widgets().await;
    let get = |accept: &'static str| {
        let client = client.clone();
        async move {
            let req = http::Request::get("/openapi/v2")
                .header(http::header::ACCEPT, accept)
                .body(Vec::new())
                .unwrap();
            let resp = client.send(req.map(kube::client::Body::from)).await.unwrap();
            let status = resp.status().as_u16();
            let ct = resp
                .headers()
                .get(http::header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            (status, ct, body)
        }
    };
    let (status, ct, body) = get("application/json").await;
    assert_eq!((status, ct.as_str()), (200, "application/json"));
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let widget = &doc["definitions"]["dev.example.v1.Widget"];
    assert_eq!(widget["x-kubernetes-group-version-kind"][0]["kind"], "Widget");
    assert_eq!(widget["properties"]["apiVersion"]["type"], "string");

    let (status, ct, body) = get("application/com.github.proto-openapi.spec.v2@v1.0+protobuf").await;
    assert_eq!((status, ct.as_str()), (200, "application/octet-stream"));
    assert_eq!(&body[..2], b"\x0a\x03", "field 1 (swagger), 3 bytes");
    assert_eq!(&body[2..5], b"2.0");
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("dev.example.v1.Widget") && text.contains("x-kubernetes-group-version-kind"));

    let (status, _, _) = get("application/yaml").await;
    assert_eq!(status, 406);
}
