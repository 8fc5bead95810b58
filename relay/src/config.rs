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
//! [http]
//! allowed_hosts = ["fulcrum.internal:7420"]   # more Host values /mcp accepts
//! cors_origins = ["https://tools.example.com"] # origins that may call the REST API
//! trusted_proxies = ["10.0.0.2"]               # peers whose X-Forwarded-For is believed
//!
//! [secrets]                  # master keys for secrets at rest (or FULCRUM_MASTER_KEYS)
//! master_keys_file = "/etc/fulcrum/master-keys"   # lines ID:BASE64, the current key first
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
    /// Hosts, origins and proxies.
    pub http: HttpConfig,
    /// LLM calls: prices, limits.
    pub llm: LlmConfig,
    /// The pipeline engine.
    pub pipelines: PipelinesConfig,
    /// Outgoing webhooks.
    pub webhooks: WebhooksConfig,
    /// The master keys that seal secrets at rest (`crate::secrets`): lines `ID:BASE64`, the
    /// current key first. Never stored in the database.
    pub master_keys: Option<Secret>,
}

/// `[llm]`: what LLM calls cost and how long they may take. Prices are US dollars per
/// million tokens, per model (a key ending in `*` matches by prefix); see `crate::llm::prices`.
///
/// ```toml
/// [llm]
/// prices_file = "/etc/fulcrum/prices.toml"   # read again whenever it changes
/// [llm.prices."gpt-4.1"]
/// input = 2.0
/// output = 8.0
/// cached_input = 0.5
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// Prices per model.
    pub prices: crate::llm::PriceTable,
    /// A TOML file of more prices (the same shape as `[llm.prices]`), read again when it
    /// changes, so prices can change without a restart.
    pub prices_file: Option<PathBuf>,
    /// Longest wait for a provider's answer to begin, seconds.
    pub connect_timeout_secs: u64,
    /// Longest silence inside a streamed answer, seconds.
    pub idle_timeout_secs: u64,
    /// Most bytes of one answer.
    pub max_response_bytes: usize,
    /// Attempts per call on 429, 5xx and broken streams (the first included).
    pub max_attempts: u32,
    /// First wait between attempts, milliseconds (doubling, with jitter; a `Retry-After`
    /// wins).
    pub backoff_ms: u64,
}

impl Default for LlmConfig {
    fn default() -> Self {
        let l = crate::llm::Limits::default();
        Self {
            prices: Default::default(),
            prices_file: None,
            connect_timeout_secs: l.connect_timeout.as_secs(),
            idle_timeout_secs: l.idle_timeout.as_secs(),
            max_response_bytes: l.max_response_bytes,
            max_attempts: l.max_attempts,
            backoff_ms: l.backoff.as_millis() as u64,
        }
    }
}

impl LlmConfig {
    /// The client's limits.
    pub fn limits(&self) -> crate::llm::Limits {
        crate::llm::Limits {
            connect_timeout: Duration::from_secs(self.connect_timeout_secs.max(1)),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
            max_response_bytes: self.max_response_bytes.clamp(1 << 10, 64 << 20),
            max_attempts: self.max_attempts.clamp(1, 10),
            backoff: Duration::from_millis(self.backoff_ms),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// `[webhooks]`: outgoing webhooks (`crate::domain::webhooks`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksConfig {
    /// Whether endpoints may be private, loopback or link-local addresses (a relay whose
    /// automations run beside it on a private network). Off: such targets are refused, when
    /// saved and at every delivery, however their name resolves.
    pub allow_private_targets: bool,
    /// The waits before each attempt after the first, milliseconds [default: the Standard
    /// Webhooks schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h]; each is
    /// varied by ±20%.
    pub retry_delays_ms: Vec<u64>,
    /// How long an attempt may take, seconds.
    pub timeout_secs: u64,
    /// How often the delivery loop looks for work that nothing on this node announced
    /// (events recorded by another relay), milliseconds.
    pub poll_ms: u64,
    /// How long delivered and failed deliveries stay in the log, days (at least one).
    pub keep_days: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        let spec = crate::domain::webhooks::deliver::DeliveryConfig::default();
        Self {
            allow_private_targets: false,
            retry_delays_ms: spec
                .retry_delays
                .iter()
                .map(|d| d.as_millis() as u64)
                .collect(),
            timeout_secs: spec.timeout.as_secs(),
            poll_ms: spec.poll.as_millis() as u64,
            keep_days: spec.keep.as_secs() / 86_400,
        }
    }
}

impl WebhooksConfig {
    /// The delivery loop's settings (at most 20 retries of at most a week each, timeouts of 1
    /// to 60 s, a poll of at least 50 ms).
    pub fn delivery(&self) -> crate::domain::webhooks::deliver::DeliveryConfig {
        crate::domain::webhooks::deliver::DeliveryConfig {
            retry_delays: self
                .retry_delays_ms
                .iter()
                .take(20)
                .map(|ms| Duration::from_millis((*ms).min(7 * 86_400_000)))
                .collect(),
            timeout: Duration::from_secs(self.timeout_secs.clamp(1, 60)),
            poll: Duration::from_millis(self.poll_ms.max(50)),
            allow_private: self.allow_private_targets,
            keep: Duration::from_secs(self.keep_days.clamp(1, 3650) * 86_400),
        }
    }
}

/// `[pipelines]`: the engine that drives pipeline runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelinesConfig {
    /// How long a node's claim on a run lasts unless renewed, seconds; a run whose node died
    /// is taken over after this.
    pub lease_secs: u64,
    /// Most runs one node drives at once.
    pub max_runs: usize,
    /// This node's name in run leases [default: one made at first start and kept in
    /// `node-id` in the data dir]. A node that starts again under the same name takes its
    /// runs back at once instead of waiting for their leases to run out; every node of a
    /// cluster needs its own.
    pub node_id: Option<String>,
}

