//! Shared harness for the cross-crate integration tests in `tests/tests/`.
//!
//! Everything here is real: a relay bound to `127.0.0.1:0`, a fresh PostgreSQL database or
//! SQLite file per test, agents running against git repositories in temporary directories. Tests
//! wait on events (the dashboard feed, the agent's status channel), never on sleeps.
#![forbid(unsafe_code)]

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

pub mod llm_standin;
pub mod mcp_client;
pub mod processes;
pub mod transport;
pub mod webhook_receiver;

use anyhow::{Context, Result, bail};
use fulcrum_agent::{AgentOptions, RunningAgent, transport::TransportMode};
use fulcrum_relay::{
    Config, Relay,
    config::{AgentConfig, AuthConfig, Secret},
    store::DynStore,
};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio_tungstenite::tungstenite::Message;

/// The agent is in a session with the relay (for `RunningAgent::wait_for`).
pub fn connected(s: &fulcrum_agent::status::AgentStatus) -> bool {
    s.connection.state == fulcrum_agent::status::ConnectionState::Connected
}

/// The relay refused the agent's token (for `RunningAgent::wait_for`).
pub fn token_refused(s: &fulcrum_agent::status::AgentStatus) -> bool {
    s.connection
        .problem
        .as_ref()
        .is_some_and(|p| p.kind == fulcrum_agent::status::ProblemKind::TokenRefused)
}

/// Default bound on every wait in the tests.
pub const WAIT: Duration = Duration::from_secs(20);

/// The two databases every story runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL at `FULCRUM_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
    Postgres,
}

/// Runs a story on both databases: `both_backends!(name)` expects `async fn name(b: Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($story:ident),* $(,)?) => {$(
        mod $story {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$story($crate::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$story($crate::Backend::Postgres).await
            }
        }
    )*};
}

/// A database for one test, dropped with it.
pub struct TestDb {
    /// Its URL.
    pub url: String,
    _dir: Option<TempDir>,
    pg_name: Option<String>,
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("FULCRUM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

impl TestDb {
    /// A fresh, empty database on `backend`.
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("relay.db").display());
                Self {
                    url,
                    _dir: Some(dir),
                    pg_name: None,
                }
            }
            Backend::Postgres => {
                use sqlx::Connection;
                let admin = postgres_admin_url();
                let name = format!("fulcrum_test_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("PostgreSQL must be running for these tests ({admin}): {e}")
                    });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
                Self {
                    url: format!("{base}/{name}"),
                    _dir: None,
                    pg_name: Some(name),
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Best effort, on a thread of its own: Drop cannot await.
            let admin = postgres_admin_url();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    use sqlx::Connection;
                    let mut conn = sqlx::PgConnection::connect(&admin).await?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut conn)
                        .await?;
                    Ok::<_, sqlx::Error>(())
                })
                .map_err(std::io::Error::other)
            })
            .join();
        }
    }
}

/// Relay settings tests may change.
#[derive(Debug, Clone)]
pub struct RelayOptions {
    /// Address to bind (`127.0.0.1:0` unless a test restarts on a known address).
    pub listen: std::net::SocketAddr,
    /// Heartbeat interval.
    pub heartbeat_ms: u64,
    /// Whether sign-up is open.
    pub signup: bool,
    /// Serve HTTPS with this certificate and key.
    pub tls: Option<fulcrum_relay::config::TlsFiles>,
    /// How long a running task's agent may be gone before the task is lost.
    pub task_lease_secs: u64,
    /// SIGTERM-to-SIGKILL grace for canceled and timed-out tasks.
    pub task_grace_secs: u64,
    /// Most log bytes kept per task.
    pub task_log_limit_bytes: u64,
    /// Requests a minute per user and per agent token; 0 (the tests' default) is unlimited, so
    /// only the test of the limit meets it.
    pub requests_per_minute: u32,
    /// Requests a minute per MCP token; 0 (the tests' default) is unlimited.
    pub mcp_requests_per_minute: u32,
    /// Requests a minute per API token; 0 (the tests' default) is unlimited.
    pub api_requests_per_minute: u32,
    /// Master keys for secrets at rest (`ID:BASE64` entries), if any.
    pub master_keys: Option<String>,
    /// LLM prices and limits.
    pub llm: fulcrum_relay::config::LlmConfig,
    /// The pipeline engine.
    pub pipelines: fulcrum_relay::config::PipelinesConfig,
    /// Outgoing webhooks (in tests: loopback receivers allowed, retries after milliseconds).
    pub webhooks: fulcrum_relay::config::WebhooksConfig,
}

