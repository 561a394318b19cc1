//! Every request the server answered, for tests that count API calls.

use std::sync::{Arc, Mutex};

/// One answered request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    /// get, list, watch, create, update, patch, delete, deletecollection, or discovery.
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    pub code: u16,
    pub user_agent: String,
}

/// The shared log.
#[derive(Debug, Clone, Default)]
pub struct RequestLog(Arc<Mutex<Vec<LoggedRequest>>>);

impl RequestLog {
    pub fn push(&self, r: LoggedRequest) {
        self.0.lock().expect("request log lock").push(r);
    }
    /// A copy of every request so far.
    pub fn all(&self) -> Vec<LoggedRequest> {
        self.0.lock().expect("request log lock").clone()
    }
    /// Requests matching a predicate.
    pub fn count(&self, f: impl Fn(&LoggedRequest) -> bool) -> usize {
        self.0
            .lock()
            .expect("request log lock")
            .iter()
            .filter(|r| f(r))
            .count()
    }
    /// Requests with this verb on this resource (any group).
    pub fn count_verb(&self, verb: &str, resource: &str) -> usize {
        self.count(|r| r.verb == verb && r.resource == resource)
    }
    /// Counts by "verb resource[/subresource]", sorted, for printing.
    pub fn summary(&self) -> Vec<(String, usize)> {
        let mut m = std::collections::BTreeMap::new();
        for r in self.all() {
            let key = if r.subresource.is_empty() {
                format!("{} {}", r.verb, r.resource)
            } else {
                format!("{} {}/{}", r.verb, r.resource, r.subresource)
            };
            *m.entry(key).or_insert(0) += 1;
        }
        m.into_iter().collect()
    }
    pub fn clear(&self) {
        self.0.lock().expect("request log lock").clear();
    }
}
