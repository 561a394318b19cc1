//! The sweep's I/O: pages through `ListSchedules` in each Temporal namespace the cached
//! DurableJobs use, and sends the ones [`wake::changed`] picks to their controller's reconcile
//! queue. One sweep serves every watched namespace, so each Temporal namespace is listed once.

use std::{collections::HashMap, sync::Arc, time::Duration};

use kube::{
    core::DeserializeGuard,
    runtime::reflector::{ObjectRef, Store},
};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::api::DurableJob;
use crate::controller::wake::{self, Listed};
use crate::temporal::{Schedules, TemporalError};

/// A controller's cache, and the queue that wakes its DurableJobs.
pub(crate) struct Target {
    pub store: Store<DeserializeGuard<DurableJob>>,
    pub wake: mpsc::Sender<ObjectRef<DeserializeGuard<DurableJob>>>,
}

/// The most pages one namespace's listing reads (a thousand schedules a page).
const MAX_PAGES: usize = 1000;

/// Every schedule of `namespace`: id → listing.
pub(crate) async fn list_namespace<S: Schedules>(
    schedules: &S,
    namespace: &str,
) -> Result<HashMap<String, String>, TemporalError> {
    let mut all = HashMap::new();
    let mut token = Vec::new();
    for _ in 0..MAX_PAGES {
        let page = schedules.list_page(namespace, &token).await?;
        all.extend(page.schedules.into_iter().map(|s| (s.id, s.listing)));
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        token = page.next_page_token;
    }
    Err(TemporalError::Other(format!(
        "namespace {namespace} lists more than {MAX_PAGES} pages of schedules; the sweep skips it and each DurableJob's own describe checks it"
    )))
}

/// One sweep: lists, compares, wakes. Returns how many DurableJobs it woke.
pub(crate) async fn sweep_once<S: Schedules>(schedules: &S, targets: &[Target]) -> usize {
    let cached: Vec<Vec<Arc<DeserializeGuard<DurableJob>>>> =
        targets.iter().map(|t| t.store.state()).collect();
    let namespaces = wake::namespaces(cached.iter().flatten().filter_map(|g| g.0.as_ref().ok()));
    let mut listed = Listed::new();
    for ns in namespaces {
        match list_namespace(schedules, &ns).await {
            Ok(ids) => {
                listed.insert(ns, ids);
            }
            Err(e) => {
                warn!(namespace = %ns, error = %e, "cannot list schedules; this sweep skips the namespace")
            }
        }
    }
    let mut woken = 0;
    for (target, djs) in targets.iter().zip(cached) {
        for g in djs {
            if g.0.as_ref().is_ok_and(|dj| wake::changed(dj, &listed)) {
                woken += 1;
                if target.wake.send(ObjectRef::from_obj(&*g)).await.is_err() {
                    return woken; // the controller stopped
                }
            }
        }
    }
    woken
}

/// Sweeps every `every`, the first one `every` after the start (the controllers' first
/// reconciles describe everything anyway), until dropped.
pub(crate) async fn run<S: Schedules>(schedules: &S, targets: Vec<Target>, every: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let woken = sweep_once(schedules, &targets).await;
        debug!(woken, "swept the schedule lists");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::temporal::fake::{Call, FakeSchedules};

    #[tokio::test]
    async fn a_namespace_is_read_page_by_page_to_the_end() {
        let fake = FakeSchedules::default();
        for i in 0..5 {
            fake.insert(
                &crate::desired::schedule::ScheduleLocation {
                    namespace: "default".into(),
                    id: format!("s{i}"),
                },
                crate::temporal::ObservedSchedule {
                    listing: format!("L{i}"),
                    ..crate::temporal::ObservedSchedule::test()
                },
            );
        }
        let all = list_namespace(&fake, "default").await.unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all["s3"], "L3");
        let pages = fake
            .calls()
            .iter()
            .filter(|c| matches!(c, Call::ListPage(_)))
            .count();
        assert_eq!(pages, 3, "the fake's pages hold two schedules");
    }
}
