//! The Temporal connection: configured as the `temporal` CLI is (environment variables and
//! its config file), then overridden by flags; connected lazily so the operator keeps running
//! (and says so in status) while Temporal is unreachable.

use std::{collections::HashMap, path::PathBuf, sync::Mutex, time::Duration};

use temporalio_client::{Client, ClientOptions, Connection, ConnectionOptions, RetryOptions};
use temporalio_common::envconfig::{
    ClientConfigProfile, ClientConfigTLS, DataSource, LoadClientConfigProfileOptions,
    load_client_config_profile,
};

use super::TemporalError;

/// Flags that override Temporal's own environment variables and config file.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TemporalArgs {
    /// Temporal frontend host:port (overrides TEMPORAL_ADDRESS; default localhost:7233).
    #[arg(long, value_name = "HOST:PORT")]
    pub temporal_address: Option<String>,
    /// Default Temporal namespace (overrides TEMPORAL_NAMESPACE; default "default").
    #[arg(long, value_name = "NAMESPACE")]
    pub temporal_namespace: Option<String>,
    /// File holding the API key (overrides TEMPORAL_API_KEY); implies TLS unless --temporal-tls=false.
    #[arg(long, value_name = "FILE")]
    pub temporal_api_key_file: Option<PathBuf>,
    /// Use TLS (overrides TEMPORAL_TLS).
    #[arg(long, value_name = "BOOL")]
    pub temporal_tls: Option<bool>,
    /// Client certificate for mTLS (overrides TEMPORAL_TLS_CLIENT_CERT_PATH).
    #[arg(long, value_name = "FILE")]
    pub temporal_tls_cert_path: Option<PathBuf>,
    /// Client key for mTLS (overrides TEMPORAL_TLS_CLIENT_KEY_PATH).
    #[arg(long, value_name = "FILE")]
    pub temporal_tls_key_path: Option<PathBuf>,
    /// CA certificate that signed the server's (overrides TEMPORAL_TLS_SERVER_CA_CERT_PATH).
    #[arg(long, value_name = "FILE")]
    pub temporal_tls_ca_path: Option<PathBuf>,
    /// Server name to verify (overrides TEMPORAL_TLS_SERVER_NAME).
    #[arg(long, value_name = "NAME")]
    pub temporal_tls_server_name: Option<String>,
}

/// Where and how to connect, resolved from environment, config file and flags. Its Debug
/// form leaves the API key and the TLS material out, so a debug log never carries them.
#[derive(Clone)]
pub struct TemporalConfig {
    pub options: ConnectionOptions,
    pub namespace: String,
    pub address: String,
}

impl std::fmt::Debug for TemporalConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemporalConfig")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .field("tls", &self.options.tls_options.is_some())
            .field("api_key", &self.options.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Errors in the Temporal configuration; they stop the process at start with this message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("Temporal configuration: {0}")]
    Load(String),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
}

impl TemporalArgs {
    /// Reads TEMPORAL_* variables and the CLI's config file, then applies these flags.
    pub fn resolve(&self, identity: &str) -> Result<TemporalConfig, ConfigError> {
        let profile = load_client_config_profile(LoadClientConfigProfileOptions::default(), None)
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        self.resolve_profile(profile, identity)
    }

    fn resolve_profile(
        &self,
        mut profile: ClientConfigProfile,
        identity: &str,
    ) -> Result<TemporalConfig, ConfigError> {
        if let Some(a) = &self.temporal_address {
            profile.address = Some(a.clone());
        }
        if let Some(ns) = &self.temporal_namespace {
            profile.namespace = Some(ns.clone());
        }
        if let Some(path) = &self.temporal_api_key_file {
            let key = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            profile.api_key = Some(key.trim().to_string());
        }
        let tls_flags = self.temporal_tls.is_some()
            || self.temporal_tls_cert_path.is_some()
            || self.temporal_tls_key_path.is_some()
            || self.temporal_tls_ca_path.is_some()
            || self.temporal_tls_server_name.is_some();
        if tls_flags {
            let mut tls = profile
                .tls
                .take()
                .unwrap_or_else(|| ClientConfigTLS::builder().build());
            if let Some(on) = self.temporal_tls {
                tls.disabled = Some(!on);
            } else if tls.disabled.is_none() {
                tls.disabled = Some(false);
            }
            let path = |p: &PathBuf| DataSource::Path(p.to_string_lossy().into_owned());
            if let Some(p) = &self.temporal_tls_cert_path {
                tls.client_cert = Some(path(p));
            }
            if let Some(p) = &self.temporal_tls_key_path {
                tls.client_key = Some(path(p));
            }
            if let Some(p) = &self.temporal_tls_ca_path {
                tls.server_ca_cert = Some(path(p));
            }
            if let Some(n) = &self.temporal_tls_server_name {
                tls.server_name = Some(n.clone());
            }
            profile.tls = Some(tls);
        }
        let namespace = profile.namespace.clone().unwrap_or_else(|| "default".to_string());
        let address = profile
            .address
            .clone()
            .unwrap_or_else(|| "localhost:7233".to_string());
        let mut options =
            ConnectionOptions::try_from(profile).map_err(|e| ConfigError::Load(e.to_string()))?;
        options.identity = identity.to_string();
        options.connect_timeout = Some(Duration::from_secs(5));
        // Fail a call within a few seconds so a reconcile reports an outage promptly; the
        // controller's own requeue does the long-term retrying.
        options.retry_options = RetryOptions::builder()
            .max_elapsed_time(Some(Duration::from_secs(4)))
            .max_retries(4)
            .build();
        Ok(TemporalConfig {
            options,
            namespace,
            address,
        })
    }
}

