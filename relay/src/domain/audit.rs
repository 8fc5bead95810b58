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
    write(
        record.caller.user,
        record.caller.door.as_str(),
        record.action,
        record.subject,
    );
}

/// Records what an operator did to `user` with `fulcrum-relay` (door `cli`): the command acts
/// for the operator, not for a user through a door.
pub fn record_operator(user: Uuid, action: &str) {
    write(user, "cli", action, user);
}

fn write(user: Uuid, door: &str, action: &str, subject: Uuid) {
    tracing::info!(
        target: "fulcrum::audit",
        user = %user,
        door,
        action,
        subject = %subject,
        "audit"
    );
}
