//! The tools `/mcp` lists: the built-in ones (answered by the relay or by a workspace's agent)
//! and those of the MCP servers agents host, namespaced `server__tool`.
//!
//! The built-in tools' arguments are the types of `fulcrum_protocol::tool_args`, the ones the
//! agent and the relay read calls into, and the relay's tools' results are the types of
//! `fulcrum_protocol::tool_results`, the ones they answer with; the input and output JSON
//! Schemas are generated from those types here, so what `/mcp` publishes and what the tools
//! accept and return cannot drift apart. Every tool that acts in a workspace also takes a
//! `workspace` argument: the workspace's id or name.

use std::collections::BTreeMap;

use fulcrum_protocol::{
    tool_args::{
        ActivityReportArgs, CostByModelArgs, DecideGateArgs, DirectoryTreeArgs, EditFileArgs,
        GetPromptArgs, GetTaskArgs, GitCommitArgs, GitDiffArgs, GitLogArgs, GitShowArgs,
        GitStatusArgs, ListDirectoryArgs, ListTasksArgs, NoArgs, PipelineArtifactArgs,
        PipelineRunArgs, ProjectArgs, ReadFileArgs, RecentAiChangesArgs, ResumePipelineArgs,
        RunTaskArgs, SearchFilesArgs, StartPipelineArgs, WriteFileArgs,
    },
    tool_results::{ProjectList, TaskDetail, TaskList, WorkspaceList, WorkspaceStatus},
};
use serde_json::{Value, json};

use crate::{
    domain::pipelines::{ArtifactContent, DeploymentList, RunList, RunView},
    store::Scope,
};

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
    /// The JSON Schema of its arguments besides `workspace`, generated from their type.
    arguments: fn() -> Value,
    /// Reads arguments (without `workspace`) into that type, as the tool does.
    #[cfg_attr(not(test), allow(dead_code))]
    accepts: fn(Value) -> Result<(), String>,
    /// The result's type, for tools with a structured result: its JSON Schema, and a round
    /// trip of a value through it.
    output: Option<Output>,
}

impl Builtin {
    /// The scope a token needs to call it: `read` for a tool that only reads; `run` for one
    /// the relay answers by starting work (`run_task`); `write` for one that changes the
    /// workspace.
    pub fn needs(&self) -> Scope {
        match (self.read_only, self.runs) {
            (true, _) => Scope::Read,
            (false, Runs::Relay) => Scope::Run,
            (false, Runs::Agent) => Scope::Write,
        }
    }
}

/// A structured result's type, seen through its schema and its serde round trip.
#[derive(Debug, Clone, Copy)]
struct Output {
    schema: fn() -> Value,
    #[cfg_attr(not(test), allow(dead_code))]
    round_trip: fn(Value) -> Result<Value, String>,
}

