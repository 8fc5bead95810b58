//! An `agent` stage: the model works in the run's repository through the workspace's tools
//! (read, list, search, git, write, edit) plus `run_command` (a task in the workspace) and
//! `finish`, turn by turn, until it calls `finish` or runs out of turns. Each model call is
//! journaled like an `llm` stage's, so a resumed attempt replays the recorded answers; the
//! tools it calls are idempotent in effect (whole files written, tasks keyed by their call).
//! The files it wrote or edited are committed on the run's branch as one commit for the
//! attempt (and nothing else of the working tree: a developer's own changes stay theirs).
//!
//! Paths the model gives are relative to the run's repository; the stage puts the
//! repository's directory in front before the call reaches the workspace.

use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    definition::Stage,
    engine::{StageCtx, StageResult},
    llm_stage::{context, render},
    run_stage, workspace,
};
use crate::{
    domain::{Caller, DomainError, Door, tasks::RunInput},
    llm::{ChatRequest, Message, MessageRole, ToolCall, ToolSpec},
    store::pipelines::NewArtifact,
};

/// The workspace tools a model may call, by their MCP names (the MCP door describes them to
/// the engine: [`super::engine::EngineConfig::agent_tools`]).
pub const WORKSPACE_TOOLS: &[&str] = &[
    "directory_tree",
    "list_directory",
    "read_file",
    "search_files",
    "git_status",
    "git_diff",
    "git_log",
    "git_show",
    "write_file",
    "edit_file",
];
/// Most bytes of one tool result the model is shown.
const MAX_RESULT_BYTES: usize = 24 * 1024;
/// Most bytes of conversation one attempt may build up before it stops.
const MAX_CONVERSATION_BYTES: usize = 1 << 20;
/// Most tool calls one answer may make; the rest are answered with an error.
const MAX_CALLS_PER_TURN: usize = 16;
/// Longest `run_command`, seconds.
const MAX_COMMAND_SECS: i64 = 900;

/// The tools offered to the model: the workspace's, and the stage's own.
fn tools(ctx: &StageCtx) -> Vec<ToolSpec> {
    let mut out: Vec<ToolSpec> = ctx.agent_tools.as_ref().clone();
    out.push(ToolSpec {
        name: "run_command".into(),
        description: "Run a shell command at the repository's root in the workspace (as a \
                      task, with its log kept) and get its exit code, test summary and the end \
                      of its output."
            .into(),
        parameters: json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["command"],
            "properties": {
                "command": {"type": "string", "description": "The shell command"},
                "timeout_s": {"type": "integer", "minimum": 1, "maximum": MAX_COMMAND_SECS}
            }
        }),
    });
    out.push(ToolSpec {
        name: "finish".into(),
        description: "End the step, with the summary it asks for.".into(),
        parameters: json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["summary"],
            "properties": {"summary": {"type": "string", "description": "The summary, in Markdown"}}
        }),
    });
    out
}

/// Runs one attempt of an `agent` stage; the workspace it worked in comes back with it.
/// A recovery stage gets the failure it is to fix as `failure` in its templates.
pub(super) async fn run(
    ctx: &StageCtx,
    stage: &Stage,
    attempt: i32,
    failure: Option<Value>,
) -> (StageResult, Option<Uuid>) {
    let ws = match workspace::choose(ctx).await {
        Ok(ws) => ws,
        Err(r) => return (r, None),
    };
    let r = turns(ctx, stage, attempt, ws, failure.as_ref()).await;
    (r, Some(ws))
}

