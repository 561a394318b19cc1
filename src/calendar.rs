//! DurableJobCalendars: who uses each one, and a finalizer that holds a calendar's deletion
//! while a DurableJob still lists it in `spec.schedule.excludeCalendars` (deleting it would
//! silently put the excluded days back into those schedules).
//!
//! The DurableJob side (a calendar's edit reaching every schedule that references it) is in
//! [`crate::controller::run`]: the calendar watch maps each calendar to its users through
//! `users`. This controller is a sibling of the DurableJob controller over the shared
//! [`Core`], with a context of its own: the core and the DurableJob cache of its scope.

use std::{sync::Arc, time::Duration};

use futures::StreamExt;
use kube::{
    Api, ResourceExt,
    core::DeserializeGuard,
    runtime::{
        Controller,
        controller::Action,
        finalizer::{Event as Finalizer, finalizer},
        reflector::{ObjectRef, Store},
        watcher,
    },
};
use tracing::warn;

use crate::api::{CALENDAR_FINALIZER, DurableJob, DurableJobCalendar, DurableJobCalendarStatus};
use crate::desired::validate;
use crate::operator::events::{Notice, publish};
use crate::operator::{Core, Error, apply_status, log_outcome};
use crate::reason::Reason;
use crate::temporal::Schedules;

/// What each calendar reconcile gets: the shared core and the DurableJob cache of its scope.
pub(crate) struct Context<S: Schedules> {
    core: Arc<Core<S>>,
    users: Store<DeserializeGuard<DurableJob>>,
}

/// While a deletion is held, how often the calendar looks again for remaining users.
const HELD_RECHECK: Duration = Duration::from_secs(3);
/// How often a calendar's list of users is brought up to date.
const USERS_REFRESH: Duration = Duration::from_secs(30);

