//! Field ownership (`metadata.managedFields`) and server-side apply: field sets in the
//! FieldsV1 format, conflict detection, removal of fields a manager stopped applying, and
//! merging by list type (atomic, set, or map keyed by fields).

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::registry::ListType;

/// One step of a field path, as FieldsV1 spells it: `f:name`, `k:{"type":"Ready"}`, `v:"x"`.
pub type Path = Vec<String>;

/// Tells which list type a field has (from the CRD schema or the built-in merge keys).
pub trait Shape {
    /// `fields` is the path of plain field names, e.g. ["spec", "template", "spec", "containers"].
    fn list_type(&self, fields: &[&str]) -> ListType;
}

/// Metadata fields that belong to an object's identity and are never owned.
const UNTRACKED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "generateName",
];

fn meta_list_type(fields: &[&str]) -> Option<ListType> {
    match fields {
        ["metadata", "finalizers"] => Some(ListType::Set),
        ["metadata", "ownerReferences"] => Some(ListType::Map(vec!["uid".into()])),
        _ => None,
    }
}

fn list_type(shape: &dyn Shape, fields: &[&str]) -> ListType {
    meta_list_type(fields).unwrap_or_else(|| shape.list_type(fields))
}

/// All owned paths of an object: leaves, plus list elements of set and map lists.
pub fn field_set(obj: &Value, shape: &dyn Shape) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    if let Value::Object(map) = obj {
        for (k, v) in map {
            if matches!(k.as_str(), "apiVersion" | "kind") {
                continue;
            }
            if k == "metadata" {
                if let Value::Object(meta) = v {
                    for (mk, mv) in meta {
                        if UNTRACKED_META.contains(&mk.as_str()) || mv.is_null() {
                            continue;
                        }
                        walk(
                            mv,
                            shape,
                            &mut vec!["metadata", mk],
                            &mut vec!["f:metadata".into(), format!("f:{mk}")],
                            &mut out,
                        );
                    }
                }
                continue;
            }
            walk(
                v,
                shape,
                &mut vec![k.as_str()],
                &mut vec![format!("f:{k}")],
                &mut out,
            );
        }
    }
    out
}

fn walk<'a>(
    v: &'a Value,
    shape: &dyn Shape,
    fields: &mut Vec<&'a str>,
    path: &mut Path,
    out: &mut BTreeSet<Path>,
) {
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (k, child) in map {
                fields.push(k);
                path.push(format!("f:{k}"));
                walk(child, shape, fields, path, out);
                path.pop();
                fields.pop();
            }
        }
        Value::Array(items) => match list_type(shape, fields) {
            ListType::Atomic => {
                out.insert(path.clone());
            }
            ListType::Set => {
                if items.is_empty() {
                    out.insert(path.clone());
                }
                for item in items {
                    let mut p = path.clone();
                    p.push(format!("v:{item}"));
                    out.insert(p);
                }
            }
            ListType::Map(keys) => {
                if items.is_empty() {
                    out.insert(path.clone());
                }
                for item in items {
                    path.push(element_key(item, &keys));
                    out.insert(path.clone());
                    if let Value::Object(m) = item {
                        for (k, child) in m {
                            fields.push(k);
                            path.push(format!("f:{k}"));
                            walk(child, shape, fields, path, out);
                            path.pop();
                            fields.pop();
                        }
                    }
                    path.pop();
                }
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

fn element_key(item: &Value, keys: &[String]) -> String {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(k) {
            m.insert(k.clone(), v.clone());
        }
    }
    format!("k:{}", Value::Object(m))
}

/// The value a path points at.
pub fn value_at<'a>(obj: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = obj;
    for step in path {
        cur = step_into(cur, step)?;
    }
    Some(cur)
}

fn step_into<'a>(cur: &'a Value, step: &str) -> Option<&'a Value> {
    if let Some(f) = step.strip_prefix("f:") {
        return cur.get(f);
    }
    let items = cur.as_array()?;
    if let Some(k) = step.strip_prefix("k:") {
        let key: Value = serde_json::from_str(k).ok()?;
        let key = key.as_object()?;
        return items
            .iter()
            .find(|it| key.iter().all(|(kk, kv)| it.get(kk) == Some(kv)));
    }
    if let Some(v) = step.strip_prefix("v:") {
        let want: Value = serde_json::from_str(v).ok()?;
        return items.iter().find(|it| **it == want);
    }
    None
}

