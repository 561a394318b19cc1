//! Why a schedule is paused, read once from Temporal's description and the spec: the planner
//! (keep, repair or resume the pause), the status (`pausedReason`, the message, the Ready
//! reason), the requeue and the run-control `resume` request all ask the same [`PauseState`].
//! Pure.

use chrono::{DateTime, TimeDelta, Utc};

use super::streak;
use crate::desired::schedule::DesiredSchedule;
use crate::reason::Reason;
use crate::temporal::ObservedSchedule;

/// What paused a schedule, as its description shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PausedBy {
    /// Temporal itself after a failed run (`pauseOnFailure`); Temporal's notes say so.
    Failure,
    /// The operator for `spec.suspendAfterFailures`, at this time (its notes say so).
    Streak(DateTime<Utc>),
    /// The operator for `spec.suspend`, or someone else in Temporal.
    Other,
}

/// The schedule's pause and what the spec makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PauseState {
    /// `None` while the schedule runs.
    pub by: Option<PausedBy>,
    /// `spec.suspend` asks for a pause.
    pub suspended: bool,
    /// The spec keeps this pause after failures: `pauseOnFailure` for Temporal's,
    /// `suspendAfterFailures` for the operator's.
    pub held: bool,
    /// When `spec.resumeAfter` ends the operator's pause for failed runs.
    pub resume_at: Option<DateTime<Utc>>,
}

/// What paused the schedule, from its paused flag and notes.
pub(crate) fn paused_by(o: &ObservedSchedule) -> Option<PausedBy> {
    if !o.paused {
        return None;
    }
    // the wording of Temporal's own pause after a failed run, in the versions seen
    if o.notes.starts_with("paused due to workflow") || o.notes.starts_with("paused, workflow") {
        return Some(PausedBy::Failure);
    }
    Some(match streak::paused_at(&o.notes) {
        Some(at) => PausedBy::Streak(at),
        None => PausedBy::Other,
    })
}

impl PauseState {
    /// The state of the schedule `observed` shows, for the spec built into `desired` (`None`:
    /// the spec could not be built; no pause is then held).
    pub(crate) fn of(desired: Option<&DesiredSchedule>, observed: &ObservedSchedule) -> Self {
        let by = paused_by(observed);
        let held = match (by, desired) {
            (Some(PausedBy::Failure), Some(d)) => d.pause_on_failure,
            (Some(PausedBy::Streak(_)), Some(d)) => d.streak.is_some(),
            _ => false,
        };
        let resume_at = match (by, desired.and_then(|d| d.streak?.resume_after)) {
            (Some(PausedBy::Streak(at)), Some(after)) => TimeDelta::from_std(after).ok().map(|d| at + d),
            _ => None,
        };
        Self {
            by,
            suspended: desired.is_some_and(|d| d.paused),
            held,
            resume_at,
        }
    }

    /// Paused after failed runs, by Temporal or for a failure streak, whatever the spec says.
    pub(crate) fn after_failures(&self) -> bool {
        matches!(self.by, Some(PausedBy::Failure | PausedBy::Streak(_)))
    }

    /// spec.resumeAfter has ended the operator's pause.
    pub(crate) fn resume_due(&self, now: DateTime<Utc>) -> bool {
        self.resume_at.is_some_and(|at| at <= now)
    }

    /// `status.pausedReason`: the spec's suspend first, then what the description shows.
    pub(crate) fn reason(&self) -> Option<Reason> {
        Some(match self.by? {
            _ if self.suspended => Reason::Suspended,
            PausedBy::Failure => Reason::RunFailed,
            PausedBy::Streak(_) => Reason::ConsecutiveFailures,
            PausedBy::Other => Reason::Paused,
        })
    }

