//! The I/O steps of a reconcile: [`schedule_sync`] (Temporal, through the `Schedules` trait)
//! and [`k8s`] (status, Events, the worker Deployment). The pure steps never call these.

pub(crate) mod dry_run;
pub(crate) mod events;
pub(crate) mod k8s;
pub(crate) mod requests;
pub(crate) mod schedule_sync;
pub(crate) mod sweep;

use kube::runtime::events::EventType;

use crate::reason::Reason;

/// An Event to publish on the DurableJob.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub type_: EventType,
    pub reason: Reason,
    pub action: &'static str,
    pub note: String,
}

impl Notice {
    pub fn normal(reason: Reason, action: &'static str, note: String) -> Self {
        Self {
            type_: EventType::Normal,
            reason,
            action,
            note,
        }
    }

    pub fn warning(reason: Reason, action: &'static str, note: String) -> Self {
        Self {
            type_: EventType::Warning,
            reason,
            action,
            note,
        }
    }
}
