//! Remote tools: the relay's MCP endpoint asking an agent to act in its workspace.
//!
//! An MCP client calls a tool on the relay; for a tool that acts inside a workspace, the relay
//! sends that workspace's agent a [`crate::RelayFrame::ToolCall`] and waits for the
//! [`crate::AgentFrame::ToolReply`] with the same id. Neither is durable: if the connection drops
//! during a call, the caller is told so and may call again (the tools that write are idempotent
//! in effect: a whole file written, or an edit that fails once applied).
//!
//! The agent also tells the relay which tools it serves besides the built-in ones, namely those
//! of the MCP servers it hosts in the workspace, in a [`ToolCatalog`], after every welcome and
//! whenever that set changes.
//!
//! Arguments, schemas and structured results travel as JSON text: they are JSON to both the MCP
//! client and the tool, and the relay passes them through without reshaping them.

use serde::{Deserialize, Serialize};

/// The protocol version that first carried tool calls; the relay sends none to older agents.
pub const TOOLS_SINCE_VERSION: u16 = 2;
/// Longest JSON text of a call's arguments.
pub const MAX_ARGS_BYTES: usize = 768 * 1024;
/// Longest text in a tool's reply; the agent cuts longer output and says so.
pub const MAX_REPLY_TEXT_BYTES: usize = 512 * 1024;
/// Most hosted servers in a catalog.
pub const MAX_HOSTED_SERVERS: usize = 32;
/// Most tools one hosted server may list.
pub const MAX_TOOLS_PER_SERVER: usize = 128;
/// Longest hosted server or tool name.
pub const MAX_TOOL_NAME_BYTES: usize = 64;
/// Longest tool description kept.
pub const MAX_DESCRIPTION_BYTES: usize = 4 * 1024;
/// Longest input schema (JSON text) kept.
pub const MAX_SCHEMA_BYTES: usize = 16 * 1024;
/// Most bytes of names, descriptions and schemas in one catalog (it must fit in a frame).
pub const MAX_CATALOG_BYTES: usize = 512 * 1024;

/// The tools an agent runs itself ([`ToolTarget::Builtin`]), and whether each changes the
/// workspace (such a tool needs a caller that may write and a workspace that allows writes).
pub const AGENT_BUILTINS: &[(&str, bool)] = &[
    ("list_directory", false),
    ("directory_tree", false),
    ("read_file", false),
    ("search_files", false),
    ("git_status", false),
    ("git_diff", false),
    ("git_log", false),
    ("git_show", false),
    ("write_file", true),
    ("edit_file", true),
    ("git_commit", true),
];

/// Whether the agent's built-in tool `name` writes; `None` if there is no such tool.
pub fn builtin_writes(name: &str) -> Option<bool> {
    AGENT_BUILTINS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, writes)| *writes)
}

/// What a [`ToolCall`] runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToolTarget {
    /// One of the agent's own tools (`read_file`, `git_status`, …), by name.
    Builtin(String),
    /// A tool of an MCP server the agent hosts.
    Hosted {
        /// The server's name in the agent's config.
        server: String,
        /// The tool's name as that server lists it.
        tool: String,
    },
}

/// A tool call for the agent to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// Which tool.
    pub target: ToolTarget,
    /// Its arguments: a JSON object, as text, without the relay's `workspace` argument.
    pub args_json: String,
    /// Whether the caller may change things (its token is not read-only). The agent applies its
    /// own rule on top: its workspace must allow writes.
    pub may_write: bool,
}

/// What a tool call produced. Failures of the tool itself (a path refused, a file not found, a
/// timeout) are outputs with `is_error` set, so an AI client can read them and correct itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolOutput {
    /// The result as text, at most [`MAX_REPLY_TEXT_BYTES`].
    pub text: String,
    /// True when the call failed; `text` says why.
    pub is_error: bool,
    /// A structured result (JSON text), when the tool gave one.
    pub structured_json: Option<String>,
}

impl ToolOutput {
    /// A successful text result.
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            is_error: false,
            structured_json: None,
        }
    }

    /// A failed call, with the reason.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            text: message.into(),
            is_error: true,
            structured_json: None,
        }
    }

    /// Checks the output is within the protocol's limits.
    pub fn check(&self) -> crate::check::Checked {
        let structured = self.structured_json.as_ref().map_or(0, String::len);
        if self.text.len() + structured > MAX_REPLY_TEXT_BYTES {
            return Err(crate::check::Invalid::new(
                "tool_reply",
                "a tool reply exceeds 512 KiB",
            ));
        }
        Ok(())
    }
}

