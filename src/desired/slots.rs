//! When a schedule runs, computed offline as Temporal's scheduler computes it, for
//! `durablejob preview` and the month grid.
//!
//! The rules are Temporal's (its schedule spec and calendar matching), written again here from
//! what they do:
//! - Times have one-second resolution; each search is for the first time strictly after one.
//! - A cron entry matches when every field matches in the schedule's time zone: day-of-month
//!   *and* day-of-week, not either. Years run from 2000 to 2100.
//! - Wall-clock times that do not exist (the hour a clock springs forward over) never run. A
//!   wall-clock time that happens twice (the hour repeated when it falls back) runs once or
//!   twice, depending on the zone and on where the search starts: each search steps through
//!   the fields from the last time found, takes the copy the Go time library picks for an
//!   ambiguous local time, and looks at the repeated hour again only when its minutes carry
//!   over into the next hour. So a daily `30 2 * * *` in Europe/Berlin runs once (02:30 CET),
//!   a daily `30 1 * * *` in America/New_York twice (01:30 EDT and EST). The same steps are
//!   taken here, so the preview says what will happen, not what should.
//! - An interval runs at every multiple of `every` since the Unix epoch, plus `offset`.
//! - A time an exclusion matches is skipped; `startAt` and `endAt` bound the times (both
//!   inclusive).
//! - Jitter delays each run by an amount derived from a hash of the time and the schedule's
//!   Temporal namespace id, below both `jitter` and the gap to the next time the spec matches;
//!   the preview gives that bound, not the hash (the namespace id is the server's). Temporal
//!   searches each time from where jitter moved the one before, which changes nothing except
//!   in the hour repeated at a clock change: there a jittered schedule may run once where the
//!   preview, searching from the times themselves, lists two.
//! - Clock changes after 2099 (the zone tables' end) follow each zone's yearly rule, as Go's
//!   time library applies it.
//!
//! `ListScheduleMatchingTimes` on the real server holds these to Temporal's own answers (the
//! property test in tests/e2e/preview.rs).

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use super::schedule::Calendar;
use crate::cron::ranges::{Match, Span};

/// Temporal's calendars end in this year.
const LAST_YEAR: i32 = 2100;
/// ... and begin in this one (a cron entry's `*` year).
const FIRST_YEAR: u32 = 2000;

/// One field's values as bits (day-of-week 7 folded onto Sunday).
fn bits(spans: &[Span]) -> u64 {
    let mut b = 0u64;
    for s in spans {
        for v in s.start..=s.end.min(63) {
            b |= 1 << v;
        }
    }
    b
}

/// A calendar ready for matching.
#[derive(Debug, Clone)]
struct Compiled {
    second: u64,
    minute: u64,
    hour: u64,
    day_of_month: u64,
    month: u64,
    day_of_week: u64,
    /// `None`: every year.
    year: Option<Vec<Span>>,
    comment: String,
}

impl Compiled {
    fn new(m: &Match) -> Self {
        let dow = bits(&m.day_of_week);
        Self {
            second: bits(&m.second),
            minute: bits(&m.minute),
            hour: bits(&m.hour),
            day_of_month: bits(&m.day_of_month),
            month: bits(&m.month),
            day_of_week: (dow | (dow >> 7)) & 0x7f,
            year: (!m.year.is_empty()).then(|| m.year.clone()),
            comment: m.comment.clone(),
        }
    }

    /// A cron entry that starts runs: at second 0 of each minute it matches, years 2000-2100.
    fn include(entry: &str) -> Result<Self, String> {
        let mut m = crate::cron::ranges::cron(entry, entry.to_string())?;
        m.second = vec![Span { start: 0, end: 0 }];
        m.year = vec![Span {
            start: FIRST_YEAR,
            end: LAST_YEAR as u32,
        }];
        Ok(Self::new(&m))
    }

    fn year(&self, y: i32) -> bool {
        match &self.year {
            None => true,
            Some(spans) => spans
                .iter()
                .any(|s| (s.start as i64..=s.end as i64).contains(&(y as i64))),
        }
    }

    fn has(bits: u64, v: u32) -> bool {
        v < 64 && bits & (1 << v) != 0
    }

    /// Whether the wall-clock time `t` (in the schedule's zone) matches every field.
    fn matches(&self, t: NaiveDateTime) -> bool {
        self.year(t.year())
            && Self::has(self.month, t.month())
            && Self::has(self.day_of_month, t.day())
            && Self::has(self.day_of_week, t.weekday().num_days_from_sunday())
            && Self::has(self.hour, t.hour())
            && Self::has(self.minute, t.minute())
            && Self::has(self.second, t.second())
    }
}