impl Default for PipelinesConfig {
    fn default() -> Self {
        Self {
            lease_secs: 30,
            max_runs: 100,
            node_id: None,
        }
    }
}

impl PipelinesConfig {
    /// This node's name: the configured one, else the one kept in `data_dir` (made now if
    /// there is none, or a fresh one if the data dir cannot keep it).
    pub fn node_id(&self, data_dir: &std::path::Path) -> String {
        if let Some(id) = &self.node_id {
            return id.clone();
        }
        let file = data_dir.join("node-id");
        if let Ok(id) = std::fs::read_to_string(&file)
            && !id.trim().is_empty()
        {
            return id.trim().to_owned();
        }
        let id = format!("relay-{}", uuid::Uuid::new_v4().simple());
        if let Err(e) = std::fs::write(&file, &id) {
            tracing::warn!(error = %e, "cannot keep the node id; runs of this node wait for their leases after a restart");
        }
        id
    }
}

/// `[secrets]`: where the master keys are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsConfig {
    /// A file of master keys, one `ID:BASE64` per line, the current key first (mode 0600).
    pub master_keys_file: Option<PathBuf>,
}

/// `[http]`: which `Host` and `Origin` values the relay accepts, and whose forwarded addresses
/// it believes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// `Host` values (`name` or `name:port`) that `/mcp` accepts besides the public URL's and
    /// loopback names: its guard against DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://tools.example.com`) allowed to call the REST API from a browser
    /// (CORS); none by default. Never applied to the refresh cookie's path.
    pub cors_origins: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (for per-address limits).
    pub trusted_proxies: Vec<std::net::IpAddr>,
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
    /// The URL users and agents reach the relay at: the configured public URL, else this
    /// relay's own address (loopback when it listens on every address). Never taken from a
    /// request, whose `Host` an attacker chooses.
    pub fn base_url(&self) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut addr = self.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        format!("{scheme}://{addr}")
    }

    /// The base URL to give a client whose request named `host`: the public URL if one is set;
    /// else `host`, when it is a name this relay answers to ([`Self::allowed_hosts`]: loopback,
    /// its own address, `[http] allowed_hosts`); else [`Self::base_url`]. A `Host` an attacker
    /// chose (DNS rebinding, a forged header) never ends up in an answer.
    pub fn base_url_for(&self, host: Option<&str>) -> String {
        if self.public_url.is_some() {
            return self.base_url();
        }
        let wanted = host.and_then(|h| h.parse::<axum::http::uri::Authority>().ok());
        let allowed = wanted.as_ref().is_some_and(|w| {
            self.allowed_hosts().iter().any(|entry| {
                let entry = entry.trim_start_matches('[').trim_end_matches(']');
                match entry.parse::<axum::http::uri::Authority>() {
                    Ok(a) if a.port_u16().is_some() => {
                        a.host().eq_ignore_ascii_case(w.host()) && a.port_u16() == w.port_u16()
                    }
                    _ => w
                        .host()
                        .trim_matches(|c| c == '[' || c == ']')
                        .eq_ignore_ascii_case(entry),
                }
            })
        });
        match wanted {
            Some(w) if allowed => {
                let scheme = if self.tls.is_some() { "https" } else { "http" };
                format!("{scheme}://{w}")
            }
            _ => self.base_url(),
        }
    }

    /// The `Host` values `/mcp` accepts: the public URL's, loopback names, this relay's own
    /// address, and `[http] allowed_hosts`.
    pub fn allowed_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        if !self.listen.ip().is_unspecified() {
            hosts.push(self.listen.ip().to_string());
        }
        if let Some(host) = self
            .public_url
            .as_deref()
            .and_then(|u| u.parse::<axum::http::Uri>().ok())
            .and_then(|u| u.authority().map(|a| a.to_string()))
        {
            hosts.push(host);
        }
        hosts.extend(self.http.allowed_hosts.iter().cloned());
        hosts
    }

    /// The browser origins `/mcp` accepts: loopback pages, the public URL's, and `[http]
    /// cors_origins`.
    pub fn allowed_origins(&self) -> Vec<String> {
        let mut origins: Vec<String> = ["http", "https"]
            .iter()
            .flat_map(|scheme| {
                ["localhost", "127.0.0.1", "[::1]"].map(|host| format!("{scheme}://{host}:*"))
            })
            .collect();
        origins.extend(self.http.cors_origins.iter().cloned());
        if let Some(origin) = self.public_url.as_deref().and_then(|u| {
            let uri = u.parse::<axum::http::Uri>().ok()?;
            Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?))
        }) {
            origins.push(origin);
        }
        origins
    }

    /// Whether the refresh cookie must be `Secure`: the relay serves HTTPS itself, or is
    /// reached over HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.tls.is_some()
            || self
                .public_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
    }

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
    /// Requests a minute each MCP token may make to `/mcp`, in bursts of as many (a model
    /// calls tools in runs); 0 turns the limit off.
    pub mcp_requests_per_minute: u32,
    /// Requests a minute each API token may make to the REST API; 0 turns the limit off.
    pub api_requests_per_minute: u32,
    /// Requests a minute each ingest token may make; 0 turns the limit off.
    pub ingest_requests_per_minute: u32,
    /// Failed logins of one account before each further attempt waits (1 s, doubling).
    pub login_free_failures: u32,
    /// The longest wait an account's failed logins cause.
    pub login_max_backoff_secs: u64,
    /// Failed logins a minute allowed from one client address; 0 turns the limit off.
    pub login_failures_per_address_per_minute: u32,
}