/// Reads `value` as a `T` and writes it back.
fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(
    value: Value,
) -> Result<Value, String> {
    let typed: T = serde_json::from_value(value).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

/// The structured result of type `T`.
const fn output<T: schemars::JsonSchema + serde::de::DeserializeOwned + serde::Serialize>()
-> Option<Output> {
    Some(Output {
        schema: schema_of::<T>,
        round_trip: round_trip::<T>,
    })
}

/// The agent's built-in tools named in `names`, as a pipeline's model is given them: their
/// descriptions (without the token words, which do not apply to a run) and their arguments
/// without `workspace`, paths being relative to the run's repository.
pub fn model_tools(names: &[&str]) -> Vec<crate::llm::ToolSpec> {
    names
        .iter()
        .filter_map(|n| Builtin::find(n))
        .map(|b| crate::llm::ToolSpec {
            name: b.name.to_owned(),
            description: format!(
                "{} Paths are relative to the repository.",
                b.description
                    .split(" Needs a token")
                    .next()
                    .unwrap_or(b.description)
            ),
            parameters: b.arguments_schema(),
        })
        .collect()
}

/// The JSON Schema of `T` as an MCP tool's input schema: subschemas inlined, no `$schema`.
fn schema_of<T: schemars::JsonSchema>() -> Value {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .into_generator()
        .into_root_schema_for::<T>();
    let mut value = schema.to_value();
    if let Value::Object(m) = &mut value {
        m.remove("$schema");
        m.remove("title");
        m.remove("description");
    }
    value
}

/// Whether `args` reads into `T`.
fn accepts_as<T: serde::de::DeserializeOwned>(args: Value) -> Result<(), String> {
    serde_json::from_value::<T>(args)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Every built-in tool.
pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "list_workspaces",
        description: "List your workspaces: id, name, host, root, whether the agent is online, and each repository's branch and change counts.",
        runs: Runs::Relay,
        read_only: true,
        arguments: schema_of::<NoArgs>,
        accepts: accepts_as::<NoArgs>,
        output: output::<WorkspaceList>(),
    },
    Builtin {
        name: "workspace_status",
        description: "One workspace's live state: online, agent version, and every repository's branch, upstream, ahead/behind, staged/unstaged/untracked counts and last commit.",
        runs: Runs::Relay,
        read_only: true,
        arguments: schema_of::<NoArgs>,
        accepts: accepts_as::<NoArgs>,
        output: output::<WorkspaceStatus>(),
    },
    Builtin {
        name: "list_projects",
        description: "List the projects you are a member of, with your role and their workspaces.",
        runs: Runs::Relay,
        read_only: true,
        arguments: schema_of::<NoArgs>,
        accepts: accepts_as::<NoArgs>,
        output: output::<ProjectList>(),
    },
    Builtin {
        name: "list_directory",
        description: "List a directory in a workspace: one `[DIR] name` or `[FILE] name` line per entry, at most 1000.",
        runs: Runs::Agent,
        read_only: true,
        arguments: schema_of::<ListDirectoryArgs>,
        accepts: accepts_as::<ListDirectoryArgs>,
        output: None,
    },
    Builtin {
        name: "directory_tree",
        description: "A directory's tree as JSON ([{name, type, children}]), at most 2000 entries; .git, node_modules and target are not entered.",
        runs: Runs::Agent,
        read_only: true,
        arguments: schema_of::<DirectoryTreeArgs>,
        accepts: accepts_as::<DirectoryTreeArgs>,
        output: None,
    },
    Builtin {
        name: "read_file",
        description: "Read a text file in a workspace, whole or in part: the first `head` lines, the last `tail` lines, or `length` bytes from byte `offset`. At most 256 KiB per call, with a note where cut.",
        runs: Runs::Agent,
        read_only: true,
        arguments: schema_of::<ReadFileArgs>,
        accepts: accepts_as::<ReadFileArgs>,
        output: None,
    },
    Builtin {
        name: "search_files",
        description: "Search file contents in a workspace, respecting .gitignore (like ripgrep). Returns `path:line: text` per match.",
        runs: Runs::Agent,
        read_only: true,
        arguments: schema_of::<SearchFilesArgs>,
        accepts: accepts_as::<SearchFilesArgs>,
        output: None,
    },
    Builtin {
        name: "git_status",
        description: "The working tree status of a repository in a workspace: branch, upstream distance, staged, unstaged and untracked files.",
        runs: Runs::Agent,
        read_only: true,
        arguments: schema_of::<GitStatusArgs>,
        accepts: accepts_as::<GitStatusArgs>,
        output: None,
    },
    Builtin {
        name: "git_diff",
        description: "A unified diff in a repository: unstaged changes by default, staged ones with staged=true, or the working tree against a commit, branch or tag with target.",
        runs: Runs::Agent,
        read_only: true,
        arguments: schema_of::<GitDiffArgs>,
        accepts: accepts_as::<GitDiffArgs>,
        output: None,
    },
    Builtin {
        name: "git_log",
        description: "The newest commits of a repository's HEAD: hash, author, date, message.",
        runs: Runs::Agent,
        read_only: true,
        arguments: schema_of::<GitLogArgs>,
        accepts: accepts_as::<GitLogArgs>,
        output: None,
    },
    Builtin {
        name: "git_show",
        description: "One commit of a repository: its header and its diff against its first parent.",
        runs: Runs::Agent,
        read_only: true,
        arguments: schema_of::<GitShowArgs>,
        accepts: accepts_as::<GitShowArgs>,
        output: None,
    },
    Builtin {
        name: "write_file",
        description: "Create or replace a whole text file in a workspace (atomically). Needs a token that may write and a workspace whose agent allows writes.",
        runs: Runs::Agent,
        read_only: false,
        arguments: schema_of::<WriteFileArgs>,
        accepts: accepts_as::<WriteFileArgs>,
        output: None,
    },
    Builtin {
        name: "edit_file",
        description: "Replace exact text in a file of a workspace; each oldText must occur exactly once. Returns a unified diff; dryRun=true only shows it. Needs a token that may write and a workspace whose agent allows writes.",
        runs: Runs::Agent,
        read_only: false,
        arguments: schema_of::<EditFileArgs>,
        accepts: accepts_as::<EditFileArgs>,
        output: None,
    },
    Builtin {
        name: "git_commit",
        description: "Commit a repository's changes (all, or those under `paths`) on a branch, made at HEAD if needed; `init` creates the repository. With a `key`, a commit already made with it is returned instead of a new one. Needs a token that may write and a workspace whose agent allows writes.",
        runs: Runs::Agent,
        read_only: false,
        arguments: schema_of::<GitCommitArgs>,
        accepts: accepts_as::<GitCommitArgs>,
        output: None,
    },
    Builtin {
        name: "run_task",
        description: "Run a shell command or a QA step (`qa` for all steps) in a workspace, recorded as a task. Returns the task; with wait_s, waits up to that many seconds for it to finish and includes its test summary and log tail.",
        runs: Runs::Relay,
        read_only: false,
        arguments: schema_of::<RunTaskArgs>,
        accepts: accepts_as::<RunTaskArgs>,
        output: output::<TaskDetail>(),
    },
    Builtin {
        name: "get_task",
        description: "A task's state, exit code, test summary (counts and failing tests) and the tail of its log.",
        runs: Runs::Relay,
        read_only: true,
        arguments: schema_of::<GetTaskArgs>,
        accepts: accepts_as::<GetTaskArgs>,
        output: output::<TaskDetail>(),
    },
    Builtin {
        name: "list_tasks",
        description: "Tasks you may see, newest first, optionally of one workspace or in one state.",
        runs: Runs::Relay,
        read_only: true,
        arguments: schema_of::<ListTasksArgs>,
        accepts: accepts_as::<ListTasksArgs>,
        output: output::<TaskList>(),
    },
    Builtin {
        name: "start_pipeline",
        description: "Start an AI generation pipeline on a project: `systemcrafter` (the default) generates a whole service from the project's description, stage by stage (requirements, architecture, API, database, backend, frontend, infrastructure, build, QA, deploy); `feature` makes a change to an existing repository from a feature request; or give your own TOML definition. Returns the run; follow it with get_pipeline_run.",
        runs: Runs::Relay,
        read_only: false,
        arguments: schema_of::<StartPipelineArgs>,
        accepts: accepts_as::<StartPipelineArgs>,
        output: output::<RunView>(),
    },
    Builtin {
        name: "list_pipeline_runs",
        description: "A project's pipeline runs, newest first: state, stages, tokens and cost.",
        runs: Runs::Relay,
        read_only: true,
        arguments: schema_of::<ProjectArgs>,
        accepts: accepts_as::<ProjectArgs>,
        output: output::<RunList>(),
    },
    Builtin {
        name: "list_deployments",
        description: "A project's deployments, newest first: where (URL), which commit, whether it came up, and the pipeline run that made it.",
        runs: Runs::Relay,
        read_only: true,
        arguments: schema_of::<ProjectArgs>,
        accepts: accepts_as::<ProjectArgs>,
        output: output::<DeploymentList>(),
    },
    Builtin {
        name: "get_pipeline_run",
        description: "A pipeline run now: its state (and why it paused or failed), each stage's state, attempt, tokens and cost, and the run's total cost against its budget.",
        runs: Runs::Relay,
        read_only: true,
        arguments: schema_of::<PipelineRunArgs>,
        accepts: accepts_as::<PipelineRunArgs>,
        output: output::<RunView>(),
    },
    Builtin {
        name: "decide_pipeline_gate",
        description: "Approve an approval stage a pipeline run waits at, or reject it with a comment: the stages it gates run again with the comment as feedback.",
        runs: Runs::Relay,
        read_only: false,
        arguments: schema_of::<DecideGateArgs>,
        accepts: accepts_as::<DecideGateArgs>,
        output: output::<RunView>(),
    },
    Builtin {
        name: "cancel_pipeline_run",
        description: "Cancel a pipeline run: one that waits ends at once, one at work at its next step.",
        runs: Runs::Relay,
        read_only: false,
        arguments: schema_of::<PipelineRunArgs>,
        accepts: accepts_as::<PipelineRunArgs>,
        output: output::<RunView>(),
    },
    Builtin {
        name: "resume_pipeline_run",
        description: "Put a paused, failed or ended pipeline run back to work: its failed and waiting stages run again; with from_stage, that stage and every one after it too (earlier outputs kept); with budget_usd, a new budget for the run.",
        runs: Runs::Relay,
        read_only: false,
        arguments: schema_of::<ResumePipelineArgs>,
        accepts: accepts_as::<ResumePipelineArgs>,
        output: output::<RunView>(),
    },
    Builtin {
        name: "get_pipeline_artifact",
        description: "The content of one artifact of a pipeline run (requirements, architecture, openapi.yaml, schema, generated files).",
        runs: Runs::Relay,
        read_only: true,
        arguments: schema_of::<PipelineArtifactArgs>,
        accepts: accepts_as::<PipelineArtifactArgs>,
        output: output::<ArtifactContent>(),
    },
    Builtin {
        name: "activity_report",
        description: "AI activity you may see (yours and your projects'), summed per group over a period: activities, tokens in/out/cached, cost in US dollars, latency p50/p95. Group by up to three of day, project, user, tool, model, category.",
        runs: Runs::Relay,
        read_only: true,
        arguments: schema_of::<ActivityReportArgs>,
        accepts: accepts_as::<ActivityReportArgs>,
        output: output::<crate::domain::activity::report::Report>(),
    },
    Builtin {
        name: "cost_by_model",
        description: "What AI calls cost per model over a period (default: this month), with tokens and latency: of one project, or of everything you may see.",
        runs: Runs::Relay,
        read_only: true,
        arguments: schema_of::<CostByModelArgs>,
        accepts: accepts_as::<CostByModelArgs>,
        output: output::<crate::domain::activity::report::Report>(),
    },
    Builtin {
        name: "recent_ai_changes",
        description: "The latest AI activities that changed code, newest first: the tool, model, files and commits, when, and by whom.",
        runs: Runs::Relay,
        read_only: true,
        arguments: schema_of::<RecentAiChangesArgs>,
        accepts: accepts_as::<RecentAiChangesArgs>,
        output: output::<crate::store::activity::ActivityList>(),
    },
    Builtin {
        name: "list_prompts",
        description: "A project's prompt library: each prompt's name, description, latest version and the arguments its template takes.",
        runs: Runs::Relay,
        read_only: true,
        arguments: schema_of::<ProjectArgs>,
        accepts: accepts_as::<ProjectArgs>,
        output: output::<crate::domain::prompts::PromptList>(),
    },
    Builtin {
        name: "get_prompt",
        description: "One prompt of a project's library rendered with its arguments (every argument its template uses is required): the text to use.",
        runs: Runs::Relay,
        read_only: true,
        arguments: schema_of::<GetPromptArgs>,
        accepts: accepts_as::<GetPromptArgs>,
        output: output::<crate::domain::prompts::RenderedPrompt>(),
    },
];

