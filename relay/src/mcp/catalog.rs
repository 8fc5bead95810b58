//! The tools `/mcp` lists: the built-in ones (answered by the relay or by a workspace's agent)
//! and those of the MCP servers agents host, namespaced `server__tool`.
//!
//! Names and arguments follow the reference git and filesystem servers where they overlap
//! (`path`, `head`, `tail`, `repo_path`, `edits[].oldText/newText`, `dryRun`), so clients and
//! models that know those servers know these. Every tool that acts in a workspace takes a
//! `workspace` argument: the workspace's id or name.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Where a built-in tool runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// On the relay, from its own state.
    Relay,
    /// In the named workspace, by its agent.
    Agent,
}

/// A built-in tool.
#[derive(Debug, Clone)]
pub struct Builtin {
    /// Its name.
    pub name: &'static str,
    /// What it does, for the model.
    pub description: &'static str,
    /// Where it runs.
    pub runs: Runs,
    /// Whether it only reads (a read-only token may call only these).
    pub read_only: bool,
    /// Its arguments besides `workspace`: JSON Schema properties, and which are required.
    properties: fn() -> Value,
    required: &'static [&'static str],
}

fn none() -> Value {
    json!({})
}

fn path_prop() -> Value {
    json!({ "path": { "type": "string", "description": "Path relative to the workspace root (or absolute inside it); default `.`" } })
}

fn repo_prop() -> Value {
    json!({ "repo_path": { "type": "string", "description": "The repository, relative to the workspace root; default `.`" } })
}

fn merged(parts: &[Value]) -> Value {
    let mut out = serde_json::Map::new();
    for p in parts {
        if let Value::Object(m) = p {
            out.extend(m.clone());
        }
    }
    Value::Object(out)
}

