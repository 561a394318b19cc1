//! One shared watch of the Jobs the runner made and of their pods, feeding every waiting
//! activity: a run learns that its Job finished from the watch events the API server sends
//! anyway, not from a GET per Job per second. One watch of each per scope (every namespace, or
//! each of `--watch-namespaces`), cached in kube-runtime reflectors trimmed to what a run reads,
//! and a change counter per waited-on Job so a waiter wakes only for its own Job (or one of its
//! pods), or when a watch relisted (after a 410, a restart of the watch), when every waiter
//! looks again.
//!
//! The pods are watched because the Job controller batches pod changes for a second before it
//! marks a Job Complete: a single-pod Job is done when its pod succeeded
//! ([`super::job::done_by_its_pod`]), a second sooner, and a step's result is read from the
//! cached pod instead of a list per step.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};
use kube::{
    Api, Client, Resource, ResourceExt,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tracing::warn;

use super::job::LABEL_NAME;

type Key = (String, String);

/// The Jobs of the runner and their pods as the watches last saw them, and who waits for which.
pub struct JobWatch {
    scopes: Vec<Scope>,
    waiters: Mutex<HashMap<Key, watch::Sender<u64>>>,
}

/// One watched scope: its caches, and whether each watch has listed once.
struct Scope {
    /// `None`: every namespace.
    namespace: Option<String>,
    jobs: Store<Job>,
    pods: Store<Pod>,
    jobs_listed: AtomicBool,
    pods_listed: AtomicBool,
}

impl Scope {
    fn new(namespace: Option<String>, jobs: Store<Job>, pods: Store<Pod>) -> Self {
        Self {
            namespace,
            jobs,
            pods,
            jobs_listed: AtomicBool::new(false),
            pods_listed: AtomicBool::new(false),
        }
    }
}

/// What the watch knows of one Job.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// The watch has not listed yet (or lost its connection before its first list): ask the
    /// API server.
    Unknown,
    /// Listed and absent: not created yet as far as the watch knows, or deleted.
    Absent,
    Present(Arc<Job>),
}

/// Which of a scope's two watches an event came from.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Jobs,
    Pods,
}

impl JobWatch {
    /// Watches the runner's Jobs and their pods in each scope, from now until the process ends.
    pub fn start(client: &Client, scopes: &[Option<String>]) -> Arc<Self> {
        let mut writers = vec![];
        let mut stores = vec![];
        for scope in scopes {
            let (jobs, job_writer) = reflector::store::<Job>();
            let (pods, pod_writer) = reflector::store::<Pod>();
            stores.push(Scope::new(scope.clone(), jobs, pods));
            writers.push((scope.clone(), job_writer, pod_writer));
        }
        let this = Arc::new(Self {
            scopes: stores,
            waiters: Mutex::default(),
        });
        for (index, (scope, job_writer, pod_writer)) in writers.into_iter().enumerate() {
            this.spawn(client, index, &scope, job_writer, trim_job, Kind::Jobs);
            this.spawn(client, index, &scope, pod_writer, trim_pod, Kind::Pods);
        }
        this
    }

    /// One watch of `K` labelled [`LABEL_NAME`] in `scope`, into its reflector.
    fn spawn<K>(
        self: &Arc<Self>,
        client: &Client,
        index: usize,
        scope: &Option<String>,
        writer: reflector::store::Writer<K>,
        trim: fn(&mut K),
        kind: Kind,
    ) where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + DeserializeOwned
            + Send
            + Sync
            + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
        for<'a> &'a K: Into<Owner>,
    {
        let api: Api<K> = match scope {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        };
        let config = watcher::Config::default().labels(LABEL_NAME).any_semantic();
        let events = crate::util::watch::resilient(watcher(api, config))
            .modify(trim)
            .reflect(writer);
        let (watch, scope) = (self.clone(), scope.clone());
        tokio::spawn(async move {
            futures::pin_mut!(events);
            while let Some(event) = events.next().await {
                match event {
                    Ok(e) => watch.observe(index, kind, &e),
                    Err(e) => {
                        warn!(namespace = scope.as_deref().unwrap_or("*"), what = ?kind, error = %e, "the watch of the runner's Jobs (or their pods) failed; it restarts with backoff and relists")
                    }
                }
            }
        });
    }