fn days_in_month(month: u32, year: i32) -> u32 {
    match month {
        2 if NaiveDate::from_ymd_opt(year, 2, 29).is_some() => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The last year whose daylight-saving dates the time zone tables carry (chrono-tz's end);
/// Go (and so Temporal) goes on applying each zone's yearly rule.
const LAST_TABLE_YEAR: i32 = 2099;

/// The UTC offset (seconds) in effect at the instant `unix`. Past the tables' last year, the
/// offset of the same moment in the latest year laid out the same way (same weekday on
/// 1 January, same leap day): a yearly rule such as "last Sunday of March" gives it.
fn offset_at(tz: Tz, unix: i64) -> i64 {
    let mut utc = DateTime::from_timestamp(unix, 0).unwrap_or_default().naive_utc();
    if utc.year() > LAST_TABLE_YEAR {
        let year = utc.year();
        let shape = |y: i32| {
            let jan1 = NaiveDate::from_ymd_opt(y, 1, 1).expect("1 January");
            (jan1.weekday(), NaiveDate::from_ymd_opt(y, 2, 29).is_some())
        };
        if let Some(like) = (LAST_TABLE_YEAR - 40..=LAST_TABLE_YEAR)
            .rev()
            .find(|y| shape(*y) == shape(year))
        {
            let shift = NaiveDate::from_ymd_opt(year, 1, 1).expect("1 January")
                - NaiveDate::from_ymd_opt(like, 1, 1).expect("1 January");
            utc -= shift;
        }
    }
    tz.offset_from_utc_datetime(&utc).fix().local_minus_utc() as i64
}

/// The wall-clock time of the instant `unix`.
fn local_of(tz: Tz, unix: i64) -> NaiveDateTime {
    DateTime::from_timestamp(unix + offset_at(tz, unix), 0)
        .unwrap_or_default()
        .naive_utc()
}

/// The instant of a wall-clock time, chosen as Go's `time.Date` chooses: fields past their
/// range carry over (hour 24 is the next day's 0), a time in a gap or an overlap gets the
/// offset in effect at the instant the wall-clock time would be in UTC, corrected once.
fn instant(tz: Tz, y: i32, mo: u32, d: u32, h: u32, m: u32, s: u32) -> i64 {
    let date = NaiveDate::from_ymd_opt(y, mo, 1).expect("month in range") + TimeDelta::days(d as i64 - 1);
    let naive = date.and_hms_opt(0, 0, 0).expect("midnight")
        + TimeDelta::seconds(h as i64 * 3600 + m as i64 * 60 + s as i64);
    let unix = naive.and_utc().timestamp();
    let first = offset_at(tz, unix);
    if first == 0 {
        return unix;
    }
    unix - offset_at(tz, unix - first)
}

/// A time the spec gives, and what became of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot<'a> {
    /// A run starts at `at`, or up to `jitter` after it.
    Run { at: DateTime<Utc>, jitter: TimeDelta },
    /// An exclusion (named by its comment) skips it.
    Excluded { at: DateTime<Utc>, by: &'a str },
}

impl Slot<'_> {
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Slot::Run { at, .. } | Slot::Excluded { at, .. } => *at,
        }
    }
}

/// A calendar compiled for computing its times.
#[derive(Debug, Clone)]
pub struct Slots {
    tz: Tz,
    cron: Vec<Compiled>,
    /// (every, offset) in seconds.
    intervals: Vec<(i64, i64)>,
    exclude: Vec<Compiled>,
    start_at: Option<DateTime<Utc>>,
    end_at: Option<DateTime<Utc>>,
    jitter: TimeDelta,
}