/// Every built-in tool.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "list_workspaces",
        description: "List your workspaces: id, name, host, root, whether the agent is online, and each repository's branch and change counts.",
        runs: Runs::Relay,
        read_only: true,
        properties: none,
        required: &[],
    },
    Builtin {
        name: "workspace_status",
        description: "One workspace's live state: online, agent version, and every repository's branch, upstream, ahead/behind, staged/unstaged/untracked counts and last commit.",
        runs: Runs::Relay,
        read_only: true,
        properties: none,
        required: &[],
    },
    Builtin {
        name: "list_projects",
        description: "List the projects you are a member of, with your role and their workspaces.",
        runs: Runs::Relay,
        read_only: true,
        properties: none,
        required: &[],
    },
    Builtin {
        name: "list_directory",
        description: "List a directory in a workspace: one `[DIR] name` or `[FILE] name` line per entry, at most 1000.",
        runs: Runs::Agent,
        read_only: true,
        properties: path_prop,
        required: &[],
    },
    Builtin {
        name: "directory_tree",
        description: "A directory's tree as JSON ([{name, type, children}]), at most 2000 entries; .git, node_modules and target are not entered.",
        runs: Runs::Agent,
        read_only: true,
        properties: || {
            merged(&[
                path_prop(),
                json!({ "max_depth": { "type": "integer", "minimum": 1, "maximum": 12, "description": "Levels to descend (default 12)" } }),
            ])
        },
        required: &[],
    },
    Builtin {
        name: "read_file",
        description: "Read a text file in a workspace, whole or in part: the first `head` lines, the last `tail` lines, or `length` bytes from byte `offset`. At most 256 KiB per call, with a note where cut.",
        runs: Runs::Agent,
        read_only: true,
        properties: || {
            json!({
                "path": { "type": "string", "description": "Path relative to the workspace root (or absolute inside it)" },
                "head": { "type": "integer", "minimum": 0, "description": "Only the first N lines" },
                "tail": { "type": "integer", "minimum": 0, "description": "Only the last N lines" },
                "offset": { "type": "integer", "minimum": 0, "description": "Start at this byte" },
                "length": { "type": "integer", "minimum": 0, "description": "Read at most this many bytes" }
            })
        },
        required: &["path"],
    },
    Builtin {
        name: "search_files",
        description: "Search file contents in a workspace, respecting .gitignore (like ripgrep). Returns `path:line: text` per match.",
        runs: Runs::Agent,
        read_only: true,
        properties: || {
            merged(&[
                path_prop(),
                json!({
                    "pattern": { "type": "string", "description": "The text to find, or a regular expression with regex=true" },
                    "regex": { "type": "boolean", "description": "Treat pattern as a regular expression (default false)" },
                    "case_sensitive": { "type": "boolean", "description": "Match case exactly (default false)" },
                    "include": { "type": "string", "description": "Only files matching this glob, e.g. *.rs" },
                    "max_results": { "type": "integer", "minimum": 1, "maximum": 1000, "description": "Most matches (default 100)" }
                }),
            ])
        },
        required: &["pattern"],
    },
    Builtin {
        name: "git_status",
        description: "The working tree status of a repository in a workspace: branch, upstream distance, staged, unstaged and untracked files.",
        runs: Runs::Agent,
        read_only: true,
        properties: repo_prop,
        required: &[],
    },
    Builtin {
        name: "git_diff",
        description: "A unified diff in a repository: unstaged changes by default, staged ones with staged=true, or the working tree against a commit, branch or tag with target.",
        runs: Runs::Agent,
        read_only: true,
        properties: || {
            merged(&[
                repo_prop(),
                json!({
                    "target": { "type": "string", "description": "Compare the working tree with this revision" },
                    "staged": { "type": "boolean", "description": "Show staged changes (index against HEAD)" },
                    "context_lines": { "type": "integer", "minimum": 0, "maximum": 100, "description": "Context lines (default 3)" }
                }),
            ])
        },
        required: &[],
    },
    Builtin {
        name: "git_log",
        description: "The newest commits of a repository's HEAD: hash, author, date, message.",
        runs: Runs::Agent,
        read_only: true,
        properties: || {
            merged(&[
                repo_prop(),
                json!({ "max_count": { "type": "integer", "minimum": 1, "maximum": 200, "description": "How many (default 10)" } }),
            ])
        },
        required: &[],
    },
    Builtin {
        name: "git_show",
        description: "One commit of a repository: its header and its diff against its first parent.",
        runs: Runs::Agent,
        read_only: true,
        properties: || {
            merged(&[
                repo_prop(),
                json!({ "revision": { "type": "string", "description": "A commit, branch or tag" } }),
            ])
        },
        required: &["revision"],
    },
    Builtin {
        name: "write_file",
        description: "Create or replace a whole text file in a workspace (atomically). Needs a token that may write and a workspace whose agent allows writes.",
        runs: Runs::Agent,
        read_only: false,
        properties: || {
            json!({
                "path": { "type": "string", "description": "Path relative to the workspace root" },
                "content": { "type": "string", "description": "The file's new content (at most 512 KiB)" }
            })
        },
        required: &["path", "content"],
    },
    Builtin {
        name: "edit_file",
        description: "Replace exact text in a file of a workspace; each oldText must occur exactly once. Returns a unified diff; dryRun=true only shows it. Needs a token that may write and a workspace whose agent allows writes.",
        runs: Runs::Agent,
        read_only: false,
        properties: || {
            json!({
                "path": { "type": "string", "description": "Path relative to the workspace root" },
                "edits": { "type": "array", "minItems": 1, "items": {
                    "type": "object",
                    "properties": { "oldText": { "type": "string" }, "newText": { "type": "string" } },
                    "required": ["oldText", "newText"]
                } },
                "dryRun": { "type": "boolean", "description": "Only show the diff" }
            })
        },
        required: &["path", "edits"],
    },
    Builtin {
        name: "run_task",
        description: "Run a shell command or a QA step (`qa` for all steps) in a workspace, recorded as a task. Returns the task; with wait_s, waits up to that many seconds for it to finish and includes its test summary and log tail.",
        runs: Runs::Relay,
        read_only: false,
        properties: || {
            json!({
                "command": { "type": "string", "description": "A shell command (give this or step)" },
                "step": { "type": "string", "description": "A QA step from fulcrum.toml or detected, or `qa` for all" },
                "repo": { "type": "string", "description": "The repository directory, relative to the root (default `.`)" },
                "timeout_s": { "type": "integer", "minimum": 1, "description": "Time limit in seconds" },
                "wait_s": { "type": "integer", "minimum": 0, "maximum": 300, "description": "Wait this long for the result (default 0)" }
            })
        },
        required: &[],
    },
    Builtin {
        name: "get_task",
        description: "A task's state, exit code, test summary (counts and failing tests) and the tail of its log.",
        runs: Runs::Relay,
        read_only: true,
        properties: || {
            json!({
                "task_id": { "type": "string", "description": "The task's id" },
                "log_tail_bytes": { "type": "integer", "minimum": 0, "maximum": 262144, "description": "How much of the log's end to include (default 8192)" }
            })
        },
        required: &["task_id"],
    },
    Builtin {
        name: "list_tasks",
        description: "Tasks you may see, newest first, optionally of one workspace or in one state.",
        runs: Runs::Relay,
        read_only: true,
        properties: || {
            json!({
                "state": { "type": "string", "description": "queued, dispatched, running, succeeded, failed, canceled, timed_out or lost" },
                "limit": { "type": "integer", "minimum": 1, "maximum": 200, "description": "How many (default 20)" }
            })
        },
        required: &[],
    },
];

