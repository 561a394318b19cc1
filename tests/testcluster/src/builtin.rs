//! Built-in kinds: their table, their decoding check (a body must decode into the real
//! k8s-openapi type, as the real server's decoder demands), the rules the server enforces for
//! the few kinds the product touches, and the merge keys of their lists.

use serde_json::Value;

use crate::errors::Cause;
use crate::registry::{ListType, ResourceType};

/// The built-in kinds served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltinKind {
    Namespace,
    Pod,
    Secret,
    ConfigMap,
    ServiceAccount,
    Service,
    CoreEvent,
    Event,
    Deployment,
    Job,
    CronJob,
    Lease,
    Role,
    RoleBinding,
    ClusterRole,
    ClusterRoleBinding,
    CustomResourceDefinition,
}

struct Row(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    bool,
    BuiltinKind,
);

const TABLE: &[Row] = &[
    Row(
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        &["ns"],
        true,
        BuiltinKind::Namespace,
    ),
    Row("", "v1", "Pod", "pods", true, &["po"], true, BuiltinKind::Pod),
    Row(
        "",
        "v1",
        "Secret",
        "secrets",
        true,
        &[],
        false,
        BuiltinKind::Secret,
    ),
    Row(
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        true,
        &["cm"],
        false,
        BuiltinKind::ConfigMap,
    ),
    Row(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        &["sa"],
        false,
        BuiltinKind::ServiceAccount,
    ),
    Row(
        "",
        "v1",
        "Service",
        "services",
        true,
        &["svc"],
        true,
        BuiltinKind::Service,
    ),
    Row(
        "",
        "v1",
        "Event",
        "events",
        true,
        &["ev"],
        false,
        BuiltinKind::CoreEvent,
    ),
    Row(
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        true,
        &["ev"],
        false,
        BuiltinKind::Event,
    ),
    Row(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        true,
        &["deploy"],
        true,
        BuiltinKind::Deployment,
    ),
    Row("batch", "v1", "Job", "jobs", true, &[], true, BuiltinKind::Job),
    Row(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        true,
        &["cj"],
        true,
        BuiltinKind::CronJob,
    ),
    Row(
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        true,
        &[],
        false,
        BuiltinKind::Lease,
    ),
    Row(
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        &[],
        false,
        BuiltinKind::Role,
    ),
    Row(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
        false,
        BuiltinKind::RoleBinding,
    ),
    Row(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
        false,
        BuiltinKind::ClusterRole,
    ),
    Row(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
        false,
        BuiltinKind::ClusterRoleBinding,
    ),
    Row(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
        true,
        BuiltinKind::CustomResourceDefinition,
    ),
];

pub fn types() -> Vec<ResourceType> {
    TABLE
        .iter()
        .map(
            |Row(group, version, kind, plural, namespaced, short, status, b)| ResourceType {
                group: group.to_string(),
                version: version.to_string(),
                kind: kind.to_string(),
                plural: plural.to_string(),
                singular: kind.to_lowercase(),
                namespaced: *namespaced,
                short_names: short.iter().map(|s| s.to_string()).collect(),
                categories: if matches!(
                    b,
                    BuiltinKind::Pod
                        | BuiltinKind::Service
                        | BuiltinKind::Deployment
                        | BuiltinKind::Job
                        | BuiltinKind::CronJob
                ) {
                    vec!["all".into()]
                } else {
                    vec![]
                },
                status_subresource: *status,
                schema: None,
                builtin: Some(*b),
                printer_columns: vec![],
                selectable_fields: vec![],
            },
        )
        .collect()
}

