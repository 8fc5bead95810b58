//! The closed sets the relay stores and shows (roles, token kinds, task sources, project
//! statuses, health), each an enum with its names written once: stored with
//! [`as_str`](Role::as_str), read back with `parse` (or `TryFrom<String>`), shown in JSON, listed
//! as an enum in the OpenAPI document and in the MCP tools' output schemas. The relay's
//! migrations hold the same lists as CHECK constraints; a test compares them
//! (`tests/tests/migrations.rs`). Task states are [`crate::TaskState`].

use serde::{Deserialize, Serialize};

/// A stored name outside its closed set (the CHECK constraints make this corruption).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {set} {name:?}")]
pub struct UnknownName {
    /// The set, such as `Role`.
    pub set: &'static str,
    /// The name found.
    pub name: String,
}

/// Declares a closed set: the enum, `ALL`, `as_str`, `parse` and `Display`.
macro_rules! closed_set {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        // The JSON names are the variants' in snake_case (a test checks they are the stored
        // names): utoipa does not see a `rename` built by a macro.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value.
            pub const ALL: &'static [Self] = &[ $( Self::$variant, )+ ];

            /// Its name, as stored and shown.
            pub fn as_str(self) -> &'static str {
                match self { $( Self::$variant => $text, )+ }
            }

            /// The value with this name.
            pub fn parse(name: &str) -> Option<Self> {
                match name { $( $text => Some(Self::$variant), )+ _ => None }
            }
        }

        impl TryFrom<String> for $name {
            type Error = UnknownName;

            /// The value with this stored name.
            fn try_from(name: String) -> Result<Self, UnknownName> {
                Self::parse(&name).ok_or(UnknownName { set: stringify!($name), name })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

closed_set! {
    /// A member's role in a project.
    pub enum Role {
        /// Created the project; manages members, archives it.
        Owner = "owner",
        /// Runs and cancels tasks, edits the project.
        Maintainer = "maintainer",
        /// Sees the project and its tasks; cannot run anything.
        Viewer = "viewer",
    }
}

impl Role {
    /// True for roles that may run and cancel tasks.
    pub fn can_run(self) -> bool {
        matches!(self, Self::Owner | Self::Maintainer)
    }
}

closed_set! {
    /// What a token is for; a token of one kind never opens the other's door.
    pub enum TokenKind {
        /// An agent dials in with it.
        Agent = "agent",
        /// An MCP client calls `/mcp` with it.
        Mcp = "mcp",
    }
}

closed_set! {
    /// Which door a task was started through.
    pub enum TaskSource {
        /// The REST API (and the dashboard).
        Api = "api",
        /// `fulcrum run` in a workspace terminal, through the agent.
        Terminal = "terminal",
        /// An MCP client's `run_task`.
        Mcp = "mcp",
    }
}

closed_set! {
    /// Whether a project takes new work.
    pub enum ProjectStatus {
        /// Runs tasks.
        Active = "active",
        /// Kept for reading; runs nothing.
        Archived = "archived",
    }
}

closed_set! {
    /// A dashboard theme.
    #[derive(Default)]
    pub enum Theme {
        /// As the operating system says.
        #[default]
        System = "system",
        /// Light.
        Light = "light",
        /// Dark.
        Dark = "dark",
    }
}

closed_set! {
    /// A project's health in one word.
    pub enum Health {
        /// A task runs now.
        Running = "running",
        /// The last task did not succeed.
        Failing = "failing",
        /// The last task succeeded.
        Healthy = "healthy",
        /// No workspace of it is online.
        Offline = "offline",
        /// Nothing ran yet.
        Idle = "idle",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_serialize_as_stored() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(*r));
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
        fn same<T: Serialize + std::fmt::Display>(all: &[T]) {
            for v in all {
                assert_eq!(serde_json::to_value(v).unwrap(), v.to_string());
            }
        }
        same(TokenKind::ALL);
        same(TaskSource::ALL);
        same(ProjectStatus::ALL);
        same(Health::ALL);
        for s in TaskSource::ALL {
            assert_eq!(TaskSource::parse(&s.to_string()), Some(*s));
        }
        assert_eq!(ProjectStatus::parse("deleted"), None);
        assert_eq!(Health::ALL.len(), 5);
        assert_eq!(TokenKind::parse("mcp"), Some(TokenKind::Mcp));
    }
}
