//! OpenAPI documents good enough for kubectl: `/openapi/v3` (a root listing each group
//! version) and `/openapi/v3/<gv>` with every resource's operations (marked with
//! `x-kubernetes-group-version-kind` and the `fieldValidation` parameter, so kubectl uses
//! server-side field validation) and the custom resources' schemas; `/openapi/v2` likewise in
//! Swagger 2.0, JSON or protobuf (`openapi_proto`), with the schemas cut down the way the real
//! server publishes them for v2 clients. Built-in kinds have no schema here, so kubectl uses its
//! compiled-in types.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Map, Value, json};

use crate::registry::{Registry, ResourceType};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn gvk(t: &ResourceType) -> Value {
    json!({"group": t.group, "version": t.version, "kind": t.kind})
}

/// `<reversed group>.<version>.<Kind>`, the definition name the real server uses.
fn definition_name(t: &ResourceType) -> String {
    let mut parts: Vec<&str> = t.group.split('.').collect();
    parts.reverse();
    format!("{}.{}.{}", parts.join("."), t.version, t.kind)
}

fn operation(t: &ResourceType, action: &str, v3: bool) -> Value {
    let param = |name: &str| {
        if v3 {
            json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
        } else {
            json!({"name": name, "in": "query", "type": "string", "uniqueItems": true})
        }
    };
    let mut params = vec![param("dryRun")];
    if matches!(action, "post" | "put" | "patch") {
        params.push(param("fieldManager"));
        params.push(param("fieldValidation"));
    }
    if action == "patch" {
        params.push(param("force"));
    }
    json!({
        "operationId": format!("{action}{}{}", if t.namespaced { "Namespaced" } else { "" }, t.kind),
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(t),
        "parameters": params,
        "responses": {"200": {"description": "OK"}},
    })
}

fn paths(types: &[&ResourceType], v3: bool) -> Map<String, Value> {
    let mut paths = Map::new();
    for t in types {
        let base = format!("/{}", gv_path(&t.group, &t.version));
        let scope = if t.namespaced {
            format!("{base}/namespaces/{{namespace}}")
        } else {
            base.clone()
        };
        paths.insert(
            format!("{scope}/{}", t.plural),
            json!({"get": operation(t, "list", v3), "post": operation(t, "post", v3)}),
        );
        paths.insert(
            format!("{scope}/{}/{{name}}", t.plural),
            json!({
                "get": operation(t, "get", v3), "put": operation(t, "put", v3),
                "patch": operation(t, "patch", v3), "delete": operation(t, "delete", v3),
            }),
        );
        if t.status_subresource {
            paths.insert(
                format!("{scope}/{}/{{name}}/status", t.plural),
                json!({"get": operation(t, "get", v3), "put": operation(t, "put", v3), "patch": operation(t, "patch", v3)}),
            );
        }
    }
    paths
}

fn schemas(types: &[&ResourceType], v2: bool) -> Map<String, Value> {
    let mut defs = Map::new();
    for t in types {
        if let Some(schema) = &t.schema {
            let mut s = schema.clone();
            add_type_meta(&mut s);
            if v2 {
                to_v2(&mut s);
            }
            s["x-kubernetes-group-version-kind"] = json!([gvk(t)]);
            defs.insert(definition_name(t), s);
        }
    }
    defs
}

/// The published schema of a custom resource describes `apiVersion`, `kind` and `metadata`
/// even where the CRD's schema leaves them out, as the real server's does (which refers to its
/// ObjectMeta definition for `metadata`; there are no built-in definitions here).
fn add_type_meta(s: &mut Value) {
    let Some(props) = s.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for (field, schema) in [
        ("apiVersion", json!({"type": "string"})),
        ("kind", json!({"type": "string"})),
        ("metadata", json!({"type": "object"})),
    ] {
        props.entry(field).or_insert(schema);
    }
}