/// Decodes the body into the k8s-openapi type and reports unknown fields (for
/// `fieldValidation=Strict`). A body that does not decode is a 400, as with the real decoder.
pub fn decode(kind: BuiltinKind, obj: &Value) -> Result<Vec<String>, String> {
    use k8s_openapi::api::{apps, batch, coordination, core, events, rbac};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(
        obj: &Value,
    ) -> Result<Vec<String>, String> {
        let typed: T = serde_path_to_error_lite(obj)?;
        let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
        let mut unknown = vec![];
        unknown_fields(obj, &back, "", &mut unknown);
        Ok(unknown)
    }
    match kind {
        BuiltinKind::Namespace => roundtrip::<core::v1::Namespace>(obj),
        BuiltinKind::Pod => roundtrip::<core::v1::Pod>(obj),
        BuiltinKind::Secret => roundtrip::<core::v1::Secret>(obj),
        BuiltinKind::ConfigMap => roundtrip::<core::v1::ConfigMap>(obj),
        BuiltinKind::ServiceAccount => roundtrip::<core::v1::ServiceAccount>(obj),
        BuiltinKind::Service => roundtrip::<core::v1::Service>(obj),
        BuiltinKind::CoreEvent => roundtrip::<core::v1::Event>(obj),
        BuiltinKind::Event => roundtrip::<events::v1::Event>(obj),
        BuiltinKind::Deployment => roundtrip::<apps::v1::Deployment>(obj),
        BuiltinKind::Job => roundtrip::<batch::v1::Job>(obj),
        BuiltinKind::CronJob => roundtrip::<batch::v1::CronJob>(obj),
        BuiltinKind::Lease => roundtrip::<coordination::v1::Lease>(obj),
        BuiltinKind::Role => roundtrip::<rbac::v1::Role>(obj),
        BuiltinKind::RoleBinding => roundtrip::<rbac::v1::RoleBinding>(obj),
        BuiltinKind::ClusterRole => roundtrip::<rbac::v1::ClusterRole>(obj),
        BuiltinKind::ClusterRoleBinding => roundtrip::<rbac::v1::ClusterRoleBinding>(obj),
        BuiltinKind::CustomResourceDefinition => roundtrip::<CustomResourceDefinition>(obj),
    }
}

fn serde_path_to_error_lite<T: serde::de::DeserializeOwned>(obj: &Value) -> Result<T, String> {
    T::deserialize(obj).map_err(|e| format!("json: cannot decode the object: {e}"))
}

