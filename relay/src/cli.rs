//! The `fulcrum-relay` command line: `serve`, `migrate`, `user`, `token`, `keys`, `dev`.
//!
//! Output meant for scripts (a new user's id, a new token) goes to stdout alone; logs go to
//! stderr.

use std::io::Read;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use uuid::Uuid;

use crate::{
    config::ServeArgs,
    domain::{accounts::create_user, tokens::create_token},
    server::{Relay, open_store},
    store::DynStore,
};

/// The Fulcrum relay.
#[derive(Debug, Parser)]
#[command(name = "fulcrum-relay", version, about)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        env = "FULCRUM_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

pub use fulcrum_common::{LogFormat, init_logging, shutdown_signal};

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the relay.
    Serve(ServeArgs),
    /// Run database migrations and exit.
    Migrate(ServeArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage agent tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Master keys for secrets at rest.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run a local relay on embedded SQLite with an agent on the current directory.
    Dev(crate::dev::DevArgs),
}

/// `fulcrum-relay keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new master key entry (`ID:BASE64`); put it first in the key list to make it
    /// the current key, then run `keys rotate`.
    Generate {
        /// The new key's id.
        #[arg(long)]
        id: String,
    },
    /// Re-seal every stored secret under the current (first) master key; the older keys must
    /// still be in the list. Prints how many were re-sealed.
    Rotate {
        /// Where the database and the keys are: the same settings as `serve`.
        #[command(flatten)]
        db: ServeArgs,
    },
    /// How many stored secrets each master key holds, and whether the keys open them.
    Status {
        /// Where the database and the keys are: the same settings as `serve`.
        #[command(flatten)]
        db: ServeArgs,
    },
}

/// `fulcrum-relay user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; prints the new user's id.
    Create {
        /// The user's e-mail address.
        #[arg(long)]
        email: String,
        /// Read the password from standard input (the only way: never on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Where the database is: the same settings as `serve`.
        #[command(flatten)]
        db: ServeArgs,
    },
    /// Deactivate a user: every login ends, and every relay ends their open streams, agent
    /// connections and MCP sessions within a second; nothing of theirs authenticates.
    Deactivate {
        /// The user's e-mail address.
        #[arg(long)]
        email: String,
        /// Where the database is: the same settings as `serve`.
        #[command(flatten)]
        db: ServeArgs,
    },
    /// Print a one-time link that sets a new password for a user (no mail server is assumed:
    /// hand it over yourself). Using it ends every login of the user.
    ResetPassword {
        /// The user's e-mail address.
        #[arg(long)]
        email: String,
        /// Minutes the link works (1 to 10080).
        #[arg(long, default_value_t = 60)]
        valid_for_mins: i64,
        /// Where the database is, and the public URL the link names: the same settings as
        /// `serve`.
        #[command(flatten)]
        db: ServeArgs,
    },
    /// Activate a deactivated user again (they log in anew; their tokens work again).
    Activate {
        /// The user's e-mail address.
        #[arg(long)]
        email: String,
        /// Where the database is: the same settings as `serve`.
        #[command(flatten)]
        db: ServeArgs,
    },
    /// Make a user an administrator of the relay (they manage users through the API), or,
    /// with --revoke, a member again.
    Admin {
        /// The user's e-mail address.
        #[arg(long)]
        email: String,
        /// Make them a member again.
        #[arg(long)]
        revoke: bool,
        /// Where the database is: the same settings as `serve`.
        #[command(flatten)]
        db: ServeArgs,
    },
}

/// The kinds of token, on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum KindArg {
    /// For `fulcrum agent`.
    Agent,
    /// For an MCP client.
    Mcp,
    /// For the REST API (scripts, CI, automations).
    Api,
    /// For reporting AI activity.
    Ingest,
}

impl From<KindArg> for crate::store::TokenKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Agent => Self::Agent,
            KindArg::Mcp => Self::Mcp,
            KindArg::Api => Self::Api,
            KindArg::Ingest => Self::Ingest,
        }
    }
}