/// The tools an agent serves besides its built-in ones, and its workspace's policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCatalog {
    /// Whether the workspace allows the writing tools (`write_file`, `edit_file`); the same as
    /// `write` in [`Self::policy`], kept for relays that predate it.
    pub writable: bool,
    /// The MCP servers the agent hosts, running or not.
    pub servers: Vec<HostedServer>,
    /// What the workspace allows callers to do (`write`, `run`: `fulcrum agent --allow`);
    /// missing from agents that predate it.
    #[serde(default)]
    pub policy: Option<crate::kinds::Scopes>,
}

impl ToolCatalog {
    /// The workspace's policy: as the agent said, or, from an older agent, `run` and `write`
    /// if it allows writes.
    pub fn policy(&self) -> crate::kinds::Scopes {
        use crate::kinds::{Scope, Scopes};
        self.policy.unwrap_or_else(|| {
            if self.writable {
                Scopes::of(&[Scope::Write, Scope::Run])
            } else {
                Scopes::of(&[Scope::Run])
            }
        })
    }
}

/// One MCP server hosted by the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostedServer {
    /// Its name in the agent's config (see [`valid_server_name`]).
    pub name: String,
    /// Whether it is running and answered its handshake.
    pub running: bool,
    /// Why it is not running, when it is not.
    pub problem: Option<String>,
    /// Its tools, as it listed them when it last started.
    pub tools: Vec<HostedTool>,
}