/// Removes the value at a path; returns whether something was removed.
pub fn remove_at(obj: &mut Value, path: &[String]) -> bool {
    let Some((last, parent_path)) = path.split_last() else {
        return false;
    };
    let mut cur = obj;
    for step in parent_path {
        let next = if let Some(f) = step.strip_prefix("f:") {
            cur.get_mut(f)
        } else {
            let idx = element_index(cur, step);
            match (idx, cur.as_array_mut()) {
                (Some(i), Some(a)) => a.get_mut(i),
                _ => None,
            }
        };
        match next {
            Some(n) => cur = n,
            None => return false,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        return cur.as_object_mut().and_then(|m| m.remove(f)).is_some();
    }
    if let Some(i) = element_index(cur, last)
        && let Some(a) = cur.as_array_mut()
    {
        a.remove(i);
        return true;
    }
    false
}

fn element_index(cur: &Value, step: &str) -> Option<usize> {
    let items = cur.as_array()?;
    let target = step_into(cur, step)?;
    items.iter().position(|it| std::ptr::eq(it, target))
}

/// Drops objects left empty by removals, bottom up, along a removed path.
fn prune_empty_parents(obj: &mut Value, path: &[String], keep: &dyn Fn(&[String]) -> bool) {
    for len in (1..path.len()).rev() {
        let parent = &path[..len];
        let empty = value_at(obj, parent).is_some_and(|v| v.as_object().is_some_and(Map::is_empty));
        if empty && !keep(parent) && parent.last().is_some_and(|s| s.starts_with("f:")) {
            remove_at(obj, parent);
        } else {
            break;
        }
    }
}

/// Merges an applied configuration into the live object by list type.
pub fn merge(live: &mut Value, applied: &Value, shape: &dyn Shape) {
    merge_at(live, applied, shape, &mut vec![]);
}

fn merge_at<'a>(live: &mut Value, applied: &'a Value, shape: &dyn Shape, fields: &mut Vec<&'a str>) {
    match (live, applied) {
        (Value::Object(l), Value::Object(a)) => {
            for (k, av) in a {
                fields.push(k);
                match l.get_mut(k) {
                    Some(lv) if !av.is_null() => merge_at(lv, av, shape, fields),
                    _ => {
                        l.insert(k.clone(), av.clone());
                    }
                }
                fields.pop();
            }
        }
        (Value::Array(l), Value::Array(a)) => match list_type(shape, fields) {
            ListType::Atomic => *l = a.clone(),
            ListType::Set => {
                for item in a {
                    if !l.contains(item) {
                        l.push(item.clone());
                    }
                }
            }
            ListType::Map(keys) => {
                for item in a {
                    let key: Vec<Option<&Value>> = keys.iter().map(|k| item.get(k)).collect();
                    match l
                        .iter_mut()
                        .find(|x| keys.iter().map(|k| x.get(k)).collect::<Vec<_>>() == key)
                    {
                        Some(existing) => merge_at(existing, item, shape, fields),
                        None => l.push(item.clone()),
                    }
                }
            }
        },
        (live, applied) => *live = applied.clone(),
    }
}

/// One managedFields entry, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: String,
    pub subresource: String,
    pub api_version: String,
    pub time: String,
    pub fields: BTreeSet<Path>,
}

pub fn read_entries(obj: &Value) -> Vec<Entry> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some(Entry {
                manager: e["manager"].as_str()?.to_string(),
                operation: e["operation"].as_str().unwrap_or("Update").to_string(),
                subresource: e["subresource"].as_str().unwrap_or_default().to_string(),
                api_version: e["apiVersion"].as_str().unwrap_or_default().to_string(),
                time: e["time"].as_str().unwrap_or_default().to_string(),
                fields: from_fields_v1(&e["fieldsV1"]),
            })
        })
        .collect()
}

