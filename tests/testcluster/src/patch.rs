//! Patch bodies: JSON merge patch (RFC 7386), JSON patch (RFC 6902), and strategic merge
//! patch for built-in kinds (merge keys from [`crate::builtin::list_type`]).

use serde_json::{Map, Value};

use crate::fields::Shape;
use crate::registry::ListType;

pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// JSON patch. As in the real server, `test` of a missing path against `null` passes.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), String> {
    let mut ops = patch
        .as_array()
        .cloned()
        .ok_or("a JSON patch must be an array of operations")?;
    ops.retain(|op| {
        let missing_null_test = op["op"] == "test"
            && op["value"].is_null()
            && op["path"].as_str().is_some_and(|p| target.pointer(p).is_none());
        !missing_null_test
    });
    let ops: json_patch::Patch =
        serde_json::from_value(Value::Array(ops)).map_err(|e| format!("invalid JSON patch: {e}"))?;
    json_patch::patch(target, &ops).map_err(|e| e.to_string())
}

/// Strategic merge patch, with the directives kubectl sends.
pub fn strategic_merge(target: &mut Value, patch: &Value, shape: &dyn Shape) -> Result<(), String> {
    smp(target, patch, shape, &mut vec![])
}

fn smp<'a>(
    target: &mut Value,
    patch: &'a Value,
    shape: &dyn Shape,
    fields: &mut Vec<&'a str>,
) -> Result<(), String> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    match p.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut clean = p.clone();
            clean.remove("$patch");
            *target = Value::Object(clean);
            return Ok(());
        }
        Some("delete") => {
            *target = Value::Null;
            return Ok(());
        }
        Some(other) => return Err(format!("unknown patch directive $patch: {other}")),
        None => {}
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Some(retain) = p.get("$retainKeys").and_then(Value::as_array) {
        let keep: Vec<&str> = retain.iter().filter_map(Value::as_str).collect();
        if let Some(t) = target.as_object_mut() {
            t.retain(|k, _| keep.contains(&k.as_str()));
        }
    }
    for (k, v) in p {
        if k.starts_with("$setElementOrder/") || k == "$retainKeys" {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            let drop: Vec<&Value> = v.as_array().map(|a| a.iter().collect()).unwrap_or_default();
            if let Some(list) = target.get_mut(field).and_then(Value::as_array_mut) {
                list.retain(|x| !drop.contains(&x));
            }
            continue;
        }
        if k.starts_with('$') {
            return Err(format!("unknown patch directive {k}"));
        }
        let t = target.as_object_mut().expect("made an object above");
        if v.is_null() {
            t.remove(k);
            continue;
        }
        fields.push(k);
        match v {
            Value::Object(_) => {
                let entry = t.entry(k.clone()).or_insert(Value::Null);
                smp(entry, v, shape, fields)?;
                if entry.is_null() {
                    t.remove(k);
                }
            }
            Value::Array(items) => {
                let merged = merge_list(t.get(k), items, shape, fields)?;
                t.insert(k.clone(), merged);
            }
            _ => {
                t.insert(k.clone(), v.clone());
            }
        }
        fields.pop();
    }
    // `$setElementOrder` only reorders; the merged content is what matters here.
    Ok(())
}

fn merge_list<'a>(
    current: Option<&Value>,
    items: &'a [Value],
    shape: &dyn Shape,
    fields: &mut Vec<&'a str>,
) -> Result<Value, String> {
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return Ok(Value::Array(
            items
                .iter()
                .filter(|i| i.get("$patch").is_none())
                .cloned()
                .collect(),
        ));
    }
    let mut list: Vec<Value> = current.and_then(Value::as_array).cloned().unwrap_or_default();
    match shape.list_type(fields) {
        ListType::Atomic => Ok(Value::Array(items.to_vec())),
        ListType::Set => {
            for i in items {
                if !list.contains(i) {
                    list.push(i.clone());
                }
            }
            Ok(Value::Array(list))
        }
        ListType::Map(keys) => {
            let key_of = |v: &Value| keys.iter().map(|k| v.get(k).cloned()).collect::<Vec<_>>();
            for item in items {
                let key = key_of(item);
                let pos = list.iter().position(|x| key_of(x) == key);
                if item.get("$patch").and_then(Value::as_str) == Some("delete") {
                    if let Some(i) = pos {
                        list.remove(i);
                    }
                    continue;
                }
                match pos {
                    Some(i) => smp(&mut list[i], item, shape, fields)?,
                    None => {
                        let mut fresh = Value::Object(Map::new());
                        smp(&mut fresh, item, shape, fields)?;
                        list.push(fresh);
                    }
                }
            }
            Ok(Value::Array(list))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Builtins;
    impl Shape for Builtins {
        fn list_type(&self, fields: &[&str]) -> ListType {
            crate::builtin::list_type(fields)
        }
    }

    #[test]
    fn containers_merge_by_name_and_directives_apply() {
        let mut dep = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}});
        let patch = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:2"}, {"name": "b", "$patch": "delete"}, {"name": "c", "image": "c:1"}]}}}});
        strategic_merge(&mut dep, &patch, &Builtins).unwrap();
        assert_eq!(
            dep["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a", "image": "a:2"}, {"name": "c", "image": "c:1"}])
        );
    }

    #[test]
    fn null_removes_and_finalizers_union() {
        let mut obj = json!({"metadata": {"labels": {"x": "1"}, "finalizers": ["a"]}});
        strategic_merge(
            &mut obj,
            &json!({"metadata": {"labels": {"x": null}, "finalizers": ["b"]}}),
            &Builtins,
        )
        .unwrap();
        assert_eq!(obj, json!({"metadata": {"labels": {}, "finalizers": ["a", "b"]}}));
    }
}
