//! What `preview` shows, computed: the DurableJob's schedule built as the operator builds it,
//! its next runs, the times exclusions skip, the month grid, and whether Temporal's recorded
//! next times agree. Pure.

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, TimeDelta, Utc};
use kube::ResourceExt;
use serde::Serialize;

use crate::api::{DurableJob, DurableJobCalendar};
use crate::desired::schedule::{Calendar, ResolvedCalendar};
use crate::desired::slots::{self, Day, Slot, Slots};
use crate::desired::validate;

/// Most times one listing looks at, runs and skipped ones together: an exclusion that skips
/// every time of an interval would otherwise keep the walk going forever.
pub const WALK_BUDGET: usize = 1_000_000;
/// Months the grid shows by default, at most.
const DEFAULT_MONTHS_MAX: u32 = 3;

/// A DurableJob ready to preview.
#[derive(Debug, Clone)]
pub struct Subject {
    pub namespace: String,
    pub name: String,
    /// When runs start, as the operator would give it to Temporal.
    pub calendar: Calendar,
    /// Things worth knowing beside the times (suspended, run limit, H resolved).
    pub notes: Vec<String>,
    /// Temporal's next times as the operator last recorded them (an applied DurableJob).
    pub recorded: Option<Vec<DateTime<Utc>>>,
}

/// The schedule of `dj` as the operator would build it. `namespace` is used when the manifest
/// names none (`H` depends on it); `calendars` are the DurableJobCalendars at hand.
pub fn subject(
    dj: &DurableJob,
    namespace: &str,
    calendars: &[DurableJobCalendar],
) -> std::result::Result<Subject, String> {
    let name = dj.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        return Err("a DurableJob without metadata.name; give it a name".into());
    }
    let namespace_unset = dj.metadata.namespace.is_none();
    let namespace = dj
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| namespace.to_string());
    let valid = validate::validate(&dj.spec).map_err(|e| format!("durablejob {name}: {e}"))?;
    let mut resolved = Vec::new();
    for wanted in &valid.exclude_calendars {
        let Some(cal) = calendars
            .iter()
            .find(|c| c.name_any() == *wanted && c.namespace().is_none_or(|n| n == namespace))
        else {
            return Err(format!(
                "durablejob {name} lists DurableJobCalendar {wanted:?} in spec.schedule.excludeCalendars; give its manifest too (-f {wanted}.yaml) or preview the applied DurableJob (kubectl durablejob preview {name})"
            ));
        };
        let mut errors = Vec::new();
        let matches = validate::exclusions(
            &cal.spec.exclusions,
            &format!("DurableJobCalendar {wanted}: spec"),
            &mut errors,
        );
        if !errors.is_empty() {
            return Err(format!(
                "durablejob {name}: a referenced calendar cannot be used: {}",
                validate::InvalidSpec(errors)
            ));
        }
        resolved.push(ResolvedCalendar {
            name: wanted.clone(),
            matches,
        });
    }
    let calendar = crate::desired::schedule::calendar(&namespace, &name, &valid, &resolved);
    let mut notes = Vec::new();
    for (written, resolved) in valid.cron.iter().zip(&calendar.cron) {
        if written != resolved {
            notes.push(format!(
                "{written:?} runs at {resolved:?}: H is resolved from {namespace}/{name}{}",
                if namespace_unset {
                    " (the manifest names no namespace: -n gives the one it is applied in)"
                } else {
                    ""
                }
            ));
        }
    }
    if valid.suspend {
        notes.push(
            "spec.suspend is true: no run starts until it is false; the times are when it would run".into(),
        );
    }
    if let Some(limit) = valid.run_limit {
        notes.push(format!(
            "spec.runLimit is {limit}: runs stop after that many in all, whatever the times below"
        ));
    }
    if dj.spec.schedule.cron.is_empty() && dj.spec.schedule.intervals.is_empty() {
        notes.push("no spec.schedule.cron and no intervals: it runs only when triggered".into());
    }
    Ok(Subject {
        namespace,
        name,
        calendar,
        notes,
        recorded: None,
    })
}

/// One run in the listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunTime {
    /// The time the spec gives.
    pub time: DateTime<Utc>,
    /// The same, on the schedule's clock.
    pub local: String,
    /// With jitter, the run starts at `time` or later, before this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<DateTime<Utc>>,
}

/// Times in a row that one exclusion skips.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    pub count: usize,
    /// The exclusion, as the spec or calendar names it.
    pub by: String,
}

/// One month of the grid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Month {
    /// `YYYY-MM`.
    pub month: String,
    /// Days (1-31) on which a run starts.
    pub run_days: Vec<u32>,
    /// Days on which every time the spec gives is excluded.
    pub excluded_days: Vec<u32>,
}

/// What `preview` shows for one DurableJob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Preview {
    pub durable_job: String,
    pub schedule: String,
    pub time_zone: String,
    /// Runs are listed after this time.
    pub after: DateTime<Utc>,
    pub runs: Vec<RunTime>,
    pub skipped: Vec<Skipped>,
    /// Why fewer runs than asked for are listed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ends: Option<String>,
    pub months: Vec<Month>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// How Temporal's next times, as the operator recorded them, compare.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded: Option<String>,
}

