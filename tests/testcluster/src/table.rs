//! `kubectl get` asks for `application/json;as=Table;v=v1;g=meta.k8s.io`: rows with the
//! CRD's additionalPrinterColumns (or Name and Age for built-in kinds), as the real server
//! renders them (dates as ages, JSONPath results joined by commas).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::registry::ResourceType;

pub const CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

pub fn wants_table(accept: &str) -> bool {
    accept
        .split(',')
        .next()
        .is_some_and(|first| first.contains("as=Table"))
}

/// A Table for one object or a list of objects.
pub fn table(rt: &ResourceType, objects: &[Value], resource_version: &str, now: DateTime<Utc>) -> Value {
    let mut columns = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name must be unique within a namespace.", "priority": 0}),
    ];
    let custom: Vec<&Value> = rt.printer_columns.iter().collect();
    if custom.is_empty() {
        columns.push(json!({"name": "Age", "type": "date", "format": "", "description": "CreationTimestamp", "priority": 0}));
    }
    for c in &custom {
        columns.push(json!({
            "name": c["name"], "type": c["type"], "format": c["format"].as_str().unwrap_or_default(),
            "description": c["description"].as_str().unwrap_or_default(), "priority": c["priority"].as_i64().unwrap_or(0),
        }));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o["metadata"]["name"].clone()];
            if custom.is_empty() {
                cells.push(Value::from(age(&o["metadata"]["creationTimestamp"], now)));
            }
            for c in &custom {
                let values = jsonpath(o, c["jsonPath"].as_str().unwrap_or_default());
                let cell = match (c["type"].as_str(), values.as_slice()) {
                    (_, []) => Value::Null,
                    (Some("date"), [v, ..]) => Value::from(age(v, now)),
                    (Some("integer" | "number" | "boolean"), [v]) => (*v).clone(),
                    (_, vs) => Value::from(vs.iter().map(|v| match v {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    }).collect::<Vec<_>>().join(",")),
                };
                cells.push(cell);
            }
            let mut meta = o["metadata"].clone();
            if let Some(m) = meta.as_object_mut() {
                m.remove("managedFields");
            }
            json!({"cells": cells, "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}})
        })
        .collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": resource_version}, "columnDefinitions": columns, "rows": rows})
}

/// kubectl's short age: 45s, 12m, 3h, 2d.
fn age(v: &Value, now: DateTime<Utc>) -> String {
    let Some(t) = v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()) else {
        return "<unknown>".into();
    };
    let secs = (now - t.with_timezone(&Utc)).num_seconds();
    match secs {
        s if s < 0 => "<invalid>".into(),
        s if s < 120 => format!("{s}s"),
        s if s < 10_800 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// The JSONPath subset printer columns use: `.a.b`, `.a[0]`, `.a[*].b`, `.a[?(@.k=="v")].b`.
pub fn jsonpath<'a>(obj: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut cur: Vec<&Value> = vec![obj];
    let mut rest = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('.');
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else { return vec![] };
            let selector = &after[..end];
            rest = after[end + 1..].trim_start_matches('.');
            cur = cur
                .into_iter()
                .flat_map(|v| -> Vec<&Value> {
                    let Some(items) = v.as_array() else { return vec![] };
                    if selector == "*" {
                        items.iter().collect()
                    } else if let Ok(i) = selector.parse::<usize>() {
                        items.get(i).into_iter().collect()
                    } else if let Some(filter) =
                        selector.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
                    {
                        let Some((k, want)) = filter.split_once("==") else {
                            return vec![];
                        };
                        let want = want.trim().trim_matches('"').trim_matches('\'');
                        items
                            .iter()
                            .filter(|it| it[k.trim()].as_str() == Some(want))
                            .collect()
                    } else {
                        vec![]
                    }
                })
                .collect();
            continue;
        }
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let key = &rest[..end];
        rest = rest[end..].trim_start_matches('.');
        cur = cur.into_iter().filter_map(|v| v.get(key)).collect();
    }
    cur.into_iter().filter(|v| !v.is_null()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printer_column_paths_select_like_kubectl() {
        let o = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "Ready", "status": "True"}], "next": ["t1", "t2"]}});
        assert_eq!(
            jsonpath(&o, ".status.conditions[?(@.type==\"Ready\")].status"),
            vec![&json!("True")]
        );
        assert_eq!(jsonpath(&o, ".status.next[0]"), vec![&json!("t1")]);
        assert_eq!(jsonpath(&o, ".status.missing"), Vec::<&Value>::new());
    }
}
