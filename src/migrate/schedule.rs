//! A CronJob schedule, translated exactly into DurableJob cron entries.
//!
//! CronJob (robfig/cron's standard parser) and Temporal differ in one rule: when both
//! day-of-month and day-of-week are restricted, CronJob runs when *either* matches and
//! Temporal when *both* do. A field that starts with `*` (`*/n` included) or `?` counts as
//! unrestricted. So a schedule with both restricted becomes two entries, one per field.

/// The translated schedule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Translated {
    pub cron: Vec<String>,
    /// `@every` durations (Go syntax), for `spec.schedule.intervals`.
    pub intervals: Vec<String>,
    /// A `CRON_TZ=`/`TZ=` prefix found in the schedule.
    pub time_zone: Option<String>,
    /// What the user should know about the translation.
    pub notes: Vec<String>,
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Field bounds of CronJob's parser: minute, hour, day-of-month, month, day-of-week.
const BOUNDS: [(u32, u32, &str); 5] = [
    (0, 59, "minute"),
    (0, 23, "hour"),
    (1, 31, "day-of-month"),
    (1, 12, "month"),
    (0, 6, "day-of-week"),
];

/// Translates a CronJob `spec.schedule`.
pub fn translate(schedule: &str) -> Result<Translated, String> {
    let mut out = Translated::default();
    let mut s = schedule.trim();
    for prefix in ["CRON_TZ=", "TZ="] {
        if let Some(rest) = s.strip_prefix(prefix) {
            let (zone, rest) = rest
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("{schedule:?}: {prefix} needs a zone followed by a schedule"))?;
            out.time_zone = Some(zone.to_string());
            out.notes.push(format!(
                "the {prefix} prefix became spec.schedule.timeZone: {zone}"
            ));
            s = rest.trim();
        }
    }
    if let Some(d) = s.strip_prefix("@every") {
        let d = d.trim();
        let parsed: kube::core::Duration = d
            .parse()
            .map_err(|e| format!("{schedule:?}: @every {d:?} is not a duration ({e})"))?;
        if std::time::Duration::from(parsed) < std::time::Duration::from_secs(1) {
            return Err(format!("{schedule:?}: @every needs at least 1s"));
        }
        out.intervals.push(d.to_string());
        out.notes.push(format!(
            "@every {d} became an interval: Temporal counts intervals from the Unix epoch, CronJob from the previous run"
        ));
        return Ok(out);
    }
    if s.starts_with('@') {
        let lower = s.to_ascii_lowercase();
        if crate::cron::MACROS.contains(&lower.as_str()) {
            out.cron.push(lower);
            return Ok(out);
        }
        return Err(format!(
            "{schedule:?}: unknown descriptor (CronJob accepts {} and @every)",
            crate::cron::MACROS.join(" ")
        ));
    }
    let fields: Vec<&str> = s.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "{schedule:?}: a CronJob schedule has five fields, not {}",
            fields.len()
        ));
    }
    let mut normalized = Vec::with_capacity(5);
    for (field, (min, max, name)) in fields.iter().zip(BOUNDS) {
        let names = match name {
            "month" => Some(MONTHS),
            "day-of-week" => Some(DAYS),
            _ => None,
        };
        normalized.push(
            normalize_field(field, min, max, names)
                .map_err(|e| format!("{schedule:?}: {name} field {field:?}: {e}"))?,
        );
    }
    let unrestricted = |f: &str| f.starts_with('*') || f.starts_with('?');
    let (dom, dow) = (fields[2], fields[4]);
    let (m, h, nd, mo, nw) = (
        &normalized[0],
        &normalized[1],
        &normalized[2],
        &normalized[3],
        &normalized[4],
    );
    if !unrestricted(dom) && !unrestricted(dow) {
        out.cron.push(format!("{m} {h} {nd} {mo} *"));
        out.cron.push(format!("{m} {h} * {mo} {nw}"));
        out.notes.push(format!(
            "day-of-month {dom:?} and day-of-week {dow:?} are both restricted: CronJob runs when either matches, Temporal when both do, so the schedule became two entries"
        ));
    } else {
        out.cron.push(format!("{m} {h} {nd} {mo} {nw}"));
    }
    Ok(out)
}