/// `fulcrum-relay token …`.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints only the token, which is shown this once.
    Create {
        /// The owner's e-mail address.
        #[arg(long)]
        email: String,
        /// A name for the token, e.g. the workspace or the MCP client it is for.
        #[arg(long)]
        name: String,
        /// agent: for `fulcrum agent`; mcp: for an MCP client calling /mcp; api: for the REST
        /// API; ingest: for reporting AI activity.
        #[arg(long, value_enum, default_value = "agent")]
        kind: KindArg,
        /// What it may do, e.g. `read,run` (read, write, run, ingest, admin) [default: the
        /// kind's: agent read,run; mcp read,write,run; api read; ingest ingest].
        #[arg(long)]
        scopes: Option<String>,
        /// Limit it to this project (its id) of the owner's.
        #[arg(long, conflicts_with = "workspace")]
        project: Option<Uuid>,
        /// Limit it to this workspace (its id) of the owner's.
        #[arg(long)]
        workspace: Option<Uuid>,
        /// Days until the token stops working [default: never].
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in_days: Option<u32>,
        /// Where the database is: the same settings as `serve`.
        #[command(flatten)]
        db: ServeArgs,
    },
    /// List a user's tokens of every kind.
    List {
        /// The owner's e-mail address.
        #[arg(long)]
        email: String,
        /// Where the database is: the same settings as `serve`.
        #[command(flatten)]
        db: ServeArgs,
    },
    /// Revoke an agent token; agents using it are disconnected.
    Revoke {
        /// The owner's e-mail address.
        #[arg(long)]
        email: String,
        /// The token's id (from `token list`).
        id: Uuid,
        /// Where the database is: the same settings as `serve`.
        #[command(flatten)]
        db: ServeArgs,
    },
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(args) => {
            open_store(&args.resolve()?).await?;
            eprintln!("migrations are up to date");
            Ok(())
        }
        Command::User(UserCommand::Create {
            email,
            password_stdin: _,
            db,
        }) => {
            let store = store_for(&db).await?;
            let password = read_password()?;
            let user = create_user(&store, &email, &password).await?;
            println!("{}", user.id);
            Ok(())
        }
        Command::User(UserCommand::Deactivate { email, db }) => {
            let store = store_for(&db).await?;
            let user = crate::domain::accounts::set_active(&store, &email, false).await?;
            eprintln!("{} is deactivated", user.email);
            Ok(())
        }
        Command::User(UserCommand::ResetPassword {
            email,
            valid_for_mins,
            db,
        }) => {
            let config = db.resolve()?;
            let store = open_store(&config).await?;
            let reset = crate::domain::accounts::issue_reset(
                &store,
                &email,
                chrono::Duration::minutes(valid_for_mins),
            )
            .await?;
            println!("{}/#/reset/{}", config.base_url(), reset.secret);
            eprintln!(
                "the link sets a new password for {} once, until {}",
                reset.user.email,
                reset.expires_at.format("%Y-%m-%d %H:%M UTC")
            );
            Ok(())
        }
        Command::User(UserCommand::Activate { email, db }) => {
            let store = store_for(&db).await?;
            let user = crate::domain::accounts::set_active(&store, &email, true).await?;
            eprintln!("{} is active", user.email);
            Ok(())
        }
        Command::User(UserCommand::Admin { email, revoke, db }) => {
            let store = store_for(&db).await?;
            let role = if revoke {
                crate::store::UserRole::Member
            } else {
                crate::store::UserRole::Admin
            };
            let user = crate::domain::accounts::set_role(&store, &email, role).await?;
            eprintln!(
                "{} is now {} {}",
                user.email,
                if revoke { "a" } else { "an" },
                role
            );
            Ok(())
        }
        Command::Token(cmd) => token(cmd).await,
        Command::Keys(cmd) => keys(cmd).await,
        Command::Dev(args) => crate::dev::run(args).await,
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    let config = args.resolve()?;
    let relay = Relay::start(config).await?;
    // The QUIC line first: a launcher that waits for "listening on" has both.
    if let Some(addr) = relay.quic_addr {
        eprintln!("fulcrum-relay QUIC on udp/{addr}");
    }
    eprintln!("fulcrum-relay listening on {}", relay.url());
    shutdown_signal().await;
    eprintln!("shutting down");
    relay.shutdown().await
}

