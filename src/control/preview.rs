//! `durablejob preview`: when a DurableJob will run, before it is applied (`-f`, offline) or
//! as it is applied (`kubectl durablejob preview NAME`): the next runs as Temporal computes
//! them ([`crate::desired::slots`]), the times exclusions skip, and a month grid.
//!
//! The schedule is built as the operator builds it: the spec validated, `H` resolved for the
//! resource's namespace and name, the referenced DurableJobCalendars' exclusions added.
//! Everything but reading the files or the cluster is pure.

use std::{io::Read, path::PathBuf};

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, TimeDelta, Utc};
use kube::{Api, ResourceExt};
use serde::Serialize;
use serde_json::Value;

use super::args::{Output, PreviewArgs};
use super::{ControlError, Result, connect, get, serialize_json, serialize_yaml, usage, user_agent};
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
fn agreement(recorded: &[DateTime<Utc>], runs: &[RunTime], after: DateTime<Utc>) -> String {
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

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn months_between(a: NaiveDate, b: NaiveDate) -> u32 {
    ((b.year() - a.year()) * 12 + b.month() as i32 - a.month() as i32).max(0) as u32
}

fn add_months(y: i32, m: u32, n: u32) -> (i32, u32) {
    let i = y * 12 + (m as i32 - 1) + n as i32;
    (i.div_euclid(12), i.rem_euclid(12) as u32 + 1)
}

const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// One month as `cal` draws it, weeks from Monday, `*` on run days and `x` on excluded ones.
fn grid(m: &Month, time_zone: &str) -> String {
    let (y, mo) = m.month.split_once('-').expect("YYYY-MM");
    let (y, mo): (i32, u32) = (y.parse().expect("year"), mo.parse().expect("month"));
    let first = NaiveDate::from_ymd_opt(y, mo, 1).expect("a month");
    let days = (first
        .checked_add_months(chrono::Months::new(1))
        .expect("next month")
        - first)
        .num_days() as u32;
    let mut out = format!("{} {y} ({time_zone})\n", MONTH_NAMES[mo as usize - 1]);
    out.push_str(
        ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"]
            .map(|d| format!("{d:>3} "))
            .concat()
            .trim_end(),
    );
    out.push('\n');
    let mut line = "    ".repeat(first.weekday().num_days_from_monday() as usize);
    for d in 1..=days {
        let mark = if m.run_days.contains(&d) {
            '*'
        } else if m.excluded_days.contains(&d) {
            'x'
        } else {
            ' '
        };
        line.push_str(&format!("{d:>3}{mark}"));
        let weekday = NaiveDate::from_ymd_opt(y, mo, d).expect("a day").weekday();
        if weekday == chrono::Weekday::Sun || d == days {
            out.push_str(line.trim_end());
            out.push('\n');
            line.clear();
        }
    }
    out
}

/// The text `preview` prints for one DurableJob.
pub fn render(p: &Preview) -> String {
    let mut out = String::new();
    out.push_str(&format!("DurableJob  {}\n", p.durable_job));
    out.push_str(&format!(
        "Schedule    {}\n",
        if p.schedule.is_empty() {
            "(none)"
        } else {
            &p.schedule
        }
    ));
    out.push_str(&format!("Time zone   {}\n", p.time_zone));
    for n in &p.notes {
        out.push_str(&format!("Note        {n}\n"));
    }
    if let Some(r) = &p.recorded {
        out.push_str(&format!("Temporal    {r}\n"));
    }
    out.push_str(&format!(
        "\nNext {} run(s) after {}:\n",
        p.runs.len(),
        rfc3339(p.after)
    ));
    let mut skipped = p.skipped.iter().peekable();
    let line_of_skip = |g: &Skipped| {
        if g.count == 1 {
            format!("  skipped {}  excluded by {}\n", rfc3339(g.first), g.by)
        } else {
            format!(
                "  skipped {} times {} .. {}  excluded by {}\n",
                g.count,
                rfc3339(g.first),
                rfc3339(g.last),
                g.by
            )
        }
    };
    for r in &p.runs {
        while let Some(g) = skipped.next_if(|g| g.first < r.time) {
            out.push_str(&line_of_skip(g));
        }
        let jitter = r
            .before
            .map(|b| format!("  (jitter: starts before {})", rfc3339(b)))
            .unwrap_or_default();
        out.push_str(&format!("  {}  {}{jitter}\n", r.local, rfc3339(r.time)));
    }
    for g in skipped {
        out.push_str(&line_of_skip(g));
    }
    if let Some(e) = &p.ends {
        out.push_str(&format!("  ({e})\n"));
    }
    for m in &p.months {
        out.push('\n');
        out.push_str(&grid(m, &p.time_zone));
    }
    if !p.months.is_empty() {
        out.push_str("  * a run starts   x every time excluded\n");
    }
    out
}

/// A manifest document as read: its kind and where it came from.
fn documents(paths: &[PathBuf], stdin: &mut dyn Read) -> Result<Vec<(String, Value)>> {
    let mut files: Vec<PathBuf> = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            files.push(p.clone());
            continue;
        }
        let meta =
            std::fs::metadata(p).map_err(|e| usage(format!("-f {}: cannot read it: {e}", p.display())))?;
        if meta.is_dir() {
            let mut inner: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| usage(format!("-f {}: cannot read the folder: {e}", p.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.extension()
                        .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
                })
                .collect();
            inner.sort();
            files.extend(inner);
        } else {
            files.push(p.clone());
        }
    }
    let mut out = Vec::new();
    for f in files {
        let (display, text) = if f.as_os_str() == "-" {
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(|e| usage(format!("-f -: cannot read stdin: {e}")))?;
            ("<stdin>".to_string(), text)
        } else {
            let text = std::fs::read_to_string(&f)
                .map_err(|e| usage(format!("-f {}: cannot read it: {e}", f.display())))?;
            (f.display().to_string(), text)
        };
        let docs: Vec<Value> =
            crate::yaml::documents(&text).map_err(|e| usage(format!("{display}: not YAML or JSON: {e}")))?;
        for (i, doc) in docs.into_iter().enumerate() {
            let items = match doc.get("kind").and_then(Value::as_str) {
                Some(k) if k.ends_with("List") => doc
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                _ => vec![doc],
            };
            for item in items.into_iter().filter(|d| !d.is_null()) {
                out.push((format!("{display}, document {}", i + 1), item));
            }
        }
    }
    Ok(out)
}

