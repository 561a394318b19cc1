//! The API server's audit log (`DIR/audit.log`, one JSON event a line, Metadata level):
//! where tests count requests, by whom and with what answer.

use std::path::PathBuf;

use serde::Deserialize;

/// One finished request, as the audit log records it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub verb: String,
    #[serde(default)]
    pub user: User,
    #[serde(default)]
    pub object_ref: ObjectRef,
    #[serde(default)]
    pub response_status: ResponseStatus,
    #[serde(default)]
    pub stage: String,
    #[serde(default, rename = "requestURI")]
    pub request_uri: String,
    /// The client's User-Agent (durablejob's binaries name their role and process in it).
    #[serde(default)]
    pub user_agent: String,
    /// When the API server received the request (RFC 3339, microseconds).
    #[serde(default)]
    pub request_received_timestamp: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct User {
    #[serde(default)]
    pub username: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub subresource: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub api_group: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ResponseStatus {
    #[serde(default)]
    pub code: u16,
}

impl AuditEvent {
    /// `system:serviceaccount:NS:NAME` for a ServiceAccount's requests.
    pub fn is_service_account(&self, namespace: &str, name: &str) -> bool {
        self.user.username == format!("system:serviceaccount:{namespace}:{name}")
    }

    /// When the API server received the request; `None` if the line has no such time.
    pub fn received(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::parse_from_rfc3339(&self.request_received_timestamp)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    }

    /// A `dryRun=All` request: validated and admitted, never stored.
    pub fn is_dry_run(&self) -> bool {
        self.request_uri.contains("dryRun=All")
    }

    /// Requests that change state (a dry run changes nothing).
    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        ) && !self.is_dry_run()
    }
}

/// The audit log of the local cluster.
#[derive(Debug, Clone)]
pub struct AuditLog {
    pub(crate) path: PathBuf,
}

impl AuditLog {
    /// Every finished request logged so far (the API server writes each one before it answers).
    /// A local cluster always writes its audit log, so one that cannot be read fails the check
    /// that asked (an "exactly one" would otherwise pass on an empty log).
    pub fn events(&self) -> Vec<AuditEvent> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_else(|e| {
            panic!(
                "cannot read the API server's audit log {}: {e}; hack/cluster.sh starts the local cluster with one",
                self.path.display()
            )
        });
        text.lines()
            .filter_map(|l| serde_json::from_str::<AuditEvent>(l).ok())
            .filter(|e| e.stage == "ResponseComplete")
            .collect()
    }

    /// How many finished requests satisfy `f`.
    pub fn count(&self, f: impl Fn(&AuditEvent) -> bool) -> usize {
        self.events().iter().filter(|e| f(e)).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_line_is_read_with_its_uri_and_user_agent() {
        let line = r#"{"kind":"Event","stage":"ResponseComplete","verb":"create","requestURI":"/apis/batch/v1/namespaces/a/jobs?&dryRun=All","userAgent":"durablejob/0.1.0 (operator; pod-a)","requestReceivedTimestamp":"2026-12-03T10:00:00.123456Z","objectRef":{"resource":"jobs","namespace":"a"},"responseStatus":{"code":201}}"#;
        let e: AuditEvent = serde_json::from_str(line).unwrap();
        assert!(e.is_dry_run() && !e.is_write());
        assert!(e.user_agent.ends_with("; pod-a)"));
        assert_eq!(e.received().unwrap().timestamp_subsec_micros(), 123_456);
    }
}
