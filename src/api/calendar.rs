//! The `DurableJobCalendar` custom resource: a named set of excluded dates and cron windows
//! (a country's public holidays, a change freeze) that DurableJobs in its namespace reference
//! by `spec.schedule.excludeCalendars`.

#![allow(clippy::duplicated_attributes)] // kube-derive takes repeated printcolumn(...) attributes

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::Exclusions;

/// Finalizer that keeps a calendar while DurableJobs reference it.
pub const CALENDAR_FINALIZER: &str = "durablejob.dev/calendar-in-use";

/// Dates and windows in which no run of the referencing DurableJobs starts, read in each
/// DurableJob's own time zone.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "durablejob.dev",
    version = "v1alpha1",
    kind = "DurableJobCalendar",
    plural = "durablejobcalendars",
    shortname = "djcal",
    category = "durablejob-all",
    namespaced,
    status = "DurableJobCalendarStatus",
    derive = "PartialEq",
    doc = "DurableJobCalendar names dates and cron windows in which no run starts, for DurableJobs that list it in spec.schedule.excludeCalendars.",
    printcolumn(name = "Dates", type_ = "integer", json_path = ".status.dates"),
    printcolumn(
        name = "Used By",
        type_ = "string",
        json_path = ".status.referencedBy",
        description = "DurableJobs that reference this calendar"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.message",
        priority = 1
    )
)]
pub struct DurableJobCalendarSpec {
    /// The excluded dates (YYYY-MM-DD) and cron windows.
    #[serde(flatten)]
    pub exclusions: Exclusions,
}

/// What the operator reports about a calendar.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DurableJobCalendarStatus {
    /// How many dates it excludes.
    #[serde(default)]
    pub dates: i64,
    /// The DurableJobs that reference it, comma-separated (empty when none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub referenced_by: String,
    /// What needs attention: an invalid entry, or a deletion held while DurableJobs use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
