//! Cron entries as a DurableJob accepts them: five fields or an @macro, with Temporal's
//! meaning (day-of-month AND day-of-week). The syntax is checked here so that a bad entry is
//! reported on the resource with a message saying what to write, before Temporal sees it.

pub(crate) mod hash;
pub(crate) mod ranges;

use croner::{
    Cron,
    parser::{CronParser, Seconds, Year},
};

/// Macros Temporal expands; `@every` is deliberately absent (use `intervals`).
pub(crate) const MACROS: &[&str] = &[
    "@yearly",
    "@annually",
    "@monthly",
    "@weekly",
    "@daily",
    "@midnight",
    "@hourly",
];

const FIELD_NAMES: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];

/// Checks one cron entry; the error says what is wrong and what to write instead.
pub(crate) fn check(entry: &str) -> Result<(), String> {
    let entry = entry.trim();
    if let Some(known) = CHECKED.lock().expect("cron check cache").get(entry) {
        return known.clone();
    }
    let result = check_uncached(entry);
    let mut cache = CHECKED.lock().expect("cron check cache");
    if cache.len() >= CHECKED_CAPACITY {
        cache.clear();
    }
    cache.insert(entry.to_string(), result.clone());
    result
}

/// Entries already judged. Parsing one entry costs about a quarter of a million instructions
/// in croner (most of migrating a CronJob), and the same entries come again and again: in
/// `migrate` (its own translation, then the operator's validation), across a repository's
/// CronJobs, and in every reconcile of the operator. A judgement depends on the text alone.
static CHECKED: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, Result<(), String>>>> =
    std::sync::LazyLock::new(Default::default);

/// Distinct entries kept; past it the cache starts over (a bound, not an eviction policy).
const CHECKED_CAPACITY: usize = 4096;

fn check_uncached(entry: &str) -> Result<(), String> {
    if entry.is_empty() {
        return Err("is empty; write five fields such as \"0 9 * * 1-5\" or a macro such as @daily".into());
    }
    if entry.starts_with("CRON_TZ=") || entry.starts_with("TZ=") {
        return Err(format!(
            "{entry:?} starts with a time zone prefix; remove it and set spec.schedule.timeZone instead"
        ));
    }
    if entry.starts_with("@every") {
        return Err(format!(
            "{entry:?} is an interval; write it as spec.schedule.intervals: [{{every: ...}}] instead"
        ));
    }
    if entry.starts_with('@') {
        if MACROS.contains(&entry) {
            return Ok(());
        }
        return Err(format!(
            "{entry:?} is not a known macro; use one of {} or five fields",
            MACROS.join(" ")
        ));
    }
    let fields: Vec<&str> = entry.split_whitespace().collect();
    match fields.len() {
        5 => {}
        6 | 7 => {
            return Err(format!(
                "{entry:?} has {} fields; a DurableJob cron has exactly five (minute hour day-of-month month day-of-week): seconds and years are not supported",
                fields.len()
            ));
        }
        n => {
            return Err(format!(
                "{entry:?} has {n} field(s); write exactly five: minute hour day-of-month month day-of-week"
            ));
        }
    }
    for (field, name) in fields.iter().zip(FIELD_NAMES) {
        check_field_characters(field, name)?;
    }
    parser()
        .parse(entry)
        .map(|_| ())
        .map_err(|e| format!("{entry:?} is not a valid cron expression: {e}"))
}

/// Parses a checked entry for computing fire times (Temporal semantics: DOM and DOW both match).
pub(crate) fn parse(entry: &str) -> Result<Cron, String> {
    check(entry)?;
    parser().parse(entry.trim()).map_err(|e| e.to_string())
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .dom_and_dow(true)
        .sloppy_ranges(true)
        .build()
}

/// Refuses the extensions other cron dialects have and Temporal does not.
fn check_field_characters(field: &str, name: &str) -> Result<(), String> {
    if field.contains('?') {
        return Err(format!("{name} field {field:?} uses '?'; write '*' instead"));
    }
    let names_allowed = matches!(name, "month" | "day-of-week");
    for c in field.chars() {
        let ok = c.is_ascii_digit()
            || matches!(c, '*' | ',' | '-' | '/')
            || (names_allowed && c.is_ascii_alphabetic());
        if !ok {
            let hint = match c {
                'L' | 'l' | 'W' | 'w' | '#' => {
                    " (L, W and # are not supported by Temporal; list the days explicitly)"
                }
                _ => "",
            };
            return Err(format!("{name} field {field:?} has the character {c:?}{hint}"));
        }
    }
    if names_allowed {
        for token in field.split([',', '-', '/']) {
            if token.chars().any(|c| c.is_ascii_alphabetic()) && !is_known_name(token, name) {
                return Err(format!("{name} field {field:?}: {token:?} is not a {name} name"));
            }
        }
    }
    Ok(())
}

fn is_known_name(token: &str, field: &str) -> bool {
    let names: &[&str] = if field == "month" {
        &[
            "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
        ]
    } else {
        &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
    };
    names.contains(&token.to_ascii_uppercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn accepts_five_fields_names_ranges_steps_and_macros() {
        for ok in [
            "0 9 * * 1-5",
            "*/15 * * * *",
            "0 0 1 1 *",
            "5 4 * * SUN",
            "0 22 * * mon-fri",
            "0 0 1,15 JAN-JUN *",
            "0 12 * * 0,7",
            "10/5 * * * *",
            "  0 3 * * *  ",
            "@hourly",
            "@daily",
            "@midnight",
            "@weekly",
            "@monthly",
            "@yearly",
            "@annually",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_other_dialects_with_a_message_saying_what_to_write() {
        let cases = [
            ("0 0 9 * * 1-5", "seconds and years are not supported"),
            ("0 0 9 * * 1-5 2026", "seconds and years are not supported"),
            ("* * *", "write exactly five"),
            ("@every 1h", "spec.schedule.intervals"),
            ("CRON_TZ=Europe/Berlin 0 9 * * *", "spec.schedule.timeZone"),
            ("TZ=UTC 0 9 * * *", "spec.schedule.timeZone"),
            ("@reboot", "not a known macro"),
            ("0 9 ? * MON", "write '*' instead"),
            ("0 9 L * *", "L, W and # are not supported"),
            ("0 9 * * 5#2", "L, W and # are not supported"),
            ("0 9 * * FRX", "not a day-of-week name"),
            ("0 9 * JANUARYX *", "not a month name"),
            ("61 9 * * *", "not a valid cron expression"),
            ("0 25 * * *", "not a valid cron expression"),
            ("0 9 32 * *", "not a valid cron expression"),
            ("0 9 * 13 *", "not a valid cron expression"),
            ("", "is empty"),
        ];
        for (entry, expected) in cases {
            let err = check(entry).expect_err(entry);
            assert!(err.contains(expected), "{entry:?}: {err}");
        }
    }

    #[test]
    fn day_of_month_and_day_of_week_must_both_match_as_in_temporal() {
        // The 13th of a month that is also a Friday: 2026-02-13 and 2026-03-13 are Fridays.
        let cron = parse("0 0 13 * FRI").unwrap();
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let next = cron.find_next_occurrence(&start, false).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 2, 13, 0, 0, 0).unwrap());
    }
}