async fn keys(cmd: KeysCommand) -> Result<()> {
    use crate::{domain::secrets, secrets::KeyRing};
    let ring = |config: &crate::Config| -> Result<KeyRing> {
        let text = config.master_keys.as_ref().context(
            "no master keys: set FULCRUM_MASTER_KEYS, --master-keys-file or [secrets] \
             master_keys_file",
        )?;
        KeyRing::parse(text.expose()).context("cannot read the master keys")
    };
    match cmd {
        KeysCommand::Generate { id } => {
            let entry = KeyRing::generate_entry(&id);
            // Checked like any key list, so a bad id is refused here, not at start.
            KeyRing::parse(&entry).context("cannot make that key")?;
            println!("{entry}");
            Ok(())
        }
        KeysCommand::Rotate { db } => {
            let config = db.resolve()?;
            let keys = ring(&config)?;
            let store = open_store(&config).await?;
            let done = secrets::rotate(&store, &keys).await?;
            println!(
                "re-sealed {} secrets under {}{}",
                done.resealed,
                keys.current_id(),
                if done.changed > 0 {
                    format!("; {} changed meanwhile: run it again", done.changed)
                } else {
                    String::new()
                }
            );
            Ok(())
        }
        KeysCommand::Status { db } => {
            let config = db.resolve()?;
            let store = open_store(&config).await?;
            let keys = config
                .master_keys
                .as_ref()
                .map(|k| KeyRing::parse(k.expose()))
                .transpose()
                .context("cannot read the master keys")?;
            let counts = secrets::check_keys(&store, keys.as_ref()).await?;
            match &keys {
                Some(k) => println!("current key: {}", k.current_id()),
                None => println!("no master keys configured"),
            }
            for (id, n) in counts {
                println!("{id}: {n} secrets");
            }
            Ok(())
        }
    }
}

async fn store_for(db: &ServeArgs) -> Result<DynStore> {
    open_store(&db.resolve()?).await
}

fn read_password() -> Result<String> {
    let mut password = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut password)
        .context("cannot read the password from standard input")?;
    let password = password.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        bail!("no password on standard input");
    }
    Ok(password)
}

async fn owner(store: &DynStore, email: &str) -> Result<Uuid> {
    let email = crate::domain::accounts::normalize_email(email).map_err(|e| anyhow::anyhow!(e))?;
    Ok(store
        .user_by_email(&email)
        .await?
        .with_context(|| format!("no user with e-mail {email}"))?
        .id)
}

async fn token(cmd: TokenCommand) -> Result<()> {
    match cmd {
        TokenCommand::Create {
            email,
            name,
            kind,
            scopes,
            project,
            workspace,
            expires_in_days,
            db,
        } => {
            let store = store_for(&db).await?;
            let expires_at =
                expires_in_days.map(|d| chrono::Utc::now() + chrono::Duration::days(i64::from(d)));
            let owner = owner(&store, &email).await?;
            let kind = crate::store::TokenKind::from(kind);
            let scopes = scopes
                .map(|s| crate::store::Scopes::parse_list(&s))
                .transpose()
                .map_err(|e| {
                    anyhow::anyhow!(
                        "unknown scope {:?}: use read, write, run, ingest or admin",
                        e.name
                    )
                })?;
            let created = create_token(
                &store,
                owner,
                crate::domain::tokens::TokenSpec {
                    name,
                    kind,
                    scopes,
                    project,
                    workspace,
                    expires_at,
                },
            )
            .await?;
            eprintln!(
                "created {} token {} ({}) with scopes {}; it is shown only this once",
                kind.as_str(),
                created.token.id,
                created.token.name,
                created.token.scopes
            );
            println!("{}", created.secret);
        }
        TokenCommand::List { email, db } => {
            let store = store_for(&db).await?;
            let owner = owner(&store, &email).await?;
            println!(
                "{:<36}  {:<10}  {:<14}  {:<20}  {:<20}  NAME",
                "ID", "PREFIX", "KIND", "CREATED", "STATE"
            );
            for t in store.list_tokens(owner).await? {
                let state = match (t.revoked_at, t.last_used_at) {
                    (Some(at), _) => format!("revoked {}", at.format("%Y-%m-%d")),
                    (None, Some(at)) => format!("used {}", at.format("%Y-%m-%d %H:%M")),
                    (None, None) => "never used".into(),
                };
                println!(
                    "{:<36}  {:<10}  {:<14}  {:<20}  {:<20}  {}",
                    t.id,
                    t.prefix,
                    format!(
                        "{} {}",
                        t.kind.as_str(),
                        t.scopes.to_string().replace(' ', ",")
                    ),
                    t.created_at.format("%Y-%m-%d %H:%M"),
                    state,
                    t.name
                );
            }
        }
        TokenCommand::Revoke { email, id, db } => {
            let store = store_for(&db).await?;
            let owner = owner(&store, &email).await?;
            if !store.revoke_token(owner, id, chrono::Utc::now()).await? {
                bail!("{email} has no agent token {id}");
            }
            eprintln!(
                "revoked agent token {id}; running relays disconnect its agents within seconds"
            );
        }
    }
    Ok(())
}
