//! The domain layer: each thing a user can do, whatever door it comes through (REST, MCP, the
//! agent gateway for terminal runs, the CLI), is one function here, with its permission check.
//! Doors translate their input to these functions' typed input and their [`DomainError`] to
//! their own answers (HTTP in `http::error`, tool errors in `mcp`); they hold no rules.
//!
//! The domain imports no door. `tests/tests/layers.rs` checks that, and that no door imports
//! another.
//!
//! Each area is a service built once, at start, with exactly the dependencies it uses (never
//! the whole application state); [`Domain`] holds them for the doors.
//!
//! - [`tasks`]: start, cancel, re-run, list and read tasks.
//! - [`projects`]: projects, members, invitations and the project report.
//! - [`workspaces`]: a user's workspaces as they are now.
//! - [`accounts`]: sign-up, logins, refresh and logout; [`tokens`]: agent and MCP tokens.
//! - [`oauth`]: the OAuth 2.1 server that grants MCP clients access.
//! - [`secrets`]: a user's secrets, sealed at rest; the start-up key check and rotation.
//! - [`audit`]: the one place that records who did what, from where.
//! - [`pipelines`]: AI generation pipelines and the engine that drives them;
//!   [`providers`]: the LLM providers and keys users set up; [`budgets`]: spending limits and
//!   every LLM call, journaled and reserved against them before it is made.

pub mod accounts;
pub mod activity;
pub mod assistant;
pub mod audit;
pub mod budgets;
pub mod llm_gateway;
pub mod oauth;
pub mod pipelines;
pub mod projects;
pub mod prompts;
pub mod providers;
pub mod secrets;
pub mod tasks;
pub mod tokens;
pub mod webhooks;
pub mod workspaces;

use uuid::Uuid;

use crate::store::{Scope, Scopes, StoreError, TaskSource, Token};

/// The domain's services, for the doors.
pub struct Domain {
    /// Accounts and logins.
    pub accounts: accounts::Accounts,
    /// Tasks.
    pub tasks: std::sync::Arc<tasks::Tasks>,
    /// Projects, members and invitations.
    pub projects: std::sync::Arc<projects::Projects>,
    /// Agent and MCP tokens.
    pub tokens: tokens::Tokens,
    /// Workspaces as they are now.
    pub workspaces: workspaces::Workspaces,
    /// Secrets kept sealed.
    pub secrets: std::sync::Arc<secrets::Secrets>,
    /// LLM providers.
    pub providers: std::sync::Arc<providers::Providers>,
    /// Budgets and LLM calls.
    pub budgets: std::sync::Arc<budgets::Budgets>,
    /// Pipeline runs.
    pub pipelines: pipelines::Pipelines,
    /// AI activities and their reports.
    pub activities: std::sync::Arc<activity::Activities>,
    /// The LLM gateway.
    pub gateway: llm_gateway::LlmGateway,
    /// The project manager assistant.
    pub assistant: assistant::Assistant,
    /// Projects' prompt libraries.
    pub prompts: prompts::Prompts,
    /// The OAuth server for MCP clients.
    pub oauth: oauth::OAuth,
    /// Outgoing webhooks.
    pub webhooks: std::sync::Arc<webhooks::Webhooks>,
}

/// The door a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    /// The REST API (the dashboard included).
    Api,
    /// The MCP endpoint.
    Mcp,
    /// A workspace terminal, through its agent's connection.
    Terminal,
    /// A pipeline run, acting for the user who started it.
    Pipeline,
}

impl Door {
    /// The task source a run through this door records.
    pub fn task_source(self) -> TaskSource {
        match self {
            Self::Api => TaskSource::Api,
            Self::Mcp => TaskSource::Mcp,
            Self::Terminal => TaskSource::Terminal,
            Self::Pipeline => TaskSource::Pipeline,
        }
    }

    /// Its name in the audit record.
    pub fn as_str(self) -> &'static str {
        self.task_source().as_str()
    }
}

/// Who is asking, and through which door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// The user the request acts for.
    pub user: Uuid,
    /// Where it came in.
    pub door: Door,
    /// What the credential presented allows.
    pub grant: Grant,
}

/// What a credential allows: a login, everything its user may; a token, what its scopes say,
/// within its limit (and never more than its user may).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The scopes held.
    pub scopes: Scopes,
    /// The one project or workspace it is limited to, if any.
    pub limit: Limit,
    /// The token presented; `None` for a login.
    pub token: Option<Uuid>,
}

/// What a token is limited to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Everything its user may reach.
    None,
    /// One project: the project, its workspaces and its tasks.
    Project(Uuid),
    /// One workspace: the workspace, its tasks, and the projects it belongs to.
    Workspace(Uuid),
}

impl Grant {
    /// A login's: every scope, no limit.
    pub fn login() -> Self {
        Self {
            scopes: Scopes::all(),
            limit: Limit::None,
            token: None,
        }
    }

