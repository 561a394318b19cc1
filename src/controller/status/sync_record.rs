//! `status.sync`, the operator's memory between reconciles (what it last wrote, what Temporal
//! showed, how far it read runs and missed slots): assembled here and nowhere else, from the
//! facts a reconcile's steps learned.

use chrono::{DateTime, Utc};

use crate::api::{DurableJobStatus, FailureStreak, SyncRecord};

/// What one reconcile learned toward the sync record; each field left `None` keeps what the
/// previous record says.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SyncFacts {
    /// A new reference for the next comparison: after a write, or after accepting a change as
    /// Temporal's own (a pause after a failed run).
    pub reference: Option<Reference>,
    /// The failure streak the schedule step counted or carried; `Some(None)` keeps none (the
    /// spec has no suspendAfterFailures).
    pub failure_streak: Option<Option<FailureStreak>>,
    /// The runs digest, when the runs were read from visibility.
    pub runs_marker: Option<String>,
    /// Newly missed slots were reported up to this time.
    pub missed_checked_at: Option<DateTime<Utc>>,
    /// What the schedule list showed of the schedule at this describe.
    pub listing: Option<String>,
}

/// The desired schedule's hash and what Temporal's description is held to: the fingerprint of
/// the description that matched it, or, for a schedule created and not described since, the
/// conflict token the create was answered with (the fingerprint then empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    pub desired_hash: String,
    pub fingerprint: String,
    pub created_token: Option<String>,
}

/// Whether the status records that the schedule was last written from exactly the desired
/// schedule whose hash is `desired_hash`.
pub(crate) fn written_from(status: Option<&DurableJobStatus>, desired_hash: &str) -> bool {
    status
        .and_then(|s| s.sync.as_ref())
        .is_some_and(|sync| sync.desired_hash == desired_hash)
}

/// The record to keep: a new reference starts a record (the legacy handled resume carried),
/// otherwise the previous one is kept; then every fact learned is laid over it. No record
/// before and no reference: none.
pub(crate) fn next(previous: Option<&SyncRecord>, facts: &SyncFacts) -> Option<SyncRecord> {
    let mut record = match (&facts.reference, previous) {
        (Some(r), _) => SyncRecord {
            desired_hash: r.desired_hash.clone(),
            observed_fingerprint: r.fingerprint.clone(),
            created_conflict_token: r.created_token.clone(),
            handled_resume: previous.and_then(|p| p.handled_resume.clone()),
            ..Default::default()
        },
        (None, Some(p)) => p.clone(),
        (None, None) => return None,
    };
    let before = previous.cloned().unwrap_or_default();
    if let Some(streak) = &facts.failure_streak {
        record.failure_streak = streak.clone();
    }
    record.runs_marker = facts.runs_marker.clone().or(before.runs_marker);
    record.missed_checked_at = facts.missed_checked_at.or(before.missed_checked_at);
    record.listing = facts.listing.clone().or(record.listing);
    Some(record)
}