impl Default for RelayOptions {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:0".parse().unwrap(),
            heartbeat_ms: 15_000,
            signup: false,
            tls: None,
            task_lease_secs: 60,
            task_grace_secs: 10,
            task_log_limit_bytes: 64 * 1024 * 1024,
            requests_per_minute: 0,
            mcp_requests_per_minute: 0,
            api_requests_per_minute: 0,
            master_keys: None,
            llm: fulcrum_relay::config::LlmConfig {
                // Retries in tests wait milliseconds, not seconds.
                backoff_ms: 5,
                ..Default::default()
            },
            pipelines: Default::default(),
            webhooks: fulcrum_relay::config::WebhooksConfig {
                allow_private_targets: true,
                retry_delays_ms: vec![50, 100, 200],
                poll_ms: 200,
                ..Default::default()
            },
        }
    }
}

/// A relay configuration on `db`.
pub fn relay_config(db: &TestDb, opts: &RelayOptions) -> Config {
    Config {
        listen: opts.listen,
        database_url: Secret::new(db.url.clone()),
        data_dir: std::env::temp_dir(),
        public_url: None,
        downloads_dir: None,
        auth: AuthConfig {
            signup_enabled: opts.signup,
            requests_per_minute: opts.requests_per_minute,
            mcp_requests_per_minute: opts.mcp_requests_per_minute,
            api_requests_per_minute: opts.api_requests_per_minute,
            ..AuthConfig::default()
        },
        agents: AgentConfig {
            heartbeat_interval_ms: opts.heartbeat_ms,
            task_lease_secs: opts.task_lease_secs,
            task_grace_secs: opts.task_grace_secs,
            task_log_limit_bytes: opts.task_log_limit_bytes,
            ..AgentConfig::default()
        },
        tls: opts.tls.clone(),
        quic: quic_config(opts),
        http: Default::default(),
        llm: opts.llm.clone(),
        pipelines: opts.pipelines.clone(),
        webhooks: opts.webhooks.clone(),
        master_keys: opts.master_keys.clone().map(Secret::new),
    }
}

/// QUIC for a test relay: with HTTPS's certificate if it has one, else the suite's own when the
/// run is on QUIC; on a fresh port, or the one a relay at the same address had before.
fn quic_config(opts: &RelayOptions) -> fulcrum_relay::config::QuicConfig {
    let own = (opts.tls.is_none() && transport::mode() != TransportMode::Ws)
        .then(|| transport::test_pki().tls.clone());
    let port = if opts.listen.port() == 0 {
        0
    } else {
        transport::quic_port(opts.listen).unwrap_or(0)
    };
    fulcrum_relay::config::QuicConfig {
        enabled: true,
        listen: Some(std::net::SocketAddr::new(opts.listen.ip(), port)),
        cert_file: own.as_ref().map(|t| t.cert_file.clone()),
        key_file: own.map(|t| t.key_file),
    }
}

/// Starts a relay on `db`.
pub async fn start_relay(db: &TestDb, opts: &RelayOptions) -> Relay {
    // Logs go to the test's stderr, which the runner shows only for failures.
    fulcrum_agent::cli::init_logging(fulcrum_agent::cli::LogFormat::Text);
    let relay = Relay::start(relay_config(db, opts))
        .await
        .expect("relay starts");
    transport::remember_quic(relay.addr, relay.quic_addr);
    relay
}

/// Starts a relay again on `db` at the address an earlier one had.
pub async fn restart_relay(db: &TestDb, addr: std::net::SocketAddr) -> Relay {
    start_relay(
        db,
        &RelayOptions {
            listen: addr,
            ..Default::default()
        },
    )
    .await
}

/// A user with an API session and an agent token.
pub struct TestUser {
    /// E-mail.
    pub email: String,
    /// Password.
    pub password: String,
    /// Id.
    pub id: String,
    /// A fresh access token.
    pub access: String,
    /// An agent token of theirs.
    pub agent_token: String,
}

