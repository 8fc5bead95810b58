//! An `mcp` stage: one tool call in the run's workspace, a built-in tool of its agent
//! (`git_log`, `read_file`, …) or a tool of an MCP server it hosts (`server__tool`), with
//! `arguments` whose strings are templates over the run. Its output is the tool's answer
//! (`text`, and `structured` when the tool gives one); a tool's error fails the stage.

use fulcrum_protocol::tools::ToolTarget;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    definition::Stage,
    engine::{StageCtx, StageResult},
    llm_stage::{context, render},
    workspace,
};

/// Renders every string in `v` as a template.
fn rendered(v: &Value, ctx: &Value, depth: usize) -> Result<Value, String> {
    if depth > 32 {
        return Err("the arguments nest too deeply".into());
    }
    Ok(match v {
        Value::String(s) => Value::String(render(s, ctx)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| rendered(x, ctx, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| rendered(x, ctx, depth + 1).map(|x| (k.clone(), x)))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

/// Runs one attempt of an `mcp` stage.
pub(super) async fn run(ctx: &StageCtx, stage: &Stage) -> (StageResult, Option<Uuid>) {
    let ws = match workspace::choose(ctx).await {
        Ok(ws) => ws,
        Err(r) => return (r, None),
    };
    let tool = stage.tool.clone().unwrap_or_default();
    let template_ctx = context(ctx, None);
    let args = match stage
        .arguments
        .as_ref()
        .map(|a| rendered(a, &template_ctx, 0))
        .transpose()
    {
        Ok(a) => a.unwrap_or_else(|| json!({})),
        Err(e) => {
            return (
                StageResult::failed("template", format!("the arguments: {e}"), false),
                Some(ws),
            );
        }
    };
    let target = match tool.split_once("__") {
        Some((server, name)) => ToolTarget::Hosted {
            server: server.to_owned(),
            tool: name.to_owned(),
        },
        None => ToolTarget::Builtin(tool.clone()),
    };
    let out = match workspace::call_target(ctx, ws, target, args.to_string()).await {
        Ok(out) => out,
        Err(stop) => return (stop, Some(ws)),
    };
    if out.is_error {
        return (
            StageResult::failed("tool_error", format!("{tool}: {}", out.text), false),
            Some(ws),
        );
    }
    let structured = out
        .structured_json
        .as_deref()
        .and_then(|s| serde_json::from_str::<Value>(s).ok());
    (
        StageResult::Succeeded {
            output: json!({ "text": out.text, "structured": structured }),
            artifacts: Vec::new(),
        },
        Some(ws),
    )
}