pub fn write_entries(obj: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(|e| {
            let mut v = json!({
                "manager": e.manager,
                "operation": e.operation,
                "apiVersion": e.api_version,
                "time": e.time,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(&e.fields),
            });
            if !e.subresource.is_empty() {
                v["subresource"] = Value::from(e.subresource.clone());
            }
            v
        })
        .collect();
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Paths → FieldsV1 JSON (`"."` marks an element owned itself when it also has children).
pub fn to_fields_v1(set: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for path in set {
        let mut node = &mut root;
        for step in path {
            node = node
                .entry(step.clone())
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("fields nodes are objects");
        }
    }
    for path in set {
        if path_has_children(&root, path) {
            let mut node = &mut root;
            for step in path {
                node = node
                    .get_mut(step)
                    .and_then(Value::as_object_mut)
                    .expect("inserted above");
            }
            node.insert(".".into(), json!({}));
        }
    }
    Value::Object(root)
}

fn path_has_children(root: &Map<String, Value>, path: &[String]) -> bool {
    let mut node = root;
    for step in path {
        match node.get(step).and_then(Value::as_object) {
            Some(n) => node = n,
            None => return false,
        }
    }
    node.keys().any(|k| k != ".")
}

pub fn from_fields_v1(v: &Value) -> BTreeSet<Path> {
    fn go(node: &Map<String, Value>, path: &mut Path, out: &mut BTreeSet<Path>) {
        for (k, child) in node {
            if k == "." {
                out.insert(path.clone());
                continue;
            }
            path.push(k.clone());
            match child.as_object() {
                Some(m) if !m.is_empty() => go(m, path, out),
                _ => {
                    out.insert(path.clone());
                }
            }
            path.pop();
        }
    }
    let mut out = BTreeSet::new();
    if let Some(m) = v.as_object() {
        go(m, &mut vec![], &mut out);
    }
    out
}

/// Human form of a path for conflict messages: `.spec.replicas`, `.status.conditions[type="Ready"]`.
pub fn display(path: &[String]) -> String {
    let mut s = String::new();
    for step in path {
        if let Some(f) = step.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = step.strip_prefix("k:") {
            let parts: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                .map(|m| m.iter().map(|(a, b)| format!("{a}={b}")).collect())
                .unwrap_or_default();
            s.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(v) = step.strip_prefix("v:") {
            s.push_str(&format!("[{v}]"));
        }
    }
    s
}

/// The outcome of server-side apply.
pub struct Applied {
    pub object: Value,
    pub entries: Vec<Entry>,
}

/// Server-side apply of `config` by `manager` onto `live` (`None` when creating).
#[allow(clippy::too_many_arguments)]
pub fn apply(
    live: Option<&Value>,
    config: &Value,
    manager: &str,
    subresource: &str,
    api_version: &str,
    force: bool,
    now: &str,
    shape: &dyn Shape,
) -> Result<Applied, Vec<(String, String)>> {
    let mut object = live.cloned().unwrap_or_else(|| json!({}));
    let mut entries = live.map(read_entries).unwrap_or_default();
    let applied = field_set(config, shape);
    let is_me = |e: &Entry| e.manager == manager && e.operation == "Apply" && e.subresource == subresource;

    // conflicts with other owners whose value differs
    let mut conflicts = vec![];
    for e in entries.iter().filter(|e| !is_me(e)) {
        for p in applied.intersection(&e.fields) {
            let ours = value_at(config, p);
            let theirs = value_at(&object, p);
            let is_leaf = !ours.is_some_and(|v| v.is_object() && !v.as_object().is_some_and(Map::is_empty));
            if is_leaf && ours != theirs {
                conflicts.push((e.manager.clone(), display(p)));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        conflicts.sort();
        conflicts.dedup();
        return Err(conflicts);
    }
    if force {
        for e in entries.iter_mut().filter(|e| !is_me(e)) {
            let taken: Vec<Path> = e
                .fields
                .iter()
                .filter(|p| applied.contains(*p) && value_at(config, p) != value_at(&object, p))
                .cloned()
                .collect();
            for p in taken {
                e.fields.remove(&p);
            }
        }
    }

    // remove what this manager applied before and no longer applies, unless others own it
    let previous: BTreeSet<Path> = entries
        .iter()
        .filter(|e| is_me(e))
        .flat_map(|e| e.fields.clone())
        .collect();
    let others: BTreeSet<Path> = entries
        .iter()
        .filter(|e| !is_me(e))
        .flat_map(|e| e.fields.clone())
        .collect();
    let owned_elsewhere = |p: &[String]| others.iter().any(|o| o.starts_with(p) || p.starts_with(o));
    let mut removed: Vec<&Path> = previous
        .difference(&applied)
        .filter(|p| !owned_elsewhere(p))
        .collect();
    // shortest first: a removed list element takes its fields with it
    removed.sort_by_key(|p| p.len());
    let mut gone: Vec<&Path> = vec![];
    for p in removed {
        if gone.iter().any(|g| p.starts_with(g)) {
            continue;
        }
        gone.push(p);
        if remove_at(&mut object, p) {
            prune_empty_parents(&mut object, p, &|q| {
                owned_elsewhere(q) || applied.iter().any(|a| a.starts_with(q))
            });
        }
    }

    merge(&mut object, config, shape);

    let changed = !entries.iter().any(|e| is_me(e) && e.fields == applied);
    entries.retain(|e| !is_me(e));
    if changed || live.is_none() {
        entries.push(Entry {
            manager: manager.into(),
            operation: "Apply".into(),
            subresource: subresource.into(),
            api_version: api_version.into(),
            time: now.into(),
            fields: applied,
        });
    } else {
        // unchanged ownership keeps its entry (and time), so a no-op apply changes nothing
        entries.extend(
            live.map(read_entries)
                .unwrap_or_default()
                .into_iter()
                .filter(is_me),
        );
    }
    Ok(Applied { object, entries })
}

/// Ownership after a non-apply write: the writer owns what it changed; removed fields are
/// owned by nobody.
pub fn record_update(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    subresource: &str,
    api_version: &str,
    now: &str,
    shape: &dyn Shape,
) -> Vec<Entry> {
    let mut entries = old.map(read_entries).unwrap_or_default();
    let new_set = field_set(new, shape);
    let old_set = old.map(|o| field_set(o, shape)).unwrap_or_default();
    let changed: BTreeSet<Path> = new_set
        .iter()
        .filter(|p| old.is_none_or(|o| value_at(o, p) != value_at(new, p)) || !old_set.contains(*p))
        .cloned()
        .collect();
    let gone: BTreeSet<Path> = old_set.difference(&new_set).cloned().collect();
    if changed.is_empty() && gone.is_empty() {
        return entries;
    }
    for e in entries.iter_mut() {
        e.fields
            .retain(|p| !gone.contains(p) && (e.manager == manager || !changed.contains(p)));
    }
    let is_me = |e: &Entry| e.manager == manager && e.operation == "Update" && e.subresource == subresource;
    match entries.iter_mut().find(|e| is_me(e)) {
        Some(e) if !changed.is_empty() => {
            e.fields.extend(changed);
            e.time = now.into();
        }
        Some(_) => {}
        None if !changed.is_empty() => entries.push(Entry {
            manager: manager.into(),
            operation: "Update".into(),
            subresource: subresource.into(),
            api_version: api_version.into(),
            time: now.into(),
            fields: changed,
        }),
        None => {}
    }
    entries.retain(|e| !e.fields.is_empty());
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Conditions;
    impl Shape for Conditions {
        fn list_type(&self, fields: &[&str]) -> ListType {
            if fields.last() == Some(&"conditions") {
                ListType::Map(vec!["type".into()])
            } else {
                ListType::Atomic
            }
        }
    }

    /// Server-side apply of `config` to the main resource as `manager`.
    fn ssa(
        live: Option<&Value>,
        config: Value,
        manager: &str,
        force: bool,
    ) -> Result<Applied, Vec<(String, String)>> {
        apply(live, &config, manager, "", "v1", force, "t", &Conditions)
    }

    #[test]
    fn fields_v1_round_trips_with_element_markers() {
        let obj = json!({"metadata": {"labels": {"a": "1"}}, "status": {"conditions": [{"type": "Ready", "status": "True"}], "n": 1}});
        let set = field_set(&obj, &Conditions);
        let v1 = to_fields_v1(&set);
        assert_eq!(
            v1,
            json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:status": {"f:n": {}, "f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}, "f:type": {}}}}})
        );
        assert_eq!(from_fields_v1(&v1), set);
    }

    #[test]
    fn apply_removes_fields_the_manager_stopped_applying_and_keeps_others() {
        let first = ssa(None, json!({"spec": {"a": 1, "b": 2}}), "m", false).unwrap();
        let mut live = first.object.clone();
        write_entries(&mut live, &first.entries);
        live["spec"]["c"] = json!(3);
        let entries = record_update(
            Some(&{
                let mut o = first.object.clone();
                write_entries(&mut o, &first.entries);
                o
            }),
            &live,
            "other",
            "",
            "v1",
            "t",
            &Conditions,
        );
        write_entries(&mut live, &entries);
        let second = ssa(Some(&live), json!({"spec": {"a": 1}}), "m", false).unwrap();
        assert_eq!(second.object["spec"], json!({"a": 1, "c": 3}));
    }

    #[test]
    fn apply_conflicts_with_another_owner_unless_forced() {
        let first = ssa(None, json!({"spec": {"a": 1}}), "m1", false).unwrap();
        let mut live = first.object.clone();
        write_entries(&mut live, &first.entries);
        let err = ssa(Some(&live), json!({"spec": {"a": 2}}), "m2", false)
            .err()
            .unwrap();
        assert_eq!(err, vec![("m1".to_string(), ".spec.a".to_string())]);
        let same = ssa(Some(&live), json!({"spec": {"a": 1}}), "m2", false);
        assert!(same.is_ok(), "equal values are shared, not conflicting");
        let forced = ssa(Some(&live), json!({"spec": {"a": 2}}), "m2", true).unwrap();
        assert_eq!(forced.object["spec"]["a"], 2);
        assert!(
            forced
                .entries
                .iter()
                .find(|e| e.manager == "m1")
                .is_none_or(|e| e.fields.is_empty())
        );
    }

    #[test]
    fn map_lists_merge_by_key() {
        let mut live = json!({"status": {"conditions": [{"type": "A", "status": "True"}, {"type": "B", "status": "False"}]}});
        merge(
            &mut live,
            &json!({"status": {"conditions": [{"type": "B", "status": "True"}]}}),
            &Conditions,
        );
        assert_eq!(
            live["status"]["conditions"],
            json!([{"type": "A", "status": "True"}, {"type": "B", "status": "True"}])
        );
    }
}
