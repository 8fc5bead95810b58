//! An `llm` stage: render its prompt over the run's inputs and earlier outputs, call the
//! model (journaled and budgeted by [`crate::domain::budgets`]), check the answer with a real
//! parser for its output kind, and turn it into artifacts. An answer the check refuses is sent
//! back with the checker's error, at most `validation_retries` times.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{
    definition::{OutputKind, Stage, check_artifact_path},
    engine::{StageCtx, StageResult},
};
use crate::{
    domain::budgets::{CallError, CallFor, RunCall},
    llm::{ChatRequest, ChatResponse, Message, MessageRole},
    store::pipelines::NewArtifact,
};

/// Most files one `files` answer may hold.
const MAX_FILES: usize = 200;
/// Most bytes of artifacts one stage writes.
const MAX_STAGE_ARTIFACT_BYTES: usize = 8 << 20;
/// Calls at one place an interrupted relay may leave behind, skipped on resume.
const MAX_INTERRUPTED: i32 = 3;

/// The template context of a stage.
pub(super) fn context(ctx: &StageCtx, feedback: Option<&str>) -> Value {
    let inputs: Value = serde_json::from_str(&ctx.run.inputs).unwrap_or_else(|_| json!({}));
    let stages: serde_json::Map<String, Value> = ctx
        .outputs
        .iter()
        .map(|(k, v)| (k.clone(), json!({ "output": v })))
        .collect();
    json!({
        "inputs": inputs,
        "project": super::project_context(&ctx.project),
        "stages": stages,
        "artifacts": ctx.artifacts,
        "feedback": feedback,
        "run": {
            "id": ctx.run.id,
            "handle": ctx.run.handle,
            "branch": super::workspace::branch(ctx),
            "usage": ctx.usage,
        },
    })
}

/// Most bytes one template may render (a prompt, a system prompt, an artifact).
const MAX_RENDERED: usize = 4 << 20;
/// Template instructions one render may run: bounds loops in a definition anyone can write.
const TEMPLATE_FUEL: u64 = 2_000_000;

/// A writer that refuses to grow past [`MAX_RENDERED`].
struct Capped(Vec<u8>);

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_RENDERED {
            return Err(std::io::Error::other("too large"));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Renders `template` over `context`, within a fuel budget and an output cap.
pub(super) fn render(template: &str, context: &Value) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    env.set_fuel(Some(TEMPLATE_FUEL));
    let describe = |e: minijinja::Error| {
        let mut m = e.to_string();
        if let Some(detail) = e.detail() {
            m.push_str(": ");
            m.push_str(detail);
        }
        m
    };
    let t = env.template_from_str(template).map_err(describe)?;
    let mut out = Capped(Vec::new());
    match t.render_captured_to(context, &mut out) {
        Ok(_) => String::from_utf8(out.0).map_err(|_| "the template rendered invalid UTF-8".into()),
        Err(e) if e.kind() == minijinja::ErrorKind::WriteFailure => Err(format!(
            "the template renders more than {MAX_RENDERED} bytes"
        )),
        Err(e) => Err(describe(e)),
    }
}

/// The model calls of one stage attempt, numbered in order, each journaled and budgeted by
/// [`crate::domain::budgets`]; a place an interrupted relay left behind is skipped (at most
/// [`MAX_INTERRUPTED`] of them), since its answer is lost.
pub(super) struct Calls<'a> {
    ctx: &'a StageCtx,
    stage: &'a Stage,
    attempt: i32,
    seq: i32,
    interrupted: i32,
}

impl<'a> Calls<'a> {
    /// The calls of `stage`'s `attempt`.
    pub(super) fn new(ctx: &'a StageCtx, stage: &'a Stage, attempt: i32) -> Self {
        Self {
            ctx,
            stage,
            attempt,
            seq: 0,
            interrupted: 0,
        }
    }

    /// The journal place of the last call asked for (its answer's tool calls are keyed by it).
    pub(super) fn last_place(&self) -> i32 {
        self.seq - 1
    }