/// Built-in tools that take no `workspace` argument.
const NO_WORKSPACE_ARG: &[&str] = &["list_workspaces", "list_projects", "get_task"];
/// Built-in tools whose `workspace` argument is optional.
const OPTIONAL_WORKSPACE: &[&str] = &["list_tasks"];

impl Builtin {
    /// Finds a built-in tool by name.
    pub fn find(name: &str) -> Option<&'static Builtin> {
        BUILTINS.iter().find(|b| b.name == name)
    }

    /// Whether the tool needs the `workspace` argument.
    pub fn needs_workspace(&self) -> bool {
        !NO_WORKSPACE_ARG.contains(&self.name) && !OPTIONAL_WORKSPACE.contains(&self.name)
    }

    /// Its full input schema.
    pub fn input_schema(&self) -> Value {
        let mut properties = match (self.properties)() {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        let mut required: Vec<&str> = self.required.to_vec();
        if !NO_WORKSPACE_ARG.contains(&self.name) {
            properties.insert("workspace".into(), workspace_prop());
        }
        if self.needs_workspace() {
            required.insert(0, "workspace");
        }
        json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false })
    }
}

fn workspace_prop() -> Value {
    json!({ "type": "string", "description": "The workspace: its id or its name (see list_workspaces)" })
}

/// A hosted server's tool as `/mcp` lists it, with the workspaces that serve it.
#[derive(Debug, Clone)]
pub struct HostedListing {
    /// `server__tool`.
    pub name: String,
    /// The description, with where it runs.
    pub description: String,
    /// The server's schema with `workspace` added.
    pub input_schema: Value,
    /// Whether the server marks it read-only.
    pub read_only: bool,
}

/// The name a hosted tool is listed under.
pub fn hosted_name(server: &str, tool: &str) -> String {
    format!("{server}__{tool}")
}

/// Splits a listed hosted tool name back into server and tool.
pub fn split_hosted(name: &str) -> Option<(&str, &str)> {
    name.split_once("__")
        .filter(|(s, t)| fulcrum_protocol::tools::valid_server_name(s) && !t.is_empty())
}