async fn turns(
    ctx: &StageCtx,
    stage: &Stage,
    attempt: i32,
    ws: Uuid,
    extra: Option<&Value>,
) -> StageResult {
    let mut context = context(ctx, ctx.feedback.get(&stage.name).map(String::as_str));
    if let Some(extra) = extra {
        context["failure"] = extra.clone();
    }
    let prompt = match render(stage.prompt.as_deref().unwrap_or(""), &context) {
        Ok(p) => p,
        Err(e) => return StageResult::failed("template", format!("the prompt: {e}"), false),
    };
    let system = match stage
        .system
        .as_deref()
        .map(|s| render(s, &context))
        .transpose()
    {
        Ok(s) => s.unwrap_or_default(),
        Err(e) => return StageResult::failed("template", format!("the system prompt: {e}"), false),
    };
    let system = format!(
        "{system}\n\nYou work in a repository through tools; paths are relative to its root. \
         Call tools to look and to change files, and call `finish` once with your summary when \
         the work is done. You have at most {} turns.",
        stage.max_turns
    );
    let model = stage
        .model
        .clone()
        .unwrap_or_else(|| ctx.provider.default_model.clone());
    let tools = tools(ctx);
    let mut messages = vec![Message::user(prompt)];
    let mut calls = super::llm_stage::Calls::new(ctx, stage, attempt);
    let mut summary = None;
    let mut turn = 0;
    // The files it wrote or edited: what its commit takes (relative to the repository).
    let mut touched = std::collections::BTreeSet::new();
    while turn < stage.max_turns && summary.is_none() {
        let size: usize = messages
            .iter()
            .map(|m| {
                m.content.len()
                    + 64
                    + m.tool_calls
                        .iter()
                        .map(|c| c.name.len() + c.arguments.len() + 32)
                        .sum::<usize>()
            })
            .sum();
        if size > MAX_CONVERSATION_BYTES {
            return StageResult::failed(
                "agent_context",
                format!(
                    "the conversation grew past {MAX_CONVERSATION_BYTES} bytes without `finish`"
                ),
                false,
            );
        }
        let request = ChatRequest {
            model: model.clone(),
            system: Some(system.clone()),
            messages: messages.clone(),
            max_tokens: stage.max_tokens,
            temperature: stage.temperature,
            tools: tools.clone(),
            json_schema: None,
        };
        let answer = match calls.ask(&request).await {
            Ok(a) => a,
            Err(stop) => return stop,
        };
        turn += 1;
        messages.push(Message {
            role: MessageRole::Assistant,
            content: answer.text.clone(),
            tool_calls: answer.tool_calls.clone(),
            tool_call_id: None,
        });
        if answer.tool_calls.is_empty() {
            messages.push(Message::user(
                "Use the tools to do the work, and call `finish` with your summary when it is done.",
            ));
            continue;
        }
        for (i, call) in answer.tool_calls.iter().enumerate() {
            let result = if i >= MAX_CALLS_PER_TURN {
                format!(
                    "error: at most {MAX_CALLS_PER_TURN} tool calls per answer; this one was not made"
                )
            } else if call.name == "finish" {
                match serde_json::from_str::<Value>(&call.arguments)
                    .ok()
                    .and_then(|v| v["summary"].as_str().map(str::to_owned))
                    .filter(|s| !s.trim().is_empty())
                {
                    Some(s) => {
                        summary = Some(s);
                        "finished".to_owned()
                    }
                    None => "error: finish needs a non-empty `summary`".to_owned(),
                }
            } else {
                let key = format!("{}/{}", calls.last_place(), i);
                match tool(ctx, stage, attempt, ws, call, &key).await {
                    Ok(text) => {
                        if matches!(call.name.as_str(), "write_file" | "edit_file")
                            && !text.starts_with("error:")
                            && let Some(p) = serde_json::from_str::<Value>(&call.arguments)
                                .ok()
                                .and_then(|a| {
                                    a["path"]
                                        .as_str()
                                        .map(|p| p.trim_start_matches("./").to_owned())
                                })
                        {
                            touched.insert(p);
                        }
                        text
                    }
                    Err(stop) => return stop,
                }
            };
            let mut result = result;
            fulcrum_protocol::tools::cut(
                &mut result,
                MAX_RESULT_BYTES,
                "\n[… cut: the result is longer; read a narrower part]\n",
            );
            messages.push(Message {
                role: MessageRole::Tool,
                content: result,
                tool_calls: Vec::new(),
                tool_call_id: Some(call.id.clone()),
            });
        }
    }
    let Some(summary) = summary else {
        return StageResult::failed(
            "agent_turns",
            format!(
                "the agent used its {} turns without calling `finish`",
                stage.max_turns
            ),
            false,
        );
    };
    let mut output = json!({ "summary": summary, "turns": turn });
    if stage.commit && !touched.is_empty() {
        let title = summary
            .lines()
            .map(|l| l.trim_start_matches(['#', ' ', '-', '*']).trim())
            .find(|l| !l.is_empty())
            .unwrap_or("changes")
            .chars()
            .take(60)
            .collect::<String>();
        let paths = Some(touched.into_iter().collect());
        match workspace::commit(ctx, ws, &stage.name, attempt, paths, &title).await {
            Ok(c) => output["commit"] = json!(c.sha),
            Err(r) => return r,
        }
    }
    let path = format!("{}.md", stage.name);
    StageResult::Succeeded {
        output,
        artifacts: vec![NewArtifact {
            sha256: crate::auth::sha256_hex(summary.as_bytes()),
            media_type: "text/markdown".into(),
            path,
            stage: stage.name.clone(),
            attempt,
            content: summary,
        }],
    }
}

