//! One shared watch of the Jobs the runner made, feeding every waiting activity: a run learns
//! that its Job finished from the watch event the API server sends anyway, not from a GET per
//! Job per second. One watch per scope (every namespace, or each of `--watch-namespaces`),
//! cached in a kube-runtime reflector trimmed to what a run reads (metadata and status), and a
//! change counter per waited-on Job so a waiter wakes only for its own Job, or when the watch
//! relisted (after a 410, a restart of the watch), when every waiter looks again.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use kube::{
    Api, Client, ResourceExt,
    runtime::{
        WatchStreamExt,
        reflector::{self, ObjectRef, Store},
        watcher,
    },
};
use tokio::sync::watch;
use tracing::warn;

use super::job::LABEL_NAME;

type Key = (String, String);

/// The Jobs of the runner as the watch last saw them, and who waits for which.
pub struct JobWatch {
    scopes: Vec<Scope>,
    waiters: Mutex<HashMap<Key, watch::Sender<u64>>>,
}

/// One watched scope: its cache, and whether its watch has listed once.
struct Scope {
    /// `None`: every namespace.
    namespace: Option<String>,
    store: Store<Job>,
    listed: AtomicBool,
}

impl Scope {
    fn new(namespace: Option<String>, store: Store<Job>) -> Self {
        Self {
            namespace,
            store,
            listed: AtomicBool::new(false),
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

impl JobWatch {
    /// Watches the runner's Jobs in each scope, from now until the process ends.
    pub fn start(client: &Client, scopes: &[Option<String>]) -> Arc<Self> {
        let mut writers = vec![];
        let mut stores = vec![];
        for scope in scopes {
            let (store, writer) = reflector::store::<Job>();
            stores.push(Scope::new(scope.clone(), store));
            writers.push((scope.clone(), writer));
        }
        let this = Arc::new(Self {
            scopes: stores,
            waiters: Mutex::default(),
        });
        for (index, (scope, writer)) in writers.into_iter().enumerate() {
            let api: Api<Job> = match &scope {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            };
            let config = watcher::Config::default().labels(LABEL_NAME).any_semantic();
            let watch = this.clone();
            let events = crate::util::watch::resilient(watcher(api, config))
                .modify(trim)
                .reflect(writer);
            tokio::spawn(async move {
                futures::pin_mut!(events);
                while let Some(event) = events.next().await {
                    match event {
                        Ok(e) => watch.observe(index, &e),
                        Err(e) => {
                            warn!(namespace = scope.as_deref().unwrap_or("*"), error = %e, "the watch of the runner's Jobs failed; it restarts with backoff and relists")
                        }
                    }
                }
            });
        }
        this
    }

    /// A watch over one store fed by someone else (tests feed it event by event).
    #[cfg(test)]
    fn over(namespace: Option<String>, store: Store<Job>) -> Self {
        Self {
            scopes: vec![Scope::new(namespace, store)],
            waiters: Mutex::default(),
        }
    }

    /// Wakes who waits for the Job an event of scope `index` is about; a relist wakes everyone,
    /// since any Job may have changed or gone while the watch was away.
    fn observe(&self, index: usize, event: &watcher::Event<Job>) {
        if matches!(event, watcher::Event::InitDone) {
            self.scopes[index].listed.store(true, Ordering::Release);
        }
        let waiters = self.waiters.lock().expect("waiters lock");
        match event {
            watcher::Event::Apply(job) | watcher::Event::Delete(job) => {
                if let Some(tx) = waiters.get(&key(job)) {
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

    /// Follows Job `namespace/name`: [`Subscription::seen`] and [`Subscription::changed`].
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

    fn seen(&self, namespace: &str, name: &str) -> Seen {
        let scope = self
            .scopes
            .iter()
            .find(|s| s.namespace.as_deref().is_none_or(|n| n == namespace));
        let Some(scope) = scope.filter(|s| s.listed.load(Ordering::Acquire)) else {
            return Seen::Unknown;
        };
        match scope.store.get(&ObjectRef::new(name).within(namespace)) {
            Some(job) => Seen::Present(job),
            None => Seen::Absent,
        }
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

    /// Waits until the watch saw a change of the Job (or relisted) since the last
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

fn key(job: &Job) -> Key {
    (job.namespace().unwrap_or_default(), job.name_any())
}

/// What a run reads of a Job is its metadata and status: the cache drops the rest (the pod
/// template is most of a Job's size).
fn trim(job: &mut Job) {
    job.managed_fields_mut().clear();
    job.spec = None;
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
        let (store, writer) = reflector::store::<Job>();
        (Arc::new(JobWatch::over(None, store)), writer)
    }

    fn send(w: &JobWatch, writer: &mut reflector::store::Writer<Job>, e: watcher::Event<Job>) {
        writer.apply_watcher_event(&e);
        w.observe(0, &e);
    }

    fn listed(w: &JobWatch, writer: &mut reflector::store::Writer<Job>, jobs: Vec<Job>) {
        send(w, writer, watcher::Event::Init);
        for j in jobs {
            send(w, writer, watcher::Event::InitApply(j));
        }
        send(w, writer, watcher::Event::InitDone);
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
        let w = Arc::new(JobWatch::over(Some("team".into()), store));
        listed(&w, &mut writer, vec![]);
        assert_eq!(w.subscribe("team", "x").seen(), Seen::Absent);
        assert_eq!(w.subscribe("other", "x").seen(), Seen::Unknown);
    }

    #[test]
    fn the_cache_keeps_metadata_and_status_only() {
        let mut j: Job = serde_json::from_value(json!({"metadata": {"name": "x", "managedFields": [{"manager": "m"}]},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}, "status": {"active": 1}}))
        .unwrap();
        trim(&mut j);
        assert!(j.spec.is_none() && j.metadata.managed_fields.unwrap_or_default().is_empty());
        assert_eq!(j.status.unwrap().active, Some(1));
    }
}