/// Built-in tools that take no `workspace` argument.
const NO_WORKSPACE_ARG: &[&str] = &[
    "list_workspaces",
    "list_projects",
    "start_pipeline",
    "list_pipeline_runs",
    "list_deployments",
    "get_pipeline_run",
    "decide_pipeline_gate",
    "cancel_pipeline_run",
    "resume_pipeline_run",
    "get_pipeline_artifact",
    "activity_report",
    "cost_by_model",
    "recent_ai_changes",
    "list_prompts",
    "get_prompt",
];
/// Built-in tools whose `workspace` argument is optional.
const OPTIONAL_WORKSPACE: &[&str] = &["list_tasks", "get_task"];

impl Builtin {
    /// Finds a built-in tool by name.
    pub fn find(name: &str) -> Option<&'static Builtin> {
        BUILTINS.iter().find(|b| b.name == name)
    }

    /// Whether the tool needs the `workspace` argument.
    pub fn needs_workspace(&self) -> bool {
        !NO_WORKSPACE_ARG.contains(&self.name) && !OPTIONAL_WORKSPACE.contains(&self.name)
    }

    /// The JSON Schema of its structured result, for the tools that give one.
    pub fn output_schema(&self) -> Option<Value> {
        self.output.map(|o| (o.schema)())
    }

    /// The schema of its arguments without `workspace`: what a pipeline's model is given,
    /// the run choosing the workspace.
    pub fn arguments_schema(&self) -> Value {
        let mut schema = match (self.arguments)() {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        schema.insert("type".into(), json!("object"));
        schema.insert("additionalProperties".into(), json!(false));
        Value::Object(schema)
    }

    /// Its full input schema.
    pub fn input_schema(&self) -> Value {
        let mut schema = match (self.arguments)() {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        if !NO_WORKSPACE_ARG.contains(&self.name) {
            let properties = schema.entry("properties").or_insert_with(|| json!({}));
            if let Value::Object(p) = properties {
                p.insert("workspace".into(), workspace_prop());
            }
        }
        let required = schema.entry("required").or_insert_with(|| json!([]));
        if let Value::Array(r) = required
            && self.needs_workspace()
        {
            r.insert(0, json!("workspace"));
        }
        schema.insert("type".into(), json!("object"));
        schema.insert("additionalProperties".into(), json!(false));
        Value::Object(schema)
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

impl HostedListing {
    /// The scope a token needs to call it: `read` when the server marks it read-only, else
    /// `write`.
    pub fn needs(&self) -> Scope {
        if self.read_only {
            Scope::Read
        } else {
            Scope::Write
        }
    }
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

    /// A value the schema `prop` allows.
    fn sample(prop: &Value) -> Value {
        if let Some(first) = prop["enum"].as_array().and_then(|e| e.first()) {
            return first.clone();
        }
        if let Some(value) = prop.get("const") {
            return value.clone();
        }
        if let Some(first) = ["anyOf", "oneOf"]
            .iter()
            .filter_map(|k| prop[*k].as_array())
            .flatten()
            .find(|s| s["type"] != "null")
        {
            return sample(first);
        }
        match prop["format"].as_str() {
            Some("uuid") => return json!("01938f3e-7a4c-7d2e-9f10-2b3c4d5e6f70"),
            Some("date-time") => return json!("2026-12-05T06:00:00Z"),
            Some("date") => return json!("2026-12-05"),
            _ => {}
        }
        let kind = match &prop["type"] {
            Value::Array(kinds) => kinds
                .iter()
                .find(|k| *k != "null")
                .cloned()
                .unwrap_or(Value::Null),
            other => other.clone(),
        };
        match kind.as_str() {
            Some("string") => json!("x"),
            Some("boolean") => json!(true),
            Some("integer") => json!(prop["minimum"].as_u64().unwrap_or(0).max(1)),
            Some("number") => json!(prop["minimum"].as_f64().unwrap_or(0.0).max(1.5)),
            Some("array") => json!([sample(&prop["items"])]),
            Some("object") => {
                let mut m = serde_json::Map::new();
                for (k, v) in prop["properties"].as_object().into_iter().flatten() {
                    m.insert(k.clone(), sample(v));
                }
                Value::Object(m)
            }
            other => panic!("no sample for type {other:?} in {prop}"),
        }
    }

    /// The published schema and the type the tool reads its arguments into agree: every
    /// property with a value of its type is read, only the required ones are enough, each
    /// required one is needed, and anything else is refused.
    #[test]
    fn each_tool_schema_agrees_with_its_argument_type() {
        for b in BUILTINS {
            let schema = b.input_schema();
            let props = schema["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let required: Vec<String> = schema["required"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .filter(|r| *r != "workspace")
                .map(str::to_owned)
                .collect();
            let args = |keys: &mut dyn Iterator<Item = &String>| {
                let mut m = serde_json::Map::new();
                for k in keys.filter(|k| *k != "workspace") {
                    m.insert(k.clone(), sample(&props[k]));
                }
                Value::Object(m)
            };
            let all = args(&mut props.keys());
            (b.accepts)(all.clone()).unwrap_or_else(|e| panic!("{}: {all} refused: {e}", b.name));
            let minimal = args(&mut required.iter());
            (b.accepts)(minimal.clone())
                .unwrap_or_else(|e| panic!("{}: {minimal} refused: {e}", b.name));
            for r in &required {
                let mut without = minimal.clone();
                without.as_object_mut().unwrap().remove(r);
                assert!(
                    (b.accepts)(without).is_err(),
                    "{}: {r} is not needed",
                    b.name
                );
            }
            let mut extra = minimal.clone();
            extra
                .as_object_mut()
                .unwrap()
                .insert("not_an_argument".into(), json!(1));
            assert!(
                (b.accepts)(extra).is_err(),
                "{}: an unknown argument passed",
                b.name
            );
        }
    }

    /// Each structured result's published schema and its type agree: a value with every
    /// property the schema lists reads into the type and writes back unchanged, and the
    /// relay's tools (those that answer from its own state) all have one.
    #[test]
    fn each_output_schema_agrees_with_its_result_type() {
        for b in BUILTINS {
            let Some(output) = b.output else {
                assert_eq!(b.runs, Runs::Agent, "{} answers from the relay", b.name);
                continue;
            };
            let schema = (output.schema)();
            assert_eq!(schema["type"], "object", "{}", b.name);
            let value = sample(&schema);
            let back = (output.round_trip)(value.clone())
                .unwrap_or_else(|e| panic!("{}: {value} refused: {e}", b.name));
            assert_eq!(back, value, "{}", b.name);
        }
    }

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