/// Runs one tool call of the model; the text is its result (a tool's own error included, for
/// the model to read). `Err` stops the stage (the workspace is gone, a budget, …).
async fn tool(
    ctx: &StageCtx,
    stage: &Stage,
    attempt: i32,
    ws: Uuid,
    call: &ToolCall,
    key: &str,
) -> Result<String, StageResult> {
    let Ok(Value::Object(mut args)) = serde_json::from_str::<Value>(&call.arguments) else {
        return Ok(format!(
            "error: the arguments of {} must be a JSON object",
            call.name
        ));
    };
    if call.name == "run_command" {
        return Ok(run_command(ctx, stage, attempt, ws, &args, key).await);
    }
    if !WORKSPACE_TOOLS.contains(&call.name.as_str()) {
        return Ok(format!("error: there is no tool {:?}", call.name));
    }
    let repo = workspace::repo(ctx);
    for field in ["path", "repo_path"] {
        if let Some(Value::String(p)) = args.get(field) {
            if p.starts_with('/') {
                return Ok(format!(
                    "error: `{field}` is relative to the repository; absolute paths are refused"
                ));
            }
            if repo != "." {
                let inside = if p.is_empty() || p == "." {
                    repo.clone()
                } else {
                    format!("{repo}/{}", p.trim_start_matches("./"))
                };
                args.insert(field.into(), Value::String(inside));
            }
        }
    }
    if repo != "."
        && !args.contains_key("path")
        && matches!(
            call.name.as_str(),
            "directory_tree" | "list_directory" | "search_files"
        )
    {
        args.insert("path".into(), Value::String(repo.clone()));
    }
    if repo != "." && !args.contains_key("repo_path") && call.name.starts_with("git_") {
        args.insert("repo_path".into(), Value::String(repo.clone()));
    }
    let out = workspace::call_json(ctx, ws, &call.name, Value::Object(args).to_string()).await?;
    Ok(if out.is_error {
        format!("error: {}", out.text)
    } else {
        out.text
    })
}

/// `run_command`: a task in the workspace, keyed by the call, so a resumed attempt finds it.
async fn run_command(
    ctx: &StageCtx,
    stage: &Stage,
    attempt: i32,
    ws: Uuid,
    args: &serde_json::Map<String, Value>,
    key: &str,
) -> String {
    let Some(command) = args.get("command").and_then(Value::as_str) else {
        return "error: run_command needs a `command`".into();
    };
    let timeout = args
        .get("timeout_s")
        .and_then(Value::as_i64)
        .unwrap_or(300)
        .clamp(1, MAX_COMMAND_SECS);
    let caller = Caller::new(ctx.run.started_by, Door::Pipeline);
    let id = Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!(
            "fulcrum:pipeline-run:{}/{}/{attempt}/call/{key}",
            ctx.run.id, stage.name
        )
        .as_bytes(),
    );
    let task = match ctx.tasks.visible(caller, id).await {
        Ok(t) => t,
        Err(DomainError::NotFound(_)) => {
            let mut env = std::collections::BTreeMap::new();
            env.insert("FULCRUM_PIPELINE_RUN".into(), ctx.run.handle.clone());
            env.insert("FULCRUM_PIPELINE_STAGE".into(), stage.name.clone());
            let input = RunInput {
                workspace: Some(ws),
                project: Some(ctx.run.project_id),
                repo: Some(workspace::repo(ctx)),
                run: fulcrum_protocol::TaskRun::Command {
                    command: command.to_owned(),
                },
                env,
                timeout_s: Some(timeout),
            };
            match ctx.tasks.start_as(caller, input, id).await {
                Ok(t) => t,
                Err(e) => return format!("error: the command could not start: {e}"),
            }
        }
        Err(e) => return format!("error: {e}"),
    };
    let done = match run_stage::wait(ctx, caller, task).await {
        Ok(t) => t,
        Err(e) => return format!("error: {e}"),
    };
    let tail = run_stage::tail(ctx, &done, 12 * 1024).await;
    let mut out = format!(
        "task #{} {}; exit code {}\n",
        done.number.unwrap_or_default(),
        done.state.as_str(),
        done.exit_code
            .map_or_else(|| "none".into(), |c| c.to_string())
    );
    if let Some(t) = &done.test_summary {
        out.push_str(&format!(
            "tests: {} passed, {} failed, {} skipped\n",
            t.passed, t.failed, t.skipped
        ));
        for f in &t.failures {
            out.push_str(&format!("FAILED {}: {}\n", f.name, f.message));
        }
    }
    out.push_str("--- end of output ---\n");
    out.push_str(&tail);
    out
}
