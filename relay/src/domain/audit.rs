//! The audit hook: every domain operation that changes something reports here who did it,
//! through which door, to what. Today each record is a structured log line (target
//! `fulcrum::audit`); the audit log of the hardening work stores them from this one place.

use uuid::Uuid;

use super::Caller;

/// One thing done.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Who, and through which door.
    pub caller: Caller,
    /// What, as `noun.verb` (`task.start`, `task.cancel`, …).
    pub action: &'a str,
    /// To what.
    pub subject: Uuid,
}

/// Records `record`.
pub fn record(record: Record<'_>) {
    tracing::info!(
        target: "fulcrum::audit",
        user = %record.caller.user,
        door = record.caller.door.as_str(),
        action = record.action,
        subject = %record.subject,
        "audit"
    );
}
