//! Condition types and reasons, in one place, and the rule that keeps transition times.

use chrono::{DateTime, Utc};

use crate::api::Condition;

/// Condition types.
pub mod types {
    /// Everything the resource asks for is in place.
    pub const READY: &str = "Ready";
    /// The Temporal schedule matches the spec.
    pub const SCHEDULE_SYNCED: &str = "ScheduleSynced";
    /// The user worker Deployment has available replicas (only with spec.worker).
    pub const WORKER_AVAILABLE: &str = "WorkerAvailable";
    /// kstatus: the operator is still working toward the spec (a transient problem or a change in flight).
    pub const RECONCILING: &str = "Reconciling";
    /// kstatus: the operator cannot make progress without a change by a person.
    pub const STALLED: &str = "Stalled";
}

/// Condition reasons; each is also an Event reason and a metric label.
pub mod reasons {
    pub const SYNCED: &str = "Synced";
    pub const COMPLETED: &str = "Completed";
    pub const PAUSED_AFTER_FAILURE: &str = "PausedAfterFailure";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const TEMPORAL_UNAVAILABLE: &str = "TemporalUnavailable";
    pub const TEMPORAL_REJECTED: &str = "TemporalRejected";
    pub const NAMESPACE_NOT_FOUND: &str = "NamespaceNotFound";
    pub const PERMISSION_DENIED: &str = "PermissionDenied";
    pub const OWNED_ELSEWHERE: &str = "ScheduleOwnedElsewhere";
    pub const CONFLICT: &str = "Conflict";
    pub const TEMPORAL_ERROR: &str = "TemporalError";
    pub const DELETING: &str = "Deleting";
    pub const DELETE_FAILED: &str = "DeleteFailed";
    pub const AS_EXPECTED: &str = "AsExpected";
    pub const WORKER_UNAVAILABLE: &str = "WorkerUnavailable";
    pub const WORKER_AVAILABLE: &str = "WorkerAvailable";
}

/// The desired value of one condition, before transition-time bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionValue {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl ConditionValue {
    pub fn new(type_: &'static str, status: bool, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            type_,
            status,
            reason,
            message: message.into(),
        }
    }
}

/// Builds the condition list: a condition keeps its lastTransitionTime while its status does
/// not change, so a reconcile that changes nothing writes nothing.
pub fn merge(
    previous: &[Condition],
    values: &[ConditionValue],
    generation: Option<i64>,
    now: DateTime<Utc>,
) -> Vec<Condition> {
    values
        .iter()
        .map(|v| {
            let status = if v.status { "True" } else { "False" }.to_string();
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == v.type_ && c.status == status)
                .map(|c| c.last_transition_time)
                .unwrap_or(now);
            Condition {
                type_: v.type_.to_string(),
                status,
                reason: v.reason.to_string(),
                message: v.message.clone(),
                last_transition_time,
                observed_generation: generation,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn transition_time_is_kept_while_status_is_unchanged_and_moves_when_it_flips() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let t1 = Utc.with_ymd_and_hms(2026, 1, 1, 1, 0, 0).unwrap();
        let first = merge(
            &[],
            &[ConditionValue::new(types::READY, true, reasons::SYNCED, "")],
            Some(1),
            t0,
        );
        assert_eq!(first[0].last_transition_time, t0);
        let same = merge(
            &first,
            &[ConditionValue::new(types::READY, true, reasons::SYNCED, "x")],
            Some(2),
            t1,
        );
        assert_eq!(same[0].last_transition_time, t0);
        assert_eq!(same[0].observed_generation, Some(2));
        let flipped = merge(
            &same,
            &[ConditionValue::new(
                types::READY,
                false,
                reasons::INVALID_SPEC,
                "x",
            )],
            Some(2),
            t1,
        );
        assert_eq!(flipped[0].last_transition_time, t1);
        assert_eq!(flipped[0].status, "False");
    }
}