/// A tool of a hosted server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostedTool {
    /// Its name as the server lists it.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its input schema, a JSON object as text.
    pub input_schema_json: String,
    /// Whether the server marks it read-only (`readOnlyHint`); a read-only token may call only
    /// these.
    pub read_only: bool,
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn prefix_within(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Cuts `text` to at most `max` bytes on a character boundary, then appends `note` (which may
/// take the text past `max` by its own length); true if it cut.
pub fn cut(text: &mut String, max: usize, note: &str) -> bool {
    if text.len() <= max {
        return false;
    }
    let end = prefix_within(text, max).len();
    text.truncate(end);
    text.push_str(note);
    true
}

/// True when `name` is a valid hosted server name: 1 to 32 of `a-z`, `0-9`, `-`, `_`, with no
/// `__` (the relay lists a hosted tool as `server__tool`, so the name must split back cleanly).
pub fn valid_server_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && !name.contains("__")
        && !name.ends_with('_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// True when `name` is a tool name MCP allows: 1 to 64 of `A-Z a-z 0-9 _ - .`.
pub fn valid_tool_name(name: &str) -> bool {
    (1..=MAX_TOOL_NAME_BYTES).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

impl HostedTool {
    fn size(&self) -> usize {
        self.name.len() + self.description.len() + self.input_schema_json.len()
    }
}

impl ToolCatalog {
    /// Each server's name with its tools: what an MCP client sees of the catalog (not whether
    /// a server is running).
    pub fn listed_tools(&self) -> impl Iterator<Item = (&str, &[HostedTool])> {
        self.servers
            .iter()
            .filter(|s| !s.tools.is_empty())
            .map(|s| (s.name.as_str(), s.tools.as_slice()))
    }

    /// Leaves out the tools past [`MAX_CATALOG_BYTES`] (and past the per-server count), saying
    /// so in their server's `problem`, so the catalog always fits in a frame.
    pub fn fit(&mut self) {
        self.servers.truncate(MAX_HOSTED_SERVERS);
        let mut budget = MAX_CATALOG_BYTES;
        for server in &mut self.servers {
            budget = budget.saturating_sub(server.name.len() + 4096);
            let mut kept = 0;
            for tool in &server.tools {
                if kept == MAX_TOOLS_PER_SERVER || tool.size() > budget {
                    break;
                }
                budget -= tool.size();
                kept += 1;
            }
            let left_out = server.tools.len() - kept;
            if left_out > 0 {
                server.tools.truncate(kept);
                server.problem = Some(format!(
                    "{left_out} of its tools are left out: a workspace lists at most \
                     {MAX_TOOLS_PER_SERVER} tools per server and 512 KiB of tool descriptions"
                ));
            }
        }
    }

    /// Checks the catalog is within the protocol's limits.
    pub fn check(&self) -> crate::check::Checked {
        let total: usize = self
            .servers
            .iter()
            .flat_map(|s| &s.tools)
            .map(HostedTool::size)
            .sum();
        if total > MAX_CATALOG_BYTES {
            return Err(crate::check::Invalid::new(
                "tool_catalog",
                "a tool catalog exceeds 512 KiB",
            ));
        }
        if self.servers.len() > MAX_HOSTED_SERVERS {
            return Err(crate::check::Invalid::new(
                "tool_catalog",
                format!("at most {MAX_HOSTED_SERVERS} hosted servers"),
            ));
        }
        for s in &self.servers {
            if !valid_server_name(&s.name) {
                return Err(crate::check::Invalid::new(
                    "tool_catalog",
                    format!("invalid hosted server name {:?}", s.name),
                ));
            }
            if s.tools.len() > MAX_TOOLS_PER_SERVER
                || s.problem.as_ref().is_some_and(|p| p.len() > 4096)
            {
                return Err(crate::check::Invalid::new(
                    "tool_catalog",
                    format!("hosted server {} exceeds its limits", s.name),
                ));
            }
            for t in &s.tools {
                if !valid_tool_name(&t.name)
                    || t.description.len() > MAX_DESCRIPTION_BYTES
                    || t.input_schema_json.len() > MAX_SCHEMA_BYTES
                {
                    return Err(crate::check::Invalid::new(
                        "tool_catalog",
                        format!("a tool of hosted server {} is invalid", s.name),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl ToolCall {
    /// Checks the call is within the protocol's limits.
    pub fn check(&self) -> crate::check::Checked {
        let names_ok = match &self.target {
            ToolTarget::Builtin(name) => valid_tool_name(name),
            ToolTarget::Hosted { server, tool } => {
                valid_server_name(server) && valid_tool_name(tool)
            }
        };
        if !names_ok {
            return Err(crate::check::Invalid::new("tool_call", "invalid tool name"));
        }
        if self.args_json.len() > MAX_ARGS_BYTES {
            return Err(crate::check::Invalid::new(
                "tool_call",
                "the tool's arguments exceed 768 KiB as JSON",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_mcp_rules() {
        assert!(valid_tool_name("git_status"));
        assert!(valid_tool_name("git.status-2"));
        assert!(!valid_tool_name(""));
        assert!(!valid_tool_name("a b"));
        assert!(!valid_tool_name(&"x".repeat(65)));
        assert!(valid_server_name("git"));
        assert!(!valid_server_name("Git"));
        assert!(!valid_server_name("a.b"));
        assert!(!valid_server_name("a__b"));
        assert!(!valid_server_name("a_"));
    }

    #[test]
    fn cuts_land_on_character_boundaries() {
        let mut s = "aé".repeat(10);
        assert!(cut(&mut s, 4, "…"));
        assert_eq!(s, "aéa…");
        assert_eq!(prefix_within("éé", 3), "é");
        let mut short = String::from("ok");
        assert!(!cut(&mut short, 4, "…"));
        assert_eq!(short, "ok");
    }

    #[test]
    fn oversized_parts_are_refused() {
        let big = ToolOutput::text("x".repeat(MAX_REPLY_TEXT_BYTES + 1));
        assert!(big.check().is_err());
        let catalog = ToolCatalog {
            writable: false,
            policy: None,
            servers: vec![HostedServer {
                name: "bad name".into(),
                running: true,
                problem: None,
                tools: vec![],
            }],
        };
        assert!(catalog.check().is_err());
    }

    #[test]
    fn a_catalog_too_big_for_a_frame_is_fitted() {
        let tool = |i: usize| HostedTool {
            name: format!("t{i}"),
            description: "d".repeat(MAX_DESCRIPTION_BYTES),
            input_schema_json: format!("{{\"x\":\"{}\"}}", "s".repeat(MAX_SCHEMA_BYTES - 16)),
            read_only: true,
        };
        let server = |name: &str| HostedServer {
            name: name.into(),
            running: true,
            problem: None,
            tools: (0..MAX_TOOLS_PER_SERVER).map(tool).collect(),
        };
        let mut catalog = ToolCatalog {
            writable: false,
            policy: None,
            servers: vec![server("a"), server("b")],
        };
        assert!(catalog.check().is_err());
        catalog.fit();
        catalog.check().unwrap();
        assert!(crate::encode(&crate::AgentFrame::Tools(catalog.clone())).is_ok());
        assert!(
            catalog.servers[0]
                .problem
                .as_ref()
                .unwrap()
                .contains("left out")
        );
    }
}