/// What OpenAPI v2 clients (kubectl's client-side validation) cannot read is taken out, as the
/// real server does: junctors; `nullable` values become untyped (and no longer required);
/// `x-kubernetes-preserve-unknown-fields` values lose their properties, items and object type;
/// arrays left without items lose their type.
fn to_v2(s: &mut Value) {
    let Some(o) = s.as_object_mut() else { return };
    for junctor in ["allOf", "oneOf", "anyOf", "not"] {
        o.remove(junctor);
    }
    if o.remove("nullable") == Some(Value::Bool(true)) {
        for k in ["type", "items", "properties"] {
            o.remove(k);
        }
    }
    let preserve = o.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if preserve {
        o.remove("items");
        o.remove("properties");
    }
    let ty = o.get("type").and_then(Value::as_str);
    if (ty == Some("array") && !o.contains_key("items")) || (preserve && ty == Some("object")) {
        o.remove("type");
    }
    let nullable = |v: &Value| v.get("nullable") == Some(&Value::Bool(true));
    let nullable_fields: Vec<String> = o
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| {
            p.iter()
                .filter(|(_, v)| nullable(v))
                .map(|(k, _)| k.clone())
                .collect()
        })
        .unwrap_or_default();
    if o.get("additionalProperties").is_some_and(nullable) {
        o.remove("required");
    } else if let Some(Value::Array(required)) = o.get_mut("required") {
        required.retain(|r| !r.as_str().is_some_and(|r| nullable_fields.iter().any(|n| n == r)));
        if required.is_empty() {
            o.remove("required");
        }
    }
    if let Some(Value::Object(props)) = o.get_mut("properties") {
        props.values_mut().for_each(to_v2);
    }
    if let Some(items) = o.get_mut("items") {
        to_v2(items);
    }
    if let Some(extra) = o.get_mut("additionalProperties") {
        to_v2(extra);
    }
}

fn hash(v: &Value) -> String {
    let mut h = DefaultHasher::new();
    v.to_string().hash(&mut h);
    format!("{:016X}", h.finish())
}

fn v3_document(types: &[&ResourceType]) -> Value {
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths(types, true),
        "components": {"schemas": schemas(types, false)},
    })
}

/// The document for a path under `/openapi/`: `["v3"]`, `["v3", "apis", g, v]`, `["v2"]`.
pub fn document(registry: &Registry, rest: &[String]) -> Option<Value> {
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match rest.as_slice() {
        ["v3"] => {
            let mut root = Map::new();
            for (g, versions) in registry.groups() {
                for v in versions {
                    let types: Vec<&ResourceType> = registry.in_group_version(&g, &v).collect();
                    let p = gv_path(&g, &v);
                    root.insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(&v3_document(&types)))}));
                }
            }
            Some(json!({"paths": root}))
        }
        ["v3", "api", v] => Some(v3_document(&registry.in_group_version("", v).collect::<Vec<_>>())),
        ["v3", "apis", g, v] => {
            let types: Vec<&ResourceType> = registry.in_group_version(g, v).collect();
            (!types.is_empty()).then(|| v3_document(&types))
        }
        ["v2"] => {
            let types: Vec<&ResourceType> = registry.all().collect();
            Some(json!({
                "swagger": "2.0",
                "info": {"title": "Kubernetes", "version": "v1.33.0"},
                "paths": paths(&types, false),
                "definitions": schemas(&types, true),
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_schemas_are_cut_down_like_the_real_servers() {
        let mut s = json!({
            "type": "object",
            "required": ["spec", "note"],
            "properties": {
                "spec": {
                    "type": "object",
                    "oneOf": [{"required": ["a"]}, {"required": ["b"]}],
                    "properties": {
                        "template": {"type": "object", "x-kubernetes-preserve-unknown-fields": true,
                            "properties": {"x": {"type": "string"}}},
                        "args": {"type": "array", "x-kubernetes-preserve-unknown-fields": true,
                            "items": {"type": "string"}},
                        "port": {"x-kubernetes-int-or-string": true},
                        "tags": {"type": "array", "items": {"type": "string", "nullable": true}},
                    },
                },
                "note": {"type": "string", "nullable": true},
            },
        });
        add_type_meta(&mut s);
        to_v2(&mut s);
        assert_eq!(
            s["required"],
            json!(["spec"]),
            "a nullable field is no longer required"
        );
        assert_eq!(s["properties"]["note"], json!({}), "a nullable value is untyped");
        assert_eq!(s["properties"]["kind"], json!({"type": "string"}));
        assert_eq!(s["properties"]["metadata"], json!({"type": "object"}));
        let spec = &s["properties"]["spec"];
        assert!(spec.get("oneOf").is_none());
        assert_eq!(
            spec["properties"]["template"],
            json!({"x-kubernetes-preserve-unknown-fields": true})
        );
        assert_eq!(
            spec["properties"]["args"],
            json!({"x-kubernetes-preserve-unknown-fields": true})
        );
        assert_eq!(
            spec["properties"]["port"],
            json!({"x-kubernetes-int-or-string": true})
        );
        assert_eq!(spec["properties"]["tags"], json!({"type": "array", "items": {}}));
    }
}
