//! What kube-controller-manager would do, simulated: garbage collection through
//! ownerReferences (background, foreground, orphan), Jobs that start and then complete or fail
//! as their annotations say, and Deployments that report their replicas as available.
//!
//! Job outcomes (the contract in DESIGN.md): `test.durablejob.dev/outcomes: "fail,fail,succeed"`
//! gives the n-th Job created for the same owner the n-th entry (the last one repeats);
//! `test.durablejob.dev/duration-ms` (default 200) is how long it runs. No annotation: succeed.
//! A Deployment whose pod template has the annotation `test.durablejob.dev/unavailable: "true"`
//! never becomes available.

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::builtin::BuiltinKind;
use crate::registry::ResourceType;
use crate::store::{State, WriteOptions, now_rfc3339, present};

pub const OUTCOMES: &str = "test.durablejob.dev/outcomes";
pub const DURATION_MS: &str = "test.durablejob.dev/duration-ms";
pub const UNAVAILABLE: &str = "test.durablejob.dev/unavailable";
const MANAGER: &str = "testcluster-controller";
/// Deployments become available this long after a change.
const ROLLOUT: Duration = Duration::from_millis(300);

/// Progress the simulated controllers keep between ticks.
#[derive(Default)]
pub struct Sims {
    /// Job uid → (when it started, how long it runs, whether it succeeds).
    jobs: HashMap<String, (Instant, Duration, bool)>,
    /// Owner uid → Jobs created for it so far.
    jobs_per_owner: HashMap<String, usize>,
    /// Deployment uid → (generation seen, when it becomes available).
    deployments: HashMap<String, (i64, Instant)>,
}

fn opts() -> WriteOptions {
    WriteOptions {
        field_manager: MANAGER.into(),
        field_validation: "Ignore".into(),
        ..Default::default()
    }
}

fn builtin(state: &State, kind: BuiltinKind) -> ResourceType {
    state
        .registry
        .all()
        .find(|t| t.builtin == Some(kind))
        .cloned()
        .expect("built-in kind")
}

fn key(obj: &Value) -> (String, String) {
    (
        obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        obj["metadata"]["name"].as_str().unwrap_or_default().to_string(),
    )
}

/// One step of every simulated controller.
pub fn tick(state: &mut State, now: Instant) {
    if state.gc_dirty {
        state.gc_dirty = false;
        garbage_collect(state);
    }
    jobs(state, now);
    deployments(state, now);
}

fn all_objects(state: &State) -> Vec<(ResourceType, Value)> {
    let mut seen = HashSet::new();
    let mut out = vec![];
    for t in state.registry.all() {
        if !seen.insert(t.storage_key()) {
            continue;
        }
        if let Some(b) = state.bucket(t) {
            out.extend(b.values().map(|o| (t.clone(), o.clone())));
        }
    }
    out
}

