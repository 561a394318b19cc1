//! The DurableJob controller: watches the resources and reconciles each one into a Temporal
//! schedule, behind a finalizer. The pipeline and where each step lives are described once, in
//! the README's "Architecture" section; `reconcile` is its driver. This file holds the watches,
//! this controller's context (over the shared [`Core`]), and starts the DurableJobCalendar
//! controller ([`crate::calendar`]) and the sweep beside it.

use std::{collections::HashMap, sync::Arc, sync::Mutex, time::Duration};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::{apps::v1::Deployment, batch::v1::Job};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::ListParams,
    core::DeserializeGuard,
    runtime::{
        Controller, WatchStreamExt,
        controller::Action,
        finalizer::{Event as Finalizer, finalizer},
        reflector::{self, ObjectRef},
        watcher,
    },
};
use tracing::{info, warn};

use crate::api::{DurableJob, DurableJobCalendar, FINALIZER};
use crate::calendar;
use crate::health::Readiness;
use crate::operator::{Core, Error, log_outcome};
use crate::reason::Reason;
use crate::temporal::Schedules;
use crate::util::watch::resilient;

pub(crate) mod build;
pub(crate) mod created;
pub(crate) mod follow;
pub(crate) mod io;
pub(crate) mod missed;
pub(crate) mod pause;
pub(crate) mod plan;
pub(crate) mod reconcile;
pub(crate) mod retry;
pub mod rollout;
pub(crate) mod run_events;
pub(crate) mod status;
pub(crate) mod streak;
pub(crate) mod tenancy;
pub(crate) mod wake;

#[cfg(test)]
mod tests;

/// The DurableJob controller's context: the shared [`Core`] (reached through it, as
/// `ctx.client`, `ctx.schedules` …) and what only this controller keeps: the per-resource
/// backoff and the caches of worker Deployments and calendars.
pub struct Context<S: Schedules> {
    core: Arc<Core<S>>,
    failures: Mutex<HashMap<ObjectRef<DurableJob>, u32>>,
    /// The worker Deployments the controllers watch, one cache per watched scope.
    workers: std::sync::RwLock<Vec<ScopedCache<Deployment>>>,
    /// The DurableJobCalendars, one cache per watched scope.
    calendars: std::sync::RwLock<Vec<ScopedCache<DurableJobCalendar>>>,
    /// Why each DurableJob was woken, and which ones were looked at in full.
    pub(crate) wakes: follow::Wakes,
}

impl<S: Schedules> std::ops::Deref for Context<S> {
    type Target = Core<S>;

    fn deref(&self) -> &Core<S> {
        &self.core
    }
}

/// A watch cache of one kind in one scope (a namespace, or all), and whether it has listed
/// them all yet.
pub(crate) struct ScopedCache<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: reflector::Store<K>,
    namespace: Option<String>,
    ready: Arc<std::sync::atomic::AtomicBool>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Clone for ScopedCache<K> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            namespace: self.namespace.clone(),
            ready: self.ready.clone(),
        }
    }
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> ScopedCache<K> {
    fn new(store: reflector::Store<K>, namespace: Option<&str>) -> Self {
        Self {
            store,
            namespace: namespace.map(str::to_string),
            ready: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// Marks the cache listed once its first list is in.
    async fn mark_ready_when_listed(self) {
        if self.store.wait_until_ready().await.is_ok() {
            self.ready.store(true, std::sync::atomic::Ordering::Release);
        }
    }
}

/// The store of the cache covering `namespace`, once it has listed; `None` when there is none
/// yet (not started, or a test).
fn synced<K: Resource<DynamicType = ()> + Clone + 'static>(
    caches: &std::sync::RwLock<Vec<ScopedCache<K>>>,
    namespace: &str,
) -> Option<reflector::Store<K>> {
    let caches = caches.read().expect("cache lock");
    let cache = caches
        .iter()
        .find(|c| c.namespace.as_deref().is_none_or(|n| n == namespace))?;
    cache
        .ready
        .load(std::sync::atomic::Ordering::Acquire)
        .then(|| cache.store.clone())
}

/// `namespace/name` as the cache covering that namespace has it.
fn lookup<K: Resource<DynamicType = ()> + Clone + 'static>(
    caches: &std::sync::RwLock<Vec<ScopedCache<K>>>,
    namespace: &str,
    name: &str,
) -> Cached<K> {
    match synced(caches, namespace) {
        Some(store) => Cached::Known(store.get(&ObjectRef::new(name).within(namespace))),
        None => Cached::Unknown,
    }
}