/// The DurableJobs in the calendar's namespace that list it, by name.
pub(crate) fn users(
    store: &Store<DeserializeGuard<DurableJob>>,
    cal: &DurableJobCalendar,
) -> Vec<ObjectRef<DeserializeGuard<DurableJob>>> {
    let namespace = cal.namespace().unwrap_or_default();
    let name = cal.name_any();
    let mut out: Vec<_> = store
        .state()
        .into_iter()
        .filter_map(|dj| {
            let spec = &dj.0.as_ref().ok()?.spec;
            let referenced = spec.schedule.exclude_calendars.contains(&name);
            (referenced && dj.namespace().as_deref() == Some(namespace.as_str()))
                .then(|| ObjectRef::from_obj(&*dj))
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Users named in a status or message: at most this many, then how many more.
const NAMED_USERS: usize = 20;

fn named(users: &[String]) -> String {
    if users.len() <= NAMED_USERS {
        return users.join(", ");
    }
    format!(
        "{} and {} more",
        users[..NAMED_USERS].join(", "),
        users.len() - NAMED_USERS
    )
}

/// The calendar's status, from its spec and its users (pure).
pub(crate) fn status(cal: &DurableJobCalendar, users: &[String], deleting: bool) -> DurableJobCalendarStatus {
    let mut errors = Vec::new();
    validate::exclusions(&cal.spec.exclusions, "spec", &mut errors);
    let message = if deleting && !users.is_empty() {
        Some(held_message(users))
    } else if !errors.is_empty() {
        Some(format!(
            "Invalid: {}; the DurableJobs using this calendar report InvalidCalendar until it is fixed",
            validate::InvalidSpec(errors)
        ))
    } else {
        None
    };
    DurableJobCalendarStatus {
        dates: cal.spec.exclusions.dates.len() as i64,
        referenced_by: named(users),
        message,
    }
}

fn held_message(users: &[String]) -> String {
    format!(
        "Deletion waits until no DurableJob references this calendar; still referenced by DurableJob {}: remove it from their spec.schedule.excludeCalendars (or delete them)",
        named(users)
    )
}

/// Writes the calendar's status when it changed.
async fn write_status<S: Schedules>(
    ctx: &Core<S>,
    cal: &DurableJobCalendar,
    status: &DurableJobCalendarStatus,
) -> Result<(), Error> {
    if cal.status.as_ref() == Some(status) {
        return Ok(());
    }
    apply_status(&ctx.client, cal, status).await
}

async fn reconcile<S: Schedules>(
    cal: Arc<DurableJobCalendar>,
    ctx: Arc<Context<S>>,
) -> Result<Action, Error> {
    let namespace = cal.namespace().ok_or(Error::NotNamespaced)?;
    let api: Api<DurableJobCalendar> = Api::namespaced(ctx.core.client.clone(), &namespace);
    let inner = ctx.clone();
    finalizer(&api, CALENDAR_FINALIZER, cal, |event| async move {
        let (ctx, store) = (&*inner.core, &inner.users);
        match event {
            Finalizer::Apply(cal) => {
                let names = names(&users(store, &cal));
                write_status(ctx, &cal, &status(&cal, &names, false)).await?;
                Ok(Action::requeue(USERS_REFRESH))
            }
            Finalizer::Cleanup(cal) => {
                let names = names(&users(store, &cal));
                if names.is_empty() {
                    return Ok(Action::await_change());
                }
                let new = status(&cal, &names, true);
                if cal.status.as_ref().and_then(|s| s.message.as_ref()) != new.message.as_ref() {
                    let notice = Notice::warning(Reason::CalendarInUse, "Delete", held_message(&names));
                    publish(&ctx.recorder, &*cal, &notice).await;
                }
                write_status(ctx, &cal, &new).await?;
                Err(Error::CalendarInUse(held_message(&names)))
            }
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn names(refs: &[ObjectRef<DeserializeGuard<DurableJob>>]) -> Vec<String> {
    refs.iter().map(|r| r.name.clone()).collect()
}

fn error_policy<S: Schedules>(cal: Arc<DurableJobCalendar>, error: &Error, ctx: Arc<Context<S>>) -> Action {
    let held = matches!(error, Error::Finalizer(f) if matches!(f.as_ref(), kube::runtime::finalizer::Error::CleanupFailed(Error::CalendarInUse(_))));
    if !held {
        ctx.core.metrics.failure(error.reason());
        warn!(name = %cal.name_any(), namespace = ?cal.namespace(), error = %error, "calendar reconcile failed");
    }
    Action::requeue(HELD_RECHECK)
}

/// Runs the calendar controller of one scope, with the DurableJob cache of that scope.
pub(crate) async fn run<S: Schedules>(
    core: Arc<Core<S>>,
    api: Api<DurableJobCalendar>,
    users: Store<DeserializeGuard<DurableJob>>,
) {
    let _ = users.wait_until_ready().await;
    let ctx = Arc::new(Context { core, users });
    Controller::new(api, watcher::Config::default().any_semantic())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|outcome| log_outcome("DurableJobCalendar", outcome))
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{DurableJobCalendarSpec, Exclusions};

    fn calendar(dates: &[&str]) -> DurableJobCalendar {
        DurableJobCalendar::new(
            "holidays",
            DurableJobCalendarSpec {
                exclusions: Exclusions {
                    dates: dates.iter().map(|d| d.to_string()).collect(),
                    cron: vec![],
                },
            },
        )
    }

    #[test]
    fn the_status_counts_dates_names_users_and_says_why_a_deletion_waits() {
        let cal = calendar(&["2026-12-25", "2026-12-26"]);
        let users = vec!["billing".to_string(), "report".to_string()];
        let s = status(&cal, &users, false);
        assert_eq!(
            (s.dates, s.referenced_by.as_str(), s.message),
            (2, "billing, report", None)
        );
        let held = status(&cal, &users, true).message.unwrap();
        assert!(
            held.contains("DurableJob billing, report") && held.contains("excludeCalendars"),
            "{held}"
        );
        assert_eq!(
            status(&cal, &[], true).message,
            None,
            "nothing holds an unused calendar"
        );
    }

    #[test]
    fn an_invalid_entry_is_reported_on_the_calendar() {
        let s = status(&calendar(&["2026-13-01"]), &[], false);
        let m = s.message.unwrap();
        assert!(m.contains("spec.dates[0]") && m.contains("YYYY-MM-DD"), "{m}");
    }
}