    /// The model's answer to `request` (a recorded one if this place was answered before),
    /// its text streamed to the run's audience; or the stage's result when it cannot go on.
    pub(super) async fn ask(&mut self, request: &ChatRequest) -> Result<ChatResponse, StageResult> {
        let (ctx, stage, attempt) = (self.ctx, self.stage, self.attempt);
        loop {
            let who = CallFor {
                user: ctx.run.started_by,
                project: Some(ctx.run.project_id),
                run: Some(RunCall {
                    run: ctx.run.id,
                    budget_micros: ctx.run.budget_micros,
                    stage: stage.name.clone(),
                    attempt,
                    seq: self.seq,
                }),
                source: fulcrum_protocol::kinds::ActivitySource::Pipeline,
                tool: "fulcrum-pipeline".into(),
            };
            self.seq += 1;
            let mut on_text = |t: &str| {
                ctx.feed
                    .text(&ctx.audience, ctx.run.id, &stage.name, attempt, t);
            };
            return match ctx
                .budgets
                .call(&who, &ctx.provider, &ctx.endpoint, request, &mut on_text)
                .await
            {
                Ok(a) => Ok(a),
                Err(CallError::Budget(m)) => Err(StageResult::Budget(m)),
                Err(CallError::Interrupted) if self.interrupted < MAX_INTERRUPTED => {
                    self.interrupted += 1;
                    continue;
                }
                Err(CallError::Interrupted) => Err(StageResult::failed(
                    "interrupted",
                    "the relay stopped during this stage's calls too many times".into(),
                    true,
                )),
                Err(CallError::Provider(e)) => {
                    Err(StageResult::failed(e.code(), e.to_string(), e.retryable()))
                }
                Err(CallError::Domain(e)) => {
                    Err(StageResult::failed("internal", e.to_string(), true))
                }
            };
        }
    }
}

/// Runs one attempt of an `llm` stage.
pub(super) async fn run(ctx: &StageCtx, stage: &Stage, attempt: i32) -> StageResult {
    let context = context(ctx, ctx.feedback.get(&stage.name).map(String::as_str));
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
        Ok(s) => s,
        Err(e) => return StageResult::failed("template", format!("the system prompt: {e}"), false),
    };
    let mut messages = vec![Message::user(prompt)];
    let model = stage
        .model
        .clone()
        .unwrap_or_else(|| ctx.provider.default_model.clone());
    let schema = match stage.output {
        OutputKind::Json => stage.schema.clone(),
        OutputKind::Files => Some(files_schema()),
        OutputKind::Text => None,
    };
    let validator = match schema.as_ref().map(jsonschema::validator_for).transpose() {
        Ok(v) => v,
        Err(e) => {
            return StageResult::failed(
                "invalid_schema",
                format!("the stage's schema: {e}"),
                false,
            );
        }
    };
    let mut answers: u32 = 0;
    let mut last_error = String::new();
    let mut calls = Calls::new(ctx, stage, attempt);
    while answers <= stage.validation_retries {
        let request = ChatRequest {
            model: model.clone(),
            system: system.clone(),
            messages: messages.clone(),
            max_tokens: stage.max_tokens,
            temperature: stage.temperature,
            tools: Vec::new(),
            json_schema: schema.clone(),
        };
        let answer = match calls.ask(&request).await {
            Ok(a) => a,
            Err(stop) => return stop,
        };
        answers += 1;
        let checked = if answer.finish_reason.as_deref() == Some("length")
            || answer.finish_reason.as_deref() == Some("max_tokens")
        {
            Err(format!(
                "the answer was cut at max_tokens ({}); answer more briefly",
                stage.max_tokens
            ))
        } else {
            check(stage, &answer.text, validator.as_ref())
        };
        let produced = checked
            .and_then(|output| artifacts(stage, attempt, &output, &context).map(|a| (output, a)));
        let produced = match produced {
            Ok((output, artifacts)) => match check_artifacts(stage, &artifacts).await {
                Ok(()) => Ok((output, artifacts)),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match produced {
            Ok((output, artifacts)) => return StageResult::Succeeded { output, artifacts },
            Err(e) => {
                last_error = e.clone();
                messages.push(Message {
                    role: MessageRole::Assistant,
                    // Anthropic refuses an empty turn.
                    content: if answer.text.trim().is_empty() {
                        "(no answer)".into()
                    } else {
                        answer.text
                    },
                    tool_calls: Vec::new(),
                    tool_call_id: None,
                });
                messages.push(Message::user(format!(
                    "That answer is not valid: {e}\nAnswer again, in full, with this fixed."
                )));
            }
        }
    }
    StageResult::failed(
        "invalid_output",
        format!(
            "the answer was still invalid after {} tries: {last_error}",
            stage.validation_retries + 1
        ),
        false,
    )
}

/// Holds the artifacts to the parsers their specs name.
async fn check_artifacts(stage: &Stage, artifacts: &[NewArtifact]) -> Result<(), String> {
    for spec in &stage.artifacts {
        let Some(kind) = spec.check else { continue };
        if let Some(a) = artifacts.iter().find(|a| a.path == spec.path) {
            super::checks::check(kind, &a.path, &a.content).await?;
        }
    }
    Ok(())
}

/// The schema of a `files` answer.
fn files_schema() -> Value {
    json!({
        "type": "object",
        "required": ["files"],
        "properties": {
            "files": {
                "type": "array",
                "maxItems": MAX_FILES,
                "items": {
                    "type": "object",
                    "required": ["path", "content"],
                    "properties": {
                        "path": {"type": "string"},
                        "content": {"type": "string"}
                    }
                }
            }
        }
    })
}

/// The JSON in an answer: the whole text, or the inside of one fenced block.
fn json_in(text: &str) -> Result<Value, String> {
    let t = text.trim();
    let inner = t
        .strip_prefix("```json")
        .or_else(|| t.strip_prefix("```"))
        .and_then(|r| r.trim_end().strip_suffix("```"))
        .unwrap_or(t);
    serde_json::from_str(inner.trim()).map_err(|e| format!("the answer is not JSON ({e})"))
}

/// Checks an answer against the stage's output kind; the output kept for later stages.
fn check(
    stage: &Stage,
    text: &str,
    validator: Option<&jsonschema::Validator>,
) -> Result<Value, String> {
    match stage.output {
        OutputKind::Text => {
            if text.trim().is_empty() {
                Err("the answer is empty".into())
            } else {
                Ok(Value::String(text.to_owned()))
            }
        }
        OutputKind::Json | OutputKind::Files => {
            let value = json_in(text)?;
            if let Some(v) = validator {
                let errors: Vec<String> = v
                    .iter_errors(&value)
                    .take(5)
                    .map(|e| format!("at `{}`: {e}", e.instance_path))
                    .collect();
                if !errors.is_empty() {
                    return Err(format!(
                        "the answer does not follow the schema: {}",
                        errors.join("; ")
                    ));
                }
            }
            if stage.output == OutputKind::Files {
                let mut seen = std::collections::HashSet::new();
                for f in value["files"].as_array().into_iter().flatten() {
                    let path = f["path"].as_str().unwrap_or("");
                    check_artifact_path(path)?;
                    if !seen.insert(path) {
                        return Err(format!("`{path}` is given twice"));
                    }
                }
            }
            Ok(value)
        }
    }
}

/// A media type from a path's extension.
fn media_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, e)| e) {
        Some("json") => "application/json",
        Some("md") => "text/markdown",
        Some("yaml" | "yml") => "application/yaml",
        Some("sql") => "application/sql",
        Some("html") => "text/html",
        Some("css") => "text/css",
        Some("js") => "text/javascript",
        Some("py") => "text/x-python",
        Some("toml") => "application/toml",
        _ => "text/plain",
    }
}