/// Where an object was looked up.
pub(crate) enum Cached<K> {
    /// The cache covers the namespace and has listed: this is the answer.
    Known(Option<Arc<K>>),
    /// No synced cache for the namespace (not started yet, or a test): ask the API server.
    Unknown,
}

impl<S: Schedules> Context<S> {
    pub fn new(core: Arc<Core<S>>) -> Self {
        Self {
            core,
            failures: Mutex::new(HashMap::new()),
            workers: std::sync::RwLock::new(Vec::new()),
            calendars: std::sync::RwLock::new(Vec::new()),
            wakes: follow::Wakes::default(),
        }
    }

    /// The shared core, for the sibling controllers started beside this one.
    pub fn core(&self) -> &Arc<Core<S>> {
        &self.core
    }

    /// The worker Deployment `namespace/name` as the watch cache has it.
    pub(crate) fn cached_worker(&self, namespace: &str, name: &str) -> Cached<Deployment> {
        lookup(&self.workers, namespace, name)
    }

    /// The worker Deployments in `namespace` carrying `label=value`, as the watch cache has
    /// them; `None` when no synced cache covers the namespace.
    pub(crate) fn cached_workers_labelled(
        &self,
        namespace: &str,
        label: &str,
        value: &str,
    ) -> Option<Vec<Arc<Deployment>>> {
        let store = synced(&self.workers, namespace)?;
        let found = store
            .state()
            .into_iter()
            .filter(|d| d.metadata.namespace.as_deref() == Some(namespace))
            .filter(|d| d.labels().get(label).map(String::as_str) == Some(value))
            .collect();
        Some(found)
    }

    /// The DurableJobCalendar `namespace/name` as the watch cache has it.
    pub(crate) fn cached_calendar(&self, namespace: &str, name: &str) -> Cached<DurableJobCalendar> {
        lookup(&self.calendars, namespace, name)
    }

    /// 1s, 2s, 4s … up to 60s for consecutive failures of one resource.
    pub fn next_backoff(&self, dj: &DurableJob) -> Duration {
        let mut failures = self.failures.lock().expect("backoff lock");
        let n = failures.entry(ObjectRef::from_obj(dj)).or_insert(0);
        *n = n.saturating_add(1);
        Duration::from_secs(1u64 << (*n - 1).min(6)).min(Duration::from_secs(60))
    }

    pub fn reset_backoff(&self, dj: &DurableJob) {
        self.failures
            .lock()
            .expect("backoff lock")
            .remove(&ObjectRef::from_obj(dj));
    }
}

async fn reconcile<S: Schedules>(
    obj: Arc<DeserializeGuard<DurableJob>>,
    ctx: Arc<Context<S>>,
) -> Result<Action, Error> {
    let _slot = ctx.slot().await;
    let running = ctx.metrics.start(crate::metrics::DURABLEJOB_CONTROLLER);
    let result = match &obj.0 {
        Err(invalid) => {
            // The CRD schema should make this impossible; an outdated CRD can still let it in.
            warn!(name = ?invalid.metadata.name, namespace = ?invalid.metadata.namespace, error = %invalid.error,
                "DurableJob cannot be read; is the installed CRD older than the operator? (durablejob crd | kubectl apply -f -)");
            ctx.metrics.failure(Reason::UnreadableObject);
            Ok(Action::await_change())
        }
        Ok(dj) => {
            let api: Api<DurableJob> =
                Api::namespaced(ctx.client.clone(), &dj.namespace().unwrap_or_default());
            let ctx2 = ctx.clone();
            finalizer(&api, FINALIZER, Arc::new(dj.clone()), |event| async move {
                match event {
                    Finalizer::Apply(dj) => reconcile::apply(dj, ctx2).await,
                    Finalizer::Cleanup(dj) => reconcile::cleanup(dj, ctx2).await,
                }
            })
            .await
            .map_err(|e| Error::Finalizer(Box::new(e)))
        }
    };
    running.done(crate::metrics::result_of(&result));
    result
}