/// Creates a user through the same path as the CLI, logs in and creates an agent token.
pub async fn make_user(relay: &Relay, name: &str) -> TestUser {
    let email = format!("{name}@example.com");
    let password = format!("{name}-password-123");
    let store: &DynStore = &relay.state.store;
    let user = fulcrum_relay::domain::accounts::create_user(store, &email, &password)
        .await
        .map_err(|e| anyhow::anyhow!(e.to_string()))
        .expect("create user");
    let api = Api::new(&relay.url());
    let access = api.login(&email, &password).await.expect("login")["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = api
        .with_token(&access)
        .post("/api/v1/tokens", json!({ "name": format!("{name}-ws") }))
        .await
        .expect("create agent token");
    TestUser {
        email,
        password,
        id: user.id.to_string(),
        access,
        agent_token: token.data()["token"].as_str().unwrap().to_owned(),
    }
}

/// A user and an agent token, made through the relay's store (for relays serving HTTPS, which
/// the test's HTTP client does not speak): the user's id and the token's secret.
pub async fn make_user_in_store(relay: &Relay, name: &str) -> (uuid::Uuid, String) {
    let store = &relay.state.store;
    let email = format!("{name}@example.com");
    let user =
        fulcrum_relay::domain::accounts::create_user(store, &email, &format!("{name}-password-1"))
            .await
            .expect("user created");
    let token = fulcrum_relay::domain::tokens::create_agent_token(store, user.id, name)
        .await
        .expect("agent token created")
        .secret;
    (user.id, token)
}

/// A user in `db`, made through a relay in this process that is stopped again: for tests that
/// then serve `db` with the relay binary.
pub async fn make_user_offline(db: &TestDb, name: &str) -> TestUser {
    let relay = start_relay(db, &RelayOptions::default()).await;
    let user = make_user(&relay, name).await;
    relay.shutdown().await.expect("the setup relay stops");
    user
}

/// A minimal REST client speaking the envelope.
#[derive(Clone)]
pub struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// A response: status and parsed JSON body.
#[derive(Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Value,
}

impl Reply {
    /// `body.data`.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }
    /// `body.errors[0].code`.
    pub fn error_code(&self) -> &str {
        self.body["errors"][0]["code"].as_str().unwrap_or("")
    }
}

impl Api {
    /// A client for the relay at `base`.
    pub fn new(base: &str) -> Self {
        Self {
            base: base.trim_end_matches('/').into(),
            token: None,
            http: reqwest::Client::new(),
        }
    }

    /// The bearer token it sends, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The same client sending `Authorization: Bearer token`.
    pub fn with_token(&self, token: &str) -> Self {
        Self {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Reply> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        // 204 and the like have no body at all.
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .with_context(|| format!("non-JSON body ({status}): {text}"))?
        };
        Ok(Reply { status, body })
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Result<Reply> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }
    /// POST with a JSON body.
    pub async fn post(&self, path: &str, body: Value) -> Result<Reply> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }
    /// POST with a raw body.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Result<Reply> {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }
    /// PUT with a JSON body.
    pub async fn put(&self, path: &str, body: Value) -> Result<Reply> {
        self.send(self.http.put(format!("{}{path}", self.base)).json(&body))
            .await
    }
    /// PATCH with a JSON body.
    pub async fn patch(&self, path: &str, body: Value) -> Result<Reply> {
        self.send(self.http.patch(format!("{}{path}", self.base)).json(&body))
            .await
    }
    /// DELETE.
    pub async fn delete(&self, path: &str) -> Result<Reply> {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// Logs in; returns `data` (access_token, refresh_token, expires_in).
    pub async fn login(&self, email: &str, password: &str) -> Result<Value> {
        let r = self
            .post(
                "/api/v1/auth/login",
                json!({ "email": email, "password": password }),
            )
            .await?;
        if r.status != 200 {
            bail!("login failed: {:?}", r.body);
        }
        Ok(r.data().clone())
    }

    /// The caller's workspaces.
    pub async fn workspaces(&self) -> Result<Vec<Value>> {
        let r = self.get("/api/v1/workspaces").await?;
        if r.status != 200 {
            bail!("list workspaces failed: {:?}", r.body);
        }
        Ok(r.data().as_array().cloned().unwrap_or_default())
    }
}