fn artifact(stage: &Stage, attempt: i32, path: String, content: String) -> NewArtifact {
    NewArtifact {
        sha256: crate::auth::sha256_hex(content.as_bytes()),
        media_type: media_type(&path).to_owned(),
        path,
        stage: stage.name.clone(),
        attempt,
        content,
    }
}

/// The artifacts a stage writes from its output.
fn artifacts(
    stage: &Stage,
    attempt: i32,
    output: &Value,
    context: &Value,
) -> Result<Vec<NewArtifact>, String> {
    let mut out = Vec::new();
    if stage.output == OutputKind::Files {
        for f in output["files"].as_array().into_iter().flatten() {
            let path = f["path"].as_str().unwrap_or_default();
            let path = match &stage.dir {
                Some(dir) => format!("{dir}/{path}"),
                None => path.to_owned(),
            };
            check_artifact_path(&path)?;
            let content = f["content"].as_str().unwrap_or_default().to_owned();
            out.push(artifact(stage, attempt, path, content));
        }
    }
    let mut with_output = context.clone();
    with_output["output"] = output.clone();
    for spec in &stage.artifacts {
        let content = match &spec.template {
            Some(t) => {
                render(t, &with_output).map_err(|e| format!("artifact `{}`: {e}", spec.path))?
            }
            None => match output {
                Value::String(s) => s.clone(),
                v => serde_json::to_string_pretty(v).unwrap_or_default(),
            },
        };
        out.push(artifact(stage, attempt, spec.path.clone(), content));
    }
    let total: usize = out.iter().map(|a| a.content.len()).sum();
    if total > MAX_STAGE_ARTIFACT_BYTES {
        return Err(format!(
            "the stage's artifacts come to {total} bytes, over the {MAX_STAGE_ARTIFACT_BYTES} byte cap"
        ));
    }
    Ok(out)
}

/// The outputs of finished stages, by name, from their stored JSON.
pub(super) fn outputs(stages: &[crate::store::pipelines::StageRow]) -> BTreeMap<String, Value> {
    stages
        .iter()
        .filter(|s| s.state == fulcrum_protocol::kinds::StageState::Succeeded)
        .map(|s| {
            let v = s
                .output
                .as_deref()
                .and_then(|o| serde_json::from_str(o).ok())
                .unwrap_or(Value::Null);
            (s.name.clone(), v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_render_within_fuel_and_size() {
        let ctx = json!({"inputs": {"name": "Shop"}});
        assert_eq!(render("Hi {{ inputs.name }}", &ctx).unwrap(), "Hi Shop");
        let huge = render(
            "{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}",
            &ctx,
        )
        .unwrap_err();
        assert!(huge.contains("more than"), "{huge}");
        let endless = render(
            "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
            &ctx,
        )
        .unwrap_err();
        assert!(endless.contains("fuel"), "{endless}");
    }
}
