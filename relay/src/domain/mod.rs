//! The domain layer: each thing a user can do, whatever door it comes through (REST, MCP, the
//! agent gateway for terminal runs, the CLI), is one function here, with its permission check.
//! Doors translate their input to these functions' typed input and their [`DomainError`] to
//! their own answers (HTTP in `http::error`, tool errors in `mcp`); they hold no rules.
//!
//! The domain imports no door. `tests/tests/layers.rs` checks that, and that no door imports
//! another.
//!
//! - [`tasks`]: start, cancel, re-run and read tasks.
//! - [`workspaces`]: a user's workspaces as they are now; [`logins`]: whether a login is on.
//! - [`users`]: accounts; [`tokens`]: agent and MCP tokens.
//! - [`audit`]: the one place that records who did what, from where.

pub mod audit;
pub mod logins;
pub mod projects;
pub mod tasks;
pub mod tokens;
pub mod users;
pub mod workspaces;

use uuid::Uuid;

use crate::store::{StoreError, TaskSource};

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
