//! The relay's configuration: defaults, then the TOML file, then flags and `FULCRUM_*` variables.
//!
//! ```toml
//! listen = "0.0.0.0:7420"
//! database_url = "postgres://fulcrum@db/fulcrum"   # or sqlite://…
//! data_dir = "/var/lib/fulcrum"
//! public_url = "https://fulcrum.example.com"
//!
//! [auth]
//! signup_enabled = false
//! access_token_ttl_secs = 900
//! refresh_token_ttl_secs = 604800
//!
//! [agents]
//! heartbeat_interval_ms = 15000
//!
//! [tls]                      # serve HTTPS/wss itself; omit behind a TLS-terminating proxy
//! cert_file = "/etc/fulcrum/cert.pem"
//! key_file = "/etc/fulcrum/key.pem"
//!
//! [quic]                     # agents over QUIC (UDP), with the [tls] certificate
//! enabled = true
//! listen = "0.0.0.0:7420"    # [default: the same address and port as `listen`]
//! # cert_file, key_file: a certificate for QUIC alone, when a proxy terminates HTTPS
//! ```

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::{Context, Result};
use serde::Deserialize;

/// A string that must never be printed: its `Debug` shows only that it is set.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(<empty>)"
        } else {
            "Secret(<redacted>)"
        })
    }
}

/// Everything the relay needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// `sqlite://…` or `postgres://…`; may hold a password, hence secret.
    pub database_url: Secret,
    /// Where the embedded database and other local files live.
    pub data_dir: PathBuf,
    /// The URL users and agents reach the relay at, when it differs from `listen`.
    pub public_url: Option<String>,
    /// Where the agent binaries `GET /download/fulcrum/{os}/{arch}` serves live, named
    /// `fulcrum-{os}-{arch}` [default: `downloads` in the data dir].
    pub downloads_dir: Option<PathBuf>,
    /// Authentication settings.
    pub auth: AuthConfig,
    /// Agent session settings.
    pub agents: AgentConfig,
    /// Certificate and key to serve HTTPS with; plain HTTP without.
    pub tls: Option<TlsFiles>,
    /// The QUIC door for agents (only with TLS).
    pub quic: QuicConfig,
}

/// `[quic]`: agents may connect over QUIC on a UDP port, with the same certificate as HTTPS,
/// or one of its own when a reverse proxy terminates HTTPS and the relay serves plain HTTP.
/// QUIC is on whenever the relay has a certificate for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuicConfig {
    /// Whether to accept QUIC when there is a certificate.
    pub enabled: bool,
    /// The UDP address [default: the same address and port as `listen`].
    pub listen: Option<SocketAddr>,
    /// A certificate chain (PEM) for QUIC [default: `[tls]`'s]; needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// Its private key (PEM).
    pub key_file: Option<PathBuf>,
}

impl Default for QuicConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: None,
            cert_file: None,
            key_file: None,
        }
    }
}

impl Config {
    /// The certificate and key QUIC uses, when QUIC is on.
    pub fn quic_tls(&self) -> Option<TlsFiles> {
        if !self.quic.enabled {
            return None;
        }
        match (&self.quic.cert_file, &self.quic.key_file) {
            (Some(cert_file), Some(key_file)) => Some(TlsFiles {
                cert_file: cert_file.clone(),
                key_file: key_file.clone(),
            }),
            _ => self.tls.clone(),
        }
    }
}

/// A TLS certificate chain and its private key, both PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// The private key.
    pub key_file: PathBuf,
}

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Whether `POST /api/v1/auth/signup` creates accounts.
    pub signup_enabled: bool,
    /// Lifetime of access tokens.
    pub access_token_ttl_secs: u64,
    /// Lifetime of refresh tokens.
    pub refresh_token_ttl_secs: u64,
    /// Lifetime of event-socket tickets.
    pub events_ticket_ttl_secs: u64,
    /// Requests a minute each user (API) and each agent token (connections) may make, in
    /// bursts of as many; 0 turns the limit off.
    pub requests_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            signup_enabled: false,
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 7 * 24 * 3600,
            events_ticket_ttl_secs: 30,
            requests_per_minute: 100,
        }
    }
}

/// `[agents]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// How often the relay pings each agent; an agent silent for two intervals is gone.
    pub heartbeat_interval_ms: u64,
    /// How long an agent has to send its hello after connecting.
    pub hello_timeout_ms: u64,
    /// How long a workspace's agent may be gone before its running tasks are declared `lost`.
    pub task_lease_secs: u64,
    /// A task's time limit when it names none.
    pub task_timeout_secs: u64,
    /// How long a canceled or timed-out task gets between SIGTERM and SIGKILL.
    pub task_grace_secs: u64,
    /// Most log bytes kept per task; the log is cut there with a marker.
    pub task_log_limit_bytes: u64,
    /// How long an MCP tool call waits for the workspace's agent to answer.
    pub tool_call_timeout_secs: u64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 15_000,
            hello_timeout_ms: 10_000,
            task_lease_secs: 60,
            task_timeout_secs: 3600,
            task_grace_secs: 10,
            task_log_limit_bytes: 64 * 1024 * 1024,
            tool_call_timeout_secs: 30,
        }
    }
}

