//! Custom resources against their structural schema, in the real server's order: prune
//! unknown fields, apply defaults, then validate (OpenAPI keywords, then CEL rules).

use chrono::DateTime;
use regex::Regex;
use serde_json::{Map, Value};

use crate::errors::Cause;
use crate::registry::ListType;

/// Removes fields the schema does not know; returns their paths (for `fieldValidation=Strict`).
pub fn prune(value: &mut Value, schema: &Value, path: &str, removed: &mut Vec<String>) {
    if schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true)
        && schema.get("properties").is_none()
    {
        return;
    }
    match value {
        Value::Object(map) => {
            if let Some(props) = schema["properties"].as_object() {
                let keep_unknown = schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true);
                let keys: Vec<String> = map.keys().cloned().collect();
                for k in keys {
                    let child = join(path, &k);
                    match props.get(&k) {
                        Some(s) => prune(map.get_mut(&k).expect("key exists"), s, &child, removed),
                        None if keep_unknown => {}
                        None if is_root_meta(path, &k) => {}
                        None => {
                            map.remove(&k);
                            removed.push(child);
                        }
                    }
                }
            } else if let Some(ap) = schema["additionalProperties"].as_object() {
                let ap = Value::Object(ap.clone());
                for (k, v) in map.iter_mut() {
                    prune(v, &ap, &join(path, k), removed);
                }
            } else if schema["type"] == "object" && path != "metadata" {
                // An object schema without properties keeps nothing (unless it preserves unknown fields).
                let keys: Vec<String> = map.keys().cloned().collect();
                for k in keys {
                    map.remove(&k);
                    removed.push(join(path, &k));
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for (i, v) in items.iter_mut().enumerate() {
                    prune(v, s, &format!("{path}[{i}]"), removed);
                }
            }
        }
        _ => {}
    }
}

fn is_root_meta(path: &str, key: &str) -> bool {
    path.is_empty() && matches!(key, "apiVersion" | "kind" | "metadata")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Applies `default` values of missing (or null, where not nullable) properties.
pub fn apply_defaults(value: &mut Value, schema: &Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema["properties"].as_object() {
                for (k, s) in props {
                    let missing = match map.get(k) {
                        None => true,
                        Some(Value::Null) => s["nullable"] != Value::Bool(true),
                        Some(_) => false,
                    };
                    if missing && let Some(d) = s.get("default") {
                        map.insert(k.clone(), d.clone());
                    }
                    if let Some(v) = map.get_mut(k) {
                        apply_defaults(v, s);
                    }
                }
            } else if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for v in map.values_mut() {
                    apply_defaults(v, ap);
                }
            }
        }
        Value::Array(items) => {
            if let Some(s) = schema.get("items") {
                for v in items {
                    apply_defaults(v, s);
                }
            }
        }
        _ => {}
    }
}

