//! `fulcrum-relay dev`: the whole product on one machine, for trying it out.
//!
//! Runs the relay on embedded SQLite under `./.fulcrum/`, creates a dev user and an agent token
//! the first time (kept in files of mode 0600 next to the database, so later runs reuse them),
//! starts an agent on the current directory inside the same process, and prints where to log in.

use std::{
    net::SocketAddr,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};
use fulcrum_agent::{AgentOptions, RunningAgent, link::RelayTarget};

use crate::{
    api::{auth::create_user, create_agent_token},
    auth,
    config::{AgentConfig, AuthConfig, Config, DEFAULT_LISTEN, Secret},
    server::{Relay, open_store},
    store::DynStore,
};

/// The dev user's e-mail address.
pub const DEV_EMAIL: &str = "dev@fulcrum.local";
const PASSWORD_FILE: &str = "dev-password";
const TOKEN_FILE: &str = "dev-agent-token";

/// Options of `fulcrum-relay dev`.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Address to listen on.
    #[arg(long, env = "FULCRUM_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Directory for the database and dev credentials.
    #[arg(long, env = "FULCRUM_DATA_DIR", default_value = ".fulcrum")]
    pub data_dir: PathBuf,
    /// The directory the local agent watches [default: the current directory].
    #[arg(long, env = "FULCRUM_ROOT")]
    pub root: Option<PathBuf>,
}

/// Runs the dev setup until Ctrl-C.
pub async fn run(args: DevArgs) -> Result<()> {
    let data_dir = &args.data_dir;
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    // Keep the relay's own files out of the status of the repository it may sit in.
    std::fs::write(data_dir.join(".gitignore"), "*\n")?;
    offer_own_agent(data_dir);
    let config = Config {
        listen: args.listen,
        database_url: Secret::new(format!(
            "sqlite://{}",
            data_dir.join("fulcrum.db").display()
        )),
        data_dir: data_dir.clone(),
        public_url: None,
        downloads_dir: None,
        auth: AuthConfig::default(),
        agents: AgentConfig::default(),
        tls: None,
        quic: Default::default(),
        http: Default::default(),
    };
    let store = open_store(&config).await?;
    let password = ensure_dev_user(&store, data_dir).await?;
    let token = ensure_dev_token(&store, data_dir).await?;
    let relay = Relay::start_with_store(config, store).await?;
    let root = match args.root {
        Some(r) => r,
        None => std::env::current_dir()?,
    };
    let state_dir = data_dir.join("agent");
    let agent = RunningAgent::start(AgentOptions::new(
        RelayTarget::new(relay.url(), token),
        root.clone(),
        state_dir.clone(),
    ))
    .await
    .context("cannot start the local agent")?;
    println!("\nFulcrum is running.\n");
    println!("  Dashboard:  {}", relay.url());
    match &password {
        Some(p) => println!("  Log in as:  {DEV_EMAIL} / {p}"),
        None => println!(
            "  Log in as:  {DEV_EMAIL} (password file {} is missing)",
            data_dir.join(PASSWORD_FILE).display()
        ),
    }
    println!("  Agent:      watching {}", root.display());
    println!(
        "  Status:     fulcrum status --state-dir {}",
        state_dir.display()
    );
    println!("\nPress Ctrl-C to stop.");
    fulcrum_agent::cli::shutdown_signal().await;
    eprintln!("shutting down");
    agent.stop().await;
    relay.shutdown().await
}

/// Writes a secret file readable by the user only, replacing it atomically.
fn write_secret(path: &Path, value: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    std::io::Write::write_all(&mut f, value.as_bytes())?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Creates the dev user on first run; returns its password when known.
async fn ensure_dev_user(store: &DynStore, data_dir: &Path) -> Result<Option<String>> {
    let file = data_dir.join(PASSWORD_FILE);
    if store.user_by_email(DEV_EMAIL).await?.is_some() {
        return Ok(std::fs::read_to_string(&file)
            .ok()
            .map(|p| p.trim().to_owned()));
    }
    let password = auth::new_token("").secret[..20].to_owned();
    create_user(store, DEV_EMAIL, &password)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    write_secret(&file, &password)?;
    Ok(Some(password))
}

/// Reuses the dev agent token if it is still valid, or creates one.
async fn ensure_dev_token(store: &DynStore, data_dir: &Path) -> Result<String> {
    let file = data_dir.join(TOKEN_FILE);
    if let Ok(token) = std::fs::read_to_string(&file) {
        let token = token.trim().to_owned();
        if store
            .active_agent_token(&auth::token_hash(&token))
            .await?
            .is_some()
        {
            return Ok(token);
        }
    }
    let owner = store
        .user_by_email(DEV_EMAIL)
        .await?
        .context("the dev user is missing")?;
    let created = create_agent_token(store, owner.id, "dev")
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    write_secret(&file, &created.secret)?;
    Ok(created.secret)
}

/// Puts the agent binary built next to this relay into the downloads directory, so
/// `curl …/install.sh | sh` works against a dev relay.
fn offer_own_agent(data_dir: &std::path::Path) {
    let Some(agent) = std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("fulcrum"))
        .filter(|p| p.is_file())
    else {
        return;
    };
    let (os, arch) = crate::install::this_platform();
    let dir = data_dir.join("downloads");
    let link = dir.join(format!("fulcrum-{os}-{arch}"));
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::remove_file(&link);
    if let Err(e) = std::os::unix::fs::symlink(&agent, &link) {
        tracing::warn!(error = %e, "cannot offer the agent binary for download");
    }
}
