//! Starting the relay and agent binaries, and reading a process's memory and CPU from `/proc`.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    process::{Child, Command},
};

/// Clock ticks per second for `/proc/PID/stat` (100 on Linux x86_64 and arm64).
const CLK_TCK: f64 = 100.0;

/// A binary built next to this one (`target/release/NAME` for a release build).
pub fn sibling_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("no parent dir")?.join(name);
    if !path.exists() {
        bail!(
            "{} not found; run `cargo build --release --workspace --bins` first",
            path.display()
        );
    }
    Ok(path)
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no VmRSS")
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')').context("bad stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11).context("no utime")?.parse()?;
    let stime: f64 = fields.get(12).context("no stime")?.parse()?;
    Ok(Duration::from_secs_f64((utime + stime) / CLK_TCK))
}

/// Average CPU use of a process over `window`, in percent of one core.
pub async fn cpu_percent(pid: u32, window: Duration) -> Result<f64> {
    let before = cpu_time(pid)?;
    tokio::time::sleep(window).await;
    let after = cpu_time(pid)?;
    Ok((after - before).as_secs_f64() / window.as_secs_f64() * 100.0)
}

/// A relay running as a child process on its own data directory.
pub struct RelayProcess {
    /// Held so that dropping the handle kills the relay (`kill_on_drop`).
    _child: Child,
    pub url: String,
    pub pid: u32,
    bin: PathBuf,
    database: Option<String>,
    pub dir: tempfile::TempDir,
    /// Where agents reach it over QUIC, when it serves QUIC.
    pub quic_addr: Option<std::net::SocketAddr>,
    /// The CA its certificate is signed by, when it serves HTTPS.
    pub ca: Option<PathBuf>,
    /// An HTTP client that trusts it.
    pub http: reqwest::Client,
    tls: Option<Arc<rustls::ClientConfig>>,
}

/// How to start a relay.
#[derive(Debug, Default)]
pub struct Start {
    /// A PostgreSQL URL; SQLite in the data directory without.
    pub database: Option<String>,
    /// Lines for the config's `[agents]` section.
    pub agents: String,
    /// Where to listen [default: 127.0.0.1:0].
    pub listen: Option<std::net::SocketAddr>,
    /// Serve HTTPS (and QUIC, on this UDP address) with a certificate from a fresh test CA.
    pub tls: Option<std::net::SocketAddr>,
    /// The data directory of an earlier relay to start again on.
    pub dir: Option<tempfile::TempDir>,
}

impl RelayProcess {
    /// Starts `fulcrum-relay serve` on `127.0.0.1:0`, on SQLite in a temp dir unless `database`
    /// is given, with the given heartbeat interval; returns once it listens.
    pub async fn start(database: Option<String>, heartbeat_ms: u64) -> Result<Self> {
        Self::start_with(
            database,
            &format!("heartbeat_interval_ms = {heartbeat_ms}\n"),
        )
        .await
    }

    /// Like [`RelayProcess::start`], with these lines in the config's `[agents]` section.
    pub async fn start_with(database: Option<String>, agents: &str) -> Result<Self> {
        Self::start_opts(Start {
            database,
            agents: agents.into(),
            ..Default::default()
        })
        .await
    }

