//! `fulcrum-relay dev`: the whole product on one machine, for trying it out.
//!
//! Runs the relay on embedded SQLite under `./.fulcrum/`, creates a dev user and an agent token
//! the first time (kept in files of mode 0600 next to the database, so later runs reuse them),
//! starts the agent (`fulcrum agent`, the binary built next to this one) on the current
//! directory as a child process, and prints where to log in. The relay does not link the agent:
//! the server carries no git or file-watching code.

use std::{
    net::SocketAddr,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
};

use anyhow::{Context, Result};

use crate::{
    auth,
    config::{AgentConfig, AuthConfig, Config, DEFAULT_LISTEN, Secret},
    domain::{accounts::create_user, tokens::create_agent_token},
    server::{Relay, open_store},
    store::DynStore,
};

/// The dev user's e-mail address.
pub const DEV_EMAIL: &str = "dev@fulcrum.local";
const PASSWORD_FILE: &str = "dev-password";
const TOKEN_FILE: &str = "dev-agent-token";
const MASTER_KEYS_FILE: &str = "master-keys";

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
    /// What the local workspace allows callers: `write` (remote tools change files), `run`
    /// (tasks run), both (`write,run`), or `none`; passed to the agent's --allow.
    #[arg(long, default_value = "run")]
    pub allow: String,
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
        llm: Default::default(),
        pipelines: Default::default(),
        webhooks: Default::default(),
        master_keys: Some(Secret::new(ensure_master_keys(data_dir)?)),
    };
    let store = open_store(&config).await?;
    let agent_binary = own_agent().context(
        "the agent binary `fulcrum` is not next to fulcrum-relay; build both with \
         `cargo build --release`",
    )?;
    let password = ensure_dev_user(&store, data_dir).await?;
    ensure_dev_token(&store, data_dir).await?;
    let relay = Relay::start_with_store(config, store).await?;
    let root = match args.root {
        Some(r) => r,
        None => std::env::current_dir()?,
    };
    let state_dir = std::path::absolute(data_dir.join("agent"))?;
    let mut command = tokio::process::Command::new(&agent_binary);
    // The dev agent's settings are these flags alone: a FULCRUM_* variable of the caller's
    // (a real token, another config file) must not win over them.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FULCRUM_") {
            command.env_remove(name);
        }
    }
    let mut agent = command
        .arg("agent")
        .arg("--relay")
        .arg(relay.url())
        .arg("--token-file")
        .arg(std::path::absolute(data_dir.join(TOKEN_FILE))?)
        .arg("--root")
        .arg(&root)
        .arg("--state-dir")
        .arg(&state_dir)
        .arg("--allow")
        .arg(&args.allow)
        // The agent stops when this pipe closes: when `dev` ends, even by SIGKILL.
        .arg("--stop-with-stdin")
        .stdin(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {}", agent_binary.display()))?;
    // Held until `dev` stops the agent (waiting on the child would close it).
    let lifeline = agent.stdin.take();
    println!("\nFulcrum is running.\n");
    println!("  Dashboard:  {}", relay.url());
    match &password {
        Some(p) => println!("  Log in as:  {DEV_EMAIL} / {p}"),
        None => println!(
            "  Log in as:  {DEV_EMAIL} (password file {} is missing)",
            data_dir.join(PASSWORD_FILE).display()
        ),
    }
    println!(
        "  Agent:      watching {} (allows: {})",
        root.display(),
        args.allow
    );
    let fulcrum = match link_agent_on_path(&agent_binary) {
        Some(linked) => {
            println!("  Command:    fulcrum, linked at {}", linked.display());
            "fulcrum".to_owned()
        }
        None if on_path_is(&agent_binary) => "fulcrum".to_owned(),
        None => agent_binary.display().to_string(),
    };
    println!("\nIn a terminal anywhere under {}:", root.display());
    println!("  {fulcrum} status                 the agent and its repositories");
    println!(
        "  {fulcrum} run -- make test       a recorded run (one quoted argument: a shell line)"
    );
    println!("  {fulcrum} logs                   the latest task's log (or: logs ID)");
    println!("\nPress Ctrl-C to stop.");
    tokio::select! {
        () = fulcrum_common::shutdown_signal() => {}
        exited = agent.wait() => match exited {
            Ok(status) => eprintln!("the agent stopped ({status})"),
            Err(e) => eprintln!("the agent stopped: {e}"),
        },
    }
    eprintln!("shutting down");
    // Closing the pipe asks the agent to stop; the signal in `stop_child` asks again.
    drop(lifeline);
    stop_child(&mut agent).await;
    relay.shutdown().await
}

/// Asks the agent to stop (SIGTERM) and waits for it, killing it after ten seconds.
async fn stop_child(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    if tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// Whether `fulcrum` on the PATH is `binary` already.
fn on_path_is(binary: &Path) -> bool {
    let target = std::fs::canonicalize(binary).ok();
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::canonicalize(dir.join("fulcrum"))
                .ok()
                .is_some_and(|p| Some(p) == target)
        })
    })
}

/// In an interactive session, makes `fulcrum` a command: a symlink to `binary` in the first of
/// `~/.cargo/bin` and `~/.local/bin` that is on the PATH, unless `fulcrum` already resolves
/// somewhere on the PATH to something else than a symlink it may replace (one into a Cargo
/// `target/` folder). Returns where it linked, if it did.
fn link_agent_on_path(binary: &Path) -> Option<PathBuf> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || on_path_is(binary) {
        return None;
    }
    let home = PathBuf::from(std::env::var_os("HOME")?);
    let path: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH")?).collect();
    link_into(
        binary,
        &path,
        &[home.join(".cargo/bin"), home.join(".local/bin")],
    )
}

