//! The steady-state check of many schedules at once: every `--resync-interval` the operator
//! pages through `ListSchedules` in each Temporal namespace its DurableJobs use, and wakes only
//! the DurableJobs whose schedule shows something else than at their last describe (their
//! `status.sync.listing`), or is gone. Temporal calls then grow with the pages, not with the
//! resources; what the list does not show (the action, the policies) is checked by each
//! DurableJob's own describe every `--full-resync-interval`.
//!
//! This file is the pure decision; [`crate::controller::io::sweep`] does the listing.

use std::collections::{BTreeSet, HashMap};

use crate::api::DurableJob;

/// What the sweep listed: for each swept Temporal namespace, schedule id → listing. A
/// namespace whose listing failed is absent, and its DurableJobs are left alone.
pub(crate) type Listed = HashMap<String, HashMap<String, String>>;

/// The schedule a settled DurableJob last recorded: (Temporal namespace, id, listing).
fn recorded(dj: &DurableJob) -> Option<(&str, &str, &str)> {
    if dj.metadata.deletion_timestamp.is_some() {
        return None; // the finalizer's own retries look after it
    }
    let s = dj.status.as_ref()?;
    if s.completed || s.observed_generation != dj.metadata.generation {
        return None; // finished, or a reconcile of the new generation is on its way
    }
    let listing = s.sync.as_ref()?.listing.as_deref()?;
    Some((
        s.temporal_namespace.as_deref()?,
        s.schedule_id.as_deref()?,
        listing,
    ))
}

/// The Temporal namespaces to list: those the settled DurableJobs' schedules live in.
pub(crate) fn namespaces<'a>(djs: impl IntoIterator<Item = &'a DurableJob>) -> BTreeSet<String> {
    djs.into_iter()
        .filter_map(recorded)
        .map(|(ns, _, _)| ns.to_string())
        .collect()
}

/// Whether the sweep should wake this DurableJob: its schedule is listed with another listing
/// than it recorded, or not listed at all (deleted in Temporal, or too new for the list yet;
/// one describe tells).
pub(crate) fn changed(dj: &DurableJob, listed: &Listed) -> bool {
    let Some((namespace, id, listing)) = recorded(dj) else {
        return false;
    };
    match listed.get(namespace) {
        None => false,
        Some(schedules) => schedules.get(id).map(String::as_str) != Some(listing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DurableJobStatus, SyncRecord};

    fn dj(listing: Option<&str>) -> DurableJob {
        let mut dj: DurableJob = serde_json::from_value(serde_json::json!({
            "apiVersion": "durablejob.dev/v1alpha1", "kind": "DurableJob",
            "metadata": {"name": "r", "namespace": "apps", "generation": 2},
            "spec": {"schedule": {"cron": ["0 3 * * *"]}, "workflow": {"type": "W", "taskQueue": "q"}}
        }))
        .expect("a DurableJob");
        dj.status = Some(DurableJobStatus {
            observed_generation: Some(2),
            schedule_id: Some("durablejob:apps/r".into()),
            temporal_namespace: Some("default".into()),
            sync: Some(SyncRecord {
                listing: listing.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        });
        dj
    }

    fn listed(entries: &[(&str, &str)]) -> Listed {
        HashMap::from([(
            "default".to_string(),
            entries
                .iter()
                .map(|(id, l)| (id.to_string(), l.to_string()))
                .collect(),
        )])
    }

    #[test]
    fn an_unchanged_listing_wakes_nothing() {
        assert!(!changed(&dj(Some("L1")), &listed(&[("durablejob:apps/r", "L1")])));
    }

    #[test]
    fn another_listing_or_a_missing_schedule_wakes_the_durablejob() {
        assert!(changed(&dj(Some("L1")), &listed(&[("durablejob:apps/r", "L2")])));
        assert!(changed(
            &dj(Some("L1")),
            &listed(&[("durablejob:apps/other", "L1")])
        ));
    }

    #[test]
    fn a_namespace_that_could_not_be_listed_wakes_nothing() {
        assert!(!changed(&dj(Some("L1")), &HashMap::new()));
    }

    #[test]
    fn unsettled_deleted_finished_or_never_described_ones_are_left_to_their_own_reconcile() {
        let none = listed(&[]);
        assert!(!changed(&dj(None), &none), "never described");
        let mut newer = dj(Some("L1"));
        newer.metadata.generation = Some(3);
        assert!(!changed(&newer, &none), "a new generation is reconciled anyway");
        let mut deleting = serde_json::to_value(dj(Some("L1"))).unwrap();
        deleting["metadata"]["deletionTimestamp"] = "2026-06-01T00:00:00Z".into();
        let deleting: DurableJob = serde_json::from_value(deleting).unwrap();
        assert!(!changed(&deleting, &none));
        let mut done = dj(Some("L1"));
        done.status.as_mut().unwrap().completed = true;
        assert!(!changed(&done, &none));
    }

    #[test]
    fn the_namespaces_listed_are_those_of_settled_schedules() {
        let mut other = dj(Some("L"));
        other.status.as_mut().unwrap().temporal_namespace = Some("billing".into());
        let ns = namespaces([&dj(Some("L")), &other, &dj(None)]);
        assert_eq!(ns.into_iter().collect::<Vec<_>>(), vec!["billing", "default"]);
    }
}