    /// Like [`RelayProcess::start_with`] with a 15 s heartbeat and master keys made for it (so
    /// it keeps secrets), then `extra` config sections.
    pub async fn start_with_keys(database: Option<String>, extra: &str) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let keys = dir.path().join("master-keys");
        write_private(
            &keys,
            &fulcrum_relay::secrets::KeyRing::generate_entry("k1"),
        )?;
        Self::start_opts(Start {
            database,
            agents: format!(
                "heartbeat_interval_ms = 15000\n\n[secrets]\nmaster_keys_file = {keys:?}\n\n{extra}"
            ),
            dir: Some(dir),
            ..Default::default()
        })
        .await
    }

    /// Starts a relay as `opts` say.
    pub async fn start_opts(opts: Start) -> Result<Self> {
        let Start {
            database,
            agents,
            listen,
            tls,
            dir,
        } = opts;
        let bin = sibling_binary("fulcrum-relay")?;
        let dir = match dir {
            Some(dir) => dir,
            None => tempfile::tempdir()?,
        };
        let config = dir.path().join("relay.toml");
        let mut tls_section = String::new();
        let mut ca = None;
        if let Some(quic) = tls {
            // The same CA across restarts on one data directory.
            let pki = match std::fs::exists(dir.path().join("bench-ca.pem"))? {
                true => fulcrum_tests::transport::Pki {
                    ca: dir.path().join("bench-ca.pem"),
                    tls: fulcrum_relay::config::TlsFiles {
                        cert_file: dir.path().join("bench-cert.pem"),
                        key_file: dir.path().join("bench-key.pem"),
                    },
                },
                false => fulcrum_tests::transport::make_pki(dir.path(), "bench"),
            };
            tls_section = format!(
                "\n[tls]\ncert_file = {:?}\nkey_file = {:?}\n\n[quic]\nlisten = \"{quic}\"\n",
                pki.tls.cert_file, pki.tls.key_file
            );
            ca = Some(pki.ca);
        }
        // The benchmarks drive the relay far past the default 100 requests a minute.
        std::fs::write(
            &config,
            format!(
                "[auth]\nrequests_per_minute = 0\nmcp_requests_per_minute = 0\n\
                 api_requests_per_minute = 0\ningest_requests_per_minute = 0\n\n\
                 [agents]\n{agents}{tls_section}"
            ),
        )?;
        let mut cmd = Command::new(&bin);
        let listen = listen.unwrap_or_else(|| "127.0.0.1:0".parse().expect("an address"));
        cmd.arg("serve")
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--config")
            .arg(&config);
        if let Some(db) = &database {
            cmd.arg("--database").arg(db);
        }
        cmd.env("FULCRUM_LOG", "warn")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("cannot start fulcrum-relay")?;
        let pid = child.id().context("no pid")?;
        let mut lines = BufReader::new(child.stderr.take().context("no stderr")?).lines();
        let (url, quic_addr) = tokio::time::timeout(Duration::from_secs(30), async {
            let mut quic = None;
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = line.strip_prefix("fulcrum-relay QUIC on udp/") {
                    quic = Some(addr.trim().parse()?);
                    continue;
                }
                if let Some(url) = line.strip_prefix("fulcrum-relay listening on ") {
                    return Ok((url.trim().to_owned(), quic));
                }
                eprintln!("relay: {line}");
            }
            bail!("the relay exited before listening")
        })
        .await
        .context("the relay did not start in time")??;
        let tls = match &ca {
            Some(ca) => Some(fulcrum_agent::link::tls_config(Some(ca))?),
            None => None,
        };
        let http = match &tls {
            Some(config) => reqwest::Client::builder()
                .use_preconfigured_tls((**config).clone())
                .build()?,
            None => reqwest::Client::new(),
        };
        // Keep draining its stderr so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            _child: child,
            url,
            pid,
            bin,
            database,
            dir,
            quic_addr,
            ca,
            http,
            tls,
        })
    }

    /// The PostgreSQL URL it runs on, if not SQLite in its data directory.
    pub fn database(&self) -> Option<String> {
        self.database.clone()
    }

    /// SIGKILLs the relay and hands back its data directory, to start again on.
    pub async fn kill(mut self) -> Result<tempfile::TempDir> {
        self._child.kill().await?;
        Ok(self.dir)
    }

    /// Logs in and returns an access token.
    pub async fn login(&self, email: &str, password: &str) -> Result<String> {
        let body: serde_json::Value = self
            .http
            .post(format!("{}/api/v1/auth/login", self.url))
            .json(&serde_json::json!({ "email": email, "password": password }))
            .send()
            .await?
            .json()
            .await?;
        Ok(body["data"]["access_token"]
            .as_str()
            .context("login failed")?
            .to_owned())
    }

    /// Opens a dashboard events socket for the user behind `access`.
    pub async fn events_socket(&self, access: &str) -> Result<crate::wire::Ws> {
        let body: serde_json::Value = self
            .http
            .post(format!("{}/api/v1/events/ticket", self.url))
            .bearer_auth(access)
            .send()
            .await?
            .json()
            .await?;
        let ticket = body["data"]["ticket"].as_str().context("no ticket")?;
        let ws_url = format!(
            "{}/api/v1/events?ticket={ticket}",
            self.url
                .replacen("https://", "wss://", 1)
                .replacen("http://", "ws://", 1)
        );
        let connector = self.tls.clone().map(tokio_tungstenite::Connector::Rustls);
        Ok(
            tokio_tungstenite::connect_async_tls_with_config(ws_url, None, true, connector)
                .await?
                .0,
        )
    }

    fn cli(&self) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.env("FULCRUM_LOG", "warn")
            .env("FULCRUM_DATA_DIR", self.dir.path());
        if let Some(db) = &self.database {
            cmd.env("FULCRUM_DATABASE_URL", db);
        }
        cmd
    }

    /// Creates a token of `kind` (`agent` or `mcp`) for an existing user with the relay's CLI.
    pub async fn token(&self, email: &str, kind: &str) -> Result<String> {
        let out = self
            .cli()
            .args([
                "token", "create", "--email", email, "--name", "bench", "--kind", kind,
            ])
            .output()
            .await?;
        anyhow::ensure!(
            out.status.success(),
            "token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?.trim().to_owned())
    }

    /// Creates a user and an agent token with the relay's own CLI; returns the token.
    pub async fn user_with_token(&self, email: &str, password: &str) -> Result<String> {
        let mut child = self
            .cli()
            .args(["user", "create", "--email", email, "--password-stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(password.as_bytes())
            .await?;
        anyhow::ensure!(child.wait().await?.success(), "user create failed");
        self.token(email, "agent").await
    }
}

/// Creates a fresh PostgreSQL database for a run and returns its URL.
pub async fn fresh_postgres(admin: &str) -> Result<String> {
    let name = format!("fulcrum_bench_{}", uuid::Uuid::new_v4().simple());
    let out = Command::new("psql")
        .arg(admin)
        .arg("-qc")
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "cannot create database: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

/// Writes a secret to a file readable only by the user.
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut f, contents.as_bytes())?;
    Ok(())
}