    /// A watch over stores fed by someone else (tests feed them event by event).
    #[cfg(test)]
    fn over(namespace: Option<String>, jobs: Store<Job>, pods: Store<Pod>) -> Self {
        Self {
            scopes: vec![Scope::new(namespace, jobs, pods)],
            waiters: Mutex::default(),
        }
    }

    /// Wakes who waits for the Job an event of scope `index` is about (the Job itself, or one
    /// of its pods); a relist wakes everyone, since anything may have changed or gone while the
    /// watch was away.
    fn observe<K>(&self, index: usize, kind: Kind, event: &watcher::Event<K>)
    where
        for<'a> &'a K: Into<Owner>,
    {
        if matches!(event, watcher::Event::InitDone) {
            let scope = &self.scopes[index];
            let listed = match kind {
                Kind::Jobs => &scope.jobs_listed,
                Kind::Pods => &scope.pods_listed,
            };
            listed.store(true, Ordering::Release);
        }
        let waiters = self.waiters.lock().expect("waiters lock");
        match event {
            watcher::Event::Apply(object) | watcher::Event::Delete(object) => {
                if let Owner(Some(key)) = object.into()
                    && let Some(tx) = waiters.get(&key)
                {
                    tx.send_modify(|n| *n += 1);
                }
            }
            watcher::Event::InitDone => {
                for tx in waiters.values() {
                    tx.send_modify(|n| *n += 1);
                }
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }

    /// Follows Job `namespace/name`: [`Subscription::seen`], [`Subscription::pods`] and
    /// [`Subscription::changed`].
    pub fn subscribe(self: &Arc<Self>, namespace: &str, name: &str) -> Subscription {
        let key = (namespace.to_string(), name.to_string());
        let rx = self
            .waiters
            .lock()
            .expect("waiters lock")
            .entry(key.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Subscription {
            watch: self.clone(),
            key,
            rx,
        }
    }

    fn scope(&self, namespace: &str) -> Option<&Scope> {
        self.scopes
            .iter()
            .find(|s| s.namespace.as_deref().is_none_or(|n| n == namespace))
    }

    fn seen(&self, namespace: &str, name: &str) -> Seen {
        let scope = self
            .scope(namespace)
            .filter(|s| s.jobs_listed.load(Ordering::Acquire));
        let Some(scope) = scope else {
            return Seen::Unknown;
        };
        match scope.jobs.get(&ObjectRef::new(name).within(namespace)) {
            Some(job) => Seen::Present(job),
            None => Seen::Absent,
        }
    }

    /// The pods the watch has in `namespace` (none while it has not listed).
    pub fn pods_in(&self, namespace: &str) -> Vec<Arc<Pod>> {
        let scope = self
            .scope(namespace)
            .filter(|s| s.pods_listed.load(Ordering::Acquire));
        scope.map_or_else(Vec::new, |s| {
            s.pods
                .state()
                .into_iter()
                .filter(|p| p.namespace().as_deref() == Some(namespace))
                .collect()
        })
    }

    fn pods(&self, namespace: &str, job_uid: &str) -> Option<Vec<Arc<Pod>>> {
        self.scope(namespace)
            .filter(|s| s.pods_listed.load(Ordering::Acquire))?;
        let pods = self.pods_in(namespace).into_iter();
        Some(pods.filter(|p| controller_uid(p) == Some(job_uid)).collect())
    }
}

/// One activity's interest in one Job.
pub struct Subscription {
    watch: Arc<JobWatch>,
    key: Key,
    rx: watch::Receiver<u64>,
}

impl Subscription {
    /// The Job as the watch has it now.
    pub fn seen(&mut self) -> Seen {
        self.rx.mark_unchanged();
        self.watch.seen(&self.key.0, &self.key.1)
    }

    /// The pods the Job of uid `job_uid` controls, as the watch has them now; `None` while the
    /// pod watch has not listed (ask the API server).
    pub fn pods(&self, job_uid: &str) -> Option<Vec<Arc<Pod>>> {
        self.watch.pods(&self.key.0, job_uid)
    }

    /// Waits until the watch saw a change of the Job or its pods (or relisted) since the last
    /// [`Subscription::seen`], or `at_most` passed.
    pub async fn changed(&mut self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.rx.changed()).await;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut waiters = self.watch.waiters.lock().expect("waiters lock");
        // this receiver is the last one: nobody else waits for the Job
        if waiters.get(&self.key).is_some_and(|tx| tx.receiver_count() <= 1) {
            waiters.remove(&self.key);
        }
    }
}

/// The Job an object of the watches is about: a Job itself, a pod its controlling Job.
pub struct Owner(Option<Key>);

impl From<&Job> for Owner {
    fn from(job: &Job) -> Self {
        Owner(Some((job.namespace().unwrap_or_default(), job.name_any())))
    }
}

impl From<&Pod> for Owner {
    fn from(pod: &Pod) -> Self {
        let job = pod
            .owner_references()
            .iter()
            .find(|o| o.controller == Some(true) && o.kind == "Job");
        Owner(job.map(|o| (pod.namespace().unwrap_or_default(), o.name.clone())))
    }
}

fn controller_uid(pod: &Pod) -> Option<&str> {
    pod.owner_references()
        .iter()
        .find(|o| o.controller == Some(true) && o.kind == "Job")
        .map(|o| o.uid.as_str())
}

/// What a run reads of a Job is its metadata and status: the cache drops the rest (the pod
/// template is most of a Job's size).
fn trim_job(job: &mut Job) {
    job.managed_fields_mut().clear();
    job.spec = None;
}

/// What a run reads of a pod is its owner, phase and containers' termination messages (and
/// the containers' order, for which message is the result).
fn trim_pod(pod: &mut Pod) {
    pod.managed_fields_mut().clear();
    pod.annotations_mut().clear();
    if let Some(spec) = pod.spec.as_mut() {
        let containers = std::mem::take(&mut spec.containers);
        *spec = k8s_openapi::api::core::v1::PodSpec {
            containers: containers
                .into_iter()
                .map(|c| k8s_openapi::api::core::v1::Container {
                    name: c.name,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
    }
    if let Some(status) = pod.status.as_mut() {
        let keep = k8s_openapi::api::core::v1::PodStatus {
            phase: status.phase.take(),
            container_statuses: status.container_statuses.take(),
            ..Default::default()
        };
        *status = keep;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(name: &str, status: serde_json::Value) -> Job {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "team", "labels": {LABEL_NAME: "report"}}, "status": status})).unwrap()
    }

    /// A watch over one cluster-wide store, and the writer that plays the API server's events.
    fn world() -> (Arc<JobWatch>, reflector::store::Writer<Job>) {
        let (w, jobs, _) = world_with_pods();
        (w, jobs)
    }

    fn world_with_pods() -> (
        Arc<JobWatch>,
        reflector::store::Writer<Job>,
        reflector::store::Writer<Pod>,
    ) {
        let (jobs, job_writer) = reflector::store::<Job>();
        let (pods, pod_writer) = reflector::store::<Pod>();
        (Arc::new(JobWatch::over(None, jobs, pods)), job_writer, pod_writer)
    }

    fn send(w: &JobWatch, writer: &mut reflector::store::Writer<Job>, e: watcher::Event<Job>) {
        writer.apply_watcher_event(&e);
        w.observe(0, Kind::Jobs, &e);
    }

    fn send_pod(w: &JobWatch, writer: &mut reflector::store::Writer<Pod>, e: watcher::Event<Pod>) {
        writer.apply_watcher_event(&e);
        w.observe(0, Kind::Pods, &e);
    }

    fn listed(w: &JobWatch, writer: &mut reflector::store::Writer<Job>, jobs: Vec<Job>) {
        send(w, writer, watcher::Event::Init);
        for j in jobs {
            send(w, writer, watcher::Event::InitApply(j));
        }
        send(w, writer, watcher::Event::InitDone);
    }

    fn pods_listed(w: &JobWatch, writer: &mut reflector::store::Writer<Pod>, pods: Vec<Pod>) {
        send_pod(w, writer, watcher::Event::Init);
        for p in pods {
            send_pod(w, writer, watcher::Event::InitApply(p));
        }
        send_pod(w, writer, watcher::Event::InitDone);
    }

    fn pod(name: &str, job: &str, job_uid: &str, phase: &str) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": "team",
            "labels": {LABEL_NAME: "report"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job, "uid": job_uid, "controller": true}]},
            "status": {"phase": phase}}))
        .unwrap()
    }

    fn done() -> serde_json::Value {
        json!({"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1})
    }

    async fn woken(sub: &mut Subscription) -> bool {
        tokio::time::timeout(Duration::from_millis(50), sub.rx.changed())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn before_the_first_list_the_watch_knows_nothing() {
        let (w, mut writer) = world();
        let mut sub = w.subscribe("team", "report-1");
        assert_eq!(sub.seen(), Seen::Unknown);
        listed(&w, &mut writer, vec![]);
        assert_eq!(sub.seen(), Seen::Absent);
    }

    #[tokio::test]
    async fn a_late_subscriber_sees_a_job_that_completed_before_it_subscribed() {
        let (w, mut writer) = world();
        listed(&w, &mut writer, vec![]);
        send(&w, &mut writer, watcher::Event::Apply(job("report-1", done())));
        let mut sub = w.subscribe("team", "report-1");
        let Seen::Present(j) = sub.seen() else {
            panic!("the store has it")
        };
        assert_eq!(
            super::super::job::state(&j),
            super::super::job::JobState::Succeeded
        );
    }

    #[tokio::test]
    async fn a_waiter_wakes_for_its_own_job_only() {
        let (w, mut writer) = world();
        listed(&w, &mut writer, vec![job("report-1", json!({"active": 1}))]);
        let mut mine = w.subscribe("team", "report-1");
        let mut other = w.subscribe("team", "report-2");
        mine.seen();
        other.seen();
        send(&w, &mut writer, watcher::Event::Apply(job("report-1", done())));
        assert!(woken(&mut mine).await);
        assert!(!woken(&mut other).await, "another Job's event wakes nobody else");
        assert!(matches!(mine.seen(), Seen::Present(j) if j.status.as_ref().unwrap().succeeded == Some(1)));
    }

    #[tokio::test]
    async fn a_deleted_job_ends_the_wait_as_absent() {
        let (w, mut writer) = world();
        let running = job("report-1", json!({"active": 1}));
        listed(&w, &mut writer, vec![running.clone()]);
        let mut sub = w.subscribe("team", "report-1");
        assert!(matches!(sub.seen(), Seen::Present(_)));
        send(&w, &mut writer, watcher::Event::Delete(running));
        assert!(woken(&mut sub).await);
        assert_eq!(sub.seen(), Seen::Absent);
    }

    #[tokio::test]
    async fn a_relist_after_a_410_loses_nothing_and_wakes_every_waiter() {
        let (w, mut writer) = world();
        listed(
            &w,
            &mut writer,
            vec![
                job("report-1", json!({"active": 1})),
                job("report-2", json!({"active": 1})),
            ],
        );
        let mut one = w.subscribe("team", "report-1");
        let mut two = w.subscribe("team", "report-2");
        one.seen();
        two.seen();
        // the watch lost events (410 Gone) while report-1 completed and report-2 was deleted
        listed(&w, &mut writer, vec![job("report-1", done())]);
        assert!(woken(&mut one).await && woken(&mut two).await);
        assert!(matches!(one.seen(), Seen::Present(j) if j.status.as_ref().unwrap().succeeded == Some(1)));
        assert_eq!(two.seen(), Seen::Absent);
    }

    #[tokio::test]
    async fn the_last_subscription_gone_forgets_the_job() {
        let (w, _writer) = world();
        let a = w.subscribe("team", "report-1");
        let b = w.subscribe("team", "report-1");
        drop(a);
        assert_eq!(w.waiters.lock().unwrap().len(), 1);
        drop(b);
        assert!(w.waiters.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_namespace_outside_the_watched_ones_is_unknown() {
        let (store, mut writer) = reflector::store::<Job>();
        let (pods, _) = reflector::store::<Pod>();
        let w = Arc::new(JobWatch::over(Some("team".into()), store, pods));
        listed(&w, &mut writer, vec![]);
        assert_eq!(w.subscribe("team", "x").seen(), Seen::Absent);
        assert_eq!(w.subscribe("other", "x").seen(), Seen::Unknown);
    }

    #[test]
    fn the_cache_keeps_metadata_and_status_only() {
        let mut j: Job = serde_json::from_value(json!({"metadata": {"name": "x", "managedFields": [{"manager": "m"}]},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}, "status": {"active": 1}}))
        .unwrap();
        trim_job(&mut j);
        assert!(j.spec.is_none() && j.metadata.managed_fields.unwrap_or_default().is_empty());
        assert_eq!(j.status.unwrap().active, Some(1));
    }

    #[tokio::test]
    async fn a_pod_of_the_job_wakes_its_waiter_and_is_found_by_the_job_uid() {
        let (w, mut jobs, mut pods) = world_with_pods();
        listed(&w, &mut jobs, vec![job("report-1", json!({"active": 1}))]);
        let mut mine = w.subscribe("team", "report-1");
        assert_eq!(mine.pods("uid-1"), None, "the pod watch has not listed yet");
        pods_listed(&w, &mut pods, vec![]);
        assert_eq!(mine.pods("uid-1"), Some(vec![]));
        let mut other = w.subscribe("team", "report-2");
        mine.seen();
        other.seen();
        let done = pod("report-1-abcde", "report-1", "uid-1", "Succeeded");
        send_pod(&w, &mut pods, watcher::Event::Apply(done));
        send_pod(
            &w,
            &mut pods,
            watcher::Event::Apply(pod("report-2-fghij", "report-2", "uid-2", "Running")),
        );
        assert!(woken(&mut mine).await);
        let found = mine.pods("uid-1").unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].name_any(), "report-1-abcde");
        // a pod of another Job of the same name (deleted and made again) is not this one's
        assert!(mine.pods("uid-old").unwrap().is_empty());
        assert!(woken(&mut other).await, "report-2's pod woke report-2's waiter");
    }

    #[test]
    fn a_pod_without_a_controlling_job_wakes_nobody() {
        let mut p = pod("stray", "report-1", "uid-1", "Succeeded");
        p.metadata.owner_references.as_mut().unwrap()[0].controller = Some(false);
        assert!(Owner::from(&p).0.is_none());
    }

    #[test]
    fn the_pod_cache_keeps_owner_phase_and_termination_messages() {
        let mut p: Pod = serde_json::from_value(json!({"metadata": {"name": "x", "annotations": {"a": "b"}},
            "spec": {"containers": [{"name": "main", "image": "i", "env": [{"name": "A", "value": "1"}]}], "volumes": [{"name": "v", "emptyDir": {}}]},
            "status": {"phase": "Succeeded", "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [{"name": "main", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "message": "{\"n\": 3}"}}}]}}))
        .unwrap();
        trim_pod(&mut p);
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.containers[0].name, "main");
        assert!(spec.containers[0].image.is_none() && spec.volumes.is_none());
        assert!(p.metadata.annotations.unwrap_or_default().is_empty());
        let status = p.status.unwrap();
        assert_eq!(status.phase.as_deref(), Some("Succeeded"));
        assert!(status.conditions.is_none());
        let message = status.container_statuses.unwrap()[0]
            .state
            .clone()
            .unwrap()
            .terminated
            .unwrap()
            .message;
        assert_eq!(message.as_deref(), Some("{\"n\": 3}"));
    }
}
