//! What every check of the protocol's limits returns when something is outside them: which part
//! was refused, and why, in words for people. The relay refuses such input whole and changes
//! nothing; callers show the message.

/// Input outside the protocol's limits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// The part refused (`command`, `env`, `repo`, `workspace.key`, …).
    pub what: &'static str,
    /// Why, for people.
    pub message: String,
}

impl Invalid {
    /// `what` was refused because of `message`.
    pub fn new(what: &'static str, message: impl Into<String>) -> Self {
        Self {
            what,
            message: message.into(),
        }
    }
}

/// The result of a check.
pub type Checked = Result<(), Invalid>;