/// Links `binary` as `fulcrum` into the first of `candidates` that is on `path`, if no other
/// `fulcrum` comes first on `path` and the link would not replace a file of someone else's.
fn link_into(binary: &Path, path: &[PathBuf], candidates: &[PathBuf]) -> Option<PathBuf> {
    let dir = path.iter().find(|d| candidates.contains(d))?;
    // Another `fulcrum` earlier on the PATH would win over the link: leave it.
    let earlier = path.iter().take_while(|d| *d != dir);
    if earlier.into_iter().any(|d| d.join("fulcrum").exists()) {
        return None;
    }
    let link = dir.join("fulcrum");
    match std::fs::symlink_metadata(&link) {
        Ok(meta) if meta.file_type().is_symlink() => {
            let points = std::fs::read_link(&link).ok()?;
            if !points.components().any(|c| c.as_os_str() == "target") {
                return None;
            }
            std::fs::remove_file(&link).ok()?;
        }
        Ok(_) => return None,
        Err(_) => {}
    }
    std::os::unix::fs::symlink(binary, &link).ok()?;
    Some(link)
}

/// The agent binary built next to this relay, if there is one.
fn own_agent() -> Option<PathBuf> {
    std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("fulcrum"))
        .filter(|p| p.is_file())
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

/// Creates the dev user on first run (an administrator: the relay is theirs); returns its
/// password when known.
async fn ensure_dev_user(store: &DynStore, data_dir: &Path) -> Result<Option<String>> {
    let file = data_dir.join(PASSWORD_FILE);
    if store.user_by_email(DEV_EMAIL).await?.is_some() {
        return Ok(std::fs::read_to_string(&file)
            .ok()
            .map(|p| p.trim().to_owned()));
    }
    let password = auth::new_token("").secret[..20].to_owned();
    create_user(store, DEV_EMAIL, &password).await?;
    crate::domain::accounts::set_role(store, DEV_EMAIL, crate::store::UserRole::Admin).await?;
    write_secret(&file, &password)?;
    Ok(Some(password))
}

/// Reuses the dev agent token if it is still valid, or creates one.
async fn ensure_dev_token(store: &DynStore, data_dir: &Path) -> Result<()> {
    let file = data_dir.join(TOKEN_FILE);
    if let Ok(token) = std::fs::read_to_string(&file) {
        let token = token.trim().to_owned();
        if store
            .active_agent_token(&auth::token_hash(&token))
            .await?
            .is_some()
        {
            return Ok(());
        }
    }
    let owner = store
        .user_by_email(DEV_EMAIL)
        .await?
        .context("the dev user is missing")?;
    let created = create_agent_token(store, owner.id, "dev").await?;
    write_secret(&file, &created.secret)?;
    Ok(())
}

/// The dev relay's master keys for secrets at rest: made the first time, kept next to the
/// database (mode 0600) like the other dev credentials.
fn ensure_master_keys(data_dir: &Path) -> Result<String> {
    let file = data_dir.join(MASTER_KEYS_FILE);
    if let Ok(keys) = std::fs::read_to_string(&file) {
        return Ok(keys);
    }
    let keys = format!("{}\n", crate::secrets::KeyRing::generate_entry("dev-1"));
    write_secret(&file, &keys)?;
    Ok(keys)
}

/// Puts the agent binary built next to this relay into the downloads directory, so
/// `curl …/install.sh | sh` works against a dev relay.
fn offer_own_agent(data_dir: &std::path::Path) {
    let Some(agent) = own_agent() else {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_is_linked_where_the_path_finds_it_and_nothing_else_is_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let (bin, cargo, local, other) = (
            tmp.path().join("target/release"),
            tmp.path().join("cargo-bin"),
            tmp.path().join("local-bin"),
            tmp.path().join("other"),
        );
        for d in [&bin, &cargo, &local, &other] {
            std::fs::create_dir_all(d).unwrap();
        }
        let agent = bin.join("fulcrum");
        std::fs::write(&agent, "").unwrap();
        let candidates = [cargo.clone(), local.clone()];
        // The first candidate on the PATH gets the link.
        let path = vec![other.clone(), local.clone(), cargo.clone()];
        assert_eq!(
            link_into(&agent, &path, &candidates),
            Some(local.join("fulcrum"))
        );
        assert_eq!(std::fs::read_link(local.join("fulcrum")).unwrap(), agent);
        // A link into a `target/` folder is replaced; a real file is not.
        assert_eq!(
            link_into(&agent, &path, &candidates),
            Some(local.join("fulcrum"))
        );
        std::fs::remove_file(local.join("fulcrum")).unwrap();
        std::fs::write(local.join("fulcrum"), "mine").unwrap();
        assert_eq!(link_into(&agent, &path, &candidates), None);
        assert_eq!(
            std::fs::read_to_string(local.join("fulcrum")).unwrap(),
            "mine"
        );
        // Another `fulcrum` earlier on the PATH: nothing is linked.
        std::fs::write(other.join("fulcrum"), "").unwrap();
        let path = vec![other.clone(), cargo.clone()];
        assert_eq!(link_into(&agent, &path, &candidates), None);
        // No candidate on the PATH: nothing.
        assert_eq!(link_into(&agent, &[other], &candidates), None);
    }
}