    /// The pause after failures the status reports as such (Ready's reason, the message): one
    /// the spec keeps and does not suspend anyway.
    pub(crate) fn kept(&self) -> Option<Reason> {
        match self.by? {
            _ if !self.held || self.suspended => None,
            PausedBy::Failure => Some(Reason::PausedAfterFailure),
            PausedBy::Streak(_) => Some(Reason::ConsecutiveFailures),
            PausedBy::Other => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DurableJob;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap()
    }

    fn observed(paused: bool, notes: &str) -> ObservedSchedule {
        ObservedSchedule {
            paused,
            notes: notes.into(),
            ..ObservedSchedule::test()
        }
    }

    fn streak_notes() -> String {
        let s = crate::api::FailureStreak {
            count: 2,
            runs: vec!["a".into(), "b".into()],
            counted_until: None,
        };
        streak::pause_notes("default/x", at(), &s)
    }

    /// One row per way a schedule can stand: the spec, what Temporal shows, and every answer.
    #[test]
    fn each_pause_is_read_once_and_answered_the_same_everywhere() {
        let plain = DurableJob::test("x").desired_schedule();
        let on_failure = {
            let mut dj = DurableJob::test("x");
            dj.spec.pause_on_failure = true;
            dj.desired_schedule()
        };
        let streaks = DurableJob::test("x")
            .with_failure_streak(2, Some("1h"))
            .desired_schedule();
        let suspended = DurableJob::test("x").suspended().desired_schedule();
        let failure = "paused due to workflow failure: w";
        let streak = streak_notes();
        type Row<'a> = (
            &'a str,
            &'a DesiredSchedule,
            bool,
            &'a str,
            Option<Reason>,
            Option<Reason>,
            bool,
        );
        // name, spec, paused, notes -> pausedReason, kept, after failures
        let rows: Vec<Row> = vec![
            ("running", &plain, false, failure, None, None, false),
            (
                "suspended",
                &suspended,
                true,
                "Suspended by spec.suspend",
                Some(Reason::Suspended),
                None,
                false,
            ),
            (
                "by hand",
                &plain,
                true,
                "maintenance",
                Some(Reason::Paused),
                None,
                false,
            ),
            (
                "failure kept",
                &on_failure,
                true,
                failure,
                Some(Reason::RunFailed),
                Some(Reason::PausedAfterFailure),
                true,
            ),
            (
                "failure not kept",
                &plain,
                true,
                failure,
                Some(Reason::RunFailed),
                None,
                true,
            ),
            (
                "failure, then suspended",
                &suspended,
                true,
                failure,
                Some(Reason::Suspended),
                None,
                true,
            ),
            (
                "streak kept",
                &streaks,
                true,
                &streak,
                Some(Reason::ConsecutiveFailures),
                Some(Reason::ConsecutiveFailures),
                true,
            ),
            (
                "streak, setting removed",
                &plain,
                true,
                &streak,
                Some(Reason::ConsecutiveFailures),
                None,
                true,
            ),
        ];
        for (name, d, paused, notes, reason, kept, after) in rows {
            let p = PauseState::of(Some(d), &observed(paused, notes));
            assert_eq!(
                (p.reason(), p.kept(), p.after_failures()),
                (reason, kept, after),
                "{name}"
            );
        }
    }

    #[test]
    fn resume_after_ends_only_the_operators_pause_and_only_when_set() {
        let streaks = DurableJob::test("x")
            .with_failure_streak(2, Some("1h"))
            .desired_schedule();
        let p = PauseState::of(Some(&streaks), &observed(true, &streak_notes()));
        assert_eq!(p.resume_at, Some(at() + TimeDelta::hours(1)));
        assert!(!p.resume_due(at() + TimeDelta::minutes(59)));
        assert!(p.resume_due(at() + TimeDelta::hours(1)));
        let forever = DurableJob::test("x")
            .with_failure_streak(2, None)
            .desired_schedule();
        let p = PauseState::of(Some(&forever), &observed(true, &streak_notes()));
        assert!(p.resume_at.is_none() && !p.resume_due(at() + TimeDelta::days(365)));
        let p = PauseState::of(
            Some(&streaks),
            &observed(true, "paused due to workflow failure: w"),
        );
        assert_eq!(p.resume_at, None, "Temporal's own pause has no resumeAfter");
    }

    #[test]
    fn without_a_valid_spec_nothing_is_held() {
        let p = PauseState::of(None, &observed(true, &streak_notes()));
        assert!(!p.held && !p.suspended && p.kept().is_none());
        assert_eq!(p.reason(), Some(Reason::ConsecutiveFailures));
    }
}