fn garbage_collect(state: &mut State) {
    let objects = all_objects(state);
    let uids: HashSet<&str> = objects
        .iter()
        .filter_map(|(_, o)| o["metadata"]["uid"].as_str())
        .collect();
    let dependents_of = |uid: &str| -> Vec<&(ResourceType, Value)> {
        objects
            .iter()
            .filter(|(_, o)| {
                o["metadata"]["ownerReferences"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| r["uid"].as_str() == Some(uid))
            })
            .collect()
    };
    let mut deletes: Vec<(ResourceType, Value, &'static str)> = vec![];
    let mut updates: Vec<(ResourceType, Value)> = vec![];
    for (rt, o) in &objects {
        let finalizers: Vec<&str> = o["metadata"]["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let deleting = !o["metadata"]["deletionTimestamp"].is_null();
        let uid = o["metadata"]["uid"].as_str().unwrap_or_default();
        if deleting && finalizers.contains(&"orphan") {
            for (drt, d) in dependents_of(uid) {
                let mut d = present(d, drt);
                drop_owner(&mut d, uid);
                updates.push((drt.clone(), d));
            }
            updates.push((rt.clone(), without_finalizer(&present(o, rt), "orphan")));
            continue;
        }
        if deleting && finalizers.contains(&"foregroundDeletion") {
            let deps = dependents_of(uid);
            if deps.is_empty() {
                updates.push((
                    rt.clone(),
                    without_finalizer(&present(o, rt), "foregroundDeletion"),
                ));
            } else {
                for (drt, d) in deps {
                    if d["metadata"]["deletionTimestamp"].is_null() {
                        deletes.push((drt.clone(), d.clone(), "Foreground"));
                    }
                }
            }
        }
        // dependents whose owners are all gone are deleted; dangling references are dropped
        let refs: Vec<&str> = o["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["uid"].as_str())
            .collect();
        if refs.is_empty() || deleting {
            continue;
        }
        let alive: Vec<&str> = refs.iter().copied().filter(|r| uids.contains(r)).collect();
        if alive.is_empty() {
            deletes.push((rt.clone(), o.clone(), "Background"));
        } else if alive.len() < refs.len() {
            let mut d = present(o, rt);
            for r in refs.iter().filter(|r| !alive.contains(r)) {
                drop_owner(&mut d, r);
            }
            updates.push((rt.clone(), d));
        }
    }
    let changed = !deletes.is_empty() || !updates.is_empty();
    for (rt, o, policy) in deletes {
        let (ns, name) = key(&o);
        let ns = rt.namespaced.then_some(ns);
        let _ = state.delete(
            &rt,
            ns.as_deref(),
            &name,
            &json!({"propagationPolicy": policy}),
            false,
        );
    }
    for (rt, o) in updates {
        let (ns, name) = key(&o);
        if let Some(old) = state.stored_object(&rt, &ns, &name).cloned() {
            let _ = state.write_existing(&rt, &ns, &name, old, o, "", &opts(), None);
        }
    }
    if changed {
        state.gc_dirty = true;
    }
}

fn drop_owner(obj: &mut Value, uid: &str) {
    if let Some(refs) = obj["metadata"]["ownerReferences"].as_array_mut() {
        refs.retain(|r| r["uid"].as_str() != Some(uid));
        if refs.is_empty() {
            obj["metadata"]
                .as_object_mut()
                .expect("metadata")
                .remove("ownerReferences");
        }
    }
}

fn without_finalizer(obj: &Value, f: &str) -> Value {
    let mut o = obj.clone();
    if let Some(list) = o["metadata"]["finalizers"].as_array_mut() {
        list.retain(|x| x.as_str() != Some(f));
    }
    o
}

fn jobs(state: &mut State, now: Instant) {
    let rt = builtin(state, BuiltinKind::Job);
    let jobs: Vec<Value> = state
        .bucket(&rt)
        .map(|b| b.values().cloned().collect())
        .unwrap_or_default();
    for job in jobs {
        let uid = job["metadata"]["uid"].as_str().unwrap_or_default().to_string();
        let finished = job["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| matches!(c["type"].as_str(), Some("Complete" | "Failed")) && c["status"] == "True");
        if finished
            || !job["metadata"]["deletionTimestamp"].is_null()
            || job["spec"]["suspend"] == Value::Bool(true)
        {
            continue;
        }
        let (ns, name) = key(&job);
        let Some(&(started, duration, succeeds)) = state.sims.jobs.get(&uid) else {
            let owner = job["metadata"]["ownerReferences"][0]["uid"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| format!("{ns}/{name}"));
            let n = state.sims.jobs_per_owner.entry(owner).or_insert(0);
            let index = *n;
            *n += 1;
            let ann = &job["metadata"]["annotations"];
            let outcomes: Vec<String> = ann[OUTCOMES]
                .as_str()
                .unwrap_or("succeed")
                .split(',')
                .map(|s| s.trim().to_lowercase())
                .collect();
            let outcome = outcomes
                .get(index)
                .or(outcomes.last())
                .cloned()
                .unwrap_or_default();
            let duration = Duration::from_millis(
                ann[DURATION_MS]
                    .as_str()
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(200),
            );
            state.sims.jobs.insert(uid, (now, duration, outcome != "fail"));
            let mut j = present(&job, &rt);
            j["status"]["startTime"] = Value::from(now_rfc3339());
            j["status"]["active"] = Value::from(1);
            j["status"]["ready"] = Value::from(1);
            set_status(state, &rt, &ns, &name, &job, j);
            continue;
        };
        let deadline = job["spec"]["activeDeadlineSeconds"]
            .as_u64()
            .map(Duration::from_secs);
        let timed_out = deadline.is_some_and(|d| now.duration_since(started) >= d && d < duration);
        if now.duration_since(started) < duration && !timed_out {
            continue;
        }
        let t = now_rfc3339();
        let mut j = present(&job, &rt);
        j["status"]["active"] = Value::from(0);
        j["status"]["ready"] = Value::from(0);
        if succeeds && !timed_out {
            j["status"]["succeeded"] = Value::from(1);
            j["status"]["completionTime"] = Value::from(t.clone());
            j["status"]["conditions"] = json!([
                {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": t, "lastTransitionTime": t},
                {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": t, "lastTransitionTime": t},
            ]);
        } else {
            let (reason, message) = if timed_out {
                (
                    "DeadlineExceeded",
                    "Job was active longer than specified deadline",
                )
            } else {
                (
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                )
            };
            j["status"]["failed"] = Value::from(1);
            j["status"]["conditions"] = json!([
                {"type": "FailureTarget", "status": "True", "reason": reason, "message": message, "lastProbeTime": t, "lastTransitionTime": t},
                {"type": "Failed", "status": "True", "reason": reason, "message": message, "lastProbeTime": t, "lastTransitionTime": t},
            ]);
        }
        set_status(state, &rt, &ns, &name, &job, j);
        state
            .sims
            .jobs
            .remove(job["metadata"]["uid"].as_str().unwrap_or_default());
    }
}

fn deployments(state: &mut State, now: Instant) {
    let rt = builtin(state, BuiltinKind::Deployment);
    let list: Vec<Value> = state
        .bucket(&rt)
        .map(|b| b.values().cloned().collect())
        .unwrap_or_default();
    for d in list {
        let uid = d["metadata"]["uid"].as_str().unwrap_or_default().to_string();
        let generation = d["metadata"]["generation"].as_i64().unwrap_or(1);
        let (ns, name) = key(&d);
        let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let unavailable = d["spec"]["template"]["metadata"]["annotations"][UNAVAILABLE] == "true";
        let ready_at = match state.sims.deployments.get(&uid) {
            Some((g, at)) if *g == generation => *at,
            _ => {
                state
                    .sims
                    .deployments
                    .insert(uid.clone(), (generation, now + ROLLOUT));
                let mut dep = present(&d, &rt);
                dep["status"]["observedGeneration"] = Value::from(generation);
                dep["status"]["replicas"] = Value::from(replicas);
                dep["status"]["updatedReplicas"] = Value::from(0);
                dep["status"]["unavailableReplicas"] = Value::from(replicas);
                dep["status"]["conditions"] = conditions(false, replicas == 0, &d["status"]["conditions"]);
                set_status(state, &rt, &ns, &name, &d, dep);
                continue;
            }
        };
        if now < ready_at {
            continue;
        }
        let ready = if unavailable { 0 } else { replicas };
        let mut dep = present(&d, &rt);
        dep["status"]["observedGeneration"] = Value::from(generation);
        dep["status"]["replicas"] = Value::from(replicas);
        dep["status"]["updatedReplicas"] = Value::from(replicas);
        dep["status"]["readyReplicas"] = Value::from(ready);
        dep["status"]["availableReplicas"] = Value::from(ready);
        dep["status"]["unavailableReplicas"] = Value::from(replicas - ready);
        for f in ["readyReplicas", "availableReplicas", "unavailableReplicas"] {
            if dep["status"][f] == 0 {
                dep["status"].as_object_mut().expect("status").remove(f);
            }
        }
        dep["status"]["conditions"] = conditions(ready >= replicas, true, &d["status"]["conditions"]);
        set_status(state, &rt, &ns, &name, &d, dep);
    }
}

/// Available and Progressing conditions, keeping transition times while the status holds.
fn conditions(available: bool, progressed: bool, previous: &Value) -> Value {
    let t = now_rfc3339();
    let keep = |ty: &str, status: &str| {
        previous
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == ty && c["status"] == status)
            .and_then(|c| c["lastTransitionTime"].as_str().map(String::from))
            .unwrap_or_else(|| t.clone())
    };
    let (a_status, a_reason, a_msg) = if available {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    let (p_reason, p_msg) = if progressed {
        (
            "NewReplicaSetAvailable",
            "ReplicaSet has successfully progressed.",
        )
    } else {
        ("ReplicaSetUpdated", "ReplicaSet is progressing.")
    };
    json!([
        {"type": "Available", "status": a_status, "reason": a_reason, "message": a_msg, "lastUpdateTime": keep("Available", a_status), "lastTransitionTime": keep("Available", a_status)},
        {"type": "Progressing", "status": "True", "reason": p_reason, "message": p_msg, "lastUpdateTime": keep("Progressing", "True"), "lastTransitionTime": keep("Progressing", "True")},
    ])
}

fn set_status(state: &mut State, rt: &ResourceType, ns: &str, name: &str, old: &Value, new: Value) {
    let _ = state.write_existing(rt, ns, name, old.clone(), new, "status", &opts(), None);
}
