//! The hash symbol `H` (Jenkins' meaning) in the minute and hour fields: a value derived from
//! the resource's namespace and name, so hundreds of `H * * * *` schedules spread over the
//! hour instead of all firing at :00, and each keeps its minute across reconciles, operator
//! restarts and re-creations.
//!
//! Forms: `H` (any value of the field), `H(a-b)` (a value in a..=b), `H/s` (every s, from a
//! hashed start below s) and `H(a-b)/s`.

use crate::util::digest;

/// For an entry that starts its runs at minute 0 (`0 9 * * *`, `@hourly`, `@daily` …), the
/// same entry with a hashed minute (`H 9 * * *`); `None` for any other entry.
pub(crate) fn staggered(entry: &str) -> Option<String> {
    let entry = entry.trim();
    let macro_fields = match entry {
        "@hourly" => Some("0 * * * *"),
        "@daily" | "@midnight" => Some("0 0 * * *"),
        "@weekly" => Some("0 0 * * 0"),
        "@monthly" => Some("0 0 1 * *"),
        "@yearly" | "@annually" => Some("0 0 1 1 *"),
        _ => None,
    };
    let fields: Vec<&str> = macro_fields.unwrap_or(entry).split_whitespace().collect();
    (fields.len() == 5 && fields[0] == "0").then(|| format!("H {}", fields[1..].join(" ")))
}

/// The entry with every `H` replaced for the resource `namespace/name`. Entries without `H`
/// come back trimmed and unchanged. The error names the field and what to write.
pub(crate) fn expand(entry: &str, namespace: &str, name: &str) -> Result<String, String> {
    let entry = entry.trim();
    if entry.starts_with('@') || !entry.contains('H') {
        return Ok(entry.to_string());
    }
    let fields: Vec<&str> = entry.split_whitespace().collect();
    let mut out = Vec::with_capacity(fields.len());
    for (i, field) in fields.iter().enumerate() {
        if !field.contains('H') {
            out.push((*field).to_string());
            continue;
        }
        let (label, max) = match i {
            0 => ("minute", 59),
            1 => ("hour", 23),
            _ => {
                return Err(format!(
                    "{entry:?}: H is only allowed in the minute and hour fields (the first two)"
                ));
            }
        };
        let seed = seed(namespace, name, label);
        let items: Result<Vec<String>, String> = field
            .split(',')
            .map(|item| expand_item(item, label, max, seed))
            .collect();
        out.push(items.map_err(|e| format!("{entry:?}: {e}"))?.join(","));
    }
    Ok(out.join(" "))
}

/// A number stable for one resource and field.
fn seed(namespace: &str, name: &str, field: &str) -> u64 {
    let hex = digest::hex_sha256(format!("{namespace}/{name}#{field}").as_bytes());
    u64::from_str_radix(&hex[..16], 16).expect("hex digits")
}