fn of_kind<T: serde::de::DeserializeOwned>(docs: &[(String, Value)], kind: &str) -> Result<Vec<T>> {
    docs.iter()
        .filter(|(_, d)| {
            d.get("kind").and_then(Value::as_str) == Some(kind)
                && d.get("apiVersion")
                    .and_then(Value::as_str)
                    .is_some_and(|v| v.starts_with("durablejob.dev/"))
        })
        .map(|(at, d)| {
            serde_path_to_error::deserialize(d)
                .map_err(|e| usage(format!("{at}: not a valid {kind}: {}: {}", e.path(), e.inner())))
        })
        .collect()
}

/// `preview [NAME] [-f FILE...]`.
pub async fn preview(a: &PreviewArgs, stdin: &mut dyn Read) -> Result<String> {
    let after = a.from.unwrap_or_else(Utc::now);
    let count = a.count as usize;
    let subjects: Vec<std::result::Result<Subject, String>> = if a.filename.is_empty() {
        let Some(name) = &a.name else {
            return Err(usage(
                "preview needs a DurableJob: NAME for an applied one, or -f FILE for a manifest",
            ));
        };
        vec![Ok(applied(a, name).await?)]
    } else {
        let docs = documents(&a.filename, stdin)?;
        let calendars: Vec<DurableJobCalendar> = of_kind(&docs, "DurableJobCalendar")?;
        let mut jobs: Vec<DurableJob> = of_kind(&docs, "DurableJob")?;
        if let Some(name) = &a.name {
            let names: Vec<String> = jobs.iter().map(|j| j.name_any()).collect();
            jobs.retain(|j| j.name_any() == *name);
            if jobs.is_empty() {
                return Err(usage(format!(
                    "no DurableJob {name:?} in the files given (they hold: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )));
            }
        }
        if jobs.is_empty() {
            let cronjobs = docs
                .iter()
                .any(|(_, d)| d.get("kind").and_then(Value::as_str) == Some("CronJob"));
            return Err(usage(if cronjobs {
                "the files hold CronJobs and no DurableJob: convert them first (durablejob migrate FILE | durablejob preview -f -)"
            } else {
                "the files hold no DurableJob (kind: DurableJob, apiVersion: durablejob.dev/v1alpha1)"
            }));
        }
        let namespace = a.cluster.namespace.clone().unwrap_or_else(|| "default".into());
        jobs.iter().map(|j| subject(j, &namespace, &calendars)).collect()
    };
    let mut previews = Vec::new();
    let mut errors = Vec::new();
    for s in subjects {
        match s.and_then(|s| compute(&s, after, count, a.months)) {
            Ok(p) => previews.push(p),
            Err(e) => errors.push(e),
        }
    }
    let text = match a.output {
        Some(Output::Json) if previews.len() == 1 => serialize_json(&previews[0])?,
        Some(Output::Yaml) if previews.len() == 1 => serialize_yaml(&previews[0])?,
        Some(Output::Json) => serialize_json(&serde_json::json!({ "items": previews }))?,
        Some(Output::Yaml) => serialize_yaml(&serde_json::json!({ "items": previews }))?,
        _ => previews.iter().map(render).collect::<Vec<_>>().join("\n---\n\n"),
    };
    if errors.is_empty() {
        return Ok(text);
    }
    // the DurableJobs that could be previewed are printed; the others fail the command
    print!("{text}");
    Err(ControlError::Usage(errors.join("\n")))
}

/// An applied DurableJob and its calendars, read with the caller's credentials.
async fn applied(a: &PreviewArgs, name: &str) -> Result<Subject> {
    let (client, namespace) = connect(&a.cluster, &user_agent()).await?;
    let dj = get(&client, &namespace, name).await?;
    let api: Api<DurableJobCalendar> = Api::namespaced(client, &namespace);
    let mut calendars = Vec::new();
    for c in &dj.spec.schedule.exclude_calendars {
        match api.get_opt(c).await {
            Ok(Some(cal)) => calendars.push(cal),
            Ok(None) => {
                return Err(usage(format!(
                    "durablejob {name} lists DurableJobCalendar {c:?} in spec.schedule.excludeCalendars, and it does not exist in namespace {namespace}: create it or remove it from the list"
                )));
            }
            Err(e) => {
                return Err(usage(format!(
                    "cannot read DurableJobCalendar {c:?} in namespace {namespace}: {e}"
                )));
            }
        }
    }
    let mut s = subject(&dj, &namespace, &calendars).map_err(usage)?;
    let status = dj.status.clone().unwrap_or_default();
    if status.paused && !dj.spec.suspend {
        s.notes.push(format!(
            "the schedule is paused in Temporal{}: kubectl durablejob resume {name} lets it run",
            status
                .paused_reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        ));
    }
    let synced = status.observed_generation.is_some() && status.observed_generation == dj.metadata.generation;
    if synced {
        s.recorded = Some(status.next_run_times.clone());
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn manifest(yaml: &str) -> Vec<(String, Value)> {
        crate::yaml::documents::<Value>(yaml)
            .unwrap()
            .into_iter()
            .map(|d| ("test".to_string(), d))
            .collect()
    }

    const JOB: &str = r#"
apiVersion: durablejob.dev/v1alpha1
kind: DurableJob
metadata: {name: report, namespace: billing}
spec:
  schedule:
    cron: ["0 9 * * 1-5"]
    timeZone: Europe/Berlin
    jitter: 30s
    exclude: {dates: ["2026-12-24"]}
    excludeCalendars: [holidays]
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: c, image: busybox}]
---
apiVersion: durablejob.dev/v1alpha1
kind: DurableJobCalendar
metadata: {name: holidays}
spec:
  dates: ["2026-12-25", "2026-12-31"]
"#;

    fn preview_of(yaml: &str, after: DateTime<Utc>, count: usize) -> Preview {
        let docs = manifest(yaml);
        let cals: Vec<DurableJobCalendar> = of_kind(&docs, "DurableJobCalendar").unwrap();
        let jobs: Vec<DurableJob> = of_kind(&docs, "DurableJob").unwrap();
        let s = subject(&jobs[0], "default", &cals).unwrap();
        compute(&s, after, count, None).unwrap()
    }

    #[test]
    fn a_manifest_with_its_calendar_lists_runs_skips_and_marks_the_grid() {
        let after = Utc.with_ymd_and_hms(2026, 12, 22, 12, 0, 0).unwrap();
        let p = preview_of(JOB, after, 3);
        assert_eq!(p.durable_job, "billing/report");
        assert_eq!(
            p.runs.iter().map(|r| rfc3339(r.time)).collect::<Vec<_>>(),
            [
                "2026-12-23T08:00:00Z",
                "2026-12-28T08:00:00Z",
                "2026-12-29T08:00:00Z"
            ]
        );
        assert_eq!(p.runs[0].local, "Wed 2026-12-23 09:00:00 CET");
        assert_eq!(
            p.runs[0].before,
            Some(Utc.with_ymd_and_hms(2026, 12, 23, 8, 0, 30).unwrap()),
            "jitter shows as a window"
        );
        assert_eq!(
            p.skipped
                .iter()
                .map(|g| (g.count, g.by.as_str()))
                .collect::<Vec<_>>(),
            [
                (1, "spec.schedule.exclude.dates 2026-12"),
                (1, "DurableJobCalendar holidays: spec.dates 2026-12")
            ]
        );
        assert_eq!(p.months.len(), 1);
        assert_eq!(p.months[0].excluded_days, [24, 25, 31]);
        assert!(p.months[0].run_days.contains(&23) && !p.months[0].run_days.contains(&26));
        let text = render(&p);
        assert!(text.contains("December 2026 (Europe/Berlin)"), "{text}");
        assert!(text.contains(" 22* 23* 24x 25x 26  27"), "{text}");
        assert!(
            text.contains("skipped 2026-12-24T08:00:00Z  excluded by spec.schedule.exclude.dates 2026-12"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_calendar_and_an_invalid_spec_say_what_to_do() {
        let docs = manifest(JOB.split("---").next().unwrap());
        let jobs: Vec<DurableJob> = of_kind(&docs, "DurableJob").unwrap();
        let e = subject(&jobs[0], "default", &[]).unwrap_err();
        assert!(
            e.contains("\"holidays\"") && e.contains("-f holidays.yaml"),
            "{e}"
        );
        let bad = JOB.replace("0 9 * * 1-5", "0 9 * *");
        let docs = manifest(&bad);
        let jobs: Vec<DurableJob> = of_kind(&docs, "DurableJob").unwrap();
        let e = subject(&jobs[0], "default", &[]).unwrap_err();
        assert!(e.contains("spec.schedule.cron[0]"), "{e}");
        let docs = manifest(&JOB.replace("timeZone: Europe/Berlin", "timeZone: [1]"));
        let e = of_kind::<DurableJob>(&docs, "DurableJob")
            .unwrap_err()
            .to_string();
        assert!(e.contains("spec.schedule.timeZone"), "{e}");
    }

    #[test]
    fn h_is_resolved_for_the_resource_and_said_so() {
        let yaml = JOB
            .replace("0 9 * * 1-5", "H 9 * * *")
            .replace("excludeCalendars: [holidays]", "");
        let docs = manifest(&yaml);
        let jobs: Vec<DurableJob> = of_kind(&docs, "DurableJob").unwrap();
        let s = subject(&jobs[0], "default", &[]).unwrap();
        assert_ne!(s.calendar.cron[0], "H 9 * * *");
        assert!(s.notes[0].contains("billing/report"), "{:?}", s.notes);
    }

    #[test]
    fn an_end_before_count_is_explained() {
        let yaml = JOB.replace("excludeCalendars: [holidays]", "endAt: \"2026-12-23T12:00:00Z\"");
        let p = preview_of(&yaml, Utc.with_ymd_and_hms(2026, 12, 22, 12, 0, 0).unwrap(), 5);
        assert_eq!(p.runs.len(), 1);
        assert!(p.ends.as_deref().unwrap().contains("endAt"), "{:?}", p.ends);
    }

    #[test]
    fn recorded_times_agree_within_the_jitter_window_or_are_shown() {
        let after = Utc.with_ymd_and_hms(2026, 12, 22, 12, 0, 0).unwrap();
        let p = preview_of(JOB, after, 3);
        let t = |s: u32| Utc.with_ymd_and_hms(2026, 12, 23, 8, 0, s).unwrap();
        assert!(agreement(&[t(12)], &p.runs, after).contains("agree"));
        assert!(agreement(&[t(45)], &p.runs, after).contains("differ"));
    }
}