/// Keys present in `input` that the typed round trip dropped.
fn unknown_fields(input: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
    match (input, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(bv) => unknown_fields(v, bv, &p, out),
                    None if v.is_null() => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                unknown_fields(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Rules the real server enforces for the kinds the product writes. `old` is the stored
/// object on update.
pub fn validate(kind: BuiltinKind, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut c = vec![];
    match kind {
        BuiltinKind::Deployment => {
            let spec = &obj["spec"];
            match spec["selector"].as_object() {
                None => c.push(Cause::required("spec.selector")),
                Some(_) => {
                    let labels = &spec["template"]["metadata"]["labels"];
                    if !selector_matches(&spec["selector"], labels) {
                        c.push(Cause::invalid(
                            "spec.template.metadata.labels",
                            labels,
                            "`selector` does not match template `labels`",
                        ));
                    }
                }
            }
            pod_spec(
                &spec["template"]["spec"],
                "spec.template.spec",
                &["Always"],
                &mut c,
            );
            if let Some(old) = old
                && old["spec"]["selector"] != spec["selector"]
            {
                c.push(Cause::invalid(
                    "spec.selector",
                    &spec["selector"],
                    "field is immutable",
                ));
            }
        }
        BuiltinKind::Job => {
            let spec = &obj["spec"];
            pod_spec(
                &spec["template"]["spec"],
                "spec.template.spec",
                &["Never", "OnFailure"],
                &mut c,
            );
            if let Some(old) = old {
                if old["spec"]["template"] != spec["template"] {
                    c.push(Cause::invalid(
                        "spec.template",
                        &spec["template"],
                        "field is immutable",
                    ));
                }
                if old["spec"]["completions"] != spec["completions"] {
                    c.push(Cause::invalid(
                        "spec.completions",
                        &spec["completions"],
                        "field is immutable",
                    ));
                }
            }
        }
        BuiltinKind::CronJob => {
            let spec = &obj["spec"];
            if spec["schedule"].as_str().is_none_or(str::is_empty) {
                c.push(Cause::required("spec.schedule"));
            }
            pod_spec(
                &spec["jobTemplate"]["spec"]["template"]["spec"],
                "spec.jobTemplate.spec.template.spec",
                &["Never", "OnFailure"],
                &mut c,
            );
        }
        BuiltinKind::Pod => pod_spec(&obj["spec"], "spec", &["Always", "OnFailure", "Never"], &mut c),
        BuiltinKind::Event => {
            for f in ["reportingController", "reportingInstance", "action", "reason"] {
                if obj[f].as_str().is_none_or(str::is_empty) {
                    c.push(Cause::required(f));
                }
            }
            if obj["eventTime"].is_null() {
                c.push(Cause::required("eventTime"));
            }
            if !matches!(obj["type"].as_str(), Some("Normal" | "Warning")) {
                c.push(Cause::new(
                    "FieldValueNotSupported",
                    "type",
                    format!(
                        "Unsupported value: {}: supported values: \"Normal\", \"Warning\"",
                        obj["type"]
                    ),
                ));
            }
        }
        BuiltinKind::CoreEvent if obj["involvedObject"].as_object().is_none() => {
            c.push(Cause::required("involvedObject"));
        }
        _ => {}
    }
    c
}

fn pod_spec(spec: &Value, path: &str, restart_policies: &[&str], c: &mut Vec<Cause>) {
    let containers = spec["containers"].as_array();
    match containers {
        None => c.push(Cause::required(format!("{path}.containers"))),
        Some(list) if list.is_empty() => c.push(Cause::required(format!("{path}.containers"))),
        Some(list) => {
            for (i, ct) in list.iter().enumerate() {
                if ct["name"].as_str().is_none_or(str::is_empty) {
                    c.push(Cause::required(format!("{path}.containers[{i}].name")));
                }
                if ct["image"].as_str().is_none_or(str::is_empty) {
                    c.push(Cause::required(format!("{path}.containers[{i}].image")));
                }
            }
        }
    }
    let policy = spec["restartPolicy"].as_str().unwrap_or("Always");
    if !restart_policies.contains(&policy) {
        let supported: Vec<String> = restart_policies.iter().map(|p| format!("\"{p}\"")).collect();
        c.push(Cause::new(
            "FieldValueNotSupported",
            format!("{path}.restartPolicy"),
            format!(
                "Unsupported value: \"{policy}\": supported values: {}",
                supported.join(", ")
            ),
        ));
    }
}

/// Whether a LabelSelector (matchLabels/matchExpressions) matches a label map.
pub fn selector_matches(selector: &Value, labels: &Value) -> bool {
    let get = |k: &str| labels.get(k).and_then(Value::as_str);
    if let Some(ml) = selector["matchLabels"].as_object() {
        for (k, v) in ml {
            if get(k) != v.as_str() {
                return false;
            }
        }
    }
    for e in selector["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let ok = match e["operator"].as_str() {
            Some("In") => get(key).is_some_and(|v| values.contains(&v)),
            Some("NotIn") => get(key).is_none_or(|v| !values.contains(&v)),
            Some("Exists") => get(key).is_some(),
            Some("DoesNotExist") => get(key).is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Merge keys of built-in list fields (from the Kubernetes OpenAPI's patch strategies);
/// `path` is the field path of the list, e.g. ["spec", "template", "spec", "containers"].
pub fn list_type(path: &[&str]) -> ListType {
    let Some(last) = path.last() else {
        return ListType::Atomic;
    };
    let parent = if path.len() >= 2 { path[path.len() - 2] } else { "" };
    let map = |keys: &[&str]| ListType::Map(keys.iter().map(|s| s.to_string()).collect());
    match *last {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets"
        | "resourceClaims" => map(&["name"]),
        "volumeMounts" => map(&["mountPath"]),
        "volumeDevices" => map(&["devicePath"]),
        "conditions" => map(&["type"]),
        "ownerReferences" => map(&["uid"]),
        "hostAliases" => map(&["ip"]),
        "finalizers" => ListType::Set,
        "ports" if parent == "spec" && path.len() == 2 => map(&["port", "protocol"]),
        "ports" => map(&["containerPort", "protocol"]),
        _ => ListType::Atomic,
    }
}
