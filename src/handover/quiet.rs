//! When a schedule may change hands: not within a few seconds of one of its slots.
//!
//! The real CronJob controller creates a slot's Job at about the slot time and writes
//! `status.lastScheduleTime` after it; a sync that began just before a suspend can still create
//! a Job just after it. Suspending (or pausing, on rollback) only in a quiet window keeps every
//! slot on one side of the switch.

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

use crate::api::ScheduleSpec;

/// No switch this long before a slot.
pub const BEFORE_SLOT: TimeDelta = TimeDelta::seconds(5);
/// No switch this long after a slot (its Job may still be on its way).
pub const AFTER_SLOT: TimeDelta = TimeDelta::seconds(10);

/// The schedule's slots nearest to `now`: the last at or before it, the first after it.
pub fn nearest_slots(
    schedule: &ScheduleSpec,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let tz: Tz = schedule.time_zone.parse().unwrap_or(Tz::UTC);
    let local = now.with_timezone(&tz);
    let mut prev: Option<DateTime<Utc>> = None;
    let mut next: Option<DateTime<Utc>> = None;
    let mut consider = |p: Option<DateTime<Utc>>, n: Option<DateTime<Utc>>| {
        if let Some(p) = p {
            prev = Some(prev.map_or(p, |q| q.max(p)));
        }
        if let Some(n) = n {
            next = Some(next.map_or(n, |q| q.min(n)));
        }
    };
    for entry in &schedule.cron {
        let Ok(cron) = crate::cron::parse(entry) else {
            continue;
        };
        let p = cron
            .find_previous_occurrence(&local, true)
            .ok()
            .map(|t| t.with_timezone(&Utc));
        let n = cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc));
        consider(p, n);
    }
    for interval in &schedule.intervals {
        let secs = |s: &str| {
            crate::util::duration::parse_positive(s)
                .ok()
                .map(|d| d.as_secs() as i64)
        };
        let Some(every) = secs(&interval.every).filter(|e| *e > 0) else {
            continue;
        };
        let offset = interval.offset.as_deref().and_then(secs).unwrap_or(0);
        let t = now.timestamp();
        let p = (t - offset).div_euclid(every) * every + offset;
        consider(
            DateTime::from_timestamp(p, 0),
            DateTime::from_timestamp(p + every, 0),
        );
    }
    (prev, next)
}

/// `None` when `now` is in a quiet window; otherwise how long until the next one begins.
pub fn wait_for_quiet(schedule: &ScheduleSpec, now: DateTime<Utc>) -> Option<TimeDelta> {
    let (prev, next) = nearest_slots(schedule, now);
    if let Some(p) = prev
        && now - p < AFTER_SLOT
    {
        let quiet_at = p + AFTER_SLOT;
        // the next slot may follow so closely that no window opens before it
        return Some(match next {
            Some(n) if n - quiet_at < BEFORE_SLOT => n + AFTER_SLOT - now,
            _ => quiet_at - now,
        });
    }
    if let Some(n) = next
        && n - now < BEFORE_SLOT
    {
        return Some(n + AFTER_SLOT - now);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::IntervalSpec;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, h, m, s).unwrap()
    }

    fn cron(entry: &str, tz: &str) -> ScheduleSpec {
        ScheduleSpec {
            cron: vec![entry.into()],
            time_zone: tz.into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_middle_of_a_minute_is_quiet_for_an_every_minute_schedule() {
        let s = cron("* * * * *", "UTC");
        assert_eq!(
            nearest_slots(&s, at(12, 0, 30)),
            (Some(at(12, 0, 0)), Some(at(12, 1, 0)))
        );
        assert_eq!(wait_for_quiet(&s, at(12, 0, 30)), None);
    }

    #[test]
    fn just_after_a_slot_waits_until_its_job_has_surely_been_made() {
        let s = cron("* * * * *", "UTC");
        assert_eq!(wait_for_quiet(&s, at(12, 0, 0)), Some(AFTER_SLOT));
        assert_eq!(wait_for_quiet(&s, at(12, 0, 4)), Some(TimeDelta::seconds(6)));
    }

    #[test]
    fn just_before_a_slot_waits_until_after_it() {
        let s = cron("* * * * *", "UTC");
        assert_eq!(
            wait_for_quiet(&s, at(12, 0, 57)),
            Some(TimeDelta::seconds(3) + AFTER_SLOT)
        );
    }

    #[test]
    fn slots_are_found_in_the_schedules_time_zone() {
        // 09:00 in Berlin (summer time) is 07:00 UTC
        let s = cron("0 9 * * *", "Europe/Berlin");
        assert_eq!(nearest_slots(&s, at(12, 0, 0)).0, Some(at(7, 0, 0)));
        assert_eq!(wait_for_quiet(&s, at(7, 0, 3)), Some(TimeDelta::seconds(7)));
        assert_eq!(wait_for_quiet(&s, at(12, 0, 0)), None);
    }

    #[test]
    fn intervals_count_from_the_epoch_with_their_offset() {
        let s = ScheduleSpec {
            intervals: vec![IntervalSpec {
                every: "10m".into(),
                offset: Some("1m".into()),
            }],
            ..Default::default()
        };
        assert_eq!(
            nearest_slots(&s, at(12, 5, 0)),
            (Some(at(12, 1, 0)), Some(at(12, 11, 0)))
        );
        assert_eq!(wait_for_quiet(&s, at(12, 10, 58)), Some(TimeDelta::seconds(12)));
    }
}
