//! The relay's closed sets live in the protocol crate (`fulcrum_protocol::kinds`), beside
//! [`fulcrum_protocol::TaskState`], because the MCP tools' results show them too; the store
//! reads and writes them by name.

pub use fulcrum_protocol::kinds::{
    ClientAuthMethod, Health, ProjectStatus, Role, Scope, Scopes, TaskSource, Theme, TokenKind,
    UserRole,
};