/// A dashboard events socket.
pub struct Events {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Events {
    /// Gets a ticket with `access` and opens the feed.
    pub async fn connect(relay_url: &str, access: &str) -> Result<Self> {
        let r = Api::new(relay_url)
            .with_token(access)
            .post("/api/v1/events/ticket", json!({}))
            .await?;
        let ticket = r.data()["ticket"].as_str().context("no ticket")?.to_owned();
        let url = format!(
            "{}/api/v1/events?ticket={ticket}",
            relay_url.replace("http://", "ws://")
        );
        let (ws, _) = tokio_tungstenite::connect_async(url).await?;
        Ok(Self { ws })
    }

    /// The next JSON message (skipping pings), within `WAIT`.
    pub async fn next(&mut self) -> Result<Value> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .context("no event in time")?;
            match msg {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t)?;
                    if v["type"] != "ping" {
                        return Ok(v);
                    }
                }
                Some(Ok(Message::Close(_))) | None => bail!("events socket closed"),
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("events socket error: {e}"),
            }
        }
    }

    /// Waits for a `workspace` event whose workspace satisfies `pred`; returns the workspace.
    pub async fn workspace_where(&mut self, mut pred: impl FnMut(&Value) -> bool) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let v = match tokio::time::timeout_at(deadline, self.next()).await {
                Ok(v) => v?,
                Err(_) => bail!(
                    "no matching workspace event in time; saw {} messages, the last: {:#}",
                    seen.len(),
                    seen.last().unwrap_or(&Value::Null)
                ),
            };
            let candidates: Vec<Value> = match v["type"].as_str() {
                Some("workspace") => vec![v["workspace"].clone()],
                Some("snapshot") => v["workspaces"].as_array().cloned().unwrap_or_default(),
                _ => vec![],
            };
            seen.push(v);
            if let Some(w) = candidates.into_iter().find(|w| pred(w)) {
                return Ok(w);
            }
        }
    }
}

impl Events {
    /// Waits for a `pipeline_run` event about run `id` that satisfies `pred`; returns the run.
    pub async fn run_where(&mut self, id: &str, pred: impl FnMut(&Value) -> bool) -> Result<Value> {
        self.run_where_within(id, WAIT, pred).await
    }

    /// [`Self::run_where`] with its own deadline, for whole runs that build and test code.
    pub async fn run_where_within(
        &mut self,
        id: &str,
        wait: Duration,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut last = Value::Null;
        loop {
            let v = match tokio::time::timeout_at(deadline, self.next()).await {
                Ok(v) => v?,
                Err(_) => bail!("no matching run event in time; the last run seen: {last:#}"),
            };
            if v["type"] == "pipeline_run" && v["run"]["id"] == id {
                last = v["run"].clone();
                if pred(&last) {
                    return Ok(last);
                }
            }
        }
    }

    /// Sends a JSON request on the socket.
    pub async fn request(&mut self, v: Value) -> Result<()> {
        use futures_util::SinkExt;
        self.ws.send(Message::Text(v.to_string().into())).await?;
        Ok(())
    }

