//! Events through kube-runtime's [`Recorder`], with its memory bounded, and the [`Notice`]s
//! every controller publishes with it.
//!
//! The Recorder's memory: A Recorder keeps every
//! Event it published in the last six minutes, to fold a repeat into an Event series; a burst of
//! thousands of new DurableJobs (one `ScheduleCreated` each) would keep thousands, tens of
//! megabytes at 10,000. So each Recorder is handed at most [`SPAN`] Events and then replaced by
//! a fresh one: repeats inside a span still become one series, and the cache stays small.

use std::sync::Mutex;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Client, Resource,
    runtime::events::{Event, EventType, Recorder, Reporter},
};
use tracing::warn;

use crate::reason::Reason;

/// Events one Recorder publishes before the next one takes over.
pub(crate) const SPAN: usize = 256;

pub struct Events {
    client: Client,
    reporter: Reporter,
    /// The current Recorder and how many Events it was given.
    current: Mutex<(Recorder, usize)>,
}

impl Events {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            current: Mutex::new((Recorder::new(client.clone(), reporter.clone()), 0)),
            client,
            reporter,
        }
    }

    /// The Recorder for the next Event.
    fn recorder(&self) -> Recorder {
        let mut current = self.current.lock().expect("events lock");
        if current.1 >= SPAN {
            *current = (Recorder::new(self.client.clone(), self.reporter.clone()), 0);
        }
        current.1 += 1;
        current.0.clone()
    }

    pub async fn publish(&self, ev: &Event, regarding: &ObjectReference) -> Result<(), kube::Error> {
        self.recorder().publish(ev, regarding).await
    }
}

/// An Event to publish on the object a controller reconciles.
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

/// Publishes `notice` about `obj`; a failure is logged, never the reconcile's.
pub(crate) async fn publish<K: Resource<DynamicType = ()>>(events: &Events, obj: &K, notice: &Notice) {
    let ev = Event {
        type_: notice.type_,
        reason: notice.reason.as_str().into(),
        note: Some(truncate(notice.note.clone(), 1000)),
        action: notice.action.into(),
        secondary: None,
    };
    if let Err(e) = events.publish(&ev, &obj.object_ref(&())).await {
        warn!(error = %e, reason = notice.reason.as_str(), "could not publish Event");
    }
}

/// At most `max` bytes, cut at a character boundary (an Event's note has a size limit).
fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}
