//! The DurableJobCalendars a spec references, found and checked: pure, from what the cache
//! (or the API server) returned for each name.

use std::collections::BTreeMap;

use crate::api::DurableJobCalendar;
use crate::controller::status::Problem;
use crate::desired::schedule::ResolvedCalendar;
use crate::desired::validate;
use crate::reason::Reason;

/// Each referenced calendar's exclusions, in the order the spec lists them; a missing or
/// unreadable calendar is the problem that stops the reconcile, naming every one affected.
pub(crate) fn resolve(
    namespace: &str,
    names: &[String],
    found: &BTreeMap<String, Option<DurableJobCalendar>>,
) -> Result<Vec<ResolvedCalendar>, Problem> {
    let mut missing = Vec::new();
    let mut invalid = Vec::new();
    let mut out = Vec::new();
    for name in names {
        let Some(Some(cal)) = found.get(name) else {
            missing.push(name.as_str());
            continue;
        };
        let mut errors = Vec::new();
        let path = format!("DurableJobCalendar {name}: spec");
        let matches = validate::exclusions(&cal.spec.exclusions, &path, &mut errors);
        if !errors.is_empty() {
            invalid.push(validate::InvalidSpec(errors).to_string());
            continue;
        }
        out.push(ResolvedCalendar {
            name: name.clone(),
            matches,
        });
    }
    if !missing.is_empty() {
        return Err(Problem {
            reason: Reason::CalendarNotFound,
            message: format!(
                "spec.schedule.excludeCalendars names DurableJobCalendar {} that does not exist in namespace {namespace}; create it (kind: DurableJobCalendar) or remove it from the list",
                missing.join(", ")
            ),
            stalled: true,
        });
    }
    if !invalid.is_empty() {
        return Err(Problem {
            reason: Reason::InvalidCalendar,
            message: format!(
                "A referenced calendar cannot be used: {}; fix the calendar (the schedule keeps its previous exclusions meanwhile)",
                invalid.join("; ")
            ),
            stalled: true,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DurableJobCalendarSpec, Exclusions};

    fn calendar(name: &str, dates: &[&str], cron: &[&str]) -> DurableJobCalendar {
        DurableJobCalendar::new(
            name,
            DurableJobCalendarSpec {
                exclusions: Exclusions {
                    dates: dates.iter().map(|d| d.to_string()).collect(),
                    cron: cron.iter().map(|d| d.to_string()).collect(),
                },
            },
        )
    }

    #[test]
    fn found_calendars_give_their_dates_and_windows_in_order() {
        let found = BTreeMap::from([
            (
                "holidays".to_string(),
                Some(calendar("holidays", &["2026-12-25", "2026-12-26"], &[])),
            ),
            (
                "nights".to_string(),
                Some(calendar("nights", &[], &["* 0-5 * * *"])),
            ),
        ]);
        let names = vec!["nights".to_string(), "holidays".to_string()];
        let r = resolve("ns", &names, &found).unwrap();
        assert_eq!(
            r.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            ["nights", "holidays"]
        );
        assert_eq!(
            (r[0].matches.len(), r[1].matches.len()),
            (1, 1),
            "two dates of one month are one calendar"
        );
        assert!(
            r[1].matches[0].comment.contains("DurableJobCalendar holidays"),
            "{:?}",
            r[1].matches[0].comment
        );
    }

    #[test]
    fn a_missing_calendar_is_named_and_an_invalid_one_says_what_is_wrong() {
        let found = BTreeMap::from([
            ("gone".to_string(), None),
            (
                "bad".to_string(),
                Some(calendar("bad", &["24.12.2026"], &["0 9 * *"])),
            ),
        ]);
        let p = resolve("ns", &["gone".to_string()], &found).unwrap_err();
        assert_eq!(p.reason, Reason::CalendarNotFound);
        assert!(
            p.message.contains("DurableJobCalendar gone") && p.message.contains("namespace ns"),
            "{}",
            p.message
        );
        let p = resolve("ns", &["bad".to_string()], &found).unwrap_err();
        assert_eq!(p.reason, Reason::InvalidCalendar);
        assert!(
            p.message.contains("DurableJobCalendar bad: spec.dates[0]") && p.message.contains("YYYY-MM-DD"),
            "{}",
            p.message
        );
        assert!(p.message.contains("spec.cron[0]"), "{}", p.message);
    }
}