    /// Waits for a `task` event about `id` whose task satisfies `pred`; returns the task.
    pub async fn task_where(
        &mut self,
        id: &str,
        mut pred: impl FnMut(&Value) -> bool,
    ) -> Result<Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        let mut last = Value::Null;
        loop {
            let v = match tokio::time::timeout_at(deadline, self.next()).await {
                Ok(v) => v?,
                Err(_) => bail!("no matching task event in time; the last for it: {last:#}"),
            };
            if v["type"] == "task" && v["task"]["id"] == id {
                if pred(&v["task"]) {
                    return Ok(v["task"].clone());
                }
                last = v["task"].clone();
            }
        }
    }

    /// Task `id` once it reached a final state: as stored if it already has (its event may have
    /// gone out before this socket opened), else from the feed.
    pub async fn task_finished_via(&mut self, api: &Api, id: &str) -> Result<Value> {
        let stored = api.get(&format!("/api/v1/tasks/{id}")).await?;
        if is_final_state(&stored.data()["state"]) {
            return Ok(stored.data().clone());
        }
        self.task_finished(id).await
    }

    /// Waits for task `id` to reach a final state; returns it.
    pub async fn task_finished(&mut self, id: &str) -> Result<Value> {
        self.task_where(id, |t| is_final_state(&t["state"])).await
    }

    /// Follows task `id`'s log until at least `bytes` bytes arrived, then stops following.
    pub async fn wait_log(&mut self, id: &str, bytes: usize) -> Result<()> {
        self.request(json!({ "type": "follow", "task": id, "offset": 0 }))
            .await?;
        let mut got = 0;
        let deadline = tokio::time::Instant::now() + WAIT;
        while got < bytes {
            let v = match tokio::time::timeout_at(deadline, self.next()).await {
                Ok(v) => v?,
                Err(_) => bail!("the log stayed at {got} bytes"),
            };
            if v["task"] == id {
                match v["type"].as_str() {
                    Some("log") => got += v["data"].as_str().map_or(0, |d| d.len() * 3 / 4),
                    Some("log_end") => bail!("the task ended with {got} bytes of log"),
                    _ => {}
                }
            }
        }
        self.request(json!({ "type": "unfollow", "task": id }))
            .await
    }

    /// Follows task `id`'s log from `offset` until `log_end`; returns the bytes. Other messages
    /// are skipped.
    pub async fn follow_log(&mut self, id: &str, offset: u64, within: Duration) -> Result<Vec<u8>> {
        use base64::Engine;
        self.request(json!({ "type": "follow", "task": id, "offset": offset }))
            .await?;
        let deadline = tokio::time::Instant::now() + within;
        let mut out = Vec::new();
        loop {
            let v = match tokio::time::timeout_at(deadline, self.next()).await {
                Ok(v) => v?,
                Err(_) => bail!("the log did not end in time ({} bytes so far)", out.len()),
            };
            match v["type"].as_str() {
                Some("log") if v["task"] == id => {
                    anyhow::ensure!(
                        v["offset"].as_u64() == Some(offset + out.len() as u64),
                        "log message out of order: {}",
                        v["offset"]
                    );
                    let data = base64::engine::general_purpose::STANDARD
                        .decode(v["data"].as_str().unwrap_or_default())?;
                    out.extend_from_slice(&data);
                }
                Some("log_end") if v["task"] == id => return Ok(out),
                Some("error") => bail!("follow refused: {v}"),
                _ => {}
            }
        }
    }
}

/// A relay, a user (alice) with a live agent on a fresh repository, and her event feed. When
/// destructuring, bind `repo` and `db` (e.g. `db: _db`): a field left to `..` is dropped at once,
/// deleting the repository or the database under the running test.
pub struct Rig {
    /// The relay.
    pub relay: Relay,
    /// The user.
    pub user: TestUser,
    /// The API as the user.
    pub api: Api,
    /// The user's event feed.
    pub events: Events,
    /// The repository the agent watches.
    pub repo: TestRepo,
    /// The agent.
    pub agent: TestAgent,
    /// The agent's workspace id.
    pub workspace: String,
    /// Held so the database lives as long as the rig.
    pub db: TestDb,
}

/// Starts a [`Rig`] and waits until the agent is online.
pub async fn rig(b: Backend, opts: RelayOptions) -> Rig {
    rig_allowing(b, opts, None).await
}

/// A [`Rig`] whose agent allows `policy` (`write`, `run`) instead of the default (`run`).
pub async fn rig_allowing(
    b: Backend,
    opts: RelayOptions,
    policy: Option<fulcrum_protocol::kinds::Scopes>,
) -> Rig {
    let db = TestDb::new(b).await;
    let relay = start_relay(&db, &opts).await;
    let user = make_user(&relay, "alice").await;
    let api = Api::new(&relay.url()).with_token(&user.access);
    let mut events = Events::connect(&relay.url(), &user.access).await.unwrap();
    let repo = TestRepo::new();
    let agent = match policy {
        None => start_agent(&relay.url(), &user.agent_token, repo.path()).await,
        Some(policy) => {
            let state = tempfile::tempdir().expect("tempdir");
            let mut o = AgentOptions::new(
                transport::target(&relay.url(), &user.agent_token, None),
                repo.path().to_path_buf(),
                state.path().to_path_buf(),
            );
            o.policy = policy;
            TestAgent {
                agent: RunningAgent::start(o).await.expect("agent starts"),
                state,
            }
        }
    };
    let w = events
        .workspace_where(|w| w["online"] == true)
        .await
        .unwrap();
    Rig {
        workspace: w["id"].as_str().unwrap().to_owned(),
        relay,
        user,
        api,
        events,
        repo,
        agent,
        db,
    }
}

