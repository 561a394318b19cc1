//! What every controller of the operator shares: the [`Core`] (the Kubernetes client, the
//! Temporal schedules, the settings, Events, metrics and the reconcile slots), the [`Error`]
//! they return, and the field manager they write with. The DurableJob controller
//! ([`crate::controller`]), the DurableJobCalendar controller ([`crate::calendar`]) and the
//! CronJob handover ([`crate::handover`]) are siblings over it, each with its own context.

use std::sync::Arc;

use kube::{
    Api, Client, Resource,
    api::{Patch, PatchParams},
    runtime::{
        controller::{self, Action},
        events::Reporter,
        reflector::ObjectRef,
    },
};
use tracing::{debug, error};

use crate::metrics::Metrics;
use crate::reason::Reason;
use crate::settings::Settings;
use crate::temporal::{Schedules, TemporalError};

pub(crate) mod events;

/// Field manager of every write the operator makes.
pub(crate) const FIELD_MANAGER: &str = "durablejob-operator";

/// Errors of a reconcile, in any of the controllers; [`Error::reason`] is their metric label.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API request failed: {0}")]
    Kube(#[source] kube::Error),
    #[error(transparent)]
    Temporal(#[from] TemporalError),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("a DurableJob must be namespaced")]
    NotNamespaced,
    #[error("invalid object: {0}")]
    Invalid(String),
    #[error("{0}")]
    CalendarInUse(String),
    /// A deletion waits on something that ends by itself (Temporal forgetting stopped workers).
    #[error("{0}")]
    Waiting(String),
}

impl Error {
    /// The reason this error is counted under: the cause, not the finalizer that wrapped it.
    pub fn reason(&self) -> Reason {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::Kube(_) => Reason::KubernetesError,
            Error::Temporal(e) => e.reason(),
            Error::Finalizer(f) => match f.as_ref() {
                F::ApplyFailed(e) | F::CleanupFailed(e) => e.reason(),
                F::AddFinalizer(_) | F::RemoveFinalizer(_) => Reason::KubernetesError,
                F::UnnamedObject | F::InvalidFinalizer => Reason::UnreadableObject,
            },
            Error::NotNamespaced => Reason::NotNamespaced,
            Error::Invalid(_) => Reason::UnreadableObject,
            Error::CalendarInUse(_) => Reason::CalendarInUse,
            Error::Waiting(_) => Reason::Deleting,
        }
    }
}

/// Writes `status` as the operator's part of `obj`'s status subresource (server-side apply,
/// forced: the operator owns the status of what it reconciles).
pub(crate) async fn apply_status<K>(
    client: &Client,
    obj: &K,
    status: &impl serde::Serialize,
) -> Result<(), Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &obj.meta().namespace.clone().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch_status(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::Kube)?;
    Ok(())
}

/// Default `--max-concurrent-reconciles`: the Temporal dev server's CreateSchedule rate stops
/// growing past ~16 concurrent calls on this project's 2-core machines (only latency grows).
pub const DEFAULT_MAX_CONCURRENT_RECONCILES: u16 = 16;

/// Shared by every controller: what talks to Kubernetes and Temporal, what it reports
/// through, and the reconcile slots they all draw from.
pub struct Core<S: Schedules> {
    pub client: Client,
    pub schedules: S,
    pub settings: Settings,
    pub recorder: events::Events,
    pub metrics: Arc<Metrics>,
    /// Reconciles in flight across every controller and watched namespace.
    limit: Arc<tokio::sync::Semaphore>,
    max_concurrent: u16,
}

impl<S: Schedules> Core<S> {
    pub fn new(client: Client, schedules: S, settings: Settings, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: "durablejob-operator".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: events::Events::new(client.clone(), reporter),
            client,
            schedules,
            settings,
            metrics,
            limit: Arc::new(tokio::sync::Semaphore::new(
                DEFAULT_MAX_CONCURRENT_RECONCILES.into(),
            )),
            max_concurrent: DEFAULT_MAX_CONCURRENT_RECONCILES,
        }
    }

    /// At most `n` reconciles at a time, across controllers and namespaces.
    pub fn with_max_concurrent_reconciles(mut self, n: u16) -> Self {
        let n = n.max(1);
        self.limit = Arc::new(tokio::sync::Semaphore::new(n.into()));
        self.max_concurrent = n;
        self
    }

    pub fn max_concurrent_reconciles(&self) -> u16 {
        self.max_concurrent
    }

    /// Waits for a reconcile slot.
    pub async fn slot(&self) -> tokio::sync::OwnedSemaphorePermit {
        self.limit
            .clone()
            .acquire_owned()
            .await
            .expect("the reconcile semaphore is never closed")
    }
}

/// One item of what a kube-runtime controller yields, logged. A failed reconcile was reported
/// by the controller's error policy already; a reconcile due for an object deleted meanwhile
/// (a change of something it owned, a wake-up) is expected; anything else (the watch, the
/// queue) is an error worth a line.
pub(crate) async fn log_outcome<K, E, Q>(
    kind: &'static str,
    outcome: Result<(ObjectRef<K>, Action), controller::Error<E, Q>>,
) where
    K: Resource,
    E: std::error::Error + 'static,
    Q: std::error::Error + 'static,
{
    match outcome {
        Ok(_) | Err(controller::Error::ReconcilerFailed(..)) => {}
        Err(controller::Error::ObjectNotFound(object)) => {
            debug!(%object, "a reconcile was due for a {kind} that is gone")
        }
        Err(other) => error!(error = %other, "{kind} controller error"),
    }
}