impl Slots {
    /// Compiles a desired calendar (built from a validated spec, so an error here is a bug
    /// upstream, reported rather than hidden).
    pub fn new(c: &Calendar) -> Result<Self, String> {
        let tz: Tz = c
            .time_zone
            .parse()
            .map_err(|_| format!("{:?} is not a time zone of the IANA database", c.time_zone))?;
        let cron = c
            .cron
            .iter()
            .map(|e| Compiled::include(e))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            tz,
            cron,
            intervals: c
                .intervals
                .iter()
                .map(|i| {
                    let every = i.every.as_secs().max(1) as i64;
                    (every, i.offset.map_or(0, |o| o.as_secs() as i64))
                })
                .collect(),
            exclude: c.exclude.iter().map(Compiled::new).collect(),
            start_at: c.start_at,
            end_at: c.end_at,
            jitter: c
                .jitter
                .and_then(|j| TimeDelta::from_std(j).ok())
                .unwrap_or_default(),
        })
    }

    pub fn time_zone(&self) -> Tz {
        self.tz
    }

    /// The first time after `after` (unix seconds) that one cron entry matches.
    fn cron_next(&self, c: &Compiled, after: i64) -> Option<i64> {
        let tz = self.tz;
        let local = local_of(tz, after);
        let (mut y, mut mo, mut d) = (local.year(), local.month(), local.day());
        let (mut h, mut m, mut s) = (local.hour(), local.minute(), local.second());
        // in the second copy of a repeated hour, the times found are an hour on
        let mut repeat: i64 = if local_of(tz, after - 3600).hour() == h {
            3600
        } else {
            0
        };
        s += 1;
        'outer: loop {
            if s >= 60 {
                m += 1;
                s = 0;
            }
            if m >= 60 {
                let before = instant(tz, y, mo, d, h, 0, 0);
                h += 1;
                m = 0;
                let hour_on = instant(tz, y, mo, d, h, 0, 0);
                // two hours between two o'clocks: the hour left is repeated; its second copy next
                if repeat == 0 && hour_on - before > 3600 {
                    h -= 1;
                    repeat = 3600;
                } else {
                    repeat = 0;
                }
            }
            if h >= 24 {
                d += 1;
                h = 0;
            }
            if d > days_in_month(mo, y) {
                mo += 1;
                d = 1;
            }
            if mo > 12 {
                y += 1;
                mo = 1;
            }
            if y > LAST_YEAR {
                return None;
            }
            if !c.year(y) {
                (y, mo, d, h, m, s, repeat) = (y + 1, 1, 1, 0, 0, 0, 0);
                continue;
            }
            while !Compiled::has(c.month, mo) {
                (mo, d, h, m, s, repeat) = (mo + 1, 1, 0, 0, 0, 0);
                if mo > 12 {
                    continue 'outer;
                }
            }
            loop {
                let weekday = local_of(tz, instant(tz, y, mo, d, h, m, s))
                    .weekday()
                    .num_days_from_sunday();
                if Compiled::has(c.day_of_month, d) && Compiled::has(c.day_of_week, weekday) {
                    break;
                }
                (d, h, m, s, repeat) = (d + 1, 0, 0, 0, 0);
                if d > days_in_month(mo, y) {
                    continue 'outer;
                }
            }
            while !Compiled::has(c.hour, h) {
                (h, m, s, repeat) = (h + 1, 0, 0, 0);
                if h >= 24 {
                    continue 'outer;
                }
            }
            while !Compiled::has(c.minute, m) {
                (m, s) = (m + 1, 0);
                if m >= 60 {
                    continue 'outer;
                }
            }
            while !Compiled::has(c.second, s) {
                s += 1;
                if s >= 60 {
                    continue 'outer;
                }
            }
            let t = instant(tz, y, mo, d, h, m, s);
            // a wall-clock time the clock jumped over: not a time at all
            if local_of(tz, t).hour() != h {
                (h, m, s) = (h + 1, 0, 0);
                continue;
            }
            return Some(t + repeat);
        }
    }

    /// The first time after `after` (unix seconds) that the cron entries or intervals give,
    /// before exclusions and bounds.
    fn raw_next(&self, after: i64) -> Option<i64> {
        let cron = self.cron.iter().filter_map(|c| self.cron_next(c, after));
        let intervals = self
            .intervals
            .iter()
            .map(|(every, offset)| ((after - offset) / every + 1) * every + offset);
        cron.chain(intervals).min()
    }

    /// The exclusion that skips the time `t`, if any.
    fn excluded_by(&self, t: i64) -> Option<&str> {
        let local = local_of(self.tz, t);
        self.exclude
            .iter()
            .find(|e| e.matches(local))
            .map(|e| e.comment.as_str())
    }

    /// The first time after `after` the spec gives within `startAt`/`endAt`: a run, or a
    /// time an exclusion skips. `None` when no time is left.
    pub fn next_slot(&self, after: DateTime<Utc>) -> Option<Slot<'_>> {
        let mut after_s = after.timestamp();
        if let Some(start) = self.start_at
            && after < start
        {
            // so that startAt itself can be the first time
            after_s = (start - TimeDelta::seconds(1)).timestamp();
        }
        let t = self.raw_next(after_s)?;
        let at = DateTime::from_timestamp(t, 0)?;
        if self.end_at.is_some_and(|end| at > end) {
            return None;
        }
        if let Some(by) = self.excluded_by(t) {
            return Some(Slot::Excluded { at, by });
        }
        // the window ends at the next time the spec gives, if that comes sooner (looked up only
        // when there is jitter: it is the next slot's own search)
        let mut jitter = self.jitter;
        if jitter > TimeDelta::zero()
            && let Some(following) = self.raw_next(t)
        {
            jitter = jitter.min(TimeDelta::seconds(following - t));
        }
        Some(Slot::Run { at, jitter })
    }

    /// The slots after `after`, in order, until `endAt` or year 2100 (an interval goes on
    /// forever: bound the walk with `take`).
    pub fn after(&self, after: DateTime<Utc>) -> impl Iterator<Item = Slot<'_>> + '_ {
        let mut cursor = Some(after);
        std::iter::from_fn(move || {
            let slot = self.next_slot(cursor?)?;
            cursor = Some(slot.at());
            Some(slot)
        })
    }

    /// The instant a local day begins (its first existing second).
    pub fn day_start(&self, date: NaiveDate) -> DateTime<Utc> {
        let midnight = date.and_hms_opt(0, 0, 0).expect("midnight");
        self.tz
            .from_local_datetime(&midnight)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            // midnight skipped by the clock: the day begins where the gap ends, at 01:00
            .unwrap_or_else(|| {
                DateTime::from_timestamp(
                    instant(self.tz, date.year(), date.month(), date.day(), 1, 0, 0),
                    0,
                )
                .unwrap_or_default()
            })
    }
}