/// The HTTP status of an MCP `initialize` on `{relay_url}/mcp` with this bearer token: 200 when
/// the token opens `/mcp`, 401 when it does not.
pub async fn mcp_initialize_status(relay_url: &str, bearer: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{relay_url}/mcp"))
        .bearer_auth(bearer)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": { "protocolVersion": "2025-11-25", "capabilities": {},
                        "clientInfo": { "name": "t", "version": "1" } }
        }))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The `id` of an API object, as a string.
pub fn id(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_owned()
}

/// True for the states a task never leaves.
pub fn is_final_state(state: &Value) -> bool {
    state
        .as_str()
        .and_then(fulcrum_protocol::TaskState::parse)
        .is_some_and(fulcrum_protocol::TaskState::is_final)
}

/// Makes `email` a member of `project` with `role` the way users do: the owner invites, the
/// invited user (whose API client is `member`) accepts.
pub async fn add_member(owner: &Api, member: &Api, project: &str, email: &str, role: &str) {
    let r = owner
        .post(
            &format!("/api/v1/projects/{project}/invitations"),
            serde_json::json!({ "email": email, "role": role }),
        )
        .await
        .expect("POST invitations");
    assert_eq!(r.status, 201, "{:#}", r.body);
    let r = member
        .post(
            &format!("/api/v1/invitations/{}/accept", id(r.data())),
            serde_json::json!({}),
        )
        .await
        .expect("POST accept");
    assert_eq!(r.status, 200, "{:#}", r.body);
}

/// Runs a task through the API; panics unless it is accepted. Returns the task.
pub async fn post_task(api: &Api, body: Value) -> Value {
    let r = api.post("/api/v1/tasks", body).await.expect("POST /tasks");
    assert_eq!(r.status, 201, "{:#}", r.body);
    r.data().clone()
}

/// A task's whole stored log, read through the REST API page by page.
pub async fn task_log(api: &Api, id: &str) -> Result<Vec<u8>> {
    use base64::Engine;
    let mut out = Vec::new();
    loop {
        let r = api
            .get(&format!(
                "/api/v1/tasks/{id}/logs?offset={}&limit=4194304",
                out.len()
            ))
            .await?;
        anyhow::ensure!(r.status == 200, "logs: {:#}", r.body);
        let data = base64::engine::general_purpose::STANDARD
            .decode(r.data()["data"].as_str().unwrap_or_default())?;
        if data.is_empty() {
            return Ok(out);
        }
        out.extend_from_slice(&data);
    }
}

/// A git repository in a temporary directory, with one commit.
pub struct TestRepo {
    /// Holds the directory.
    pub dir: TempDir,
}

impl TestRepo {
    /// A repository with `README.md` committed on `main`.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        git(dir.path(), &["init", "-q", "-b", "main"]);
        std::fs::write(dir.path().join("README.md"), "hello\n").unwrap();
        git(dir.path(), &["add", "README.md"]);
        git(dir.path(), &["commit", "-q", "-m", "Initial commit"]);
        Self { dir }
    }

    /// The work tree.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file in the work tree.
    pub fn write(&self, name: &str, contents: &str) {
        let p = self.dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, contents).unwrap();
    }
}

impl Default for TestRepo {
    fn default() -> Self {
        Self::new()
    }
}

/// Runs git in `dir` with a fixed identity; panics on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An agent and the directory holding its state.
pub struct TestAgent {
    /// The running agent.
    pub agent: RunningAgent,
    /// Its state directory.
    pub state: TempDir,
}

/// Starts an agent on `root` with `token` against `relay_url`.
pub async fn start_agent(relay_url: &str, token: &str, root: &Path) -> TestAgent {
    let state = tempfile::tempdir().expect("tempdir");
    let agent = start_agent_in(relay_url, token, root, state.path().to_path_buf()).await;
    TestAgent { agent, state }
}

