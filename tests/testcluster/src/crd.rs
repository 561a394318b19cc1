//! What the real server checks when a CRD is written.

use serde_json::Value;

use crate::errors::Cause;

pub fn validate(crd: &Value) -> Vec<Cause> {
    let mut c = vec![];
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    if group.is_empty() || !group.contains('.') {
        c.push(Cause::invalid(
            "spec.group",
            &spec["group"],
            "should be a domain with at least one dot",
        ));
    }
    if plural.is_empty() {
        c.push(Cause::required("spec.names.plural"));
    }
    if spec["names"]["kind"].as_str().is_none_or(str::is_empty) {
        c.push(Cause::required("spec.names.kind"));
    }
    let expected = format!("{plural}.{group}");
    if crd["metadata"]["name"].as_str() != Some(expected.as_str()) {
        c.push(Cause::invalid(
            "metadata.name",
            &crd["metadata"]["name"],
            format!("must be spec.names.plural+\".\"+spec.group ({expected})"),
        ));
    }
    if !matches!(spec["scope"].as_str(), Some("Namespaced" | "Cluster")) {
        c.push(Cause::new(
            "FieldValueNotSupported",
            "spec.scope",
            "Unsupported value: supported values: \"Cluster\", \"Namespaced\"",
        ));
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        c.push(Cause::required("spec.versions"));
    }
    let storage = versions
        .iter()
        .filter(|v| v["storage"] == Value::Bool(true))
        .count();
    if storage != 1 {
        c.push(Cause::invalid(
            "spec.versions",
            &Value::from(storage),
            "must have exactly one version marked as storage version",
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        let schema = &v["schema"]["openAPIV3Schema"];
        if !schema.is_object() {
            c.push(Cause::required(format!(
                "spec.versions[{i}].schema.openAPIV3Schema"
            )));
            continue;
        }
        structural(
            schema,
            &format!("spec.versions[{i}].schema.openAPIV3Schema"),
            &mut c,
        );
    }
    c
}

/// Every node needs a type unless it preserves unknown fields or is int-or-string.
fn structural(node: &Value, path: &str, c: &mut Vec<Cause>) {
    let exempt = node["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true)
        || node["x-kubernetes-int-or-string"] == Value::Bool(true);
    if node.get("type").is_none() && !exempt {
        c.push(Cause::required(format!("{path}.type")));
    }
    if let Some(props) = node["properties"].as_object() {
        for (k, v) in props {
            structural(v, &format!("{path}.properties[{k}]"), c);
        }
    }
    if let Some(items) = node.get("items").filter(|i| i.is_object()) {
        structural(items, &format!("{path}.items"), c);
    }
    if let Some(ap) = node.get("additionalProperties").filter(|a| a.is_object()) {
        structural(ap, &format!("{path}.additionalProperties"), c);
    }
}