impl AuthConfig {
    /// The request limits per credential.
    pub fn quotas(&self) -> crate::ratelimit::RequestQuotas {
        crate::ratelimit::RequestQuotas {
            per_minute: self.requests_per_minute,
            mcp: self.mcp_requests_per_minute,
            api: self.api_requests_per_minute,
            ingest: self.ingest_requests_per_minute,
        }
    }

    /// The failed-login limits.
    pub fn login_policy(&self) -> crate::ratelimit::LoginPolicy {
        crate::ratelimit::LoginPolicy {
            free_failures: self.login_free_failures,
            max_backoff: Duration::from_secs(self.login_max_backoff_secs.max(1)),
            address_failures_per_minute: self.login_failures_per_address_per_minute,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            signup_enabled: false,
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_secs: 7 * 24 * 3600,
            events_ticket_ttl_secs: 30,
            requests_per_minute: 100,
            mcp_requests_per_minute: 600,
            api_requests_per_minute: 600,
            ingest_requests_per_minute: 1200,
            login_free_failures: 5,
            login_max_backoff_secs: 60,
            login_failures_per_address_per_minute: 20,
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
    /// See [`HttpConfig`].
    pub http: HttpConfig,
    /// See [`LlmConfig`].
    pub llm: LlmConfig,
    /// See [`PipelinesConfig`].
    pub pipelines: PipelinesConfig,
    /// See [`WebhooksConfig`].
    pub webhooks: WebhooksConfig,
    /// See [`SecretsConfig`].
    pub secrets: SecretsConfig,
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
    /// A file of master keys for secrets at rest, one `ID:BASE64` per line, the current first.
    #[arg(long, env = "FULCRUM_MASTER_KEYS_FILE")]
    pub master_keys_file: Option<PathBuf>,
    /// The master keys themselves, `ID:BASE64` entries separated by commas (from the
    /// environment only: a flag would show in `ps`).
    #[arg(skip = std::env::var("FULCRUM_MASTER_KEYS").ok().filter(|k| !k.trim().is_empty()).map(Secret::new))]
    pub master_keys: Option<Secret>,
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
            .field("master_keys_file", &self.master_keys_file)
            .field("master_keys", &self.master_keys)
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
            http: file.http,
            llm: file.llm,
            pipelines: file.pipelines,
            webhooks: file.webhooks,
            master_keys: match (
                &self.master_keys,
                self.master_keys_file
                    .clone()
                    .or(file.secrets.master_keys_file),
            ) {
                (Some(keys), _) => Some(keys.clone()),
                (None, Some(path)) => {
                    Some(Secret::new(std::fs::read_to_string(&path).with_context(
                        || format!("cannot read the master keys file {}", path.display()),
                    )?))
                }
                (None, None) => None,
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
    fn public_urls_and_cookies_follow_the_config_only() {
        let mut c = ServeArgs {
            listen: Some("0.0.0.0:7420".parse().unwrap()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:7420");
        assert!(!c.secure_cookies());
        assert!(!c.allowed_hosts().contains(&"0.0.0.0".to_owned()));
        // Serving HTTPS itself: Secure cookies even without a public URL.
        c.tls = Some(TlsFiles {
            cert_file: "c.pem".into(),
            key_file: "k.pem".into(),
        });
        assert!(c.secure_cookies());
        assert_eq!(c.base_url(), "https://127.0.0.1:7420");
        c.tls = None;
        c.public_url = Some("https://fulcrum.example.com/".into());
        assert!(c.secure_cookies());
        assert_eq!(c.base_url(), "https://fulcrum.example.com");
        assert!(
            c.allowed_hosts()
                .contains(&"fulcrum.example.com".to_owned())
        );
        assert!(
            c.allowed_origins()
                .contains(&"https://fulcrum.example.com".to_owned())
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let s = Secret::new("postgres://u:hunter2@db/x");
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
