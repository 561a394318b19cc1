//! The `durablejob.dev/v1alpha1` API.

// Everything here is public API, re-exported below; the lint cannot see through the glob
// re-exports and kube-derive's generated types.
#[allow(unreachable_pub)]
mod calendar;
mod request;
#[allow(unreachable_pub)]
mod schema_helpers;
#[allow(unreachable_pub)]
mod spec;
mod status;

pub use calendar::*;
pub use request::*;
pub use spec::*;
pub use status::*;

/// API group of every durablejob resource.
pub const GROUP: &str = "durablejob.dev";
/// Finalizer that keeps a DurableJob until its Temporal schedule is handled.
pub const FINALIZER: &str = "durablejob.dev/schedule";
/// Annotation a user sets (to any new value) to resume a schedule paused after a failed run.
pub const RESUME_ANNOTATION: &str = "durablejob.dev/resume";