/// Merges the hosted tools of several workspaces (name → schema, and workspace names) into
/// listings. When two workspaces list the same tool, the first one's schema is shown.
pub fn hosted_listings(
    servers: &[(String, fulcrum_protocol::tools::HostedServer)],
) -> Vec<HostedListing> {
    let mut by_name: BTreeMap<String, (HostedListing, Vec<String>, String)> = BTreeMap::new();
    for (workspace, server) in servers {
        for tool in &server.tools {
            let name = hosted_name(&server.name, &tool.name);
            let entry = by_name.entry(name.clone()).or_insert_with(|| {
                let mut schema: Value = serde_json::from_str(&tool.input_schema_json)
                    .unwrap_or_else(|_| json!({ "type": "object" }));
                if !schema.is_object() {
                    schema = json!({ "type": "object" });
                }
                let obj = schema.as_object_mut().expect("an object");
                obj.insert("type".into(), json!("object"));
                let props = obj.entry("properties").or_insert_with(|| json!({}));
                if let Some(props) = props.as_object_mut() {
                    props.insert("workspace".into(), workspace_prop());
                }
                let required = obj.entry("required").or_insert_with(|| json!([]));
                if let Some(list) = required.as_array_mut() {
                    list.insert(0, json!("workspace"));
                }
                (
                    HostedListing {
                        name,
                        description: String::new(),
                        input_schema: schema,
                        read_only: tool.read_only,
                    },
                    Vec::new(),
                    tool.description.clone(),
                )
            });
            entry.1.push(workspace.clone());
        }
    }
    by_name
        .into_values()
        .map(|(mut listing, workspaces, description)| {
            let server = listing.name.split("__").next().unwrap_or("").to_owned();
            listing.description = format!(
                "[MCP server `{server}` hosted in workspace {}] {description}",
                workspaces.join(", ")
            );
            listing
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fulcrum_protocol::tools::{HostedServer, HostedTool};

    #[test]
    fn every_builtin_has_an_object_schema_and_a_unique_name() {
        let mut names = std::collections::HashSet::new();
        for b in BUILTINS {
            assert!(names.insert(b.name), "{} twice", b.name);
            assert!(fulcrum_protocol::tools::valid_tool_name(b.name));
            let schema = b.input_schema();
            assert_eq!(schema["type"], "object");
            for r in schema["required"].as_array().unwrap() {
                assert!(
                    schema["properties"].get(r.as_str().unwrap()).is_some(),
                    "{}",
                    b.name
                );
            }
        }
        assert_eq!(
            Builtin::find("read_file").unwrap().input_schema()["required"],
            json!(["workspace", "path"])
        );
        // The agent's list and this one agree on the tools it runs and which of them write.
        for b in BUILTINS.iter().filter(|b| b.runs == Runs::Agent) {
            let writes = fulcrum_protocol::tools::builtin_writes(b.name);
            assert_eq!(writes, Some(!b.read_only), "{}", b.name);
        }
        for (name, _) in fulcrum_protocol::tools::AGENT_BUILTINS {
            assert_eq!(
                Builtin::find(name).map(|b| b.runs),
                Some(Runs::Agent),
                "{name}"
            );
        }
    }

    #[test]
    fn hosted_tools_are_namespaced_and_merged_across_workspaces() {
        let server = |ws: &str| {
            (
                ws.to_owned(),
                HostedServer {
                    name: "git".into(),
                    running: true,
                    problem: None,
                    tools: vec![HostedTool {
                        name: "git_status".into(),
                        description: "Shows status".into(),
                        input_schema_json: r#"{"type":"object","properties":{"repo_path":{"type":"string"}},"required":["repo_path"],"additionalProperties":false}"#.into(),
                        read_only: true,
                    }],
                },
            )
        };
        let listed = hosted_listings(&[server("alpha"), server("beta")]);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "git__git_status");
        assert!(listed[0].description.contains("alpha, beta"));
        assert_eq!(
            listed[0].input_schema["required"],
            json!(["workspace", "repo_path"])
        );
        assert!(listed[0].input_schema["properties"]["workspace"].is_object());
        assert_eq!(split_hosted("git__git_status"), Some(("git", "git_status")));
        assert_eq!(split_hosted("read_file"), None);
        // No built-in name splits as a hosted one.
        assert!(BUILTINS.iter().all(|b| split_hosted(b.name).is_none()));
    }
}