/// Checks a field as CronJob's parser does and writes it in a form both accept (`?` → `*`,
/// names lower-cased).
fn normalize_field(field: &str, min: u32, max: u32, names: Option<&[&str]>) -> Result<String, String> {
    let mut parts = vec![];
    for part in field.split(',') {
        if part.is_empty() {
            return Err("empty list element".into());
        }
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| format!("step {s:?} is not a number"))?;
                if step == 0 {
                    return Err("a step of 0".into());
                }
                (r, Some(step))
            }
            None => (part, None),
        };
        let range = if range == "?" { "*" } else { range };
        let range_text = if range == "*" {
            "*".to_string()
        } else {
            let (a, b) = match range.split_once('-') {
                Some((a, b)) => (value(a, min, max, names)?, Some(value(b, min, max, names)?)),
                None => (value(range, min, max, names)?, None),
            };
            if let Some(b) = b {
                if b < a {
                    return Err(format!("range {range:?} ends before it starts"));
                }
                format!("{a}-{b}")
            } else {
                a.to_string()
            }
        };
        parts.push(match step {
            Some(s) => format!("{range_text}/{s}"),
            None => range_text,
        });
    }
    Ok(parts.join(","))
}

fn value(text: &str, min: u32, max: u32, names: Option<&[&str]>) -> Result<u32, String> {
    let lower = text.to_ascii_lowercase();
    if let Some(names) = names
        && let Some(i) = names.iter().position(|n| *n == lower)
    {
        return Ok(i as u32 + min);
    }
    let n: u32 = text.parse().map_err(|_| {
        format!(
            "{text:?} is not a number{}",
            if names.is_some() { " or a name" } else { "" }
        )
    })?;
    if n < min || n > max {
        return Err(format!("{n} is outside {min}-{max}"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cron(s: &str) -> Vec<String> {
        translate(s).unwrap().cron
    }

    #[test]
    fn plain_schedules_carry_over() {
        assert_eq!(cron("*/15 * * * *"), vec!["*/15 * * * *"]);
        assert_eq!(cron("0 9 * * 1-5"), vec!["0 9 * * 1-5"]);
        assert_eq!(cron("0 9 ? * MON-FRI"), vec!["0 9 * * 1-5"]);
        assert_eq!(cron("30 2 1 JAN,jul *"), vec!["30 2 1 1,7 *"]);
        assert_eq!(cron("5/10 * * * *"), vec!["5/10 * * * *"]);
        assert_eq!(cron("@Daily"), vec!["@daily"]);
    }

    #[test]
    fn both_day_fields_restricted_become_two_entries() {
        let t = translate("0 12 1,15 * 5").unwrap();
        assert_eq!(t.cron, vec!["0 12 1,15 * *", "0 12 * * 5"]);
        assert!(t.notes[0].contains("either"));
        assert_eq!(
            cron("0 12 */2 * 5"),
            vec!["0 12 */2 * 5"],
            "a */n field is unrestricted for the rule"
        );
        assert_eq!(cron("0 12 1 * ?"), vec!["0 12 1 * *"]);
    }

    #[test]
    fn zone_prefixes_and_every_are_moved_to_their_fields() {
        let t = translate("CRON_TZ=Europe/Berlin 0 3 * * *").unwrap();
        assert_eq!(
            (t.time_zone.as_deref(), t.cron),
            (Some("Europe/Berlin"), vec!["0 3 * * *".to_string()])
        );
        let t = translate("TZ=Asia/Tokyo @hourly").unwrap();
        assert_eq!(t.time_zone.as_deref(), Some("Asia/Tokyo"));
        let t = translate("@every 1h30m").unwrap();
        assert_eq!((t.cron.len(), t.intervals), (0, vec!["1h30m".to_string()]));
    }

    #[test]
    fn invalid_schedules_name_the_field() {
        for (s, expected) in [
            ("* * *", "five fields"),
            ("0 0 9 * * *", "five fields"),
            ("61 * * * *", "minute field"),
            ("0 24 * * *", "hour field"),
            ("0 0 0 * *", "day-of-month field"),
            ("0 0 * 13 *", "month field"),
            ("0 0 * * 7", "day-of-week field"),
            ("0 0 * * FRY", "day-of-week field"),
            ("5-1 * * * *", "ends before it starts"),
            ("*/0 * * * *", "step of 0"),
            ("@reboot", "unknown descriptor"),
            ("@every soon", "not a duration"),
        ] {
            let e = translate(s).unwrap_err();
            assert!(e.contains(expected), "{s}: {e}");
        }
    }
}

/// Property test: the translation is exact. Two small reference implementations, written
/// independently of the code above: CronJob's semantics (robfig/cron: day-of-month OR
/// day-of-week unless one starts with `*`/`?`) and Temporal's (both must match, entries are a
/// union). For random schedules the next 500 fire times agree, in UTC and fixed offsets.
#[cfg(test)]
mod property {
    use super::translate;
    use chrono::{Datelike, Duration as TimeDelta, NaiveDate};
    use proptest::prelude::*;

    const MONTHS: [&str; 12] = [
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ];
    const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

    /// Values a field matches (names resolved), and whether it started with `*` or `?`.
    fn field_set(f: &str, min: u32, max: u32, names: &[&str]) -> (Vec<bool>, bool) {
        let mut set = vec![false; (max + 1) as usize];
        let star = f.starts_with('*') || f.starts_with('?');
        let val = |s: &str| -> u32 {
            names
                .iter()
                .position(|n| n.eq_ignore_ascii_case(s))
                .map(|i| i as u32 + min)
                .unwrap_or_else(|| s.parse().unwrap())
        };
        for part in f.split(',') {
            let (r, step) = part
                .split_once('/')
                .map(|(r, s)| (r, s.parse::<u32>().unwrap()))
                .unwrap_or((part, 1));
            let (a, b) = if r == "*" || r == "?" {
                (min, max)
            } else if let Some((a, b)) = r.split_once('-') {
                (val(a), val(b))
            } else if part.contains('/') {
                (val(r), max)
            } else {
                (val(r), val(r))
            };
            let mut v = a;
            while v <= b {
                set[v as usize] = true;
                v += step;
            }
        }
        (set, star)
    }

    struct Fields {
        minute: Vec<bool>,
        hour: Vec<bool>,
        dom: (Vec<bool>, bool),
        month: Vec<bool>,
        dow: (Vec<bool>, bool),
    }

    fn parse(expr: &str) -> Fields {
        let expr = match expr {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            e => e,
        };
        let f: Vec<&str> = expr.split_whitespace().collect();
        Fields {
            minute: field_set(f[0], 0, 59, &[]).0,
            hour: field_set(f[1], 0, 23, &[]).0,
            dom: field_set(f[2], 1, 31, &[]),
            month: field_set(f[3], 1, 12, &MONTHS).0,
            dow: field_set(f[4], 0, 6, &DAYS),
        }
    }

    fn fire_times(
        start: NaiveDate,
        day_matches: impl Fn(NaiveDate) -> bool,
        hours: &[bool],
        minutes: &[bool],
    ) -> Vec<i64> {
        let mut out = vec![];
        let mut d = start;
        for _ in 0..(366 * 8) {
            if day_matches(d) {
                for h in (0..24).filter(|h| hours[*h as usize]) {
                    for m in (0..60).filter(|m| minutes[*m as usize]) {
                        out.push(d.and_hms_opt(h, m, 0).unwrap().and_utc().timestamp());
                        if out.len() == 500 {
                            return out;
                        }
                    }
                }
            }
            d += TimeDelta::days(1);
        }
        out
    }

    fn cronjob_times(expr: &str, start: NaiveDate) -> Vec<i64> {
        let f = parse(expr);
        let day = |d: NaiveDate| {
            let dom = f.dom.0[d.day() as usize];
            let dow = f.dow.0[d.weekday().num_days_from_sunday() as usize];
            f.month[d.month() as usize]
                && if f.dom.1 || f.dow.1 {
                    dom && dow
                } else {
                    dom || dow
                }
        };
        fire_times(start, day, &f.hour, &f.minute)
    }

    fn temporal_times(entries: &[String], start: NaiveDate) -> Vec<i64> {
        let mut all: Vec<i64> = entries
            .iter()
            .flat_map(|e| {
                let f = parse(e);
                let day = |d: NaiveDate| {
                    f.month[d.month() as usize]
                        && f.dom.0[d.day() as usize]
                        && f.dow.0[d.weekday().num_days_from_sunday() as usize]
                };
                fire_times(start, day, &f.hour, &f.minute)
            })
            .collect();
        all.sort();
        all.dedup();
        all.truncate(500);
        all
    }

    fn field(min: u32, max: u32, names: &'static [&'static str]) -> impl Strategy<Value = String> {
        let value = move || {
            (min..=max, any::<bool>()).prop_map(move |(v, named)| {
                if named && !names.is_empty() {
                    names[(v - min) as usize].to_string()
                } else {
                    v.to_string()
                }
            })
        };
        let part = prop_oneof![
            value(),
            (min..=max, min..=max).prop_map(|(a, b)| format!("{}-{}", a.min(b), a.max(b))),
            (min..=max, min..=max, 1..6u32).prop_map(|(a, b, s)| format!("{}-{}/{s}", a.min(b), a.max(b))),
            (min..=max, 1..8u32).prop_map(|(a, s)| format!("{a}/{s}")),
        ];
        prop_oneof![
            2 => Just("*".to_string()),
            1 => (1..10u32).prop_map(|s| format!("*/{s}")),
            4 => proptest::collection::vec(part, 1..3).prop_map(|p| p.join(",")),
        ]
    }

    fn schedule() -> impl Strategy<Value = String> {
        let dom = prop_oneof![3 => field(1, 31, &[]), 1 => Just("?".to_string())];
        let dow = prop_oneof![3 => field(0, 6, &DAYS), 1 => Just("?".to_string())];
        (
            field(0, 59, &[]),
            field(0, 23, &[]),
            dom,
            field(1, 12, &MONTHS),
            dow,
        )
            .prop_map(|(m, h, d, mo, w)| format!("{m} {h} {d} {mo} {w}"))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn the_next_500_fire_times_agree(expr in schedule(), offset_hours in -12i64..=14) {
            let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
            let t = translate(&expr).unwrap();
            for entry in &t.cron {
                prop_assert!(crate::cron::check(entry).is_ok(), "{} → {}: {:?}", expr, entry, crate::cron::check(entry));
            }
            // both sides read the schedule in the same zone; a fixed offset shifts both alike
            let shift = |v: Vec<i64>| v.into_iter().map(|s| s - offset_hours * 3600).collect::<Vec<_>>();
            let cronjob = shift(cronjob_times(&expr, start));
            let temporal = shift(temporal_times(&t.cron, start));
            prop_assert_eq!(cronjob, temporal, "{} → {:?}", expr, t.cron);
        }
    }

    #[test]
    fn friday_the_13th_shows_the_difference_the_translation_closes() {
        let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let cronjob = cronjob_times("0 0 13 * 5", start);
        let naive = temporal_times(&["0 0 13 * 5".to_string()], start);
        assert!(
            cronjob.len() > naive.len() * 5,
            "CronJob: every 13th and every Friday; Temporal read as-is: Friday the 13th only"
        );
        assert_eq!(
            cronjob,
            temporal_times(&translate("0 0 13 * 5").unwrap().cron, start)
        );
    }
}
