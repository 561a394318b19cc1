//! Events through kube-runtime's [`Recorder`], with its memory bounded. A Recorder keeps every
//! Event it published in the last six minutes, to fold a repeat into an Event series; a burst of
//! thousands of new DurableJobs (one `ScheduleCreated` each) would keep thousands, tens of
//! megabytes at 10,000. So each Recorder is handed at most [`SPAN`] Events and then replaced by
//! a fresh one: repeats inside a span still become one series, and the cache stays small.

use std::sync::Mutex;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Client,
    runtime::events::{Event, Recorder, Reporter},
};

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