fn error_policy<S: Schedules>(
    obj: Arc<DeserializeGuard<DurableJob>>,
    error: &Error,
    ctx: Arc<Context<S>>,
) -> Action {
    let delay = match &obj.0 {
        Ok(dj) => ctx.next_backoff(dj),
        Err(_) => Duration::from_secs(60),
    };
    if error.reason() == Reason::Deleting {
        // a wait that ends by itself, said in the status: not a failure to warn about
        tracing::info!(name = ?obj.meta().name, namespace = ?obj.meta().namespace, waiting = %error, retry_in = ?delay, "deletion waits");
        return Action::requeue(delay.min(Duration::from_secs(15)));
    }
    ctx.metrics.failure(error.reason());
    warn!(name = ?obj.meta().name, namespace = ?obj.meta().namespace, error = %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Fails with a message saying how to install the CRDs when one is missing (DurableJob, or
/// DurableJobCalendar after an upgrade that kept the old CRDs). With watched namespaces it
/// asks in the first of them, so namespace-scoped Roles are enough.
pub async fn check_crd_installed(client: &Client, namespaces: &[String]) -> Result<(), String> {
    let ns = namespaces.first().map(String::as_str);
    check_listable(
        scoped::<DurableJob>(client, ns),
        DurableJob::plural(&()),
        "DurableJob",
        ns,
    )
    .await?;
    check_listable(
        scoped::<DurableJobCalendar>(client, ns),
        DurableJobCalendar::plural(&()),
        "DurableJobCalendar",
        ns,
    )
    .await
}

async fn check_listable<K>(
    api: Api<K>,
    plural: std::borrow::Cow<'_, str>,
    kind: &str,
    ns: Option<&str>,
) -> Result<(), String>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Err(format!(
            "the {kind} CRD ({plural}.{}) is not installed; install the CRDs with `durablejob crd | kubectl apply --server-side -f -` or the durablejob-crds Helm chart",
            crate::api::GROUP
        )),
        Err(kube::Error::Api(s)) if s.code == 403 => Err(format!(
            "the operator may not list {kind}s{}: {}; bind it to the operator ClusterRole (or, with --watch-namespaces, a Role in each namespace) as the Helm chart does",
            ns.map(|n| format!(" in namespace {n}")).unwrap_or_default(),
            s.message
        )),
        Err(e) => Err(format!("cannot list {kind}s: {e}")),
    }
}

/// What people change on a DurableJob; status is the operator's own.
fn changed_by_people(dj: &DeserializeGuard<DurableJob>) -> Option<u64> {
    use kube::runtime::{Predicate, predicates};
    predicates::generation
        .combine(predicates::annotations)
        .combine(predicates::labels)
        .combine(predicates::finalizers)
        .hash_property(dj)
}

/// What of a run's Job its DurableJob follows: whether it ended (a Complete or Failed
/// condition). The first sight of a Job passes too, and a relist after a 410 passes only what
/// changed meanwhile.
fn job_ended(job: &Job) -> Option<u64> {
    let ended = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| matches!(c.type_.as_str(), "Complete" | "Failed") && c.status == "True")
        });
    Some(u64::from(ended))
}

/// The DurableJobs that own `job` (its controller, normally one).
fn owners(job: &Job) -> Vec<follow::Key> {
    let namespace = job.namespace().unwrap_or_default();
    job.owner_references()
        .iter()
        .filter(|o| o.kind == DurableJob::kind(&()) && o.api_version == DurableJob::api_version(&()))
        .map(|o| ObjectRef::new(&o.name).within(&namespace))
        .collect()
}