/// Whether `new` differs from `previous` only in that a describe has confirmed a create the
/// record held by its conflict token (the fingerprint now in the token's place). That alone is
/// not written: it goes out with the status's next change, and until then each describe
/// confirms the create again, so a quiet DurableJob costs no status write for it.
pub(crate) fn only_confirmed(previous: &DurableJobStatus, new: &DurableJobStatus) -> bool {
    let (Some(before), Some(after)) = (&previous.sync, &new.sync) else {
        return false;
    };
    if before.created_conflict_token.is_none() || after.created_conflict_token.is_some() {
        return false;
    }
    let mut unconfirmed = new.clone();
    if let Some(s) = unconfirmed.sync.as_mut() {
        s.observed_fingerprint = before.observed_fingerprint.clone();
        s.created_conflict_token = before.created_conflict_token.clone();
    }
    unconfirmed == *previous
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, h, 0, 0).unwrap()
    }

    fn streak(count: i64) -> FailureStreak {
        FailureStreak {
            count,
            ..Default::default()
        }
    }

    fn previous() -> SyncRecord {
        SyncRecord {
            desired_hash: "h1".into(),
            observed_fingerprint: "fp1".into(),
            created_conflict_token: None,
            handled_resume: Some("legacy".into()),
            runs_marker: Some("m1".into()),
            listing: Some("l1".into()),
            failure_streak: Some(streak(1)),
            missed_checked_at: Some(t(1)),
        }
    }

    fn reference(h: &str, fp: &str) -> Option<Reference> {
        Some(Reference {
            desired_hash: h.into(),
            fingerprint: fp.into(),
            created_token: None,
        })
    }

    #[test]
    fn a_confirmed_create_alone_is_not_a_change_worth_a_write() {
        let created = DurableJobStatus {
            schedule_id: Some("s".into()),
            sync: Some(SyncRecord {
                observed_fingerprint: String::new(),
                created_conflict_token: Some("01".into()),
                ..previous()
            }),
            ..Default::default()
        };
        let confirmed = DurableJobStatus {
            sync: Some(SyncRecord {
                observed_fingerprint: "fp2".into(),
                created_conflict_token: None,
                ..previous()
            }),
            ..created.clone()
        };
        assert!(only_confirmed(&created, &confirmed));
        assert!(!only_confirmed(&confirmed, &confirmed), "nothing held by a token");
        let listed_otherwise = DurableJobStatus {
            sync: confirmed.sync.clone().map(|s| SyncRecord {
                listing: Some("other".into()),
                ..s
            }),
            ..confirmed.clone()
        };
        assert!(
            !only_confirmed(&created, &listed_otherwise),
            "a listing other than the one worked out at the create is recorded, or every sweep would wake it again"
        );
        let ran = DurableJobStatus {
            action_count: 1,
            ..confirmed.clone()
        };
        assert!(
            !only_confirmed(&created, &ran),
            "any other change is written, the confirmation with it"
        );
        let still_a_token = DurableJobStatus {
            action_count: 1,
            ..created.clone()
        };
        assert!(!only_confirmed(&created, &still_a_token));
    }

    #[test]
    fn each_fact_is_laid_over_the_record_and_each_missing_one_keeps_the_previous() {
        type Case = (&'static str, Option<SyncRecord>, SyncFacts, Option<SyncRecord>);
        let cases: Vec<Case> = vec![
            (
                "nothing before, nothing learned",
                None,
                SyncFacts::default(),
                None,
            ),
            (
                "nothing before, facts but no reference: still none",
                None,
                SyncFacts {
                    runs_marker: Some("m".into()),
                    listing: Some("l".into()),
                    ..Default::default()
                },
                None,
            ),
            (
                "nothing learned keeps the record",
                Some(previous()),
                SyncFacts::default(),
                Some(previous()),
            ),
            (
                "a first write starts a record",
                None,
                SyncFacts {
                    reference: reference("h", "fp"),
                    failure_streak: Some(None),
                    listing: Some("l".into()),
                    ..Default::default()
                },
                Some(SyncRecord {
                    desired_hash: "h".into(),
                    observed_fingerprint: "fp".into(),
                    listing: Some("l".into()),
                    ..Default::default()
                }),
            ),
            (
                "a new reference keeps the legacy resume, the runs digest and the missed mark, and takes the new streak",
                Some(previous()),
                SyncFacts {
                    reference: reference("h2", "fp2"),
                    failure_streak: Some(Some(streak(3))),
                    listing: Some("l2".into()),
                    ..Default::default()
                },
                Some(SyncRecord {
                    desired_hash: "h2".into(),
                    observed_fingerprint: "fp2".into(),
                    failure_streak: Some(streak(3)),
                    listing: Some("l2".into()),
                    ..previous()
                }),
            ),
            (
                "a create recorded by its token keeps the runs digest and takes the listing worked out for it",
                Some(previous()),
                SyncFacts {
                    reference: Some(Reference {
                        desired_hash: "h2".into(),
                        fingerprint: String::new(),
                        created_token: Some("0000000000000001".into()),
                    }),
                    listing: Some("l2".into()),
                    ..Default::default()
                },
                Some(SyncRecord {
                    desired_hash: "h2".into(),
                    observed_fingerprint: String::new(),
                    created_conflict_token: Some("0000000000000001".into()),
                    listing: Some("l2".into()),
                    failure_streak: None,
                    ..previous()
                }),
            ),
            (
                "the first describe after a create replaces its token with the fingerprint",
                Some(SyncRecord {
                    observed_fingerprint: String::new(),
                    created_conflict_token: Some("0000000000000001".into()),
                    ..previous()
                }),
                SyncFacts {
                    reference: reference("h1", "fp2"),
                    listing: Some("l2".into()),
                    ..Default::default()
                },
                Some(SyncRecord {
                    observed_fingerprint: "fp2".into(),
                    created_conflict_token: None,
                    listing: Some("l2".into()),
                    failure_streak: None,
                    ..previous()
                }),
            ),
            (
                "a streak no longer kept is dropped",
                Some(previous()),
                SyncFacts {
                    failure_streak: Some(None),
                    ..Default::default()
                },
                Some(SyncRecord {
                    failure_streak: None,
                    ..previous()
                }),
            ),
            (
                "runs read, slots checked and a new listing renew their fields only",
                Some(previous()),
                SyncFacts {
                    runs_marker: Some("m2".into()),
                    missed_checked_at: Some(t(2)),
                    listing: Some("l2".into()),
                    ..Default::default()
                },
                Some(SyncRecord {
                    runs_marker: Some("m2".into()),
                    missed_checked_at: Some(t(2)),
                    listing: Some("l2".into()),
                    ..previous()
                }),
            ),
        ];
        for (name, before, facts, want) in cases {
            assert_eq!(next(before.as_ref(), &facts), want, "{name}");
        }
    }
}