/// One connection, shared by a client per Temporal namespace, established on first use.
pub struct ClientPool {
    config: TemporalConfig,
    connection: tokio::sync::Mutex<Option<Connection>>,
    clients: Mutex<HashMap<String, Client>>,
}

impl ClientPool {
    pub fn new(config: TemporalConfig) -> Self {
        Self {
            config,
            connection: tokio::sync::Mutex::new(None),
            clients: Mutex::new(HashMap::new()),
        }
    }

    pub fn default_namespace(&self) -> &str {
        &self.config.namespace
    }

    pub fn address(&self) -> &str {
        &self.config.address
    }

    /// A client bound to `namespace`, connecting first if needed.
    pub async fn client(&self, namespace: &str) -> Result<Client, TemporalError> {
        if let Some(c) = self.clients.lock().expect("client map lock").get(namespace) {
            return Ok(c.clone());
        }
        let connection = self.connection().await?;
        let client = Client::new(connection, ClientOptions::new(namespace.to_string()).build())
            .map_err(|e| TemporalError::Other(e.to_string()))?;
        self.clients
            .lock()
            .expect("client map lock")
            .insert(namespace.to_string(), client.clone());
        Ok(client)
    }

    async fn connection(&self) -> Result<Connection, TemporalError> {
        let mut guard = self.connection.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let c = Connection::connect(self.config.options.clone())
            .await
            .map_err(|e| {
                TemporalError::Unavailable(format!("cannot connect to {}: {e}", self.config.address))
            })?;
        *guard = Some(c.clone());
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(address: Option<&str>, api_key: Option<&str>) -> ClientConfigProfile {
        ClientConfigProfile::builder()
            .maybe_address(address.map(str::to_string))
            .maybe_api_key(api_key.map(str::to_string))
            .build()
    }

    #[test]
    fn flags_override_the_environment() {
        let args = TemporalArgs {
            temporal_address: Some("temporal.example:7233".into()),
            temporal_namespace: Some("jobs".into()),
            ..Default::default()
        };
        let cfg = args
            .resolve_profile(profile(Some("env-host:1"), None), "op")
            .unwrap();
        assert_eq!(cfg.address, "temporal.example:7233");
        assert_eq!(cfg.namespace, "jobs");
        assert_eq!(cfg.options.target.as_str(), "http://temporal.example:7233/");
        assert!(cfg.options.tls_options.is_none());
        assert_eq!(cfg.options.identity, "op");
    }

    #[test]
    fn an_api_key_turns_tls_on_as_the_cli_does() {
        let cfg = TemporalArgs::default()
            .resolve_profile(profile(Some("ns.acct.tmprl.cloud:7233"), Some("k")), "op")
            .unwrap();
        assert_eq!(cfg.options.target.scheme(), "https");
        assert!(cfg.options.tls_options.is_some());
        assert_eq!(cfg.options.api_key.as_deref(), Some("k"));
        let shown = format!("{cfg:?}");
        assert!(
            shown.contains("<redacted>") && !shown.contains("\"k\""),
            "{shown}"
        );
    }

    #[test]
    fn tls_can_be_forced_off_by_flag() {
        let args = TemporalArgs {
            temporal_tls: Some(false),
            ..Default::default()
        };
        let cfg = args
            .resolve_profile(profile(Some("h:1"), Some("k")), "op")
            .unwrap();
        assert_eq!(cfg.options.target.scheme(), "http");
        assert!(cfg.options.tls_options.is_none());
    }

    #[test]
    fn a_missing_api_key_file_is_named_in_the_error() {
        let args = TemporalArgs {
            temporal_api_key_file: Some("/nonexistent/key".into()),
            ..Default::default()
        };
        let err = args
            .resolve_profile(profile(None, None), "op")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/key"), "{err}");
    }

    #[test]
    fn defaults_match_the_cli() {
        let cfg = TemporalArgs::default()
            .resolve_profile(profile(None, None), "op")
            .unwrap();
        assert_eq!(cfg.address, "localhost:7233");
        assert_eq!(cfg.namespace, "default");
    }
}