/// An Api over one namespace, or all.
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// What the cache keeps of a DurableJob: everything but what the operator never reads, the
/// managed fields and kubectl's last-applied copy of the manifest (together often more than
/// the object itself).
pub(crate) fn trim(dj: &mut DeserializeGuard<DurableJob>) {
    if let Ok(dj) = dj.0.as_mut() {
        dj.managed_fields_mut().clear();
        dj.annotations_mut()
            .remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// Runs controllers for the given namespaces (all when empty) until a shutdown signal.
pub async fn run<S: Schedules>(
    core: Arc<Core<S>>,
    namespaces: Vec<String>,
    ready: Readiness,
    collector: crate::metrics::resources::DurableJobCollector,
) {
    let ctx = Arc::new(Context::new(core));
    let scopes: Vec<Option<&str>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|n| Some(n.as_str())).collect()
    };
    info!(namespaces = ?namespaces, max_concurrent_reconciles = ctx.max_concurrent_reconciles(), "watching DurableJobs");
    ctx.metrics.max_concurrent(
        crate::metrics::DURABLEJOB_CONTROLLER,
        ctx.max_concurrent_reconciles(),
    );
    ctx.metrics.max_concurrent(
        crate::metrics::HANDOVER_CONTROLLER,
        ctx.max_concurrent_reconciles(),
    );
    // The Jobs and Deployments a DurableJob owns wake it up: a run's Job starting or finishing
    // refreshes its status at once, even for runs triggered outside the schedule.
    let mut sweep_targets = Vec::new();
    let mut controllers = Vec::new();
    for ns in scopes {
        let (api, deployments, jobs) = (
            scoped::<DeserializeGuard<DurableJob>>(&ctx.client, ns),
            scoped::<Deployment>(&ctx.client, ns),
            scoped::<Job>(&ctx.client, ns),
        );
        // Only changes a person (or the handover) makes wake a DurableJob: its spec (the
        // generation, bumped by a deletion too), annotations, labels and finalizers. The
        // operator's own status writes do not, so a new object takes two reconciles, not three.
        let (reader, writer) = reflector::store::<DeserializeGuard<DurableJob>>();
        let changes = resilient(watcher(api, watcher::Config::default().any_semantic()))
            .modify(trim)
            .reflect(writer)
            .applied_objects()
            .predicate_filter(changed_by_people, Default::default());
        // The worker Deployments are cached (trimmed of managed fields): a reconcile reads the
        // cache instead of GETting `<name>-worker`, which for most DurableJobs does not exist.
        let (worker_reader, worker_writer) = reflector::store::<Deployment>();
        let worker_cache = ScopedCache::new(worker_reader, ns);
        ctx.workers
            .write()
            .expect("worker caches lock")
            .push(worker_cache.clone());
        // The calendars are cached too, and a calendar's edit (or its disappearance) wakes
        // every DurableJob in its namespace that lists it in spec.schedule.excludeCalendars.
        let (calendar_reader, calendar_writer) = reflector::store::<DurableJobCalendar>();
        let calendar_cache = ScopedCache::new(calendar_reader, ns);
        ctx.calendars
            .write()
            .expect("calendar caches lock")
            .push(calendar_cache.clone());
        let calendar_changes = resilient(watcher(
            scoped::<DurableJobCalendar>(&ctx.client, ns),
            watcher::Config::default().any_semantic(),
        ))
        .modify(|c: &mut DurableJobCalendar| c.managed_fields_mut().clear())
        .reflect(calendar_writer)
        .touched_objects()
        .predicate_filter(
            {
                use kube::runtime::{Predicate, predicates};
                predicates::generation.combine(predicates::finalizers)
            },
            Default::default(),
        );
        let referencing = reader.clone();
        let worker_changes = resilient(watcher(
            deployments,
            watcher::Config::default()
                .labels(crate::controller::build::worker::WORKER_LABEL)
                .any_semantic(),
        ))
        .modify(|d: &mut Deployment| d.managed_fields_mut().clear())
        .reflect(worker_writer)
        .touched_objects();
        // the sweep wakes the DurableJobs whose schedules the ListSchedules pages show changed
        let (wake, woken) = tokio::sync::mpsc::channel(1024);
        let noted = ctx.clone();
        let woken = futures::stream::unfold(woken, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) })
            .inspect(move |r: &follow::Key| noted.wakes.by_change(r.clone()));
        // A run's Job wakes its DurableJob to follow the run twice: when it appears and when it
        // ended, not at each of the Job controller's status updates between; such a wake alone
        // reads the runs without describing the schedule (see `follow`).
        let noted = ctx.clone();
        let job_changes = resilient(watcher(
            jobs,
            watcher::Config::default()
                .labels(crate::runner::job::LABEL_NAME)
                .any_semantic(),
        ))
        .touched_objects()
        .predicate_filter(job_ended, Default::default())
        .inspect_ok(move |job| {
            for owner in owners(job) {
                noted.wakes.by_run(owner);
            }
        });
        let controller = Controller::for_stream(changes, reader)
            .reconcile_on(woken)
            .with_config(
                kube::runtime::controller::Config::default().concurrency(ctx.max_concurrent_reconciles()),
            )
            .owns_stream(worker_changes)
            .watches_stream(calendar_changes, move |cal: DurableJobCalendar| {
                calendar::users(&referencing, &cal)
            })
            .owns_stream(job_changes);
        let store = controller.store();
        collector.watch(store.clone());
        let calendars = calendar::run(ctx.core().clone(), scoped(&ctx.client, ns), store.clone());
        sweep_targets.push(io::sweep::Target {
            store: store.clone(),
            wake,
        });
        let ready = ready.clone();
        let ctx = ctx.clone();
        controllers.push(async move {
            let wait_ready = async move {
                let _ = store.wait_until_ready().await;
                ready.set_ready();
            };
            let workers_ready = worker_cache.mark_ready_when_listed();
            let calendars_ready = calendar_cache.mark_ready_when_listed();
            let drive = controller
                .shutdown_on_signal()
                .run(reconcile, error_policy, ctx)
                .for_each(|outcome| log_outcome("DurableJob", outcome));
            tokio::join!(wait_ready, workers_ready, calendars_ready, drive, calendars);
        });
    }
    let sweep = io::sweep::run(&ctx.schedules, sweep_targets, ctx.settings.resync_interval);
    // the controllers end on a shutdown signal; the sweep never ends by itself
    tokio::select! {
        _ = futures::future::join_all(controllers) => {}
        _ = sweep => {}
    }
}