/// What one day of the month grid shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Day {
    /// At least one run starts that day.
    Runs,
    /// The spec gives times that day, and exclusions skip every one.
    Excluded,
    /// No time that day.
    Quiet,
}

/// Most slots one day's mark looks at (a one-second interval has 86,400 a day).
const DAY_BUDGET: usize = 100_000;

/// Each day of `month` (1-12) of `year`, in the schedule's time zone.
pub fn month(slots: &Slots, year: i32, month: u32) -> Vec<Day> {
    (1..=days_in_month(month, year))
        .map(|d| {
            let date = NaiveDate::from_ymd_opt(year, month, d).expect("a day of the month");
            let begin = slots.day_start(date);
            let end = slots.day_start(date + TimeDelta::days(1));
            let mut day = Day::Quiet;
            for slot in slots
                .after(begin - TimeDelta::seconds(1))
                .take(DAY_BUDGET)
                .take_while(|s| s.at() < end)
            {
                match slot {
                    Slot::Run { .. } => return Day::Runs,
                    Slot::Excluded { .. } => day = Day::Excluded,
                }
            }
            day
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::schedule::Interval;
    use chrono::TimeZone;
    use std::time::Duration;

    fn calendar(cron: &[&str], tz: &str) -> Calendar {
        Calendar {
            cron: cron.iter().map(|c| c.to_string()).collect(),
            intervals: vec![],
            time_zone: tz.into(),
            jitter: None,
            start_at: None,
            end_at: None,
            exclude: vec![],
        }
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn runs(c: &Calendar, from: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        Slots::new(c)
            .unwrap()
            .after(from)
            .filter_map(|s| match s {
                Slot::Run { at, .. } => Some(at),
                Slot::Excluded { .. } => None,
            })
            .take(n)
            .collect()
    }

    #[test]
    fn day_of_month_and_day_of_week_must_both_match() {
        // Friday the 13th: February and March 2026
        let c = calendar(&["0 9 13 * FRI"], "UTC");
        assert_eq!(
            runs(&c, utc(2026, 1, 1, 0, 0), 3),
            [
                utc(2026, 2, 13, 9, 0),
                utc(2026, 3, 13, 9, 0),
                utc(2026, 11, 13, 9, 0)
            ]
        );
    }

    #[test]
    fn a_time_zone_moves_the_runs_and_a_time_the_clock_skips_never_runs() {
        // Berlin springs forward on 2026-03-29 at 02:00: 02:30 does not exist that day
        let c = calendar(&["30 2 * * *"], "Europe/Berlin");
        assert_eq!(
            runs(&c, utc(2026, 3, 27, 12, 0), 3),
            [
                utc(2026, 3, 28, 1, 30),
                utc(2026, 3, 30, 0, 30),
                utc(2026, 3, 31, 0, 30)
            ]
        );
    }

    #[test]
    fn a_repeated_hour_runs_once_or_twice_as_temporal_finds_it() {
        // Berlin falls back on 2026-10-25: 02:00-02:59 happens at 00:00Z and again at 01:00Z
        let daily = calendar(&["30 2 * * *"], "Europe/Berlin");
        assert_eq!(
            runs(&daily, utc(2026, 10, 24, 12, 0), 2),
            [utc(2026, 10, 25, 1, 30), utc(2026, 10, 26, 1, 30)],
            "Go's time.Date takes the later copy for Berlin"
        );
        let hourly = calendar(&["30 * * * *"], "Europe/Berlin");
        assert_eq!(
            runs(&hourly, utc(2026, 10, 24, 23, 0), 4),
            [
                utc(2026, 10, 24, 23, 30),
                utc(2026, 10, 25, 0, 30),
                utc(2026, 10, 25, 2, 30),
                utc(2026, 10, 25, 3, 30)
            ],
            "01:30 CEST, 02:30 CEST, then 03:30 CET: a search that starts in the first copy of the hour does not see the second"
        );
        // New York falls back on 2026-11-01 at 06:00Z: Go takes the earlier copy, 01:30 EDT,
        // and the search from there carries into the repeated hour: a daily 01:30 runs twice
        let ny = calendar(&["30 1 * * *"], "America/New_York");
        assert_eq!(
            runs(&ny, utc(2026, 10, 31, 12, 0), 3),
            [
                utc(2026, 11, 1, 5, 30),
                utc(2026, 11, 1, 6, 30),
                utc(2026, 11, 2, 6, 30)
            ]
        );
    }

    #[test]
    fn intervals_count_from_the_epoch_plus_their_offset() {
        let mut c = calendar(&[], "Asia/Tokyo");
        c.intervals = vec![Interval {
            every: Duration::from_secs(90 * 60),
            offset: Some(Duration::from_secs(300)),
        }];
        let r = runs(&c, utc(2026, 1, 1, 0, 0), 2);
        assert_eq!(r, [utc(2026, 1, 1, 0, 5), utc(2026, 1, 1, 1, 35)]);
    }

    #[test]
    fn exclusions_skip_times_and_bounds_hold_them_in() {
        let mut c = calendar(&["0 12 * * *"], "UTC");
        c.exclude = crate::cron::ranges::dates(&[NaiveDate::from_ymd_opt(2026, 12, 24).unwrap()], "holidays");
        c.start_at = Some(utc(2026, 12, 23, 12, 0));
        c.end_at = Some(utc(2026, 12, 26, 12, 0));
        let s = Slots::new(&c).unwrap();
        let all: Vec<Slot<'_>> = s.after(utc(2026, 12, 1, 0, 0)).collect();
        assert_eq!(
            all,
            [
                Slot::Run {
                    at: utc(2026, 12, 23, 12, 0),
                    jitter: TimeDelta::zero()
                },
                Slot::Excluded {
                    at: utc(2026, 12, 24, 12, 0),
                    by: "holidays 2026-12"
                },
                Slot::Run {
                    at: utc(2026, 12, 25, 12, 0),
                    jitter: TimeDelta::zero()
                },
                Slot::Run {
                    at: utc(2026, 12, 26, 12, 0),
                    jitter: TimeDelta::zero()
                },
            ],
            "startAt and endAt are both inclusive"
        );
    }

    #[test]
    fn the_clock_changes_go_on_in_2100_as_go_computes_them() {
        // the zone tables end in 2099; Temporal's calendars run through 2100
        let c = calendar(&["0 12 1 7 *"], "Europe/Berlin");
        assert_eq!(
            runs(&c, utc(2099, 1, 1, 0, 0), 2),
            [utc(2099, 7, 1, 10, 0), utc(2100, 7, 1, 10, 0)],
            "summer time both years"
        );
    }

    #[test]
    fn jitter_is_bounded_by_the_gap_to_the_next_time() {
        let mut c = calendar(&["*/5 * * * *"], "UTC");
        c.jitter = Some(Duration::from_secs(3600));
        let s = Slots::new(&c).unwrap();
        let Some(Slot::Run { jitter, .. }) = s.next_slot(utc(2026, 1, 1, 0, 0)) else {
            panic!("a run");
        };
        assert_eq!(jitter, TimeDelta::minutes(5));
    }

    #[test]
    fn the_month_grid_marks_run_days_and_excluded_days() {
        let mut c = calendar(&["0 9 * * 1-5"], "Europe/Berlin");
        c.exclude = crate::cron::ranges::dates(&[NaiveDate::from_ymd_opt(2026, 12, 24).unwrap()], "holidays");
        let days = month(&Slots::new(&c).unwrap(), 2026, 12);
        assert_eq!(days.len(), 31);
        assert_eq!(days[0], Day::Runs, "Tuesday the 1st");
        assert_eq!(days[4], Day::Quiet, "Saturday the 5th");
        assert_eq!(days[23], Day::Excluded, "Thursday the 24th");
    }
}