impl AgentConfig {
    /// The heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms.max(10))
    }
}

/// The TOML file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// See [`Config::listen`].
    pub listen: Option<SocketAddr>,
    /// See [`Config::database_url`].
    pub database_url: Option<Secret>,
    /// See [`Config::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// See [`Config::public_url`].
    pub public_url: Option<String>,
    /// See [`Config::downloads_dir`].
    pub downloads_dir: Option<PathBuf>,
    /// See [`AuthConfig`].
    pub auth: AuthConfig,
    /// See [`AgentConfig`].
    pub agents: AgentConfig,
    /// See [`TlsFiles`].
    pub tls: Option<TlsFiles>,
    /// See [`QuicConfig`].
    pub quic: QuicConfig,
}

impl FileConfig {
    /// Reads and parses a config file; errors name the file and the offending line.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
    }
}

/// Settings given on the command line or in the environment; they win over the file.
#[derive(Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:7420].
    #[arg(long, env = "FULCRUM_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Database URL: sqlite://PATH or postgres://… [default: a SQLite file in the data dir].
    #[arg(
        long = "database",
        env = "FULCRUM_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Directory for local state [default: ./.fulcrum].
    #[arg(long, env = "FULCRUM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The URL users and agents reach this relay at.
    #[arg(long, env = "FULCRUM_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Directory of agent binaries to serve (`fulcrum-{os}-{arch}`) [default: DATA_DIR/downloads].
    #[arg(long, env = "FULCRUM_DOWNLOADS_DIR")]
    pub downloads_dir: Option<PathBuf>,
    /// TOML config file for everything else.
    #[arg(long, env = "FULCRUM_CONFIG")]
    pub config: Option<PathBuf>,
    /// TLS certificate chain (PEM) to serve HTTPS with; needs --tls-key.
    #[arg(long, env = "FULCRUM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "FULCRUM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// UDP address for agents over QUIC (with TLS) [default: the listen address].
    #[arg(long, env = "FULCRUM_QUIC_LISTEN")]
    pub quic_listen: Option<SocketAddr>,
}

impl std::fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The database URL may carry a password.
        f.debug_struct("ServeArgs")
            .field("listen", &self.listen)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "<redacted>"),
            )
            .field("data_dir", &self.data_dir)
            .field("public_url", &self.public_url)
            .field("downloads_dir", &self.downloads_dir)
            .field("config", &self.config)
            .field("tls_cert", &self.tls_cert)
            .field("tls_key", &self.tls_key)
            .field("quic_listen", &self.quic_listen)
            .finish()
    }
}

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7420";

impl ServeArgs {
    /// Resolves flags over the file over defaults.
    pub fn resolve(&self) -> Result<Config> {
        let file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let data_dir = self
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(".fulcrum"));
        let database_url = match self
            .database_url
            .clone()
            .map(Secret::new)
            .or(file.database_url)
        {
            Some(url) => url,
            None => Secret::new(format!(
                "sqlite://{}",
                data_dir.join("fulcrum.db").display()
            )),
        };
        Ok(Config {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("default address parses")),
            database_url,
            data_dir,
            public_url: self.public_url.clone().or(file.public_url),
            downloads_dir: self.downloads_dir.clone().or(file.downloads_dir),
            auth: file.auth,
            agents: file.agents,
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert_file), Some(key_file)) => Some(TlsFiles {
                    cert_file: cert_file.clone(),
                    key_file: key_file.clone(),
                }),
                _ => file.tls,
            },
            quic: QuicConfig {
                listen: self.quic_listen.or(file.quic.listen),
                ..file.quic
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\npublic_url = \"https://f.example\"\n[auth]\nsignup_enabled = true\n",
        )
        .unwrap();
        let args = ServeArgs {
            listen: Some("127.0.0.1:9001".parse().unwrap()),
            config: Some(path),
            ..Default::default()
        };
        let c = args.resolve().unwrap();
        assert_eq!(c.listen.port(), 9001);
        assert_eq!(c.public_url.as_deref(), Some("https://f.example"));
        assert!(c.auth.signup_enabled);
        assert_eq!(c.auth.access_token_ttl_secs, 900);
        assert!(c.database_url.expose().ends_with(".fulcrum/fulcrum.db"));
    }

    #[test]
    fn bad_files_name_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.toml");
        std::fs::write(&path, "listen = 5\n").unwrap();
        let err = format!(
            "{:#}",
            ServeArgs {
                config: Some(path),
                ..Default::default()
            }
            .resolve()
            .unwrap_err()
        );
        assert!(
            err.contains("relay.toml") && err.contains("line 1"),
            "{err}"
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("postgres://u:hunter2@db/x");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
