//! Conditions: the rule that keeps transition times. Types and reasons are the one vocabulary
//! in [`crate::reason`].

use chrono::{DateTime, Utc};

use crate::api::Condition;
use crate::reason::{ConditionType, Reason};

/// The desired value of one condition, before transition-time bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConditionValue {
    pub type_: ConditionType,
    pub status: bool,
    pub reason: Reason,
    pub message: String,
}

impl ConditionValue {
    pub(crate) fn new(
        type_: ConditionType,
        status: bool,
        reason: Reason,
        message: impl Into<String>,
    ) -> Self {
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
pub(crate) fn merge(
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
                .find(|c| c.type_ == v.type_.as_str() && c.status == status)
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
            &[ConditionValue::new(
                ConditionType::Ready,
                true,
                Reason::Synced,
                "",
            )],
            Some(1),
            t0,
        );
        assert_eq!(first[0].last_transition_time, t0);
        let same = merge(
            &first,
            &[ConditionValue::new(
                ConditionType::Ready,
                true,
                Reason::Synced,
                "x",
            )],
            Some(2),
            t1,
        );
        assert_eq!(same[0].last_transition_time, t0);
        assert_eq!(same[0].observed_generation, Some(2));
        let flipped = merge(
            &same,
            &[ConditionValue::new(
                ConditionType::Ready,
                false,
                Reason::InvalidSpec,
                "x",
            )],
            Some(2),
            t1,
        );
        assert_eq!(flipped[0].last_transition_time, t1);
        assert_eq!(flipped[0].status, "False");
    }
}
