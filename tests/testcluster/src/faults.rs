//! Fault injection for reliability tests: failing requests, latency, dropped watches. Used
//! through [`crate::TestCluster::faults`] or the admin endpoint `POST /testcluster/faults`.

use std::{sync::Mutex, time::Duration};

use serde::Deserialize;
use tokio::sync::watch;

/// Fail the next `count` requests matching `verb` and a path substring with HTTP `code`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FailRule {
    #[serde(default)]
    pub verb: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    pub code: u16,
    pub count: usize,
}

/// The admin endpoint's body: any of these.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRequest {
    #[serde(default)]
    pub fail_next: Option<FailRule>,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    #[serde(default)]
    pub drop_watches: bool,
    #[serde(default)]
    pub forget_history: bool,
    #[serde(default)]
    pub clear: bool,
    /// Restart the server after answering, unreachable for this long.
    #[serde(default)]
    pub restart_ms: Option<u64>,
}

pub struct Faults {
    rules: Mutex<Vec<FailRule>>,
    latency: Mutex<Duration>,
    epoch: watch::Sender<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            rules: Mutex::new(vec![]),
            latency: Mutex::new(Duration::ZERO),
            epoch: watch::channel(0).0,
        }
    }
}

impl Faults {
    /// The next `count` requests with this verb (get, list, watch, create, update, patch,
    /// delete; any when `None`) whose path contains `path` fail with `code`.
    pub fn fail_next(&self, verb: Option<&str>, path: Option<&str>, code: u16, count: usize) {
        self.rules.lock().expect("faults lock").push(FailRule {
            verb: verb.map(String::from),
            path: path.map(String::from),
            code,
            count,
        });
    }

    /// Delay added to every request.
    pub fn set_latency(&self, latency: Duration) {
        *self.latency.lock().expect("faults lock") = latency;
    }

    pub fn latency(&self) -> Duration {
        *self.latency.lock().expect("faults lock")
    }

    /// Ends every open watch now (clients see the stream close, as when an API server restarts).
    pub fn drop_watches(&self) {
        self.epoch.send_modify(|e| *e += 1);
    }

    pub fn clear(&self) {
        self.rules.lock().expect("faults lock").clear();
        self.set_latency(Duration::ZERO);
    }

    pub(crate) fn watch_epoch(&self) -> watch::Receiver<u64> {
        self.epoch.subscribe()
    }

    /// The injected status code for this request, if a rule matches (and is used up by it).
    pub(crate) fn take(&self, verb: &str, path: &str) -> Option<u16> {
        let mut rules = self.rules.lock().expect("faults lock");
        let i = rules.iter().position(|r| {
            r.count > 0
                && r.verb.as_deref().is_none_or(|v| v == verb)
                && r.path.as_deref().is_none_or(|p| path.contains(p))
        })?;
        rules[i].count -= 1;
        let code = rules[i].code;
        if rules[i].count == 0 {
            rules.remove(i);
        }
        Some(code)
    }

    pub(crate) fn add(&self, rule: FailRule) {
        self.rules.lock().expect("faults lock").push(rule);
    }
}