fn local(slots: &Slots, t: DateTime<Utc>) -> String {
    t.with_timezone(&slots.time_zone())
        .format("%a %Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

/// The next `count` runs after `after`, the times skipped among them, and `months` months of
/// grid from `after`'s month (`None`: through the last run's month, at most three).
pub fn compute(
    s: &Subject,
    after: DateTime<Utc>,
    count: usize,
    months: Option<u32>,
) -> std::result::Result<Preview, String> {
    let slots = Slots::new(&s.calendar)?;
    let mut runs: Vec<RunTime> = Vec::new();
    let mut skipped: Vec<Skipped> = Vec::new();
    let mut walked = 0usize;
    let mut last = after;
    for slot in slots.after(after).take(WALK_BUDGET) {
        walked += 1;
        last = slot.at();
        match slot {
            Slot::Run { at, jitter } => {
                runs.push(RunTime {
                    time: at,
                    local: local(&slots, at),
                    before: (jitter > TimeDelta::zero()).then(|| at + jitter),
                });
                if runs.len() == count {
                    break;
                }
            }
            Slot::Excluded { at, by } => match skipped.last_mut() {
                Some(g) if g.by == by && runs.last().is_none_or(|r| r.time < g.first) => {
                    g.last = at;
                    g.count += 1;
                }
                _ => skipped.push(Skipped {
                    first: at,
                    last: at,
                    count: 1,
                    by: by.to_string(),
                }),
            },
        }
    }
    let ends = (runs.len() < count).then(|| {
        if walked == WALK_BUDGET {
            format!(
                "every one of the next {WALK_BUDGET} times up to {} is excluded",
                rfc3339(last)
            )
        } else if let Some(end) = s.calendar.end_at.filter(|e| *e >= after) {
            format!("no time after that before spec.schedule.endAt ({})", rfc3339(end))
        } else if s.calendar.end_at.is_some() {
            "spec.schedule.endAt has passed".to_string()
        } else if s.calendar.cron.is_empty() && s.calendar.intervals.is_empty() {
            "the schedule gives no times".to_string()
        } else {
            "no time after that (Temporal's calendars end in 2100)".to_string()
        }
    });
    let tz = slots.time_zone();
    let first = after.with_timezone(&tz).date_naive();
    let through = runs
        .last()
        .map(|r| r.time.with_timezone(&tz).date_naive())
        .unwrap_or(first);
    let span = months_between(first, through) + 1;
    let n = months.unwrap_or(span.min(DEFAULT_MONTHS_MAX));
    let months = (0..n)
        .map(|i| {
            let (y, m) = add_months(first.year(), first.month(), i);
            let days = slots::month(&slots, y, m);
            let which = |want: Day| {
                days.iter()
                    .enumerate()
                    .filter(|(_, d)| **d == want)
                    .map(|(i, _)| i as u32 + 1)
                    .collect()
            };
            Month {
                month: format!("{y}-{m:02}"),
                run_days: which(Day::Runs),
                excluded_days: which(Day::Excluded),
            }
        })
        .collect();
    let recorded = s.recorded.as_ref().map(|times| agreement(times, &runs, after));
    Ok(Preview {
        durable_job: format!("{}/{}", s.namespace, s.name),
        schedule: s.calendar.summary(),
        time_zone: s.calendar.time_zone.clone(),
        after,
        runs,
        skipped,
        ends,
        months,
        notes: s.notes.clone(),
        recorded,
    })
}

/// Whether Temporal's next times (status.nextRunTimes) are the listed runs: each, after
/// `after`, within its run's jitter window, in order.
pub(super) fn agreement(recorded: &[DateTime<Utc>], runs: &[RunTime], after: DateTime<Utc>) -> String {
    let upcoming: Vec<&DateTime<Utc>> = recorded.iter().filter(|t| **t > after).collect();
    if upcoming.is_empty() {
        return "status.nextRunTimes holds no time after this one yet (the operator records Temporal's next times as it syncs)".into();
    }
    let agree = upcoming.iter().zip(runs).all(|(t, r)| {
        let before = r.before.unwrap_or(r.time + TimeDelta::seconds(1));
        **t >= r.time && **t < before
    }) && upcoming.len() <= runs.len();
    if agree {
        format!(
            "Temporal's next {} time(s) in status.nextRunTimes agree",
            upcoming.len()
        )
    } else {
        format!(
            "Temporal's next times in status.nextRunTimes differ: {} (the operator may not have synced the latest spec yet: see kubectl durablejob status)",
            upcoming
                .iter()
                .map(|t| rfc3339(**t))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

pub(super) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn months_between(a: NaiveDate, b: NaiveDate) -> u32 {
    ((b.year() - a.year()) * 12 + b.month() as i32 - a.month() as i32).max(0) as u32
}

fn add_months(y: i32, m: u32, n: u32) -> (i32, u32) {
    let i = y * 12 + (m as i32 - 1) + n as i32;
    (i.div_euclid(12), i.rem_euclid(12) as u32 + 1)
}