/// OpenAPI v3 validation of a structural schema.
pub fn validate(value: &Value, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    let field = if path.is_empty() {
        "<root>".to_string()
    } else {
        path.to_string()
    };
    if value.is_null() {
        if schema["nullable"] != Value::Bool(true) && schema.get("type").is_some() {
            causes.push(Cause::new(
                "FieldValueTypeInvalid",
                field,
                format!(
                    "Invalid value: \"null\": {path} in body must be of type {}: \"null\"",
                    schema["type"].as_str().unwrap_or("object")
                ),
            ));
        }
        return;
    }
    let int_or_string = schema["x-kubernetes-int-or-string"] == Value::Bool(true);
    let ty = schema["type"].as_str();
    let type_ok = match (ty, value) {
        _ if int_or_string => value.is_string() || value.is_i64() || value.is_u64(),
        (None, _) => true,
        (Some("object"), Value::Object(_)) => true,
        (Some("array"), Value::Array(_)) => true,
        (Some("string"), Value::String(_)) => true,
        (Some("boolean"), Value::Bool(_)) => true,
        (Some("integer"), Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        (Some("number"), Value::Number(_)) => true,
        _ => false,
    };
    if !type_ok {
        let expected = if int_or_string {
            "integer or string"
        } else {
            ty.unwrap_or("any")
        };
        causes.push(Cause::new(
            "FieldValueTypeInvalid",
            field,
            format!(
                "Invalid value: \"{}\": {path} in body must be of type {expected}: \"{}\"",
                type_name(value),
                type_name(value)
            ),
        ));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed.iter().map(|v| v.to_string()).collect();
        causes.push(Cause::new(
            "FieldValueNotSupported",
            field.clone(),
            format!(
                "Unsupported value: {value}: supported values: {}",
                list.join(", ")
            ),
        ));
    }
    match value {
        Value::Object(map) => validate_object(map, schema, path, causes),
        Value::Array(items) => validate_array(items, schema, path, causes),
        Value::String(s) => validate_string(s, value, schema, &field, causes),
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(0.0);
            if let Some(min) = schema["minimum"].as_f64() {
                let exclusive = schema["exclusiveMinimum"] == Value::Bool(true);
                if x < min || (exclusive && x == min) {
                    causes.push(Cause::invalid(
                        field.clone(),
                        value,
                        format!("{path} in body should be greater than or equal to {min}"),
                    ));
                }
            }
            if let Some(max) = schema["maximum"].as_f64() {
                let exclusive = schema["exclusiveMaximum"] == Value::Bool(true);
                if x > max || (exclusive && x == max) {
                    causes.push(Cause::invalid(
                        field.clone(),
                        value,
                        format!("{path} in body should be less than or equal to {max}"),
                    ));
                }
            }
            if schema["format"] == "int32" && (x > i32::MAX as f64 || x < i32::MIN as f64) {
                causes.push(Cause::invalid(field, value, "must fit in 32 bits"));
            }
        }
        _ => {}
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn validate_object(map: &Map<String, Value>, schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    for r in schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !map.contains_key(r) {
            causes.push(Cause::required(join(path, r)));
        }
    }
    if let Some(max) = schema["maxProperties"].as_u64()
        && map.len() as u64 > max
    {
        causes.push(Cause::new(
            "FieldValueTooMany",
            path.to_string(),
            format!("Too many: {}: must have at most {max} items", map.len()),
        ));
    }
    let props = schema["properties"].as_object();
    for (k, v) in map {
        let child = join(path, k);
        if path.is_empty() && k == "metadata" {
            continue;
        }
        if let Some(s) = props.and_then(|p| p.get(k)) {
            validate(v, s, &child, causes);
        } else if let Some(ap) = schema.get("additionalProperties").filter(|a| a.is_object()) {
            validate(v, ap, &child, causes);
        }
    }
}

fn validate_array(items: &[Value], schema: &Value, path: &str, causes: &mut Vec<Cause>) {
    if let Some(max) = schema["maxItems"].as_u64()
        && items.len() as u64 > max
    {
        causes.push(Cause::new(
            "FieldValueTooMany",
            path.to_string(),
            format!("Too many: {}: must have at most {max} items", items.len()),
        ));
    }
    if let Some(min) = schema["minItems"].as_u64()
        && (items.len() as u64) < min
    {
        causes.push(Cause::invalid(
            path.to_string(),
            &Value::from(items.len()),
            format!("{path} in body should have at least {min} items"),
        ));
    }
    if let Some(s) = schema.get("items") {
        for (i, v) in items.iter().enumerate() {
            validate(v, s, &format!("{path}[{i}]"), causes);
        }
    }
    match list_type_of(schema) {
        ListType::Set => {
            for (i, v) in items.iter().enumerate() {
                if items[..i].contains(v) {
                    causes.push(Cause::new(
                        "FieldValueDuplicate",
                        format!("{path}[{i}]"),
                        format!("Duplicate value: {v}"),
                    ));
                }
            }
        }
        ListType::Map(keys) => {
            let key_of = |v: &Value| keys.iter().map(|k| v[k].clone()).collect::<Vec<_>>();
            for (i, v) in items.iter().enumerate() {
                if items[..i].iter().any(|o| key_of(o) == key_of(v)) {
                    let shown: Map<String, Value> = keys.iter().map(|k| (k.clone(), v[k].clone())).collect();
                    causes.push(Cause::new(
                        "FieldValueDuplicate",
                        format!("{path}[{i}]"),
                        format!("Duplicate value: {}", Value::Object(shown)),
                    ));
                }
            }
        }
        ListType::Atomic => {}
    }
}

fn validate_string(s: &str, value: &Value, schema: &Value, field: &str, causes: &mut Vec<Cause>) {
    let len = s.chars().count() as u64;
    if let Some(max) = schema["maxLength"].as_u64()
        && len > max
    {
        causes.push(Cause::new(
            "FieldValueTooLong",
            field.to_string(),
            format!("Too long: may not be more than {max} bytes"),
        ));
    }
    if let Some(min) = schema["minLength"].as_u64()
        && len < min
    {
        causes.push(Cause::invalid(
            field.to_string(),
            value,
            format!("{field} in body should be at least {min} chars long"),
        ));
    }
    if let Some(p) = schema["pattern"].as_str() {
        match Regex::new(p) {
            Ok(re) if !re.is_match(s) => causes.push(Cause::invalid(
                field.to_string(),
                value,
                format!("{field} in body should match '{p}'"),
            )),
            Ok(_) => {}
            Err(e) => causes.push(Cause::invalid(
                field.to_string(),
                value,
                format!("schema pattern does not compile: {e}"),
            )),
        }
    }
    match schema["format"].as_str() {
        Some("date-time") if DateTime::parse_from_rfc3339(s).is_err() => causes.push(Cause::invalid(
            field.to_string(),
            value,
            format!("{field} in body must be of type date-time: \"{s}\""),
        )),
        Some("date") if chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_err() => {
            causes.push(Cause::invalid(
                field.to_string(),
                value,
                format!("{field} in body must be of type date: \"{s}\""),
            ))
        }
        _ => {}
    }
}

/// The list type a schema node declares (atomic when it says nothing).
pub fn list_type_of(schema: &Value) -> ListType {
    match schema["x-kubernetes-list-type"].as_str() {
        Some("set") => ListType::Set,
        Some("map") => ListType::Map(
            schema["x-kubernetes-list-map-keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| k.as_str().map(String::from))
                .collect(),
        ),
        _ => ListType::Atomic,
    }
}

/// The schema node for a field path (array indices skipped), if the schema describes it.
pub fn node_at<'a>(schema: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut node = schema;
    for seg in path {
        if node["type"] == "array" {
            node = node.get("items")?;
        }
        node = match node["properties"].get(*seg) {
            Some(n) => n,
            None => node.get("additionalProperties").filter(|a| a.is_object())?,
        };
    }
    Some(node)
}

/// CEL rules (`x-kubernetes-validations`), with `oldSelf` on update.
pub fn validate_cel(value: &Value, old: Option<&Value>, schema: &Value, causes: &mut Vec<Cause>) {
    let validator = kube_cel::Validator::new();
    if let Err(errors) = validator.validate(schema, value, old) {
        for e in errors.into_vec() {
            let field = if e.field_path.is_empty() {
                "<root>".to_string()
            } else {
                e.field_path.clone()
            };
            let reason = match e.reason.as_deref() {
                Some("FieldValueRequired") => "FieldValueRequired",
                Some("FieldValueForbidden") => "FieldValueForbidden",
                Some("FieldValueDuplicate") => "FieldValueDuplicate",
                _ => "FieldValueInvalid",
            };
            causes.push(Cause::new(
                reason,
                field,
                format!("Invalid value: \"object\": {}", e.message),
            ));
        }
    }
}
