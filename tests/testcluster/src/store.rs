//! The object store and the write pipeline every verb goes through: decode → metadata →
//! prune/default/validate → status/main split → generation → ownership → commit (one global
//! resourceVersion counter, a bounded history for watch resumption, and a broadcast for live
//! watches).

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::Arc,
};

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::builtin::{self, BuiltinKind};
use crate::errors::{ApiError, ApiResult, Cause};
use crate::fields::{self, Shape};
use crate::registry::{ListType, Registry, ResourceType};
use crate::schema;
use crate::validation;

/// What kind of change a watch event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One committed change.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub key: (String, String),
    pub namespace: String,
    pub kind: ChangeKind,
    pub object: Value,
    pub old: Option<Value>,
    /// Encoded watch events by type, shared by the watches that see this change as stored.
    pub encoded: std::sync::Mutex<Vec<(&'static str, axum::body::Bytes)>>,
}

pub type ObjectKey = (String, String);

/// Everything the server holds.
pub struct State {
    pub registry: Registry,
    pub objects: HashMap<(String, String), BTreeMap<ObjectKey, Value>>,
    pub rv: u64,
    pub history: VecDeque<Arc<Change>>,
    pub history_limit: usize,
    /// Events with rv ≤ this are no longer in history.
    pub compacted_rv: u64,
    pub uid_counter: u64,
    pub changes: Changes,
    /// Something happened that garbage collection may need to act on.
    pub gc_dirty: bool,
    pub sims: crate::controllers::Sims,
}

/// How a write was requested.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    pub field_manager: String,
    pub dry_run: bool,
    /// "Strict", "Warn" (default) or "Ignore".
    pub field_validation: String,
    pub force: bool,
}

/// A write's result: the object and the warnings to send in `Warning` headers.
pub struct Written {
    pub object: Value,
    pub warnings: Vec<String>,
    pub created: bool,
}

impl Shape for ResourceType {
    fn list_type(&self, fields: &[&str]) -> ListType {
        match &self.schema {
            Some(s) => schema::node_at(s, fields)
                .map(schema::list_type_of)
                .unwrap_or(ListType::Atomic),
            None => builtin::list_type(fields),
        }
    }
}

pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl State {
    pub fn new(history_limit: usize) -> Self {
        let mut s = Self {
            registry: Registry::with_builtins(),
            objects: HashMap::new(),
            rv: 1,
            history: VecDeque::new(),
            history_limit,
            compacted_rv: 0,
            uid_counter: 0,
            changes: broadcast::channel(4096).0,
            gc_dirty: false,
            sims: Default::default(),
        };
        for ns in ["default", "kube-system", "kube-public"] {
            let rt = s
                .registry
                .get("", "v1", "namespaces")
                .cloned()
                .expect("namespaces are built in");
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            s.create(
                &rt,
                None,
                obj,
                &WriteOptions {
                    field_manager: "testcluster".into(),
                    ..Default::default()
                },
            )
            .expect("initial namespaces are valid");
        }
        s
    }

    fn next_uid(&mut self) -> String {
        self.uid_counter += 1;
        let n = self.uid_counter;
        let r: u64 = rand_u64();
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (r >> 32) as u32,
            (r >> 16) as u16,
            n & 0xfff,
            (r >> 4) & 0xfff,
            n
        )
    }

    pub fn bucket(&self, rt: &ResourceType) -> Option<&BTreeMap<ObjectKey, Value>> {
        self.objects.get(&rt.storage_key())
    }

    pub fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        self.bucket(rt)
            .and_then(|b| b.get(&(ns.unwrap_or_default().to_string(), name.to_string())))
            .map(|o| present(o, rt))
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// Forgets the watch history: resuming from any earlier resourceVersion gets 410 Gone.
    pub fn forget_history(&mut self) {
        self.history.clear();
        // moving the counter makes every version handed out so far too old to resume from
        self.rv += 1;
        self.compacted_rv = self.rv;
    }

    pub fn stored_object(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<&Value> {
        self.stored(rt, ns, name)
    }

    fn existing(&self, rt: &ResourceType, ns: &str, name: &str) -> ApiResult<Value> {
        self.stored(rt, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    fn stored(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<&Value> {
        self.bucket(rt)
            .and_then(|b| b.get(&(ns.to_string(), name.to_string())))
    }

    /// Records a change: new resourceVersion, history, and the live broadcast.
    fn commit(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        kind: ChangeKind,
        mut obj: Value,
        old: Option<Value>,
    ) -> (Value, Arc<Change>) {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = Value::from(self.rv.to_string());
        let bucket = self.objects.entry(rt.storage_key()).or_default();
        match kind {
            ChangeKind::Deleted => {
                bucket.remove(&(ns.to_string(), name.to_string()));
            }
            _ => {
                bucket.insert((ns.to_string(), name.to_string()), obj.clone());
            }
        }
        let change = Arc::new(Change {
            encoded: Default::default(),
            rv: self.rv,
            key: rt.storage_key(),
            namespace: ns.to_string(),
            kind,
            object: obj.clone(),
            old,
        });
        self.history.push_back(change.clone());
        let _ = self.changes.send(change.clone());
        if kind == ChangeKind::Deleted
            || !change.object["metadata"]["deletionTimestamp"].is_null()
            || !change.object["metadata"]["ownerReferences"].is_null()
        {
            self.gc_dirty = true;
        }
        while self.history.len() > self.history_limit {
            if let Some(c) = self.history.pop_front() {
                self.compacted_rv = c.rv;
            }
        }
        (obj, change)
    }

    /// Runs the admission pipeline shared by create, update, patch and apply.
    fn admit(
        &self,
        rt: &ResourceType,
        ns: &str,
        old: Option<&Value>,
        mut obj: Value,
        subresource: &str,
        opts: &WriteOptions,
    ) -> ApiResult<(Value, Vec<String>)> {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let mut warnings = vec![];
        if !obj.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        match (obj["apiVersion"].as_str(), obj["kind"].as_str()) {
            (Some(av), Some(k)) => {
                if av != rt.api_version() || k != rt.kind {
                    return Err(ApiError::bad_request(format!(
                        "the API version in the data ({av}) does not match the expected API version ({}) or the kind ({k}) does not match {}",
                        rt.api_version(),
                        rt.kind
                    )));
                }
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Object 'Kind' or 'apiVersion' is missing in the body; expected apiVersion: {}, kind: {}",
                    rt.api_version(),
                    rt.kind
                )));
            }
        }
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        // status/main split
        if rt.status_subresource {
            if subresource == "status" {
                let mut merged = old.cloned().unwrap_or_else(|| obj.clone());
                merged["status"] = obj["status"].clone();
                if obj["status"].is_null() {
                    merged.as_object_mut().expect("object").remove("status");
                }
                merged["metadata"]["resourceVersion"] = obj["metadata"]["resourceVersion"].clone();
                obj = merged;
            } else {
                match old.map(|o| o["status"].clone()) {
                    Some(s) if !s.is_null() => obj["status"] = s,
                    _ => {
                        obj.as_object_mut().expect("object").remove("status");
                    }
                }
            }
        }
        // metadata the server owns
        if let Some(o) = old {
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "managedFields",
            ] {
                match o["metadata"].get(f) {
                    Some(v) => obj["metadata"][f] = v.clone(),
                    None => {
                        obj["metadata"]
                            .as_object_mut()
                            .expect("metadata object")
                            .remove(f);
                    }
                }
            }
            obj["metadata"]["name"] = o["metadata"]["name"].clone();
            if rt.namespaced {
                obj["metadata"]["namespace"] = Value::from(ns);
            }
        }
        let mut causes = vec![];
        validation::check_metadata(rt.builtin, &obj["metadata"], &mut causes);
        let mut unknown = vec![];
        match (&rt.schema, rt.builtin) {
            (Some(s), _) => {
                let meta = obj["metadata"].clone();
                schema::prune(&mut obj, s, "", &mut unknown);
                obj["metadata"] = meta;
                schema::apply_defaults(&mut obj, s);
                schema::validate(&obj, s, "", &mut causes);
                if causes.is_empty() {
                    schema::validate_cel(&obj, old, s, &mut causes);
                }
            }
            (None, Some(kind)) => {
                unknown = builtin::decode(kind, &obj).map_err(ApiError::bad_request)?;
                for u in &unknown {
                    remove_path(&mut obj, u);
                }
                causes.extend(builtin::validate(kind, &obj, old));
                if kind == BuiltinKind::CustomResourceDefinition {
                    causes.extend(crate::crd::validate(&obj));
                }
            }
            (None, None) => {}
        }
        if !unknown.is_empty() {
            match opts.field_validation.as_str() {
                "Strict" => {
                    let list: Vec<String> =
                        unknown.iter().map(|u| format!("unknown field \"{u}\"")).collect();
                    return Err(ApiError::bad_request(format!(
                        "strict decoding error: {}",
                        list.join(", ")
                    )));
                }
                "Ignore" => {}
                _ => warnings.extend(unknown.iter().map(|u| format!("unknown field \"{u}\""))),
            }
        }
        if !causes.is_empty() {
            return Err(ApiError::invalid(&rt.kind, &rt.group, &name, causes));
        }
        // generation moves with anything but metadata and status
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("metadata");
                m.remove("status");
            }
            v
        };
        match old {
            None => obj["metadata"]["generation"] = Value::from(1),
            Some(o) => {
                let g = o["metadata"]["generation"].as_i64().unwrap_or(1);
                obj["metadata"]["generation"] = Value::from(if strip(o) != strip(&obj) { g + 1 } else { g });
            }
        }
        Ok((obj, warnings))
    }

    fn check_namespace(&self, rt: &ResourceType, ns: &str) -> ApiResult<()> {
        if !rt.namespaced {
            return Ok(());
        }
        let nsrt = self.registry.get("", "v1", "namespaces").expect("built in");
        match self.stored(nsrt, "", ns) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if !n["metadata"]["deletionTimestamp"].is_null() => Err(ApiError::forbidden(format!(
                "{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                rt.plural
            ))),
            Some(_) => Ok(()),
        }
    }

    pub fn create(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        self.create_owned(rt, ns, obj, opts, None)
    }

    /// Create; `entries` is the ownership when the create comes from an apply.
    fn create_owned(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
        entries: Option<Vec<fields::Entry>>,
    ) -> ApiResult<Written> {
        let ns = scope_namespace(rt, ns);
        if rt.namespaced {
            match obj["metadata"]["namespace"].as_str() {
                Some(body_ns) if body_ns != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => obj["metadata"]["namespace"] = Value::from(ns.clone()),
            }
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        if obj["metadata"]["name"].as_str().is_none_or(str::is_empty) {
            match obj["metadata"]["generateName"].as_str() {
                Some(prefix) if !prefix.is_empty() => {
                    let suffix: String = (0..5)
                        .map(|_| b"bcdfghjklmnpqrstvwxz2456789"[rand_u64() as usize % 27] as char)
                        .collect();
                    obj["metadata"]["name"] = Value::from(format!("{prefix}{suffix}"));
                }
                _ => {
                    return Err(ApiError::invalid(
                        &rt.kind,
                        &rt.group,
                        "",
                        vec![Cause::required("metadata.name")]
                            .into_iter()
                            .map(|mut c| {
                                c.message = "Required value: name or generateName is required".into();
                                c
                            })
                            .collect(),
                    ));
                }
            }
        }
        let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_string();
        self.check_namespace(rt, &ns)?;
        if self.stored(rt, &ns, &name).is_some() {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        if let Some(m) = obj["metadata"].as_object_mut() {
            for f in [
                "uid",
                "resourceVersion",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "managedFields",
                "selfLink",
            ] {
                m.remove(f);
            }
        }
        let (mut obj, warnings) = self.admit(rt, &ns, None, obj, "", opts)?;
        obj["metadata"]["uid"] = Value::from(self.next_uid());
        obj["metadata"]["creationTimestamp"] = Value::from(now_rfc3339());
        if let Some(kind) = rt.builtin {
            crate::builtin_defaults::on_create(kind, &mut obj);
        }
        let entries = entries.unwrap_or_else(|| {
            fields::record_update(
                None,
                &obj,
                &opts.field_manager,
                "",
                &rt.api_version(),
                &now_rfc3339(),
                rt,
            )
        });
        fields::write_entries(&mut obj, &entries);
        if opts.dry_run {
            return Ok(Written {
                object: present(&obj, rt),
                warnings,
                created: true,
            });
        }
        let obj = to_storage(obj, rt);
        let (obj, _) = self.commit(rt, &ns, &name, ChangeKind::Added, obj, None);
        self.after_write(rt, &obj);
        Ok(Written {
            object: present(&obj, rt),
            warnings,
            created: true,
        })
    }

    /// PUT (subresource "" or "status").
    pub fn update(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        subresource: &str,
        obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let ns = scope_namespace(rt, ns);
        let old = self.existing(rt, &ns, name)?;
        if let Some(body_name) = obj["metadata"]["name"].as_str()
            && body_name != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        match obj["metadata"]["resourceVersion"].as_str() {
            Some(rv) if rv != old["metadata"]["resourceVersion"].as_str().unwrap_or_default() => {
                return Err(ApiError::conflict(
                    &rt.group,
                    &rt.plural,
                    name,
                    "the object has been modified; please apply your changes to the latest version and try again",
                ));
            }
            None if rt.is_custom() => {
                return Err(ApiError::invalid(
                    &rt.kind,
                    &rt.group,
                    name,
                    vec![Cause::invalid(
                        "metadata.resourceVersion",
                        &Value::from("0x0"),
                        "must be specified for an update",
                    )],
                ));
            }
            _ => {}
        }
        self.write_existing(rt, &ns, name, old, obj, subresource, opts, None)
    }

    /// Validates `new` against `old` and commits it (shared by update, patch and apply).
    #[allow(clippy::too_many_arguments)]
    pub fn write_existing(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        old: Value,
        new: Value,
        subresource: &str,
        opts: &WriteOptions,
        applied_entries: Option<Vec<fields::Entry>>,
    ) -> ApiResult<Written> {
        let old_seen = present(&old, rt);
        let (mut obj, warnings) = self.admit(rt, ns, Some(&old_seen), new, subresource, opts)?;
        let entries = match applied_entries {
            Some(e) => e,
            None => fields::record_update(
                Some(&old_seen),
                &obj,
                &opts.field_manager,
                subresource,
                &rt.api_version(),
                &now_rfc3339(),
                rt,
            ),
        };
        fields::write_entries(&mut obj, &entries);
        obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        let obj = to_storage(obj, rt);
        if obj == old {
            return Ok(Written {
                object: present(&old, rt),
                warnings,
                created: false,
            });
        }
        if opts.dry_run {
            return Ok(Written {
                object: present(&obj, rt),
                warnings,
                created: false,
            });
        }
        let finalized = !obj["metadata"]["deletionTimestamp"].is_null()
            && obj["metadata"]["finalizers"].as_array().is_none_or(Vec::is_empty);
        let kind = if finalized {
            ChangeKind::Deleted
        } else {
            ChangeKind::Modified
        };
        let (obj, _) = self.commit(rt, ns, name, kind, obj, Some(old));
        if finalized {
            self.after_delete(rt, &obj);
        } else {
            self.after_write(rt, &obj);
        }
        Ok(Written {
            object: present(&obj, rt),
            warnings,
            created: false,
        })
    }

    /// PATCH: merge, JSON, strategic merge or apply.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        subresource: &str,
        content_type: &str,
        body: &[u8],
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        let ns = scope_namespace(rt, ns);
        let old = self.stored(rt, &ns, name).cloned();
        let media = content_type.split(';').next().unwrap_or_default().trim();
        if media == "application/apply-patch+yaml" || media == "application/apply-patch+cbor" {
            return self.apply(rt, &ns, name, subresource, old, body, opts);
        }
        let old = old.ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let patch: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let mut target = present(&old, rt);
        match media {
            "application/merge-patch+json" => crate::patch::merge_patch(&mut target, &patch),
            "application/json-patch+json" => {
                crate::patch::json_patch(&mut target, &patch).map_err(|e| ApiError::with_code(422, e))?
            }
            "application/strategic-merge-patch+json" => {
                if rt.is_custom() {
                    return Err(ApiError::unsupported_media_type(format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (strategic merge patch is not supported for custom resources like {}.{})",
                        rt.plural, rt.group
                    )));
                }
                crate::patch::strategic_merge(&mut target, &patch, rt).map_err(ApiError::bad_request)?;
            }
            other => {
                return Err(ApiError::unsupported_media_type(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
                )));
            }
        }
        if let Some(rv) = patch["metadata"]["resourceVersion"].as_str()
            && Some(rv) != old["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        self.write_existing(rt, &ns, name, old, target, subresource, opts, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn apply(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        subresource: &str,
        old: Option<Value>,
        body: &[u8],
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        if opts.field_manager.is_empty() {
            return Err(ApiError::bad_request(
                "PATCH, application/apply-patch+yaml requires fieldManager to be set",
            ));
        }
        let text =
            std::str::from_utf8(body).map_err(|_| ApiError::bad_request("apply patch is not UTF-8"))?;
        let mut config: Value = serde_saphyr::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
        if !config.is_object() {
            return Err(ApiError::bad_request("the apply patch must be an object"));
        }
        if !config["metadata"]["managedFields"].is_null() {
            return Err(ApiError::bad_request("metadata.managedFields must be nil"));
        }
        match config["metadata"]["name"].as_str() {
            Some(n) if n != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            None => config["metadata"]["name"] = Value::from(name),
            _ => {}
        }
        if rt.namespaced {
            match config["metadata"]["namespace"].as_str() {
                Some(n) if n != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => config["metadata"]["namespace"] = Value::from(ns),
            }
        }
        let rv_precondition = config["metadata"]["resourceVersion"].as_str().map(String::from);
        if let Some(m) = config["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        let now = now_rfc3339();
        match old {
            None => {
                if subresource == "status" {
                    return Err(ApiError::not_found(&rt.group, &rt.plural, name));
                }
                let applied = fields::apply(
                    None,
                    &config,
                    &opts.field_manager,
                    "",
                    &rt.api_version(),
                    opts.force,
                    &now,
                    rt,
                )
                .map_err(|c| ApiError::apply_conflict(&c))?;
                let mut obj = applied.object;
                obj["apiVersion"] = config["apiVersion"].clone();
                obj["kind"] = config["kind"].clone();
                self.create_owned(rt, Some(ns), obj, opts, Some(applied.entries))
            }
            Some(old) => {
                if let Some(rv) = rv_precondition
                    && Some(rv.as_str()) != old["metadata"]["resourceVersion"].as_str()
                {
                    return Err(ApiError::conflict(
                        &rt.group,
                        &rt.plural,
                        name,
                        "the object has been modified; please apply your changes to the latest version and try again",
                    ));
                }
                let live = present(&old, rt);
                let scoped = if subresource == "status" {
                    json!({"apiVersion": config["apiVersion"], "kind": config["kind"], "metadata": {"name": name}, "status": config["status"]})
                } else if rt.status_subresource {
                    let mut c = config.clone();
                    if let Some(m) = c.as_object_mut() {
                        m.remove("status");
                    }
                    c
                } else {
                    config.clone()
                };
                let applied = fields::apply(
                    Some(&live),
                    &scoped,
                    &opts.field_manager,
                    subresource,
                    &rt.api_version(),
                    opts.force,
                    &now,
                    rt,
                )
                .map_err(|c| ApiError::apply_conflict(&c))?;
                let mut obj = applied.object;
                obj["apiVersion"] = Value::from(rt.api_version());
                obj["kind"] = Value::from(rt.kind.clone());
                self.write_existing(rt, ns, name, old, obj, subresource, opts, Some(applied.entries))
            }
        }
    }

    /// DELETE: marks the object deleting while finalizers remain, removes it otherwise.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        options: &Value,
        dry_run: bool,
    ) -> ApiResult<Value> {
        let ns = scope_namespace(rt, ns);
        let old = self.existing(rt, &ns, name)?;
        let pre = &options["preconditions"];
        if let Some(uid) = pre["uid"].as_str()
            && Some(uid) != old["metadata"]["uid"].as_str()
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    old["metadata"]["uid"].as_str().unwrap_or_default()
                ),
            ));
        }
        if let Some(rv) = pre["resourceVersion"].as_str()
            && Some(rv) != old["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                name,
                "Precondition failed: the object has been modified",
            ));
        }
        if dry_run {
            return Ok(present(&old, rt));
        }
        let mut obj = old.clone();
        let policy = options["propagationPolicy"]
            .as_str()
            .map(String::from)
            .or_else(|| {
                options["orphanDependents"].as_bool().map(|o| {
                    if o {
                        "Orphan".to_string()
                    } else {
                        "Background".to_string()
                    }
                })
            });
        let mut finalizers: Vec<Value> = obj["metadata"]["finalizers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let deleting = !obj["metadata"]["deletionTimestamp"].is_null();
        match policy.as_deref() {
            Some("Foreground") if !deleting && !finalizers.contains(&Value::from("foregroundDeletion")) => {
                finalizers.push("foregroundDeletion".into())
            }
            Some("Orphan") if !deleting && !finalizers.contains(&Value::from("orphan")) => {
                finalizers.push("orphan".into())
            }
            _ => {}
        }
        if rt.builtin == Some(BuiltinKind::Namespace)
            && !finalizers.contains(&Value::from("kubernetes"))
            && !deleting
        {
            obj["spec"]["finalizers"] = json!(["kubernetes"]);
            obj["status"]["phase"] = Value::from("Terminating");
        }
        let namespace_pending =
            rt.builtin == Some(BuiltinKind::Namespace) && self.namespace_has_content(name);
        if finalizers.is_empty() && !namespace_pending {
            let (obj, _) = self.commit(rt, &ns, name, ChangeKind::Deleted, obj, Some(old));
            self.after_delete(rt, &obj);
            return Ok(present(&obj, rt));
        }
        if deleting {
            return Ok(present(&old, rt));
        }
        obj["metadata"]["finalizers"] = Value::Array(finalizers);
        if obj["metadata"]["finalizers"]
            .as_array()
            .is_some_and(Vec::is_empty)
        {
            obj["metadata"]
                .as_object_mut()
                .expect("metadata")
                .remove("finalizers");
        }
        obj["metadata"]["deletionTimestamp"] = Value::from(now_rfc3339());
        obj["metadata"]["deletionGracePeriodSeconds"] = Value::from(0);
        let (obj, _) = self.commit(rt, &ns, name, ChangeKind::Modified, obj, Some(old));
        if rt.builtin == Some(BuiltinKind::Namespace) {
            self.delete_namespace_content(name);
        }
        self.after_write(rt, &obj);
        Ok(present(&obj, rt))
    }

    fn namespace_has_content(&self, ns: &str) -> bool {
        self.objects.values().any(|b| b.keys().any(|(n, _)| n == ns))
    }

    fn delete_namespace_content(&mut self, ns: &str) {
        let targets: Vec<(ResourceType, String)> = self
            .registry
            .all()
            .filter(|t| t.namespaced)
            .filter_map(|t| self.bucket(t).map(|b| (t.clone(), b)))
            .flat_map(|(t, b)| {
                b.keys()
                    .filter(|(n, _)| n == ns)
                    .map(|(_, name)| (t.clone(), name.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        for (t, name) in targets {
            if seen.insert((t.storage_key(), name.clone())) {
                let _ = self.delete(
                    &t,
                    Some(ns),
                    &name,
                    &json!({"propagationPolicy": "Background"}),
                    false,
                );
            }
        }
        self.finish_namespaces();
    }

    /// Removes terminating namespaces that became empty.
    pub fn finish_namespaces(&mut self) {
        let nsrt = self
            .registry
            .get("", "v1", "namespaces")
            .cloned()
            .expect("built in");
        let terminating: Vec<(String, Value)> = self
            .bucket(&nsrt)
            .map(|b| {
                b.iter()
                    .filter(|(_, v)| !v["metadata"]["deletionTimestamp"].is_null())
                    .map(|((_, n), v)| (n.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        for (name, obj) in terminating {
            let meta_finalizers = obj["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
            if !self.namespace_has_content(&name) && !meta_finalizers {
                let (o, _) = self.commit(&nsrt, "", &name, ChangeKind::Deleted, obj.clone(), Some(obj));
                let _ = o;
            }
        }
    }

    /// Hooks after an object is written: CRDs become servable.
    fn after_write(&mut self, rt: &ResourceType, obj: &Value) {
        if rt.builtin == Some(BuiltinKind::CustomResourceDefinition) {
            self.establish_crd(obj);
        }
    }

    fn after_delete(&mut self, rt: &ResourceType, obj: &Value) {
        if rt.builtin == Some(BuiltinKind::CustomResourceDefinition) {
            let group = obj["spec"]["group"].as_str().unwrap_or_default().to_string();
            let plural = obj["spec"]["names"]["plural"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            self.registry.remove_custom(&group, &plural);
            if let Some(bucket) = self.objects.remove(&(group, plural)) {
                let _ = bucket;
            }
        }
        if rt.namespaced {
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if self.is_namespace_terminating(&ns) {
                self.finish_namespaces();
            }
        }
    }

    fn is_namespace_terminating(&self, ns: &str) -> bool {
        let nsrt = self.registry.get("", "v1", "namespaces").expect("built in");
        self.stored(nsrt, "", ns)
            .is_some_and(|n| !n["metadata"]["deletionTimestamp"].is_null())
    }

    /// Registers a CRD's resources and sets its NamesAccepted/Established conditions.
    fn establish_crd(&mut self, crd: &Value) {
        let name = crd["metadata"]["name"].as_str().unwrap_or_default().to_string();
        let group = crd["spec"]["group"].as_str().unwrap_or_default();
        let plural = crd["spec"]["names"]["plural"].as_str().unwrap_or_default();
        self.registry.remove_custom(group, plural);
        for t in crate::registry::from_crd(crd) {
            self.registry.insert(t);
        }
        let rt = self
            .registry
            .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .cloned()
            .expect("built in");
        let Some(current) = self.stored(&rt, "", &name).cloned() else {
            return;
        };
        let now = now_rfc3339();
        let keep_time = |t: &str| {
            current["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == t && c["status"] == "True"))
                .and_then(|c| c["lastTransitionTime"].as_str().map(String::from))
                .unwrap_or_else(|| now.clone())
        };
        let status = json!({
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": keep_time("NamesAccepted")},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": keep_time("Established")},
            ],
            "acceptedNames": crd["spec"]["names"],
            "storedVersions": crd["spec"]["versions"].as_array().into_iter().flatten()
                .filter(|v| v["storage"] == Value::Bool(true)).map(|v| v["name"].clone()).collect::<Vec<_>>(),
        });
        if current["status"] != status {
            let mut updated = current.clone();
            updated["status"] = status;
            self.commit(&rt, "", &name, ChangeKind::Modified, updated, Some(current));
        }
    }
}

/// The stored object as seen through one version of its resource.
pub fn present(obj: &Value, rt: &ResourceType) -> Value {
    if rt.is_events_v1() {
        return crate::events::to_events_v1(obj);
    }
    let mut o = obj.clone();
    o["apiVersion"] = Value::from(rt.api_version());
    o["kind"] = Value::from(rt.kind.clone());
    o
}

/// The object in the shape it is stored in (events.k8s.io Events are stored as core/v1).
fn to_storage(obj: Value, rt: &ResourceType) -> Value {
    if rt.is_events_v1() {
        crate::events::to_core(&obj)
    } else {
        obj
    }
}

fn remove_path(obj: &mut Value, dotted: &str) {
    let segments: Vec<&str> = dotted.split('.').collect();
    let mut cur = obj;
    for seg in &segments[..segments.len() - 1] {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (*seg, None),
        };
        let Some(next) = cur.get_mut(name) else { return };
        cur = match index {
            Some(i) => match next.get_mut(i) {
                Some(n) => n,
                None => return,
            },
            None => next,
        };
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(segments[segments.len() - 1]);
    }
}

pub fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

/// A list response for objects matching a filter, paged by (namespace, name).
pub fn list_page(
    items: Vec<Value>,
    limit: Option<usize>,
    start_after: Option<&(String, String)>,
) -> (Vec<Value>, Option<(String, String)>, usize) {
    let mut filtered: Vec<Value> = items
        .into_iter()
        .filter(|o| match start_after {
            Some(after) => key_of(o) > *after,
            None => true,
        })
        .collect();
    filtered.sort_by_key(key_of);
    match limit {
        Some(l) if l > 0 && filtered.len() > l => {
            let remaining = filtered.len() - l;
            filtered.truncate(l);
            let last = filtered.last().map(key_of);
            (filtered, last, remaining)
        }
        _ => (filtered, None, 0),
    }
}

/// The namespace a request addresses: the URL's (or `default`) for namespaced kinds, none otherwise.
fn scope_namespace(rt: &ResourceType, ns: Option<&str>) -> String {
    if rt.namespaced {
        ns.unwrap_or("default").to_string()
    } else {
        String::new()
    }
}

fn key_of(o: &Value) -> (String, String) {
    (
        o["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        o["metadata"]["name"].as_str().unwrap_or_default().to_string(),
    )
}

/// Broadcast of committed changes for live watches.
pub type Changes = broadcast::Sender<Arc<Change>>;