fn expand_item(item: &str, label: &str, max: u32, seed: u64) -> Result<String, String> {
    if !item.contains('H') {
        return Ok(item.to_string());
    }
    let usage = format!("write H, H(a-b), H/step or H(a-b)/step in the {label} field");
    let rest = item
        .strip_prefix('H')
        .ok_or_else(|| format!("{label} field item {item:?} has H in the middle; {usage}"))?;
    let (range, rest) = match rest.strip_prefix('(') {
        Some(r) => {
            let (inner, after) = r
                .split_once(')')
                .ok_or_else(|| format!("{label} field item {item:?} has no closing ')'; {usage}"))?;
            let (a, b) = inner
                .split_once('-')
                .ok_or_else(|| format!("{label} field item {item:?}: H(...) needs a range a-b; {usage}"))?;
            let parse = |s: &str| {
                s.parse::<u32>()
                    .map_err(|_| format!("{label} field item {item:?}: {s:?} is not a number; {usage}"))
            };
            let (a, b) = (parse(a)?, parse(b)?);
            if a > b || b > max {
                return Err(format!(
                    "{label} field item {item:?}: the range must be within 0-{max} and start before it ends"
                ));
            }
            ((a, b), after)
        }
        None => ((0, max), rest),
    };
    let (lo, hi) = range;
    if rest.is_empty() {
        let value = lo + (seed % u64::from(hi - lo + 1)) as u32;
        return Ok(value.to_string());
    }
    let step = rest
        .strip_prefix('/')
        .and_then(|s| s.parse::<u32>().ok())
        .filter(|s| *s >= 1)
        .ok_or_else(|| {
            format!("{label} field item {item:?}: after H only (a-b) or /step may follow; {usage}")
        })?;
    let span = hi - lo + 1;
    let start = lo + (seed % u64::from(step.min(span))) as u32;
    Ok(format!("{start}-{hi}/{step}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn h_is_stable_for_a_resource_and_differs_between_fields() {
        let a = expand("H H * * *", "team-a", "report").unwrap();
        assert_eq!(a, expand("H H * * *", "team-a", "report").unwrap());
        let fields: Vec<u32> = a.split(' ').take(2).map(|f| f.parse().unwrap()).collect();
        assert!(fields[0] <= 59 && fields[1] <= 23, "{a}");
        assert_eq!(
            crate::cron::check(&a),
            Ok(()),
            "the expansion is a plain cron entry"
        );
    }

    #[test]
    fn two_hundred_hourly_resources_spread_over_at_least_45_minutes() {
        let minutes: BTreeSet<String> = (0..200)
            .map(|i| {
                let e = expand("H * * * *", "jobs", &format!("job-{i}")).unwrap();
                e.split(' ').next().unwrap().to_string()
            })
            .collect();
        assert!(minutes.len() >= 45, "{} distinct minutes", minutes.len());
    }

    #[test]
    fn ranges_and_steps_stay_inside_what_was_asked() {
        for i in 0..100 {
            let name = format!("n{i}");
            let m: u32 = expand("H(0-29) 3 * * *", "ns", &name).unwrap()[..2]
                .trim()
                .parse()
                .unwrap();
            assert!(m <= 29);
            let stepped = expand("H/15 * * * *", "ns", &name).unwrap();
            let field = stepped.split(' ').next().unwrap();
            let start: u32 = field.split('-').next().unwrap().parse().unwrap();
            assert!(start < 15 && field.ends_with("-59/15"), "{field}");
            let hours = expand("0 H(8-17)/4 * * 1-5", "ns", &name).unwrap();
            let field = hours.split(' ').nth(1).unwrap();
            let start: u32 = field.split('-').next().unwrap().parse().unwrap();
            assert!((8..12).contains(&start) && field.ends_with("-17/4"), "{field}");
            assert_eq!(crate::cron::check(&stepped), Ok(()));
            assert_eq!(crate::cron::check(&hours), Ok(()));
        }
    }

    #[test]
    fn entries_without_h_and_macros_are_left_as_they_are() {
        assert_eq!(expand(" 0 9 * * 1-5 ", "a", "b").unwrap(), "0 9 * * 1-5");
        assert_eq!(expand("@hourly", "a", "b").unwrap(), "@hourly");
        assert_eq!(staggered("0 9 * * 1-5").as_deref(), Some("H 9 * * 1-5"));
        assert_eq!(staggered("@hourly").as_deref(), Some("H * * * *"));
        assert_eq!(staggered("@daily").as_deref(), Some("H 0 * * *"));
        assert_eq!(staggered("30 9 * * *"), None, "already off the hour");
        assert_eq!(
            staggered("0,30 * * * *"),
            None,
            "not a single top-of-the-hour minute"
        );
    }

    #[test]
    fn misplaced_or_malformed_h_is_refused_with_the_forms_allowed() {
        for (entry, expected) in [
            ("0 0 H * *", "only allowed in the minute and hour fields"),
            ("1H * * * *", "H in the middle"),
            ("H(0-29 * * * *", "no closing ')'"),
            ("H(5) * * * *", "needs a range a-b"),
            ("H(30-70) * * * *", "within 0-59"),
            ("H/0 * * * *", "only (a-b) or /step"),
            ("Hx * * * *", "only (a-b) or /step"),
        ] {
            let err = expand(entry, "a", "b").expect_err(entry);
            assert!(err.contains(expected), "{entry}: {err}");
        }
    }
}
