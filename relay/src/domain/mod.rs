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
//! - [`secrets`]: a user's secrets, sealed at rest; the start-up key check and rotation.
//! - [`audit`]: the one place that records who did what, from where.

pub mod accounts;
pub mod audit;
pub mod projects;
pub mod secrets;
pub mod tasks;
pub mod tokens;
pub mod workspaces;

use uuid::Uuid;

use crate::store::{StoreError, TaskSource};

/// The domain's services, for the doors.
pub struct Domain {
    /// Accounts and logins.
    pub accounts: accounts::Accounts,
    /// Tasks.
    pub tasks: tasks::Tasks,
    /// Projects, members and invitations.
    pub projects: projects::Projects,
    /// Agent and MCP tokens.
    pub tokens: tokens::Tokens,
    /// Workspaces as they are now.
    pub workspaces: workspaces::Workspaces,
    /// Secrets kept sealed.
    pub secrets: secrets::Secrets,
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
}

impl Door {
    /// The task source a run through this door records.
    pub fn task_source(self) -> TaskSource {
        match self {
            Self::Api => TaskSource::Api,
            Self::Mcp => TaskSource::Mcp,
            Self::Terminal => TaskSource::Terminal,
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
}

impl Caller {
    /// `user` through `door`.
    pub fn new(user: Uuid, door: Door) -> Self {
        Self { user, door }
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