/// Starts an agent with a given state directory.
pub async fn start_agent_in(
    relay_url: &str,
    token: &str,
    root: &Path,
    state_dir: PathBuf,
) -> RunningAgent {
    start_agent_with(relay_url, token, root, state_dir, None).await
}

/// Starts an agent that also trusts the CA certificates in `extra_ca`.
pub async fn start_agent_with(
    relay_url: &str,
    token: &str,
    root: &Path,
    state_dir: PathBuf,
    extra_ca: Option<PathBuf>,
) -> RunningAgent {
    RunningAgent::start(AgentOptions::new(
        transport::target(relay_url, token, extra_ca),
        root.to_path_buf(),
        state_dir,
    ))
    .await
    .expect("agent starts")
}

/// The path of a binary built from this workspace (`fulcrum`, `fulcrum-relay`), next to the test
/// executable's directory.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// A hand-driven agent connection speaking the protocol frame by frame, for tests that need to
/// misbehave or look at individual frames.
pub struct RawAgent {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl RawAgent {
    /// Opens the agent socket with `token`; `Err(status)` when the upgrade is refused.
    pub async fn connect(relay_url: &str, token: &str) -> std::result::Result<Self, u16> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = fulcrum_agent::link::connect_url(relay_url).expect("url");
        let mut req = url.into_client_request().expect("request");
        req.headers_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Ok((ws, _)) => Ok(Self { ws }),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("cannot connect: {e}"),
        }
    }

    /// A hello for a workspace with `key`, on `stream`.
    pub fn hello(key: &str, stream: uuid::Uuid) -> fulcrum_protocol::AgentFrame {
        fulcrum_protocol::AgentFrame::Hello(fulcrum_protocol::Hello {
            protocol_version: fulcrum_protocol::PROTOCOL_VERSION,
            agent_version: "test".into(),
            workspace: fulcrum_protocol::WorkspaceIdentity {
                key: key.into(),
                name: format!("raw-{key}"),
                hostname: "raw-host".into(),
                root: "/raw".into(),
                coder: None,
            },
            agent_stream: stream,
            relay_stream: None,
        })
    }

    /// Sends a frame.
    pub async fn send(&mut self, frame: &fulcrum_protocol::AgentFrame) {
        self.send_bytes(fulcrum_protocol::encode(frame).unwrap())
            .await;
    }

    /// Sends raw bytes as a binary message (ignoring errors: the relay may have closed already).
    pub async fn send_bytes(&mut self, bytes: Vec<u8>) {
        use futures_util::SinkExt;
        let _ = self.ws.send(Message::Binary(bytes.into())).await;
    }

    /// Sends a text message.
    pub async fn send_text(&mut self, text: &str) {
        use futures_util::SinkExt;
        let _ = self.ws.send(Message::Text(text.into())).await;
    }

    /// The next relay frame, or `None` when the connection closed; within `WAIT`.
    pub async fn recv(&mut self) -> Option<fulcrum_protocol::RelayFrame> {
        loop {
            match tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("relay answered in time")
            {
                Some(Ok(Message::Binary(b))) => {
                    return Some(fulcrum_protocol::decode(&b).expect("relay frame decodes"));
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// Receives frames until one that is not a ping.
    pub async fn recv_non_ping(&mut self) -> Option<fulcrum_protocol::RelayFrame> {
        loop {
            match self.recv().await? {
                fulcrum_protocol::RelayFrame::Ping { .. } => continue,
                other => return Some(other),
            }
        }
    }

    /// Connects and completes the handshake; returns the welcome.
    pub async fn handshake(
        relay_url: &str,
        token: &str,
        key: &str,
        stream: uuid::Uuid,
    ) -> (Self, fulcrum_protocol::Welcome) {
        let mut raw = Self::connect(relay_url, token)
            .await
            .expect("upgrade accepted");
        raw.send(&Self::hello(key, stream)).await;
        match raw.recv().await {
            Some(fulcrum_protocol::RelayFrame::Welcome(w)) => (raw, w),
            other => panic!("expected a welcome, got {other:?}"),
        }
    }
}
