//! Runs Temporal did not start, per DurableJob: its counters (catch-up window passed, overlap
//! policy Skip, buffer full) compared with the last ones recorded, and the slots they were for,
//! so each missed slot is one Warning Event (as CronJob's `MissSchedule`), once. Pure.

use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::api::MissedRuns;
use crate::reason::Reason;
use crate::temporal::ObservedSchedule;

/// Whether an Event reason is one of a missed run.
pub(crate) fn is_missed(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::CatchupWindowPassed | Reason::OverlapSkipped | Reason::BufferFull
    )
}

/// Temporal's counts for the schedule.
pub(crate) fn counts(o: &ObservedSchedule) -> MissedRuns {
    MissedRuns {
        catchup_window_passed: o.missed_catchup_window,
        overlap_skipped: o.overlap_skipped,
        buffer_full: o.buffer_dropped,
    }
}

/// How many runs were newly missed, by cause, oldest cause first (an outage's misses come
/// before those of the runs that followed it). A count below the recorded one means the
/// schedule was created anew: all of its count is new.
pub(crate) fn new_misses(before: &MissedRuns, now: &MissedRuns) -> Vec<(Reason, usize)> {
    let delta = |b: i64, n: i64| if n >= b { n - b } else { n };
    [
        (
            Reason::CatchupWindowPassed,
            delta(before.catchup_window_passed, now.catchup_window_passed),
        ),
        (Reason::BufferFull, delta(before.buffer_full, now.buffer_full)),
        (
            Reason::OverlapSkipped,
            delta(before.overlap_skipped, now.overlap_skipped),
        ),
    ]
    .into_iter()
    .filter(|(_, n)| *n > 0)
    .map(|(r, n)| (r, n as usize))
    .collect()
}

/// The missed slots with their cause: the newest slots the spec matched that no run was
/// started for, as many as were missed, handed to the causes oldest first. Fewer slots than
/// misses (the window was too short to see them) leave the rest unnamed (`None`).
pub(crate) fn slots(
    misses: &[(Reason, usize)],
    matching: &[DateTime<Utc>],
    ran: &BTreeSet<DateTime<Utc>>,
) -> Vec<(Reason, Option<DateTime<Utc>>)> {
    let total: usize = misses.iter().map(|(_, n)| n).sum();
    let mut free: Vec<DateTime<Utc>> = matching.iter().filter(|t| !ran.contains(t)).copied().collect();
    free.sort();
    let named = free.split_off(free.len().saturating_sub(total));
    let mut named = named.into_iter();
    let unnamed = total.saturating_sub(named.len());
    let mut out = Vec::with_capacity(total);
    let mut skip_names = unnamed;
    for (reason, n) in misses {
        for _ in 0..*n {
            if skip_names > 0 {
                skip_names -= 1;
                out.push((*reason, None));
            } else {
                out.push((*reason, named.next()));
            }
        }
    }
    out
}

/// The Event text for one missed slot.
pub(crate) fn note(reason: Reason, slot: Option<DateTime<Utc>>, schedule_id: &str) -> String {
    let why = match reason {
        Reason::CatchupWindowPassed => {
            "it was due longer ago than spec.catchupWindow when Temporal could start it (raise catchupWindow to catch up after longer outages)"
        }
        Reason::OverlapSkipped => {
            "the previous run was still going and overlapPolicy Skip drops overlapping runs (BufferOne would run it afterwards)"
        }
        _ => "the buffer of overlapPolicy BufferOne/BufferAll was full",
    };
    match slot {
        Some(t) => format!(
            "Missed the run scheduled for {} (schedule {schedule_id}): {why}",
            t.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        None => format!("Missed a run of schedule {schedule_id} (its time is no longer known): {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeDelta, TimeZone};

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).unwrap() + TimeDelta::seconds(s)
    }

    fn m(c: i64, o: i64, b: i64) -> MissedRuns {
        MissedRuns {
            catchup_window_passed: c,
            overlap_skipped: o,
            buffer_full: b,
        }
    }

    #[test]
    fn only_counts_that_grew_are_new_and_a_reset_counts_whole() {
        assert!(new_misses(&m(1, 2, 0), &m(1, 2, 0)).is_empty());
        assert_eq!(
            new_misses(&m(1, 2, 0), &m(3, 3, 0)),
            [(Reason::CatchupWindowPassed, 2), (Reason::OverlapSkipped, 1)]
        );
        assert_eq!(
            new_misses(&m(0, 5, 0), &m(0, 1, 0)),
            [(Reason::OverlapSkipped, 1)],
            "a recreated schedule starts from 0"
        );
    }

    #[test]
    fn the_newest_slots_without_a_run_are_the_missed_ones() {
        let matching = [t(0), t(10), t(20), t(30), t(40)];
        let ran: BTreeSet<_> = [t(0), t(20), t(40)].into();
        assert_eq!(
            slots(&[(Reason::OverlapSkipped, 1)], &matching, &ran),
            [(Reason::OverlapSkipped, Some(t(30)))]
        );
        assert_eq!(
            slots(
                &[(Reason::CatchupWindowPassed, 1), (Reason::OverlapSkipped, 1)],
                &matching,
                &ran
            ),
            [
                (Reason::CatchupWindowPassed, Some(t(10))),
                (Reason::OverlapSkipped, Some(t(30)))
            ]
        );
        assert_eq!(
            slots(&[(Reason::BufferFull, 3)], &matching, &ran),
            [
                (Reason::BufferFull, None),
                (Reason::BufferFull, Some(t(10))),
                (Reason::BufferFull, Some(t(30)))
            ],
            "more misses than free slots: the oldest are unnamed"
        );
    }

    #[test]
    fn the_note_names_the_slot_and_the_cause() {
        let n = note(Reason::OverlapSkipped, Some(t(30)), "durablejob:ns/x");
        assert!(
            n.contains("2026-06-01T12:00:30Z") && n.contains("overlapPolicy Skip"),
            "{n}"
        );
        assert!(note(Reason::CatchupWindowPassed, None, "x").contains("catchupWindow"));
    }
}
