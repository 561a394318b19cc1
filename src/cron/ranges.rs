//! Exclusions as Temporal's structured calendars take them: each field a list of inclusive
//! ranges. A five-field cron entry (checked by [`super::check`]) becomes the minutes it
//! matches, every second of them; a date becomes the whole day.

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

/// An inclusive range of values of one calendar field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

/// Times that match every field (a field with no spans never matches, except `year`: none
/// means every year). Day-of-week 0 is Sunday.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Match {
    /// Where it comes from, e.g. `spec.schedule.exclude.cron[0]` or `calendar holidays`.
    pub comment: String,
    pub second: Vec<Span>,
    pub minute: Vec<Span>,
    pub hour: Vec<Span>,
    pub day_of_month: Vec<Span>,
    pub month: Vec<Span>,
    pub year: Vec<Span>,
    pub day_of_week: Vec<Span>,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn all(lo: u32, hi: u32) -> Vec<Span> {
    vec![Span { start: lo, end: hi }]
}

/// The whole of each day, one calendar per month that has any (a holiday list of hundreds of
/// dates stays a few dozen calendars in Temporal). `comment` says where they come from.
pub(crate) fn dates(days: &[NaiveDate], comment: &str) -> Vec<Match> {
    let mut by_month: std::collections::BTreeMap<(i32, u32), Vec<u32>> = Default::default();
    for d in days {
        by_month.entry((d.year(), d.month())).or_default().push(d.day());
    }
    by_month
        .into_iter()
        .map(|((year, month), mut days)| {
            days.sort_unstable();
            days.dedup();
            let one = |v: u32| vec![Span { start: v, end: v }];
            Match {
                comment: format!("{comment} {year}-{month:02}"),
                second: all(0, 59),
                minute: all(0, 59),
                hour: all(0, 23),
                day_of_month: spans(days),
                month: one(month),
                year: one(year as u32),
                day_of_week: all(0, 6),
            }
        })
        .collect()
}

/// Every second of every minute a cron entry matches. The entry must have passed
/// [`super::check`]; macros are read as Temporal reads them.
pub(crate) fn cron(entry: &str, comment: String) -> Result<Match, String> {
    super::check(entry)?;
    let expanded = match entry.trim() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        other => other,
    };
    let f: Vec<&str> = expanded.split_whitespace().collect();
    let mut dow = values(f[4], 0, 7, &DAYS)?;
    if dow.contains(&7) {
        dow.retain(|d| *d != 7);
        if !dow.contains(&0) {
            dow.insert(0, 0);
        }
    }
    Ok(Match {
        comment,
        second: all(0, 59),
        minute: spans(values(f[0], 0, 59, &[])?),
        hour: spans(values(f[1], 0, 23, &[])?),
        day_of_month: spans(values(f[2], 1, 31, &[])?),
        month: spans(values(f[3], 1, 12, &MONTHS)?),
        year: vec![],
        day_of_week: spans(dow),
    })
}

/// The values one field matches, ascending.
fn values(field: &str, lo: u32, hi: u32, names: &[&str]) -> Result<Vec<u32>, String> {
    let first = if names.len() == 12 { 1 } else { 0 };
    let number = |s: &str| -> Result<u32, String> {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
            return Ok(i as u32 + first);
        }
        s.parse::<u32>()
            .ok()
            .filter(|v| (lo..=hi).contains(v))
            .ok_or_else(|| format!("{s:?} is not within {lo}-{hi}"))
    };
    let mut out = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("step {s:?} is not a positive number"))?,
            ),
            None => (item, 1),
        };
        let (a, b) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                // `a/s` runs from a to the end of the field
                None if item.contains('/') => (number(r)?, hi),
                None => {
                    let v = number(r)?;
                    (v, v)
                }
            },
        };
        let mut v = a;
        while v <= b {
            out.push(v);
            v += step;
        }
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Ascending values as the fewest inclusive ranges.
fn spans(values: Vec<u32>) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    for v in values {
        match out.last_mut() {
            Some(s) if s.end + 1 == v => s.end = v,
            _ => out.push(Span { start: v, end: v }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(start: u32, end: u32) -> Span {
        Span { start, end }
    }

    #[test]
    fn weekends_are_every_minute_of_saturday_and_sunday() {
        let m = cron("* * * * 0,6", "weekends".into()).unwrap();
        assert_eq!(m.minute, vec![s(0, 59)]);
        assert_eq!(m.hour, vec![s(0, 23)]);
        assert_eq!(m.second, vec![s(0, 59)], "every second of those minutes");
        assert_eq!(m.day_of_week, vec![s(0, 0), s(6, 6)]);
        assert!(m.year.is_empty(), "every year");
        let names = cron("* * * * SAT,SUN", "x".into()).unwrap();
        assert_eq!(names.day_of_week, m.day_of_week);
        let seven = cron("* * * * 6-7", "x".into()).unwrap();
        assert_eq!(seven.day_of_week, m.day_of_week, "7 is Sunday too");
    }

    #[test]
    fn lists_ranges_steps_and_names_become_the_fewest_ranges() {
        let m = cron("*/20 22-23,0-5 1,2,3,15 JAN-MAR,dec *", "x".into()).unwrap();
        assert_eq!(m.minute, vec![s(0, 0), s(20, 20), s(40, 40)]);
        assert_eq!(m.hour, vec![s(0, 5), s(22, 23)]);
        assert_eq!(m.day_of_month, vec![s(1, 3), s(15, 15)]);
        assert_eq!(m.month, vec![s(1, 3), s(12, 12)]);
        assert_eq!(
            cron("10/25 * * * *", "x".into()).unwrap().minute,
            vec![s(10, 10), s(35, 35)]
        );
        assert_eq!(cron("@daily", "x".into()).unwrap().hour, vec![s(0, 0)]);
    }

    #[test]
    fn dates_are_whole_days_in_that_year_only_one_calendar_a_month() {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let ms = dates(
            &[
                d(2026, 12, 26),
                d(2026, 12, 24),
                d(2026, 12, 25),
                d(2027, 1, 1),
                d(2026, 12, 31),
            ],
            "holidays",
        );
        assert_eq!(ms.len(), 2);
        let m = &ms[0];
        assert_eq!(
            (&m.year, &m.month, &m.day_of_month),
            (
                &vec![s(2026, 2026)],
                &vec![s(12, 12)],
                &vec![s(24, 26), s(31, 31)]
            )
        );
        assert_eq!((&m.hour, &m.minute), (&vec![s(0, 23)], &vec![s(0, 59)]));
        assert_eq!(m.comment, "holidays 2026-12");
        assert_eq!(
            (&ms[1].year, &ms[1].day_of_month),
            (&vec![s(2027, 2027)], &vec![s(1, 1)])
        );
    }

    #[test]
    fn a_bad_entry_is_refused_as_in_spec_schedule_cron() {
        assert!(cron("0 9 * *", "x".into()).unwrap_err().contains("five"));
    }
}
