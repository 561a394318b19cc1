//! OpenAPI documents good enough for kubectl: `/openapi/v3` (a root listing each group
//! version) and `/openapi/v3/<gv>` with every resource's operations (marked with
//! `x-kubernetes-group-version-kind` and the `fieldValidation` parameter, so kubectl uses
//! server-side field validation) and the custom resources' schemas; `/openapi/v2` likewise in
//! Swagger 2.0 JSON. Built-in kinds have no schema here, so kubectl uses its compiled-in types.

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

fn schemas(types: &[&ResourceType]) -> Map<String, Value> {
    let mut defs = Map::new();
    for t in types {
        if let Some(schema) = &t.schema {
            let mut s = schema.clone();
            s["x-kubernetes-group-version-kind"] = json!([gvk(t)]);
            defs.insert(definition_name(t), s);
        }
    }
    defs
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
        "components": {"schemas": schemas(types)},
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
                "definitions": schemas(&types),
            }))
        }
        _ => None,
    }
}