    /// What `token` allows.
    pub fn of(token: &Token) -> Self {
        let limit = match (token.project_id, token.workspace_id) {
            (Some(p), _) => Limit::Project(p),
            (None, Some(w)) => Limit::Workspace(w),
            (None, None) => Limit::None,
        };
        Self {
            scopes: token.scopes,
            limit,
            token: Some(token.id),
        }
    }
}

impl Caller {
    /// `user` through `door`, with a login (every scope, no limit).
    pub fn new(user: Uuid, door: Door) -> Self {
        Self {
            user,
            door,
            grant: Grant::login(),
        }
    }

    /// `user` through `door`, with the given grant.
    pub fn with_grant(user: Uuid, door: Door, grant: Grant) -> Self {
        Self { user, door, grant }
    }

    /// Whether the credential holds `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.grant.scopes.contains(scope)
    }

    /// `Ok` when the credential holds `scope`; otherwise the error that says it lacks it.
    pub fn need(&self, scope: Scope) -> DomainResult<()> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(DomainError::MissingScope(scope))
        }
    }

    /// `Ok` for a login; a token may not do this (`what`, for the message).
    pub fn need_login(&self, what: &str) -> DomainResult<()> {
        match self.grant.token {
            None => Ok(()),
            Some(_) => Err(DomainError::Denied {
                code: "login_required",
                message: format!("{what} needs a login session; a token cannot do it"),
            }),
        }
    }

    /// `Ok` when the credential is not limited to one project or workspace.
    pub fn need_unlimited(&self, what: &str) -> DomainResult<()> {
        match self.grant.limit {
            Limit::None => Ok(()),
            _ => Err(DomainError::Denied {
                code: "token_limited",
                message: format!(
                    "this token is limited to one project or workspace, so it cannot {what}"
                ),
            }),
        }
    }

    /// Whether the credential reaches a project with these workspaces.
    pub fn reaches_project(&self, project: Uuid, workspaces: &[Uuid]) -> bool {
        match self.grant.limit {
            Limit::None => true,
            Limit::Project(p) => p == project,
            Limit::Workspace(w) => workspaces.contains(&w),
        }
    }

    /// Whether the credential reaches a workspace that belongs to these projects.
    pub fn reaches_workspace(&self, workspace: Uuid, projects: &[Uuid]) -> bool {
        match self.grant.limit {
            Limit::None => true,
            Limit::Project(p) => projects.contains(&p),
            Limit::Workspace(w) => w == workspace,
        }
    }

    /// Whether the credential reaches a task of this project (if any) and workspace.
    pub fn reaches_task(&self, project: Option<Uuid>, workspace: Uuid) -> bool {
        match self.grant.limit {
            Limit::None => true,
            Limit::Project(p) => project == Some(p),
            Limit::Workspace(w) => w == workspace,
        }
    }
}

/// Why a domain operation did not happen. Each door maps these to its answers in one place.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// No such thing, or not the caller's (the two look the same).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Not found, with a stable code and a message that says what to do instead.
    #[error("{message}")]
    Absent {
        /// A stable code, such as `not_a_member`.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// The caller may see it, but not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The credential presented lacks this scope.
    #[error("this token lacks the `{0}` scope")]
    MissingScope(Scope),
    /// Refused, with a stable code: a token where a login is needed, a limited token, or a
    /// workspace whose policy does not allow the call.
    #[error("{message}")]
    Denied {
        /// A stable code, such as `workspace_policy`.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// It conflicts with the current state; `code` is stable for programs.
    #[error("{message}")]
    Conflict {
        /// A stable code, such as `workspace_offline`.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// Refused by a setting of the relay (such as sign-up being off); `code` is stable.
    #[error("{message}")]
    Refused {
        /// A stable code, such as `signup_disabled`.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// The credentials presented are missing, wrong or used up; `code` is stable.
    #[error("{message}")]
    Unauthenticated {
        /// A stable code, such as `invalid_credentials`.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// Too many attempts of one kind; try again after `retry_after` seconds.
    #[error("rate limited ({what}); retry after {retry_after} s")]
    Throttled {
        /// Seconds to wait.
        retry_after: u64,
        /// Which limit, for people.
        what: &'static str,
    },
    /// The relay is busy with this kind of work; try again in a moment.
    #[error("{0}")]
    Busy(String),
    /// The input is well-formed but invalid.
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something that should not fail did (details for the log, never for the caller).
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    /// A refusal by a setting, with a stable code.
    pub fn refused(code: &'static str, message: impl Into<String>) -> Self {
        Self::Refused {
            code,
            message: message.into(),
        }
    }

    /// Bad or missing credentials, with a stable code.
    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unauthenticated {
            code,
            message: message.into(),
        }
    }

    /// A conflict with a stable code.
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }
}

impl From<fulcrum_protocol::check::Invalid> for DomainError {
    fn from(e: fulcrum_protocol::check::Invalid) -> Self {
        Self::Invalid(e.message)
    }
}

/// Result of a domain operation.
pub type DomainResult<T> = Result<T, DomainError>;
